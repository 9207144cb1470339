"""The morning digest through a real DAG run (``airflow dags test cc_intake_digest``).

The mixed day (green, amber, red, running, config error, not started, unreadable) is written
by the pipeline's own writers; the provider list is the YAML folder the DAG factory reads (one
file broken); the e-mail is read as the real SMTP sink received it.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from include.cc_intake.sandbox.smtp_sink import SmtpSink
from tests import digest_data as D
from tests.e2e.conftest import AirflowStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

OPS = "ops@example.com, chef.programme@example.com"
SENDER = "cc-intake@example.com"


def _smtp_conn(sink: SmtpSink) -> str:
    extra = {"disable_ssl": True, "disable_tls": True, "from_email": SENDER}
    return json.dumps({"conn_type": "smtp", "host": sink.host, "port": sink.port, "extra": extra})


def _messages(folder: Path) -> list[EmailMessage]:
    out = []
    for path in sorted(folder.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out


def _digest_run(stack: AirflowStack, at: dt.datetime, name: str):
    return stack.cli(
        "dags", "test", "cc_intake_digest", at.isoformat(), check=False, log_name=name, timeout=300
    )


def test_the_digest_of_a_mixed_day_reaches_the_ops_list_as_html_and_text(
    tmp_path: Path, airflow_stack_factory: Callable[..., AirflowStack]
) -> None:
    data = tmp_path / "data"
    providers = tmp_path / "providers"
    D.write_provider_yamls(providers)
    D.write_mixed_day(data)
    with SmtpSink(tmp_path / "mail") as sink:
        stack = airflow_stack_factory(
            extra_env={
                "CC_INTAKE_SANDBOX": "0",
                "CC_INTAKE_PROVIDERS_DIR": str(providers),
                "CC_INTAKE_DEADLINES": "off",
                "CC_INTAKE_DATA_ROOT": str(data),
                "CC_INTAKE_OPS_EMAILS": OPS,
                "CC_INTAKE_DIGEST_AT": "09:00 UTC",
                "AIRFLOW_CONN_SMTP_DEFAULT": _smtp_conn(sink),
            }
        )
        stack.migrate()
        proc = _digest_run(stack, D.AT, "digest-1")
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

        (msg,) = _messages(sink.folder)
        page = data / "digests" / f"{D.DAY}.html"
        assert page.is_file()
        assert msg["X-Envelope-To"] == "ops@example.com, chef.programme@example.com"
        assert msg["From"] == SENDER
        assert str(msg["Subject"]).startswith("[intake] synthèse du 25/11/2026 : 1 vert, 1 orange")
        assert msg.get_content_type() == "multipart/alternative"
        parts = [p.get_content_type() for p in msg.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        text_part = msg.get_body(preferencelist=("plain",))
        html_part = msg.get_body(preferencelist=("html",))
        assert text_part is not None and html_part is not None
        # As sent: CRLF line ends (RFC 5322).
        text = text_part.get_content().replace("\r\n", "\n")
        html = html_part.get_content().replace("\r\n", "\n")

        # The HTML part is the page kept under digests/, every provider in its row.
        assert html.strip() == page.read_text(encoding="utf-8").strip()
        for pid, status in D.EXPECTED_STATUS.items():
            assert f'data-provider="{pid}" data-status="{status}"' in html
        base = stack.base_url
        assert f"{base}/cc-intake/quality/{D.GREEN}/{D.DAY}/recordings.html" in html
        assert f'href="{base}/cc-intake/"' in html
        assert "<script" not in html and D.PHONE not in html and D.PHONE not in text

        green = text.split(f"({D.GREEN})", 1)[1].split("\n\n", 1)[0]
        assert "VERT" in green and "Appels entrants : 12 reçus / 12 attendus" in green
        assert "Liste d'écoute : 6 éléments" in green
        running = text.split(f"({D.RUNNING})", 1)[1].split("\n\n", 1)[0]
        assert "EN COURS (VERDICT PRÉCÉDENT : VERT)" in running  # running, not red
        broken = text.split(f"({D.BROKEN})", 1)[1].split("\n\n", 1)[0]
        assert "CONFIGURATION INVALIDE" in broken and "filename_pattern" in broken
        assert "RÉSUMÉ ILLISIBLE" in text.split(f"({D.UNREADABLE})", 1)[1].split("\n\n", 1)[0]
        assert "EN ATTENTE" in text.split(f"({D.WAITING})", 1)[1].split("\n\n", 1)[0]

        # No operations list: the page is still written, the log says so at ERROR.
        del stack.env["CC_INTAKE_OPS_EMAILS"]
        page.unlink()
        proc = _digest_run(stack, D.AT + dt.timedelta(minutes=1), "digest-2")
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        assert page.is_file() and len(_messages(sink.folder)) == 1
        (line,) = [x for x in (proc.stdout + proc.stderr).splitlines() if "NOT sent" in x]
        assert "[error" in line and "no operations list (CC_INTAKE_OPS_EMAILS" in line
        assert str(page) in line

    # The SMTP server is down: the digest waits in the alerts' outbox, like an alert.
    stack.env["CC_INTAKE_OPS_EMAILS"] = OPS
    proc = _digest_run(stack, D.AT + dt.timedelta(minutes=2), "digest-3")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    (kept,) = sorted((data / "alerts" / "undelivered").glob("*.eml"))
    assert "cc_intake_digest" in kept.name and str(D.DAY) in kept.name
    queued = email.message_from_bytes(kept.read_bytes(), policy=email.policy.default)
    assert str(queued["Subject"]).startswith("[intake] synthèse du 25/11/2026")
