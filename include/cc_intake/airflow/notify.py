"""The failure e-mail of a provider's DAG: which e-mail a failed task gets, and its notifier.

The texts live in :mod:`include.cc_intake.messages`; this module only reads the Airflow context
(task instance, run, exception), works out the processed day and the links, picks the e-mail by
the exception's type and hands it to :mod:`.delivery` (SMTP with retries, the outbox).

``IntakeFailureNotifier.for_provider(cfg)`` is the tasks' ``on_failure_callback`` (the DAG
factory). It runs in the task's own process after the last try (or in the DAG processor when a
task is killed). The delivery-deadline alert is :mod:`.deadline`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from include.cc_intake import errors, messages

# Deadlines of runs created before the alert modules were split store the callback under this
# path, and the triggerer imports it by that path when the deadline passes: keep it resolvable.
from include.cc_intake.airflow.deadline import deadline_missed_callback  # noqa: F401
from include.cc_intake.airflow.delivery import DEFAULT_SMTP_CONN_ID, adeliver, deliver, error_text
from include.cc_intake.airflow.links import base_url, proof_url, run_link, task_link
from include.cc_intake.airflow.runs import day_of_run
from include.cc_intake.airflow.runtime_settings import ops_emails
from include.cc_intake.constants import dag_id_of
from include.cc_intake.handshake import HandshakeError
from include.cc_intake.layout import data_root
from include.cc_intake.retention import PurgedDayError

if TYPE_CHECKING:
    from include.cc_intake.config import ProviderConfig

log = logging.getLogger(__name__)

# The e-mail of a failure is chosen by the exception's type alone, most specific first
# (HostKeyError and TransferError are RemoteErrors). Any other exception, ours but generic or
# not ours (a timeout, a bug, an outage we did not foresee), gets the generic e-mail, which says
# so rather than guess from the step's name.
_KIND_BY_ERROR: tuple[tuple[type[BaseException], str], ...] = (
    (errors.ConfigError, "config"),
    (errors.RecordingsNotReady, "not_ready"),
    (errors.CertificateError, "certificate"),
    (errors.HostKeyError, "host_key"),
    (errors.TransferError, "copy"),
    (errors.UnsafePathError, "copy"),
    (errors.RemoteError, "copy"),  # no SFTP session: the copy e-mail's checks are the ones
    (errors.ReportError, "report"),
    (errors.ManifestError, "manifest"),
    (errors.ReconciliationError, "reconciliation"),
    (errors.ValidationError, "validation"),
    (errors.ExportError, "export"),
    (HandshakeError, "handshake"),
    (PurgedDayError, "purged"),
)


def proof_facts(provider_id: str, day: dt.date | str) -> tuple[dict[str, Any], str | None]:
    """Expected-vs-got counts from the day's ``summary.json`` and the path of its proof page."""
    if not isinstance(day, dt.date):  # an invalid target_date names no folder
        return {}, None
    folder = data_root() / "quality" / provider_id / day.isoformat()
    details: dict[str, Any] = {}
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = None
    if isinstance(summary, dict):
        if isinstance(summary.get("recordings"), dict):
            details["recordings"] = summary["recordings"]
        if isinstance(summary.get("digital"), dict):
            details["digital"] = summary["digital"]
        if summary.get("rejected"):
            details["rejected"] = summary["rejected"]
    # Served by the overview plugin behind the Airflow login (plugins/overview.py).
    existing = [
        proof_url(provider_id, day, name)
        for name in ("recordings.html", "digital.html")
        if (folder / name).is_file()
    ]
    return details, (" ; ".join(existing) or None)


# --------------------------------------------------------------------------- failure e-mails


def classify_failure(exception: object) -> str:
    """Which e-mail a failure gets: by the exception's type, else the generic one."""
    for kind_type, kind in _KIND_BY_ERROR:
        if isinstance(exception, kind_type):
            return kind
    return "task"


