"""Reconciliation, the Great Expectations suites and the proof files.

The GX tests run a real ephemeral GX context (no mock): they are slower than pure unit tests
(a few seconds for the first import) but stay in ``make test``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from include.cc_intake.config import ProviderConfig, parse_provider
from include.cc_intake.errors import ManifestError, ValidationError
from include.cc_intake.quality import (
    read_manifest_rows,
    reconcile,
    validate_digital,
    validate_recordings,
    verdict,
    write_proof,
    write_summary,
)
from include.cc_intake.report import DailyReport

DAY = dt.date(2026, 11, 20)
PATTERN = r"^(?P<date>\d{8})_(?P<time>\d{6})_(?P<agent>[^_]+)_(?P<call_id>[^_.]+)\.(wav|mp3|gsm)$"
LEADING = [
    "direction",
    "file_name",
    "remote_path",
    "size_bytes",
    "remote_mtime",
    "sha256",
    "copied_at",
    "status",
    "reason",
]
GROUPS = ["agent", "call_id", "date", "time"]


def _cfg(
    tolerance: int | str = 0,
    directions: tuple[str, ...] = ("ENTRANTS", "SORTANTS"),
    digital: dict[str, Any] | None = None,
    timezone: str = "Africa/Abidjan",
) -> ProviderConfig:
    data: dict[str, Any] = {
        "id": "acme_abidjan",
        "name": "ACME Abidjan",
        "timezone": timezone,
        "schedule": "30 2 * * *",
        "deadline": "07:00",
        "alert_emails": ["ops@example.com"],
        "recordings": {
            "sftp_conn_id": "sftp_acme",
            "directions": {d: f"/exports/{d.lower()}/{{date:%Y%m%d}}" for d in directions},
            "filename_pattern": PATTERN,
            "date_format": "%Y%m%d",
        },
        "daily_report": {
            "path": "/exports/reports/calls_{date:%Y%m%d}.csv",
            "direction_column": "direction",
            "count_column": "calls",
            "direction_values": {"ENTRANTS": ["IN"], "SORTANTS": ["OUT"]},
            "tolerance": tolerance,
        },
    }
    if digital is not None:
        data["digital"] = digital
    return parse_provider(data, source=Path("acme_abidjan.yaml"))


def _row(
    direction: str,
    call_id: str,
    *,
    day: str = "20261120",
    size: int = 48_000,
    status: str = "copied",
    reason: str = "",
    agent: str = "ag01",
    hhmmss: str = "101500",
    name: str | None = None,
) -> dict[str, str]:
    file_name = name or f"{day}_{hhmmss}_{agent}_{call_id}.wav"
    return {
        "direction": direction,
        "file_name": file_name,
        "remote_path": f"/exports/{direction.lower()}/{day}/{file_name}",
        "size_bytes": str(size),
        "remote_mtime": "2026-11-20T23:00:00Z",
        "sha256": "" if status == "rejected" else "ab" * 32,
        "copied_at": "" if status == "rejected" else "2026-11-21T02:31:00Z",
        "status": status,
        "reason": reason,
        "agent": agent,
        "call_id": call_id,
        "date": day,
        "time": hhmmss,
        "codec": "pcm_s16le",
    }


def _day_rows() -> list[dict[str, str]]:
    """A clean day: three inbound calls, two outbound, one already copied by a previous run."""
    return [
        _row("ENTRANTS", "E1"),
        _row("ENTRANTS", "E2", status="skipped_identical"),
        _row("ENTRANTS", "E3"),
        _row("SORTANTS", "S1"),
        _row("SORTANTS", "S2"),
    ]


def _summary(entrants: int = 3, sortants: int = 2, warnings: tuple[str, ...] = ()) -> DailyReport:
    return DailyReport(
        provider="acme_abidjan",
        day=DAY,
        kind="summary",
        source="calls_20261120.csv",
        counts={"ENTRANTS": entrants, "SORTANTS": sortants},
        warnings=warnings,
    )


def _detail(
    entrants: tuple[str, ...] = ("E1", "E2", "E3"), sortants: tuple[str, ...] = ("S1", "S2")
) -> DailyReport:
    return DailyReport(
        provider="acme_abidjan",
        day=DAY,
        kind="detail",
        source="calls_20261120.csv",
        counts={"ENTRANTS": len(entrants), "SORTANTS": len(sortants)},
        call_ids={"ENTRANTS": entrants, "SORTANTS": sortants},
    )


def _manifest(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    path = tmp_path / "2026-11-20.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*LEADING, *GROUPS, "codec"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _validate(
    tmp_path: Path,
    rows: list[dict[str, str]],
    report: DailyReport,
    cfg: ProviderConfig | None = None,
) -> dict[str, Any]:
    return validate_recordings(_manifest(tmp_path, rows), report, cfg or _cfg(), DAY)


def _failed(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Failed GX expectations, keyed by type (plus direction for per-direction checks)."""
    out = {}
    for item in result["results"]:
        if not item["success"]:
            config = item["expectation_config"]
            key = config["type"]
            if config.get("meta", {}).get("direction"):
                key += ":" + config["meta"]["direction"]
            out[key] = item
    return out


