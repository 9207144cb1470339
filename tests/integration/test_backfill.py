"""`make backfill` against a migrated DB: the runs Airflow plans process exactly FROM..TO."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from include.cc_intake.airflow import backfill
from include.cc_intake.config import load_provider
from include.cc_intake.days import processed_day, scheduled_run_for
from include.cc_intake.errors import ConfigError
from include.cc_intake.sandbox.env import PROVIDERS_FOLDER

pytestmark = [pytest.mark.integration, pytest.mark.airflow_db]

FIRST, LAST = dt.date(2026, 11, 1), dt.date(2026, 11, 3)
ROW = re.compile(r"^\|\s*(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d)\s*\|", re.MULTILINE)


@pytest.fixture(scope="module")
def sandbox_env(airflow_db: Path) -> dict[str, str]:
    """The session DB with the sandbox DAGs serialized, as the dag-processor would leave it."""
    env = {**os.environ, "CC_INTAKE_SANDBOX": "1"}
    subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "reserialize"],
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def run_backfill(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "include.cc_intake.airflow.backfill", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("provider_id", ["baobab_douala", "acme_abidjan"])
def test_dry_run_lists_exactly_the_runs_of_the_processed_days(
    sandbox_env: dict[str, str], provider_id: str
) -> None:
    cfg = load_provider(PROVIDERS_FOLDER / f"{provider_id}.yaml")
    done = run_backfill(sandbox_env, provider_id, str(FIRST), str(LAST), "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        f"airflow backfill create --dag-id {cfg.dag_id} --from-date "
        f"{scheduled_run_for(FIRST, schedule=cfg.schedule, tz=cfg.tz).isoformat()}"
    ) in done.stdout
    assert "--reprocess-behavior completed --dry-run" in done.stdout

    planned = [dt.datetime.fromisoformat(m) for m in ROW.findall(done.stdout)]
    expected = [
        scheduled_run_for(FIRST + dt.timedelta(days=n), schedule=cfg.schedule, tz=cfg.tz)
        for n in range(3)
    ]
    # Three runs, at the schedule time of Nov 2, 3 and 4 in the provider's zone...
    assert planned == expected, done.stdout
    assert [p.astimezone(cfg.tz).date() for p in planned] == [
        dt.date(2026, 11, 2),
        dt.date(2026, 11, 3),
        dt.date(2026, 11, 4),
    ]
    # ...which process Nov 1, 2 and 3.
    assert [processed_day(tz=cfg.tz, logical_date=p) for p in planned] == [
        dt.date(2026, 11, 1),
        dt.date(2026, 11, 2),
        dt.date(2026, 11, 3),
    ]


def test_backfill_creates_one_run_per_processed_day(sandbox_env: dict[str, str]) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunType
    from sqlalchemy import select

    cfg = load_provider(PROVIDERS_FOLDER / "baobab_douala.yaml")
    first, last = dt.date(2026, 10, 10), dt.date(2026, 10, 11)
    done = run_backfill(sandbox_env, cfg.id, str(first), str(last))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is paused: its backfill runs wait until unpaused" in done.stdout
    with create_session() as session:
        runs = session.scalars(
            select(DagRun).where(
                DagRun.dag_id == cfg.dag_id, DagRun.run_type == DagRunType.BACKFILL_JOB
            )
        ).all()
        days = sorted(processed_day(tz=cfg.tz, logical_date=r.logical_date) for r in runs)
    assert days == [first, last]


def test_a_dag_not_yet_serialized_is_named(airflow_db: Path, tmp_path: Path) -> None:
    yaml_text = (PROVIDERS_FOLDER / "acme_abidjan.yaml").read_text()
    (tmp_path / "zulu_lagos.yaml").write_text(
        yaml_text.replace("id: acme_abidjan", "id: zulu_lagos")
    )
    env = {**os.environ, "CC_INTAKE_PROVIDERS_DIR": str(tmp_path)}
    done = run_backfill(env, "zulu_lagos", "2026-11-01", "2026-11-02")
    assert done.returncode == 1
    assert "ingest_zulu_lagos is not in the metadata DB yet" in done.stderr


def test_unknown_provider_lists_the_known_ones(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CC_INTAKE_SANDBOX", "1")
    assert backfill.main(["no_such_provider", "2026-11-01", "2026-11-02"]) == 2
    err = capsys.readouterr().err
    assert "unknown provider 'no_such_provider': expected one of" in err
    assert "acme_abidjan, baobab_douala" in err


def test_sandbox_provider_without_the_sandbox_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CC_INTAKE_SANDBOX", raising=False)
    assert backfill.main(["acme_abidjan", "2026-11-01", "2026-11-02"]) == 2
    assert "sandbox provider: set CC_INTAKE_SANDBOX=1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["acme_abidjan", "2026-11-31", "2026-12-01"], r"FROM '2026-11-31' is not a day"),
        (["acme_abidjan", "2026-11-01", "01/11/2026"], r"TO '01/11/2026' is not a day"),
        (["acme_abidjan", "2026-11-05", "2026-11-03"], r"FROM 2026-11-05 is after TO 2026-11-03"),
        (["acme_abidjan", "2026-11-01", "2099-01-01"], r"TO 2099-01-01 is processed by the run"),
    ],
)
def test_bad_ranges_are_refused_before_airflow_runs(
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CC_INTAKE_SANDBOX", "1")
    assert backfill.main(args) == 2
    assert re.search(message, capsys.readouterr().err)


def test_plan_refuses_a_day_whose_run_is_not_due() -> None:
    cfg = load_provider(PROVIDERS_FOLDER / "acme_abidjan.yaml")  # 02:30 in Abidjan (UTC)
    before_run = dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.UTC)
    with pytest.raises(ConfigError, match=r"the last day that can be backfilled now is 2026-11-24"):
        backfill.plan_backfill(cfg, dt.date(2026, 11, 20), dt.date(2026, 11, 25), now=before_run)
    after_run = dt.datetime(2026, 11, 26, 2, 30, 1, tzinfo=dt.UTC)
    plan = backfill.plan_backfill(cfg, dt.date(2026, 11, 20), dt.date(2026, 11, 25), now=after_run)
    assert (plan.days, plan.end) == (6, after_run.replace(second=0))
