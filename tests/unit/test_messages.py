"""Every alert e-mail renders with its subject, its next step and its run link; nothing leaks.

The redaction rules themselves are tested in test_redact.py, the renderings in test_mail.py.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import pytest

from include.cc_intake import messages
from include.cc_intake.mail import Email
from include.cc_intake.messages import Failure

RUN_LINK = "https://airflow.example.com/dags/ingest_acme_abidjan/runs/scheduled__2026-11-26"
TASK_LINK = RUN_LINK + "/tasks/copy_recordings"
DAY = dt.date(2026, 11, 25)
COMMON: dict[str, Any] = {
    "provider_id": "acme_abidjan",
    "provider_name": "ACME Abidjan",
    "day": DAY,
}
# An error text as a careless library might write it: a caller number, a file named after it,
# credentials in a URL, a token in a query string and a password in a JSON body.
LEAKY_ERROR = (
    "caller +225 07 12 34 56 78 in /exports/inbound/20261125/20261125_101010_AG1_0712345678.wav; "
    "GET https://bob:hunter2@crm.example.com/api/export?token=abc123XYZ&page=2 failed; "
    'body {"password": "s3cr3tpw"} Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig'
)
SECRETS = (
    "hunter2",
    "abc123XYZ",
    "s3cr3tpw",
    "eyJhbGciOiJIUzI1NiJ9",
    "07 12 34 56 78",
    "0712345678",
)

FAILURES = [
    ("not_ready", "enregistrements non disponibles", "make check PROVIDER=acme_abidjan"),
    ("copy", "échec de la copie des enregistrements", "make check PROVIDER=acme_abidjan"),
    ("report", "rapport de fin de journée absent ou illisible", "publier (ou corriger)"),
    ("reconciliation", "écart entre enregistrements et rapport", "page de preuve"),
    ("validation", "échec de la validation des données", "page de preuve"),
    ("export", "échec de l'export CRM", "Relancer la journée"),
    ("task", "échec d'une tâche (copy_recordings)", "journal de la tâche"),
    ("config", "configuration du prestataire invalide", "make check PROVIDER=acme_abidjan"),
    ("manifest", "manifeste des enregistrements absent ou illisible", "« copy_recordings »"),
    ("handshake", "accusé de réception non déposé chez le prestataire", "« confirm_to_provider »"),
    ("purged", "journée purgée (conservation des données), relance refusée", '"restore": true'),
]


def _failure(**facts: Any) -> Failure:
    """The facts of a failure of ACME Abidjan on :data:`DAY`; ``facts`` override them."""
    return Failure(**{**COMMON, "run_link": RUN_LINK, **facts})


def _render(kind: str, **extra: object) -> Email:
    return messages.FAILURE_BUILDERS[kind](
        _failure(
            task_id="copy_recordings",
            error=LEAKY_ERROR,
            try_number=3,
            task_link=TASK_LINK,
            **extra,
        )
    )


def _all_text(email: Email) -> str:
    return "\n".join((email.subject, email.body_text, html.unescape(email.body_html)))


@pytest.mark.parametrize(("kind", "phrase", "next_step"), FAILURES)
def test_failure_email_names_provider_day_problem_and_next_step(kind, phrase, next_step):
    email = _render(kind)

    assert email.subject == f"[intake][acme_abidjan][2026-11-25] {phrase}"
    for body in (email.body_text, html.unescape(email.body_html)):
        assert "ACME Abidjan" in body
        assert "2026-11-25 (mercredi 25 novembre 2026)" in body
        assert "Que faire" in body
        assert next_step in body
        assert RUN_LINK in body
    assert f'<a href="{html.escape(RUN_LINK)}">' in email.body_html
    assert f'<a href="{html.escape(TASK_LINK)}">' in email.body_html


@pytest.mark.parametrize("kind", [kind for kind, _, _ in FAILURES])
def test_failure_email_masks_phones_and_redacts_secrets(kind):
    details = {"files": ["20261125_101010_AG1_0712345678.wav"], "note": "tel 0022507123456"}
    email = _render(kind, details=details)

    text = _all_text(email)
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into the {kind} e-mail"
    assert "+225 ******78" in text
    assert "_AG1_******78.wav" in text
    assert "+225 ******56" in text  # the detail's phone number, 00-prefixed
    assert "https://***@crm.example.com/api/export?token=***&page=2" in text


def test_every_builder_is_rendered_by_the_parametrized_tests():
    assert {kind for kind, _, _ in FAILURES} == set(messages.FAILURE_BUILDERS)


def test_html_escapes_error_text():
    email = _render("task", details=None)
    bad = messages.task_failed(_failure(task_id="t", error="<script>alert(1)</script> & <b>"))

    assert "<script>" not in bad.body_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;" in bad.body_html
    assert "<script>alert(1)</script>" in bad.body_text
    assert email.body_html.startswith("<!DOCTYPE html>")


def test_rerun_instructions_give_the_exact_commands():
    email = _render("copy")

    assert (
        'airflow dags trigger ingest_acme_abidjan -c \'{"target_date": "2026-11-25"}\''
        in email.body_text
    )
    assert "« copy_recordings »" in email.body_text
    assert "Clear" in email.body_text
    assert "Étape           : copy_recordings (tentative 3)" in email.body_text


def test_deadline_email_says_what_is_late_and_which_step_waits():
    email = messages.deadline_missed(
        **COMMON,
        run_link=RUN_LINK,
        deadline="07:00",
        timezone="Africa/Abidjan",
        run_state="running",
        steps={
            "wait_for_recordings": "deferred",
            "copy_recordings": None,
            "export_digital": "success",
        },
    )

    assert email.subject == "[intake][acme_abidjan][2026-11-25] délai de livraison dépassé"
    text = email.body_text
    assert (
        "n'est pas complète à l'heure limite de livraison (07:00, heure de Africa/Abidjan)" in text
    )
    assert "l'exécution planifiée est toujours en cours" in text
    assert "Étape en cours : wait_for_recordings (en attente (différée))" in text
    assert "copy_recordings : pas encore démarrée" in text
    assert "export_digital : terminée" in text
    assert "ne concerne que les exécutions planifiées" in text
    assert "Contacter le prestataire" in text
    assert RUN_LINK in text
    assert f'<a href="{html.escape(RUN_LINK)}">' in email.body_html


def test_deadline_email_without_step_information_still_has_link_and_next_step():
    email = messages.deadline_missed(
        **COMMON, run_link=RUN_LINK, deadline="07:00", timezone="Africa/Abidjan"
    )

    assert "État des étapes" not in email.body_text
    assert "Que faire" in email.body_text
    assert RUN_LINK in email.body_text


def test_reconciliation_email_lists_expected_and_got_per_direction_and_the_proof_page():
    email = messages.reconciliation_failed(
        _failure(
            task_id="reconcile_recordings",
            error="ReconciliationError: ENTRANTS 118 copied, report says 120",
            details={
                "recordings": {
                    "ENTRANTS": {"expected": 120, "got": 118},
                    "SORTANTS": {"expected": 40, "got": 40},
                },
                "digital": {"expected": 12, "got": 12},
                "gaps": {"missing": ["20261125_101010_AG1_0712345678.wav"], "duplicate": []},
            },
            proof_link="/data/quality/acme_abidjan/2026-11-25/recordings.html",
        )
    )

    text = email.body_text
    assert "ENTRANTS : attendu 120, reçu 118 (écart -2)" in text
    assert "SORTANTS : attendu 40, reçu 40 (écart +0)" in text
    assert "Interactions digitales : attendu 12, reçu 12 (écart +0)" in text
    assert "Enregistrements manquants :" in text
    assert "20261125_101010_AG1_******78.wav" in text
    assert "Enregistrements en double" not in text  # an empty gap list is not shown
    assert "Page de preuve : /data/quality/acme_abidjan/2026-11-25/recordings.html" in text
    # The report was fetched by an earlier step: clearing the check alone would re-read it.
    assert "l'exécution entière" in text
    assert "la tâche « reconcile_recordings »" not in text


def test_validation_email_lists_failed_expectations():
    email = messages.validation_failed(
        _failure(
            task_id="validate_day",
            error="ValidationError: 2 expectations failed",
            details={"failed_expectations": ["call_id unique", "size_bytes > 0"]},
        )
    )

    assert "Contrôles en échec :\n  - call_id unique\n  - size_bytes > 0" in email.body_text


def test_not_ready_email_shows_what_was_seen_per_direction():
    email = messages.recordings_not_ready(
        _failure(
            task_id="wait_for_recordings",
            error="RecordingsNotReady: SORTANTS folder /exports/outbound/20261125 is empty",
            details={
                "waited": "4h",
                "directions": {
                    "ENTRANTS": {"seen": 118, "ready": 117, "settling": 1},
                    "SORTANTS": "dossier absent",
                },
            },
        )
    )

    text = email.body_text
    assert "à la fin du délai d'attente (4h)." in text
    assert "ENTRANTS : vus 118, prêts 117, en cours d'écriture 1" in text
    assert "SORTANTS : dossier absent" in text


def test_copy_email_lists_files_and_caps_long_lists():
    files = [f"20261125_1010{i:02d}_AG1_C{i}.wav" for i in range(25)]
    email = messages.copy_failed(
        _failure(
            task_id="copy_recordings",
            error="TransferError: connection lost",
            try_number=3,
            details={"files": files},
        )
    )

    assert "a échoué après 3 tentative(s)." in email.body_text
    assert "20261125_101019_AG1_C19.wav" in email.body_text
    assert "20261125_101020_AG1_C20.wav" not in email.body_text
    assert "… et 5 autre(s)" in email.body_text


def test_host_key_email_has_its_own_subject_and_advice():
    email = messages.copy_failed(
        _failure(
            task_id="copy_recordings",
            error="HostKeyError: host key of sftp.acme.example changed",
        ),
        host_key=True,
    )

    assert email.subject.endswith("clé d'hôte SSH refusée")
    assert "Ne jamais désactiver la vérification." in email.body_text


@pytest.mark.parametrize(
    ("status", "advice"),
    [
        (401, "refuse nos identifiants (HTTP 401)"),
        (404, "refuse la requête (HTTP 404)"),
        (503, "est indisponible"),
        (None, "est indisponible"),
    ],
)
def test_export_email_advice_depends_on_the_http_status(status, advice):
    email = messages.export_failed(
        _failure(
            task_id="export_digital",
            error="ExportError: GET /api/export/interactions failed",
            details={"url": "/api/export/interactions", "status": status},
        )
    )

    assert advice in email.body_text
    assert "/api/export/interactions" in email.body_text


def test_config_error_email_accepts_an_unknown_day():
    email = messages.config_error(
        _failure(
            provider_name="acme_abidjan",
            day="inconnue",
            error="include/providers/acme_abidjan.yaml: invalid provider configuration:\n"
            "  deadline: …",
        )
    )

    assert email.subject == "[intake][acme_abidjan][inconnue] configuration du prestataire invalide"
    assert "Les autres prestataires ne sont pas affectés." in email.body_text
    assert "include/providers/acme_abidjan.yaml" in email.body_text


def test_non_http_link_is_not_made_clickable():
    email = messages.task_failed(_failure(run_link="javascript:alert(1)", task_id="t", error="x"))

    assert 'href="javascript' not in email.body_html


def test_long_error_text_is_truncated():
    email = messages.task_failed(_failure(task_id="t", error="x" * 10_000))

    assert "x" * 3000 in email.body_text
    assert "x" * 3001 not in email.body_text
    assert "(tronqué : voir le journal de la tâche)" in email.body_text


def test_format_day_in_french():
    assert messages.format_day(dt.date(2026, 8, 15)) == "2026-08-15 (samedi 15 août 2026)"
    assert messages.format_day("2026-02-01") == "2026-02-01 (dimanche 1 février 2026)"
    assert messages.format_day("pas-une-date") == "pas-une-date"


def test_item9_a_shrunk_export_email_names_both_counts_and_how_to_force_it():
    email = messages.export_failed(
        _failure(
            task_id="export_digital",
            error="ShrunkExportError: the CRM now returns 0 interaction(s) …",
            try_number=1,
            details={"url": "/api/export/interactions", "page": 1, "previous": 240, "got": 0},
        )
    )
    text = _all_text(email)
    assert email.subject == (
        "[intake][acme_abidjan][2026-11-25] export CRM en baisse, export précédent conservé"
    )
    assert "le CRM renvoie 0 interactions, l'export précédent en contenait 240" in text
    assert "L'export précédent est conservé tel quel" in text
    assert (
        "airflow dags trigger ingest_acme_abidjan -c "
        '\'{"target_date": "2026-11-25", "replace_digital": true}\''
    ) in text
    assert RUN_LINK in text


def test_item18_a_malformed_page_email_says_it_is_not_retried():
    email = messages.export_failed(
        _failure(
            task_id="export_digital",
            error="MalformedPageError: GET /api/export/interactions (page 2): malformed page",
            try_number=1,
            no_retry=True,  # what the notifier sets for an error marked retryable = False
            details={
                "url": "/api/export/interactions",
                "page": 2,
                "malformed": True,
                "attempts": 3,
            },
        )
    )
    text = _all_text(email)
    assert email.subject.endswith("échec de l'export CRM")
    assert "page complète mais illisible" in text
    assert "Aucune nouvelle tentative automatique" in text
    assert "essais : 3" in email.body_text and "page   : 2" in email.body_text


def test_item15_a_subject_never_carries_a_line_break():
    hostile = "2026-11-25\r\nBcc: intrus@example.com\u2028X"
    emails = [
        messages.config_error(_failure(day=hostile, error="target_date is not a day")),
        messages.copy_failed(_failure(day=hostile, task_id="copy\r\nX", error="x")),
        messages.deadline_missed(
            provider_id="acme\nabidjan",
            provider_name="ACME",
            day=hostile,
            run_link=RUN_LINK,
            deadline="07:00",
            timezone="Africa/Abidjan",
        ),
    ]
    for email in emails:
        assert not any(c in email.subject for c in "\r\n\u2028\x85"), repr(email.subject)
    assert emails[0].subject == (
        "[intake][acme_abidjan][2026-11-25 Bcc: intrus@example.com X] "
        "configuration du prestataire invalide"
    )


def test_item18_host_key_email_says_no_automatic_retry_and_what_to_do():
    email = messages.copy_failed(
        _failure(
            task_id="wait_for_recordings",
            error="HostKeyError: acme_abidjan 2026-11-25: ... connection 'sftp_acme' ...",
            try_number=1,
        ),
        host_key=True,
    )

    text = email.body_text
    assert email.subject.endswith("clé d'hôte SSH refusée")
    assert "Aucune nouvelle tentative automatique" in text
    assert "make check PROVIDER=acme_abidjan DATE=2026-11-25" in text
    assert "Ne jamais désactiver la vérification." in text
    assert "host_key" in text and "Relancer la journée" in text


def test_item18_an_error_no_retry_can_fix_says_so_in_any_email():
    final = messages.copy_failed(_failure(task_id="copy_recordings", error="x", no_retry=True))
    retried = messages.copy_failed(_failure(task_id="copy_recordings", error="x", try_number=4))
    assert "Aucune nouvelle tentative automatique" in final.body_text
    assert "Aucune nouvelle tentative automatique" not in retried.body_text


def test_handshake_and_purged_emails_show_their_facts():
    handshake = _render(
        "handshake", details={"endpoint": "sftp_acme", "path": "/exports/_RECU_2026-11-25.ok"}
    )
    assert "Connexion" in handshake.body_text and "sftp_acme" in handshake.body_text
    assert "/exports/_RECU_2026-11-25.ok" in handshake.body_text
    assert "la preuve du jour est inchangée" in handshake.body_text
    purged = _render(
        "purged", details={"purged_at": "2027-03-01T05:00:02Z", "kinds": ["recordings"]}
    )
    assert "2027-03-01T05:00:02Z" in purged.body_text
    assert (
        'airflow dags trigger ingest_acme_abidjan -c \'{"target_date": "2026-11-25", '
        '"restore": true}\'' in purged.body_text
    )


def test_a_failed_purge_has_its_own_email():
    email = messages.retention_failed(
        _failure(task_id="purge_acme_abidjan", error=LEAKY_ERROR, try_number=2)
    )
    assert email.subject == (
        "[intake][acme_abidjan][2026-11-25] "
        "échec de la purge des données personnelles (conservation)"
    )
    text = _all_text(email)
    assert "cc_intake_housekeeping" in text and "« purge_acme_abidjan »" in text
    assert "CC_INTAKE_RETENTION_" in text and RUN_LINK in text
    for secret in SECRETS:
        assert secret not in text
