"""The provider's end-of-day report: how many calls it received and emitted on the day.

The report is a CSV file with a header, already fetched to a local path. Its delimiter is
sniffed from the header (``,`` or ``;``); it may be UTF-8 with or without BOM, or Latin-1 (as
spreadsheet exports often are). Column names are matched trimmed and case-insensitively;
direction values go through ``daily_report.direction_values`` the same way.

Two kinds (contract §7 *Report kinds*):

- ``summary``: one row per direction with ``count_column``; with ``date_column`` only the rows
  of the processed day count. A direction without a row counts 0; a direction on several rows
  (e.g. one row per queue) is summed, with a warning.
- ``detail``: one row per call with ``call_id_column`` and ``direction_column``; the count of
  a direction is its number of distinct call ids. A header without rows is a day without calls.

Anything unexpected raises :class:`ReportError` naming the provider, the day, the file, the
line and what was expected: a wrong report must never be read as a plausible count.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from include.cc_intake.config import DIRECTIONS, DailyReportConfig
from include.cc_intake.errors import ReportError

# Day-first spellings only: the providers are French-speaking, 03/04/2026 is the 3rd of April.
_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y/%m/%d")
_TIME_TAIL = re.compile(r"[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
# Spaces a spreadsheet may put in a count as thousands separators (plain, no-break, thin).
_THOUSANDS = re.compile(r"[ \u00a0\u202f]")


@dataclass(frozen=True)
class DailyReport:
    """What the provider says happened on the day.

    ``counts`` has every direction (absent ones count 0); ``call_ids`` is set for detail
    reports only (sorted distinct ids per direction); ``source`` is the report's file name.
    """

    provider: str
    day: dt.date
    kind: str
    source: str
    counts: Mapping[str, int]
    call_ids: Mapping[str, tuple[str, ...]] | None = None
    warnings: tuple[str, ...] = field(default=())


def parse_report_date(text: str) -> dt.date | None:
    """Read a day written as 2026-11-20, 20261120, 20/11/2026, 20-11-2026, 20.11.2026 or
    2026/11/20, optionally followed by a time; None when it is none of these."""
    value = _TIME_TAIL.sub("", text.strip())
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    return None


def _decode(raw: bytes) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Latin-1 maps every byte, so this cannot fail; it is what legacy exports use.
        return raw.decode("latin-1")


def _sniff_delimiter(text: str) -> str:
    header = next((line for line in text.splitlines() if line.strip()), "")
    return ";" if header.count(";") > header.count(",") else ","


def _quote_list(values: list[str]) -> str:
    return ", ".join(values)


class _Reader:
    """Parsing state for one report file, so every error carries the same context."""

    def __init__(self, name: str, cfg: DailyReportConfig, provider: str, day: dt.date) -> None:
        self.name = name
        self.cfg = cfg
        self.provider = provider
        self.day = day
        self.direction_of = {
            raw.strip().casefold(): direction
            for direction, raws in cfg.direction_values.items()
            for raw in raws
        }
        self.known_values = [raw for raws in cfg.direction_values.values() for raw in raws]

    def fail(self, what: str, line: int | None = None) -> ReportError:
        where = f", line {line}" if line is not None else ""
        return ReportError(
            f"{self.provider} {self.day.isoformat()}: report {self.name}{where}: {what}",
            provider=self.provider,
            day=self.day,
        )

    def text(self, raw: bytes) -> str:
        text = _decode(raw)
        if not text.strip():
            rows = "one row per call" if self.cfg.kind == "detail" else "one row per direction"
            raise self.fail(f"the file is empty (expected a CSV header and {rows})")
        return text

    def column(self, header: list[str], name: str, key: str, line: int) -> int:
        wanted = name.strip().casefold()
        for index, found in enumerate(header):
            if found.strip().casefold() == wanted:
                return index
        raise self.fail(
            f"column {name!r} (daily_report.{key}) not found; "
            f"the header has: {_quote_list([h.strip() for h in header])}",
            line=line,
        )

    def direction(self, value: str, line: int) -> str:
        direction = self.direction_of.get(value.strip().casefold())
        if direction is None:
            what = f"unknown direction {value.strip()!r}" if value.strip() else "empty direction"
            raise self.fail(
                f"{what} in column {self.cfg.direction_column!r} "
                f"(expected one of: {_quote_list(self.known_values)})",
                line=line,
            )
        return direction

    def count(self, value: str, line: int) -> int:
        assert self.cfg.count_column is not None
        text = _THOUSANDS.sub("", value.strip())
        column = self.cfg.count_column
        if not re.fullmatch(r"[+-]?\d+", text):
            raise self.fail(
                f"count {value.strip()!r} in column {column!r} is not a whole number "
                f"(expected an integer >= 0)",
                line=line,
            )
        number = int(text)
        if number < 0:
            raise self.fail(
                f"count {value.strip()!r} in column {column!r} is negative "
                f"(expected an integer >= 0)",
                line=line,
            )
        return number

    def is_the_day(self, value: str, line: int) -> bool:
        parsed = parse_report_date(value)
        if parsed is None:
            raise self.fail(
                f"date {value.strip()!r} in column {self.cfg.date_column!r} is not a day "
                f"(expected e.g. {self.day.isoformat()}, {self.day:%d/%m/%Y} or {self.day:%Y%m%d})",
                line=line,
            )
        return parsed == self.day


def _cell(row: list[str], index: int) -> str:
    if index >= len(row):
        return ""
    return row[index]


def parse_report(path: Path, cfg: DailyReportConfig, *, provider: str, day: dt.date) -> DailyReport:
    """Parse the provider's end-of-day report for ``day`` (see the module docstring)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ReportError(
            f"{provider} {day.isoformat()}: report {path} not found "
            f"(expected the provider's end-of-day report for the day)",
            provider=provider,
            day=day,
        ) from None
    except OSError as exc:
        raise ReportError(
            f"{provider} {day.isoformat()}: report {path} cannot be read ({exc.strerror or exc})",
            provider=provider,
            day=day,
        ) from None
    return parse_report_content(raw, path.name, cfg, provider=provider, day=day)


