"""One redaction rule for every log, e-mail and page: phones, secrets, control characters."""

from __future__ import annotations

import pytest

from include.cc_intake.redact import (
    mask_phone,
    one_line,
    redact_secrets,
    redact_values,
    sanitize,
)

# --------------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+225 07 12 34 56 78", "+225 ******78"),
        ("+22507123456", "+225 ******56"),
        ("0022507123456", "+225 ******56"),
        ("00 225 07 12 34 56 78", "+225 ******78"),
        ("+33 6 12 34 56 78", "+33 ******78"),
        ("+33-6-12-34-56-78", "+33 ******78"),
        ("+1 415-555-0132", "+1 ******32"),
        ("+44 20 7946 0958", "+44 ******58"),
        ("+7 912 345 67 89", "+7 ******89"),
        ("0712345678", "******78"),
        ("07 12 34 56 78", "******78"),
        ("07.12.34.56.78", "******78"),
        ("07-12-34-56-78", "******78"),
        ("appel de 0712345678 à 10h", "appel de ******78 à 10h"),
        ("tel:+22507123456", "tel:+225 ******56"),
        ("20261125_101010_AG1_0712345678.wav", "20261125_101010_AG1_******78.wav"),
        ("(0712345678)", "(******78)"),
        ("a=0712345678,b=+2250712345678", "a=******78,b=+225 ******78"),
    ],
)
def test_mask_phone_masks_numbers(text, expected):
    assert mask_phone(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "20261125",
        "20261125_023000",
        "2026-11-25",
        "2026-11-25T02:30:00+00:00",
        "2026-11-25T02:30:00.123456+0000",
        "01.12.2026 10:30",
        "scheduled__2026-11-26T02:30:00+00:00",
        "550e8400-e29b-41d4-a716-446655440000",
        "call_id AG0712345678",
        "C0712345678X",
        "1732500000000",
        "size 123456789012 bytes",
        "call 000123456789",
        "10.0.0.1:2222",
        "+05:30",
        "0612345678901",
    ],
)
def test_mask_phone_leaves_dates_times_and_ids_alone(text):
    assert mask_phone(text) == text


# The two rules that disagreed (issue #14, defect 2): the CRM's own rule left these numbers
# readable in its error excerpts…
@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("rappeler le 07-12-34-56-78 demain", "12-34-56"),
        ("/exports/inbound/20261125/20261125_101010_AG1_0712345678.wav", "0712345678"),
        ("client 06-98-76-54-32, dossier clos", "98-76-54"),
    ],
)
def test_every_written_form_of_a_phone_is_masked(text, hidden):
    masked = mask_phone(text)

    assert hidden not in masked
    assert masked.count("******") == 1


# …and masked reference numbers, amounts and ids that are no phone at all.
@pytest.mark.parametrize(
    "text",
    [
        "référence 123456789",
        "ticket 98765432 ouvert",
        "dossier n° 4512345678",
        "montant 1 234 567 890 XOF",
        "interaction 12345678901234",
    ],
)
def test_reference_numbers_are_not_phones(text):
    assert mask_phone(text) == text


def test_the_crm_example_is_masked_to_country_prefix_and_last_two_digits():
    # What the CRM module's own test checked, now against the one rule (contract §7).
    text = "rappel au +225 07 48 12 33 90, ou 06.12.34.56.78, ou 0033612345678"
    masked = mask_phone(text)

    assert masked == "rappel au +225 ******90, ou ******78, ou +33 ******78"
    assert "48 12 33" not in masked
    kept = "le 2026-11-25T10:00:00+00:00, page 12, id 12345678901234567890"
    assert mask_phone(kept) == kept


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        ("sftp://user:pa55@host/x", "pa55", "sftp://***@host/x"),
        ("https://crm/api?from=a&access_token=tok123&page=2", "tok123", "page=2"),
        ("password=abc; next", "abc", "password=***; next"),
        ("{'api_key': 'K-123'}", "K-123", "'api_key': ***"),
        ("X-API-Key: zzz999", "zzz999", "X-API-Key: ***"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA", "Authorization: ***"),
        ("sent Bearer abcdefghijkl to the CRM", "abcdefghijkl", "Bearer ***"),
    ],
)
def test_redact_secrets(text, hidden, kept):
    redacted = redact_secrets(text)

    assert hidden not in redacted
    assert kept in redacted


def test_redact_values_hides_known_values_longest_first():
    text = "auth failed for tok-123456 (tok-123456-extra); user bob"

    assert redact_values(text, ["tok-123456", "tok-123456-extra", ""]) == (
        "auth failed for *** (***); user bob"
    )


# --------------------------------------------------------------------------- whole texts


def test_sanitize_keeps_ordinary_text():
    text = "ENTRANTS: expected 120 recordings in /exports/inbound/20261125, got 118"

    assert sanitize(text) == text


def test_sanitize_redacts_then_masks_then_caps():
    text = "GET https://bob:hunter2@crm/x failed for 07-12-34-56-78 " + "x" * 100

    cleaned = sanitize(text, limit=80)
    assert "hunter2" not in cleaned and "12-34-56" not in cleaned
    assert cleaned.startswith("GET https://***@crm/x failed for ******78 ")
    assert cleaned.endswith("(tronqué : voir le journal de la tâche)")


def test_one_line_folds_every_line_break():
    assert one_line("2026-11-25\r\nBcc: x@example.com\u2028X\x85Y") == (
        "2026-11-25 Bcc: x@example.com X Y"
    )
