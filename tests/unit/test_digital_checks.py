"""The digital checks, in plain Python (no GX): what read_export finds line by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.cc_intake.digital_checks import conflict_warnings, get_path, read_export
from include.cc_intake.errors import ValidationError
from tests.unit.quality_data import DAY, DIGITAL, _cfg, _jsonl, _records


def test_read_export_keeps_ids_times_and_lengths_and_names_each_fault(tmp_path: Path) -> None:
    records = _records(4)
    records[1]["id"] = "I0"
    records[2]["meta"]["created_at"] = "2026-11-21T00:00:00+00:00"  # the next day: outside
    records[3]["body"] = "  "
    read = read_export(_jsonl(tmp_path, records), 5, _cfg(digital=DIGITAL), DAY)
    assert read.lines == [1, 2, 3, 4] and read.ids == ["I0", "I0", "I2", "I3"]
    assert read.lengths[3] == 0 and "Bonjour" not in repr(read)  # lengths, never contents
    checks = read.checks
    assert checks.records == 4 and checks.duplicate_ids == {"I0": [1, 2]}
    assert [x["id"] for x in checks.outside_day] == ["I2"]
    assert checks.empty_content == [{"id": "I3", "line": 4}]
    assert checks.clauses(_cfg(digital=DIGITAL)) == [
        "4 interactions exported, the CRM says 5 (1 missing)",
        "1 duplicate id: I0",
        "1 outside the day: I2 at 2026-11-21T00:00:00+00:00",
        "1 with empty body: I3",
    ]


def test_read_export_refuses_a_missing_file_and_a_provider_without_digital(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not found"):
        read_export(tmp_path / "none.jsonl", None, _cfg(digital=DIGITAL), DAY)
    with pytest.raises(ValidationError, match="no 'digital' section"):
        read_export(_jsonl(tmp_path, _records()), None, _cfg(), DAY)


def test_conflicting_ids_are_one_masked_warning(tmp_path: Path) -> None:
    read = read_export(
        _jsonl(tmp_path, _records()),
        10,
        _cfg(digital=DIGITAL),
        DAY,
        export={"conflicting_ids": 2, "conflicting_examples": ["+22507123456", "I4"]},
    )
    assert conflict_warnings(read.checks, "id") == [
        "2 id received with conflicting contents, the last version of each kept: +225 ******56, I4"
    ]
    assert (
        conflict_warnings(
            read_export(_jsonl(tmp_path, _records()), 10, _cfg(digital=DIGITAL), DAY).checks, "id"
        )
        == []
    )


def test_get_path_follows_dots_and_list_indexes() -> None:
    record = {"meta": {"created_at": "t", "tags": ["a", "b"]}}
    assert get_path(record, "meta.created_at") == "t"
    assert get_path(record, "meta.tags.-1") == "b"
    assert get_path(record, "meta.tags.5") is None and get_path(record, "nope.x") is None