def failure_email(
    *,
    provider_id: str,
    provider_name: str,
    timezone: str,
    context: Mapping[str, Any],
) -> messages.Email:
    """Build the e-mail for a failed task from its Airflow context (ti, dag_run, exception)."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    task_id = str(getattr(ti, "task_id", None) or "?")
    try_number = getattr(ti, "try_number", None)
    dag_id = str(
        getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None) or dag_id_of(provider_id)
    )
    run_id = str(
        getattr(dag_run, "run_id", None) or context.get("run_id") or getattr(ti, "run_id", "")
    )
    day = day_of_run(
        tz=timezone,
        logical_date=getattr(dag_run, "logical_date", None),
        run_after=getattr(dag_run, "run_after", None),
        conf=getattr(dag_run, "conf", None),
        params=context.get("params"),
    )
    exception = context.get("exception")
    kind = classify_failure(exception)
    # The facts the raise site set (errors.IntakeError.details); nothing for a foreign error.
    raw = exception.details if isinstance(exception, errors.IntakeError) else None
    details: dict[str, Any] = dict(raw or {})
    proof = None
    if kind in ("reconciliation", "validation"):
        found, proof = proof_facts(provider_id, day)
        for key, value in found.items():
            details.setdefault(key, value)
    base = base_url()
    failure = messages.Failure(
        provider_id=provider_id,
        provider_name=provider_name,
        day=day,
        run_link=run_link(dag_id, run_id, base=base),
        task_id=task_id,
        error=error_text(exception),
        try_number=try_number if isinstance(try_number, int) else None,
        details=details,
        task_link=task_link(dag_id, run_id, task_id, base=base),
        proof_link=proof,
        # The tasks' retry policy failed it at once (tasks.NoRetryWhenRetryCannotHelp).
        no_retry=isinstance(exception, errors.IntakeError) and not exception.retryable,
    )
    if kind == "host_key":
        return messages.copy_failed(failure, host_key=True)
    if kind == "certificate":
        return messages.copy_failed(failure, certificate=True)
    return messages.FAILURE_BUILDERS[kind](failure)


def _dag_and_day(
    context: Mapping[str, Any], *, provider_id: str, timezone: str
) -> tuple[str, dt.date | str]:
    """The failed run's DAG id and processed day (names the kept ``.eml`` if SMTP is down)."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    dag_id = str(
        getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None) or dag_id_of(provider_id)
    )
    day = day_of_run(
        tz=timezone,
        logical_date=getattr(dag_run, "logical_date", None),
        run_after=getattr(dag_run, "run_after", None),
        conf=getattr(dag_run, "conf", None),
        params=context.get("params"),
    )
    return dag_id, day


class IntakeFailureNotifier(SmtpNotifier):
    """E-mails ``alert_emails`` when a task of a provider's DAG fails for good.

    Subject and body come from :mod:`include.cc_intake.messages`, chosen by the exception's
    type, with the facts it carries; nothing is rendered with Jinja, so an error text can never be
    interpreted as a template.

    :param provider_id: the provider's id (the DAG is ``ingest_<id>``).
    :param provider_name: the provider's display name.
    :param timezone: the provider's zone, in which the processed day is computed.
    :param alert_emails: recipients.
    :param smtp_conn_id: the SMTP connection (default ``smtp_default``).
    :param from_email: sender; default the connection's ``from_email`` extra.
    """

    template_fields = ()  # type: ignore[assignment]  # our texts are never Jinja templates

    def __init__(
        self,
        *,
        provider_id: str,
        provider_name: str,
        timezone: str,
        alert_emails: Iterable[str],
        smtp_conn_id: str | None = None,
        from_email: str | None = None,
    ) -> None:
        super().__init__(
            to=list(alert_emails),
            from_email=from_email,
            smtp_conn_id=smtp_conn_id or DEFAULT_SMTP_CONN_ID,
        )
        self.provider_id = provider_id
        self.provider_name = provider_name
        self.timezone = timezone

    @classmethod
    def for_provider(cls, cfg: ProviderConfig, **kwargs: Any) -> IntakeFailureNotifier:
        """The notifier of one provider's DAG."""
        return cls(
            provider_id=cfg.id,
            provider_name=cfg.name,
            timezone=cfg.timezone,
            alert_emails=cfg.alert_emails,
            **kwargs,
        )

    def build_email(self, context: Mapping[str, Any]) -> messages.Email:
        return failure_email(
            provider_id=self.provider_id,
            provider_name=self.provider_name,
            timezone=self.timezone,
            context=context,
        )

    def recipients(self) -> list[str]:
        """``alert_emails``; when there are none (a placeholder for an unreadable YAML), the
        operations list ``CC_INTAKE_OPS_EMAILS``, read now (run time), never at parse time."""
        return list(self.to) or ops_emails()

    def _log_no_recipients(self) -> None:
        log.error(
            "no alert_emails for %s and no operations list (CC_INTAKE_OPS_EMAILS): "
            "failure e-mail not sent",
            self.provider_id,
        )

    def notify(self, context: Any) -> None:
        recipients = self.recipients()
        if not recipients:
            self._log_no_recipients()
            return
        email = self.build_email(context)
        dag_id, day = _dag_and_day(context, provider_id=self.provider_id, timezone=self.timezone)
        kept = deliver(
            email,
            recipients,
            dag_id=dag_id,
            day=day,
            smtp_conn_id=self.smtp_conn_id,
            from_email=self.from_email,
        )
        if kept is None:
            log.info("alert sent to %d recipient(s): %s", len(recipients), email.subject)

    async def async_notify(self, context: Any) -> None:
        recipients = await asyncio.to_thread(self.recipients)
        if not recipients:
            self._log_no_recipients()
            return
        email = self.build_email(context)
        dag_id, day = _dag_and_day(context, provider_id=self.provider_id, timezone=self.timezone)
        kept = await adeliver(
            email,
            recipients,
            dag_id=dag_id,
            day=day,
            smtp_conn_id=self.smtp_conn_id,
            from_email=self.from_email,
        )
        if kept is None:
            log.info("alert sent to %d recipient(s): %s", len(recipients), email.subject)
