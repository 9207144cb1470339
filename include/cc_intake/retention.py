"""Retention of personal data: which landed days go, and going (contract §10.3, #12).

The recordings (``recordings/<provider>/<day>/``) and the digital content
(``digital/<provider>/<day>/interactions.jsonl``) of a day older than the retention are
deleted; the manifests, reports and proof files (``manifests/``, ``reports/``, ``quality/``)
stay: they are the audit trail. The day's ``summary.json`` gains ``purged_at`` and
``purged`` (kind → time), and every deletion — or, in a dry run, what would go — is appended
to ``<data_root>/audit/retention.jsonl``.

- :func:`plan` is pure reading: which files of which days would go, and which days are
  refused (not green, unless ``purge_incomplete``);
- :func:`execute` deletes (unless dry run), marks the summaries and writes the journal.

A day is older than a retention of N days when ``today - day > N`` days (``90d`` keeps the
last 90 processed days). No Airflow here; the housekeeping DAG reads the settings and calls us.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from include.cc_intake.config import RetentionConfig, parse_days
from include.cc_intake.errors import ConfigError, IntakeError
from include.cc_intake.layout import FILE_MODE, DayLayout, atomic_writer, make_dirs
from include.cc_intake.status import GREEN

Kind = Literal["recordings", "digital"]
KINDS: tuple[Kind, ...] = ("recordings", "digital")
DIGITAL_CONTENT = "interactions.jsonl"
JOURNAL = Path("audit") / "retention.jsonl"


class PurgedDayError(IntakeError):
    """A re-run of a day the retention purged, without ``restore``: nothing is re-copied."""

    retryable = False
    FACTS = ("purged_at", "kinds")

    def __init__(
        self,
        message: str,
        *,
        purged_at: str | None = None,
        kinds: tuple[str, ...] = (),
        **where: Any,
    ) -> None:
        super().__init__(message, **where)
        self.purged_at = purged_at
        self.kinds = kinds


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class RetentionSettings:
    """How long each kind is kept (days; None = keep), and how the purge behaves."""

    recordings: int | None = None
    digital: int | None = None
    dry_run: bool = True
    purge_incomplete: bool = False

    def days(self, kind: Kind) -> int | None:
        return self.recordings if kind == "recordings" else self.digital

    @property
    def active(self) -> bool:
        return self.recordings is not None or self.digital is not None


def _flag(name: str, value: str | None, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true/false), got {value!r}")


def _days(name: str, value: str | None) -> int | None:
    if value is None or not value.strip() or value.strip().lower() in ("keep", "none"):
        return None
    try:
        return parse_days(value)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc} (e.g. 90d; unset or 'keep' keeps forever)") from None


def project_settings(read: Callable[[str], str | None]) -> RetentionSettings:
    """The project's settings from ``read(name)`` (the run-time settings lookup)."""
    return RetentionSettings(
        recordings=_days("CC_INTAKE_RETENTION_RECORDINGS", read("CC_INTAKE_RETENTION_RECORDINGS")),
        digital=_days("CC_INTAKE_RETENTION_DIGITAL", read("CC_INTAKE_RETENTION_DIGITAL")),
        dry_run=_flag("CC_INTAKE_RETENTION_DRY_RUN", read("CC_INTAKE_RETENTION_DRY_RUN"), True),
        purge_incomplete=_flag(
            "CC_INTAKE_RETENTION_PURGE_INCOMPLETE",
            read("CC_INTAKE_RETENTION_PURGE_INCOMPLETE"),
            False,
        ),
    )


def for_provider(project: RetentionSettings, override: RetentionConfig) -> RetentionSettings:
    """The provider's YAML ``retention:`` wins over the project's, key by key."""
    return RetentionSettings(
        recordings=override.recordings if override.recordings is not None else project.recordings,
        digital=override.digital if override.digital is not None else project.digital,
        dry_run=project.dry_run,
        purge_incomplete=(
            override.purge_incomplete
            if override.purge_incomplete is not None
            else project.purge_incomplete
        ),
    )


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class PlannedDay:
    """One provider-day past its retention: the files that go, or why it is kept."""

    provider: str
    day: dt.date
    status: str | None  # the summary's status (None: no readable summary)
    kinds: tuple[Kind, ...]
    files: tuple[Path, ...]
    bytes: int
    refused: str | None = None  # the day is kept, and why

    @property
    def goes(self) -> bool:
        return self.refused is None and bool(self.files)


