"""Alert e-mails from Airflow: a failure notifier for every task, and the delivery-deadline alert.

The texts live in :mod:`include.cc_intake.messages`; this layer only reads the Airflow context
(task instance, run, exception), works out the processed day and the run link, picks the e-mail
and sends it (text + HTML, ``include.cc_intake.mail``) through the ``smtp_default`` connection
with the smtp provider's hook.

Two entry points for the DAG factory:

- ``IntakeFailureNotifier.for_provider(cfg)`` as the tasks' ``on_failure_callback``. It runs in
  the task's own process after the last try (or in the DAG processor when a task is killed).
- ``build_deadline_alert(cfg)`` for the DAG's ``deadline``. Its :func:`deadline_missed_callback`
  runs in the triggerer (docs/alerts.md says what it receives and why it filters runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import smtplib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from airflow.providers.smtp.hooks.smtp import SmtpHook
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from include.cc_intake import alerts_outbox, errors, messages, redact
from include.cc_intake.airflow.links import base_url, proof_url
from include.cc_intake.airflow.runtime_settings import ops_emails
from include.cc_intake.constants import dag_id_of
from include.cc_intake.days import processed_day
from include.cc_intake.layout import FILE_MODE, data_root, make_dirs
from include.cc_intake.mail import mime_message

if TYPE_CHECKING:
    import aiosmtplib

    from include.cc_intake.config import ProviderConfig

log = logging.getLogger(__name__)

DEADLINES_ENV = "CC_INTAKE_DEADLINES"
DEFAULT_SMTP_CONN_ID = "smtp_default"
# An alert is sent up to SEND_TRIES times, SEND_BACKOFF_S seconds apart, doubling (2 s, then
# 4 s): short, since it runs in the failed task's process or in the triggerer's event loop.
SEND_TRIES = 3
SEND_BACKOFF_S = 2.0
FALLBACK_SENDER = "cc-intake@localhost"

# The e-mail of a failure is chosen by the exception's type alone, most specific first
# (HostKeyError and TransferError are RemoteErrors). Any other exception, ours but generic or
# not ours (a timeout, a bug, an outage we did not foresee), gets the generic e-mail, which says
# so rather than guess from the step's name.
_KIND_BY_ERROR: tuple[tuple[type[BaseException], str], ...] = (
    (errors.ConfigError, "config"),
    (errors.RecordingsNotReady, "not_ready"),
    (errors.HostKeyError, "host_key"),
    (errors.TransferError, "copy"),
    (errors.UnsafePathError, "copy"),
    (errors.RemoteError, "copy"),  # no SFTP session: the copy e-mail's checks are the ones
    (errors.ReportError, "report"),
    (errors.ManifestError, "manifest"),
    (errors.ReconciliationError, "reconciliation"),
    (errors.ValidationError, "validation"),
    (errors.ExportError, "export"),
)


# --------------------------------------------------------------------------- links and days


def run_link(dag_id: str, run_id: str, *, base: str | None = None) -> str:
    """The Airflow 3 UI page of one run: ``<base_url>/dags/<dag_id>/runs/<run_id>``."""
    root = (base or base_url()).rstrip("/")
    return f"{root}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def task_link(dag_id: str, run_id: str, task_id: str, *, base: str | None = None) -> str:
    """The UI page of one task of a run (its logs), as Airflow's own ``ti.log_url`` builds it."""
    return f"{run_link(dag_id, run_id, base=base)}/tasks/{quote(task_id, safe='')}"


def _as_datetime(value: object) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def day_of_run(
    *,
    tz: str,
    logical_date: object,
    run_after: object,
    conf: Mapping[str, Any] | None,
    params: Mapping[str, Any] | None = None,
) -> dt.date | str:
    """The processed day of a run, or the raw ``target_date`` / ``"inconnue"`` if it is invalid.

    An alert must still go out when the day itself is the problem (a bad ``target_date``).
    """
    merged: dict[str, Any] = {}
    if params and params.get("target_date"):
        merged["target_date"] = params["target_date"]
    if conf and conf.get("target_date"):
        merged["target_date"] = conf["target_date"]
    try:
        return processed_day(
            tz=tz,
            logical_date=_as_datetime(logical_date),
            run_after=_as_datetime(run_after),
            conf=merged,
        )
    except errors.ConfigError:
        # Shown as given, but on one line: it ends up in the subject (a mail header).
        return redact.one_line(str(merged.get("target_date") or "inconnue"))


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


