"""A failed purge task of the housekeeping DAG e-mails its own alert, to a real SMTP sink."""

from __future__ import annotations

import pytest

from include.cc_intake.airflow.housekeeping import RetentionFailureNotifier
from include.cc_intake.messages import SUBJECTS
from tests.integration.test_notify import (  # noqa: F401  (fixtures)
    BASE_URL,
    _task_context,
    cfg,
    sink,
)

pytestmark = pytest.mark.integration


def test_a_failed_purge_mails_the_providers_alert_emails(sink, cfg) -> None:  # noqa: F811
    context = _task_context(
        task_id="purge_acme_abidjan",
        exception=PermissionError(13, "Permission denied", "/data/recordings/acme_abidjan"),
        try_number=2,
    )
    RetentionFailureNotifier.for_provider(cfg).notify(context)

    (message,) = sink.messages()
    assert message["Subject"] == f"[intake][acme_abidjan][2026-11-26] {SUBJECTS['retention']}"
    assert sorted(message["To"].addresses, key=str)[0].addr_spec == "ops@example.com"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "« purge_acme_abidjan »" in text and "Permission denied" in text
    assert f"{BASE_URL}/dags/cc_intake_housekeeping/runs/" in text
