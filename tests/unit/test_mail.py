"""The e-mail renderer: one list of blocks, two parts that say the same, one MIME message."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import html
import re

from include.cc_intake.mail import (
    Block,
    Email,
    Facts,
    Items,
    Link,
    Para,
    Pre,
    mime_message,
    render,
)

AT = dt.datetime(2026, 11, 26, 7, 0, 3, tzinfo=dt.UTC)
BLOCKS: list[Block] = [
    Facts((("Prestataire", "ACME <Abidjan>"), ("Journée traitée", "2026-11-25"))),
    Para("Le rapport & les fichiers « divergent »."),
    Items("Que faire", ("Vérifier", "Relancer"), ordered=True),
    Items("Fichiers concernés", ("a.wav", "b.wav")),
    Pre("Message d'erreur", "ligne 1\n<script>alert(1)</script>"),
    Link("Exécution Airflow", "https://airflow.example.com/dags/x/runs/r?a=1&b=2"),
    Link("Page de preuve", "/data/quality/acme/2026-11-25/recordings.html"),
]


def _lf(content: str) -> str:
    """A part as a receiver reads it: CRLF line ends and a final line end."""
    return content.replace("\r\n", "\n").removesuffix("\n")


def _words(markup: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def test_both_parts_say_the_same_thing():
    mail = render("[intake][acme][2026-11-25] écart", BLOCKS)
    text, page = " ".join(mail.body_text.split()), _words(mail.body_html)

    for phrase in (
        "Prestataire : ACME <Abidjan>",
        "Le rapport & les fichiers « divergent ».",
        "1. Vérifier 2. Relancer",
        "- a.wav - b.wav",
        "<script>alert(1)</script>",
        "Exécution Airflow : https://airflow.example.com/dags/x/runs/r?a=1&b=2",
        "Message automatique de cc-intake (Airflow). Ne pas répondre.",
    ):
        assert phrase in text, phrase
    for phrase in (
        "ACME <Abidjan>",
        "Le rapport & les fichiers « divergent ».",
        "Vérifier Relancer",
        "a.wav b.wav",
        "<script>alert(1)</script>",
        "Exécution Airflow : https://airflow.example.com/dags/x/runs/r?a=1&b=2",
        "Message automatique de cc-intake (Airflow). Ne pas répondre.",
    ):
        assert phrase in page, phrase


def test_html_part_escapes_every_value_and_links_only_http():
    mail = render("[intake][acme][2026-11-25] écart", BLOCKS)

    assert mail.body_html.startswith("<!DOCTYPE html>")
    assert "<script>" not in mail.body_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.body_html
    assert "ACME &lt;Abidjan&gt;" in mail.body_html
    assert '<a href="https://airflow.example.com/dags/x/runs/r?a=1&amp;b=2">' in mail.body_html
    assert 'href="/data' not in mail.body_html  # a path is shown, not linked
    assert "<ol>" in mail.body_html and "<ul>" in mail.body_html
    assert "<style" not in mail.body_html and "http" not in mail.body_html.split("<body")[0]


def test_render_keeps_the_subject_on_one_line():
    mail = render("[intake][acme][bad\r\nBcc: x@example.com] invalide", [Para("x")])

    assert mail.subject == "[intake][acme][bad Bcc: x@example.com] invalide"


def test_mime_message_is_multipart_alternative_text_then_html():
    mail = render("[intake][acme][2026-11-25] écart entre enregistrements et rapport", BLOCKS)

    raw = mime_message(mail, sender="intake@example.com", to=["a@example.com", "b@x.org"], at=AT)
    data = raw.as_bytes()
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF line ends, as SMTP wants
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert all(byte < 128 for byte in data)  # 7-bit: no server extension needed
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert _lf(parts[0].get_content()) == mail.body_text
    assert _lf(parts[1].get_content()) == mail.body_html
    assert message["Subject"] == mail.subject
    assert message["From"] == "intake@example.com"
    assert [a.addr_spec for a in message["To"].addresses] == ["a@example.com", "b@x.org"]
    assert message["Date"].datetime == AT
    assert message["Message-ID"].endswith("@cc-intake.invalid>")


def test_mime_message_without_text_is_html_alone():
    mail = Email(subject="s", body_text="", body_html="<p>kept by an older version</p>")

    message = mime_message(mail, sender="intake@example.com", to=["a@example.com"], at=AT)
    assert message.get_content_type() == "text/html"


def test_every_subject_reads_back_exactly_however_long():
    # Python 3.11's default header folder dropped the space in "précédent conservé" and put
    # one before "[intake]": seen in the e2e e-mails, hence the compat32 Header encoding.
    from include.cc_intake.messages import SUBJECTS

    for provider in ("acme_abidjan", "broken_acme", "a_provider_with_a_rather_long_identifier"):
        for what in SUBJECTS.values():
            subject = f"[intake][{provider}][2026-11-28] {what}"
            mail = Email(subject=subject, body_text="t", body_html="<p>h</p>")
            data = mime_message(mail, sender="intake@example.com", to=["a@example.com"]).as_bytes()
            message = email.message_from_bytes(data, policy=email.policy.default)
            assert message["Subject"] == subject