def _state_name(state: object) -> str:
    """``"running"`` whether Airflow hands over a string or a state enum (``DagRunState``)."""
    return str(getattr(state, "value", state) or "")


def _error_text(exception: object) -> str:
    if exception is None:
        return ""
    if isinstance(exception, BaseException):
        text = str(exception)
        return f"{type(exception).__name__}: {text}" if text else type(exception).__name__
    return str(exception)


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
        error=_error_text(exception),
        try_number=try_number if isinstance(try_number, int) else None,
        details=details,
        task_link=task_link(dag_id, run_id, task_id, base=base),
        proof_link=proof,
        # The tasks' retry policy failed it at once (tasks.NoRetryWhenRetryCannotHelp).
        no_retry=isinstance(exception, errors.IntakeError) and not exception.retryable,
    )
    if kind == "host_key":
        return messages.copy_failed(failure, host_key=True)
    return messages.FAILURE_BUILDERS[kind](failure)


def _message(
    hook: SmtpHook, email: messages.Email, to: list[str], from_email: str | None
) -> tuple[str, bytes]:
    """The sender and the bytes to send: ``multipart/alternative``, text then HTML."""
    sender = from_email or hook.from_email
    if not sender:
        raise ValueError(
            f"no sender: set the from_email extra of the SMTP connection {hook.smtp_conn_id!r}"
        )
    return sender, mime_message(email, sender=sender, to=to).as_bytes()


# The hook's send_email_smtp/asend_email_smtp build an HTML-only message (no text part), so we
# build the message (include/cc_intake/mail.py) and hand it to the session the hook opened,
# secured and authenticated (its ``_smtp_client``, as the hook's own test_connection does),
# retrying the send as the hook would.


def send_email(
    email: messages.Email,
    to: Iterable[str],
    *,
    smtp_conn_id: str = DEFAULT_SMTP_CONN_ID,
    from_email: str | None = None,
) -> None:
    """Send text + HTML through the SMTP connection (its ``from_email`` extra is the sender by
    default)."""
    recipients = list(to)
    with SmtpHook(smtp_conn_id=smtp_conn_id) as hook:
        sender, data = _message(hook, email, recipients, from_email)
        client = cast("smtplib.SMTP", hook._smtp_client)
        for attempt in range(hook.smtp_retry_limit + 1):
            try:
                client.sendmail(sender, recipients, data)
                return
            except Exception:
                if attempt == hook.smtp_retry_limit:
                    raise


async def asend_email(
    email: messages.Email,
    to: Iterable[str],
    *,
    smtp_conn_id: str = DEFAULT_SMTP_CONN_ID,
    from_email: str | None = None,
) -> None:
    """:func:`send_email` without blocking the triggerer's event loop (aiosmtplib path)."""
    recipients = list(to)
    async with SmtpHook(smtp_conn_id=smtp_conn_id) as hook:
        sender, data = _message(hook, email, recipients, from_email)
        client = cast("aiosmtplib.SMTP", hook._smtp_client)
        for attempt in range(hook.smtp_retry_limit + 1):
            try:
                await client.sendmail(sender, recipients, data)
                return
            except Exception:
                if attempt == hook.smtp_retry_limit:
                    raise


# --------------------------------------------------------------------------- delivery
#
# deliver()/adeliver() send one alert with retries and, if the SMTP server stays unreachable,
# keep it as an .eml in <data_root>/alerts/undelivered/ (include/cc_intake/alerts_outbox.py).
# Every delivery first sends what waits there, oldest first, so alerts arrive in order and the
# overview's "alertes non envoyées" banner goes away as soon as the server is back.


def _refused_message(exc: BaseException) -> bool:
    """The server answered and refused this message (a bad address…): others may still go."""
    import aiosmtplib

    return isinstance(
        exc,
        smtplib.SMTPRecipientsRefused
        | smtplib.SMTPSenderRefused
        | smtplib.SMTPDataError
        | aiosmtplib.SMTPRecipientsRefused
        | aiosmtplib.SMTPRecipientRefused
        | aiosmtplib.SMTPSenderRefused
        | aiosmtplib.SMTPDataError,
    )


