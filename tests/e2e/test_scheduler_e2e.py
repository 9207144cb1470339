"""Issue 5 under the real scheduler: deadline e-mail, failure e-mail, recovery, safe re-run.

Three test providers (copies of the sandbox YAMLs, in their own folder) are scheduled at the
minute that just passed, so that the scheduler creates their scheduled run as soon as it parses
them (``catchup=False`` takes the latest cron tick), and their delivery deadline falls a couple of
minutes later:

- ``e2e_late``: the day's recordings and report never came. Its run waits; the deadline e-mail
  goes out while it waits; then the files arrive and the same run lands them and goes green.
- ``e2e_mismatch``: the report claims two calls nobody sent. Its wait gives up at its short
  ``wait_timeout`` and says what it saw against the report; the copy still lands what came, and
  the reconciliation e-mails expected vs got (contract §8.1); its deadline passes without a
  third e-mail (the run already failed). Once the report is corrected, clearing the run turns
  it green without copying anything again.
- ``e2e_good``: a normal day with a CRM export. It goes green before its deadline: no e-mail.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import re
import shutil
import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from include.cc_intake.config import ProviderConfig, load_provider
from include.cc_intake.layout import DayLayout
from include.cc_intake.manifest import read_manifest
from include.cc_intake.messages import SUBJECTS
from include.cc_intake.sandbox.env import PROVIDERS_FOLDER, Sandbox
from include.cc_intake.sandbox.seed import SeedResult, seed_provider, write_report
from include.cc_intake.sandbox.services import default_services
from tests.e2e.conftest import AirflowStack, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

LATE, MISMATCH, GOOD = "e2e_late", "e2e_mismatch", "e2e_good"
SOURCES = {LATE: "acme_abidjan", MISMATCH: "baobab_douala", GOOD: "acme_abidjan"}
# From writing the YAMLs to the first look of the late provider's wait step: DB ready,
# components up, DAGs parsed, run created, one poke. Its deadline falls after that.
LATE_DEADLINE_AFTER = dt.timedelta(seconds=110)
# The good and mismatch runs must be over (green / failed) by their deadline.
# (The mismatch run waits out its one-minute wait_timeout before it copies and fails, then
# builds its worklist, #13: one more task after the validation.)
OTHERS_DEADLINE_AFTER_LATE = dt.timedelta(minutes=4)
MISMATCH_WAIT_TIMEOUT = "1m"


# --------------------------------------------------------------------------- set-up helpers


def pick_zone(preferred: str, now: dt.datetime) -> ZoneInfo:
    """The provider's zone, unless local midnight is near (schedule and deadline share a day)."""
    for name in (preferred, "Africa/Nairobi", "Africa/Abidjan"):
        local = now.astimezone(ZoneInfo(name))
        minutes = local.hour * 60 + local.minute
        if 10 <= minutes <= 23 * 60 + 30:
            return ZoneInfo(name)
    raise AssertionError("unreachable: the candidate zones are three hours apart")


def provider_yaml(
    pid: str, *, zone: ZoneInfo, tick: dt.datetime, deadline: dt.datetime, digital: bool
) -> dict[str, Any]:
    """A sandbox YAML, renamed, scheduled at ``tick`` and due at ``deadline`` (both local)."""
    data = yaml.safe_load((PROVIDERS_FOLDER / f"{SOURCES[pid]}.yaml").read_text("utf-8"))
    data.update(
        id=pid,
        name=f"E2E {pid}",
        timezone=zone.key,
        schedule=f"{tick.minute} {tick.hour} * * *",
        deadline=f"{deadline:%H:%M}",
        alert_emails=[f"ops.{pid}@e2e.example"],
    )
    data["recordings"].update(
        sftp_conn_id=f"sftp_{pid}",
        settle="1s",
        min_file_age=0,
        # The mismatch provider's report counts more than will ever come: it gives up soon.
        wait_timeout=MISMATCH_WAIT_TIMEOUT if pid == MISMATCH else "10m",
        # Not shorter: a poke whose executor event reaches the scheduler after the next poke
        # started is failed to up_for_retry (apache/airflow#71172, 3.3.2).
        poll_interval="30s",
    )
    if digital:
        data["digital"]["http_conn_id"] = f"crm_{pid}"
    else:
        data.pop("digital", None)
    return data


