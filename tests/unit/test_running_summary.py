"""``running`` in summary.json: written when a run attempt starts, replaced by the verdict.

Contract §8.1 *Evaluators*: the digest and the overview read files only, so a day being
processed must say so; a re-run of a proven day keeps its counts and proof meanwhile, and a
later step's verdict is never overwritten by the start mark.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from include.cc_intake import overview
from include.cc_intake.proof import (
    finish_running_summary,
    write_config_error_summary,
    write_running_summary,
    write_summary,
)

DAY = dt.date(2026, 11, 25)


def _recordings(*, success: bool = True, got: int = 3) -> dict[str, Any]:
    return {
        "success": success,
        "warnings": [],
        "reconciliation": {
            "directions": {
                "ENTRANTS": {"expected": 3, "got": got},
                "SORTANTS": {"expected": 2, "got": 2},
            },
            "rejected": [],
        },
    }


def _digital() -> dict[str, Any]:
    return {"success": True, "warnings": [], "checks": {"stated_total": 4, "records": 4}}


def _read(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "summary.json").read_text(encoding="utf-8")))


def _green_day(folder: Path, run_id: str = "scheduled__1") -> None:
    (folder).mkdir(parents=True, exist_ok=True)
    (folder / "recordings.html").write_text("<p>proof</p>", encoding="utf-8")
    write_summary(
        folder, provider="acme", day=DAY, recordings=_recordings(), run_id=run_id, attempt="0"
    )


def test_a_first_run_marks_the_day_running(tmp_path: Path) -> None:
    folder = tmp_path / "quality" / "acme" / DAY.isoformat()
    written = write_running_summary(
        folder, provider="acme", day=DAY, run_id="r1", attempt="0", timezone="Africa/Abidjan"
    )
    summary = _read(folder)
    assert written == folder / "summary.json"
    assert summary["status"] == "running" and summary["run_id"] == "r1"
    assert "previous" not in summary and summary["recordings"] is None
    cell = overview.read_day(tmp_path, "acme", DAY)
    assert cell.status == "running" and cell.problem is None


def test_a_rerun_of_a_green_day_is_running_and_keeps_counts_and_proof(tmp_path: Path) -> None:
    folder = tmp_path / "quality" / "acme" / DAY.isoformat()
    _green_day(folder)
    write_running_summary(folder, provider="acme", day=DAY, run_id="manual__2", attempt="0")
    summary = _read(folder)
    assert summary["status"] == "running" and summary["previous"] == "green"
    assert summary["recordings"]["ENTRANTS"] == {"expected": 3, "got": 3}
    assert (folder / "recordings.html").read_text(encoding="utf-8") == "<p>proof</p>"
    cell = overview.read_day(tmp_path, "acme", DAY)
    assert (cell.status, cell.previous, cell.proof_page) == (
        "running",
        "green",
        f"acme/{DAY}/recordings.html",
    )
    page = overview.render_overview(overview.build_overview(tmp_path, end_day=DAY, days=1))
    assert 'data-status="running"' in page and "Verdict précédent : complet" in page


def test_the_start_mark_never_overwrites_a_verdict_of_the_same_attempt(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    assert write_running_summary(folder, provider="acme", day=DAY, run_id="r", attempt="0")
    write_summary(
        folder, provider="acme", day=DAY, recordings=_recordings(), run_id="r", attempt="0"
    )
    # The other root task, or the sensor rescheduled, starts after the verdict: nothing changes.
    assert write_running_summary(folder, provider="acme", day=DAY, run_id="r", attempt="0") is None
    assert _read(folder)["status"] == "green"
    # A cleared run (same id, next clear number) is a new attempt: running again.
    assert write_running_summary(folder, provider="acme", day=DAY, run_id="r", attempt="1")
    assert _read(folder)["status"] == "running"


def test_a_digital_verdict_alone_keeps_the_day_running(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    _green_day(folder)
    write_running_summary(folder, provider="acme", day=DAY, run_id="r2", attempt="0")
    # As keep_proof does: the proof file first, then the summary.
    (folder / "digital.json").write_text(json.dumps(_digital()), encoding="utf-8")
    write_summary(folder, provider="acme", day=DAY, digital=_digital(), run_id="r2", attempt="0")
    summary = _read(folder)
    assert summary["status"] == "running" and summary["previous"] == "green"
    assert summary["digital"]["got"] == 4
    assert summary["recordings"]["ENTRANTS"]["got"] == 3  # the earlier counts stay
    write_summary(
        folder,
        provider="acme",
        day=DAY,
        recordings=_recordings(success=False, got=2),
        run_id="r2",
        attempt="0",
    )
    summary = _read(folder)
    assert summary["status"] == "red" and "previous" not in summary
    assert summary["recordings"]["ENTRANTS"]["got"] == 2 and summary["digital"]["got"] == 4


def test_a_run_that_ends_before_its_verdict_gets_the_earlier_one_back(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    _green_day(folder)
    write_running_summary(folder, provider="acme", day=DAY, run_id="r2", attempt="0")
    # Another run's end does not touch this run's mark.
    assert finish_running_summary(folder, run_id="r3", attempt="0", succeeded=False) is None
    assert _read(folder)["status"] == "running"
    assert finish_running_summary(folder, run_id="r2", attempt="0", succeeded=False)
    summary = _read(folder)
    assert summary["status"] == "green" and summary["last_run"] == "failed"
    assert "previous" not in summary
    # Nothing left to end.
    assert finish_running_summary(folder, run_id="r2", attempt="0", succeeded=False) is None


def test_a_rerun_that_renewed_only_its_digital_verdict_ends_with_what_the_proofs_say(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "q"
    _green_day(folder)
    (folder / "recordings.json").write_text(json.dumps(_recordings()), encoding="utf-8")
    # Only the CRM part is re-run (export_digital cleared): its new export fails validation.
    write_running_summary(folder, provider="acme", day=DAY, run_id="r1", attempt="1")
    bad = {**_digital(), "success": False}
    (folder / "digital.json").write_text(json.dumps(bad), encoding="utf-8")
    write_summary(folder, provider="acme", day=DAY, digital=bad, run_id="r1", attempt="1")
    assert _read(folder)["status"] == "running"
    assert finish_running_summary(folder, run_id="r1", attempt="1", succeeded=False)
    assert _read(folder)["status"] == "red"  # not the green from before the run


def test_a_first_run_that_ends_before_its_verdict_is_red(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    write_running_summary(folder, provider="acme", day=DAY, run_id="r1", attempt="0")
    assert finish_running_summary(folder, run_id="r1", attempt="0", succeeded=False)
    assert _read(folder)["status"] == "red"


def test_a_run_that_never_ended_keeps_the_verdict_before_it(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    _green_day(folder)
    write_running_summary(folder, provider="acme", day=DAY, run_id="r2", attempt="0")
    # r2's worker died without a callback; r3 starts: the verdict before r2 is still "previous".
    write_running_summary(folder, provider="acme", day=DAY, run_id="r3", attempt="0")
    assert _read(folder)["previous"] == "green"


def test_a_config_error_placeholder_still_marks_a_running_day(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    write_running_summary(folder, provider="acme", day=DAY, run_id="r1", attempt="0")
    assert write_config_error_summary(folder, provider="acme", day=DAY, run_id="p1")
    assert _read(folder)["status"] == "config_error"
