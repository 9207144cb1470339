"""The morning digest: one row per provider for its processed day, as HTML and plain text.

Pure module (no Airflow). It reads what the overview reads — ``quality/<provider>/<day>/
summary.json`` through :func:`include.cc_intake.overview.read_day` — plus the day's manifest
(what landed so far, what was rejected) and the evaluators' worklist size
(``worklists/<provider>/<day>.csv``), and never fails because one provider's files are
missing or broken: that provider's row says so (contract §8.1 *Evaluators*).

"Yesterday" is each provider's processed day as of the digest time in that provider's zone
(:func:`include.cc_intake.days.processed_day`); the digest's own day, which names its file
``digests/<day>.html``, is the processed day in the digest's zone (``CC_INTAKE_DIGEST_AT``).

Links are absolute (the page is also an e-mail): the Airflow layer passes the bases in
(:mod:`include.cc_intake.airflow.links` builds them). The page is self-contained: inline
styles only (mail clients drop ``<style>``), no script, no external asset; free texts are
sanitised (phones masked, secrets redacted) before they reach it.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from include.cc_intake import overview
from include.cc_intake.config import DIRECTIONS
from include.cc_intake.days import parse_day, processed_day
from include.cc_intake.errors import ConfigError, ManifestError, UnsafePathError
from include.cc_intake.layout import DayLayout, atomic_writer, storage_errors
from include.cc_intake.manifest import read_manifest
from include.cc_intake.naming import safe_join
from include.cc_intake.overview import Count, DayCell
from include.cc_intake.redact import one_line, sanitize
from include.cc_intake.status import AMBER, CONFIG_ERROR, GREEN, RED, RUNNING

DEFAULT_DIGEST_AT = "09:00 Africa/Abidjan"
"""``CC_INTAKE_DIGEST_AT`` when unset: after the providers' morning runs, Abidjan time (UTC+0)."""
MISSING = "missing"  # no summary yet: the day's run has not started (overview's word)
INVALID = "invalid"  # a summary that cannot be read
FOOTER = "Message automatique de cc-intake (Airflow). Ne pas répondre."

# The status words of the digest, in the order the header counts them.
LABELS: dict[str, str] = {
    GREEN: "vert",
    AMBER: "orange",
    RED: "rouge",
    RUNNING: "en cours",
    MISSING: "en attente",
    CONFIG_ERROR: "configuration invalide",
    INVALID: "résumé illisible",
}
_COLOURS = {  # text, background — the overview's palette
    GREEN: ("#2e7d32", "#dcedc8"),
    AMBER: ("#8a5200", "#ffe0b2"),
    RED: ("#c62828", "#ffcdd2"),
    RUNNING: ("#0d47a1", "#bbdefb"),
    MISSING: ("#555555", "#f0f0f0"),
    CONFIG_ERROR: ("#6a1b9a", "#e1bee7"),
    INVALID: ("#c62828", "#f5f5f5"),
}
# Rows needing someone first, then by provider id.
_SEVERITY = (RED, INVALID, CONFIG_ERROR, AMBER, RUNNING, MISSING, GREEN)
_DIRECTION_WORDS = {"ENTRANTS": "entrants", "SORTANTS": "sortants"}
_PROOF_LABELS = {"recordings.html": "preuve enregistrements", "digital.html": "preuve digital"}
_AT_RE = re.compile(r"^(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)\s+(?P<zone>\S+)$")


# --- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestProvider:
    """A provider the digest reports on: from its YAML, or what a broken YAML still says.

    :param config_error: the validation error when the YAML is broken now, else ``None``.
    """

    id: str
    name: str
    timezone: str
    config_error: str | None = None


@dataclass(frozen=True)
class DigestAt:
    """When the digest runs: ``CC_INTAKE_DIGEST_AT``, e.g. ``"09:00 Africa/Abidjan"``."""

    time: dt.time
    timezone: str

    @property
    def cron(self) -> str:
        return f"{self.time.minute} {self.time.hour} * * *"

    def __str__(self) -> str:
        return f"{self.time.strftime('%H:%M')} {self.timezone}"


