"""The daily overview: providers × the last 30 processed days, one coloured cell per day.

Reads only ``<data_root>/quality/<provider>/<YYYY-MM-DD>/summary.json`` (contract §7
"Proof files") — no database of its own — and renders one self-contained HTML page (no CDN:
operators' networks may be offline). The page shows counts and states only, never personal
data. The Airflow plugin in ``plugins/overview.py`` serves it behind Airflow's login.

Links are relative to the page, which is served at ``<airflow base>/<plugin prefix>/``:
``../dags/…`` reaches the Airflow UI and ``quality/…`` the proof files, so the page works
behind a reverse proxy that adds a path prefix.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

from include.cc_intake.constants import dag_id_of
from include.cc_intake.errors import UnsafePathError
from include.cc_intake.status import CONFIG_ERROR, RUNNING, SUMMARY_STATUSES

DEFAULT_DAYS = 30
# Served proof files: what the quality step writes, nothing else (never temporary files).
SERVED_SUFFIXES = {".html": "text/html; charset=utf-8", ".json": "application/json"}
PROOF_PAGES = ("recordings.html", "digital.html")
WORKLISTS = "worklists"  # the evaluators' pages: worklists/<provider>/<day>.html (#13)
# Where the worklist plugin serves them, relative to this page (links.WORKLIST_URL_PREFIX).
WORKLIST_BASE = "../cc-intake-worklists/worklists/"

_PROVIDER_ID = re.compile(r"^[a-z0-9_]+$")
_DAY_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# The order operators expect; other configured direction names follow alphabetically.
_DIRECTION_ORDER = {"ENTRANTS": 0, "SORTANTS": 1}
_STATUS_LABELS = {
    "green": ("✓", "complet"),
    "amber": ("!", "complet, à vérifier"),
    "red": ("✗", "incomplet"),
    CONFIG_ERROR: ("⚙", "configuration invalide"),
    RUNNING: ("…", "en cours"),
    "missing": ("·", "pas de données"),
    "invalid": ("?", "résumé illisible"),
}
_WEEKDAYS = ("lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim.")


@dataclass(frozen=True)
class Count:
    """``got`` of ``expected`` (either unknown as None)."""

    got: int | None
    expected: int | None

    def __str__(self) -> str:
        return f"{_num(self.got)}/{_num(self.expected)}"


@dataclass(frozen=True)
class DayCell:
    """One provider-day as the overview shows it."""

    provider: str
    day: dt.date
    status: str  # green | amber | red | config_error | running | missing | invalid
    recordings: tuple[tuple[str, Count], ...] = ()
    digital: Count | None = None
    rejected: int | None = None
    conflicting_ids: int | None = None  # CRM ids received with conflicting contents
    kept: int | None = None  # already inside the recordings' ``got``
    failed: int | None = None
    served_by_backup: tuple[str, ...] = ()  # backup endpoints that served the day
    updated_at: str | None = None
    run_id: str | None = None
    timezone: str | None = None
    proof_page: str | None = None  # relative to quality/, e.g. "acme/2026-11-25/recordings.html"
    problem: str | None = None
    purged_at: str | None = None  # the retention deleted the day's personal data (#12)
    worklist: str | None = None  # relative to worklists/, e.g. "acme/2026-11-25.html" (#13)
    previous: str | None = None  # while running: the day's earlier verdict, if any


@dataclass(frozen=True)
class ProviderRow:
    provider: str
    cells: tuple[DayCell, ...]  # same order as Overview.days
    config_error: bool = False  # the provider's YAML is broken: its DAG is a placeholder

    @property
    def dag_id(self) -> str:
        return dag_id_of(self.provider)


@dataclass(frozen=True)
class Overview:
    days: tuple[dt.date, ...]  # newest first: yesterday stays visible on a narrow screen
    rows: tuple[ProviderRow, ...]
    undelivered: int = 0  # alert e-mails waiting in alerts/undelivered/ (SMTP was down)

    def count(self, status: str) -> int:
        return sum(cell.status == status for row in self.rows for cell in row.cells)


# --- reading --------------------------------------------------------------------------------


def quality_root(data_root: Path) -> Path:
    return Path(data_root) / "quality"


def list_providers(data_root: Path) -> list[str]:
    """Provider ids that have a folder under ``quality/`` (odd names are ignored)."""
    root = quality_root(data_root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and _PROVIDER_ID.match(p.name))


def latest_day(data_root: Path, providers: Iterable[str]) -> dt.date | None:
    """The newest day that has a ``summary.json``, across ``providers``."""
    newest: dt.date | None = None
    for provider in providers:
        folder = quality_root(data_root) / provider
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            day = _parse_day_dir(entry.name)
            if day and (newest is None or day > newest) and (entry / "summary.json").is_file():
                newest = day
    return newest


def read_day(data_root: Path, provider: str, day: dt.date) -> DayCell:
    """The cell for one provider-day: ``missing`` without a summary, ``invalid`` if unreadable."""
    cell = _read_summary(data_root, provider, day)
    worklist = f"{provider}/{day.isoformat()}.html"
    if (Path(data_root) / WORKLISTS / worklist).is_file():
        cell = replace(cell, worklist=worklist)
    return cell


def _read_summary(data_root: Path, provider: str, day: dt.date) -> DayCell:
    folder = quality_root(data_root) / provider / day.isoformat()
    path = folder / "summary.json"
    proof = next((name for name in PROOF_PAGES if (folder / name).is_file()), None)
    proof_page = f"{provider}/{day.isoformat()}/{proof}" if proof else None
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DayCell(provider, day, "missing", proof_page=proof_page)
    except OSError as exc:
        return DayCell(provider, day, "invalid", proof_page=proof_page, problem=exc.strerror)
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        return DayCell(provider, day, "invalid", proof_page=proof_page, problem=f"not JSON: {exc}")
    return _cell_from_summary(provider, day, data, proof_page)


def _cell_from_summary(
    provider: str, day: dt.date, data: Mapping[str, Any], proof_page: str | None
) -> DayCell:
    status = data.get("status")
    problem = None
    if status not in SUMMARY_STATUSES:
        problem = f"status {status!r} is not one of {', '.join(SUMMARY_STATUSES)}"
        status = "invalid"
    raw_recordings = data.get("recordings")
    recordings: dict[str, Any] = raw_recordings if isinstance(raw_recordings, dict) else {}
    directions = sorted(recordings, key=lambda name: (_DIRECTION_ORDER.get(name, 9), name))
    digital = data.get("digital")
    return DayCell(
        provider=provider,
        day=day,
        status=status,
        recordings=tuple((name, _count(recordings[name])) for name in directions),
        digital=_count(digital) if isinstance(digital, dict) else None,
        rejected=_int(data.get("rejected")),
        conflicting_ids=_int(digital.get("conflicting_ids")) if isinstance(digital, dict) else None,
        kept=_int(data.get("kept")),
        failed=_int(data.get("failed")),
        served_by_backup=_names(data.get("served_by_backup")),
        updated_at=_str(data.get("updated_at")),
        run_id=_str(data.get("run_id")),
        timezone=_str(data.get("timezone")),
        proof_page=proof_page,
        problem=problem,
        purged_at=_str(data.get("purged_at")),
        previous=_str(data.get("previous")) if status == RUNNING else None,
    )


def build_overview(
    data_root: Path,
    *,
    end_day: dt.date,
    days: int = DEFAULT_DAYS,
    providers: Iterable[str] = (),
    discover: bool = True,
    config_errors: Iterable[str] | None = None,
    undelivered: int = 0,
) -> Overview:
    """The grid for the ``days`` processed days ending at ``end_day`` (newest first).

    Rows are ``providers`` (e.g. every provider DAG, so that one that never wrote a summary
    shows as a grey row rather than not at all) plus, with ``discover``, those found under
    ``quality/``, plus ``config_errors``.

    :param config_errors: providers whose DAG is a config-error placeholder right now (from
        Airflow); ``None`` when unknown, then a row is marked when its newest summary in the
        window is ``config_error``.
    :param undelivered: how many alert e-mails wait to be sent (shown as a banner).
    """
    window = tuple(end_day - dt.timedelta(days=offset) for offset in range(days))
    broken = {p for p in config_errors or () if _PROVIDER_ID.match(p)}
    names = {p for p in providers if _PROVIDER_ID.match(p)} | broken
    if discover:
        names |= set(list_providers(data_root))
    rows = []
    for name in sorted(names):
        cells = tuple(read_day(data_root, name, day) for day in window)
        if config_errors is None:
            newest = next((c.status for c in cells if c.status != "missing"), None)
            flagged = newest == CONFIG_ERROR
        else:
            flagged = name in broken
        rows.append(ProviderRow(name, cells, config_error=flagged))
    return Overview(window, tuple(rows), undelivered=max(0, undelivered))


# --- links ----------------------------------------------------------------------------------


def dag_href(provider: str, *, ui_base: str = "../") -> str:
    return f"{ui_base}dags/{quote(dag_id_of(provider))}"


def run_href(cell: DayCell, *, ui_base: str = "../") -> str:
    """The Airflow run that wrote the day, else the DAG's runs around the scheduled run.

    ``summary.json`` may carry ``run_id`` (the writer's run) and ``timezone``; without a run
    id, the runs list is filtered on ``run_after`` over the local day after the processed day,
    when the scheduled run for it happens (re-runs of the day are in the DAG's run list).
    """
    base = dag_href(cell.provider, ui_base=ui_base)
    if cell.run_id:
        return f"{base}/runs/{quote(cell.run_id, safe='')}"
    try:
        zone = ZoneInfo(cell.timezone) if cell.timezone else dt.UTC
    except (ZoneInfoNotFoundError, ValueError):
        zone = dt.UTC
    start = dt.datetime.combine(cell.day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    end = start + dt.timedelta(days=1)
    query = urlencode(
        {
            "run_after_gte": _utc_iso(start),
            "run_after_lte": _utc_iso(end - dt.timedelta(seconds=1)),
        }
    )
    return f"{base}/runs?{query}"


def proof_href(cell: DayCell, *, proof_base: str = "quality/") -> str | None:
    return f"{proof_base}{quote(cell.proof_page)}" if cell.proof_page else None


def worklist_href(cell: DayCell, *, worklist_base: str = WORKLIST_BASE) -> str | None:
    return f"{worklist_base}{quote(cell.worklist)}" if cell.worklist else None


def resolve_quality_file(data_root: Path, rel_path: str) -> Path:
    """The file under ``<data_root>/quality`` that ``rel_path`` names, or ``UnsafePathError``.

    Only ``<provider>/<YYYY-MM-DD>/<name>.html|.json`` is served: no hidden or temporary
    file, no other folder, and the resolved path (symlinks followed) must stay under
    ``quality/`` — a link planted in the tree cannot expose anything else.
    """
    root = quality_root(data_root)
    parts = rel_path.split("/")
    what = f"quality file {rel_path!r}"
    if len(parts) != 3 or any(part in ("", ".", "..") for part in parts):
        raise UnsafePathError(f"{what}: expected <provider>/<YYYY-MM-DD>/<file>")
    provider, day, name = parts
    if not _PROVIDER_ID.match(provider) or not _parse_day_dir(day):
        raise UnsafePathError(f"{what}: expected a provider id and a YYYY-MM-DD folder")
    if name.startswith(".") or "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UnsafePathError(f"{what}: hidden or unsafe file name")
    if Path(name).suffix not in SERVED_SUFFIXES:
        raise UnsafePathError(f"{what}: only {', '.join(sorted(SERVED_SUFFIXES))} are served")
    real_root = Path(os.path.realpath(root))
    candidate = Path(os.path.realpath(root / provider / day / name))
    if not candidate.is_relative_to(real_root):
        raise UnsafePathError(f"{what}: resolves outside {root}")
    return candidate


# --- rendering ------------------------------------------------------------------------------

TEMPLATES = Path(__file__).with_name("templates")
# Inside the Airflow UI the page is an iframe that may not navigate the top window; links to
# Airflow pages are handed to the UI's router instead (same origin), so they open in the UI
# rather than as a UI nested in the frame. Opened on its own, the page uses plain links.
# The page carries this text as is, and the CSP allows exactly it by its hash.
TOP_NAVIGATION_SCRIPT = (TEMPLATES / "overview_navigation.js").read_text(encoding="utf-8").strip()
SCRIPT_CSP_HASH = (
    "sha256-" + base64.b64encode(hashlib.sha256(TOP_NAVIGATION_SCRIPT.encode()).digest()).decode()
)
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src '{SCRIPT_CSP_HASH}'; img-src data:; frame-ancestors 'self'; "
    "base-uri 'none'; form-action 'self'"
)


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_overview(
    overview: Overview,
    *,
    ui_base: str = "../",
    proof_base: str = "quality/",
    generated_at: dt.datetime | None = None,
    earlier: str | None = None,
    later: str | None = None,
    digest: str | None = None,
) -> str:
    """The whole page as one HTML document (``templates/overview.html.j2``).

    :param earlier: href of the previous window (older days), if any.
    :param later: href of the next window (newer days), if any.
    :param digest: href of the latest morning digest, if any.
    """
    legend = [
        {"status": status, "label": _STATUS_LABELS[status][1], "count": overview.count(status)}
        for status in ("green", "amber", "red", "missing")
    ]
    for extra in (RUNNING, CONFIG_ERROR):
        if overview.count(extra):
            legend.append(
                {"status": extra, "label": _STATUS_LABELS[extra][1], "count": overview.count(extra)}
            )
    rows = [
        {
            "provider": row.provider,
            "dag_id": row.dag_id,
            "href": dag_href(row.provider, ui_base=ui_base),
            "config_error": row.config_error,
            "cells": [
                _cell_view(cell, ui_base=ui_base, proof_base=proof_base) for cell in row.cells
            ],
        }
        for row in overview.rows
    ]
    stamp = (generated_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return (
        _environment()
        .get_template("overview.html.j2")
        .render(
            days=overview.days,
            first=overview.days[-1],
            last=overview.days[0],
            weekdays=_WEEKDAYS,
            rows=rows,
            legend=legend,
            config_error_label=_STATUS_LABELS[CONFIG_ERROR][1],
            undelivered=overview.undelivered,
            earlier=earlier,
            later=later,
            digest=digest,
            stamp=stamp,
            script=Markup(TOP_NAVIGATION_SCRIPT),  # allowed by its hash: written as is
        )
    )


def _cell_view(cell: DayCell, *, ui_base: str, proof_base: str) -> dict[str, Any]:
    """What the template shows of one cell: glyph, lines, tooltip and links."""
    glyph, label = _STATUS_LABELS[cell.status]
    lines = [f"{_short(name)} {count}" for name, count in cell.recordings]
    if cell.digital is not None:
        lines.append(f"D {cell.digital}")
    if cell.status == "missing":
        lines = ["—"]
    elif cell.status == "invalid" and not lines:
        lines = ["illisible"]
    elif cell.status == CONFIG_ERROR:
        lines = ["config.", "invalide"]
    title = [f"{cell.provider} — {cell.day.isoformat()} : {label}"]
    title += [f"{_long(name)} : {count.got} reçus / {count.expected} attendus"
              for name, count in cell.recordings]  # fmt: skip
    if cell.digital is not None:
        title.append(f"Digital : {cell.digital.got} exportées / {cell.digital.expected} annoncées")
    if cell.rejected:
        title.append(f"Fichiers rejetés : {cell.rejected}")
    if cell.conflicting_ids:
        title.append(f"Interactions reçues en versions différentes : {cell.conflicting_ids}")
    if cell.kept:
        title.append(f"Dont conservés ici, plus sur le serveur : {cell.kept}")
    if cell.failed:
        title.append(f"Copies en échec : {cell.failed}")
    if cell.served_by_backup:
        lines.append("secours")
        title.append("Servi par le point d'accès de secours : " + ", ".join(cell.served_by_backup))
    if cell.status == RUNNING and cell.previous in _STATUS_LABELS:
        title.append(f"Verdict précédent : {_STATUS_LABELS[cell.previous][1]}")
    if cell.problem:
        title.append(f"Problème : {cell.problem}")
    if cell.updated_at:
        title.append(f"Mis à jour : {cell.updated_at}")
    if cell.purged_at and cell.status != "missing":
        lines.append("purgé")
        title.append(f"Données personnelles purgées (conservation) : {cell.purged_at}")
    return {
        "status": cell.status,
        "day": cell.day.isoformat(),
        "glyph": glyph,
        "lines": lines,
        "tooltip": "\n".join(title),
        "proof": proof_href(cell, proof_base=proof_base),
        "run": run_href(cell, ui_base=ui_base),
        "purged": bool(cell.purged_at),
        "worklist": worklist_href(cell),
    }


# --- helpers --------------------------------------------------------------------------------


def _parse_day_dir(name: str) -> dt.date | None:
    if not _DAY_DIR.match(name):
        return None
    try:
        return dt.date.fromisoformat(name)
    except ValueError:
        return None


def _count(value: object) -> Count:
    if not isinstance(value, dict):
        return Count(None, None)
    return Count(_int(value.get("got")), _int(value.get("expected")))


def _names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(v) for v in value if isinstance(v, str) and v)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _num(value: int | None) -> str:
    return "?" if value is None else str(value)


def _short(direction: str) -> str:
    return {"ENTRANTS": "E", "SORTANTS": "S"}.get(direction, direction[:1].upper())


def _long(direction: str) -> str:
    return {"ENTRANTS": "Entrants", "SORTANTS": "Sortants"}.get(direction, direction)


def _utc_iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