def _unexpected_files(item: dict[str, Any]) -> set[str]:
    return {x["file_name"] for x in item["result"]["partial_unexpected_index_list"]}


# --- reconciliation (pure) -------------------------------------------------------------------


def test_matching_day_reconciles() -> None:
    rec = reconcile(_day_rows(), _summary(), _cfg(), DAY)
    assert rec.ok
    assert rec.failure_message() == ""
    assert [(d.direction, d.expected, d.got, d.gap) for d in rec.directions] == [
        ("ENTRANTS", 3, 3, 0),
        ("SORTANTS", 2, 2, 0),
    ]
    assert rec.warnings == ()


def test_one_missing_file_summary() -> None:
    rows = [r for r in _day_rows() if r["call_id"] != "E2"]
    rec = reconcile(rows, _summary(), _cfg(), DAY)
    assert not rec.ok
    assert rec.failure_message() == (
        "acme_abidjan 2026-11-20: ENTRANTS 2 recordings, report says 3 (1 missing)"
    )


def test_one_missing_file_detail_names_the_call() -> None:
    rows = [r for r in _day_rows() if r["call_id"] != "E2"]
    rec = reconcile(rows, _detail(), _cfg(), DAY)
    assert rec.direction("ENTRANTS").missing == ("E2",)
    assert rec.failure_message() == (
        "acme_abidjan 2026-11-20: ENTRANTS 2 recordings, report says 3 (1 missing: E2)"
    )


def test_one_extra_file() -> None:
    rows = [*_day_rows(), _row("SORTANTS", "S3")]
    assert reconcile(rows, _summary(), _cfg(), DAY).failure_message() == (
        "acme_abidjan 2026-11-20: SORTANTS 3 recordings, report says 2 (1 extra)"
    )
    rec = reconcile(rows, _detail(), _cfg(), DAY)
    assert [e.file_name for e in rec.direction("SORTANTS").extra] == ["20261120_101500_ag01_S3.wav"]
    assert rec.failure_message() == (
        "acme_abidjan 2026-11-20: SORTANTS 3 recordings, report says 2 "
        "(1 extra: 20261120_101500_ag01_S3.wav)"
    )


def test_detail_swap_keeps_the_count_but_fails() -> None:
    rows = [r for r in _day_rows() if r["call_id"] != "E3"] + [_row("ENTRANTS", "E9")]
    rec = reconcile(rows, _detail(), _cfg(), DAY)
    assert rec.direction("ENTRANTS").gap == 0
    assert rec.failure_message() == (
        "acme_abidjan 2026-11-20: ENTRANTS 3 recordings, report says 3 "
        "(1 missing: E3; 1 extra: 20261120_101500_ag01_E9.wav)"
    )


def test_duplicate_call_id() -> None:
    rows = [*_day_rows(), _row("ENTRANTS", "E1", hhmmss="101600")]
    rec = reconcile(rows, _summary(entrants=4), _cfg(), DAY)
    assert [(d.call_id, [e.file_name for e in d.files]) for d in rec.duplicates] == [
        ("E1", ["20261120_101500_ag01_E1.wav", "20261120_101600_ag01_E1.wav"])
    ]
    assert rec.failure_message() == (
        "acme_abidjan 2026-11-20: duplicate call_id E1: "
        "20261120_101500_ag01_E1.wav, 20261120_101600_ag01_E1.wav"
    )


def test_zero_byte_file_accepted_fails_and_rejected_is_listed() -> None:
    rows = _day_rows()
    rows[2] = _row("ENTRANTS", "E3", size=0)
    rec = reconcile(rows, _summary(), _cfg(), DAY)
    assert [e.file_name for e in rec.empty] == ["20261120_101500_ag01_E3.wav"]
    assert rec.failure_message() == (
        "acme_abidjan 2026-11-20: empty recordings: 20261120_101500_ag01_E3.wav"
    )
    # The copier rejects empty files: then the report's count names the gap.
    rows[2] = _row("ENTRANTS", "E3", size=0, status="rejected", reason="empty")
    rec = reconcile(rows, _summary(), _cfg(), DAY)
    assert [e.reason for e in rec.empty] == ["empty"]
    assert rec.failure_message() == (
        "acme_abidjan 2026-11-20: ENTRANTS 2 recordings, report says 3 "
        "(1 missing; rejected here: 20261120_101500_ag01_E3.wav (empty))"
    )


def test_file_of_another_date() -> None:
    rows = [*_day_rows()[:-1], _row("SORTANTS", "S2", day="20261119")]
    rec = reconcile(rows, _summary(), _cfg(), DAY)
    assert [(e.file_name, e.detail) for e in rec.other_date] == [
        ("20261119_101500_ag01_S2.wav", "20261119")
    ]
    assert rec.failure_message() == (
        "acme_abidjan 2026-11-20: recordings of another day: 20261119_101500_ag01_S2.wav"
    )