def _backoff(attempt: int) -> float:
    return SEND_BACKOFF_S * 2 ** (attempt - 1)


def _sender(smtp_conn_id: str, from_email: str | None) -> str:
    """The From of a kept e-mail: as the hook would pick it (argument, else connection extra)."""
    if from_email:
        return from_email
    try:
        extra = SmtpHook.get_connection(smtp_conn_id).extra_dejson
    except Exception:  # the connection itself may be what is broken
        return FALLBACK_SENDER
    return str(extra.get("from_email") or FALLBACK_SENDER)


async def _asender(smtp_conn_id: str, from_email: str | None) -> str:
    if from_email:
        return from_email
    try:
        conn = await SmtpHook.aget_connection(smtp_conn_id)
    except Exception:
        return FALLBACK_SENDER
    return str(conn.extra_dejson.get("from_email") or FALLBACK_SENDER)


@contextlib.contextmanager
def _outbox_lock(root: Path) -> Iterator[bool]:
    """Whether this process may send the waiting alerts now (one sender at a time, no wait).

    Two tasks of a run can fail at the same moment; without the lock both would resend every
    waiting alert. The lock file lives in ``<data_root>/locks/``, outside the outbox.
    """
    import fcntl

    folder = root / "locks"
    make_dirs(folder, stop_at=root)
    fd = os.open(folder / "alerts-undelivered.lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_waiting(path: Path) -> alerts_outbox.QueuedEmail | None:
    try:
        return alerts_outbox.parse_eml(path.read_bytes())
    except FileNotFoundError:  # sent meanwhile by a process that did not see our lock
        return None
    except (OSError, ValueError) as exc:
        log.error("undelivered alert %s cannot be read (%s): left in place", path, exc)
        return None


def _sent_waiting(path: Path, queued: alerts_outbox.QueuedEmail) -> None:
    path.unlink(missing_ok=True)
    log.info("undelivered alert sent at last and removed: %s (%s)", path.name, queued.subject)


def _waiting_failed(path: Path, exc: BaseException) -> bool:
    """Log a failed resend; True when the server is down (stop), False when it refused this one."""
    if _refused_message(exc):
        log.error("undelivered alert %s refused by the SMTP server: %s", path.name, exc)
        return False
    log.warning("undelivered alerts still waiting (%s): %s", type(exc).__name__, exc)
    return True


def send_undelivered(*, smtp_conn_id: str = DEFAULT_SMTP_CONN_ID) -> int:
    """Send the waiting alerts, oldest first, deleting each once sent; how many went out.

    Stops at the first failure that is not a refusal of that one message (the server is down).
    """
    root = data_root()
    if not alerts_outbox.pending(root):
        return 0
    sent = 0
    with _outbox_lock(root) as mine:
        if not mine:
            return 0
        for path in alerts_outbox.pending(root):
            queued = _read_waiting(path)
            if queued is None:
                continue
            try:
                send_email(queued.email, queued.to, smtp_conn_id=smtp_conn_id)
            except Exception as exc:
                if _waiting_failed(path, exc):
                    break
                continue
            _sent_waiting(path, queued)
            sent += 1
    return sent


async def asend_undelivered(*, smtp_conn_id: str = DEFAULT_SMTP_CONN_ID) -> int:
    """:func:`send_undelivered` for the triggerer: file work in a thread, sending on the loop."""
    root = data_root()
    if not await asyncio.to_thread(alerts_outbox.pending, root):
        return 0
    sent = 0
    with _outbox_lock(root) as mine:  # open + non-blocking flock: no wait on the loop
        if not mine:
            return 0
        for path in await asyncio.to_thread(alerts_outbox.pending, root):
            queued = await asyncio.to_thread(_read_waiting, path)
            if queued is None:
                continue
            try:
                await asend_email(queued.email, queued.to, smtp_conn_id=smtp_conn_id)
            except Exception as exc:
                if _waiting_failed(path, exc):
                    break
                continue
            await asyncio.to_thread(_sent_waiting, path, queued)
            sent += 1
    return sent


def _keep_undelivered(
    email: messages.Email,
    to: list[str],
    *,
    sender: str,
    dag_id: str,
    day: object,
    error: BaseException | None,
) -> Path:
    path = alerts_outbox.write_undelivered(
        data_root(),
        to=to,
        subject=email.subject,
        body_html=email.body_html,
        body_text=email.body_text,
        sender=sender,
        dag_id=dag_id,
        day=day,
    )
    log.error(
        "alert e-mail NOT SENT after %d tries (%s): kept in %s; it is sent with the next alert "
        "that reaches the SMTP server. Subject: %s",
        SEND_TRIES,
        _error_text(error),
        path,
        email.subject,
    )
    return path


def deliver(
    email: messages.Email,
    to: Iterable[str],
    *,
    dag_id: str,
    day: object,
    smtp_conn_id: str = DEFAULT_SMTP_CONN_ID,
    from_email: str | None = None,
) -> Path | None:
    """Send an alert, first the waiting ones; ``None`` when sent, else the kept ``.eml``.

    Tries :data:`SEND_TRIES` times with back-off; if the server still cannot be reached, the
    e-mail is kept under ``<data_root>/alerts/undelivered/`` (raises only if that fails too).
    """
    recipients = list(to)
    send_undelivered(smtp_conn_id=smtp_conn_id)
    error: BaseException | None = None
    for attempt in range(1, SEND_TRIES + 1):
        try:
            send_email(email, recipients, smtp_conn_id=smtp_conn_id, from_email=from_email)
            return None
        except Exception as exc:
            error = exc
            log.warning("alert e-mail not sent (try %d of %d): %s", attempt, SEND_TRIES, exc)
        if attempt < SEND_TRIES:
            time.sleep(_backoff(attempt))
    sender = _sender(smtp_conn_id, from_email)
    return _keep_undelivered(email, recipients, sender=sender, dag_id=dag_id, day=day, error=error)


async def adeliver(
    email: messages.Email,
    to: Iterable[str],
    *,
    dag_id: str,
    day: object,
    smtp_conn_id: str = DEFAULT_SMTP_CONN_ID,
    from_email: str | None = None,
) -> Path | None:
    """:func:`deliver` without blocking the triggerer's event loop."""
    recipients = list(to)
    await asend_undelivered(smtp_conn_id=smtp_conn_id)
    error: BaseException | None = None
    for attempt in range(1, SEND_TRIES + 1):
        try:
            await asend_email(email, recipients, smtp_conn_id=smtp_conn_id, from_email=from_email)
            return None
        except Exception as exc:
            error = exc
            log.warning("alert e-mail not sent (try %d of %d): %s", attempt, SEND_TRIES, exc)
        if attempt < SEND_TRIES:
            await asyncio.sleep(_backoff(attempt))
    sender = await _asender(smtp_conn_id, from_email)
    return await asyncio.to_thread(
        _keep_undelivered, email, recipients, sender=sender, dag_id=dag_id, day=day, error=error
    )


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

    def notify(self, context: Any) -> None:
        recipients = self.recipients()
        if not recipients:
            log.error(
                "no alert_emails for %s and no operations list (CC_INTAKE_OPS_EMAILS): "
                "failure e-mail not sent",
                self.provider_id,
            )
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
            log.error("no alert_emails for %s: failure e-mail not sent", self.provider_id)
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


# --------------------------------------------------------------------------- the deadline


def deadlines_enabled() -> bool:
    """False when ``CC_INTAKE_DEADLINES`` is ``off`` (``airflow dags test`` crashes on them)."""
    value = os.environ.get(DEADLINES_ENV, "on").strip().lower()
    return value not in {"off", "0", "false", "no"}


def deadline_callback_kwargs(
    cfg: ProviderConfig, *, smtp_conn_id: str | None = None
) -> dict[str, Any]:
    """Everything the triggerer-side callback needs, JSON-serialisable (no config lookup there)."""
    return {
        "provider_id": cfg.id,
        "provider_name": cfg.name,
        "timezone": cfg.timezone,
        "deadline": cfg.deadline,
        "alert_emails": list(cfg.alert_emails),
        "smtp_conn_id": smtp_conn_id or DEFAULT_SMTP_CONN_ID,
    }


def build_deadline_alert(
    cfg: ProviderConfig, *, smtp_conn_id: str | None = None
) -> DeadlineAlert | None:
    """The provider's delivery deadline: ``deadline`` (local, day J) for the run processing J-1.

    The reference is the run's logical date (the scheduled tick, day J at ``schedule``), so the
    interval is ``deadline - schedule time``. ``None`` when deadlines are off.
    """
    if not deadlines_enabled():
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=cfg.deadline_offset,
        callback=AsyncCallback(
            deadline_missed_callback,
            kwargs=deadline_callback_kwargs(cfg, smtp_conn_id=smtp_conn_id),
        ),
        name=f"livraison avant {cfg.deadline} ({cfg.timezone})",
    )


