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
import hashlib
import html
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from include.cc_intake.constants import STATUS_CONFIG_ERROR, dag_id_of
from include.cc_intake.errors import UnsafePathError

DEFAULT_DAYS = 30
STATUSES = ("green", "amber", "red")
# What a config-error placeholder writes for its day (contract §8.1): not a verdict on data.
CONFIG_ERROR = STATUS_CONFIG_ERROR
# Served proof files: what the quality step writes, nothing else (never temporary files).
SERVED_SUFFIXES = {".html": "text/html; charset=utf-8", ".json": "application/json"}
PROOF_PAGES = ("recordings.html", "digital.html")

_PROVIDER_ID = re.compile(r"^[a-z0-9_]+$")
_DAY_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# The order operators expect; other configured direction names follow alphabetically.
_DIRECTION_ORDER = {"ENTRANTS": 0, "SORTANTS": 1}
_STATUS_LABELS = {
    "green": ("✓", "complet"),
    "amber": ("!", "complet, à vérifier"),
    "red": ("✗", "incomplet"),
    CONFIG_ERROR: ("⚙", "configuration invalide"),
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
    status: str  # green | amber | red | config_error | missing | invalid
    recordings: tuple[tuple[str, Count], ...] = ()
    digital: Count | None = None
    rejected: int | None = None
    conflicting_ids: int | None = None  # CRM ids received with conflicting contents
    kept: int | None = None  # already inside the recordings' ``got``
    failed: int | None = None
    updated_at: str | None = None
    run_id: str | None = None
    timezone: str | None = None
    proof_page: str | None = None  # relative to quality/, e.g. "acme/2026-11-25/recordings.html"
    problem: str | None = None


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
    if status not in (*STATUSES, CONFIG_ERROR):
        problem = f"status {status!r} is not one of {', '.join((*STATUSES, CONFIG_ERROR))}"
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
        updated_at=_str(data.get("updated_at")),
        run_id=_str(data.get("run_id")),
        timezone=_str(data.get("timezone")),
        proof_page=proof_page,
        problem=problem,
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

# Inside the Airflow UI the page is an iframe that may not navigate the top window; links to
# Airflow pages are handed to the UI's router instead (same origin), so they open in the UI
# rather than as a UI nested in the frame. Opened on its own, the page uses plain links.
TOP_NAVIGATION_SCRIPT = """
(function () {
  var top;
  try { top = window.top; if (top === window || !top.location.href) return; }
  catch (e) { return; }
  document.addEventListener("click", function (ev) {
    var a = ev.target.closest ? ev.target.closest("a[data-airflow]") : null;
    if (!a || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    var url = new URL(a.href);
    if (url.origin !== top.location.origin) return;
    ev.preventDefault();
    top.history.pushState(null, "", url.pathname + url.search + url.hash);
    top.dispatchEvent(new PopStateEvent("popstate", {state: null}));
  });
})();
""".strip()
SCRIPT_CSP_HASH = (
    "sha256-" + base64.b64encode(hashlib.sha256(TOP_NAVIGATION_SCRIPT.encode()).digest()).decode()
)
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src '{SCRIPT_CSP_HASH}'; img-src data:; frame-ancestors 'self'; "
    "base-uri 'none'; form-action 'self'"
)

