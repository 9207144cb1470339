"""Reconcile a day's recordings with the provider's end-of-day report, in plain Python.

:func:`reconcile` compares the manifest's rows (read by :func:`read_manifest_rows`) with the
report and names every gap: missing, extra, duplicate, empty, other-date, misnamed, rejected,
kept and failed rows. No GX and no I/O beyond reading the manifest: the GX suite
(:mod:`include.cc_intake.gx_suites`) runs beside it and adds its own evidence.

Rejected files never fail a day by themselves (the count does, if the report counted them).
Phone numbers are masked (``messages.mask_phone``) in the failure message; the findings keep
exact file names (they go to the JSON proof, beside the data).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from include.cc_intake.config import DIRECTIONS, ProviderConfig
from include.cc_intake.errors import ManifestError
from include.cc_intake.manifest import RECEIVED, is_received, read_records
from include.cc_intake.redact import mask_phone
from include.cc_intake.report import DailyReport

ACCEPTED = RECEIVED  # copied + skipped_identical + kept (contract §8): the manifest's rule
NAMES_IN_MESSAGE = 5  # an e-mail subject/first log line must stay readable


def name_list(items: Sequence[str], limit: int = NAMES_IN_MESSAGE) -> str:
    """``a, b, c and 4 more``: the first ``limit`` names, for one-line failure messages."""
    shown = ", ".join(items[:limit])
    more = len(items) - limit
    return f"{shown} and {more} more" if more > 0 else shown


@dataclass(frozen=True)
class FileEntry:
    """One manifest row worth naming; ``detail`` says why (e.g. the date its name carries).

    For a ``kept`` row, ``detail`` is its first ``copied_at``.
    """

    direction: str
    file_name: str
    status: str
    reason: str = ""
    call_id: str = ""
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return is_received(self.status)

    def to_dict(self) -> dict[str, str]:
        return {
            "direction": self.direction,
            "file_name": self.file_name,
            "status": self.status,
            "reason": self.reason,
            "call_id": self.call_id,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class DirectionResult:
    """Expected (report) versus got (accepted manifest rows) for one direction.

    ``missing`` and ``extra`` are known for detail reports only: call ids the report lists
    that we lack, and our files whose call id the report does not list.
    """

    direction: str
    expected: int
    got: int
    allowed_gap: int
    configured: bool = True
    missing: tuple[str, ...] = ()
    extra: tuple[FileEntry, ...] = ()

    @property
    def gap(self) -> int:
        return self.got - self.expected

    @property
    def ok(self) -> bool:
        # With a detail report, swapping one call for another keeps the count but is a gap.
        return (
            abs(self.gap) <= self.allowed_gap
            and len(self.missing) <= self.allowed_gap
            and len(self.extra) <= self.allowed_gap
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "got": self.got,
            "gap": self.gap,
            "allowed_gap": self.allowed_gap,
            "ok": self.ok,
            "configured": self.configured,
            "missing": list(self.missing),
            "extra": [e.to_dict() for e in self.extra],
        }


@dataclass(frozen=True)
class Duplicate:
    """Several accepted recordings carrying the same call id."""

    call_id: str
    files: tuple[FileEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "files": [e.to_dict() for e in self.files]}


@dataclass(frozen=True)
class Reconciliation:
    """The day's recordings against the provider's report; see :func:`reconcile`."""

    provider: str
    day: dt.date
    report_kind: str
    report_source: str
    directions: tuple[DirectionResult, ...]
    duplicates: tuple[Duplicate, ...] = ()
    empty: tuple[FileEntry, ...] = ()
    other_date: tuple[FileEntry, ...] = ()
    bad_names: tuple[FileEntry, ...] = ()
    rejected: tuple[FileEntry, ...] = ()
    kept: tuple[FileEntry, ...] = ()
    failed: tuple[FileEntry, ...] = ()
    warnings: tuple[str, ...] = ()

    def direction(self, name: str) -> DirectionResult:
        return next(d for d in self.directions if d.direction == name)

    @property
    def ok(self) -> bool:
        """Counts within tolerance and no accepted recording that is duplicate, empty,
        of another day or misnamed. Rejected rows alone never fail the day."""
        return (
            all(d.ok for d in self.directions)
            and not self.duplicates
            and not any(e.accepted for e in self.empty)
            and not any(e.accepted for e in self.other_date)
            and not self.bad_names
        )

    def _direction_clause(self, d: DirectionResult) -> str:
        parts: list[str] = []
        if d.missing:
            parts.append(f"{len(d.missing)} missing: {name_list(list(d.missing))}")
        if d.extra:
            parts.append(f"{len(d.extra)} extra: {name_list([e.file_name for e in d.extra])}")
        if not parts and d.gap < 0:
            parts.append(f"{-d.gap} missing")
            rejected_here = [
                f"{e.file_name} ({e.reason})" for e in self.rejected if e.direction == d.direction
            ]
            if rejected_here:
                parts.append(f"rejected here: {name_list(rejected_here)}")
        elif not parts and d.gap > 0:
            parts.append(f"{d.gap} extra")
        if not d.configured:
            parts.append(f"no remote folder is configured for {d.direction}")
        if d.allowed_gap:
            parts.append(f"tolerance {d.allowed_gap}")
        return f"{d.direction} {d.got} recordings, report says {d.expected} ({'; '.join(parts)})"

    def failure_message(self) -> str:
        """One line naming every failure (direction, expected, got, the files); "" when ok."""
        if self.ok:
            return ""
        clauses = [self._direction_clause(d) for d in self.directions if not d.ok]
        for dup in self.duplicates[:NAMES_IN_MESSAGE]:
            clauses.append(
                f"duplicate call_id {dup.call_id}: {name_list([e.file_name for e in dup.files])}"
            )
        if len(self.duplicates) > NAMES_IN_MESSAGE:
            clauses.append(f"{len(self.duplicates) - NAMES_IN_MESSAGE} more duplicate call_ids")
        faults = (
            ("empty recordings", [e for e in self.empty if e.accepted]),
            ("recordings of another day", [e for e in self.other_date if e.accepted]),
            ("names not matching the pattern", list(self.bad_names)),
        )
        for label, entries in faults:
            if entries:
                clauses.append(f"{label}: {name_list([e.file_name for e in entries])}")
        return mask_phone(f"{self.provider} {self.day.isoformat()}: " + "; ".join(clauses))

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "day": self.day.isoformat(),
            "ok": self.ok,
            "message": self.failure_message() or None,
            "report": {"kind": self.report_kind, "source": self.report_source},
            "directions": {d.direction: d.to_dict() for d in self.directions},
            "duplicates": [d.to_dict() for d in self.duplicates],
            "empty": [e.to_dict() for e in self.empty],
            "other_date": [e.to_dict() for e in self.other_date],
            "bad_names": [e.to_dict() for e in self.bad_names],
            "rejected": [e.to_dict() for e in self.rejected],
            "kept": [e.to_dict() for e in self.kept],
            "failed": [e.to_dict() for e in self.failed],
            "warnings": list(self.warnings),
        }


def parse_date(text: str, fmt: str) -> dt.date | None:
    """The date ``text`` spells in ``fmt`` (a file name's date group), or None."""
    try:
        return dt.datetime.strptime(text, fmt).date()
    except ValueError:
        return None


def _size(text: str) -> int | None:
    try:
        return int(str(text).strip())
    except ValueError:
        return None


def reconcile(
    rows: Sequence[Mapping[str, str]], report: DailyReport, cfg: ProviderConfig, day: dt.date
) -> Reconciliation:
    """Compare the day's manifest rows with the report (pure: no GX, no I/O).

    ``got`` counts received rows per direction (``copied``, ``skipped_identical`` and ``kept``:
    a file we hold that the provider has since purged was received); the gap allowed is
    ``daily_report.allowed_gap(expected)``. ``failed`` rows are not received: they are listed
    and warned about. Every direction is reconciled, so a report that
    counts calls in a direction we do not collect is a gap, not a silence.
    """
    pattern = cfg.recordings.pattern
    date_format = cfg.recordings.date_format
    got: dict[str, int] = dict.fromkeys(DIRECTIONS, 0)
    ours: dict[str, dict[str, list[FileEntry]]] = {d: defaultdict(list) for d in DIRECTIONS}
    by_call_id: dict[str, list[FileEntry]] = defaultdict(list)
    empty: list[FileEntry] = []
    other_date: list[FileEntry] = []
    bad_names: list[FileEntry] = []
    rejected: list[FileEntry] = []
    kept: list[FileEntry] = []
    failed: list[FileEntry] = []
    warnings = [f"report: {w}" for w in report.warnings]
    odd_directions: set[str] = set()
    odd_statuses: set[str] = set()

    for row in rows:
        direction = (row.get("direction") or "").strip()
        status = (row.get("status") or "").strip()
        name = row.get("file_name") or ""
        entry = FileEntry(
            direction=direction,
            file_name=name,
            status=status,
            reason=(row.get("reason") or "").strip(),
            call_id=(row.get("call_id") or "").strip(),
        )
        if status == "rejected":
            rejected.append(entry)
            if entry.reason == "empty":
                empty.append(entry)
            elif entry.reason == "other_date":
                other_date.append(replace(entry, detail=row.get("date") or ""))
            continue
        if status == "failed":
            failed.append(entry)
            continue
        if not entry.accepted:
            odd_statuses.add(status)
            continue
        if status == "kept":
            kept.append(replace(entry, detail=row.get("copied_at") or ""))
        if direction not in got:
            odd_directions.add(direction)
            continue
        got[direction] += 1
        size = _size(row.get("size_bytes") or "")
        if size is None or size <= 0:
            empty.append(replace(entry, detail=f"size_bytes={row.get('size_bytes') or ''}"))
        raw_date = row.get("date") or ""
        if parse_date(raw_date, date_format) != day:
            other_date.append(replace(entry, detail=raw_date))
        if pattern.match(name) is None:
            # Named once: such a name has no call_id either.
            bad_names.append(replace(entry, detail="does not match filename_pattern"))
        elif not entry.call_id:
            bad_names.append(replace(entry, detail="no call_id"))
        if not entry.call_id:
            continue
        ours[direction][entry.call_id].append(entry)
        by_call_id[entry.call_id].append(entry)

    if odd_statuses:
        warnings.append(
            f"manifest rows with unknown status ignored: {name_list(sorted(odd_statuses))}"
        )
    if odd_directions:
        warnings.append(
            f"manifest rows with unknown direction: {name_list(sorted(odd_directions))}"
        )
    # The copy step reads each recording's audio header: a truncated or non-audio file lands
    # (nothing is dropped) but the evaluators must hear about it.
    not_audio = sorted(
        row.get("file_name", "")
        for row in rows
        if is_received(row.get("status") or "") and row.get("audio_ok") == "false"
    )
    if not_audio:
        warnings.append(
            f"{len(not_audio)} recording(s) truncated or not audio: {name_list(not_audio)}"
        )

    if failed:
        warnings.append(
            f"{len(failed)} recording(s) whose copy failed: "
            + name_list([f"{e.file_name} ({e.reason})" for e in failed])
        )

    results = []
    for direction in DIRECTIONS:
        expected = report.counts.get(direction, 0)
        missing: tuple[str, ...] = ()
        extra: tuple[FileEntry, ...] = ()
        if report.call_ids is not None:
            listed = set(report.call_ids.get(direction, ()))
            missing = tuple(sorted(listed - set(ours[direction])))
            extra = tuple(
                e
                for call_id in sorted(set(ours[direction]) - listed)
                for e in ours[direction][call_id]
            )
        result = DirectionResult(
            direction=direction,
            expected=expected,
            got=got[direction],
            allowed_gap=cfg.daily_report.allowed_gap(expected),
            configured=direction in cfg.recordings.directions,
            missing=missing,
            extra=extra,
        )
        if result.ok and result.gap:
            warnings.append(
                f"{direction}: {result.got} recordings, report says {expected} "
                f"(within the tolerance of {result.allowed_gap})"
            )
        results.append(result)

    duplicates = tuple(
        Duplicate(call_id, tuple(entries))
        for call_id, entries in sorted(by_call_id.items())
        if len(entries) > 1
    )
    return Reconciliation(
        provider=cfg.id,
        day=day,
        report_kind=report.kind,
        report_source=report.source,
        directions=tuple(results),
        duplicates=duplicates,
        empty=tuple(empty),
        other_date=tuple(other_date),
        bad_names=tuple(bad_names),
        rejected=tuple(rejected),
        kept=tuple(kept),
        failed=tuple(failed),
        warnings=tuple(warnings),
    )


def recording_gaps(reconciliation: Mapping[str, Any]) -> dict[str, list[str]]:
    """The files behind a failed reconciliation, per kind of gap, from its proof section.

    ``reconciliation`` is :meth:`Reconciliation.to_dict` as kept in the proof (the operator
    has only that).

    Keys are those the reconciliation e-mail lists (``missing``, ``extra``, ``duplicate``,
    ``empty``, ``other_date``, ``unrecognised``, ``rejected``); only accepted rows count as
    empty or of another day, as in the verdict.
    """
    directions = (reconciliation.get("directions") or {}).items()

    def names(key: str, *, accepted_only: bool = False) -> list[str]:
        entries = reconciliation.get(key) or []
        return [
            str(e.get("file_name"))
            for e in entries
            if not accepted_only or is_received(str(e.get("status")))
        ]

    return {
        "missing": [
            f"{name} : {call}" for name, d in directions for call in d.get("missing") or []
        ],
        "extra": [str(e.get("file_name")) for _, d in directions for e in d.get("extra") or []],
        "duplicate": [
            f"{dup.get('call_id')} : " + ", ".join(str(e.get("file_name")) for e in dup["files"])
            for dup in reconciliation.get("duplicates") or []
        ],
        "empty": names("empty", accepted_only=True),
        "other_date": names("other_date", accepted_only=True),
        "unrecognised": names("bad_names"),
        "rejected": [
            f"{e.get('file_name')} ({e.get('reason')})"
            for e in reconciliation.get("rejected") or []
        ],
    }


def read_manifest_rows(path: Path, cfg: ProviderConfig, day: dt.date) -> list[dict[str, str]]:
    """The manifest's rows as dicts (what :func:`reconcile` takes); errors name the file.

    Read by :func:`include.cc_intake.manifest.read_records`, as every manifest is; unlike
    :func:`~include.cc_intake.manifest.read_manifest` (for which a missing file is an empty
    day), a missing, unreadable or incomplete manifest is a :class:`ManifestError` here.
    """
    try:
        header, rows = read_records(path)
    except FileNotFoundError:
        raise ManifestError(
            f"{cfg.id} {day.isoformat()}: manifest {path} not found "
            f"(expected the copy step's manifest of the day)",
            provider=cfg.id,
            day=day,
            path=path,
        ) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(
            f"{cfg.id} {day.isoformat()}: manifest {path} cannot be read ({exc})",
            provider=cfg.id,
            day=day,
            path=path,
        ) from None
    needed = ["direction", "file_name", "size_bytes", "status", "call_id", "date"]
    absent = [c for c in needed if c not in header]
    if absent:
        raise ManifestError(
            f"{cfg.id} {day.isoformat()}: manifest {path.name} lacks the columns "
            f"{', '.join(absent)} (expected {', '.join(needed)} at least)",
            provider=cfg.id,
            day=day,
            path=path,
        )
    return rows