def parse_report_content(
    raw: bytes, name: str, cfg: DailyReportConfig, *, provider: str, day: dt.date
) -> DailyReport:
    """Parse a report already in memory (read from the provider's server); ``name`` for errors."""
    reader = _Reader(name, cfg, provider, day)
    text = reader.text(raw)
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(text))
    try:
        header = next(row for row in rows if any(cell.strip() for cell in row))
    except StopIteration:  # pragma: no cover - read_text refuses blank files
        raise reader.fail("no header line") from None
    except csv.Error as exc:
        raise reader.fail(f"not valid CSV ({exc}); expected a header line", line=1) from None
    header_line = rows.line_num

    direction_col = reader.column(header, cfg.direction_column, "direction_column", header_line)
    date_col = (
        reader.column(header, cfg.date_column, "date_column", header_line)
        if cfg.date_column
        else None
    )
    if cfg.kind == "summary":
        assert cfg.count_column is not None  # the config model guarantees it
        value_col = reader.column(header, cfg.count_column, "count_column", header_line)
    else:
        assert cfg.call_id_column is not None
        value_col = reader.column(header, cfg.call_id_column, "call_id_column", header_line)

    counts = dict.fromkeys(DIRECTIONS, 0)
    lines_of: dict[str, list[int]] = {d: [] for d in DIRECTIONS}
    ids: dict[str, dict[str, int]] = {d: {} for d in DIRECTIONS}
    warnings: list[str] = []
    data_rows = 0
    other_days: set[str] = set()
    try:
        for row in rows:
            line = rows.line_num
            if not any(cell.strip() for cell in row):
                continue
            data_rows += 1
            if date_col is not None and not reader.is_the_day(_cell(row, date_col), line):
                other_days.add(_cell(row, date_col).strip())
                continue
            direction = reader.direction(_cell(row, direction_col), line)
            lines_of[direction].append(line)
            if cfg.kind == "summary":
                counts[direction] += reader.count(_cell(row, value_col), line)
                continue
            call_id = _cell(row, value_col).strip()
            if not call_id:
                raise reader.fail(
                    f"empty call id in column {cfg.call_id_column!r} (expected one call per row)",
                    line=line,
                )
            for other, seen in ids.items():
                if call_id in seen:
                    where = "" if other == direction else f" (as {other})"
                    warnings.append(
                        f"line {line}: call id {call_id!r} already listed on line "
                        f"{seen[call_id]}{where}; counted once"
                    )
                    break
            else:
                ids[direction][call_id] = line
    except csv.Error as exc:
        raise reader.fail(f"not valid CSV ({exc})", line=rows.line_num) from None

    if cfg.kind == "summary":
        if data_rows == 0:
            raise reader.fail("no data rows after the header (expected one row per direction)")
        if date_col is not None and not any(lines_of.values()):
            found = _quote_list(sorted(other_days)[:5])
            raise reader.fail(
                f"no row dated {day.isoformat()} in column {cfg.date_column!r} (found: {found})"
            )
        for direction, lines in lines_of.items():
            if len(lines) > 1:
                warnings.append(
                    f"{direction} is on lines {_quote_list([str(n) for n in lines])}; "
                    f"their counts were added"
                )
        return DailyReport(
            provider=provider,
            day=day,
            kind="summary",
            source=name,
            counts=counts,
            call_ids=None,
            warnings=tuple(warnings),
        )

    call_ids = {d: tuple(sorted(ids[d])) for d in DIRECTIONS}
    return DailyReport(
        provider=provider,
        day=day,
        kind="detail",
        source=name,
        counts={d: len(call_ids[d]) for d in DIRECTIONS},
        call_ids=call_ids,
        warnings=tuple(warnings),
    )