_CSS = """
:root { color-scheme: light; --green:#2e7d32; --green-bg:#dcedc8; --amber:#b26a00;
  --amber-bg:#ffe0b2; --red:#c62828; --red-bg:#ffcdd2; --grey:#757575; --grey-bg:#f0f0f0; }
* { box-sizing: border-box; }
body { margin: 0; padding: 16px 20px; font: 13px/1.35 system-ui, "Segoe UI", Roboto,
  "Helvetica Neue", Arial, sans-serif; color: #212121; background: #fff; }
h1 { font-size: 18px; margin: 0 0 4px; }
p.sub { margin: 0 0 12px; color: #555; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 0 0 12px; align-items: center; }
.legend span.key { display: inline-flex; align-items: center; gap: 6px; }
.legend i.green { background: var(--green-bg); } .legend i.amber { background: var(--amber-bg); }
.legend i.red { background: var(--red-bg); } .legend i.missing { background: var(--grey-bg); }
.legend i.config_error { background: #e1bee7; }
.legend i { display: inline-block; width: 14px; height: 14px; border-radius: 3px;
  border: 1px solid rgba(0,0,0,.15); }
nav.pager { margin-left: auto; display: flex; gap: 12px; }
.scroll { overflow-x: auto; border: 1px solid #e0e0e0; border-radius: 6px; }
table { border-collapse: separate; border-spacing: 3px; }
th { font-weight: 600; font-size: 11px; color: #424242; white-space: nowrap; }
thead th { position: sticky; top: 0; background: #fff; padding: 4px 2px; text-align: center; }
thead th small { display: block; font-weight: 400; color: #757575; }
th.provider, td.provider { position: sticky; left: 0; background: #fff; z-index: 1;
  text-align: left; padding: 4px 10px 4px 6px; min-width: 170px; }
td.provider a { font-weight: 600; color: #0d47a1; text-decoration: none; }
td.provider a:hover { text-decoration: underline; }
td.provider small { display: block; color: #757575; font-weight: 400; }
td.cell { min-width: 74px; height: 66px; padding: 0; border-radius: 5px; vertical-align: top;
  white-space: nowrap;
  font: 11px/1.3 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
td.cell a { color: inherit; text-decoration: none; }
td.cell .proof { display: block; padding: 3px 4px 0; min-height: 47px; }
td.cell a.proof:hover, td.cell a.run:hover { text-decoration: underline; }
td.cell a.run { display: block; padding: 0 4px 3px; font-size: 10px; opacity: .8; }
td.cell b { font-size: 12px; }
td.green { background: var(--green-bg); color: var(--green); }
td.amber { background: var(--amber-bg); color: var(--amber); }
td.red { background: var(--red-bg); color: var(--red); }
td.missing { background: var(--grey-bg); color: var(--grey); }
td.invalid { background: repeating-linear-gradient(45deg, #f5f5f5, #f5f5f5 6px, #ffcdd2 6px,
  #ffcdd2 12px); color: var(--red); }
td.config_error { background: #e1bee7; color: #6a1b9a; }
td.cell.green, td.cell.amber, td.cell.red, td.cell.config_error {
  border: 1px solid rgba(0,0,0,.08); }
td.provider .badge { display: inline-block; margin-top: 2px; padding: 0 4px; border-radius: 3px;
  background: #6a1b9a; color: #fff; font-size: 10px; font-weight: 600; }
.banner { margin: 0 0 12px; padding: 8px 12px; border-radius: 5px; background: var(--red-bg);
  color: var(--red); font-weight: 600; }
.banner small { display: block; font-weight: 400; color: #555; }
.empty { padding: 24px; color: #555; }
footer { margin-top: 10px; color: #757575; font-size: 11px; }
""".strip()


