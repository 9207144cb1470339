"""Prove a day complete: reconcile with the report, validate with Great Expectations, keep proof.

- :func:`reconcile` compares the manifest with the provider's end-of-day report, in plain
  Python, and names every gap (missing, extra, duplicate, empty, other-date, rejected).
- :func:`validate_recordings` and :func:`validate_digital` run a GX 1.x suite in an ephemeral
  context (imported inside the function: DAG parsing stays cheap) and return GX's result as a
  JSON-able dict, ``"success"`` at the top level, plus our own section naming the faults.
  The top-level ``success`` is GX's verdict *and* ours (``gx_success`` keeps GX's alone);
  ``failure`` is the one-line message for the task log and the e-mail, or None.
- :func:`write_proof` and :func:`write_summary` write ``quality/<provider>/<day>/``
  (contract §7 *Proof files*) atomically; the pages (self-contained HTML in French) are
  rendered by :mod:`include.cc_intake.proof_pages`.

Day status in ``summary.json`` (the overview page reads only that file):

- ``red``: a validation failed (recordings or digital);
- ``amber``: everything present passed, but something deserves a look: rejected files,
  warnings (a gap within the tolerance, a report line counted twice, CRM ids received with
  conflicting contents, …), or the recordings have not been validated yet;
- ``green``: every validation present passed with nothing rejected and no warning.

Rejected files never fail a day by themselves (the count does, if the report counted them).
Phone numbers are masked (``messages.mask_phone``: country prefix + last two digits) in
failure messages and pages; the JSON proofs keep exact file names (they sit beside the data).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import secrets
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from include.cc_intake.config import DIRECTIONS, ProviderConfig
from include.cc_intake.constants import STATUS_CONFIG_ERROR
from include.cc_intake.days import day_bounds
from include.cc_intake.errors import ManifestError, ValidationError
from include.cc_intake.layout import atomic_writer, storage_errors
from include.cc_intake.manifest import RECEIVED, is_received
from include.cc_intake.messages import mask_phone
from include.cc_intake.proof_pages import render_digital_page, render_recordings_page
from include.cc_intake.report import DailyReport

if TYPE_CHECKING:
    import pandas as pd

ProofKind = Literal["recordings", "digital"]
Status = Literal["green", "amber", "red"]

ACCEPTED = RECEIVED  # copied + skipped_identical + kept (contract §8): the manifest's rule
NAMES_IN_MESSAGE = 5  # an e-mail subject/first log line must stay readable
SAMPLE_IN_RESULT = 20  # GX's partial_unexpected_* lists

# --------------------------------------------------------------------------------------------
# Reconciliation (pure)


def _names(items: Sequence[str], limit: int = NAMES_IN_MESSAGE) -> str:
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
            parts.append(f"{len(d.missing)} missing: {_names(list(d.missing))}")
        if d.extra:
            parts.append(f"{len(d.extra)} extra: {_names([e.file_name for e in d.extra])}")
        if not parts and d.gap < 0:
            parts.append(f"{-d.gap} missing")
            rejected_here = [
                f"{e.file_name} ({e.reason})" for e in self.rejected if e.direction == d.direction
            ]
            if rejected_here:
                parts.append(f"rejected here: {_names(rejected_here)}")
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
                f"duplicate call_id {dup.call_id}: {_names([e.file_name for e in dup.files])}"
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
                clauses.append(f"{label}: {_names([e.file_name for e in entries])}")
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


def _parse_date(text: str, fmt: str) -> dt.date | None:
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
        if _parse_date(raw_date, date_format) != day:
            other_date.append(replace(entry, detail=raw_date))
        if pattern.match(name) is None:
            bad_names.append(replace(entry, detail="does not match filename_pattern"))
        if not entry.call_id:
            bad_names.append(replace(entry, detail="no call_id"))
            continue
        ours[direction][entry.call_id].append(entry)
        by_call_id[entry.call_id].append(entry)

    if odd_statuses:
        warnings.append(
            f"manifest rows with unknown status ignored: {_names(sorted(odd_statuses))}"
        )
    if odd_directions:
        warnings.append(f"manifest rows with unknown direction: {_names(sorted(odd_directions))}")
    # The copy step reads each recording's audio header: a truncated or non-audio file lands
    # (nothing is dropped) but the evaluators must hear about it.
    not_audio = sorted(
        row.get("file_name", "")
        for row in rows
        if is_received(row.get("status") or "") and row.get("audio_ok") == "false"
    )
    if not_audio:
        warnings.append(
            f"{len(not_audio)} recording(s) truncated or not audio: {_names(not_audio)}"
        )

    if failed:
        warnings.append(
            f"{len(failed)} recording(s) whose copy failed: "
            + _names([f"{e.file_name} ({e.reason})" for e in failed])
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


# --------------------------------------------------------------------------------------------
# Great Expectations


def _run_suite(
    name: str, df: pd.DataFrame, expectations: list[Any], index_columns: list[str]
) -> dict[str, Any]:
    """Validate ``df`` with ``expectations`` in a fresh ephemeral context; GX's result dict."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # Task logs must not fill with tqdm bars (contract §7 *Proof files*).
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = (
        context.data_sources.add_pandas(name)
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe("day")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )
    with warnings.catch_warnings():
        # pandas notes that filename_pattern has groups; GX only needs match / no match.
        warnings.filterwarnings(
            "ignore", message="This pattern is interpreted", category=UserWarning
        )
        result = definition.run(
            batch_parameters={"dataframe": df},
            result_format={
                "result_format": "SUMMARY",
                "partial_unexpected_count": SAMPLE_IN_RESULT,
                "unexpected_index_column_names": index_columns,
            },
        )
    # Round-trip through JSON so the caller gets plain types (numpy scalars, datetimes…).
    return json.loads(json.dumps(result.to_json_dict(), default=str))


