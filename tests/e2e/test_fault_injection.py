"""Fault injection: whole provider-days through the real DAG against the real sandbox servers.

Each test plays a hostile provider, a flaky CRM or a careless operator between two runs of the
same processed day (``airflow dags test`` with ``target_date``, see ``SandboxDays``), then
checks what an operator would trust: the manifest, the landed files, the proof and the e-mails
the SMTP sink received. Items refer to issue #10 ("the proof never lies").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import sqlite3
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from include.cc_intake import constants as C
from include.cc_intake.sandbox.env import env_var
from include.cc_intake.sandbox.keys import ensure_keys
from tests.e2e.conftest import SandboxDays

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_a_good_day_runs_green_and_sends_no_mail(sandbox_days: SandboxDays) -> None:
    proc = sandbox_days.run_day("acme_abidjan")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    layout = sandbox_days.layout("acme_abidjan")
    assert layout.manifest.is_file()
    assert sandbox_days.mails() == []


# --- items 15, 18, 19 (operations: target_date checked at trigger, no retry a retry cannot fix,
# the day's lock outside the proof folder)

_OPS_RUNS = itertools.count(1)


def _dags_test(
    days: SandboxDays, provider: str, *extra: str, conf: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    """``airflow dags test`` of the sandbox day with extra CLI options (own logical dates)."""
    cfg = days.sandbox.providers[provider]
    logical = dt.datetime(2031, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=next(_OPS_RUNS))
    run_conf = {"target_date": days.day(provider).isoformat(), **(conf or {})}
    return days.stack.cli(
        "dags", "test", cfg.dag_id, logical.isoformat(), "-c", json.dumps(run_conf), *extra,
        timeout=300, check=False, log_name=f"ops-dags-test-{logical:%H}",
    )  # fmt: skip


def _query(days: SandboxDays, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(days.stack.home / "airflow.db")) as db:
        return db.execute(sql, args).fetchall()


def _last_run_tries(days: SandboxDays, dag_id: str) -> dict[str, tuple[str, int, int]]:
    """task id -> (state, try number, earlier tries kept in history) of the DAG's last run."""
    ((run_id,),) = _query(
        days, "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", dag_id
    )
    history = dict(
        _query(
            days,
            "SELECT task_id, COUNT(*) FROM task_instance_history "
            "WHERE dag_id = ? AND run_id = ? GROUP BY task_id",
            dag_id,
            run_id,
        )
    )
    rows = _query(
        days,
        "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = ? AND run_id = ?",
        dag_id,
        run_id,
    )
    return {task: (state, tries, history.get(task, 0)) for task, state, tries in rows}


def test_item15_a_target_date_that_is_not_a_day_is_refused_before_any_task_runs(
    sandbox_days: SandboxDays,
) -> None:
    dag_id = sandbox_days.sandbox.providers["acme_abidjan"].dag_id
    stack = sandbox_days.stack
    stack.cli("dags", "reserialize", log_name="ops-reserialize")

    # The README's trigger: refused with the reason, and no run is created.
    for hostile in ("2026-11-25\r\nBcc: intrus@example.com", "20261125", "hier"):
        proc = stack.cli(
            "dags", "trigger", dag_id, "-c", json.dumps({"target_date": hostile}),
            check=False, log_name="ops-trigger",
        )  # fmt: skip
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, out[-3000:]
        assert "Invalid input for param target_date" in out and "is not a 'date'" in out, out
    assert _query(sandbox_days, "SELECT COUNT(*) FROM dag_run WHERE dag_id = ?", dag_id) == [(0,)]

    # `airflow dags test -c` (and so dag.test(run_conf=...)) refuses it the same way.
    proc = _dags_test(sandbox_days, "acme_abidjan", conf={"target_date": "2026-11-25\nX"})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Invalid input for param target_date" in out, out[-3000:]
    assert _query(sandbox_days, "SELECT COUNT(*) FROM task_instance") == [(0,)]
    assert sandbox_days.mails() == []
    assert not sandbox_days.data.exists() or not any(sandbox_days.data.rglob("*.csv"))


def test_item18_a_wrong_host_key_fails_wait_and_copy_at_once_and_the_mail_says_no_retry(
    sandbox_days: SandboxDays, tmp_path: Path
) -> None:
    provider = "acme_abidjan"
    cfg = sandbox_days.sandbox.providers[provider]
    var = env_var(cfg.recordings.sftp_conn_id)
    connection = json.loads(sandbox_days.stack.env[var])
    connection["extra"]["host_key"] = ensure_keys(tmp_path / "other-keys").host_public_line
    sandbox_days.stack.env[var] = json.dumps(connection)

    # The wait step meets the wrong key first: failed on its first try, no retry scheduled.
    started = time.monotonic()
    proc = _dags_test(sandbox_days, provider)
    tries = _last_run_tries(sandbox_days, cfg.dag_id)
    assert tries[C.TASK_WAIT] == ("failed", 1, 0), (tries, (proc.stdout + proc.stderr)[-3000:])
    assert tries[C.TASK_COPY][0] == "upstream_failed"
    assert time.monotonic() - started < 240  # the first retry alone would wait 2 minutes

    # The copy step, once the wait has passed (an operator marking it done): the same.
    _dags_test(sandbox_days, provider, "--mark-success-pattern", C.TASK_WAIT)
    tries = _last_run_tries(sandbox_days, cfg.dag_id)
    assert tries[C.TASK_COPY] == ("failed", 1, 0), tries
    assert not sandbox_days.layout(provider).manifest.exists()

    mails = [m for m in sandbox_days.mails() if "clé d'hôte SSH refusée" in m["Subject"]]
    assert [m["Subject"] for m in mails] == [
        f"[intake][{provider}][{sandbox_days.day(provider)}] clé d'hôte SSH refusée"
    ] * 2
    for mail, task in zip(mails, (C.TASK_WAIT, C.TASK_COPY), strict=True):
        body = mail.get_body(("plain", "html")).get_content()
        assert f"{task} (tentative 1)" in body
        assert "Aucune nouvelle tentative automatique" in body
        assert "host_key" in body and f"make check PROVIDER={provider}" in body


def test_item19_the_day_lock_is_kept_out_of_the_proof_folder(sandbox_days: SandboxDays) -> None:
    proc = sandbox_days.run_day("acme_abidjan")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    layout = sandbox_days.layout("acme_abidjan")

    proof = sorted(p.name for p in layout.quality_dir.iterdir())
    assert "summary.json" in proof and "recordings.html" in proof and "digital.html" in proof
    assert [n for n in proof if n.startswith(".") or "lock" in n] == [], proof
    assert layout.lock == sandbox_days.data / "locks" / "acme_abidjan" / f"{layout.day}.lock"
    # Landing modes (item 16) for the lock and the proof, as the real run left them.
    dirs = (layout.lock.parent.parent, layout.lock.parent, layout.quality_dir)
    for path in (*dirs, *layout.quality_dir.parents[:2]):
        assert stat.S_IMODE(path.stat().st_mode) == 0o750, path
    for path in (layout.lock, *layout.quality_dir.iterdir()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
