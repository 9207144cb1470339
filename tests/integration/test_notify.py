"""The failure notifier and the deadline callback really send mail, to a real SMTP sink.

The Airflow contexts are built here with the shapes Airflow 3.3.2 passes: the task runner's
(``ti``, ``dag_run`` as the Task SDK ``DagRun`` model, ``exception``, ``params``) and the
deadline's (``{"dag_run": DAGRunResponse as JSON, "deadline": {...}}``, see docs/alerts.md). The
e2e test proves the same under the real scheduler and triggerer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import html
import json
import re
import socket
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiosmtpd.controller import Controller
from airflow.utils.state import DagRunState

from include.cc_intake import errors
from include.cc_intake.airflow import deadline, delivery, notify
from include.cc_intake.config import parse_provider
from include.cc_intake.days import processed_day

pytestmark = pytest.mark.integration

BASE_URL = "https://airflow.example.com"
UTC = dt.UTC
RUN_ID = "scheduled__2026-11-26T02:30:00+00:00"
RUN_LINK = f"{BASE_URL}/dags/ingest_acme_abidjan/runs/scheduled__2026-11-26T02%3A30%3A00%2B00%3A00"
PROVIDER = {
    "id": "acme_abidjan",
    "name": "ACME Abidjan",
    "timezone": "Africa/Abidjan",
    "schedule": "30 2 * * *",
    "deadline": "07:00",
    "alert_emails": ["ops@example.com", "qualite@example.com"],
    "recordings": {
        "sftp_conn_id": "sftp_acme",
        "directions": {
            "ENTRANTS": "/exports/inbound/{date:%Y%m%d}",
            "SORTANTS": "/exports/outbound/{date:%Y%m%d}",
        },
        "filename_pattern": r"^(?P<date>\d{8})_(?P<agent>[^_]+)_(?P<call_id>[^_.]+)\.wav$",
    },
    "daily_report": {
        "path": "/exports/reports/calls_{date:%Y%m%d}.csv",
        "direction_column": "direction",
        "count_column": "calls",
        "direction_values": {"ENTRANTS": ["IN"], "SORTANTS": ["OUT"]},
    },
}


class _Sink:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(env.original_content, policy=email.policy.default)
            for env in self.envelopes
        ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sink(monkeypatch):
    handler = _Sink()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    # disable_ssl/disable_tls: the sink speaks plain SMTP (SmtpHook defaults to implicit TLS).
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {
                    "disable_ssl": True,
                    "disable_tls": True,
                    "from_email": "intake@example.com",
                    "retry_limit": 0,
                },
            }
        ),
    )
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE_URL + "/")
    yield handler
    controller.stop()


@pytest.fixture
def cfg():
    return parse_provider(PROVIDER, source=Path("acme_abidjan.yaml"))


def _task_context(
    *,
    task_id: str,
    exception: object,
    run_type: str = "scheduled",
    conf: dict[str, Any] | None = None,
    try_number: int = 3,
    logical_date: dt.datetime | None = dt.datetime(2026, 11, 26, 2, 30, tzinfo=UTC),
) -> dict[str, Any]:
    """What the Task SDK's runner hands to ``on_failure_callback`` (the fields we read)."""
    from airflow.sdk.api.datamodels._generated import DagRun, DagRunState, DagRunType

    run_id = RUN_ID if run_type == "scheduled" else "manual__2026-11-30T09:12:00+00:00"
    dag_run = DagRun(
        dag_id="ingest_acme_abidjan",
        run_id=run_id,
        logical_date=logical_date,
        data_interval_start=logical_date,
        data_interval_end=logical_date,
        run_after=logical_date or dt.datetime(2026, 11, 30, 9, 12, tzinfo=UTC),
        start_date=dt.datetime(2026, 11, 26, 2, 30, 5, tzinfo=UTC),
        end_date=None,
        run_type=DagRunType(run_type),
        state=DagRunState.RUNNING,
        conf=conf or {},
        consumed_asset_events=[],
        partition_key=None,
    )
    ti = SimpleNamespace(
        task_id=task_id,
        dag_id="ingest_acme_abidjan",
        run_id=run_id,
        try_number=try_number,
        map_index=-1,
    )
    return {
        "ti": ti,
        "task_instance": ti,
        "dag_run": dag_run,
        "run_id": run_id,
        "exception": exception,
        "params": {},
    }


