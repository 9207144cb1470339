"""The provider's end-of-day report: encodings, delimiters, mapping, both kinds, every error."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from include.cc_intake.config import DailyReportConfig, parse_provider
from include.cc_intake.errors import ReportError
from include.cc_intake.report import DailyReport, parse_report, parse_report_date

DAY = dt.date(2026, 11, 20)
NAME = "calls_20261120.csv"
PREFIX = f"acme_abidjan 2026-11-20: report {NAME}"


def _cfg(**report: Any) -> DailyReportConfig:
    daily_report = {
        "path": "/exports/reports/calls_{date:%Y%m%d}.csv",
        "direction_column": "direction",
        "count_column": "calls",
        "direction_values": {
            "ENTRANTS": ["IN", "inbound", "entrant"],
            "SORTANTS": ["OUT", "outbound", "sortant"],
        },
    }
    daily_report.update(report)
    provider = {
        "id": "acme_abidjan",
        "name": "ACME Abidjan",
        "timezone": "Africa/Abidjan",
        "schedule": "30 2 * * *",
        "deadline": "07:00",
        "alert_emails": ["ops@example.com"],
        "recordings": {
            "sftp_conn_id": "sftp_acme",
            "directions": {"ENTRANTS": "/in/{date:%Y%m%d}", "SORTANTS": "/out/{date:%Y%m%d}"},
            "filename_pattern": r"^(?P<date>\d{8})_(?P<call_id>[^_.]+)\.wav$",
        },
        "daily_report": daily_report,
    }
    return parse_provider(provider, source=Path("acme_abidjan.yaml")).daily_report


DETAIL = {"kind": "detail", "count_column": None, "call_id_column": "call_id"}


def _write(tmp_path: Path, content: str | bytes, name: str = NAME) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def _parse(path: Path, cfg: DailyReportConfig | None = None) -> DailyReport:
    return parse_report(path, cfg or _cfg(), provider="acme_abidjan", day=DAY)


def _error(path: Path, cfg: DailyReportConfig | None = None) -> str:
    with pytest.raises(ReportError) as info:
        _parse(path, cfg)
    return str(info.value)


# --- reading ---------------------------------------------------------------------------------


def test_comma_summary(tmp_path: Path) -> None:
    report = _parse(_write(tmp_path, "direction,calls\nIN,415\nOUT,120\n"))
    assert report.counts == {"ENTRANTS": 415, "SORTANTS": 120}
    assert report.kind == "summary"
    assert report.call_ids is None
    assert report.source == NAME
    assert report.provider == "acme_abidjan" and report.day == DAY
    assert report.warnings == ()


def test_semicolon_with_bom_and_crlf(tmp_path: Path) -> None:
    content = b"\xef\xbb\xbfdirection;calls\r\nentrant;3\r\nsortant;4\r\n"
    assert _parse(_write(tmp_path, content)).counts == {"ENTRANTS": 3, "SORTANTS": 4}


def test_semicolon_wins_when_the_header_has_both(tmp_path: Path) -> None:
    content = 'direction;calls;"note, free text"\nIN;5;a, b\nOUT;6;c\n'
    assert _parse(_write(tmp_path, content)).counts == {"ENTRANTS": 5, "SORTANTS": 6}


def test_latin1_header_and_values(tmp_path: Path) -> None:
    cfg = _cfg(
        direction_column="Sens",
        count_column="Appels reçus",
        direction_values={"ENTRANTS": ["Entrée"], "SORTANTS": ["Sortie"]},
    )
    content = "sens;appels reçus\n  ENTRÉE ;12\nsortie;7\n".encode("latin-1")
    assert _parse(_write(tmp_path, content), cfg).counts == {"ENTRANTS": 12, "SORTANTS": 7}


def test_values_are_mapped_trimmed_and_case_insensitively(tmp_path: Path) -> None:
    content = " Direction , CALLS \n  in ,10\nOutbound,2\n"
    assert _parse(_write(tmp_path, content)).counts == {"ENTRANTS": 10, "SORTANTS": 2}


def test_absent_direction_counts_zero(tmp_path: Path) -> None:
    assert _parse(_write(tmp_path, "direction,calls\nIN,9\n")).counts == {
        "ENTRANTS": 9,
        "SORTANTS": 0,
    }


def test_direction_on_several_rows_is_summed_with_a_warning(tmp_path: Path) -> None:
    report = _parse(_write(tmp_path, "direction;calls\nIN;10\ninbound;5\nOUT;1\n"))
    assert report.counts == {"ENTRANTS": 15, "SORTANTS": 1}
    assert report.warnings == ("ENTRANTS is on lines 2, 3; their counts were added",)


def test_thousands_separators_and_blank_lines(tmp_path: Path) -> None:
    content = "direction;calls\n\nIN;1 234\nOUT;2\u00a0001\n\n"
    assert _parse(_write(tmp_path, content)).counts == {"ENTRANTS": 1234, "SORTANTS": 2001}


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-20",
        "20261120",
        "20/11/2026",
        "20-11-2026",
        "20.11.2026",
        "2026/11/20",
        "2026-11-20 00:00:00",
        "2026-11-20T00:00:00+00:00",
        " 20/11/2026 23:59 ",
    ],
)
def test_report_date_spellings(text: str) -> None:
    assert parse_report_date(text) == DAY


@pytest.mark.parametrize("text", ["", "hier", "11/2026", "2026-13-01", "32/11/2026"])
def test_report_date_refuses_non_dates(text: str) -> None:
    assert parse_report_date(text) is None


def test_summary_with_date_column_keeps_the_day_rows(tmp_path: Path) -> None:
    content = (
        "jour;direction;calls\n"
        "19/11/2026;IN;99\n"
        "19/11/2026;OUT;98\n"
        "20/11/2026;IN;415\n"
        "2026-11-20;OUT;120\n"
        "21/11/2026;IN;1\n"
    )
    report = _parse(_write(tmp_path, content), _cfg(date_column="jour"))
    assert report.counts == {"ENTRANTS": 415, "SORTANTS": 120}
    assert report.warnings == ()


def test_detail_report(tmp_path: Path) -> None:
    content = "call_id;direction;agent\n1003;IN;a\n1001;in;b\n2001;OUT;c\n"
    report = _parse(_write(tmp_path, content), _cfg(**DETAIL))
    assert report.kind == "detail"
    assert report.counts == {"ENTRANTS": 2, "SORTANTS": 1}
    assert report.call_ids == {"ENTRANTS": ("1001", "1003"), "SORTANTS": ("2001",)}


def test_detail_report_with_date_column(tmp_path: Path) -> None:
    content = "call_id,direction,date\n1,IN,2026-11-19\n2,IN,2026-11-20\n3,OUT,20261120\n"
    report = _parse(_write(tmp_path, content), _cfg(**DETAIL, date_column="date"))
    assert report.call_ids == {"ENTRANTS": ("2",), "SORTANTS": ("3",)}


def test_detail_header_only_is_a_day_without_calls(tmp_path: Path) -> None:
    report = _parse(_write(tmp_path, "call_id;direction\n"), _cfg(**DETAIL))
    assert report.counts == {"ENTRANTS": 0, "SORTANTS": 0}
    assert report.call_ids == {"ENTRANTS": (), "SORTANTS": ()}


def test_detail_duplicate_call_id_is_counted_once_with_a_warning(tmp_path: Path) -> None:
    content = "call_id;direction\n1;IN\n1;IN\n2;OUT\n2;IN\n"
    report = _parse(_write(tmp_path, content), _cfg(**DETAIL))
    assert report.counts == {"ENTRANTS": 1, "SORTANTS": 1}
    assert report.warnings == (
        "line 3: call id '1' already listed on line 2; counted once",
        "line 5: call id '2' already listed on line 4 (as SORTANTS); counted once",
    )


# --- malformed reports: each message names provider, day, file, line and what was expected --


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / NAME
    assert _error(path) == (
        f"acme_abidjan 2026-11-20: report {path} not found "
        "(expected the provider's end-of-day report for the day)"
    )


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / NAME
    path.mkdir()
    assert _error(path) == f"acme_abidjan 2026-11-20: report {path} cannot be read (Is a directory)"


@pytest.mark.parametrize("content", [b"", b"\n \r\n", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    assert _error(_write(tmp_path, content)) == (
        f"{PREFIX}: the file is empty (expected a CSV header and one row per direction)"
    )


def test_empty_detail_file(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, b""), _cfg(**DETAIL)) == (
        f"{PREFIX}: the file is empty (expected a CSV header and one row per call)"
    )


def test_summary_header_only(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, "direction;calls\n")) == (
        f"{PREFIX}: no data rows after the header (expected one row per direction)"
    )


def test_unknown_direction(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, "direction;calls\nIN;4\nINBND;5\n")) == (
        f"{PREFIX}, line 3: unknown direction 'INBND' in column 'direction' "
        "(expected one of: IN, inbound, entrant, OUT, outbound, sortant)"
    )


def test_empty_direction(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, "direction;calls\n;5\n")) == (
        f"{PREFIX}, line 2: empty direction in column 'direction' "
        "(expected one of: IN, inbound, entrant, OUT, outbound, sortant)"
    )


@pytest.mark.parametrize("count", ["4.5", "abc", "", "1e3"])
def test_non_integer_count(tmp_path: Path, count: str) -> None:
    assert _error(_write(tmp_path, f"direction;calls\nOUT;1\nIN;{count}\n")) == (
        f"{PREFIX}, line 3: count {count!r} in column 'calls' is not a whole number "
        "(expected an integer >= 0)"
    )


def test_negative_count(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, "direction;calls\nIN;-3\n")) == (
        f"{PREFIX}, line 2: count '-3' in column 'calls' is negative (expected an integer >= 0)"
    )


def test_missing_count_column(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, "direction;nb\nIN;3\n")) == (
        f"{PREFIX}, line 1: column 'calls' (daily_report.count_column) not found; "
        "the header has: direction, nb"
    )


def test_missing_direction_column(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, "sens,calls\nIN,3\n")) == (
        f"{PREFIX}, line 1: column 'direction' (daily_report.direction_column) not found; "
        "the header has: sens, calls"
    )


def test_missing_call_id_column(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, "id;direction\n1;IN\n"), _cfg(**DETAIL)) == (
        f"{PREFIX}, line 1: column 'call_id' (daily_report.call_id_column) not found; "
        "the header has: id, direction"
    )


def test_missing_date_column(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, "direction;calls\nIN;3\n"), _cfg(date_column="jour")) == (
        f"{PREFIX}, line 1: column 'jour' (daily_report.date_column) not found; "
        "the header has: direction, calls"
    )


def test_header_line_number_after_leading_blank_lines(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, "\n\ndirection;nb\nIN;3\n")).startswith(f"{PREFIX}, line 3: ")


def test_unreadable_date(tmp_path: Path) -> None:
    content = "jour;direction;calls\n20/11/2026;IN;3\nhier;OUT;4\n"
    assert _error(_write(tmp_path, content), _cfg(date_column="jour")) == (
        f"{PREFIX}, line 3: date 'hier' in column 'jour' is not a day "
        "(expected e.g. 2026-11-20, 20/11/2026 or 20261120)"
    )


def test_no_row_for_the_day(tmp_path: Path) -> None:
    content = "jour;direction;calls\n19/11/2026;IN;3\n18/11/2026;OUT;4\n"
    assert _error(_write(tmp_path, content), _cfg(date_column="jour")) == (
        f"{PREFIX}: no row dated 2026-11-20 in column 'jour' (found: 18/11/2026, 19/11/2026)"
    )


def test_empty_call_id(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, "call_id;direction\n1;IN\n ;OUT\n"), _cfg(**DETAIL)) == (
        f"{PREFIX}, line 3: empty call id in column 'call_id' (expected one call per row)"
    )


def test_short_row_reads_as_empty_cells(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, "direction;calls\nIN\n")) == (
        f"{PREFIX}, line 2: count '' in column 'calls' is not a whole number "
        "(expected an integer >= 0)"
    )


def test_errors_are_report_errors_with_a_clean_cause(tmp_path: Path) -> None:
    with pytest.raises(ReportError) as info:
        _parse(tmp_path / "absent.csv")
    assert info.value.__cause__ is None and info.value.__suppress_context__