def test_rejected_files_alone_do_not_fail_the_day() -> None:
    rows = [
        *_day_rows(),
        _row("ENTRANTS", "X", day="20261119", status="rejected", reason="other_date"),
        _row("SORTANTS", "", name="notes.txt", status="rejected", reason="pattern_mismatch"),
    ]
    rec = reconcile(rows, _summary(), _cfg(), DAY)
    assert rec.ok
    assert [(e.file_name, e.reason) for e in rec.rejected] == [
        ("20261119_101500_ag01_X.wav", "other_date"),
        ("notes.txt", "pattern_mismatch"),
    ]
    assert [e.file_name for e in rec.other_date] == ["20261119_101500_ag01_X.wav"]


@pytest.mark.parametrize(
    ("entrants", "clause"),
    [
        (4, "ENTRANTS 3 recordings, report says 4 (1 missing)"),
        (2, "ENTRANTS 3 recordings, report says 2 (1 extra)"),
    ],
)
def test_report_off_by_one(entrants: int, clause: str) -> None:
    rec = reconcile(_day_rows(), _summary(entrants=entrants), _cfg(), DAY)
    assert rec.failure_message() == f"acme_abidjan 2026-11-20: {clause}"


def test_two_failing_directions_make_two_clauses() -> None:
    rec = reconcile(_day_rows(), _summary(entrants=5, sortants=1), _cfg(), DAY)
    assert rec.failure_message() == (
        "acme_abidjan 2026-11-20: ENTRANTS 3 recordings, report says 5 (2 missing); "
        "SORTANTS 2 recordings, report says 1 (1 extra)"
    )


def test_tolerance_as_a_count() -> None:
    rec = reconcile(_day_rows(), _summary(entrants=4), _cfg(tolerance=1), DAY)
    assert rec.ok
    assert rec.warnings == ("ENTRANTS: 3 recordings, report says 4 (within the tolerance of 1)",)
    rec = reconcile(_day_rows(), _summary(entrants=5), _cfg(tolerance=1), DAY)
    assert rec.failure_message() == (
        "acme_abidjan 2026-11-20: ENTRANTS 3 recordings, report says 5 (2 missing; tolerance 1)"
    )


def test_tolerance_as_a_percentage() -> None:
    def rows(n: int) -> list[dict[str, str]]:
        return [_row("ENTRANTS", f"E{i}") for i in range(n)]

    cfg = _cfg(tolerance="2%")
    report = _summary(entrants=100, sortants=0)
    assert reconcile(rows(98), report, cfg, DAY).ok
    assert reconcile(rows(102), report, cfg, DAY).ok
    assert reconcile(rows(97), report, cfg, DAY).failure_message() == (
        "acme_abidjan 2026-11-20: ENTRANTS 97 recordings, report says 100 (3 missing; tolerance 2)"
    )


def test_report_counts_a_direction_we_do_not_collect() -> None:
    rows = [r for r in _day_rows() if r["direction"] == "ENTRANTS"]
    rec = reconcile(rows, _summary(), _cfg(directions=("ENTRANTS",)), DAY)
    assert rec.failure_message() == (
        "acme_abidjan 2026-11-20: SORTANTS 0 recordings, report says 2 "
        "(2 missing; no remote folder is configured for SORTANTS)"
    )


def test_long_lists_are_truncated_in_the_message() -> None:
    rows = [r for r in _day_rows() if r["direction"] == "SORTANTS"]
    report = _detail(entrants=tuple(f"E{i}" for i in range(1, 9)))
    assert reconcile(rows, report, _cfg(), DAY).failure_message() == (
        "acme_abidjan 2026-11-20: ENTRANTS 0 recordings, report says 8 "
        "(8 missing: E1, E2, E3, E4, E5 and 3 more)"
    )


def test_phone_numbers_are_masked_in_the_message() -> None:
    rows = [*_day_rows(), _row("ENTRANTS", "E4", agent="0707123456")]
    message = reconcile(rows, _detail(), _cfg(), DAY).failure_message()
    assert "0707123456" not in message
    assert "20261120_101500_******56_E4.wav" in message


# --- Great Expectations: recordings ------------------------------------------------------


def test_gx_matching_day_passes(tmp_path: Path) -> None:
    for report in (_summary(), _detail()):
        result = _validate(tmp_path, _day_rows(), report)
        assert result["success"] is True and result["gx_success"] is True
        assert result["failure"] is None
        assert all(item["success"] for item in result["results"])
        assert result["reconciliation"]["directions"]["ENTRANTS"] == {
            "expected": 3,
            "got": 3,
            "gap": 0,
            "allowed_gap": 0,
            "ok": True,
            "configured": True,
            "missing": [],
            "extra": [],
        }
        assert verdict(result) == "green"
        json.dumps(result)  # JSON-able as promised