def minute_at_or_after(moment: dt.datetime) -> dt.datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + dt.timedelta(minutes=1)


def empty_the_day(seed: SeedResult) -> None:
    """Nothing delivered yet: the day's folders and the report are not on the server."""
    for folder in seed.folders.values():
        shutil.rmtree(seed.local_path(folder))
    assert seed.report_path is not None
    seed.local_path(seed.report_path).unlink()


def landed_files(layout: DayLayout) -> dict[str, tuple[int, int, int]]:
    """Landed recording -> (size, mtime_ns, inode): any rewrite changes the inode or mtime."""
    out = {}
    for path in sorted((layout.root / "recordings" / layout.provider).rglob("*")):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(layout.root))] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def html_text(msg: EmailMessage) -> str:
    body = msg.get_body(preferencelist=("html", "plain"))
    assert body is not None, f"e-mail without a body: {msg['Subject']}"
    text = html.unescape(re.sub(r"<[^>]+>", " ", body.get_content()))
    return re.sub(r"\s+", " ", text)


# --------------------------------------------------------------------------- the scenario


class Scenario:
    """The running test: stack, sandbox, providers, and what to dump when something fails."""

    def __init__(
        self,
        stack: AirflowStack,
        sandbox: Sandbox,
        cfgs: dict[str, ProviderConfig],
        days: dict[str, dt.date],
        data: Path,
    ) -> None:
        self.stack = stack
        self.sandbox = sandbox
        self.cfgs = cfgs
        self.days = days
        self.data = data
        self.db = stack.home / "airflow.db"

    def layout(self, pid: str) -> DayLayout:
        return DayLayout(self.data, pid, self.days[pid])

    def mails(self, pid: str | None = None) -> list[EmailMessage]:
        assert self.sandbox.smtp is not None
        found = self.sandbox.smtp.messages()
        if pid is None:
            return found
        return [m for m in found if f"[intake][{pid}]" in str(m["Subject"])]

    def scheduled_run(self, pid: str) -> dict[str, Any] | None:
        runs = [r for r in self.stack.runs(self.cfgs[pid].dag_id) if r["run_type"] == "scheduled"]
        assert len(runs) <= 1, f"{pid}: more than one scheduled run: {runs}"
        return runs[0] if runs else None

    def run_state(self, pid: str, run_id: str) -> str:
        dag_id = self.cfgs[pid].dag_id
        quoted = urllib.parse.quote(run_id, safe="")
        return str(self.stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}")["state"])

    def deadlines(self, pid: str, run_id: str) -> list[tuple[str, int, str | None, str | None]]:
        """(deadline_time, missed, callback state, callback output) of a run, from the DB."""
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as conn:
            conn.execute("PRAGMA busy_timeout = 10000")
            rows = conn.execute(
                "SELECT d.deadline_time, d.missed, c.state, c.output FROM deadline d "
                "JOIN dag_run r ON r.id = d.dagrun_id LEFT JOIN callback c ON c.id = d.callback_id "
                "WHERE r.dag_id = ? AND r.run_id = ?",
                (self.cfgs[pid].dag_id, run_id),
            ).fetchall()
        return [(str(a), int(b), c, d) for a, b, c, d in rows]

    def explain(self) -> str:
        lines = ["=== state at failure ==="]
        for pid, cfg in self.cfgs.items():
            try:
                for run in self.stack.runs(cfg.dag_id):
                    states = self.stack.task_states(cfg.dag_id, run["dag_run_id"])
                    lines.append(
                        f"{pid} {run['dag_run_id']} {run['run_type']} {run['state']} {states} "
                        f"deadlines={self.deadlines(pid, run['dag_run_id'])}"
                    )
            except Exception as exc:  # the diagnostics must not hide the failure
                lines.append(f"{pid}: cannot read runs: {exc}")
        lines.append("e-mails: " + repr([str(m["Subject"]) for m in self.mails()]))
        lines.append(self.stack.diagnostics(lines=40))
        return "\n".join(lines)

    def wait(self, what: str, probe: Callable[[], Any], timeout: float) -> Any:
        def checked() -> Any:
            self.stack.assert_alive()
            return probe()

        return wait_for(what, checked, timeout=timeout, interval=2, diagnostics=self.explain)

    def wait_run(self, pid: str, run_id: str, states: set[str], timeout: float) -> str:
        return str(
            self.wait(
                f"{pid} run {run_id} to reach {sorted(states)}",
                lambda: (s := self.run_state(pid, run_id)) in states and s,
                timeout,
            )
        )