def _day_folders(root: Path, kind: Kind, provider: str) -> Iterator[dt.date]:
    base = root / kind / provider
    if not base.is_dir():
        return
    for entry in base.iterdir():
        with contextlib.suppress(ValueError):
            if entry.is_dir():
                yield dt.date.fromisoformat(entry.name)


def _files_of(layout: DayLayout, kind: Kind) -> list[Path]:
    if kind == "recordings":
        folder = layout.recordings_dir("ENTRANTS").parent
        return sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    folder = layout.digital_dir
    # The content and any of its temporary copies; nothing else lives there.
    return sorted(p for p in folder.glob("*") if p.is_file() and DIGITAL_CONTENT in p.name)


def read_summary(layout: DayLayout) -> dict[str, Any] | None:
    try:
        data = json.loads((layout.quality_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def plan(
    root: Path, provider: str, today: dt.date, settings: RetentionSettings
) -> list[PlannedDay]:
    """The provider's days past their retention that still hold personal data, oldest first."""
    by_day: dict[dt.date, list[Kind]] = {}
    for kind in KINDS:
        keep = settings.days(kind)
        if keep is None:
            continue
        for day in _day_folders(root, kind, provider):
            if (today - day).days > keep:
                by_day.setdefault(day, []).append(kind)
    planned = []
    for day in sorted(by_day):
        layout = DayLayout(root, provider, day)
        kinds = tuple(by_day[day])
        files = [path for kind in kinds for path in _files_of(layout, kind)]
        if not files:
            continue  # purged already, or nothing ever landed
        size = 0
        for path in files:
            with contextlib.suppress(OSError):
                size += path.lstat().st_size
        summary = read_summary(layout)
        status = summary.get("status") if summary else None
        refused = None
        if status != GREEN and not settings.purge_incomplete:
            refused = (
                f"{provider} {day}: the day is {status or 'without a verdict'}, not green; "
                "kept (set purge_incomplete to purge such days too)"
            )
        planned.append(
            PlannedDay(provider, day, status, kinds, tuple(files), size, refused=refused)
        )
    return planned


# --------------------------------------------------------------------------- execute


@dataclass
class Outcome:
    """What a purge pass did for one provider (small enough for XCom)."""

    provider: str
    dry_run: bool
    days: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "dry_run": self.dry_run, "days": self.days}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def append_journal(root: Path, record: Mapping[str, Any]) -> Path:
    """Append one JSON line to ``audit/retention.jsonl`` (0640), fsynced."""
    path = root / JOURNAL
    make_dirs(path.parent, stop_at=root)
    line = json.dumps(dict(record), ensure_ascii=False, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def mark_purged(layout: DayLayout, kinds: tuple[Kind, ...], when: str) -> Path | None:
    """Add ``purged_at`` and ``purged`` to the day's ``summary.json`` (atomic rewrite)."""
    summary = read_summary(layout)
    if summary is None:  # no verdict to annotate (purge_incomplete): the journal says it
        return None
    earlier = summary.get("purged")
    purged: dict[str, Any] = dict(earlier) if isinstance(earlier, dict) else {}
    for kind in kinds:
        purged[kind] = when
    summary["purged"] = purged
    summary["purged_at"] = when
    path = layout.quality_dir / "summary.json"
    with atomic_writer(path, secrets.token_hex(5), root=layout.root, binary=True) as out:
        out.write((json.dumps(summary, indent=1) + "\n").encode("utf-8"))
    return path


def _remove_empty_dirs(folder: Path) -> None:
    if not folder.is_dir():
        return
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            sub.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


def execute(
    root: Path,
    planned: list[PlannedDay],
    *,
    dry_run: bool,
    lock: Callable[[DayLayout], contextlib.AbstractContextManager[Any]] | None = None,
) -> Outcome:
    """Delete what ``planned`` lists (unless ``dry_run``), mark the days, journal everything.

    ``lock`` serialises with the day's other summary writers (the Airflow layer's day lock).
    Refused days are journalled as such and left whole.
    """
    provider = planned[0].provider if planned else ""
    outcome = Outcome(provider, dry_run)
    for item in planned:
        layout = DayLayout(root, item.provider, item.day)
        record: dict[str, Any] = {
            "time": _now(),
            "provider": item.provider,
            "day": item.day.isoformat(),
            "kinds": list(item.kinds),
            "status": item.status,
            "files": [str(p.relative_to(layout.root)) for p in item.files],
            "bytes": item.bytes,
            "dry_run": dry_run,
        }
        if item.refused is not None:
            record["action"] = "refused"
            record["reason"] = item.refused
        elif dry_run:
            record["action"] = "would_delete"
        else:
            guard = lock(layout) if lock is not None else contextlib.nullcontext()
            with guard:
                for path in item.files:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                if "recordings" in item.kinds:
                    _remove_empty_dirs(layout.recordings_dir("ENTRANTS").parent)
                when = _now()
                mark_purged(layout, item.kinds, when)
            record["action"] = "deleted"
            record["purged_at"] = when
        append_journal(root, record)
        outcome.days.append(
            {
                "day": record["day"],
                "action": record["action"],
                "kinds": record["kinds"],
                "files": len(item.files),
                "bytes": item.bytes,
                **({"reason": item.refused} if item.refused else {}),
            }
        )
    return outcome


# --------------------------------------------------------------------------- re-runs


def purged_kinds(summary: Mapping[str, Any] | None) -> dict[str, str]:
    """Kind → purge time, from a day's summary (``purged_at`` alone means both)."""
    if not summary or not summary.get("purged_at"):
        return {}
    purged = summary.get("purged")
    if isinstance(purged, dict) and purged:
        return {str(k): str(v) for k, v in purged.items()}
    return {kind: str(summary["purged_at"]) for kind in KINDS}


def lift_purged(layout: DayLayout, kind: Kind) -> bool:
    """Remove ``kind``'s purge mark once a ``restore`` run landed it again; whether it had one.

    The other kind's mark stays (``purged_at`` becomes its time), so its re-run is still
    refused. Atomic rewrite; the caller holds the day lock.
    """
    summary = read_summary(layout)
    kinds = purged_kinds(summary)
    if summary is None or kind not in kinds:
        return False
    del kinds[kind]
    summary.pop("purged", None)
    summary.pop("purged_at", None)
    if kinds:
        summary["purged"] = kinds
        summary["purged_at"] = max(kinds.values())
    path = layout.quality_dir / "summary.json"
    with atomic_writer(path, secrets.token_hex(5), root=layout.root, binary=True) as out:
        out.write((json.dumps(summary, indent=1) + "\n").encode("utf-8"))
    return True


def refuse_purged(
    layout: DayLayout, kind: Kind, *, restore: bool, log: Callable[[str], None]
) -> None:
    """Raise :class:`PurgedDayError` when ``kind`` of the day was purged and no ``restore``."""
    kinds = purged_kinds(read_summary(layout))
    if kind not in kinds:
        return
    when = kinds[kind]
    if restore:
        log(
            f"{layout.provider} {layout.day}: {kind} purged at {when}; restore requested, "
            "landing the day again"
        )
        return
    raise PurgedDayError(
        f"{layout.provider} {layout.day}: this day's {kind} were purged at {when} by the "
        "retention policy (personal data); nothing is copied again without asking. To land "
        f'the day again on purpose, trigger with conf {{"target_date": "{layout.day}", '
        '"restore": true}. / Journée purgée le '
        f"{when} (conservation des données) : relancer avec restore=true pour la recopier.",
        provider=layout.provider,
        day=layout.day,
        purged_at=when,
        kinds=tuple(sorted(kinds)),
    )
