"""Fault injection: whole provider-days through the real DAG against the real sandbox servers.

Each test plays a hostile provider, a flaky CRM or a careless operator between two runs of the
same processed day (``airflow dags test`` with ``target_date``, see ``SandboxDays``), then
checks what an operator would trust: the manifest, the landed files, the proof and the e-mails
the SMTP sink received. Items refer to issue #10 ("the proof never lies").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import html
import itertools
import json
import re
import sqlite3
import stat
import subprocess
import sys
import time
from email.message import EmailMessage
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


# --- items 9, 10, 18 (CRM export: no silent shrink, no silent truncation, no slow failure)


def _crm_route(days: SandboxDays, provider: str) -> Any:
    """The sandbox CRM's route serving ``provider``: its knobs change what the next run gets."""
    server = days.sandbox.services[0].server
    digital = days.sandbox.providers[provider].digital
    assert server is not None and digital is not None
    return server.routes[digital.endpoint]


def _text(msg: EmailMessage) -> str:
    """The e-mail as an operator reads it (the sink keeps the HTML part)."""
    body = msg.get_body(preferencelist=("html", "plain"))
    assert body is not None
    return html.unescape(re.sub(r"<[^>]+>", " ", body.get_content()))


def _summary(days: SandboxDays, provider: str) -> dict[str, Any]:
    path = days.layout(provider).quality_dir / "summary.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def test_item9_a_purged_crm_day_fails_the_rerun_keeps_the_export_and_mails_both_counts(
    sandbox_days: SandboxDays,
) -> None:
    pid = "acme_abidjan"
    day = sandbox_days.day(pid).isoformat()
    landed = sandbox_days.layout(pid).digital_dir / "interactions.jsonl"
    proc = sandbox_days.run_day(pid)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    before = landed.read_bytes()
    assert len(before.splitlines()) == 240
    assert _summary(sandbox_days, pid)["digital"]["got"] == 240

    _crm_route(sandbox_days, pid).emptied_days.add(sandbox_days.day(pid))  # the CRM purged it
    started = time.monotonic()
    proc = sandbox_days.run_day(pid)
    assert proc.returncode != 0, (proc.stdout + proc.stderr)[-4000:]
    assert time.monotonic() - started < 240  # failed at once: no task retries minutes apart
    assert landed.read_bytes() == before
    assert sorted(p.name for p in landed.parent.iterdir()) == ["interactions.jsonl"]
    assert _summary(sandbox_days, pid)["digital"]["got"] == 240  # the proof still stands
    mails = sandbox_days.mails()
    assert [str(m["Subject"]) for m in mails] == [
        f"[intake][{pid}][{day}] export CRM en baisse, export précédent conservé"
    ]
    text = _text(mails[0])
    assert "le CRM renvoie 0 interactions, l'export précédent en contenait 240" in text
    assert "export_digital (tentative 1)" in text
    assert '"replace_digital": true' in text

    proc = sandbox_days.run_day(pid, conf={"replace_digital": True})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert landed.read_bytes() == b""  # replaced, as the operator asked
    assert _summary(sandbox_days, pid)["digital"] == {
        "expected": 0,
        "got": 0,
        "conflicting_ids": 0,
    }
    assert len(sandbox_days.mails()) == 1