def test_gx_missing_file(tmp_path: Path) -> None:
    rows = [r for r in _day_rows() if r["call_id"] != "E2"]
    result = _validate(tmp_path, rows, _summary())
    assert result["success"] is False and result["gx_success"] is False
    failed = _failed(result)
    assert set(failed) == {"expect_table_row_count_to_be_between:ENTRANTS"}
    assert failed["expect_table_row_count_to_be_between:ENTRANTS"]["result"] == {
        "observed_value": 2
    }
    assert result["failure"] == (
        "acme_abidjan 2026-11-20: ENTRANTS 2 recordings, report says 3 (1 missing)"
    )


def test_gx_extra_file_detail(tmp_path: Path) -> None:
    rows = [*_day_rows(), _row("SORTANTS", "S3")]
    result = _validate(tmp_path, rows, _detail())
    failed = _failed(result)
    assert set(failed) == {
        "expect_table_row_count_to_be_between:SORTANTS",
        "expect_column_values_to_be_in_set:SORTANTS",
    }
    assert _unexpected_files(failed["expect_column_values_to_be_in_set:SORTANTS"]) == {
        "20261120_101500_ag01_S3.wav"
    }
    extra = result["reconciliation"]["directions"]["SORTANTS"]["extra"]
    assert [e["file_name"] for e in extra] == ["20261120_101500_ag01_S3.wav"]


def test_gx_duplicate_call_id(tmp_path: Path) -> None:
    rows = [*_day_rows(), _row("SORTANTS", "S1", hhmmss="120000")]
    result = _validate(tmp_path, rows, _summary(sortants=3))
    failed = _failed(result)
    assert set(failed) == {"expect_column_values_to_be_unique"}
    assert _unexpected_files(failed["expect_column_values_to_be_unique"]) == {
        "20261120_101500_ag01_S1.wav",
        "20261120_120000_ag01_S1.wav",
    }
    assert result["reconciliation"]["duplicates"][0]["call_id"] == "S1"
    assert "duplicate call_id S1" in result["failure"]


def test_gx_zero_byte_file(tmp_path: Path) -> None:
    rows = _day_rows()
    rows[0] = _row("ENTRANTS", "E1", size=0)
    result = _validate(tmp_path, rows, _summary())
    failed = _failed(result)
    assert set(failed) == {"expect_column_values_to_be_between"}
    assert (
        failed["expect_column_values_to_be_between"]["expectation_config"]["kwargs"]["column"]
        == "size_bytes"
    )
    assert _unexpected_files(failed["expect_column_values_to_be_between"]) == {
        "20261120_101500_ag01_E1.wav"
    }
    assert result["reconciliation"]["empty"][0]["file_name"] == "20261120_101500_ag01_E1.wav"


def test_gx_file_of_another_date(tmp_path: Path) -> None:
    rows = _day_rows()
    rows[3] = _row("SORTANTS", "S1", day="20261121")
    result = _validate(tmp_path, rows, _summary())
    failed = _failed(result)
    assert set(failed) == {"expect_column_values_to_be_in_set"}
    item = failed["expect_column_values_to_be_in_set"]
    assert item["expectation_config"]["kwargs"]["column"] == "parsed_date"
    assert item["result"]["partial_unexpected_list"] == ["2026-11-21"]
    assert _unexpected_files(item) == {"20261121_101500_ag01_S1.wav"}
    assert "recordings of another day: 20261121_101500_ag01_S1.wav" in result["failure"]


def test_gx_name_not_matching_the_pattern(tmp_path: Path) -> None:
    rows = _day_rows()
    rows[4] = _row("SORTANTS", "S2", name="20261120_101500_ag01_S2.flac")
    result = _validate(tmp_path, rows, _summary())
    assert set(_failed(result)) == {"expect_column_values_to_match_regex"}
    assert result["failure"] == (
        "acme_abidjan 2026-11-20: names not matching the pattern: 20261120_101500_ag01_S2.flac"
    )


@pytest.mark.parametrize(("entrants", "observed"), [(4, 3), (2, 3)])
def test_gx_report_off_by_one(tmp_path: Path, entrants: int, observed: int) -> None:
    result = _validate(tmp_path, _day_rows(), _summary(entrants=entrants))
    item = _failed(result)["expect_table_row_count_to_be_between:ENTRANTS"]
    assert item["expectation_config"]["kwargs"]["min_value"] == entrants
    assert item["result"]["observed_value"] == observed
    assert set(_failed(result)) == {"expect_table_row_count_to_be_between:ENTRANTS"}


def test_gx_tolerance_count_and_percentage(tmp_path: Path) -> None:
    result = _validate(tmp_path, _day_rows(), _summary(entrants=4), _cfg(tolerance=1))
    assert result["success"] is True
    assert verdict(result) == "amber"  # a gap within the tolerance is worth a look
    rows = [_row("ENTRANTS", f"E{i}") for i in range(98)]
    report = _summary(entrants=100, sortants=0)
    assert _validate(tmp_path, rows, report, _cfg(tolerance="2%"))["success"] is True
    result = _validate(tmp_path, rows[:97], report, _cfg(tolerance="2%"))
    assert result["success"] is False
    assert set(_failed(result)) == {"expect_table_row_count_to_be_between:ENTRANTS"}


