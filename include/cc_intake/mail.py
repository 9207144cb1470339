"""The alert e-mail: its model, its two renderings from one list of blocks, and its MIME form.

Pure module (no Airflow). The French texts (:mod:`include.cc_intake.messages`) say *what* an
e-mail says as a list of blocks (paragraph, facts table, list, preformatted error, link); this
module says *how* it looks: :func:`render` turns the blocks into the plain-text part and the
HTML part (the Jinja2 template ``templates/email.html.j2``, autoescaped), so both parts always
say the same thing; :func:`mime_message` makes the message that is sent and kept:
``multipart/alternative`` with the text part first and the HTML part last (the one a mail client
shows when it can), both UTF-8 quoted-printable. The blocks hold text that is already redacted
(:mod:`include.cc_intake.redact`): rendering only escapes it.
"""

from __future__ import annotations

import datetime as dt
import email.charset
import email.policy
import email.utils
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from pathlib import Path
from typing import ClassVar, cast

import jinja2

from include.cc_intake.redact import one_line

TEMPLATES = Path(__file__).parent / "templates"
FOOTER = "Message automatique de cc-intake (Airflow). Ne pas répondre."
MESSAGE_ID_DOMAIN = "cc-intake.invalid"
_POLICY = email.policy.compat32.clone(linesep="\r\n")


@dataclass(frozen=True)
class Email:
    """A ready-to-send alert: the same content as plain text and as HTML.

    Both parts are sent (:func:`mime_message`); an empty ``body_text`` (an alert kept by an
    older version, read back from the outbox) sends the HTML part alone.
    """

    subject: str
    body_text: str
    body_html: str


# --------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Para:
    """A paragraph."""

    kind: ClassVar[str] = "para"
    text: str


@dataclass(frozen=True)
class Facts:
    """A two-column table: label, value."""

    kind: ClassVar[str] = "facts"
    rows: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Items:
    """A titled list, bulleted or numbered (``ordered``)."""

    kind: ClassVar[str] = "items"
    title: str
    items: tuple[str, ...]
    ordered: bool = False


@dataclass(frozen=True)
class Pre:
    """A titled block of text shown as is (an error message)."""

    kind: ClassVar[str] = "pre"
    title: str
    text: str


@dataclass(frozen=True)
class Link:
    """A labelled URL; only an ``http(s)`` URL is made clickable."""

    kind: ClassVar[str] = "link"
    label: str
    url: str

    @property
    def clickable(self) -> bool:
        return re.match(r"^https?://", self.url) is not None


Block = Para | Facts | Items | Pre | Link


# --------------------------------------------------------------------------- renderings


def render_text(title: str, blocks: Sequence[Block]) -> str:
    """The plain-text part: the title underlined, then each block, then the signature."""
    out = [title, "=" * len(title), ""]
    for block in blocks:
        if isinstance(block, Para):
            out += [block.text, ""]
        elif isinstance(block, Facts):
            width = max(len(label) for label, _ in block.rows)
            out += [f"{label.ljust(width)} : {value}" for label, value in block.rows] + [""]
        elif isinstance(block, Items):
            out.append(f"{block.title} :")
            for i, item in enumerate(block.items, 1):
                out.append(f"  {i}. {item}" if block.ordered else f"  - {item}")
            out.append("")
        elif isinstance(block, Pre):
            out.append(f"{block.title} :")
            out += [f"    {line}" for line in block.text.splitlines() or [""]]
            out.append("")
        else:
            out += [f"{block.label} : {block.url}", ""]
    out.append(f"-- \n{FOOTER}")
    return "\n".join(out)


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(title: str, blocks: Sequence[Block]) -> str:
    """The HTML part: ``templates/email.html.j2``, every value escaped, styles inline."""
    template = _environment().get_template("email.html.j2")
    return template.render(title=title, blocks=blocks, footer=FOOTER)


def render(subject: str, blocks: Sequence[Block]) -> Email:
    """The e-mail titled ``subject`` (one line) whose two parts show ``blocks``."""
    subject = one_line(subject)
    return Email(
        subject=subject,
        body_text=render_text(subject, blocks),
        body_html=render_html(subject, blocks),
    )


# --------------------------------------------------------------------------- MIME


def _part(content: str, subtype: str) -> MIMENonMultipart:
    charset = email.charset.Charset("utf-8")
    # Quoted-printable: 7-bit safe for any server (no SMTPUTF8/8BITMIME needed) and still
    # readable when an operator opens a kept .eml in a text editor.
    charset.body_encoding = email.charset.QP
    part = MIMENonMultipart("text", subtype, policy=_POLICY)
    part.set_payload(content, charset)
    return part


def mime_message(
    mail: Email,
    *,
    sender: str,
    to: Sequence[str],
    at: dt.datetime | None = None,
) -> Message:
    """The RFC 5322 message of ``mail``: ``multipart/alternative`` (text, then HTML).

    What is sent over SMTP and what the outbox keeps as ``.eml`` (``as_bytes()`` has CRLF line
    ends: the message goes to the server byte for byte). ``at`` is the Date (default now).

    Built with the ``email.mime`` classes, as ``SmtpHook`` builds its own messages: Python
    3.11's newer header folder loses or adds spaces around encoded words in a long French
    subject; ``Header`` encodes it whole and reads back exactly.
    """
    message: Message
    if mail.body_text:
        message = MIMEMultipart("alternative", policy=_POLICY)
        message.attach(_part(mail.body_text, "plain"))
        message.attach(_part(mail.body_html, "html"))
    else:
        message = _part(mail.body_html, "html")
    subject = one_line(mail.subject)
    # A Header is what compat32 folds right (typeshed only knows str values).
    message["Subject"] = subject if subject.isascii() else cast(str, Header(subject, "utf-8"))
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = email.utils.format_datetime(
        (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    )
    message["Message-ID"] = email.utils.make_msgid(domain=MESSAGE_ID_DOMAIN)
    return message
