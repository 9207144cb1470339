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