def test_deadline_failure_recovery_and_rerun_under_the_scheduler(
    tmp_path: Path, airflow_stack_factory: Callable[..., AirflowStack]
) -> None:
    started = time.monotonic()
    providers_dir = tmp_path / "providers"
    providers_dir.mkdir()
    data = tmp_path / "data"

    # -- schedule: the minute that just passed; deadlines a little later ---------------------
    now = dt.datetime.now(dt.UTC)
    zones = {
        pid: pick_zone(load_provider(PROVIDERS_FOLDER / f"{src}.yaml").timezone, now)
        for pid, src in SOURCES.items()
    }
    tick_utc = now.replace(second=0, microsecond=0)
    late_due = minute_at_or_after(now + LATE_DEADLINE_AFTER)
    due = {
        LATE: late_due,
        MISMATCH: late_due + OTHERS_DEADLINE_AFTER_LATE,
        GOOD: late_due + OTHERS_DEADLINE_AFTER_LATE,
    }
    for pid in SOURCES:
        zone = zones[pid]
        spec = provider_yaml(
            pid,
            zone=zone,
            tick=tick_utc.astimezone(zone),
            deadline=due[pid].astimezone(zone),
            digital=pid == GOOD,
        )
        (providers_dir / f"{pid}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), "utf-8")
    cfgs = {pid: load_provider(providers_dir / f"{pid}.yaml") for pid in SOURCES}
    days = {pid: tick_utc.astimezone(zones[pid]).date() - dt.timedelta(days=1) for pid in SOURCES}

    with Sandbox(
        tmp_path / "sandbox",
        days=days,
        scenarios={MISMATCH: "report_mismatch"},
        services=default_services(),
        providers_folder=providers_dir,
    ) as sandbox:
        empty_the_day(sandbox.seeds[LATE])
        stack = airflow_stack_factory(
            extra_env={
                **sandbox.env(),
                "CC_INTAKE_PROVIDERS_DIR": str(providers_dir),
                "CC_INTAKE_DATA_ROOT": str(data),
            }
        )
        stack.migrate()
        stack.start()
        s = Scenario(stack, sandbox, cfgs, days, data)
        stack.wait_until_up(timeout=180)
        print(f"[e2e] components up after {time.monotonic() - started:.0f} s", flush=True)

        # -- one scheduled run per provider, for the tick that just passed -------------------
        runs: dict[str, dict[str, Any]] = s.wait(
            "a scheduled run for each provider",
            lambda: (
                (found := {pid: s.scheduled_run(pid) for pid in SOURCES})
                and all(found.values())
                and found
            ),
            timeout=150,
        )
        run_ids = {pid: str(run["dag_run_id"]) for pid, run in runs.items()}
        for pid, run in runs.items():
            logical = dt.datetime.fromisoformat(run["logical_date"].replace("Z", "+00:00"))
            assert logical == tick_utc, f"{pid}: scheduled run for {logical}, expected {tick_utc}"
        print(f"[e2e] scheduled runs after {time.monotonic() - started:.0f} s", flush=True)

        # -- (b) and (c): the mismatch fails with its e-mail, the good day goes green --------
        s.wait_run(GOOD, run_ids[GOOD], {"success", "failed"}, timeout=240)
        s.wait_run(MISMATCH, run_ids[MISMATCH], {"success", "failed"}, timeout=240)
        assert s.run_state(GOOD, run_ids[GOOD]) == "success", s.explain()
        assert s.run_state(MISMATCH, run_ids[MISMATCH]) == "failed", s.explain()
        assert dt.datetime.now(dt.UTC) < due[GOOD], (
            f"the good run finished after its deadline {due[GOOD]}: the machine is too slow for "
            f"this test's timing (raise OTHERS_DEADLINE_AFTER_LATE)\n{s.explain()}"
        )
        mismatch_states = stack.task_states(cfgs[MISMATCH].dag_id, run_ids[MISMATCH])
        # The wait gave up (the report counts two calls that never came), yet what did come
        # landed and was reconciled; the leaf after the wait keeps the run failed.
        assert mismatch_states == {
            "wait_for_recordings": "failed",
            "copy_recordings": "success",
            "fetch_report": "success",
            "validate_recordings": "failed",
            "recordings_on_time": "upstream_failed",
            "build_worklist": "success",  # #13: a teardown, on what landed; the run still fails
        }, mismatch_states
        reconciliation_subject = (
            f"[intake][{MISMATCH}][{days[MISMATCH]}] {SUBJECTS['reconciliation']}"
        )
        failure_mails: list[EmailMessage] = s.wait(
            "the reconciliation e-mail of the mismatch provider",
            lambda: [m for m in s.mails(MISMATCH) if str(m["Subject"]) == reconciliation_subject],
            60,
        )
        print(
            f"[e2e] good green, mismatch failed after {time.monotonic() - started:.0f} s",
            flush=True,
        )

        # -- (a) the late provider: deadline e-mail while its run still waits ----------------
        late_mails: list[EmailMessage] = s.wait(
            "the deadline e-mail of the late provider",
            lambda: s.mails(LATE),
            timeout=max(0, (due[LATE] - dt.datetime.now(dt.UTC)).total_seconds()) + 120,
        )
        late_states = stack.task_states(cfgs[LATE].dag_id, run_ids[LATE])
        assert s.run_state(LATE, run_ids[LATE]) == "running", s.explain()
        # Still waiting: between two looks, or in one. (up_for_retry only if Airflow's
        # reschedule race above hit; the retry then goes on waiting.)
        waiting = {"up_for_reschedule", "running", "queued", "scheduled", "up_for_retry"}
        assert late_states["wait_for_recordings"] in waiting, late_states
        assert late_states["copy_recordings"] is None, late_states
        print(f"[e2e] deadline e-mail after {time.monotonic() - started:.0f} s", flush=True)

        # The provider delivers late: the same bytes its copy script would have left.
        cfg_late = cfgs[LATE]
        delivered = seed_provider(sandbox.server_root(LATE), cfg_late, days[LATE])

        # -- (d) fix the mismatch provider's report, then clear its failed run ---------------
        # Clear only once its deadline has been handled (skipped: the run had failed), so the
        # re-run cannot race the deadline.
        s.wait(
            "the mismatch run's deadline to be handled",
            lambda: (
                (rows := s.deadlines(MISMATCH, run_ids[MISMATCH]))
                and all(r[1] for r in rows)
                and all(r[2] in ("success", "failed") for r in rows)
                and rows
            ),
            timeout=max(0, (due[MISMATCH] - dt.datetime.now(dt.UTC)).total_seconds()) + 120,
        )
        mismatch_seed = sandbox.seeds[MISMATCH]
        mismatch_seed.scenario = "normal"
        write_report(mismatch_seed, cfgs[MISMATCH])
        layout_m = s.layout(MISMATCH)
        manifest_before = read_manifest(layout_m.manifest, cfgs[MISMATCH].recordings.group_names)
        files_before = landed_files(layout_m)
        assert files_before, f"nothing landed for {MISMATCH} in {layout_m.root}"
        quoted = urllib.parse.quote(run_ids[MISMATCH], safe="")
        stack.api(
            "POST",
            f"/api/v2/dags/{cfgs[MISMATCH].dag_id}/dagRuns/{quoted}/clear",
            {"dry_run": False, "only_failed": False},
        )
        print(f"[e2e] mismatch cleared after {time.monotonic() - started:.0f} s", flush=True)

        # -- the late run lands the files and goes green; the cleared run goes green ---------
        assert s.wait_run(LATE, run_ids[LATE], {"success", "failed"}, timeout=240) == "success", (
            s.explain()
        )
        assert s.wait_run(MISMATCH, run_ids[MISMATCH], {"success", "failed"}, timeout=240) == (
            "success"
        ), s.explain()
        print(
            f"[e2e] late and cleared runs green after {time.monotonic() - started:.0f} s",
            flush=True,
        )

        # The good provider's deadline is the mismatch one's, handled above: it has passed.
        assert due[GOOD] <= due[MISMATCH] < dt.datetime.now(dt.UTC)

        # ============================== assertions ==========================================
        # (a) deadline e-mail, sent while waiting, then the same run landed every file.
        assert len(late_mails) == 1, [str(m["Subject"]) for m in late_mails]
        deadline_mail = late_mails[0]
        subject = str(deadline_mail["Subject"])
        assert subject == f"[intake][{LATE}][{days[LATE]}] {SUBJECTS['deadline']}", subject
        assert str(deadline_mail["To"]) == f"ops.{LATE}@e2e.example"
        body = html_text(deadline_mail)
        assert "Étape en cours : wait_for_recordings" in body, body
        late_outputs = [r[3] or "" for r in s.deadlines(LATE, run_ids[LATE])]
        assert len(late_outputs) == 1 and late_outputs[0].startswith("sent: "), late_outputs
        assert f"{stack.base_url}/dags/{cfg_late.dag_id}/runs/" in body, body
        assert [r["dag_run_id"] for r in stack.runs(cfg_late.dag_id)] == [run_ids[LATE]]
        late_rows = read_manifest(s.layout(LATE).manifest, cfg_late.recordings.group_names)
        landed_late = {(r.direction, r.file_name) for r in late_rows if r.status == "copied"}
        assert landed_late == {(f.direction, f.name) for f in delivered.files}, late_rows
        for f in delivered.files:
            assert s.layout(LATE).recording(f.direction, f.name).stat().st_size == f.size

        # (b) one e-mail per failed task: the wait's, naming the gap, and the reconciliation's
        # with the numbers; no deadline e-mail for that run.
        assert sorted(str(m["Subject"]) for m in s.mails(MISMATCH)) == sorted(
            f"[intake][{MISMATCH}][{days[MISMATCH]}] {SUBJECTS[kind]}"
            for kind in ("not_ready", "reconciliation")
        ), [str(m["Subject"]) for m in s.mails(MISMATCH)]
        assert len(failure_mails) == 1
        not_ready = next(
            m for m in s.mails(MISMATCH) if str(m["Subject"]) != reconciliation_subject
        )
        delivered_in = sandbox.seeds[MISMATCH].delivered_counts["ENTRANTS"]
        assert f"ENTRANTS : prêts {delivered_in}, attendu {delivered_in + 2}" in html_text(
            not_ready
        ), html_text(not_ready)
        failure = failure_mails[0]
        subject = str(failure["Subject"])
        assert subject == f"[intake][{MISMATCH}][{days[MISMATCH]}] {SUBJECTS['reconciliation']}"
        body = html_text(failure)
        assert f"attendu {delivered_in + 2}, reçu {delivered_in}" in body, body
        assert "validate_recordings" in body, body
        outputs = [r[3] or "" for r in s.deadlines(MISMATCH, run_ids[MISMATCH])]
        assert outputs and all(o.startswith("skipped: run failed") for o in outputs), outputs

        # (c) the good day: green before its deadline, so no e-mail at all (deadline pruned).
        assert s.mails(GOOD) == [], [str(m["Subject"]) for m in s.mails(GOOD)]
        assert s.deadlines(GOOD, run_ids[GOOD]) == [], s.deadlines(GOOD, run_ids[GOOD])
        good_states = stack.task_states(cfgs[GOOD].dag_id, run_ids[GOOD])
        assert set(good_states.values()) == {"success"}, good_states

        # (d) the cleared day is green and nothing was copied twice or lost.
        manifest_after = read_manifest(layout_m.manifest, cfgs[MISMATCH].recordings.group_names)
        assert len(manifest_after) == len(manifest_before)

        def key(rows: list[Any]) -> set[tuple[str, str, str, int, str]]:
            return {(r.direction, r.file_name, r.sha256, r.size_bytes, r.copied_at) for r in rows}

        assert key(manifest_after) == key(manifest_before)
        assert {r.status for r in manifest_after if r.sha256} == {"skipped_identical"}
        assert landed_files(layout_m) == files_before
        assert [r["dag_run_id"] for r in stack.runs(cfgs[MISMATCH].dag_id)] == [run_ids[MISMATCH]]

        # Nothing else was sent (no failure e-mail for the late day, no second deadline one).
        subjects = sorted(str(m["Subject"]) for m in s.mails())
        assert len(subjects) == 3, subjects
        print(f"[e2e] done in {time.monotonic() - started:.0f} s", flush=True)
