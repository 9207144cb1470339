"""The day statuses and the rules that pick one."""

from __future__ import annotations

import pytest

from include.cc_intake import status
from include.cc_intake.status import day_status, keeps_verdict, verdict


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"success": True, "warnings": []}, "green"),
        (
            {"success": True, "warnings": ["ENTRANTS: 2 recordings, report says 3 (within…)"]},
            "amber",
        ),
        ({"success": True, "reconciliation": {"rejected": [{"file_name": "x.txt"}]}}, "amber"),
        ({"success": True, "reconciliation": {"rejected": []}}, "green"),
        ({"success": False, "warnings": []}, "red"),
        ({"success": False, "warnings": ["w"]}, "red"),  # a failure outranks a reserve
        ({}, "red"),  # no verdict is no proof
    ],
)
def test_verdict_of_one_validation(result: dict, expected: str) -> None:
    assert verdict(result) == expected


@pytest.mark.parametrize(
    ("verdicts", "recordings_validated", "rejected", "expected"),
    [
        (["green"], True, 0, "green"),
        (["green", "green"], True, 0, "green"),
        (["green", "amber"], True, 0, "amber"),
        (["amber", "red"], True, 0, "red"),
        (["red"], False, 0, "red"),
        (["green"], True, 2, "amber"),  # rejected files never pass silently
        (["green"], False, 0, "amber"),  # digital alone: the recordings are not proven yet
        ([], False, 0, "amber"),
    ],
)
def test_day_status_from_its_validations(
    verdicts: list[status.Status], recordings_validated: bool, rejected: int, expected: str
) -> None:
    assert (
        day_status(verdicts, recordings_validated=recordings_validated, rejected=rejected)
        == expected
    )


@pytest.mark.parametrize(
    ("earlier", "kept"),
    [("green", True), ("amber", True), ("red", True), ("config_error", False), ("running", False),
     (None, False), ("ok", False)],
)  # fmt: skip
def test_a_config_error_never_replaces_a_verdict(earlier: str | None, kept: bool) -> None:
    assert keeps_verdict(earlier) is kept


def test_the_overview_reads_the_same_vocabulary() -> None:
    from include.cc_intake import overview

    assert set(status.SUMMARY_STATUSES) == {"green", "amber", "red", "config_error", "running"}
    # Every status a summary may carry has a label on the page.
    assert set(status.SUMMARY_STATUSES) <= set(overview._STATUS_LABELS)