def _gx_failures(result: Mapping[str, Any]) -> list[str]:
    out = []
    for item in result.get("results", []):
        if item.get("success"):
            continue
        config = item.get("expectation_config", {})
        label = config.get("description") or config.get("type", "expectation")
        out.append(str(label))
    return out


def _with_verdict(
    result: dict[str, Any],
    kind: ProofKind,
    cfg: ProviderConfig,
    day: dt.date,
    *,
    ok: bool,
    failure: str | None,
    warnings: list[str],
    **findings: dict[str, Any],
) -> dict[str, Any]:
    """GX's ``result`` with our verdict and ``findings`` added (see the module docstring)."""
    gx_success = bool(result.get("success"))
    result.update(
        {
            "success": gx_success and ok,
            "gx_success": gx_success,
            "kind": kind,
            "provider": cfg.id,
            "day": day.isoformat(),
            "failure": failure,
            "warnings": warnings,
            **findings,
        }
    )
    return result


def read_manifest_rows(path: Path, cfg: ProviderConfig, day: dt.date) -> list[dict[str, str]]:
    """The manifest's rows as dicts (what :func:`reconcile` takes); errors name the file."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = reader.fieldnames or []
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


def validate_recordings(
    manifest_csv: Path, report: DailyReport, cfg: ProviderConfig, day: dt.date
) -> dict[str, Any]:
    """Run the recordings suite over the manifest's accepted rows and reconcile with the report.

    Expectations: per direction, the row count is within ``expected ± allowed_gap``; ``call_id``
    is present and unique over the day; ``size_bytes > 0``; the ``date`` group, parsed with
    ``recordings.date_format``, is the day; ``file_name`` matches ``filename_pattern``; with a
    detail report, every ``call_id`` is one the report lists for its direction.
    """
    import great_expectations.expectations as gxe
    import pandas as pd
    from great_expectations.expectations.row_conditions import Column

    rows = read_manifest_rows(manifest_csv, cfg, day)
    rec = reconcile(rows, report, cfg, day)
    date_format = cfg.recordings.date_format

    def parsed(raw: str) -> str:
        value = _parse_date(raw, date_format)
        return value.isoformat() if value else f"unreadable {raw!r}"

    accepted = [r for r in rows if is_received(r.get("status") or "")]
    df = pd.DataFrame(
        {
            "direction": pd.Series([r["direction"] for r in accepted], dtype="object"),
            "file_name": pd.Series([r["file_name"] for r in accepted], dtype="object"),
            "call_id": pd.Series(
                [(r.get("call_id") or "").strip() or None for r in accepted], dtype="object"
            ),
            "size_bytes": pd.to_numeric(
                pd.Series([r.get("size_bytes") or None for r in accepted], dtype="object"),
                errors="coerce",
            ),
            "date": pd.Series([r.get("date") or "" for r in accepted], dtype="object"),
            "parsed_date": pd.Series(
                [parsed(r.get("date") or "") for r in accepted], dtype="object"
            ),
        }
    )

    expectations: list[Any] = []
    for d in rec.directions:
        low, high = max(0, d.expected - d.allowed_gap), d.expected + d.allowed_gap
        expectations.append(
            gxe.ExpectTableRowCountToBeBetween(
                min_value=low,
                max_value=high,
                row_condition=Column("direction") == d.direction,
                description=f"{d.direction} : entre {low} et {high} enregistrements "
                f"(rapport : {d.expected}, tolérance : {d.allowed_gap})",
                meta={"check": "count", "direction": d.direction, "expected": d.expected},
            )
        )
    expectations += [
        gxe.ExpectColumnValuesToNotBeNull(
            column="call_id", description="Chaque enregistrement a un call_id"
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column="call_id", description="Aucun call_id en double sur la journée"
        ),
        gxe.ExpectColumnValuesToNotBeNull(
            column="size_bytes", description="Chaque enregistrement a une taille"
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="size_bytes",
            min_value=0,
            strict_min=True,
            description="Aucun fichier vide (taille > 0 octet)",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="parsed_date",
            value_set=[day.isoformat()],
            description=f"La date du nom de fichier est le {day.isoformat()}",
        ),
        gxe.ExpectColumnValuesToMatchRegex(
            column="file_name",
            # GX searches; the copier matches from the start of the name (re.match): anchor.
            regex=f"^(?:{cfg.recordings.filename_pattern})",
            description="Les noms de fichier suivent filename_pattern",
        ),
    ]
    if report.call_ids is not None:
        for d in rec.directions:
            count = d.got
            mostly = (count - d.allowed_gap) / count if count and d.allowed_gap else 1.0
            expectations.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column="call_id",
                    value_set=list(report.call_ids.get(d.direction, ())),
                    row_condition=Column("direction") == d.direction,
                    mostly=max(0.0, min(1.0, mostly)),
                    description=f"{d.direction} : chaque call_id figure au rapport détaillé",
                    meta={"check": "listed", "direction": d.direction},
                )
            )

    result = _run_suite(f"recordings_{cfg.id}", df, expectations, ["file_name"])
    gx_success = bool(result.get("success"))
    failure = rec.failure_message()
    if not failure and not gx_success:  # pragma: no cover - the checks mirror each other
        failure = mask_phone(
            f"{cfg.id} {day.isoformat()}: recordings validation failed: "
            + "; ".join(_gx_failures(result))
        )
    return _with_verdict(
        result,
        "recordings",
        cfg,
        day,
        ok=rec.ok,
        failure=failure or None,
        warnings=list(rec.warnings),
        reconciliation=rec.to_dict(),
    )


# --------------------------------------------------------------------------------------------
# Digital


def _get_path(obj: Any, path: str) -> Any:
    """Follow a dotted path (``meta.created_at``) into a parsed JSON object; None if absent."""
    current = obj
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(current) <= index < len(current):
                return None
            current = current[index]
        else:
            return None
    return current


def _parse_timestamp(value: Any, tz: Any) -> dt.datetime | None:
    """An aware datetime in ``tz`` from ISO-8601 (naive = provider time) or epoch s/ms."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > 1e11 else value
        return dt.datetime.fromtimestamp(seconds, tz)
    text = str(value).strip()
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        try:
            return _parse_timestamp(float(text), tz)
        except (ValueError, OverflowError, OSError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(tz)


def _content_length(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.strip())
    if isinstance(value, Mapping | list | tuple):
        return len(value)
    return len(str(value))


@dataclass
class _DigitalChecks:
    records: int = 0
    stated_total: int | None = None
    duplicate_ids: dict[str, list[int]] = field(default_factory=dict)
    without_id: list[int] = field(default_factory=list)
    outside_day: list[dict[str, Any]] = field(default_factory=list)
    bad_timestamps: list[dict[str, Any]] = field(default_factory=list)
    empty_content: list[dict[str, Any]] = field(default_factory=list)
    # From the export (it alone saw the versions it did not keep): see crm.export_day.
    duplicates_dropped: int = 0
    conflicting_ids: int = 0
    conflicting_examples: list[str] = field(default_factory=list)

    def clauses(self, cfg: ProviderConfig) -> list[str]:
        assert cfg.digital is not None
        out = []
        if self.stated_total is not None and self.records != self.stated_total:
            gap = self.records - self.stated_total
            what = f"{-gap} missing" if gap < 0 else f"{gap} extra"
            out.append(
                f"{self.records} interactions exported, the CRM says {self.stated_total} ({what})"
            )
        if self.duplicate_ids:
            out.append(
                f"{len(self.duplicate_ids)} duplicate {cfg.digital.id_field}: "
                + _names(sorted(self.duplicate_ids))
            )
        if self.without_id:
            out.append(
                f"{len(self.without_id)} without {cfg.digital.id_field} (lines "
                + _names([str(n) for n in self.without_id])
                + ")"
            )
        if self.outside_day:
            out.append(
                f"{len(self.outside_day)} outside the day: "
                + _names([f"{x['id']} at {x['timestamp']}" for x in self.outside_day])
            )
        if self.bad_timestamps:
            out.append(
                f"{len(self.bad_timestamps)} without a readable {cfg.digital.timestamp_field}: "
                + _names([f"line {x['line']}" for x in self.bad_timestamps])
            )
        if self.empty_content:
            out.append(
                f"{len(self.empty_content)} with empty {cfg.digital.content_field}: "
                + _names(
                    [
                        str(x["id"] if x["id"] is not None else f"line {x['line']}")
                        for x in self.empty_content
                    ]
                )
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "stated_total": self.stated_total,
            "duplicate_ids": [{"id": k, "lines": v} for k, v in sorted(self.duplicate_ids.items())],
            "without_id": self.without_id,
            "outside_day": self.outside_day,
            "bad_timestamps": self.bad_timestamps,
            "empty_content": self.empty_content,
            "duplicates_dropped": self.duplicates_dropped,
            "conflicting_ids": self.conflicting_ids,
            "conflicting_examples": self.conflicting_examples,
        }


def validate_digital(
    jsonl_path: Path,
    stated_total: int | None,
    cfg: ProviderConfig,
    day: dt.date,
    *,
    export: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the digital suite over the day's exported interactions (one JSON object a line).

    Expectations: the count equals the CRM's stated total (when given); ``id_field`` is present
    and unique; ``timestamp_field`` (if set) is readable and inside the day's bounds in the
    provider's zone, end excluded; ``content_field`` (if set) is not empty. Only ids, times and
    content *lengths* enter the frame and the result: conversations are personal data.

    ``export`` is what the export step reported (``duplicates_dropped``, ``conflicting_ids``,
    ``conflicting_examples``): ids the CRM sent with conflicting contents (the last version
    was kept) are counted in the proof and are a warning, which makes the day amber.
    """
    import great_expectations.expectations as gxe
    import pandas as pd

    if cfg.digital is None:
        raise ValidationError(
            f"{cfg.id} {day.isoformat()}: no 'digital' section in the provider configuration",
            provider=cfg.id,
            day=day,
        )
    dig = cfg.digital
    tz = cfg.tz
    start, end = day_bounds(day, tz)
    id_col = dig.id_field
    ts_col = dig.timestamp_field
    content_col = f"{dig.content_field} (longueur)" if dig.content_field else None

    lines: list[int] = []
    ids: list[str | None] = []
    stamps: list[dt.datetime | None] = []
    lengths: list[int] = []
    exported = export or {}
    checks = _DigitalChecks(
        stated_total=stated_total,
        duplicates_dropped=int(exported.get("duplicates_dropped") or 0),
        conflicting_ids=int(exported.get("conflicting_ids") or 0),
        conflicting_examples=[str(x) for x in exported.get("conflicting_examples") or []],
    )
    seen: dict[str, int] = {}
    try:
        handle = jsonl_path.open(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(
            f"{cfg.id} {day.isoformat()}: export {jsonl_path} not found "
            f"(expected the day's interactions, one JSON object per line)",
            provider=cfg.id,
            day=day,
        ) from None
    with handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                record, error = None, exc.msg
            else:
                error = "not an object"
            if not isinstance(record, dict):
                raise ValidationError(
                    f"{cfg.id} {day.isoformat()}: export {jsonl_path.name}, line {number}: "
                    f"{error} (expected one JSON object per line)",
                    provider=cfg.id,
                    day=day,
                )
            lines.append(number)
            raw_id = _get_path(record, id_col)
            record_id = None if raw_id is None or str(raw_id).strip() == "" else str(raw_id)
            ids.append(record_id)
            if record_id is None:
                checks.without_id.append(number)
            elif record_id in seen:
                checks.duplicate_ids.setdefault(record_id, [seen[record_id]]).append(number)
            else:
                seen[record_id] = number
            if ts_col:
                raw_ts = _get_path(record, ts_col)
                moment = _parse_timestamp(raw_ts, tz)
                stamps.append(moment)
                if moment is None:
                    checks.bad_timestamps.append({"id": record_id, "line": number, "value": raw_ts})
                elif not start <= moment < end:
                    checks.outside_day.append(
                        {"id": record_id, "line": number, "timestamp": moment.isoformat()}
                    )
            if dig.content_field:
                length = _content_length(_get_path(record, dig.content_field))
                lengths.append(length)
                if length == 0:
                    checks.empty_content.append({"id": record_id, "line": number})
    checks.records = len(lines)

    columns: dict[str, Any] = {
        "jsonl_line": pd.Series(lines, dtype="int64"),
        id_col: pd.Series(ids, dtype="object"),
    }
    if ts_col:
        utc = [m.astimezone(dt.UTC) if m else None for m in stamps]
        columns[ts_col] = pd.to_datetime(pd.Series(utc, dtype="object"), utc=True).dt.tz_convert(
            cfg.timezone
        )
    if content_col:
        columns[content_col] = pd.Series(lengths, dtype="int64")
    df = pd.DataFrame(columns)

    expectations: list[Any] = []
    if stated_total is not None:
        expectations.append(
            gxe.ExpectTableRowCountToEqual(
                value=stated_total,
                description=f"Nombre d'interactions égal au total annoncé par le CRM "
                f"({stated_total})",
            )
        )
    expectations += [
        gxe.ExpectColumnValuesToNotBeNull(
            column=id_col, description=f"Chaque interaction a un identifiant ({id_col})"
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column=id_col, description=f"Aucun identifiant en double ({id_col})"
        ),
    ]
    if ts_col:
        expectations += [
            gxe.ExpectColumnValuesToNotBeNull(
                column=ts_col, description=f"Chaque interaction a un horodatage lisible ({ts_col})"
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column=ts_col,
                min_value=start,
                max_value=end,
                strict_max=True,
                description=f"Horodatage dans la journée du {day.isoformat()} ({cfg.timezone})",
            ),
        ]
    if content_col:
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=content_col,
                min_value=1,
                description=f"Chaque interaction a un contenu ({dig.content_field} non vide)",
            )
        )

    result = _run_suite(f"digital_{cfg.id}", df, expectations, ["jsonl_line", id_col])
    gx_success = bool(result.get("success"))
    clauses = checks.clauses(cfg)
    failure = None
    if clauses or not gx_success:
        detail = clauses or _gx_failures(result)
        failure = mask_phone(f"{cfg.id} {day.isoformat()}: digital export: " + "; ".join(detail))
    warnings = []
    if checks.conflicting_ids:
        shown = checks.conflicting_examples[:NAMES_IN_MESSAGE]
        named = ", ".join(shown)
        if checks.conflicting_ids > len(shown):
            named += f" and {checks.conflicting_ids - len(shown)} more"
        warnings.append(
            mask_phone(
                f"{checks.conflicting_ids} {id_col} received with conflicting contents, the last "
                f"version of each kept: {named}"
            )
        )
    return _with_verdict(
        result,
        "digital",
        cfg,
        day,
        ok=not clauses,
        failure=failure,
        warnings=warnings,
        checks=checks.to_dict(),
    )


# --------------------------------------------------------------------------------------------
# Proof files


def verdict(result: Mapping[str, Any]) -> Status:
    """green, amber or red for one validation result (see the module docstring)."""
    if not result.get("success"):
        return "red"
    rejected = (result.get("reconciliation") or {}).get("rejected") or []
    if result.get("warnings") or rejected:
        return "amber"
    return "green"


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` under a run-unique temporary sibling, fsync, then rename onto ``path``.

    A refused write (disk full, …) raises :class:`StorageError` naming provider, day and path;
    the previous proof file stays whole.
    """
    # Proof files live at <root>/quality/<provider>/<day>/<name> (DayLayout.quality_dir).
    day_dir = path.parent
    guard = storage_errors(path, provider=day_dir.parent.name, day=day_dir.name, what="proof file")
    with guard, atomic_writer(path, secrets.token_hex(5), binary=True) as handle:
        handle.write(data)


def write_proof(quality_dir: Path, kind: ProofKind, result: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``<kind>.json`` (the full result) and ``<kind>.html`` (the page) in ``quality_dir``."""
    if kind not in ("recordings", "digital"):
        raise ValueError(f"proof kind must be 'recordings' or 'digital', got {kind!r}")
    json_path = quality_dir / f"{kind}.json"
    html_path = quality_dir / f"{kind}.html"
    payload = json.dumps(result, ensure_ascii=False, indent=1, default=str) + "\n"
    _atomic_write(json_path, payload.encode("utf-8"))
    render = render_recordings_page if kind == "recordings" else render_digital_page
    page = render(result, verdict(result))
    _atomic_write(html_path, page.encode("utf-8"))
    return json_path, html_path


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_summary(
    quality_dir: Path,
    *,
    provider: str,
    day: dt.date,
    recordings: Mapping[str, Any] | None = None,
    digital: Mapping[str, Any] | None = None,
    rejected: int | None = None,
    run_id: str | None = None,
    timezone: str | None = None,
) -> Path:
    """Write ``summary.json`` from the day's results (contract §7 *Proof files*).

    ``recordings`` / ``digital`` are results of :func:`validate_recordings` /
    :func:`validate_digital`; a section not given is read from its proof file
    (``recordings.json`` / ``digital.json``) when there is one, so the recordings and digital
    tasks can each update the summary without losing the other's verdict. ``rejected``
    defaults to the recordings result's number of rejected manifest rows. ``kept`` and
    ``failed`` (optional keys, present when not 0) are its numbers of kept and failed rows;
    kept ones are already part of each direction's ``got``. ``run_id`` and ``timezone``, when
    given, are added for the overview's link to the run (optional keys).
    """
    rec = (
        dict(recordings) if recordings is not None else _load_json(quality_dir / "recordings.json")
    )
    dig = dict(digital) if digital is not None else _load_json(quality_dir / "digital.json")

    directions = (rec or {}).get("reconciliation", {}).get("directions", {})
    recordings_section = {
        d: {
            "expected": directions.get(d, {}).get("expected"),
            "got": directions.get(d, {}).get("got"),
        }
        for d in DIRECTIONS
    }
    digital_section = None
    if dig is not None:
        checks = dig.get("checks", {})
        digital_section = {
            "expected": checks.get("stated_total"),
            "got": checks.get("records"),
            "conflicting_ids": checks.get("conflicting_ids") or 0,
        }
    reconciliation = (rec or {}).get("reconciliation", {})
    if rejected is None:
        rejected = len(reconciliation.get("rejected", []))

    verdicts = [verdict(r) for r in (rec, dig) if r is not None]
    if "red" in verdicts:
        status: Status = "red"
    elif rec is None or rejected or "amber" in verdicts:
        status = "amber"
    else:
        status = "green"

    summary: dict[str, Any] = {
        "provider": provider,
        "day": day.isoformat(),
        "status": status,
        "recordings": recordings_section,
        "digital": digital_section,
        "rejected": rejected,
        "updated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    # Optional, only when there are some: kept files are already inside each ``got``, failed
    # copies are warned about; the overview shows both counts.
    for listed in ("kept", "failed"):
        if reconciliation.get(listed):
            summary[listed] = len(reconciliation[listed])
    if run_id is not None:
        summary["run_id"] = run_id
    if timezone is not None:
        summary["timezone"] = timezone
    path = quality_dir / "summary.json"
    _atomic_write(path, (json.dumps(summary, indent=1) + "\n").encode("utf-8"))
    return path


def write_config_error_summary(
    quality_dir: Path,
    *,
    provider: str,
    day: dt.date,
    run_id: str | None = None,
    timezone: str | None = None,
) -> Path | None:
    """Mark the day ``config_error`` (contract §8.1): the provider's YAML was broken when the
    day was due, so nothing was fetched. The overview and the digest read it.

    A day that already has a verdict (green, amber, red) keeps it: a run made before the file
    broke proved that day, and a placeholder run proves nothing. Returns the path written, or
    ``None`` when the earlier verdict was kept.
    """
    path = quality_dir / "summary.json"
    earlier = _load_json(path)
    if earlier is not None and earlier.get("status") in ("green", "amber", "red"):
        return None
    summary: dict[str, Any] = {
        "provider": provider,
        "day": day.isoformat(),
        "status": STATUS_CONFIG_ERROR,
        "recordings": None,
        "digital": None,
        "rejected": None,
        "updated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if run_id is not None:
        summary["run_id"] = run_id
    if timezone is not None:
        summary["timezone"] = timezone
    _atomic_write(path, (json.dumps(summary, indent=1) + "\n").encode("utf-8"))
    return path
