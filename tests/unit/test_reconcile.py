"""Reconciliation (pure): the manifest's rows against the provider's report."""

from __future__ import annotations

import pytest

from include.cc_intake.reconcile import reconcile, recording_gaps
from tests.unit.quality_data import (
    DAY,
    _cfg,
    _day_rows,
    _detail,
    _row,
    _summary,
)

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


def test_non_audio_recordings_are_a_warning_not_a_failure() -> None:
    rows = _day_rows()
    rows[0]["audio_ok"] = "false"
    rows[1]["audio_ok"] = "true"
    rec = reconcile(rows, _summary(), _cfg(), DAY)
    assert rec.ok
    assert any("1 recording(s) truncated or not audio" in w for w in rec.warnings)
    assert any(rows[0]["file_name"] in w for w in rec.warnings)


# --- the gaps the reconciliation e-mail lists -------------------------------------------------


def test_recording_gaps_lists_each_kind_from_the_proof_section() -> None:
    rows = [r for r in _day_rows() if r["call_id"] != "E2"]  # E2 missing
    rows[1] = _row("ENTRANTS", "E3", size=0)  # accepted but empty
    rows += [
        _row("SORTANTS", "S3"),  # extra
        _row("SORTANTS", "S1", hhmmss="101600"),  # S1 twice
        _row("SORTANTS", "S9", day="20261119"),  # accepted, of another day (and extra)
        _row("ENTRANTS", "E8", name="20261120_E8.wav"),  # accepted, name off the pattern
        _row("ENTRANTS", "E7", size=0, status="rejected", reason="empty"),
        _row("SORTANTS", "", name="notes.txt", status="rejected", reason="pattern_mismatch"),
    ]
    proof = reconcile(rows, _detail(), _cfg(), DAY).to_dict()  # the shape kept in the proof

    assert recording_gaps(proof) == {
        "missing": ["ENTRANTS : E2"],
        "extra": [
            "20261120_E8.wav",
            "20261120_101500_ag01_S3.wav",
            "20261119_101500_ag01_S9.wav",
        ],
        "duplicate": ["S1 : 20261120_101500_ag01_S1.wav, 20261120_101600_ag01_S1.wav"],
        # A rejected empty file is in the proof's "empty" too, but the copier already named it:
        # only accepted rows count, as in the verdict.
        "empty": ["20261120_101500_ag01_E3.wav"],
        "other_date": ["20261119_101500_ag01_S9.wav"],
        "unrecognised": ["20261120_E8.wav"],
        "rejected": ["20261120_101500_ag01_E7.wav (empty)", "notes.txt (pattern_mismatch)"],
    }


def test_recording_gaps_of_a_clean_day_or_an_empty_section_are_empty() -> None:
    clean = reconcile(_day_rows(), _detail(), _cfg(), DAY).to_dict()
    assert set(recording_gaps(clean)) == set(recording_gaps({}))
    assert all(v == [] for v in recording_gaps(clean).values())
    assert all(v == [] for v in recording_gaps({}).values())


def test_a_received_name_outside_the_pattern_is_named_once() -> None:
    # A held file with no call_id and a name the pattern refuses (e.g. after a pattern change).
    rows = [*_day_rows(), _row("ENTRANTS", "", name="odd.wav")]
    rec = reconcile(rows, _summary(entrants=4), _cfg(), DAY)
    assert [(e.file_name, e.detail) for e in rec.bad_names] == [
        ("odd.wav", "does not match filename_pattern")
    ]
    assert "odd.wav, odd.wav" not in rec.failure_message()
