"""Sending an alert e-mail: SMTP with retries, and the outbox of the undelivered ones.

:func:`deliver` (task process) and :func:`adeliver` (triggerer event loop) send one alert
(text + HTML, ``include.cc_intake.mail``) through the ``smtp_default`` connection with the smtp
provider's hook, :data:`SEND_TRIES` times with back-off. If the SMTP server stays unreachable, the
e-mail is kept as an ``.eml`` in ``<data_root>/alerts/undelivered/``
(``include/cc_intake/alerts_outbox.py``). Every delivery first sends what waits there, oldest
first, so alerts arrive in order and the overview's "alertes non envoyées" banner goes away as
soon as the server is back. One process at a time flushes the outbox (a lock file).

Used by the failure notifier (:mod:`.notify`) and the deadline callback (:mod:`.deadline`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import smtplib
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, cast

from airflow.providers.smtp.hooks.smtp import SmtpHook

from include.cc_intake import alerts_outbox, messages
from include.cc_intake.layout import FILE_MODE, data_root, make_dirs
from include.cc_intake.mail import mime_message

if TYPE_CHECKING:
    import aiosmtplib

log = logging.getLogger(__name__)

DEFAULT_SMTP_CONN_ID = "smtp_default"
# An alert is sent up to SEND_TRIES times, SEND_BACKOFF_S seconds apart, doubling (2 s, then
# 4 s): short, since it runs in the failed task's process or in the triggerer's event loop.
SEND_TRIES = 3
SEND_BACKOFF_S = 2.0
FALLBACK_SENDER = "cc-intake@localhost"


def error_text(exception: object) -> str:
    """``"TransferError: text"``, or only the type's name when the text is empty."""
    if exception is None:
        return ""
    if isinstance(exception, BaseException):
        text = str(exception)
        return f"{type(exception).__name__}: {text}" if text else type(exception).__name__
    return str(exception)


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
        error_text(error),
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