def test_item10_a_crm_capping_per_page_without_a_total_lands_every_interaction(
    sandbox_days: SandboxDays,
) -> None:
    pid = "baobab_douala"  # numbered pages of 50, no stated total
    route = _crm_route(sandbox_days, pid)
    route.max_per_page = 20  # the CRM serves 20 a page whatever we ask, and says nothing
    proc = sandbox_days.run_day(pid)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    landed = sandbox_days.layout(pid).digital_dir / "interactions.jsonl"
    ids = [json.loads(line)["interaction_id"] for line in landed.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == route.count == 130
    assert _summary(sandbox_days, pid)["digital"]["got"] == 130
    assert {r.query.get("per_page") for r in _crm_requests(sandbox_days, route.path)} == {"50"}
    assert sandbox_days.mails() == []


def _crm_requests(days: SandboxDays, path: str) -> list[Any]:
    server = days.sandbox.services[0].server
    return [r for r in server.requests_seen if r.path == path]


def test_item18_a_malformed_crm_page_fails_the_run_at_once_without_task_retries(
    sandbox_days: SandboxDays,
) -> None:
    pid = "acme_abidjan"
    route = _crm_route(sandbox_days, pid)
    route.malformed_page = 2  # whole (2xx, full length) but broken JSON, every time
    started = time.monotonic()
    proc = sandbox_days.run_day(pid)
    elapsed = time.monotonic() - started
    assert proc.returncode != 0, (proc.stdout + proc.stderr)[-4000:]
    # Two quick re-asks inside the task (5 s, 15 s), then the e-mail: not 3 task retries
    # with 2, 4 and 8 minutes of back-off.
    assert elapsed < 240, elapsed
    page2 = [r for r in _crm_requests(sandbox_days, route.path) if r.query.get("cursor")]
    assert len({r.query["cursor"] for r in page2}) == 1 and len(page2) == 1 + 3  # 429 + 3
    mails = sandbox_days.mails()
    assert [str(m["Subject"]) for m in mails] == [
        f"[intake][{pid}][{sandbox_days.day(pid).isoformat()}] échec de l'export CRM"
    ]
    text = _text(mails[0])
    assert "export_digital (tentative 1)" in text
    assert "Aucune nouvelle tentative automatique" in text
    assert f"GET {route.path} (page 2): malformed page" in text
    assert not (sandbox_days.layout(pid).digital_dir / "interactions.jsonl").exists()


# --- item 2 (a resume can splice two versions)

# `airflow dags test` names its run `manual__<run_after>` with run_after = the wall clock when
# the run starts (Airflow 3.3.2: `dag_command.dag_test` calls `DAG.test` without `run_after`,
# which defaults it to now and passes it to `DagRun.generate_run_id`). A retry resumes only the
# `.part` of its own run token, so to plant one the test must know the run id first: it calls
# the same `DAG.test` the command calls, with `run_after` pinned.
_PINNED_DAG_TEST = """
import datetime as dt, json, sys
from airflow import configuration  # first, as airflow's own entry point does
from airflow.utils.cli import get_bagged_dag
from airflow.utils.providers_configuration_loader import providers_configuration_loaded

@providers_configuration_loaded
def main():
    dag_id, logical, run_after, conf = sys.argv[1:]
    dag = get_bagged_dag(None, dag_id)
    run = dag.test(
        logical_date=dt.datetime.fromisoformat(logical),
        run_after=dt.datetime.fromisoformat(run_after),
        run_conf=json.loads(conf),
    )
    print(f"dag run {run.run_id}: {run.state}")
    sys.exit(0 if run.state == "success" else 1)

main()
"""


def _run_day_pinned(
    sandbox_days: SandboxDays, provider: str, logical: dt.datetime
) -> subprocess.CompletedProcess[str]:
    """Run the provider's processed day through ``DAG.test`` with ``run_after = logical``."""
    cfg = sandbox_days.sandbox.providers[provider]
    conf = {"target_date": sandbox_days.day(provider).isoformat()}
    stamp = logical.isoformat()
    stack = sandbox_days.stack
    proc = subprocess.run(
        [sys.executable, "-c", _PINNED_DAG_TEST, cfg.dag_id, stamp, stamp, json.dumps(conf)],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    with (stack.logs / "dags-test-pinned.log").open("a", encoding="utf-8") as out:
        out.write(f"$ DAG.test {cfg.dag_id} run_after={stamp} (exit {proc.returncode})\n")
        out.write(proc.stdout + proc.stderr + "\n")
    return proc


def test_item2_retry_resume_of_a_redelivered_same_size_same_mtime_file_lands_the_new_version(
    sandbox_days: SandboxDays,
) -> None:
    from include.cc_intake.layout import make_dirs, run_token
    from include.cc_intake.manifest import read_manifest
    from include.cc_intake.naming import RemoteEntry
    from include.cc_intake.sandbox.seed import touch_changed
    from include.cc_intake.transfer import CopyJob

    provider = "acme_abidjan"
    cfg = sandbox_days.sandbox.providers[provider]
    seed = sandbox_days.sandbox.seeds[provider]
    victim = max(seed.files, key=lambda f: f.size)
    remote = seed.local_path(victim.remote_path)
    version_a = remote.read_bytes()
    mtime = int(remote.stat().st_mtime)
    logical = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    run_id = f"manual__{logical.isoformat()}"

    # What a cut first attempt of this run leaves: the first half of version A, under the
    # temporary name of this run's token and the remote size and mtime.
    layout = sandbox_days.layout(provider)
    final = layout.recording(victim.direction, victim.name)
    entry = RemoteEntry(
        victim.direction, victim.name, victim.remote_path, len(version_a), mtime, "file"
    )
    part = CopyJob(entry=entry, final=final).tmp(run_token(run_id))
    make_dirs(part.parent, stop_at=sandbox_days.data)
    part.write_bytes(version_a[: len(version_a) // 2])
    # The provider re-delivers the call before the retry: same size, mtime preserved.
    touch_changed(seed, cfg, victim.name, mtime=victim.mtime, keep_size=True)
    version_b = remote.read_bytes()
    assert len(version_b) == len(version_a) and version_b != version_a
    assert int(remote.stat().st_mtime) == mtime

    proc = _run_day_pinned(sandbox_days, provider, logical)

    output = proc.stdout + proc.stderr
    assert f"dag run {run_id}: success" in proc.stdout, output[-4000:]
    assert proc.returncode == 0, output[-4000:]
    assert final.read_bytes() == version_b
    rows = read_manifest(layout.manifest, cfg.recordings.group_names)
    [row] = [r for r in rows if (r.direction, r.file_name) == (victim.direction, victim.name)]
    assert row.status == "copied"
    assert row.sha256 == hashlib.sha256(version_b).hexdigest()
    assert not part.exists()
    logs = output + sandbox_days.stack.task_logs(lines=400, files=50)
    assert "restarting from byte 0 instead of resuming at byte" in logs, logs[-4000:]


# --- items 1, 3, 4 (voice manifest integrity)


def _manifest(sandbox_days: SandboxDays, provider: str) -> dict[tuple[str, str], dict[str, str]]:
    import csv

    path = sandbox_days.layout(provider).manifest
    with path.open(encoding="utf-8", newline="") as handle:
        return {(r["direction"], r["file_name"]): r for r in csv.DictReader(handle)}


def test_item1_provider_purge_keeps_the_proof_through_the_dag(sandbox_days: SandboxDays) -> None:
    """Run D, the provider archives some of D's files, re-run D: the proof stays whole."""
    import json
    import shutil
    from pathlib import Path

    provider = "acme_abidjan"
    first_run = sandbox_days.run_day(provider)
    assert first_run.returncode == 0, (first_run.stdout + first_run.stderr)[-4000:]
    layout = sandbox_days.layout(provider)
    first = _manifest(sandbox_days, provider)
    first_summary = json.loads((layout.quality_dir / "summary.json").read_text())

    # Two inbound recordings and one outbound move to the provider's archive; each direction
    # keeps at least one file, so the wait step still sees a settled day.
    copied = sorted(k for k, r in first.items() if r["status"] == "copied")
    purged = [k for k in copied if k[0] == "ENTRANTS"][:2] + [
        k for k in copied if k[0] == "SORTANTS"
    ][:1]
    assert len(purged) == 3
    server = sandbox_days.server_root(provider)
    archive = server / "archive"
    archive.mkdir()
    for key in purged:
        remote = server / first[key]["remote_path"].lstrip("/")
        shutil.move(remote, archive / Path(key[1]).name)

    again = sandbox_days.run_day(provider)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    rows = _manifest(sandbox_days, provider)
    assert set(rows) == set(first)  # no row lost
    for key in purged:
        row = rows[key]
        assert (row["status"], row["reason"]) == ("kept", "gone_from_remote")
        assert (row["sha256"], row["copied_at"]) == (first[key]["sha256"], first[key]["copied_at"])
        assert layout.recording(*key).is_file()

    # Reconciliation still counts them: summary.json's got is unchanged, the day still green.
    summary = json.loads((layout.quality_dir / "summary.json").read_text())
    assert summary["recordings"] == first_summary["recordings"]
    assert summary["status"] == first_summary["status"]
    assert summary["kept"] == 3
    assert sandbox_days.mails() == []  # no "écart" e-mail for files we hold
    # The proof page lists them as held here, no longer on the server.
    page = (layout.quality_dir / "recordings.html").read_text(encoding="utf-8")
    section = page[page.index('id="kept"') :]
    assert "Conservés ici, plus sur le serveur (3)" in section
    for _, name in purged:
        assert f"<code>{name}</code>" in section


# --- item 13 (a broken provider YAML is reported every day, not silently skipped)


def _placeholder_mails(sandbox_days: SandboxDays, provider_id: str) -> list:
    return [m for m in sandbox_days.mails() if f"[intake][{provider_id}][" in str(m["Subject"])]


def _config_error_days(sandbox_days: SandboxDays, provider_id: str) -> dict[str, str]:
    import json

    return {
        path.parent.name: json.loads(path.read_text(encoding="utf-8"))["status"]
        for path in (sandbox_days.data / "quality" / provider_id).glob("*/summary.json")
    }


def test_item13_broken_yaml_placeholder_fails_and_mails_the_files_alert_emails(
    sandbox_days: SandboxDays,
) -> None:
    import yaml

    from include.cc_intake.airflow.factory import SANDBOX_PROVIDERS_DIR

    data = yaml.safe_load((SANDBOX_PROVIDERS_DIR / "acme_abidjan.yaml").read_text("utf-8"))
    data.update(
        id="broken_acme",
        deadline="25:00",  # the broken field
        alert_emails=["lead@broken.example", "qa@broken.example"],
    )
    (sandbox_days.providers_dir / "broken_acme.yaml").write_text(yaml.safe_dump(data), "utf-8")

    proc = sandbox_days.run("ingest_broken_acme")  # a scheduled-like run: no conf

    assert proc.returncode != 0, (proc.stdout + proc.stderr)[-3000:]
    # Processed day: the logical date (2030-01-01, Africa/Abidjan as the file says) minus one.
    assert _config_error_days(sandbox_days, "broken_acme") == {"2029-12-31": "config_error"}
    (mail,) = _placeholder_mails(sandbox_days, "broken_acme")
    assert mail["Subject"] == (
        "[intake][broken_acme][2029-12-31] configuration du prestataire invalide"
    )
    assert mail["X-Envelope-To"] == "lead@broken.example, qa@broken.example"
    body = mail.get_body(("html",)).get_content()
    assert "broken_acme.yaml" in body and "deadline" in body and "25:00" in body
    # The real providers' runs are untouched by the broken file.
    assert all("[broken_acme]" in str(m["Subject"]) for m in sandbox_days.mails())


def test_item13_unreadable_yaml_mails_the_operations_list(sandbox_days: SandboxDays) -> None:
    (sandbox_days.providers_dir / "garbled.yaml").write_text("id: [unclosed\n", "utf-8")
    # The Airflow Variable, read at run time by the notifier (no env var set yet)...
    sandbox_days.stack.cli("variables", "set", "cc_intake_ops_emails", "var-ops@example.com")

    first = sandbox_days.run("ingest_garbled")

    assert first.returncode != 0, (first.stdout + first.stderr)[-3000:]
    (mail,) = _placeholder_mails(sandbox_days, "garbled")
    assert mail["X-Envelope-To"] == "var-ops@example.com"
    assert mail["Subject"].endswith("configuration du prestataire invalide")
    assert "not valid YAML" in mail.get_body(("html",)).get_content()
    assert set(_config_error_days(sandbox_days, "garbled").values()) == {"config_error"}

    # ...and the environment wins over the Variable (cli() uses stack.env on every call).
    sandbox_days.stack.env["CC_INTAKE_OPS_EMAILS"] = "env-ops@example.com, oncall@example.com"
    sandbox_days.run("ingest_garbled")

    mails = _placeholder_mails(sandbox_days, "garbled")
    assert [m["X-Envelope-To"] for m in mails] == [
        "var-ops@example.com",
        "env-ops@example.com, oncall@example.com",
    ]


# --- item 6 (readiness waits for the report's counts; at wait_timeout what arrived still lands)


def _batched_provider(sandbox_days: SandboxDays, pid: str) -> None:
    """The sandbox's acme provider, renamed, with a wait that gives up within seconds."""
    import yaml

    from include.cc_intake.sandbox.env import PROVIDERS_FOLDER

    spec = yaml.safe_load((PROVIDERS_FOLDER / "acme_abidjan.yaml").read_text("utf-8"))
    spec.update(id=pid, name="ACME (batches)")
    spec.pop("digital")
    spec["recordings"].update(wait_timeout="5s", poll_interval="1s", settle="1s", min_file_age=0)
    (sandbox_days.providers_dir / f"{pid}.yaml").write_text(yaml.safe_dump(spec), "utf-8")


def _task_states(sandbox_days: SandboxDays, dag_id: str) -> tuple[str, dict[str, str]]:
    """The state of the DAG's only run and of its tasks, from the metadata DB (CLI)."""
    import json

    def rows(*args: str) -> list[dict[str, str]]:
        out = sandbox_days.stack.cli(*args, "-o", "json").stdout
        return list(json.loads(next(x for x in out.splitlines() if x.startswith("["))))

    runs = rows("dags", "list-runs", dag_id)
    assert len(runs) == 1, runs
    tasks = rows("tasks", "states-for-dag-run", dag_id, runs[0]["run_id"])
    return runs[0]["state"], {t["task_id"]: t["state"] for t in tasks}


def test_item6_at_wait_timeout_what_arrived_lands_and_the_gap_is_reconciled(
    sandbox_days: SandboxDays,
) -> None:
    import html
    import json
    import re

    from include.cc_intake.manifest import read_manifest
    from include.cc_intake.messages import SUBJECTS

    pid = "acme_batches"
    _batched_provider(sandbox_days, pid)
    seed = sandbox_days.sandbox.seeds["acme_abidjan"]  # its server, connection and report
    day = seed.day
    # The provider uploads in batches: only the first 4 of the 12 inbound calls its report
    # counts are there (and settled) when the wait gives up.
    inbound = sorted(f.name for f in seed.files if f.direction == "ENTRANTS")
    assert seed.report_counts == {"ENTRANTS": 12, "SORTANTS": 7}, seed.report_counts
    for seeded in seed.files:
        if seeded.direction == "ENTRANTS" and seeded.name in inbound[4:]:
            seed.local_path(seeded.remote_path).unlink()

    proc = sandbox_days.run(f"ingest_{pid}", conf={"target_date": day.isoformat()})
    output = proc.stdout + proc.stderr

    # The run fails (its wait gave up), but only after the copy, report and validation ran.
    assert proc.returncode != 0 and "DagRun failed" in output, output[-4000:]
    run_state, states = _task_states(sandbox_days, f"ingest_{pid}")
    assert run_state == "failed"
    assert states == {
        "wait_for_recordings": "failed",
        "copy_recordings": "success",
        "fetch_report": "success",
        "validate_recordings": "failed",
        "recordings_on_time": "upstream_failed",
        "build_worklist": "success",  # #13: a teardown, on what landed; the run still fails
    }, states

    # What did arrive landed: 4 inbound and the 7 outbound recordings.
    layout = sandbox_days.layout(pid, day)
    rows = read_manifest(layout.manifest, ["agent", "call_id", "date", "time"])
    landed = sorted((r.direction, r.file_name) for r in rows if r.status == "copied")
    outbound = sorted(f.name for f in seed.files if f.direction == "SORTANTS")
    assert landed == [("ENTRANTS", n) for n in inbound[:4]] + [("SORTANTS", n) for n in outbound]
    summary = json.loads((layout.quality_dir / "summary.json").read_text("utf-8"))
    assert summary["status"] == "red"
    assert summary["recordings"]["ENTRANTS"] == {"expected": 12, "got": 4}, summary

    # One e-mail per failed task: the wait names the gap, the reconciliation the numbers.
    mails = {str(m["Subject"]): m for m in sandbox_days.mails()}
    prefix = f"[intake][{pid}][{day.isoformat()}] "
    assert sorted(mails) == sorted(
        prefix + SUBJECTS[kind] for kind in ("not_ready", "reconciliation")
    ), sorted(mails)

    def text(kind: str) -> str:
        body = mails[prefix + SUBJECTS[kind]].get_body(preferencelist=("plain", "html"))
        assert body is not None
        return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body.get_content())))

    assert "ENTRANTS : prêts 4, attendu 12" in text("not_ready"), text("not_ready")
    assert "SORTANTS : prêts 7, attendu 7" in text("not_ready"), text("not_ready")
    assert "attendu 12, reçu 4" in text("reconciliation"), text("reconciliation")


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
    var = env_var(cfg.recordings.conn_id)
    connection = json.loads(sandbox_days.stack.env[var])
    connection["extra"]["host_key"] = ensure_keys(tmp_path / "other-keys").host_public_line
    sandbox_days.stack.env[var] = json.dumps(connection)

    # The wait step meets the wrong key first: failed on its first try, no retry scheduled.
    started = time.monotonic()
    proc = _dags_test(sandbox_days, provider)
    tries = _last_run_tries(sandbox_days, cfg.dag_id)
    assert tries[C.TASK_WAIT] == ("failed", 1, 0), (tries, (proc.stdout + proc.stderr)[-3000:])
    # The copy (trigger rule all_done, for a wait that timed out) skips after a broken wait:
    # one e-mail, not two saying the same.
    assert tries[C.TASK_COPY][0] == "skipped", tries
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
