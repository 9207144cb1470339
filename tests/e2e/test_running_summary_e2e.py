"""``running`` in summary.json through real runs of a provider DAG (contract §8.1 *Evaluators*).

A proven day is re-run while one of its recordings is away from the server: the wait keeps
poking, and meanwhile the day says ``running`` — with its counts, its earlier verdict and its
proof page still there, and the digest shows it as running, not red. The file comes back, the
run ends, and the verdict replaces ``running``. A third run that fails before any validation
gives the day its earlier verdict back (the DAG's failure callback).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from include.cc_intake import overview
from include.cc_intake.digest import DigestProvider, build_digest
from include.cc_intake.sandbox.env import PROVIDERS_FOLDER
from tests.e2e.conftest import SandboxDays, free_port, tail

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PID = "acme_rerun"
DAG_ID = f"ingest_{PID}"


def _provider(days: SandboxDays) -> None:
    """The sandbox's acme provider under another id, quick to poll, without its CRM part."""
    spec = yaml.safe_load((PROVIDERS_FOLDER / "acme_abidjan.yaml").read_text("utf-8"))
    spec.update(id=PID, name="ACME (re-run)")
    spec.pop("digital")
    spec["recordings"].update(wait_timeout="4m", poll_interval="1s", settle="1s", min_file_age=0)
    (days.providers_dir / f"{PID}.yaml").write_text(yaml.safe_dump(spec), "utf-8")


def _summary(days: SandboxDays, day: dt.date) -> dict[str, Any]:
    path = days.layout(PID, day).quality_dir / "summary.json"
    try:
        return dict(json.loads(path.read_text("utf-8")))
    except (FileNotFoundError, ValueError):
        return {}


def test_a_rerun_is_running_until_its_verdict_and_a_failed_one_keeps_the_proof(
    sandbox_days: SandboxDays, tmp_path: Path
) -> None:
    days = sandbox_days
    _provider(days)
    seed = days.sandbox.seeds["acme_abidjan"]
    day = seed.day
    conf = {"target_date": day.isoformat()}

    # 1. The day is proven (amber: the sandbox serves a few files to reject).
    proc = days.run(DAG_ID, conf=conf)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    first = _summary(days, day)
    verdict = first["status"]
    assert verdict in ("green", "amber") and "previous" not in first, first
    proof = days.layout(PID, day).quality_dir / "recordings.html"
    proof_page = proof.read_text("utf-8")

    # 2. A re-run while one inbound recording is away: the wait keeps poking.
    away = next(f for f in seed.files if f.direction == "ENTRANTS")
    on_server = seed.local_path(away.remote_path)
    aside = tmp_path / "aside.wav"
    os.rename(on_server, aside)
    logical = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    log = days.stack.logs / "dags-test-rerun.log"
    with log.open("w") as out:
        rerun = subprocess.Popen(
            [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, logical.isoformat(),
             "-c", json.dumps(conf)],
            env=days.stack.env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while (now := _summary(days, day)).get("status") != "running":
            assert rerun.poll() is None, f"the re-run ended early:\n{tail(log)}"
            assert time.monotonic() < deadline, f"never marked running:\n{tail(log)}"
            time.sleep(0.5)
        assert now["run_id"] != first["run_id"] and now["previous"] == verdict, now
        assert now["recordings"] == first["recordings"]  # the counts stay visible
        assert proof.read_text("utf-8") == proof_page  # and the proof stays whole
        cell = overview.read_day(days.data, PID, day)
        assert (cell.status, cell.previous) == ("running", verdict)
        assert cell.proof_page == f"{PID}/{day}/recordings.html"
        at = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC)
        (row,) = build_digest(days.data, [DigestProvider(PID, "ACME", "UTC")], at=at).rows
        assert (row.status, row.previous) == ("running", verdict)
        time.sleep(3)  # a few more pokes: the mark is written once, never again
        assert _summary(days, day)["started_at"] == now["started_at"]
    finally:
        os.rename(aside, on_server)  # the file is back: the wait is over
    assert rerun.wait(timeout=400) == 0, tail(log, 80)
    second = _summary(days, day)
    assert second["status"] == verdict and "previous" not in second, second
    assert second["run_id"] == now["run_id"]

    # 3. A re-run that fails before any validation (its server is unreachable): the day gets
    # its verdict back from the DAG's failure callback, and says the last run failed.
    config = days.stack.home / "config"
    config.mkdir(exist_ok=True)
    (config / "airflow_local_settings.py").write_text(
        "def task_policy(task):\n    task.retries = 0\n", "utf-8"
    )
    connection = json.loads(days.stack.env["AIRFLOW_CONN_SFTP_ACME"])
    connection["port"] = free_port()  # nothing listens there
    days.stack.env["AIRFLOW_CONN_SFTP_ACME"] = json.dumps(connection)
    proc = days.run(DAG_ID, conf=conf)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-4000:]
    third = _summary(days, day)
    assert third["status"] == verdict and third["last_run"] == "failed", third
    assert third["run_id"] not in (first["run_id"], second["run_id"])
    assert "end_running_day(failure)" in output
