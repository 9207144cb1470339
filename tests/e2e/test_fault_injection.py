"""Fault injection: whole provider-days through the real DAG against the real sandbox servers.

Each test plays a hostile provider, a flaky CRM or a careless operator between two runs of the
same processed day (``airflow dags test`` with ``target_date``, see ``SandboxDays``), then
checks what an operator would trust: the manifest, the landed files, the proof and the e-mails
the SMTP sink received. Items refer to issue #10 ("the proof never lies").
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import SandboxDays

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_a_good_day_runs_green_and_sends_no_mail(sandbox_days: SandboxDays) -> None:
    proc = sandbox_days.run_day("acme_abidjan")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    layout = sandbox_days.layout("acme_abidjan")
    assert layout.manifest.is_file()
    assert sandbox_days.mails() == []


# --- item 13 (a broken provider YAML is reported every day, not silently skipped)


def _placeholder_mails(sandbox_days: SandboxDays, provider_id: str) -> list:
    return [m for m in sandbox_days.mails() if f"[intake][{provider_id}][" in str(m["Subject"])]


def _config_error_days(sandbox_days: SandboxDays, provider_id: str) -> dict[str, str]:
    import json

    return {
        path.parent.name: json.loads(path.read_text(encoding="utf-8"))["status"]
        for path in (sandbox_days.data / "quality" / provider_id).glob("*/summary.json")
    }


def test_item13_broken_yaml_placeholder_fails_and_mails_the_files_alert_emails(
    sandbox_days: SandboxDays,
) -> None:
    import yaml

    from include.cc_intake.airflow.factory import SANDBOX_PROVIDERS_DIR

    data = yaml.safe_load((SANDBOX_PROVIDERS_DIR / "acme_abidjan.yaml").read_text("utf-8"))
    data.update(
        id="broken_acme",
        deadline="25:00",  # the broken field
        alert_emails=["lead@broken.example", "qa@broken.example"],
    )
    (sandbox_days.providers_dir / "broken_acme.yaml").write_text(yaml.safe_dump(data), "utf-8")

    proc = sandbox_days.run("ingest_broken_acme")  # a scheduled-like run: no conf

    assert proc.returncode != 0, (proc.stdout + proc.stderr)[-3000:]
    # Processed day: the logical date (2030-01-01, Africa/Abidjan as the file says) minus one.
    assert _config_error_days(sandbox_days, "broken_acme") == {"2029-12-31": "config_error"}
    (mail,) = _placeholder_mails(sandbox_days, "broken_acme")
    assert mail["Subject"] == (
        "[intake][broken_acme][2029-12-31] configuration du prestataire invalide"
    )
    assert mail["X-Envelope-To"] == "lead@broken.example, qa@broken.example"
    body = mail.get_body(("html",)).get_content()
    assert "broken_acme.yaml" in body and "deadline" in body and "25:00" in body
    # The real providers' runs are untouched by the broken file.
    assert all("[broken_acme]" in str(m["Subject"]) for m in sandbox_days.mails())


def test_item13_unreadable_yaml_mails_the_operations_list(sandbox_days: SandboxDays) -> None:
    (sandbox_days.providers_dir / "garbled.yaml").write_text("id: [unclosed\n", "utf-8")
    # The Airflow Variable, read at run time by the notifier (no env var set yet)...
    sandbox_days.stack.cli("variables", "set", "cc_intake_ops_emails", "var-ops@example.com")

    first = sandbox_days.run("ingest_garbled")

    assert first.returncode != 0, (first.stdout + first.stderr)[-3000:]
    (mail,) = _placeholder_mails(sandbox_days, "garbled")
    assert mail["X-Envelope-To"] == "var-ops@example.com"
    assert mail["Subject"].endswith("configuration du prestataire invalide")
    assert "not valid YAML" in mail.get_body(("html",)).get_content()
    assert set(_config_error_days(sandbox_days, "garbled").values()) == {"config_error"}

    # ...and the environment wins over the Variable (cli() uses stack.env on every call).
    sandbox_days.stack.env["CC_INTAKE_OPS_EMAILS"] = "env-ops@example.com, oncall@example.com"
    sandbox_days.run("ingest_garbled")

    mails = _placeholder_mails(sandbox_days, "garbled")
    assert [m["X-Envelope-To"] for m in mails] == [
        "var-ops@example.com",
        "env-ops@example.com, oncall@example.com",
    ]
