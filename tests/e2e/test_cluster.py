"""Issue 11 on the real topology: PostgreSQL + Redis + CeleryExecutor + two workers, on loopback.

First `make cluster`'s entry point: banner, login, SIGTERM leaves no process. Then one cluster
(``include/cc_intake/sandbox/cluster.py``'s :class:`Cluster`, what `make cluster` runs, with
the test's providers) serves the three scenarios in order, to keep the CI short:

1. six generated providers (both folder layouts, both report kinds) x two processed days,
   triggered at once: every run green; each manifest identical, row for row and hash for hash
   (``copied_at`` and ``endpoint`` aside), to the single-machine reference: the domain's
   ``copy_day`` run in this process against the same remote trees; and the task instances of
   the link pool never overlap more than its slots (start/end times from the PostgreSQL DB);
2. a worker is lost mid-copy (SIGKILL of its process group and of its task runner's, which
   Airflow puts in a group of its own: what a host crash does), once a ``.part`` holds bytes:
   Airflow notices the missing heartbeats, retries the copy on the surviving worker, the retry
   resumes the ``.part`` and the day ends complete with the right SHA-256, nothing
   incomplete under a final name, and no failure e-mail (the day did not fail);
3. Redis restarted while nothing is queued, then a new run: it completes.

The test environment lowers the task heartbeat timeout and, through an
``airflow_local_settings.task_policy``, the retry delay (the DAGs' own is minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from include.cc_intake.config import ProviderConfig, load_provider
from include.cc_intake.layout import TMP_SUFFIX, DayLayout
from include.cc_intake.manifest import read_manifest, read_records
from include.cc_intake.sandbox import cluster as topology
from include.cc_intake.sandbox.env import PROVIDERS_FOLDER, SFTP_LOGIN, env_var
from include.cc_intake.sandbox.keys import SandboxKeys, ensure_keys
from include.cc_intake.sandbox.seed import seed_provider
from include.cc_intake.sandbox.sftp_server import SftpServer
from include.cc_intake.sandbox.smtp_sink import SmtpSink
from tests.e2e.conftest import free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
# Three of each sandbox provider: dated folders + summary report, flat folders + detail report.
PROVIDERS = {f"cl_acme_{i}": "acme_abidjan" for i in (1, 2, 3)} | {
    f"cl_baobab_{i}": "baobab_douala" for i in (1, 2, 3)
}
KILLED_PROVIDER = "cl_acme_1"  # WAV allowed: its first inbound call is a 3.8 MB file
COUNTS = {"ENTRANTS": 3, "SORTANTS": 2}
POOL_SLOTS = 2
# The scenario-2 budget: 1.6 Mbit/s over 2 slots = 100 kB/s per copy, ~40 s for the big file.
KILL_BUDGET, KILL_RATE = "1.6Mbit", 100_000
KILL_AT_BYTES = 300_000
IGNORED_COLUMNS = {"copied_at", "endpoint"}
POLICY = '''
import datetime as dt


def task_policy(task):
    """Test only: retry a lost task within seconds (the DAGs' own delay is minutes)."""
    task.retry_delay = dt.timedelta(seconds=3)
    task.retry_exponential_backoff = 0
    task.max_retry_delay = dt.timedelta(seconds=10)
'''


def provider_yaml(pid: str) -> dict[str, Any]:
    data = yaml.safe_load((PROVIDERS_FOLDER / f"{PROVIDERS[pid]}.yaml").read_text("utf-8"))
    data.update(id=pid, name=f"Cluster {pid}", alert_emails=[f"ops.{pid}@e2e.example"])
    data["recordings"].update(
        sftp_conn_id=f"sftp_{pid}",
        settle="1s",
        min_file_age=0,
        wait_timeout="10m",
        poll_interval="30s",  # not shorter: apache/airflow#71172 (see test_scheduler_e2e)
    )
    data.pop("digital", None)
    return data


class Remote:
    """One SFTP server per provider, the SMTP sink, and the connections the tasks need."""

    def __init__(self, work: Path, cfgs: dict[str, ProviderConfig]) -> None:
        self.work = work
        self.cfgs = cfgs
        self.keys: SandboxKeys = ensure_keys(work / "keys")
        self.servers: dict[str, SftpServer] = {}
        self.smtp = SmtpSink(work / "mail")

    def root(self, pid: str) -> Path:
        return self.work / "servers" / pid

    def start(self) -> None:
        for pid in self.cfgs:
            self.root(pid).mkdir(parents=True, exist_ok=True)
            server = SftpServer(self.root(pid), self.keys, login=SFTP_LOGIN)
            server.start()
            self.servers[pid] = server
        self.smtp.start()

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.smtp.stop()

    def env(self) -> dict[str, str]:
        out = {}
        for pid, server in self.servers.items():
            conn = {
                "conn_type": "sftp",
                "host": server.host,
                "port": server.port,
                "login": SFTP_LOGIN,
                "extra": {
                    "private_key": self.keys.client_private_key,
                    "host_key": self.keys.host_public_line,
                    "no_host_key_check": False,
                },
            }
            out[env_var(self.cfgs[pid].recordings.conn_id)] = json.dumps(conn)
        smtp = {
            "conn_type": "smtp",
            "host": self.smtp.host,
            "port": self.smtp.port,
            "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "intake@e2e.example"},
        }
        out[env_var("smtp_default")] = json.dumps(smtp)
        return out

    def reference_copy(self, pid: str, day: dt.date, data: Path) -> Any:
        """The single-machine reference: the domain's copy, in this process, same remote tree."""
        import asyncssh

        from include.cc_intake.recordings import copy_day

        server = self.servers[pid]

        async def go() -> Any:
            known = asyncssh.import_known_hosts(
                self.keys.known_hosts_line(server.host, server.port)
            )
            async with (
                asyncssh.connect(
                    server.host,
                    server.port,
                    username=SFTP_LOGIN,
                    client_keys=[self.keys.client_key],
                    known_hosts=known,
                ) as conn,
                conn.start_sftp_client() as sftp,
            ):
                layout = DayLayout(data, pid, day)
                return await copy_day(sftp, self.cfgs[pid], day, layout=layout, token="reference")

        return asyncio.run(go())


class Case:
    """The running cluster, its providers and days, and REST helpers."""

    def __init__(
        self, cluster: topology.Cluster, remote: Remote, data: Path, days: list[dt.date]
    ) -> None:
        self.cluster = cluster
        self.remote = remote
        self.data = data
        self.days = days
        self.base = cluster.env["AIRFLOW__API__BASE_URL"]
        self._runs = 0

    def api(self, method: str, path: str, body: object = None) -> Any:
        request = urllib.request.Request(
            self.base + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def dag_id(self, pid: str) -> str:
        return self.remote.cfgs[pid].dag_id

    def trigger(self, pid: str, day: dt.date) -> str:
        self._runs += 1
        run_id = f"cluster_{self._runs:02d}_{day.isoformat()}"
        self.api(
            "POST",
            f"/api/v2/dags/{self.dag_id(pid)}/dagRuns",
            {"dag_run_id": run_id, "logical_date": None, "conf": {"target_date": day.isoformat()}},
        )
        return run_id

    def run_state(self, pid: str, run_id: str) -> str:
        return str(self.api("GET", f"/api/v2/dags/{self.dag_id(pid)}/dagRuns/{run_id}")["state"])

    def task_instances(self, pid: str, run_id: str) -> dict[str, dict[str, Any]]:
        found = self.api("GET", f"/api/v2/dags/{self.dag_id(pid)}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti for ti in found["task_instances"]}

    def explain(self) -> str:
        lines = ["=== state at failure ==="]
        for pid in self.remote.cfgs:
            with contextlib.suppress(Exception):
                runs = self.api("GET", f"/api/v2/dags/{self.dag_id(pid)}/dagRuns")["dag_runs"]
                for run in runs:
                    tis = self.task_instances(pid, run["dag_run_id"])
                    states = {k: (v["state"], v["try_number"]) for k, v in tis.items()}
                    lines.append(f"{pid} {run['dag_run_id']} {run['state']} {states}")
        lines.append(f"dead components: {self.cluster.dead()}")
        lines.append(self.cluster.diagnostics(lines=30))
        return "\n".join(lines)

    def wait(self, what: str, probe: Callable[[], Any], timeout: float) -> Any:
        return wait_for(what, probe, timeout=timeout, interval=2, diagnostics=self.explain)

    def wait_runs(self, runs: dict[tuple[str, str], dt.date], timeout: float) -> dict[str, str]:
        def finished() -> dict[str, str] | None:
            states = {f"{pid} {rid}": self.run_state(pid, rid) for pid, rid in runs}
            done = all(s in ("success", "failed") for s in states.values())
            return states if done else None

        states: dict[str, str] = self.wait("the runs to finish", finished, timeout)
        return states

    def mails(self, pid: str) -> list[str]:
        return [str(m["Subject"]) for m in self.remote.smtp.messages() if pid in str(m["Subject"])]

    def link_intervals(self, run_ids: set[str]) -> list[tuple[dt.datetime, dt.datetime, str]]:
        """(start, end, task) of every try of the runs' link-pool task instances, from the DB."""
        import psycopg2

        conn = psycopg2.connect(self.cluster._dsn(topology.DB_NAME))
        try:
            with conn.cursor() as cur:
                rows = []
                for table in ("task_instance", "task_instance_history"):
                    cur.execute(
                        f"SELECT run_id, dag_id, task_id, start_date, end_date FROM {table} "
                        "WHERE pool = %s AND start_date IS NOT NULL",
                        (self.cluster.pool_name,),
                    )
                    rows += cur.fetchall()
        finally:
            conn.close()
        return [
            (start, end, f"{dag_id}.{task_id}")
            for run_id, dag_id, task_id, start, end in rows
            if run_id in run_ids
        ]


def max_overlap(intervals: list[tuple[dt.datetime, dt.datetime, str]]) -> int:
    """The most intervals open at one instant (an end before a start at the same instant)."""
    events = sorted([(s, 1) for s, _, _ in intervals] + [(e, -1) for _, e, _ in intervals])
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def comparable(path: Path) -> list[dict[str, str]]:
    _, records = read_records(path)
    rows = [{k: v for k, v in r.items() if k not in IGNORED_COLUMNS} for r in records]
    return sorted(rows, key=lambda r: (r["direction"], r["file_name"], r["status"]))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- the cluster


def require_binaries() -> None:
    missing = topology.missing_binaries()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have the cluster's binaries: {missing} (.ci/run installs them)")
        pytest.skip(f"not installed: {'; '.join(missing)} (.ci/run installs them)")


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Case]:
    require_binaries()
    tmp = tmp_path_factory.mktemp("cluster")
    providers_dir = tmp / "providers"
    providers_dir.mkdir()
    for pid in PROVIDERS:
        spec = provider_yaml(pid)
        (providers_dir / f"{pid}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    cfgs = {pid: load_provider(providers_dir / f"{pid}.yaml") for pid in PROVIDERS}
    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=2), today - dt.timedelta(days=1)]
    policy = tmp / "policy"
    policy.mkdir()
    (policy / "airflow_local_settings.py").write_text(POLICY)
    data = tmp / "data"
    remote = Remote(tmp / "remote", cfgs)
    for pid, cfg in cfgs.items():
        for day in days:
            seed_provider(remote.root(pid), cfg, day, counts=COUNTS)
    # PostgreSQL runs as an unprivileged user: its folder cannot sit under pytest's 0700 tmp.
    pg_dir = Path(tempfile.mkdtemp(prefix="cc-intake-pg-"))
    remote.start()
    cluster = None
    try:
        base_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "CC_INTAKE_"))
        }
        base_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(policy)])
        cluster = topology.Cluster(
            tmp / "cluster",
            ports={"ui": free_port(), "pg": free_port(), "redis": free_port()},
            workers=2,
            pool_slots=POOL_SLOTS,
            pg_dir=pg_dir,
            base_env=base_env,
            extra_env={
                **remote.env(),
                "PYTHONPATH": base_env["PYTHONPATH"],
                "CC_INTAKE_SANDBOX": "0",
                "CC_INTAKE_PROVIDERS_DIR": str(providers_dir),
                "CC_INTAKE_DATA_ROOT": str(data),
                "CC_INTAKE_DEADLINES": "off",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                # Only the test's manual runs: no scheduled run for the latest cron tick.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
            },
        )
        cluster.start()
        cluster.wait_until_up(timeout=300)
        c = Case(cluster, remote, data, days)
        c.wait(
            "the six provider DAGs",
            lambda: all(_exists(c, f"/api/v2/dags/{c.dag_id(pid)}") for pid in PROVIDERS),
            timeout=180,
        )
        yield c
    finally:
        pids = _all_pids(cluster) if cluster is not None else []
        try:
            if cluster is not None:
                cluster.stop()
        finally:
            remote.stop()
            shutil.rmtree(pg_dir, ignore_errors=True)
        alive = [p for p in pids if psutil.pid_exists(p) and _not_zombie(p)]
        assert not alive, f"processes left behind by the cluster: {alive}"


def _exists(c: Case, path: str) -> bool:
    try:
        c.api("GET", path)
    except (urllib.error.URLError, OSError):
        return False
    return True


def _all_pids(cluster: topology.Cluster) -> list[int]:
    procs = [*cluster.procs.values(), cluster.pg, cluster.redis]
    out = []
    for proc in procs:
        if proc is None:
            continue
        out.append(proc.pid)
        with contextlib.suppress(psutil.Error):
            out += [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    return out


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# --------------------------------------------------------------------------- the scenarios


def test_0_make_cluster_prints_the_login_and_sigterm_leaves_nothing_behind() -> None:
    """`make cluster`'s own entry point (one worker here, to spare the CI's two cores).

    First in the module: the scenarios' cluster is not started yet.
    """
    require_binaries()
    # PostgreSQL's user must enter the work folder (pytest's tmp folders are 0700).
    work = Path(tempfile.mkdtemp(prefix="cc-intake-cluster-"))
    work.chmod(0o711)
    ports = {var: free_port() for var, _ in topology.PORTS.values()}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "CC_INTAKE_"))}
    env.update({var: str(port) for var, port in ports.items()})
    env.update(PYTHONPATH=str(ROOT), CC_INTAKE_WORKERS="1")
    log = work / "cluster.out"
    with log.open("wb") as out:
        proc = psutil.Popen(
            [sys.executable, "-m", "include.cc_intake.sandbox.cluster", "--work", str(work)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    tree: list[psutil.Process] = []
    try:

        def banner() -> str | None:
            assert proc.poll() is None, log.read_text()
            text = log.read_text()
            return text if "is up" in text else None

        text = wait_for("the banner", banner, timeout=420, interval=2, diagnostics=log.read_text)
        ui = ports["CC_INTAKE_UP_PORT"]
        password = json.loads(
            (work / "airflow" / "simple_auth_manager_passwords.json.generated").read_text()
        )["admin"]
        assert f"Airflow UI      http://127.0.0.1:{ui}/" in text
        assert f"login           admin / {password}" in text
        assert "workers         worker1@127.0.0.1 (concurrency 4 each)" in text
        assert "link pool       cc_intake_link (4 slots)" in text
        assert f"broker          redis://127.0.0.1:{ports['CC_INTAKE_UP_REDIS_PORT']}/0" in text
        tree = proc.children(recursive=True)
        names = {p.name() for p in tree}
        assert {"postgres", "redis-server"} <= names, names
        assert os.stat(work / "pg").st_uid != 0 or os.geteuid() != 0  # not root's

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=180) == 0, log.read_text()
        _, alive = psutil.wait_procs(tree, timeout=10)
        assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == [], alive
        for port in ports.values():  # no listener left
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))
    finally:
        for p in [proc, *tree]:
            with contextlib.suppress(psutil.Error):
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


def test_1_six_providers_two_days_at_once_match_a_single_machine(case: Case) -> None:
    runs = {(pid, case.trigger(pid, day)): day for pid in PROVIDERS for day in case.days}
    states = case.wait_runs(runs, timeout=900)
    assert set(states.values()) == {"success"}, f"{states}\n{case.explain()}"

    reference = case.data.parent / "reference"
    for (pid, _), day in runs.items():
        summary = case.remote.reference_copy(pid, day, reference)
        assert summary.failures == []
        got = DayLayout(case.data, pid, day).manifest
        want = DayLayout(reference, pid, day).manifest
        assert comparable(got) == comparable(want), f"{pid} {day}: manifests differ"
        statuses = {
            r.status for r in read_manifest(got, case.remote.cfgs[pid].recordings.group_names)
        }
        assert "copied" in statuses and "failed" not in statuses, (pid, day, statuses)

    intervals = case.link_intervals({rid for _, rid in runs})
    tasks = {t.split(".", 1)[1] for _, _, t in intervals}
    assert tasks == {"copy_recordings", "fetch_report"}, tasks
    assert len(intervals) >= 2 * len(runs)  # every copy and report took the pool
    assert max_overlap(intervals) <= POOL_SLOTS, sorted(intervals)
    assert all(not case.mails(pid) for pid in PROVIDERS), case.remote.smtp.messages()


def test_2_a_worker_lost_mid_copy_is_retried_on_the_other_and_the_day_converges(
    case: Case,
) -> None:
    pid = KILLED_PROVIDER
    cfg = case.remote.cfgs[pid]
    # A day no other seeding touched (each seed also writes some files of its two previous days).
    day = case.days[0] - dt.timedelta(days=8)
    seeded = seed_provider(case.remote.root(pid), cfg, day, counts={"ENTRANTS": 1, "SORTANTS": 1})
    big = max(seeded.files, key=lambda f: f.size)
    assert big.size > 10 * KILL_AT_BYTES, big
    layout = DayLayout(case.data, pid, day)
    folder = layout.recording(big.direction, big.name).parent
    case.cluster.airflow("variables", "set", "cc_intake_link_budget", KILL_BUDGET)
    try:
        run_id = case.trigger(pid, day)

        def part() -> Path | None:
            found = (
                [p for p in folder.glob(f".{big.name}.*{TMP_SUFFIX}")] if folder.exists() else []
            )
            return next((p for p in found if p.stat().st_size >= KILL_AT_BYTES), None)

        part_file: Path = case.wait("a .part of the big recording", part, timeout=300)
        attempt = f"run_id={run_id}/task_id=copy_recordings/attempt=1.log"
        running = [
            name
            for name in case.cluster.worker_names()
            if attempt in (case.cluster.logs / f"{name}.log").read_text(errors="replace")
        ]
        assert len(running) == 1, (running, case.explain())
        victim = running[0]
        survivor = next(n for n in case.cluster.worker_names() if n != victim)
        killed = topology.kill_tree(case.cluster.procs[victim])
        assert part_file.exists()
        assert not any(psutil.pid_exists(p) and _not_zombie(p) for p in killed)

        state = case.wait(
            "the run to finish after the lost worker",
            lambda: (s := case.run_state(pid, run_id)) in ("success", "failed") and s,
            timeout=600,
        )
        assert state == "success", case.explain()
    finally:
        case.cluster.airflow("variables", "delete", "cc_intake_link_budget")

    copy = case.task_instances(pid, run_id)["copy_recordings"]
    assert copy["try_number"] >= 2, copy
    retried = f"run_id={run_id}/task_id=copy_recordings/attempt={copy['try_number']}.log"
    assert retried in (case.cluster.logs / f"{survivor}.log").read_text(errors="replace")
    # The retry ran under the run-time budget (a Variable), split among the pool's slots.
    log = Path(case.cluster.env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"]) / (
        f"dag_id={cfg.dag_id}/{retried}"
    )
    assert f"copying at most {KILL_RATE} bytes/s" in log.read_text(errors="replace")

    rows = read_manifest(layout.manifest, cfg.recordings.group_names)
    landed = {r.file_name: r for r in rows if r.status == "copied"}
    assert set(landed) == {f.name for f in seeded.files}, rows
    for f in seeded.files:
        remote_bytes = seeded.local_path(f.remote_path)
        assert landed[f.name].sha256 == sha256(remote_bytes)
        assert sha256(layout.recording(f.direction, f.name)) == sha256(remote_bytes)
    day_dir = layout.recording(big.direction, big.name).parents[1]
    leftovers = [p for p in day_dir.rglob("*") if p.is_file() and p.name.startswith(".")]
    assert leftovers == []
    finals = {p.name for p in day_dir.rglob("*") if p.is_file()}
    assert finals == set(landed)  # nothing under a final name that the manifest does not prove
    assert case.mails(pid) == []


def test_3_redis_restarted_while_idle_then_a_new_run_completes(case: Case) -> None:
    pid = "cl_baobab_2"
    case.cluster.restart_redis()
    run_id = case.trigger(pid, case.days[1])
    state = case.wait(
        "the run after the Redis restart",
        lambda: (s := case.run_state(pid, run_id)) in ("success", "failed") and s,
        timeout=300,
    )
    assert state == "success", case.explain()
    assert not [d for d in case.cluster.dead() if not d.startswith("worker")], case.explain()
