"""The validation tasks' last step: the proof page and the summary, written under the day's lock.

``keep_proof`` runs in the task exactly as here (a real validation result from Great
Expectations); only the task instance's XCom push is a stand-in.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from include.cc_intake.airflow.tasks import ValidateDigitalOperator
from include.cc_intake.layout import DayLayout
from tests.unit.quality_data import DAY, DIGITAL, _cfg, _digital, _records

pytestmark = pytest.mark.integration

PROOF_FILES = {"digital.html", "digital.json", "summary.json"}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


RUN_ID = "scheduled__2026-11-21T02:30:00+00:00"


def keep_digital_proof(tmp_path: Path, root: Path) -> DayLayout:
    cfg = _cfg(digital=DIGITAL)
    result = _digital(tmp_path, _records())
    layout = DayLayout(root, cfg.id, DAY)
    pushed: dict[str, Any] = {}
    context: Any = {
        "ti": SimpleNamespace(xcom_push=lambda key, value: pushed.update({key: value})),
        "dag_run": SimpleNamespace(run_id=RUN_ID),
    }
    task = ValidateDigitalOperator(task_id="validate_digital", provider=cfg)
    url = task.keep_proof(context, layout, "digital", result)
    assert url.endswith(f"/cc-intake/quality/{cfg.id}/{DAY}/digital.html")
    return layout


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_item16_day_lock_folders_and_file_follow_the_landing_modes_whatever_the_umask(
    tmp_path: Path, umask: int
) -> None:
    root = tmp_path / "data"
    root.mkdir(mode=0o750)
    previous = os.umask(umask)
    try:
        layout = keep_digital_proof(tmp_path, root)
    finally:
        os.umask(previous)

    # Every folder the lock and the proof created under the data root, and every file.
    created = list(root.rglob("*"))
    for path in created:
        expected = 0o750 if path.is_dir() else 0o640
        assert _mode(path) == expected, f"{path.relative_to(root)}: {oct(_mode(path))}"
    assert layout.lock in created


def test_item19_the_day_lock_lives_outside_the_proof_folder(tmp_path: Path) -> None:
    root = tmp_path / "data"
    quality = DayLayout(root, "acme_abidjan", DAY).quality_dir
    quality.mkdir(parents=True)
    (quality / ".summary.lock").touch()  # left there by an earlier version

    layout = keep_digital_proof(tmp_path, root)

    assert {p.name for p in layout.quality_dir.iterdir()} == PROOF_FILES
    assert layout.lock == root / "locks" / "acme_abidjan" / f"{DAY}.lock"
    assert layout.lock.is_file()
    # A second run of the day takes the same lock file, and still adds nothing to the proof.
    keep_digital_proof(tmp_path, root)
    assert {p.name for p in layout.quality_dir.iterdir()} == PROOF_FILES
    assert [p.name for p in layout.lock.parent.iterdir()] == [f"{DAY}.lock"]


def test_issue14_defect6_the_summary_names_the_run_that_wrote_it(tmp_path: Path) -> None:
    # The overview links a day to its run only when summary.json carries run_id (else it
    # falls back to a filter on the DAG's runs); the timezone places that fallback.
    layout = keep_digital_proof(tmp_path, tmp_path / "data")
    summary = json.loads((layout.quality_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["run_id"] == RUN_ID
    assert summary["timezone"] == "Africa/Abidjan"
