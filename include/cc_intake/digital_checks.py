"""The digital checks: read the day's exported interactions and name what is wrong, in Python.

:func:`read_export` reads the export (one JSON object a line) into the columns the GX suite
validates (:func:`include.cc_intake.gx_suites.validate_digital`) and into
:class:`DigitalChecks`, the faults by line: duplicate or missing ids, times outside the day or
unreadable, empty contents, the count against the CRM's stated total, and what the export
step saw (conflicting versions of an id). Only ids, times and content *lengths* are kept:
conversations are personal data.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.cc_intake.config import ProviderConfig
from include.cc_intake.crm import get_path
from include.cc_intake.days import day_bounds
from include.cc_intake.errors import ValidationError
from include.cc_intake.reconcile import NAMES_IN_MESSAGE, name_list
from include.cc_intake.redact import mask_phone


def parse_timestamp(value: Any, tz: Any) -> dt.datetime | None:
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
            return parse_timestamp(float(text), tz)
        except (ValueError, OverflowError, OSError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(tz)


def content_length(value: Any) -> int:
    """How much an interaction says: characters of a text, items of a list or object."""
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.strip())
    if isinstance(value, Mapping | list | tuple):
        return len(value)
    return len(str(value))


@dataclass
class DigitalChecks:
    """What the digital checks found, line by line (ids, times and content lengths only)."""

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
        """One phrase per fault, for the failure message; empty when the export is sound."""
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
                + name_list(sorted(self.duplicate_ids))
            )
        if self.without_id:
            out.append(
                f"{len(self.without_id)} without {cfg.digital.id_field} (lines "
                + name_list([str(n) for n in self.without_id])
                + ")"
            )
        if self.outside_day:
            out.append(
                f"{len(self.outside_day)} outside the day: "
                + name_list([f"{x['id']} at {x['timestamp']}" for x in self.outside_day])
            )
        if self.bad_timestamps:
            out.append(
                f"{len(self.bad_timestamps)} without a readable {cfg.digital.timestamp_field}: "
                + name_list([f"line {x['line']}" for x in self.bad_timestamps])
            )
        if self.empty_content:
            out.append(
                f"{len(self.empty_content)} with empty {cfg.digital.content_field}: "
                + name_list(
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


@dataclass
class DigitalExport:
    """The export read line by line: the suite's columns and the checks' findings."""

    checks: DigitalChecks
    lines: list[int] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)
    stamps: list[dt.datetime | None] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)


def read_export(
    jsonl_path: Path,
    stated_total: int | None,
    cfg: ProviderConfig,
    day: dt.date,
    *,
    export: Mapping[str, Any] | None = None,
) -> DigitalExport:
    """Read ``jsonl_path`` and check each interaction (see the module docstring).

    ``export`` is what the export step reported (``duplicates_dropped``, ``conflicting_ids``,
    ``conflicting_examples``). A missing file, a line that is not a JSON object or a provider
    without a ``digital`` section raise :class:`ValidationError` naming provider, day and file.
    """
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
    exported = export or {}
    checks = DigitalChecks(
        stated_total=stated_total,
        duplicates_dropped=int(exported.get("duplicates_dropped") or 0),
        conflicting_ids=int(exported.get("conflicting_ids") or 0),
        conflicting_examples=[str(x) for x in exported.get("conflicting_examples") or []],
    )
    read = DigitalExport(checks=checks)
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
            read.lines.append(number)
            raw_id = get_path(record, id_col)
            record_id = None if raw_id is None or str(raw_id).strip() == "" else str(raw_id)
            read.ids.append(record_id)
            if record_id is None:
                checks.without_id.append(number)
            elif record_id in seen:
                checks.duplicate_ids.setdefault(record_id, [seen[record_id]]).append(number)
            else:
                seen[record_id] = number
            if ts_col:
                raw_ts = get_path(record, ts_col)
                moment = parse_timestamp(raw_ts, tz)
                read.stamps.append(moment)
                if moment is None:
                    checks.bad_timestamps.append({"id": record_id, "line": number, "value": raw_ts})
                elif not start <= moment < end:
                    checks.outside_day.append(
                        {"id": record_id, "line": number, "timestamp": moment.isoformat()}
                    )
            if dig.content_field:
                length = content_length(get_path(record, dig.content_field))
                read.lengths.append(length)
                if length == 0:
                    checks.empty_content.append({"id": record_id, "line": number})
    checks.records = len(read.lines)
    return read


def conflict_warnings(checks: DigitalChecks, id_field: str) -> list[str]:
    """The warning for ids the CRM sent with conflicting contents (it makes the day amber)."""
    if not checks.conflicting_ids:
        return []
    shown = checks.conflicting_examples[:NAMES_IN_MESSAGE]
    named = ", ".join(shown)
    if checks.conflicting_ids > len(shown):
        named += f" and {checks.conflicting_ids - len(shown)} more"
    return [
        mask_phone(
            f"{checks.conflicting_ids} {id_field} received with conflicting contents, the last "
            f"version of each kept: {named}"
        )
    ]