def test_gx_rejected_rows_are_listed_not_failed(tmp_path: Path) -> None:
    rows = [
        *_day_rows(),
        _row("ENTRANTS", "E7", size=0, status="rejected", reason="empty"),
        _row("SORTANTS", "Z", day="20261119", status="rejected", reason="other_date"),
    ]
    result = _validate(tmp_path, rows, _summary())
    assert result["success"] is True
    assert [e["reason"] for e in result["reconciliation"]["rejected"]] == ["empty", "other_date"]
    assert verdict(result) == "amber"


def test_gx_progress_bars_are_off(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    _validate(tmp_path, _day_rows(), _summary())
    out, err = capfd.readouterr()
    assert "Calculating Metrics" not in out + err
    assert "it/s" not in out + err


def test_manifest_problems_are_named(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        validate_recordings(tmp_path / "absent.csv", _summary(), _cfg(), DAY)
    assert str(info.value) == (
        f"acme_abidjan 2026-11-20: manifest {tmp_path / 'absent.csv'} not found "
        "(expected the copy step's manifest of the day)"
    )
    # Its own error (issue #14, defect 4): not a failed validation, no proof page behind it.
    assert not isinstance(info.value, ValidationError)
    assert (info.value.provider, info.value.day, info.value.details) == (
        "acme_abidjan",
        DAY,
        {"path": str(tmp_path / "absent.csv")},
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("direction,file_name,status\n", encoding="utf-8")
    with pytest.raises(ManifestError) as info:
        read_manifest_rows(bad, _cfg(), DAY)
    assert str(info.value) == (
        "acme_abidjan 2026-11-20: manifest bad.csv lacks the columns size_bytes, call_id, date "
        "(expected direction, file_name, size_bytes, status, call_id, date at least)"
    )


def test_gx_10000_rows_in_reasonable_time(tmp_path: Path) -> None:
    rows = [_row("ENTRANTS" if i % 2 else "SORTANTS", f"C{i:05d}") for i in range(10_000)]
    _validate(tmp_path, _day_rows(), _summary())  # GX imported and warm
    started = time.perf_counter()
    result = _validate(tmp_path, rows, _summary(entrants=5_000, sortants=5_000))
    elapsed = time.perf_counter() - started
    assert result["success"] is True
    assert elapsed < 20, f"10 000-row validation took {elapsed:.1f}s"


# --- Great Expectations: digital -------------------------------------------------------------

DIGITAL = {
    "http_conn_id": "crm_acme",
    "endpoint": "/api/export/interactions",
    "id_field": "id",
    "timestamp_field": "meta.created_at",
    "content_field": "body",
}


def _records(n: int = 10) -> list[dict[str, Any]]:
    return [
        {
            "id": f"I{i}",
            "channel": "chat",
            "meta": {"created_at": f"2026-11-20T{8 + i % 12:02d}:15:00+00:00"},
            "body": "Bonjour, je vous contacte au sujet de mon abonnement.",
        }
        for i in range(n)
    ]


def _jsonl(tmp_path: Path, records: list[Any]) -> Path:
    path = tmp_path / "interactions.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return path


def _digital(
    tmp_path: Path, records: list[Any], total: int | None = 10, cfg: ProviderConfig | None = None
) -> dict[str, Any]:
    return validate_digital(_jsonl(tmp_path, records), total, cfg or _cfg(digital=DIGITAL), DAY)


def test_digital_clean_day_passes(tmp_path: Path) -> None:
    result = _digital(tmp_path, _records())
    assert result["success"] is True and result["failure"] is None
    assert result["checks"]["records"] == 10 and result["checks"]["stated_total"] == 10
    assert len(result["results"]) == 6
    assert verdict(result) == "green"
    # Conversation content never enters the result: only its length was validated.
    assert "Bonjour" not in json.dumps(result)


def test_digital_without_stated_total_or_optional_fields(tmp_path: Path) -> None:
    cfg = _cfg(digital={"http_conn_id": "crm", "endpoint": "/x", "id_field": "id"})
    result = _digital(tmp_path, _records(), total=None, cfg=cfg)
    assert result["success"] is True
    types = [r["expectation_config"]["type"] for r in result["results"]]
    assert types == ["expect_column_values_to_not_be_null", "expect_column_values_to_be_unique"]


@pytest.mark.parametrize(("total", "what"), [(11, "1 missing"), (9, "1 extra")])
def test_digital_count_differs_from_the_stated_total(tmp_path: Path, total: int, what: str) -> None:
    result = _digital(tmp_path, _records(), total=total)
    assert set(_failed(result)) == {"expect_table_row_count_to_equal"}
    assert result["failure"] == (
        f"acme_abidjan 2026-11-20: digital export: 10 interactions exported, "
        f"the CRM says {total} ({what})"
    )


def test_digital_duplicate_id(tmp_path: Path) -> None:
    records = _records()
    records[7]["id"] = "I2"
    result = _digital(tmp_path, records)
    assert set(_failed(result)) == {"expect_column_values_to_be_unique"}
    assert result["checks"]["duplicate_ids"] == [{"id": "I2", "lines": [3, 8]}]
    assert result["failure"] == "acme_abidjan 2026-11-20: digital export: 1 duplicate id: I2"


def test_digital_null_id(tmp_path: Path) -> None:
    records = _records()
    del records[1]["id"]
    records[4]["id"] = " "
    result = _digital(tmp_path, records)
    item = _failed(result)["expect_column_values_to_not_be_null"]
    assert [x["jsonl_line"] for x in item["result"]["partial_unexpected_index_list"]] == [2, 5]
    assert result["failure"] == "acme_abidjan 2026-11-20: digital export: 2 without id (lines 2, 5)"


def test_digital_timestamp_outside_the_day(tmp_path: Path) -> None:
    records = _records()
    records[0]["meta"]["created_at"] = "2026-11-21T00:00:00Z"  # the end is excluded
    records[1]["meta"]["created_at"] = "2026-11-19T23:59:59+00:00"
    records[2]["meta"]["created_at"] = "2026-11-20T00:00:00"  # naive: provider time, inside
    result = _digital(tmp_path, records)
    failed = _failed(result)
    assert set(failed) == {"expect_column_values_to_be_between"}
    assert failed["expect_column_values_to_be_between"]["result"]["unexpected_count"] == 2
    assert result["failure"] == (
        "acme_abidjan 2026-11-20: digital export: 2 outside the day: "
        "I0 at 2026-11-21T00:00:00+00:00, I1 at 2026-11-19T23:59:59+00:00"
    )


def test_digital_day_bounds_follow_the_provider_zone(tmp_path: Path) -> None:
    records = _records(2)
    records[0]["meta"]["created_at"] = "2026-11-19T23:30:00Z"  # 00:30 in Paris: inside
    records[1]["meta"]["created_at"] = "2026-11-20T23:30:00Z"  # 00:30 next day: outside
    cfg = _cfg(digital=DIGITAL, timezone="Europe/Paris")
    result = _digital(tmp_path, records, total=2, cfg=cfg)
    assert [x["id"] for x in result["checks"]["outside_day"]] == ["I1"]


def test_digital_unreadable_timestamp(tmp_path: Path) -> None:
    records = _records()
    records[3]["meta"]["created_at"] = "hier soir"
    del records[5]["meta"]
    result = _digital(tmp_path, records)
    assert set(_failed(result)) == {"expect_column_values_to_not_be_null"}
    assert result["failure"] == (
        "acme_abidjan 2026-11-20: digital export: 2 without a readable meta.created_at: "
        "line 4, line 6"
    )


def test_digital_empty_content(tmp_path: Path) -> None:
    records = _records()
    records[6]["body"] = "   "
    del records[8]["body"]
    result = _digital(tmp_path, records)
    failed = _failed(result)
    assert set(failed) == {"expect_column_values_to_be_between"}
    assert (
        failed["expect_column_values_to_be_between"]["expectation_config"]["kwargs"]["column"]
        == "body (longueur)"
    )
    assert result["failure"] == (
        "acme_abidjan 2026-11-20: digital export: 2 with empty body: I6, I8"
    )


def test_digital_malformed_line_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        _digital(tmp_path, [*_records(2), "{not json"])
    assert str(info.value).startswith(
        "acme_abidjan 2026-11-20: export interactions.jsonl, line 3: Expecting property name"
    )
    assert str(info.value).endswith("(expected one JSON object per line)")
    with pytest.raises(ValidationError) as info:
        validate_digital(tmp_path / "none.jsonl", 3, _cfg(digital=DIGITAL), DAY)
    assert "not found (expected the day's interactions, one JSON object per line)" in str(
        info.value
    )


# --- proof files -----------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_proof_red_page(tmp_path: Path) -> None:
    rows = [r for r in _day_rows() if r["call_id"] != "E2"]
    rows += [
        _row("SORTANTS", "S1", hhmmss="120000", agent="0707123456"),
        _row("ENTRANTS", "E8", status="rejected", reason="empty", size=0),
        _row("SORTANTS", "", name="<script>x.txt", status="rejected", reason="pattern_mismatch"),
    ]
    result = _validate(tmp_path, rows, _detail(sortants=("S1", "S2")))
    quality = tmp_path / "quality" / "acme_abidjan" / "2026-11-20"
    json_path, html_path = write_proof(quality, "recordings", result)

    assert (json_path.name, html_path.name) == ("recordings.json", "recordings.html")
    assert json.loads(json_path.read_text(encoding="utf-8"))["success"] is False
    assert _mode(json_path) == _mode(html_path) == 0o640
    assert _mode(quality) == _mode(quality.parent) == _mode(quality.parent.parent) == 0o750
    assert sorted(p.name for p in quality.iterdir()) == ["recordings.html", "recordings.json"]

    page = html_path.read_text(encoding="utf-8")
    assert page.index("NON CONFORME") < page.index("Attendu et reçu par sens")
    assert page.index("Attendu et reçu par sens") < page.index("Appels manquants")
    assert "<code>E2</code> (ENTRANTS)" in page  # missing, by call id
    assert "20261120_120000_******56_S1.wav" in page  # duplicate, phone masked
    assert "0707123456" not in page
    assert "20261120_101500_ag01_E8.wav" in page and "fichier vide" in page
    assert "&lt;script&gt;x.txt" in page and "<script>" not in page
    assert "http://" not in page and "https://" not in page and "<link" not in page


def test_write_proof_green_page_and_rewrite(tmp_path: Path) -> None:
    result = _validate(tmp_path, _day_rows(), _summary())
    quality = tmp_path / "q"
    write_proof(quality, "recordings", result)
    _, html_path = write_proof(quality, "recordings", result)  # a re-run replaces it
    page = html_path.read_text(encoding="utf-8")
    assert 'data-status="green"' in page and ">CONFORME<" in page
    assert sorted(p.name for p in quality.iterdir()) == ["recordings.html", "recordings.json"]


def test_write_proof_digital_page(tmp_path: Path) -> None:
    records = _records()
    records[2]["id"] = "I1"
    result = _digital(tmp_path, records)
    _, html_path = write_proof(tmp_path / "q", "digital", result)
    page = html_path.read_text(encoding="utf-8")
    assert page.index("NON CONFORME") < page.index("Identifiants en double")
    assert "<code>I1</code> (lignes 2, 3)" in page


def test_write_proof_refuses_an_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="proof kind"):
        write_proof(tmp_path, "voice", {})  # type: ignore[arg-type]


def test_summary_shape_and_status(tmp_path: Path) -> None:
    quality = tmp_path / "q"
    rows = [*_day_rows(), _row("ENTRANTS", "X", status="rejected", reason="pattern_mismatch")]
    recordings = _validate(tmp_path, rows, _summary())
    path = write_summary(quality, provider="acme_abidjan", day=DAY, recordings=recordings)
    summary = json.loads(path.read_text(encoding="utf-8"))
    assert set(summary) == {
        "provider",
        "day",
        "status",
        "recordings",
        "digital",
        "rejected",
        "updated_at",
    }
    assert summary["provider"] == "acme_abidjan" and summary["day"] == "2026-11-20"
    assert summary["recordings"] == {
        "ENTRANTS": {"expected": 3, "got": 3},
        "SORTANTS": {"expected": 2, "got": 2},
    }
    assert summary["digital"] is None
    assert summary["rejected"] == 1
    assert summary["status"] == "amber"  # passed, but a file was rejected
    assert dt.datetime.strptime(summary["updated_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert _mode(path) == 0o640


def test_summary_merges_the_two_tasks(tmp_path: Path) -> None:
    quality = tmp_path / "q"
    recordings = _validate(tmp_path, _day_rows(), _summary())
    write_proof(quality, "recordings", recordings)
    write_summary(quality, provider="acme_abidjan", day=DAY, recordings=recordings)
    assert json.loads((quality / "summary.json").read_text())["status"] == "green"

    digital = _digital(tmp_path, _records(), total=12)  # the digital task, later, fails
    write_proof(quality, "digital", digital)
    write_summary(quality, provider="acme_abidjan", day=DAY, digital=digital)
    summary = json.loads((quality / "summary.json").read_text())
    assert summary["digital"] == {"expected": 12, "got": 10, "conflicting_ids": 0}
    assert summary["recordings"]["ENTRANTS"] == {"expected": 3, "got": 3}  # kept from the proof
    assert summary["status"] == "red"

    digital = _digital(tmp_path, _records(), total=10)  # re-run after the CRM fixed it
    write_proof(quality, "digital", digital)
    write_summary(quality, provider="acme_abidjan", day=DAY, digital=digital)
    assert json.loads((quality / "summary.json").read_text())["status"] == "green"


def test_summary_without_recordings_is_amber(tmp_path: Path) -> None:
    digital = _digital(tmp_path, _records())
    path = write_summary(tmp_path / "q", provider="acme_abidjan", day=DAY, digital=digital)
    summary = json.loads(path.read_text())
    assert summary["status"] == "amber"
    assert summary["recordings"]["SORTANTS"] == {"expected": None, "got": None}
    assert summary["rejected"] == 0


def test_summary_optional_run_keys(tmp_path: Path) -> None:
    recordings = _validate(tmp_path, _day_rows(), _summary())
    path = write_summary(
        tmp_path / "q",
        provider="acme_abidjan",
        day=DAY,
        recordings=recordings,
        run_id="manual__2026-11-21",
        timezone="Africa/Abidjan",
    )
    summary = json.loads(path.read_text())
    assert (summary["run_id"], summary["timezone"]) == ("manual__2026-11-21", "Africa/Abidjan")
    assert summary["status"] == "green"


def test_non_audio_recordings_are_a_warning_not_a_failure() -> None:
    rows = _day_rows()
    rows[0]["audio_ok"] = "false"
    rows[1]["audio_ok"] = "true"
    rec = reconcile(rows, _summary(), _cfg(), DAY)
    assert rec.ok
    assert any("1 recording(s) truncated or not audio" in w for w in rec.warnings)
    assert any(rows[0]["file_name"] in w for w in rec.warnings)


def test_pages_show_control_characters_escaped() -> None:
    from include.cc_intake.proof_pages import _t

    assert _t("C1\x1b[2K.wav <b>") == "C1\\x1b[2K.wav &lt;b&gt;"


def test_item11_conflicting_crm_ids_are_counted_in_the_proof_and_turn_the_day_amber(
    tmp_path: Path,
) -> None:
    quality = tmp_path / "q"
    recordings = _validate(tmp_path, _day_rows(), _summary())
    write_proof(quality, "recordings", recordings)
    exported = {"duplicates_dropped": 3, "conflicting_ids": 7, "conflicting_examples": ["I1", "I4"]}
    result = validate_digital(
        _jsonl(tmp_path, _records()), 10, _cfg(digital=DIGITAL), DAY, export=exported
    )
    assert result["success"] is True  # every line passed: a conflict is a reserve, not a fault
    assert result["checks"]["conflicting_ids"] == 7
    assert result["checks"]["conflicting_examples"] == ["I1", "I4"]
    assert result["checks"]["duplicates_dropped"] == 3
    assert result["warnings"] == [
        "7 id received with conflicting contents, the last version of each kept: I1, I4 and 5 more"
    ]
    assert verdict(result) == "amber"
    _, page = write_proof(quality, "digital", result)
    write_summary(quality, provider="acme_abidjan", day=DAY, recordings=recordings, digital=result)
    summary = json.loads((quality / "summary.json").read_text())
    assert summary["digital"] == {"expected": 10, "got": 10, "conflicting_ids": 7}
    assert summary["status"] == "amber"
    text = page.read_text(encoding="utf-8")
    assert 'data-status="amber"' in text
    assert "Identifiants reçus avec des contenus différents (7)" in text
    assert "<code>I4</code>" in text and "… et 5 autre(s)" in text

    clean = validate_digital(_jsonl(tmp_path, _records()), 10, _cfg(digital=DIGITAL), DAY)
    assert clean["checks"]["conflicting_ids"] == 0 and verdict(clean) == "green"


# --- issue #10, items 1 and 3: kept and failed rows in the reconciliation, proof and summary


def test_item1_kept_rows_count_as_received_and_are_listed_as_held(tmp_path: Path) -> None:
    rows = _day_rows()
    rows[0].update(status="kept", reason="gone_from_remote", copied_at="2026-11-21T02:31:00Z")
    rows[3].update(status="kept", reason="gone_from_remote")
    rec = reconcile(rows, _summary(), _cfg(), DAY)
    assert rec.ok and rec.warnings == ()
    assert [(d.direction, d.got) for d in rec.directions] == [("ENTRANTS", 3), ("SORTANTS", 2)]
    assert [(e.file_name, e.detail) for e in rec.kept] == [
        (rows[0]["file_name"], "2026-11-21T02:31:00Z"),
        (rows[3]["file_name"], "2026-11-21T02:31:00Z"),
    ]

    quality = tmp_path / "q"
    recordings = _validate(tmp_path, rows, _summary())
    assert recordings["success"]
    _, page = write_proof(quality, "recordings", recordings)
    html = page.read_text(encoding="utf-8")
    assert 'id="kept">Conservés ici, plus sur le serveur (2)' in html
    assert f"<code>{rows[0]['file_name']}</code> (ENTRANTS) — copié le 2026-11-21T02:31:00Z" in html
    summary = json.loads(
        write_summary(quality, provider="acme_abidjan", day=DAY, recordings=recordings).read_text()
    )
    assert summary["recordings"]["ENTRANTS"] == {"expected": 3, "got": 3}
    assert (summary["kept"], summary["status"]) == (2, "green")
    assert "failed" not in summary


def test_item3_failed_rows_are_not_received_and_warn(tmp_path: Path) -> None:
    rows = _day_rows()
    rows[2].update(status="failed", reason="OSError: [Errno 28] No space left", sha256="")
    rec = reconcile(rows, _summary(), _cfg(1), DAY)
    assert rec.direction("ENTRANTS").got == 2
    assert [e.file_name for e in rec.failed] == [rows[2]["file_name"]]
    assert any(
        "1 recording(s) whose copy failed" in w and "No space left" in w for w in rec.warnings
    )
    assert not any("unknown status" in w for w in rec.warnings)

    quality = tmp_path / "q"
    recordings = _validate(tmp_path, rows, _summary(), _cfg(1))
    _, page = write_proof(quality, "recordings", recordings)
    assert 'id="failed">Copies en échec (1)' in page.read_text(encoding="utf-8")
    summary = json.loads(
        write_summary(quality, provider="acme_abidjan", day=DAY, recordings=recordings).read_text()
    )
    # Within the tolerance, but a copy failed: never green.
    assert (summary["failed"], summary["status"]) == (1, "amber")