async def _ask_airflow(what: str, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
    """Call a Task SDK lookup from a worker thread; ``None`` if unavailable (outside Airflow)."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn, **kwargs), timeout=30)
    except Exception as exc:  # outside the triggerer there is no supervisor to ask
        log.info(
            "could not read the %s from Airflow (%s): using the deadline's snapshot", what, exc
        )
        return None


async def deadline_missed_callback(
    *,
    provider_id: str,
    provider_name: str,
    timezone: str,
    deadline: str,
    alert_emails: list[str],
    smtp_conn_id: str = DEFAULT_SMTP_CONN_ID,
    context: Mapping[str, Any] | None = None,
    **_: Any,
) -> str:
    """Deadline Alert callback (triggerer): e-mail that the day is late, for scheduled runs only.

    ``context`` is what the scheduler attaches when the deadline is missed:
    ``{"dag_run": <DAGRunResponse as JSON>, "deadline": {"id", "deadline_time"}}``. Re-runs and
    backfills of a past day, and runs that already failed (their failure e-mail went out), are
    skipped. Returns a short outcome, which Airflow stores as the callback's output.
    """
    dag_run: Mapping[str, Any] = (context or {}).get("dag_run") or {}
    dag_id = str(dag_run.get("dag_id") or dag_id_of(provider_id))
    run_id = str(dag_run.get("dag_run_id") or dag_run.get("run_id") or "")
    run_type = str(dag_run.get("run_type") or "")
    if run_type != "scheduled":
        log.info("deadline of %s/%s ignored: run type %r", dag_id, run_id, run_type or None)
        return f"skipped: run type {run_type or 'unknown'}"

    # The snapshot was taken when the scheduler noticed the miss; ask for the current state,
    # since a run that fails before its deadline still fires it (apache/airflow#60927).
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    state = await _ask_airflow(
        "run state", RuntimeTaskInstance.get_dagrun_state, dag_id=dag_id, run_id=run_id
    )
    state = _state_name(state) or _state_name(dag_run.get("state"))
    if state in ("failed", "success"):
        log.info("deadline of %s/%s ignored: the run is already %s", dag_id, run_id, state)
        return f"skipped: run {state}"

    found = await _ask_airflow(
        "task states", RuntimeTaskInstance.get_task_states, dag_id=dag_id, run_ids=[run_id]
    )
    steps = found.get(run_id) if isinstance(found, Mapping) else None
    if isinstance(steps, Mapping):
        steps = {str(task): (_state_name(ti_state) or None) for task, ti_state in steps.items()}

    day = day_of_run(
        tz=timezone,
        logical_date=dag_run.get("logical_date"),
        run_after=dag_run.get("run_after"),
        conf=dag_run.get("conf"),
    )
    email = messages.deadline_missed(
        provider_id=provider_id,
        provider_name=provider_name,
        day=day,
        run_link=run_link(dag_id, run_id),
        deadline=deadline,
        timezone=timezone,
        run_state=state or None,
        steps=steps or None,
    )
    if not alert_emails:
        log.warning("no alert_emails for %s: deadline e-mail not sent", provider_id)
        return "skipped: no recipients"
    kept = await adeliver(email, alert_emails, dag_id=dag_id, day=day, smtp_conn_id=smtp_conn_id)
    if kept is not None:
        return f"undelivered: kept in {kept}"
    log.info("deadline alert sent to %d recipient(s): %s", len(alert_emails), email.subject)
    return f"sent: {email.subject}"
