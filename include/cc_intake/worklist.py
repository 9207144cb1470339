"""The evaluators' daily worklist: a stratified, reproducible, append-only sample of the day.

Pure domain module (no Airflow). From the day's manifest (recordings) and ``interactions.jsonl``
(digital), :func:`build_worklist` draws the sample that the provider's ``sampling`` section asks
for and writes ``worklists/<provider>/<day>.csv`` and its French page ``<day>.html``.

Rules (contract §10.4):

- **Population.** Recordings: manifest rows that are received (``copied``, ``skipped_identical``,
  ``kept``), not ``audio_ok=false``, and not shorter than ``min_duration`` by their
  ``duration_s`` (an unknown duration is not proof of a short call: such a file stays in).
  Digital: every interaction of ``interactions.jsonl``, stratified by channel.
- **Size.** ``recordings`` / ``digital``: a count, or a percentage of that population rounded
  up; never more than the population.
- **Strata.** Each item's stratum is its values of the ``strata`` names (``direction``,
  ``agent``, ``hour`` of the call's start in the provider's zone, any pattern group; ``channel``
  applies to digital items only). Every non-empty stratum gets one item while the budget allows
  (largest strata first); the rest goes one item at a time to the stratum furthest below its
  proportional share (``budget × stratum size ÷ population``), so no stratum gets more than its
  share plus the one guaranteed item.
- **Reproducible.** Within a stratum items are taken in the order of a hash of (provider, day,
  ``seed``, kind, item id): the same population gives the same sample on every run, and an
  item's rank does not depend on which other files landed.
- **Append-only.** A re-run reads the worklist already written, keeps every row (with its
  ``added_at``), counts them toward their strata and only tops up to the new budget: work
  given to evaluators is never taken back, even if the file was later excluded.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from include.cc_intake.config import ProviderConfig, SamplingConfig
from include.cc_intake.errors import ManifestError, UnsafePathError
from include.cc_intake.layout import DayLayout, atomic_writer, storage_errors
from include.cc_intake.manifest import ManifestRow, iso_utc, read_manifest

Kind = Literal["recording", "digital"]
COLUMNS = (
    "item_id",
    "kind",
    "direction",
    "agent",
    "started_at",
    "duration_s",
    "path",
    "sha256",
    "stratum",
    "added_at",
)
# Strata that mean something for each kind; the others are ignored for that kind.
DIGITAL_STRATA = ("channel",)
ALL_STRATUM = "tout"  # the one stratum of a sample without strata
UNKNOWN = "?"


@dataclass(frozen=True)
class Item:
    """One row of the worklist (a candidate while ``added_at`` is empty)."""

    item_id: str
    kind: Kind
    direction: str
    agent: str
    started_at: str
    duration_s: str
    path: str  # relative to the data root, POSIX separators
    sha256: str
    stratum: str
    added_at: str = ""

    def row(self) -> dict[str, str]:
        return {key: str(value) for key, value in asdict(self).items()}


@dataclass(frozen=True)
class Worklist:
    """What :func:`build_worklist` wrote: every row, and which of them this run added."""

    provider: str
    day: dt.date
    items: tuple[Item, ...]
    added: int
    csv_path: Path
    html_path: Path

    def count(self, kind: Kind) -> int:
        return sum(item.kind == kind for item in self.items)


# --------------------------------------------------------------------------- paths


def worklist_paths(root: Path, provider: str, day: dt.date) -> tuple[Path, Path]:
    """``worklists/<provider>/<day>.csv`` and ``.html`` under the data root (contract §8)."""
    layout = DayLayout(root, provider, day)
    folder = layout.root / "worklists" / provider
    return folder / f"{day.isoformat()}.csv", folder / f"{day.isoformat()}.html"


# --------------------------------------------------------------------------- sizes


def budget(share: int | str, population: int) -> int:
    """The sample size for ``share`` (a count or ``"n%"``, rounded up) of ``population``."""
    if population <= 0:
        return 0
    if isinstance(share, str):
        percent = float(share.rstrip("%"))
        return min(population, math.ceil(population * percent / 100 - 1e-9))
    return min(population, int(share))


def allocate(
    sizes: Mapping[str, int],
    total: int,
    *,
    start: Mapping[str, int] | None = None,
    order_key: str = "",
) -> dict[str, int]:
    """How many items each stratum should hold for a sample of ``total`` items.

    ``start`` are the items each stratum already holds (a top-up): they count, are never taken
    back, and the result only grows them. First every stratum still empty gets one item,
    largest first (ties broken by a hash of ``order_key`` and the stratum, so reproducibly),
    while the budget allows; then each further item goes to the stratum with the largest gap
    between its proportional share and what it holds, among those with items left.
    """
    held = {name: min(int((start or {}).get(name, 0)), size) for name, size in sizes.items()}
    population = sum(sizes.values())
    left = total - sum(held.values())
    if population == 0 or left <= 0:
        return held
    empty = [name for name, size in sizes.items() if size > 0 and held[name] == 0]
    empty.sort(key=lambda name: (-sizes[name], _rank(order_key, name)))
    for name in empty[:left]:
        held[name] = 1
    left -= min(left, len(empty))
    while left > 0:
        open_strata = [name for name, size in sizes.items() if held[name] < size]
        if not open_strata:
            break
        best = max(
            open_strata,
            key=lambda name: (total * sizes[name] / population - held[name], sizes[name], name),
        )
        held[best] += 1
        left -= 1
    return held


def _rank(seed_base: str, key: str) -> str:
    return hashlib.sha256(f"{seed_base}\x1f{key}".encode()).hexdigest()


def seed_base(provider: str, day: dt.date, seed: str | int | None) -> str:
    """The sample's seed: provider, day and the YAML's optional ``seed``."""
    return f"{provider}\x1f{day.isoformat()}\x1f{'' if seed is None else seed}"


def draw(
    candidates: Sequence[Item],
    share: int | str,
    *,
    existing: Sequence[Item] = (),
    seed: str,
    added_at: str,
) -> list[Item]:
    """The items to append to ``existing`` (same kind) so the sample reaches ``share``.

    ``candidates`` is the eligible population; ``existing`` the rows already given (they may no
    longer be eligible: they stay, and count toward their stratum and the budget).
    """
    total = budget(share, len(candidates))
    given = {item.item_id for item in existing}
    sizes: dict[str, int] = {}
    for item in candidates:
        sizes[item.stratum] = sizes.get(item.stratum, 0) + 1
    held: dict[str, int] = {}
    for item in candidates:
        if item.item_id in given:
            held[item.stratum] = held.get(item.stratum, 0) + 1
    # Rows no longer eligible still use the budget (they were handed out).
    target = total - (len(given) - sum(held.values()))
    wanted = allocate(sizes, target, start=held, order_key=seed)
    by_stratum: dict[str, list[Item]] = {}
    for item in candidates:
        if item.item_id not in given:
            by_stratum.setdefault(item.stratum, []).append(item)
    added: list[Item] = []
    for stratum in sorted(by_stratum):
        pool = sorted(by_stratum[stratum], key=lambda i: _rank(seed, f"{i.kind}\x1f{i.item_id}"))
        need = wanted.get(stratum, 0) - held.get(stratum, 0)
        added.extend(replace(item, added_at=added_at) for item in pool[: max(0, need)])
    return added


# --------------------------------------------------------------------------- populations


def stratum_label(values: Iterable[tuple[str, str]]) -> str:
    parts = [f"{name}={value or UNKNOWN}" for name, value in values]
    return " | ".join(parts) if parts else ALL_STRATUM


def _started_at(groups: Mapping[str, str], day: dt.date, remote_mtime: str, tz: ZoneInfo) -> str:
    """The call's start, local time with its offset: the name's ``time`` group when it has
    one (``143012``, ``14h30``…), else the file's modification time."""
    digits = re.sub(r"\D", "", groups.get("time", ""))
    if len(digits) in (4, 6):
        try:
            moment = dt.datetime.combine(
                day,
                dt.time(int(digits[:2]), int(digits[2:4]), int(digits[4:6] or 0)),
                tzinfo=tz,
            )
            return moment.isoformat()
        except ValueError:
            pass
    try:
        parsed = dt.datetime.fromisoformat(remote_mtime.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return parsed.astimezone(tz).isoformat()


def _hour(started_at: str) -> str:
    return started_at[11:13] if len(started_at) >= 13 else ""


def _duration(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def manifest_rows(cfg: ProviderConfig, day: dt.date, root: Path) -> list[ManifestRow]:
    """The day's manifest rows; an unreadable manifest is a :class:`ManifestError`."""
    layout = DayLayout(root, cfg.id, day)
    try:
        return read_manifest(layout.manifest, cfg.recordings.group_names)
    except (OSError, ValueError, KeyError, csv.Error) as exc:
        raise ManifestError(
            f"{cfg.id} {day}: cannot read the manifest {layout.manifest} to draw the worklist: "
            f"{exc}; expected the CSV the copy step writes",
            provider=cfg.id,
            day=day,
            path=layout.manifest,
        ) from exc


def recording_candidates(
    cfg: ProviderConfig,
    sampling: SamplingConfig,
    day: dt.date,
    root: Path,
    rows: Iterable[ManifestRow],
) -> list[Item]:
    """The day's recordings an evaluator may be given (see the module doc for the rules)."""
    layout = DayLayout(root, cfg.id, day)
    tz = ZoneInfo(cfg.timezone)
    minimum = sampling.min_duration.total_seconds()
    strata = [name for name in sampling.strata if name not in DIGITAL_STRATA]
    items = []
    for row in rows:
        if not row.landed or row.extra.get("audio_ok", "").strip().lower() == "false":
            continue
        seconds = _duration(row.extra.get("duration_s", ""))
        if minimum and seconds is not None and seconds < minimum:
            continue
        started = _started_at(row.groups, day, row.remote_mtime, tz)
        agent = row.groups.get("agent", "")
        values = {"direction": row.direction, "agent": agent, "hour": _hour(started)}
        landed = layout.recording(row.direction, row.file_name)
        items.append(
            Item(
                item_id=f"{row.direction}/{row.file_name}",
                kind="recording",
                direction=row.direction,
                agent=agent,
                started_at=started,
                duration_s=row.extra.get("duration_s", ""),
                path=landed.relative_to(layout.root).as_posix(),
                sha256=row.sha256,
                stratum=stratum_label(
                    (name, values.get(name, row.groups.get(name, ""))) for name in strata
                ),
            )
        )
    return items


def read_interactions(path: Path, *, provider: str, day: dt.date) -> list[dict[str, Any]]:
    """The landed ``interactions.jsonl`` (one JSON object a line); a missing file is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return []
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ManifestError(
                f"{provider} {day}: {path} line {number} is not JSON ({exc}); expected one "
                "interaction object a line as the export writes it",
                provider=provider,
                day=day,
                path=path,
            ) from exc
        if isinstance(record, dict):
            records.append(record)
    return records


def _agent_of(record: Mapping[str, Any]) -> str:
    agent = record.get("agent")
    if isinstance(agent, dict):
        agent = agent.get("id") or agent.get("name")
    return "" if agent is None else str(agent)


def interactions_path(root: Path, provider: str, day: dt.date) -> Path:
    return DayLayout(root, provider, day).digital_dir / "interactions.jsonl"


def digital_candidates(
    cfg: ProviderConfig, day: dt.date, root: Path, records: Iterable[Mapping[str, Any]]
) -> list[Item]:
    """The day's interactions, stratified by channel."""
    if cfg.digital is None:
        return []
    layout = DayLayout(root, cfg.id, day)
    rel = interactions_path(root, cfg.id, day).relative_to(layout.root).as_posix()
    items = []
    for record in records:
        item_id = record.get(cfg.digital.id_field)
        if item_id in (None, ""):
            continue
        canonical = json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        items.append(
            Item(
                item_id=str(item_id),
                kind="digital",
                direction="",
                agent=_agent_of(record),
                started_at=str(record.get(cfg.digital.timestamp_field or "") or ""),
                duration_s="",
                path=rel,
                sha256=hashlib.sha256(canonical.encode()).hexdigest(),
                stratum=stratum_label([("channel", str(record.get("channel") or ""))]),
            )
        )
    return items


# --------------------------------------------------------------------------- the file


def read_worklist(path: Path, *, provider: str, day: dt.date) -> list[Item]:
    """The worklist already written for the day (none if absent), rows in file order."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:
                return []
            missing = [name for name in COLUMNS if name not in reader.fieldnames]
            if missing:
                raise ValueError(f"columns {missing} missing")
            rows = list(reader)
    except FileNotFoundError:
        return []
    except (OSError, ValueError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(
            f"{provider} {day}: the worklist {path} cannot be read ({exc}); expected the CSV "
            f"with columns {', '.join(COLUMNS)}. It is append-only: restore it rather than "
            "delete it, evaluators may have started",
            provider=provider,
            day=day,
            path=path,
        ) from exc
    items = []
    for row in rows:
        kind = row["kind"]
        if kind not in ("recording", "digital"):
            raise ManifestError(
                f"{provider} {day}: the worklist {path} has a row of kind {kind!r}; expected "
                "recording or digital",
                provider=provider,
                day=day,
                path=path,
            )
        items.append(Item(**{name: row[name] or "" for name in COLUMNS}))  # type: ignore[arg-type]
    return items


def write_worklist_csv(path: Path, items: Sequence[Item], *, token: str, root: Path) -> None:
    """The whole worklist, atomically (temp + rename); rows keep their order."""
    guard = storage_errors(path, provider=path.parent.name, day=path.stem, what="worklist")
    with guard, atomic_writer(path, token, root=root) as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        for item in items:
            writer.writerow(item.row())


def build_worklist(
    cfg: ProviderConfig,
    day: dt.date,
    root: Path,
    *,
    now: dt.datetime,
    token: str,
) -> Worklist:
    """Draw (or top up) the day's worklist and write its CSV and page.

    :param cfg: the provider, with a ``sampling`` section.
    :param now: the ``added_at`` of the rows this run adds.
    :param token: the run's token, for the temporary files.
    """
    from include.cc_intake.worklist_page import render_worklist_page

    sampling = cfg.sampling
    if sampling is None:
        raise ValueError(f"{cfg.id} has no sampling section: no worklist to build")
    csv_path, html_path = worklist_paths(root, cfg.id, day)
    root = DayLayout(root, cfg.id, day).root
    existing = read_worklist(csv_path, provider=cfg.id, day=day)
    seed = seed_base(cfg.id, day, sampling.seed)
    stamp = iso_utc(now)
    rows = manifest_rows(cfg, day, root)
    records = (
        read_interactions(interactions_path(root, cfg.id, day), provider=cfg.id, day=day)
        if cfg.digital is not None
        else []
    )
    added = draw(
        recording_candidates(cfg, sampling, day, root, rows),
        sampling.recordings,
        existing=[item for item in existing if item.kind == "recording"],
        seed=seed,
        added_at=stamp,
    )
    added += draw(
        digital_candidates(cfg, day, root, records),
        sampling.digital,
        existing=[item for item in existing if item.kind == "digital"],
        seed=seed,
        added_at=stamp,
    )
    items = (*existing, *added)
    if added or not csv_path.exists():
        write_worklist_csv(csv_path, items, token=token, root=root)
    id_field = cfg.digital.id_field if cfg.digital else ""
    page = render_worklist_page(
        cfg,
        day,
        items,
        codecs={f"{r.direction}/{r.file_name}": r.extra.get("codec", "") for r in rows},
        records={str(r.get(id_field)): r for r in records if r.get(id_field) not in (None, "")},
        generated_at=now,
    )
    guard = storage_errors(html_path, provider=cfg.id, day=day.isoformat(), what="worklist page")
    with guard, atomic_writer(html_path, token, root=root) as handle:
        handle.write(page)
    return Worklist(cfg.id, day, items, len(added), csv_path, html_path)


# --------------------------------------------------------------------------- serving

_PROVIDER_ID = re.compile(r"^[a-z0-9_]+$")


def _real_under(base: Path, candidate: Path, what: str) -> Path:
    """``candidate`` with symlinks resolved, proven to stay under ``base`` (resolved too)."""
    real_base = Path(os.path.realpath(base))
    real = Path(os.path.realpath(candidate))
    if not real.is_relative_to(real_base):
        raise UnsafePathError(f"{what}: resolves outside {base}")
    return real


def page_file(root: Path, provider: str, day: dt.date, suffix: str) -> Path:
    """The day's worklist ``.html`` or ``.csv`` under ``worklists/``, or ``UnsafePathError``."""
    if not _PROVIDER_ID.match(provider) or suffix not in (".html", ".csv"):
        raise UnsafePathError(f"worklist {provider!r} {day} {suffix!r}: not a worklist file")
    csv_path, html_path = worklist_paths(root, provider, day)
    path = html_path if suffix == ".html" else csv_path
    return _real_under(Path(root) / "worklists", path, f"worklist {path}")


def item_file(root: Path, provider: str, day: dt.date, row: int) -> tuple[Item, Path]:
    """The recording of the worklist's row ``row`` (1-based), resolved inside its landing folder.

    Only what the worklist lists is ever served: ``LookupError`` for a row that is not a
    recording of the list, ``UnsafePathError`` for a path that leaves
    ``recordings/<provider>/<day>/`` (``..``, absolute, hidden, or a symlink pointing out).
    """
    if not _PROVIDER_ID.match(provider):
        raise UnsafePathError(f"worklist of {provider!r}: not a provider id")
    csv_path, _ = worklist_paths(root, provider, day)
    items = read_worklist(csv_path, provider=provider, day=day)
    if not 1 <= row <= len(items) or items[row - 1].kind != "recording":
        raise LookupError(f"{provider} {day}: row {row} of {csv_path} is not a recording")
    item = items[row - 1]
    folder = DayLayout(root, provider, day).root / "recordings" / provider / day.isoformat()
    prefix = f"recordings/{provider}/{day.isoformat()}/"
    parts = item.path.split("/")
    if (
        not item.path.startswith(prefix)
        or len(parts) < 5
        or any(part in ("", ".", "..") or part.startswith(".") for part in parts)
        or "\\" in item.path
    ):
        raise UnsafePathError(
            f"{provider} {day}: row {row} of {csv_path} names {item.path!r}; expected a file "
            f"under {prefix}"
        )
    return item, _real_under(folder, Path(root) / item.path, f"{provider} {day} row {row}")
