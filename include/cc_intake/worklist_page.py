"""The evaluators' worklist page: one self-contained French HTML page per provider-day.

Pure rendering (Jinja2, autoescape on, ``templates/worklist.html.j2``), with the proof pages'
rules: no script, no CDN, every printed value through :func:`proof_pages.page_text` (phone
numbers masked, unsafe characters shown). The page plays each recording with an ``<audio>``
element whose source is the worklist plugin's media route (``../../media/<provider>/<day>/<n>``,
``n`` the item's row in the CSV, relative to the page served at
``…/worklists/<provider>/<day>.html``): the page carries no file name in a URL, and the plugin
serves only what the worklist lists. Formats a browser cannot play (GSM, ADPCM, A-law…) get a
download link instead. Sampled conversations are printed in full, in message order.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

from include.cc_intake.proof_pages import CONTENT_SECURITY_POLICY as PROOF_CSP
from include.cc_intake.proof_pages import TEMPLATES, page_text

if TYPE_CHECKING:
    from include.cc_intake.config import ProviderConfig
    from include.cc_intake.worklist import Item

# The proof pages' policy, plus the recordings the page plays from the plugin (same origin).
CONTENT_SECURITY_POLICY = f"{PROOF_CSP}; media-src 'self'"
MEDIA_ROUTE = "media"
# What browsers play as landed (see playable); others (GSM, ADPCM, G.72x…) are downloaded.
_PLAYABLE_SUFFIXES = {".wav": "audio/wav", ".mp3": "audio/mpeg"}
NOT_PLAYABLE = "format non lisible dans le navigateur"
_AGENT_ROLES = {"agent", "conseiller", "advisor", "operator", "operateur", "opérateur", "bot"}
_CUSTOMER_ROLES = {"client", "customer", "user", "contact", "abonne", "abonné"}


def media_type(path: str) -> str:
    """The ``Content-Type`` of a landed recording, by its extension."""
    return _PLAYABLE_SUFFIXES.get(PurePosixPath(path).suffix.lower(), "application/octet-stream")


def playable(path: str, codec: str | None) -> bool:
    """Whether browsers play the file as landed: PCM WAV (G.711 A-law and µ-law included) and
    MP3; the codec decides when the manifest knows it, else the extension."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix not in _PLAYABLE_SUFFIXES:
        return False
    if not codec:
        return True
    return codec.startswith("pcm") if suffix == ".wav" else codec == "mp3"


def media_href(provider: str, day: dt.date, row: int) -> str:
    """The media route of the worklist's row ``row`` (1-based), relative to the page."""
    return f"../../{MEDIA_ROUTE}/{provider}/{day.isoformat()}/{row}"


def conversation(record: Mapping[str, Any] | None, content_field: str) -> list[dict[str, str]]:
    """A CRM record's messages in order: who (Conseiller/Client/…), when, and the text.

    Content is either a list of message objects (``from``/``role``/``author``…,
    ``at``/``timestamp``…, ``text``/``body``…) or one text, shown line by line.
    """
    if not record:
        return []
    keys = (content_field,) if content_field else ("messages", "body", "content", "text")
    content = _first(record, keys)
    if isinstance(content, str):
        return [{"who": "", "at": "", "text": line} for line in content.splitlines() if line]
    if not isinstance(content, list):
        return [] if content is None else [{"who": "", "at": "", "text": json.dumps(content)}]
    messages = []
    for message in content:
        if not isinstance(message, Mapping):
            messages.append({"who": "", "at": "", "text": str(message)})
            continue
        who = _first(message, ("from", "role", "author", "sender", "direction"))
        if isinstance(who, Mapping):
            who = _first(who, ("role", "type", "name", "id"))
        role = str(who or "").strip()
        if role.lower() in _AGENT_ROLES:
            role = "Conseiller"
        elif role.lower() in _CUSTOMER_ROLES:
            role = "Client"
        at = _first(message, ("at", "timestamp", "time", "date", "created_at", "sent_at"))
        text = _first(message, ("text", "body", "content", "message"))
        messages.append({"who": role, "at": clock(str(at or "")), "text": str(text or "")})
    return messages


def _first(mapping: Mapping[str, Any], keys: Sequence[str]) -> Any:
    return next((mapping[key] for key in keys if mapping.get(key) not in (None, "")), None)


def clock(value: str) -> str:
    """``HH:MM:SS`` of an ISO time (the page's day is in its title); other text as it is."""
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%H:%M:%S")
    except ValueError:
        return value


def _added(value: str) -> str:
    return value.replace("T", " ").removesuffix("Z") + " UTC" if value else ""


def _seconds(value: str) -> str:
    try:
        total = round(float(value))
    except (TypeError, ValueError):
        return ""
    return f"{total // 60} min {total % 60:02d} s"


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        finalize=page_text,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_worklist_page(
    cfg: ProviderConfig,
    day: dt.date,
    items: Sequence[Item],
    *,
    codecs: Mapping[str, str] | None = None,
    records: Mapping[str, Mapping[str, Any]] | None = None,
    generated_at: dt.datetime,
) -> str:
    """The page for the worklist ``items`` (in CSV order: row numbers are the media route's).

    :param codecs: the manifest's ``codec`` per recording item id.
    :param records: the landed CRM record per digital item id.
    """
    content_field = (cfg.digital.content_field if cfg.digital else None) or ""
    recordings, digital = [], []
    for row, item in enumerate(items, 1):
        if item.kind == "recording":
            codec = (codecs or {}).get(item.item_id, "")
            recordings.append(
                {
                    "item": item,
                    "name": PurePosixPath(item.path).name,
                    "duration": _seconds(item.duration_s),
                    "start": clock(item.started_at),
                    "added": _added(item.added_at),
                    "codec": codec,
                    "playable": playable(item.path, codec),
                    "href": media_href(cfg.id, day, row),
                    "type": media_type(item.path),
                }
            )
        else:
            record = (records or {}).get(item.item_id)
            digital.append(
                {
                    "item": item,
                    "found": record is not None,
                    "added": _added(item.added_at),
                    "start": clock(item.started_at),
                    "channel": (record or {}).get("channel") or "",
                    "messages": conversation(record, content_field),
                }
            )
    return (
        _environment()
        .get_template("worklist.html.j2")
        .render(
            title=f"Liste d'écoute — {cfg.name} — {day.isoformat()}",
            provider=cfg.id,
            day=day.isoformat(),
            recordings=recordings,
            digital=digital,
            not_playable=NOT_PLAYABLE,
            stamp=generated_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            csp=Markup(CONTENT_SECURITY_POLICY),  # our constant, written as is
        )
    )
