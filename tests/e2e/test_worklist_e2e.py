"""A real DAG run builds the evaluators' worklist; a re-run after late files only tops it up
(#13), through `airflow dags test` on a sandbox provider."""

from __future__ import annotations

import csv

import pytest

from include.cc_intake import worklist as W
from include.cc_intake.sandbox.seed import add_late_file
from tests.e2e.conftest import SandboxDays

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PROVIDER = "acme_abidjan"


def rows(sandbox_days: SandboxDays) -> list[dict[str, str]]:
    csv_path, _ = W.worklist_paths(sandbox_days.data, PROVIDER, sandbox_days.day(PROVIDER))
    with csv_path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def eligible(sandbox_days: SandboxDays) -> int:
    cfg = sandbox_days.sandbox.providers[PROVIDER]
    day = sandbox_days.day(PROVIDER)
    manifest = W.manifest_rows(cfg, day, sandbox_days.data)
    assert cfg.sampling is not None
    return len(W.recording_candidates(cfg, cfg.sampling, day, sandbox_days.data, manifest))


def test_a_dag_run_builds_the_worklist_and_a_late_rerun_tops_it_up(
    sandbox_days: SandboxDays,
) -> None:
    cfg = sandbox_days.sandbox.providers[PROVIDER]
    assert cfg.sampling is not None and cfg.sampling.recordings == "25%"

    proc = sandbox_days.run_day(PROVIDER)

    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    first = rows(sandbox_days)
    recordings = [r for r in first if r["kind"] == "recording"]
    assert len(recordings) == W.budget("25%", eligible(sandbox_days)) > 0
    assert sum(r["kind"] == "digital" for r in first) == 6
    for row in recordings:  # every path is a landed file under the data root
        assert (sandbox_days.data / row["path"]).is_file(), row
    _, page = W.worklist_paths(sandbox_days.data, PROVIDER, sandbox_days.day(PROVIDER))
    assert "<audio" in page.read_text(encoding="utf-8")

    seed = sandbox_days.sandbox.seeds[PROVIDER]
    for _ in range(10):
        add_late_file(seed, cfg, direction="SORTANTS")
    again = sandbox_days.run_day(PROVIDER)

    assert again.returncode == 0, (again.stdout + again.stderr)[-6000:]
    second = rows(sandbox_days)
    assert second[: len(first)] == first  # nothing given is taken back or changed
    total = W.budget("25%", eligible(sandbox_days))
    assert sum(r["kind"] == "recording" for r in second) == total > len(recordings)
    assert {r["added_at"] for r in second[len(first) :]} != {first[0]["added_at"]}