def parse_digest_at(value: str | None) -> DigestAt:
    """``"HH:MM <IANA zone>"`` (blank: :data:`DEFAULT_DIGEST_AT`); a clear error otherwise."""
    text = (value or "").strip() or DEFAULT_DIGEST_AT
    match = _AT_RE.match(text)
    if not match:
        raise ConfigError(
            f"CC_INTAKE_DIGEST_AT {text!r} is not a time and a zone: expected 'HH:MM <IANA zone>', "
            f"e.g. {DEFAULT_DIGEST_AT!r}"
        )
    try:
        ZoneInfo(match["zone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"CC_INTAKE_DIGEST_AT {text!r}: unknown time zone {match['zone']!r} "
            "(expected an IANA name such as Africa/Abidjan or UTC)"
        ) from None
    return DigestAt(dt.time(int(match["h"]), int(match["m"])), match["zone"])


def digest_day(at: dt.datetime, timezone: str) -> dt.date:
    """The digest's own day: the processed day at ``at`` in the digest's zone (names its file)."""
    return processed_day(tz=timezone, logical_date=at)


# --- rows -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestRow:
    """One provider's line: its processed day and what the files say about it."""

    provider: str
    name: str
    day: dt.date | None  # None when the provider's zone is unusable
    timezone: str
    status: str  # a key of LABELS
    recordings: tuple[tuple[str, Count], ...] = ()
    digital: Count | None = None
    rejected: int | None = None
    worklist: int | None = None  # None: no worklist for the day
    previous: str | None = None  # while running: the day's earlier verdict
    proof_pages: tuple[
        str, ...
    ] = ()  # relative to quality/, e.g. "acme/2026-11-25/recordings.html"
    run_id: str | None = None
    config_broken: bool = False
    problems: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return LABELS[self.status]


@dataclass(frozen=True)
class Digest:
    day: dt.date
    at: dt.datetime
    rows: tuple[DigestRow, ...]
    zone: str = "UTC"

    def count(self, status: str) -> int:
        return sum(row.status == status for row in self.rows)


def build_digest(
    data_root: Path,
    providers: Iterable[DigestProvider],
    *,
    at: dt.datetime,
    zone: str = "UTC",
    discover: bool = True,
) -> Digest:
    """The digest at ``at``: one row per provider, each for its own day; red first, green last.

    :param providers: the configured providers and the broken ones (placeholders).
    :param zone: the digest's zone (its own day, its file name).
    :param discover: also report providers found under ``quality/`` but not configured
        (their day is read in UTC).
    """
    if at.tzinfo is None:
        raise ConfigError(f"digest time {at!r} has no time zone")
    known = {p.id: p for p in providers}
    if discover:
        for found in overview.list_providers(data_root):
            known.setdefault(found, DigestProvider(found, found, "UTC"))
    rows = sorted(
        (provider_row(data_root, known[pid], at=at) for pid in known),
        key=lambda row: (_SEVERITY.index(row.status), row.provider),
    )
    return Digest(digest_day(at, zone), at, tuple(rows), zone=zone)


def provider_row(data_root: Path, provider: DigestProvider, *, at: dt.datetime) -> DigestRow:
    """One provider's row; whatever is missing or broken is said in the row, never raised."""
    problems: list[str] = []
    if provider.config_error:
        # The validation error names the file, then each field on its own line.
        error = " ".join(line.strip() for line in provider.config_error.splitlines())
        problems.append(f"configuration du prestataire invalide : {error}")
    try:
        day = processed_day(tz=provider.timezone, logical_date=at)
    except (ConfigError, ZoneInfoNotFoundError, ValueError) as exc:
        problems.append(f"fuseau horaire {provider.timezone!r} inutilisable ({exc})")
        return DigestRow(
            provider.id,
            provider.name,
            None,
            provider.timezone,
            CONFIG_ERROR if provider.config_error else INVALID,
            config_broken=provider.config_error is not None,
            problems=_clean(problems),
        )
    cell = _read_cell(data_root, provider.id, day, problems)
    status = cell.status
    if provider.config_error and status == MISSING:
        status = CONFIG_ERROR  # the placeholder has not marked the day yet, but will
    recordings, rejected = cell.recordings, cell.rejected
    if status in (RUNNING, MISSING):
        # The summary has no verdict yet; the manifest says what has landed so far.
        landed = _manifest_counts(data_root, provider.id, day, problems)
        if landed is not None:
            received, rejected_now = landed
            expected = dict(cell.recordings)
            recordings = tuple(
                (d, Count(received.get(d, 0), expected[d].expected if d in expected else None))
                for d in _directions(received, expected)
            )
            rejected = rejected_now
    proofs = _proof_pages(data_root, provider.id, day)
    return DigestRow(
        provider=provider.id,
        name=provider.name,
        day=day,
        timezone=provider.timezone,
        status=status,
        recordings=recordings,
        digital=cell.digital,
        rejected=rejected,
        worklist=worklist_size(data_root, provider.id, day, problems),
        previous=cell.previous,
        proof_pages=proofs,
        run_id=cell.run_id,
        config_broken=provider.config_error is not None,
        problems=_clean(problems),
    )


def _read_cell(data_root: Path, provider: str, day: dt.date, problems: list[str]) -> DayCell:
    try:
        cell = overview.read_day(data_root, provider, day)
    except Exception as exc:  # one provider's odd files never cost the others their row
        problems.append(f"résumé illisible : {type(exc).__name__}: {exc}")
        return DayCell(provider, day, INVALID)
    if cell.status == INVALID:
        problems.append(
            f"résumé illisible (quality/{provider}/{day}/summary.json) : {cell.problem}"
        )
    return cell


def _manifest_counts(
    data_root: Path, provider: str, day: dt.date, problems: list[str]
) -> tuple[dict[str, int], int] | None:
    """Received files per direction and rejected files in the day's manifest, if there is one."""
    try:
        path = DayLayout(data_root, provider, day).manifest
        if not path.is_file():
            return None
        rows = read_manifest(path)
    except (OSError, ValueError, KeyError, csv.Error, ManifestError) as exc:
        problems.append(f"manifeste illisible (manifests/{provider}/{day}.csv) : {exc}")
        return None
    received: dict[str, int] = {}
    for row in rows:
        if row.landed:
            received[row.direction] = received.get(row.direction, 0) + 1
    return received, sum(row.status == "rejected" for row in rows)


def worklist_size(
    data_root: Path, provider: str, day: dt.date, problems: list[str] | None = None
) -> int | None:
    """Data rows of ``worklists/<provider>/<day>.csv`` (after its header); ``None`` if absent."""
    try:
        path = safe_join(Path(data_root), "worklists", provider, f"{day.isoformat()}.csv")
        with path.open(encoding="utf-8", newline="") as handle:
            rows = [row for row in csv.reader(handle) if row]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, csv.Error) as exc:
        if problems is not None:
            problems.append(f"liste d'écoute illisible (worklists/{provider}/{day}.csv) : {exc}")
        return None
    return max(0, len(rows) - 1)


