"""Alert e-mails that could not be sent, kept as ``.eml`` files until a later send succeeds.

When the SMTP server stays unreachable through the notifier's retries, the rendered e-mail is
written to ``<data_root>/alerts/undelivered/<timestamp>_<dag>_<day>.eml`` (files 0640, folders
0750, atomic write): an alert is never lost to an outage. The next notifier run that can reach
the server sends what is waiting there, oldest first, and deletes each file once sent; the
overview page counts the files meanwhile.

Each file is the complete RFC 5322 message that would have been sent (From, To, Subject, Date,
Message-ID, ``multipart/alternative`` text + HTML, CRLF line ends: ``mail.mime_message``): an
operator can read it in any mail client or send it by hand. Pure module: naming, rendering,
parsing and listing; the sending lives in ``airflow/delivery.py``.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import cast

from include.cc_intake.layout import atomic_writer
from include.cc_intake.mail import Email, mime_message

OUTBOX_PARTS = ("alerts", "undelivered")
SUFFIX = ".eml"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class QueuedEmail:
    """What a waiting ``.eml`` holds: enough to send it again."""

    to: tuple[str, ...]
    subject: str
    body_html: str
    sender: str | None
    date: dt.datetime | None
    body_text: str = ""
    """The plain-text part; empty for a single-part HTML message."""

    @property
    def email(self) -> Email:
        """The e-mail to send again, both parts as kept."""
        return Email(subject=self.subject, body_text=self.body_text, body_html=self.body_html)


def outbox_dir(data_root: Path) -> Path:
    """``<data_root>/alerts/undelivered``."""
    return Path(data_root).joinpath(*OUTBOX_PARTS)


def _name_part(value: object, limit: int) -> str:
    return _UNSAFE.sub("_", str(value)).strip("._")[:limit] or "inconnu"


def eml_name(*, at: dt.datetime, dag_id: str, day: object) -> str:
    """``<timestamp>_<dag>_<day>.eml``, e.g. ``20261126T070003.123456Z_ingest_acme_2026-11-25.eml``.

    The UTC timestamp comes first (a plain sort is the order of failure); microseconds keep two
    alerts of the same run apart. ``day`` may be a raw, invalid ``target_date``: anything but
    letters, digits, ``.``, ``_`` and ``-`` is replaced, so the name is always one safe segment.
    """
    stamp = at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{stamp}_{_name_part(dag_id, 120)}_{_name_part(day, 40)}{SUFFIX}"


def render_eml(mail: Email, *, to: Sequence[str], sender: str, at: dt.datetime) -> bytes:
    """The e-mail as the RFC 5322 message it would have been sent as (bytes, CRLF line ends)."""
    return mime_message(mail, sender=sender, to=to, at=at).as_bytes()


def _lf(content: str) -> str:
    # A part read back has the message's CRLF line ends and a final one: undo both.
    return content.replace("\r\n", "\n").removesuffix("\n")


def parse_eml(data: bytes) -> QueuedEmail:
    """Read back what :func:`render_eml` wrote (or a single-part HTML message of an older one).

    Raises ``ValueError`` when the message has no recipient or no HTML body.
    """
    message = cast(EmailMessage, email.message_from_bytes(data, policy=email.policy.default))
    to = tuple(
        address.addr_spec
        for address in getattr(message["To"], "addresses", ())
        if address.addr_spec and address.addr_spec != "<>"
    )
    if not to:
        raise ValueError("no recipient (To header)")
    body = message.get_body(("html",))
    if body is None:
        raise ValueError("no HTML body")
    text = message.get_body(("plain",)) if message.is_multipart() else None
    senders = getattr(message["From"], "addresses", ())
    sender = senders[0].addr_spec if senders else None
    date = getattr(message["Date"], "datetime", None)
    return QueuedEmail(
        to=to,
        subject=str(message["Subject"] or ""),
        body_html=_lf(body.get_content()),
        sender=sender,
        date=date,
        body_text=_lf(text.get_content()) if text is not None else "",
    )


def pending(data_root: Path) -> list[Path]:
    """The waiting ``.eml`` files, oldest first (temporary files of a write are not listed)."""
    folder = outbox_dir(data_root)
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.iterdir()
        if path.name.endswith(SUFFIX) and not path.name.startswith(".") and path.is_file()
    )


def count_pending(data_root: Path) -> int:
    """How many alerts wait in the outbox (what the overview's banner shows)."""
    return len(pending(data_root))


def write_undelivered(
    data_root: Path,
    *,
    to: Iterable[str],
    subject: str,
    body_html: str,
    sender: str,
    dag_id: str,
    day: object,
    at: dt.datetime | None = None,
    body_text: str = "",
) -> Path:
    """Keep one unsent e-mail in the outbox (atomic, 0640 under 0750 folders); its path."""
    at = at or dt.datetime.now(dt.UTC)
    root = Path(data_root)
    final = outbox_dir(root) / eml_name(at=at, dag_id=dag_id, day=day)
    mail = Email(subject=subject, body_text=body_text, body_html=body_html)
    data = render_eml(mail, to=list(to), sender=sender, at=at)
    with atomic_writer(final, secrets.token_hex(5), root=root, binary=True) as handle:
        handle.write(data)
    return final