def render_overview(
    overview: Overview,
    *,
    ui_base: str = "../",
    proof_base: str = "quality/",
    generated_at: dt.datetime | None = None,
    earlier: str | None = None,
    later: str | None = None,
) -> str:
    """The whole page as one HTML document.

    :param earlier: href of the previous window (older days), if any.
    :param later: href of the next window (newer days), if any.
    """
    esc = html.escape
    head_cells = "".join(
        f'<th scope="col" title="{day.isoformat()}">{day:%d/%m}<small>{_WEEKDAYS[day.weekday()]}'
        "</small></th>"
        for day in overview.days
    )
    body_rows = []
    for row in overview.rows:
        cells = "".join(
            _render_cell(cell, ui_base=ui_base, proof_base=proof_base) for cell in row.cells
        )
        badge = ""
        if row.config_error:
            badge = (
                '<span class="badge" title="Le fichier YAML du prestataire est invalide : '
                "son DAG échoue chaque jour avec l'erreur (voir le DAG).\">"
                f"{_STATUS_LABELS[CONFIG_ERROR][1]}</span>"
            )
        body_rows.append(
            f'<tr data-provider="{esc(row.provider)}"'
            f'{" data-config-error" if row.config_error else ""}><td class="provider">'
            f'<a data-airflow href="{esc(dag_href(row.provider, ui_base=ui_base))}" '
            f'title="DAG {esc(row.dag_id)}">{esc(row.provider)}</a>'
            f"<small>{esc(row.dag_id)}</small>{badge}</td>{cells}</tr>"
        )
    if body_rows:
        table = (
            '<div class="scroll"><table id="overview"><thead><tr>'
            f'<th class="provider" scope="col">Prestataire</th>{head_cells}</tr></thead>'
            f"<tbody>{''.join(body_rows)}</tbody></table></div>"
        )
    else:
        table = (
            '<p class="empty">Aucun prestataire : aucun résumé sous <code>quality/</code> '
            "et aucun DAG <code>ingest_*</code> visible.</p>"
        )
    legend = "".join(
        f'<span class="key"><i class="{status}"></i>{_STATUS_LABELS[status][1]} '
        f"({overview.count(status)})</span>"
        for status in ("green", "amber", "red", "missing")
    )
    if overview.count(CONFIG_ERROR):
        legend += (
            f'<span class="key"><i class="{CONFIG_ERROR}"></i>'
            f"{_STATUS_LABELS[CONFIG_ERROR][1]} ({overview.count(CONFIG_ERROR)})</span>"
        )
    banner = ""
    if overview.undelivered:
        n = overview.undelivered
        what = "1 alerte non envoyée" if n == 1 else f"{n} alertes non envoyées"
        banner = (
            f'<p class="banner" role="alert" data-undelivered="{n}">{what}'
            "<small>Le serveur SMTP était injoignable : les e-mails sont gardés dans "
            "<code>alerts/undelivered/</code> sous la racine des données et partiront avec la "
            "prochaine alerte envoyée.</small></p>"
        )
    pager = ""
    if earlier or later:
        links = []
        if earlier:
            links.append(f'<a href="{esc(earlier)}">← jours précédents</a>')
        if later:
            links.append(f'<a href="{esc(later)}">jours suivants →</a>')
        pager = f'<nav class="pager">{"".join(links)}</nav>'
    first, last = overview.days[-1], overview.days[0]
    stamp = (generated_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Collecte quotidienne — vue d'ensemble</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>Collecte quotidienne — vue d'ensemble</h1>"
        f"{banner}"
        f'<p class="sub">Jours traités du {first:%d/%m/%Y} au {last:%d/%m/%Y}, du plus récent '
        "au plus ancien. Chaque case : enregistrements reçus/attendus par sens (E entrants, "
        "S sortants), D interactions digitales exportées/annoncées ; cliquer ouvre la page de "
        "preuve du jour, « run » le run Airflow.</p>"
        f'<div class="legend">{legend}{pager}</div>{table}'
        f"<footer>Lu dans quality/*/*/summary.json — généré le {stamp}.</footer>"
        f"<script>{TOP_NAVIGATION_SCRIPT}</script></body></html>"
    )


def _render_cell(cell: DayCell, *, ui_base: str, proof_base: str) -> str:
    esc = html.escape
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
    if cell.problem:
        title.append(f"Problème : {cell.problem}")
    if cell.updated_at:
        title.append(f"Mis à jour : {cell.updated_at}")
    body = f"<b>{glyph}</b><br>" + "<br>".join(esc(line) for line in lines)
    proof = proof_href(cell, proof_base=proof_base)
    tooltip = esc("\n".join(title))
    if proof:
        main = f'<a class="proof" href="{esc(proof)}" title="{tooltip}">{body}</a>'
    else:
        main = f'<span class="proof" title="{tooltip}">{body}</span>'
    run = (
        f'<a class="run" data-airflow href="{esc(run_href(cell, ui_base=ui_base))}" '
        f'title="Run Airflow de {cell.day.isoformat()}">run ›</a>'
    )
    return (
        f'<td class="cell {cell.status}" data-day="{cell.day.isoformat()}" '
        f'data-status="{cell.status}">{main}{run}</td>'
    )


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