def _proof_pages(data_root: Path, provider: str, day: dt.date) -> tuple[str, ...]:
    folder = overview.quality_root(data_root) / provider / day.isoformat()
    return tuple(
        f"{provider}/{day.isoformat()}/{name}"
        for name in overview.PROOF_PAGES
        if (folder / name).is_file()
    )


def _directions(received: dict[str, int], expected: dict[str, Count]) -> list[str]:
    names = set(received) | set(expected) | set(DIRECTIONS)
    return sorted(names, key=lambda d: (DIRECTIONS.index(d) if d in DIRECTIONS else 9, d))


def _clean(problems: Sequence[str]) -> tuple[str, ...]:
    return tuple(one_line(sanitize(p, limit=400)) for p in problems)


# --- rendering ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestLinks:
    """Absolute URLs the digest links to (built by the Airflow layer from ``[api] base_url``).

    :param ui_base: Airflow's base URL with a trailing slash (DAG and run pages).
    :param proof_base: the plugin's proof route with a trailing slash (``…/cc-intake/quality/``).
    :param overview: the overview page.
    """

    ui_base: str
    proof_base: str
    overview: str


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    html: str
    text: str


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(overview.TEMPLATES),
        # The HTML page is escaped; the plain-text part is text (no entities in a mail body).
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def subject(digest: Digest) -> str:
    """``[intake] synthèse du 25/11/2026 : 3 vert, 1 rouge, …`` (one line, non-zero counts)."""
    counts = ", ".join(
        f"{digest.count(status)} {label}"
        for status, label in LABELS.items()
        if digest.count(status)
    )
    head = f"[intake] synthèse du {digest.day.strftime('%d/%m/%Y')}"
    return one_line(f"{head} : {counts}" if counts else f"{head} : aucun prestataire")