def _deadline_context(*, run_type: str = "scheduled", state: str = "running") -> dict[str, Any]:
    """What ``Deadline.handle_miss`` attaches as ``context`` (DAGRunResponse in JSON mode)."""
    return {
        "dag_run": {
            "dag_run_id": RUN_ID,
            "dag_id": "ingest_acme_abidjan",
            "logical_date": "2026-11-26T02:30:00Z",
            "queued_at": "2026-11-26T02:30:01.123456Z",
            "start_date": "2026-11-26T02:30:02.000000Z",
            "end_date": None,
            "duration": None,
            "data_interval_start": "2026-11-26T02:30:00Z",
            "data_interval_end": "2026-11-26T02:30:00Z",
            "run_after": "2026-11-26T02:30:00Z",
            "last_scheduling_decision": "2026-11-26T07:00:03Z",
            "run_type": run_type,
            "state": state,
            "triggered_by": "timetable",
            "triggering_user_name": None,
            "conf": {},
            "note": None,
            "dag_versions": [],
            "bundle_version": None,
            "dag_display_name": "ingest_acme_abidjan",
            "partition_key": None,
            "partition_date": None,
        },
        "deadline": {
            "id": str(uuid.uuid4()),
            "deadline_time": dt.datetime(2026, 11, 26, 7, 0, tzinfo=UTC),
        },
    }


def _parts(message: email.message.EmailMessage) -> tuple[str, str]:
    """The text and HTML parts of an alert, checking it is ``multipart/alternative`` of both."""
    assert message.get_content_type() == "multipart/alternative", message.get_content_type()
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    return parts[0].get_content(), parts[1].get_content()


def _html(message: email.message.EmailMessage) -> str:
    """The HTML part of an alert (every alert has a text part too: :func:`_parts`)."""
    return _parts(message)[1]


