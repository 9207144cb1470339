"""`airflow dags test ingest_<id>` runs a sandbox provider's day end to end and exits 0.

The DAGs carry a deadline, and `dags test` crashes at the end of a run of such a DAG
(apache/airflow#73428): ``CC_INTAKE_DEADLINES=off`` is the documented way round, and this test
holds it to that.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from include.cc_intake import overview
from include.cc_intake.days import scheduled_run_for
from include.cc_intake.layout import DayLayout
from include.cc_intake.manifest import read_manifest
from include.cc_intake.sandbox.env import Sandbox
from include.cc_intake.sandbox.services import default_services
from tests.e2e.conftest import AirflowStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PROVIDER = "acme_abidjan"


def test_dags_test_runs_a_sandbox_day_with_deadlines_off(
    tmp_path: Path, airflow_stack_factory: Callable[..., AirflowStack]
) -> None:
    data = tmp_path / "data"
    no_real_providers = tmp_path / "providers"
    no_real_providers.mkdir()
    with Sandbox(tmp_path / "sandbox", services=default_services()) as sandbox:
        cfg = sandbox.providers[PROVIDER]
        day = sandbox.days[PROVIDER]
        stack = airflow_stack_factory(
            extra_env={
                **sandbox.env(),
                "CC_INTAKE_SANDBOX": "1",
                "CC_INTAKE_PROVIDERS_DIR": str(no_real_providers),
                "CC_INTAKE_DEADLINES": "off",
                "CC_INTAKE_DATA_ROOT": str(data),
            }
        )
        stack.migrate()
        logical = scheduled_run_for(day, schedule=cfg.schedule, tz=cfg.tz)
        proc = stack.cli(
            "dags",
            "test",
            cfg.dag_id,
            logical.isoformat(),
            timeout=420,
            check=False,
            log_name="dags-test",
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, (
            f"`airflow dags test` exited {proc.returncode}:\n{output[-6000:]}"
        )
        assert sandbox.smtp is not None
        mails = [str(m["Subject"]) for m in sandbox.smtp.messages()]

    seed = sandbox.seeds[PROVIDER]
    layout = DayLayout(data, PROVIDER, day)
    rows = read_manifest(layout.manifest, cfg.recordings.group_names)
    landed = {(r.direction, r.file_name) for r in rows if r.landed}
    assert landed == {(f.direction, f.name) for f in seed.files}, rows
    for seeded in seed.files:
        assert layout.recording(seeded.direction, seeded.name).stat().st_size == seeded.size
    summary = json.loads((layout.quality_dir / "summary.json").read_text(encoding="utf-8"))
    # The seed's traps (sidecar, empty file, symlink…) are rejected: amber, never red.
    assert summary["status"] == "amber", summary
    for direction, counts in summary["recordings"].items():
        assert counts["expected"] == counts["got"] == seed.delivered_counts[direction], summary
    assert (layout.digital_dir / "interactions.jsonl").stat().st_size > 0
    # Issue 14, defect 6: the summary names the run that wrote it, and the overview's run link
    # opens that run rather than a filter on the DAG's runs.
    assert summary["run_id"] and summary["timezone"] == cfg.timezone, summary
    cell = overview.read_day(data, PROVIDER, day)
    assert overview.run_href(cell).endswith(f"/runs/{quote(summary['run_id'], safe='')}")
    assert mails == [], f"a good day must not alert: {mails}"