def row_view(row: DigestRow, links: DigestLinks) -> dict[str, Any]:
    """What both parts show of one row: texts already French, links absolute."""
    colour, background = _COLOURS[row.status]
    calls = [
        {
            "direction": _DIRECTION_WORDS.get(name, name.lower()),
            "got": _num(count.got),
            "expected": _num(count.expected),
            "short": (count.expected is not None and (count.got or 0) < count.expected),
        }
        for name, count in row.recordings
    ]
    status_text = row.label
    if row.status == RUNNING and row.previous in LABELS:
        status_text = f"en cours (verdict précédent : {LABELS[row.previous]})"
    if row.config_broken and row.status != CONFIG_ERROR:
        status_text += " — configuration actuelle invalide"
    links_out = [
        {"label": _PROOF_LABELS.get(page.rsplit("/", 1)[-1], page), "url": links.proof_base + page}
        for page in row.proof_pages
    ]
    if row.day is not None:
        cell = DayCell(row.provider, row.day, row.status, run_id=row.run_id, timezone=row.timezone)
        links_out.append(
            {"label": "run Airflow", "url": overview.run_href(cell, ui_base=links.ui_base)}
        )
    return {
        "provider": row.provider,
        "name": row.name,
        "day": row.day.strftime("%d/%m/%Y") if row.day else "?",
        "day_iso": row.day.isoformat() if row.day else "",
        "timezone": row.timezone,
        "status": row.status,
        "status_text": status_text,
        "colour": colour,
        "background": background,
        "calls": calls,
        "digital": (
            {"got": _num(row.digital.got), "expected": _num(row.digital.expected)}
            if row.digital is not None
            else None
        ),
        "rejected": _num(row.rejected) if row.rejected is not None else "—",
        "worklist": "pas de liste" if row.worklist is None else _items(row.worklist),
        "links": links_out,
        "problems": list(row.problems),
    }


def render_digest(
    digest: Digest, links: DigestLinks, *, digest_at: str | None = None
) -> RenderedDigest:
    """The subject, the HTML page (``templates/digest.html.j2``) and the plain-text part."""
    rows = [row_view(row, links) for row in digest.rows]
    totals = [
        {"status": s, "label": label, "count": digest.count(s), "colour": _COLOURS[s][0],
         "background": _COLOURS[s][1]}
        for s, label in LABELS.items()
        if digest.count(s) or s in (GREEN, AMBER, RED)
    ]  # fmt: skip
    context = {
        "title": f"Synthèse du matin — jours traités au {digest.day.strftime('%d/%m/%Y')}",
        "stamp": digest.at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "digest_at": digest_at or "",
        "rows": rows,
        "totals": totals,
        "overview": links.overview,
        "footer": FOOTER,
    }
    env = _environment()
    html = env.get_template("digest.html.j2").render(**context)
    text = env.get_template("digest.txt.j2").render(**context)
    return RenderedDigest(subject(digest), html, text)


def digest_path(data_root: Path, day: dt.date) -> Path:
    """``<data_root>/digests/<day>.html`` (contract §8 *Landing layout additions*)."""
    return safe_join(Path(data_root), "digests", f"{day.isoformat()}.html")


def write_digest(data_root: Path, day: dt.date, html: str) -> Path:
    """Write the page atomically (temporary sibling, fsync, rename); a refused write is a
    ``StorageError`` and the previous page stays whole."""
    path = digest_path(data_root, day)
    with (
        storage_errors(path, provider="digest", day=day.isoformat(), what="digest page"),
        atomic_writer(path, secrets.token_hex(5), root=Path(data_root)) as handle,
    ):
        handle.write(html)
    return path


def resolve_digest_file(data_root: Path, name: str) -> Path:
    """The page ``digests/<name>`` for the plugin, or ``UnsafePathError``.

    Only ``YYYY-MM-DD.html`` is served, and the resolved path (symlinks followed) must stay
    under ``digests/``.
    """
    what = f"digest file {name!r}"
    if not name.endswith(".html") or _day_of(name.removesuffix(".html")) is None:
        raise UnsafePathError(f"{what}: expected YYYY-MM-DD.html")
    root = Path(data_root) / "digests"
    candidate = Path(os.path.realpath(root / name))
    if not candidate.is_relative_to(Path(os.path.realpath(root))):
        raise UnsafePathError(f"{what}: resolves outside {root}")
    return candidate


def latest_digest(data_root: Path) -> dt.date | None:
    """The newest day with a digest page, for the overview's link."""
    folder = Path(data_root) / "digests"
    if not folder.is_dir():
        return None
    days = [
        parsed
        for entry in folder.iterdir()
        if entry.suffix == ".html" and entry.is_file()
        if (parsed := _day_of(entry.stem)) is not None
    ]
    return max(days, default=None)


def _day_of(text: str) -> dt.date | None:
    try:
        return parse_day(text)
    except ConfigError:
        return None


def _num(value: int | None) -> str:
    return "?" if value is None else str(value)


def _items(n: int) -> str:
    return "1 élément" if n == 1 else f"{n} éléments"