def test_failure_notifier_sends_the_reconciliation_email_with_counts_and_proof(
    sink, cfg, tmp_path, monkeypatch
):
    quality = tmp_path / "quality" / "acme_abidjan" / "2026-11-25"
    quality.mkdir(parents=True)
    (quality / "recordings.html").write_text("<html></html>", encoding="utf-8")
    (quality / "summary.json").write_text(
        json.dumps(
            {
                "provider": "acme_abidjan",
                "day": "2026-11-25",
                "status": "red",
                "recordings": {
                    "ENTRANTS": {"expected": 120, "got": 118},
                    "SORTANTS": {"expected": 40, "got": 40},
                },
                "digital": None,
                "rejected": 1,
                "updated_at": "2026-11-26T04:00:00Z",
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("CC_INTAKE_DATA_ROOT", str(tmp_path))
    error = errors.ReconciliationError(
        "acme_abidjan 2026-11-25: ENTRANTS has 118 recordings, the report says 120; "
        "missing call from +225 07 12 34 56 78"
    )
    notifier = notify.IntakeFailureNotifier.for_provider(cfg)

    # Called the way the task runner calls a notifier: notifier(context).
    notifier(_task_context(task_id="reconcile_recordings", exception=error))

    (message,) = sink.messages()
    assert sink.envelopes[0].mail_from == "intake@example.com"
    assert sink.envelopes[0].rcpt_tos == ["ops@example.com", "qualite@example.com"]
    assert message["Subject"] == (
        "[intake][acme_abidjan][2026-11-25] écart entre enregistrements et rapport"
    )
    body = _html(message)
    assert "ENTRANTS : attendu 120, reçu 118 (écart -2)" in body
    assert "SORTANTS : attendu 40, reçu 40 (écart +0)" in body
    assert "/cc-intake/quality/acme_abidjan/2026-11-25/recordings.html" in body
    assert f'<a href="{RUN_LINK}">' in body
    assert f'<a href="{RUN_LINK}/tasks/reconcile_recordings">' in body
    assert "reconcile_recordings (tentative 3)" in body
    assert "+225 ******78" in body
    assert "07 12 34 56 78" not in body


def test_failure_notifier_uses_target_date_for_a_manual_rerun(sink, cfg):
    error = errors.RecordingsNotReady(
        "acme_abidjan 2026-11-20: SORTANTS /exports/outbound/20261120 has no ready file after 4h"
    )
    context = _task_context(
        task_id="wait_for_recordings",
        exception=error,
        run_type="manual",
        conf={"target_date": "2026-11-20"},
        try_number=1,
    )

    notify.IntakeFailureNotifier.for_provider(cfg)(context)

    (message,) = sink.messages()
    assert (
        message["Subject"] == "[intake][acme_abidjan][2026-11-20] enregistrements non disponibles"
    )
    body = _html(message)
    assert "/dags/ingest_acme_abidjan/runs/manual__2026-11-30T09%3A12%3A00%2B00%3A00" in body
    assert "no ready file after 4h" in body


def test_failure_notifier_falls_back_to_the_generic_email(sink, cfg):
    context = _task_context(task_id="publish_summary", exception=RuntimeError("disk full"))

    notify.IntakeFailureNotifier.for_provider(cfg)(context)

    (message,) = sink.messages()
    assert message["Subject"] == (
        "[intake][acme_abidjan][2026-11-25] échec d'une tâche (publish_summary)"
    )
    assert "RuntimeError: disk full" in _html(message)


def _smtp_env(monkeypatch, port: int) -> None:
    """``smtp_default`` pointing at ``port`` on loopback (closed: the SMTP server is down)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {
                    "disable_ssl": True,
                    "disable_tls": True,
                    "from_email": "intake@example.com",
                    "retry_limit": 0,
                },
            }
        ),
    )


def _tries(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == delivery.__name__ and "alert e-mail not sent (try" in r.getMessage()
    ]


def test_failure_notifier_raises_when_it_can_neither_send_nor_keep_the_email(
    cfg, monkeypatch, tmp_path
):
    _smtp_env(monkeypatch, _free_port())
    monkeypatch.setattr(delivery, "SEND_BACKOFF_S", 0.01)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("CC_INTAKE_DATA_ROOT", str(blocker))  # the outbox cannot be created
    notifier = notify.IntakeFailureNotifier.for_provider(cfg)

    with pytest.raises(OSError):
        notifier(_task_context(task_id="copy_recordings", exception=errors.TransferError("x")))


def test_item14_alert_kept_when_smtp_is_down_then_sent_by_the_next_notifier(
    cfg, monkeypatch, tmp_path, caplog
):
    from include.cc_intake import alerts_outbox, overview

    caplog.set_level("INFO", logger=delivery.__name__)
    port = _free_port()
    _smtp_env(monkeypatch, port)  # nothing listens there: the SMTP server is down
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE_URL)
    monkeypatch.setenv("CC_INTAKE_DATA_ROOT", str(tmp_path))
    notifier = notify.IntakeFailureNotifier.for_provider(cfg)
    lost = errors.ReconciliationError("acme_abidjan 2026-11-25: ENTRANTS has 118, report says 120")

    started = time.monotonic()
    notifier(_task_context(task_id="validate_recordings", exception=lost))  # does not raise
    waited = time.monotonic() - started

    # Three tries, with back-off between them (2 s then 4 s).
    assert len(_tries(caplog)) == 3
    assert waited >= 6
    (kept,) = alerts_outbox.pending(tmp_path)
    assert kept.parent == tmp_path / "alerts" / "undelivered"
    assert kept.name.endswith("_ingest_acme_abidjan_2026-11-25.eml")
    assert kept.stat().st_mode & 0o777 == 0o640
    assert kept.parent.stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "alerts").stat().st_mode & 0o777 == 0o750
    errors_logged = [r for r in caplog.records if r.levelname == "ERROR"]
    assert any(str(kept) in r.getMessage() for r in errors_logged)
    # A real RFC 5322 message: an operator can open it or send it by hand.
    raw = kept.read_bytes()
    assert b"\r\n" in raw
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == (
        "[intake][acme_abidjan][2026-11-25] écart entre enregistrements et rapport"
    )
    assert [a.addr_spec for a in message["To"].addresses] == cfg.alert_emails
    assert message["From"].addresses[0].addr_spec == "intake@example.com"
    assert message["Date"].datetime is not None
    assert "ENTRANTS has 118" in _html(message)
    # The overview shows it until it is sent.
    page = overview.render_overview(
        overview.build_overview(
            tmp_path,
            end_day=dt.date(2026, 11, 25),
            undelivered=alerts_outbox.count_pending(tmp_path),
        )
    )
    assert "1 alerte non envoyée" in page

    # A second alert while still down waits beside the first.
    notifier(_task_context(task_id="copy_recordings", exception=errors.TransferError("lost")))
    assert len(alerts_outbox.pending(tmp_path)) == 2
    page = overview.render_overview(
        overview.build_overview(
            tmp_path,
            end_day=dt.date(2026, 11, 25),
            undelivered=alerts_outbox.count_pending(tmp_path),
        )
    )
    assert "2 alertes non envoyées" in page

    # The server comes back: the next notifier run sends the waiting alerts, oldest first,
    # then its own, and the outbox is empty.
    handler = _Sink()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        notifier(_task_context(task_id="fetch_report", exception=errors.ReportError("absent")))
    finally:
        controller.stop()
    subjects = [m["Subject"] for m in handler.messages()]
    assert subjects == [
        "[intake][acme_abidjan][2026-11-25] écart entre enregistrements et rapport",
        "[intake][acme_abidjan][2026-11-25] échec de la copie des enregistrements",
        "[intake][acme_abidjan][2026-11-25] rapport de fin de journée absent ou illisible",
    ]
    assert all(env.rcpt_tos == cfg.alert_emails for env in handler.envelopes)
    assert "ENTRANTS has 118" in _html(handler.messages()[0])
    assert alerts_outbox.pending(tmp_path) == []
    page = overview.render_overview(
        overview.build_overview(
            tmp_path,
            end_day=dt.date(2026, 11, 25),
            undelivered=alerts_outbox.count_pending(tmp_path),
        )
    )
    assert "non envoyée" not in page


class _PickySink(_Sink):
    """A sink that refuses one address, as a real server refuses an unknown mailbox."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("gone@"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_item14_a_waiting_alert_the_server_refuses_stays_and_does_not_block_the_others(
    cfg, monkeypatch, tmp_path, caplog
):
    from include.cc_intake import alerts_outbox

    port = _free_port()
    _smtp_env(monkeypatch, port)
    monkeypatch.setenv("CC_INTAKE_DATA_ROOT", str(tmp_path))
    at = dt.datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    refused, good = (
        alerts_outbox.write_undelivered(
            tmp_path,
            to=[to],
            subject=f"[intake][acme_abidjan][2026-11-25] alerte {n}",
            body_html=f"<p>{n}</p>",
            sender="intake@example.com",
            dag_id="ingest_acme_abidjan",
            day="2026-11-25",
            at=at + dt.timedelta(seconds=n),
        )
        for n, to in enumerate(["gone@example.com", "ops@example.com"])
    )
    handler = _PickySink()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        notify.IntakeFailureNotifier.for_provider(cfg)(
            _task_context(task_id="fetch_report", exception=errors.ReportError("absent"))
        )
    finally:
        controller.stop()

    assert [m["Subject"] for m in handler.messages()] == [
        "[intake][acme_abidjan][2026-11-25] alerte 1",
        "[intake][acme_abidjan][2026-11-25] rapport de fin de journée absent ou illisible",
    ]
    assert alerts_outbox.pending(tmp_path) == [refused] and not good.exists()
    assert any(r.levelname == "ERROR" and refused.name in r.getMessage() for r in caplog.records)


def test_item14_deadline_alert_kept_when_smtp_is_down_then_sent(cfg, monkeypatch, tmp_path):
    from include.cc_intake import alerts_outbox

    port = _free_port()
    _smtp_env(monkeypatch, port)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE_URL)
    monkeypatch.setenv("CC_INTAKE_DATA_ROOT", str(tmp_path))
    kwargs = deadline.deadline_callback_kwargs(cfg)

    outcome = asyncio.run(deadline.deadline_missed_callback(**kwargs, context=_deadline_context()))

    (kept,) = alerts_outbox.pending(tmp_path)
    assert outcome == f"undelivered: kept in {kept}"
    assert kept.stat().st_mode & 0o777 == 0o640
    assert alerts_outbox.parse_eml(kept.read_bytes()).subject == (
        "[intake][acme_abidjan][2026-11-25] délai de livraison dépassé"
    )

    handler = _Sink()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        outcome = asyncio.run(
            deadline.deadline_missed_callback(**kwargs, context=_deadline_context())
        )
    finally:
        controller.stop()
    assert outcome.startswith("sent: ")
    assert [m["Subject"] for m in handler.messages()] == [
        "[intake][acme_abidjan][2026-11-25] délai de livraison dépassé"
    ] * 2
    assert alerts_outbox.pending(tmp_path) == []


def test_deadline_callback_sends_for_a_late_scheduled_run(sink, cfg):
    alert = deadline.build_deadline_alert(cfg)
    assert alert is not None

    outcome = asyncio.run(
        deadline.deadline_missed_callback(**alert.callback.kwargs, context=_deadline_context())
    )

    (message,) = sink.messages()
    assert outcome == f"sent: {message['Subject']}"
    assert message["Subject"] == "[intake][acme_abidjan][2026-11-25] délai de livraison dépassé"
    assert sink.envelopes[0].rcpt_tos == ["ops@example.com", "qualite@example.com"]
    body = _html(message)
    assert f'<a href="{RUN_LINK}">' in body
    assert "07:00, heure de Africa/Abidjan" in body
    assert "toujours en cours" in body
    assert "ne concerne que les exécutions planifiées" in body


@pytest.mark.parametrize(
    ("run_type", "state", "outcome"),
    [
        ("manual", "running", "skipped: run type manual"),
        ("backfill", "running", "skipped: run type backfill"),
        ("scheduled", "failed", "skipped: run failed"),
        ("scheduled", "success", "skipped: run success"),
        ("scheduled", DagRunState.FAILED, "skipped: run failed"),
    ],
)
def test_deadline_callback_skips_reruns_backfills_and_finished_runs(
    sink, cfg, run_type, state, outcome
):
    kwargs = deadline.deadline_callback_kwargs(cfg)
    context = _deadline_context(run_type=run_type, state=state)

    assert asyncio.run(deadline.deadline_missed_callback(**kwargs, context=context)) == outcome
    assert sink.messages() == []


def test_deadline_callback_runs_through_airflows_callback_trigger(sink, cfg):
    """Import by path, kwargs and context as the triggerer's CallbackTrigger passes them,
    after the encrypted round trip that trigger kwargs make through the database."""
    from airflow.models.trigger import Trigger
    from airflow.triggers.callback import CallbackTrigger

    alert = deadline.build_deadline_alert(cfg)
    assert alert is not None
    stored = {**alert.callback.kwargs, "context": _deadline_context()}
    kwargs = Trigger._decrypt_kwargs(Trigger.encrypt_kwargs(stored))
    trigger = CallbackTrigger(callback_path=alert.callback.path, callback_kwargs=kwargs)

    async def events():
        return [event.payload async for event in trigger.run()]

    payloads = asyncio.run(events())

    assert [p["state"] for p in payloads] == ["running", "success"]
    assert payloads[-1]["body"].startswith("sent: [intake][acme_abidjan][2026-11-25]")
    assert len(sink.messages()) == 1


def test_build_deadline_alert_is_off_on_request(cfg, monkeypatch):
    monkeypatch.setenv("CC_INTAKE_DEADLINES", "off")

    assert deadline.build_deadline_alert(cfg) is None


def test_build_deadline_alert_points_at_the_delivery_deadline(cfg, monkeypatch):
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineReference

    monkeypatch.delenv("CC_INTAKE_DEADLINES", raising=False)
    alert = deadline.build_deadline_alert(cfg)

    assert alert is not None
    assert alert.reference == DeadlineReference.DAGRUN_LOGICAL_DATE
    assert alert.interval == dt.timedelta(hours=4, minutes=30)  # 02:30 → 07:00
    assert isinstance(alert.callback, AsyncCallback)
    assert alert.callback.path == "include.cc_intake.airflow.deadline.deadline_missed_callback"
    assert json.loads(json.dumps(alert.callback.kwargs)) == {
        "provider_id": "acme_abidjan",
        "provider_name": "ACME Abidjan",
        "timezone": "Africa/Abidjan",
        "deadline": "07:00",
        "alert_emails": ["ops@example.com", "qualite@example.com"],
        "smtp_conn_id": "smtp_default",
    }


@pytest.mark.parametrize(
    ("exception", "kind"),
    [
        (errors.RecordingsNotReady("x"), "not_ready"),
        (errors.TransferError("x"), "copy"),
        (errors.HostKeyError("x"), "host_key"),
        (errors.UnsafePathError("x"), "copy"),
        (errors.ReportError("x"), "report"),
        (errors.ManifestError("x"), "manifest"),
        (errors.ReconciliationError("x"), "reconciliation"),
        (errors.ValidationError("x"), "validation"),
        (errors.ExportError("x"), "export"),
        (errors.ConfigError("x"), "config"),
        (errors.RemoteError("x"), "copy"),
        # The type alone chooses (issue #14): a generic error, a timeout or anything that is
        # not ours is never dressed up as a known problem because of the step's name.
        (errors.IntakeError("x"), "task"),
        (errors.StorageError("x"), "task"),
        (TimeoutError("execution_timeout"), "task"),
        ("Task killed: heartbeat timeout", "task"),
        (RuntimeError("x"), "task"),
        (None, "task"),
    ],
)
def test_classify_failure(exception, kind):
    assert notify.classify_failure(exception) == kind


def test_day_of_run():
    at = dt.datetime(2026, 11, 26, 2, 30, tzinfo=UTC)
    late = "2026-11-26T23:30:00-05:00"  # already the 27th in Abidjan (UTC+0)

    assert notify.day_of_run(tz="Africa/Abidjan", logical_date=at, run_after=None, conf=None) == (
        dt.date(2026, 11, 25)
    )
    assert notify.day_of_run(
        tz="Africa/Abidjan", logical_date=None, run_after=late, conf=None
    ) == dt.date(2026, 11, 26)
    assert notify.day_of_run(
        tz="Africa/Abidjan", logical_date=at, run_after=at, conf={"target_date": "2026-11-02"}
    ) == dt.date(2026, 11, 2)
    assert (
        notify.day_of_run(
            tz="Africa/Abidjan", logical_date=at, run_after=at, conf={"target_date": "hier"}
        )
        == "hier"
    )


def test_item15_config_error_mail_for_a_crlf_target_date_is_well_formed(sink, cfg):
    hostile = "2026-11-25\r\nBcc: intrus@example.com"
    with pytest.raises(errors.ConfigError) as raised:  # what the task raised for this run
        processed_day(tz=cfg.timezone, logical_date=None, conf={"target_date": hostile})
    context = _task_context(
        task_id="wait_for_recordings",
        exception=raised.value,
        run_type="manual",
        conf={"target_date": hostile},
        try_number=1,
    )

    notify.IntakeFailureNotifier.for_provider(cfg)(context)

    (message,) = sink.messages()
    assert sink.envelopes[0].rcpt_tos == ["ops@example.com", "qualite@example.com"]
    assert message.defects == [] and message["Bcc"] is None
    assert message["Subject"] == (
        "[intake][acme_abidjan][2026-11-25 Bcc: intrus@example.com] "
        "configuration du prestataire invalide"
    )
    raw = sink.envelopes[0].original_content
    headers = raw.split(b"\r\n\r\n", 1)[0].decode()
    assert [line for line in headers.splitlines() if line.lower().startswith("bcc")] == []
    assert "is not a day: expected YYYY-MM-DD" in _html(message)


def test_item18_failure_mail_of_a_host_key_error_says_no_retry(sink, cfg):
    error = errors.HostKeyError(
        "acme_abidjan 2026-11-25: the SFTP server of connection 'sftp_acme' presented a host "
        "key that is not trusted"
    )
    notify.IntakeFailureNotifier.for_provider(cfg)(
        _task_context(task_id="wait_for_recordings", exception=error, try_number=1)
    )

    (message,) = sink.messages()
    assert message["Subject"] == "[intake][acme_abidjan][2026-11-25] clé d'hôte SSH refusée"
    body = _html(message)
    assert "Aucune nouvelle tentative automatique" in body
    assert "wait_for_recordings (tentative 1)" in body


@pytest.mark.parametrize(
    ("exception", "final"),
    [
        (errors.HostKeyError("x"), True),
        (errors.ConfigError("x"), True),
        (errors.UnsafePathError("x"), True),
        (errors.TransferError("x"), False),
        (errors.RemoteError("x"), False),
        (RuntimeError("x"), False),
    ],
)
def test_item18_retry_policy_fails_at_once_only_what_a_retry_cannot_fix(exception, final):
    from airflow.sdk import RetryAction

    from include.cc_intake.airflow.tasks import NoRetryWhenRetryCannotHelp

    decision = NoRetryWhenRetryCannotHelp().evaluate(exception, try_number=1, max_tries=3)
    assert (decision.action is RetryAction.FAIL) is final
    email = notify.failure_email(
        provider_id="acme_abidjan",
        provider_name="ACME Abidjan",
        timezone="Africa/Abidjan",
        context=_task_context(task_id="copy_recordings", exception=exception, try_number=1),
    )
    assert ("Aucune nouvelle tentative automatique" in email.body_text) is final


def _words(markup: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def test_item14_every_alert_goes_out_as_text_and_html_on_every_path(cfg, monkeypatch, tmp_path):
    """Issue #14, defect 3: the text part was built and never sent. Through the notifier the
    factory attaches (sync), the deadline callback (async, triggerer) and the outbox resend,
    the sink receives multipart/alternative, text then HTML, and both say the same."""
    from include.cc_intake import alerts_outbox
    from include.cc_intake.airflow import factory

    port = _free_port()
    _smtp_env(monkeypatch, port)  # down at first: the first alert is kept in the outbox
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE_URL)
    monkeypatch.setenv("CC_INTAKE_DATA_ROOT", str(tmp_path))
    monkeypatch.setattr(delivery, "SEND_BACKOFF_S", 0.01)
    (notifier,) = cast(list[Any], factory.default_args(cfg)["on_failure_callback"])
    error = errors.TransferError("copy of /exports/inbound/20261125/20261125_1_AG1_0712345678.wav")
    notifier(_task_context(task_id="copy_recordings", exception=error))
    (kept,) = alerts_outbox.pending(tmp_path)
    assert alerts_outbox.parse_eml(kept.read_bytes()).body_text  # kept with its text part

    handler = _Sink()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        notifier(_task_context(task_id="fetch_report", exception=errors.ReportError("absent")))
        asyncio.run(
            deadline.deadline_missed_callback(
                **deadline.deadline_callback_kwargs(cfg), context=_deadline_context()
            )
        )
    finally:
        controller.stop()

    received = handler.messages()
    assert [m["Subject"].rsplit("] ", 1)[1] for m in received] == [
        "échec de la copie des enregistrements",  # the kept one, resent first
        "rapport de fin de journée absent ou illisible",
        "délai de livraison dépassé",
    ]
    for message in received:
        text, page = _parts(message)
        assert text.startswith(message["Subject"])
        assert "Que faire :" in text and "Que faire" in page
        assert RUN_LINK in text and f'<a href="{RUN_LINK}">' in page
        assert "Message automatique de cc-intake" in text
        # The same facts in both parts, phones masked in both.
        for line in ("Prestataire", "ACME Abidjan (acme_abidjan)", "2026-11-25 (mercredi"):
            assert line in text and line in _words(page)
        assert "0712345678" not in text + page
    assert "20261125_1_AG1_******78.wav" in _parts(received[0])[0]
    assert alerts_outbox.pending(tmp_path) == []
