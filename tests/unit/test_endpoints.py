"""Backup endpoints and FTPS certificates in the pure parts: manifest, summary, overview, mail."""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path

from include.cc_intake import messages, overview
from include.cc_intake.errors import CertificateError, HostKeyError
from include.cc_intake.manifest import served_by_backup
from include.cc_intake.messages import Failure
from include.cc_intake.proof import write_summary
from tests.unit.test_manifest import row

DAY = dt.date(2026, 11, 25)


def test_served_by_backup_names_the_other_endpoints_of_received_rows() -> None:
    rows = [
        row("a.wav", extra={"endpoint": "sftp_primary"}),
        row("b.wav", extra={"endpoint": "sftp_backup"}),
        row("c.wav", status="skipped_identical", extra={"endpoint": "sftp_backup"}),
        row("d.wav", status="rejected", extra={"endpoint": "sftp_other"}),
        row("e.wav"),  # written before the column
    ]
    assert served_by_backup(rows, "sftp_primary") == ["sftp_backup"]
    assert served_by_backup(rows[:1], "sftp_primary") == []


def test_summary_and_overview_say_the_day_was_served_by_a_backup(tmp_path: Path) -> None:
    folder = tmp_path / "quality" / "acme" / DAY.isoformat()
    folder.mkdir(parents=True)
    result = {"success": True, "reconciliation": {"directions": {}}}
    write_summary(folder, provider="acme", day=DAY, recordings=result)
    assert "served_by_backup" not in json.loads((folder / "summary.json").read_text())
    result["served_by_backup"] = ["sftp_backup"]
    write_summary(folder, provider="acme", day=DAY, recordings=result)
    assert json.loads((folder / "summary.json").read_text())["served_by_backup"] == ["sftp_backup"]
    cell = overview.read_day(tmp_path, "acme", DAY)
    assert cell.served_by_backup == ("sftp_backup",)
    page = overview.render_overview(overview.build_overview(tmp_path, end_day=DAY))
    assert "Servi par le point d'accès de secours : sftp_backup" in html.unescape(page)


def test_primary_unreachable_email_is_french_and_names_both_endpoints() -> None:
    email = messages.primary_unreachable(
        provider_id="acme_abidjan",
        provider_name="ACME Abidjan",
        day=DAY,
        served_by="sftp_backup",
        unreachable=[("sftp_primary", "ConnectionRefusedError: password=hunter2 refused")],
    )
    assert email.subject == (
        "[intake][acme_abidjan][2026-11-25] serveur principal injoignable, point d'accès de "
        "secours utilisé"
    )
    for body in (email.body_text, html.unescape(email.body_html)):
        assert "sftp_primary" in body and "sftp_backup" in body
        assert "une seule fois par journée" in body
        assert "hunter2" not in body


def test_certificate_error_gets_its_own_email_without_retry() -> None:
    from include.cc_intake.airflow.notify import classify_failure

    error = CertificateError("acme_abidjan 2026-11-25: certificate", provider="acme_abidjan")
    assert isinstance(error, HostKeyError) and not error.retryable
    assert classify_failure(error) == "certificate"
    failure = Failure(
        provider_id="acme_abidjan",
        provider_name="ACME Abidjan",
        day=DAY,
        run_link="http://localhost:8080/dags/ingest_acme_abidjan/runs/r",
        task_id="copy_recordings",
        error=str(error),
    )
    email = messages.copy_failed(failure, certificate=True)
    assert email.subject.endswith("certificat FTPS refusé")
    assert "cert_sha256" in email.body_text
    assert "Aucune nouvelle tentative automatique" in email.body_text


def test_proof_page_says_a_backup_served_the_day(tmp_path: Path) -> None:
    from include.cc_intake.proof import write_proof

    result = {
        "success": True,
        "provider": "acme",
        "day": DAY.isoformat(),
        "reconciliation": {"directions": {}},
        "served_by_backup": ["sftp_backup"],
    }
    _, page = write_proof(tmp_path, "recordings", result)
    text = html.unescape(Path(page).read_text(encoding="utf-8"))
    assert "Servie par le point d'accès de secours" in text
    assert "sftp_backup" in text
    del result["served_by_backup"]
    _, page = write_proof(tmp_path, "recordings", result)
    assert "secours" not in html.unescape(Path(page).read_text(encoding="utf-8"))
