"""The real Airflow components as subprocesses, on SQLite and loopback, for the e2e tests.

:class:`AirflowStack` migrates a fresh metadata DB in its own ``AIRFLOW_HOME``, starts the API
server, scheduler, DAG processor and triggerer (each in its own session, output to a log file),
answers REST calls, and on :meth:`AirflowStack.stop` ends every process it started: each
component's process group first, then anything still carrying the stack's marker variable
(task processes put themselves in their own group, so the groups alone are not enough).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER_VAR = "CC_INTAKE_E2E_MARKER"
COMPONENTS: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")
# Inherited from the session-wide tests/conftest.py or the developer's shell: never leak them in.
_STRIPPED_PREFIXES = ("AIRFLOW_", "CC_INTAKE_")

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"({path} not readable)"
    return "\n".join(text.splitlines()[-lines:])


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 2.0,
    diagnostics: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something truthy; fail with ``what`` and diagnostics."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            extra = diagnostics() if diagnostics else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{extra}")
        time.sleep(interval)


class AirflowStack:
    """Airflow 3 components on SQLite for one test, all on loopback.

    :param work: the test's work folder (``airflow/`` home and ``logs/`` go there).
    :param extra_env: more variables for every Airflow process (connections, CC_INTAKE_*,
        ``AIRFLOW__<SECTION>__<KEY>`` overrides).
    """

    def __init__(
        self,
        work: Path,
        *,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.work = Path(work)
        self.home = self.work / "airflow"
        self.logs = self.work / "logs"
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.marker = secrets.token_hex(8)
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_PREFIXES)}
        env.update(
            {
                MARKER_VAR: self.marker,
                "PYTHONPATH": str(ROOT),
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                # Two cores in CI: a few task processes at a time keep SQLite and the CPU sane.
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                # Tests write their provider YAMLs before starting: the first parse sees them.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            }
        )
        env.update(extra_env or {})
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- commands ----------------------------------------------------------------------------

    def cli(
        self, *args: str, timeout: float = 180, log_name: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``airflow <args>``; its output also goes to ``logs/<log_name>.log``."""
        proc = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        name = log_name or "cli-" + "-".join(a for a in args[:2] if not a.startswith("-"))
        with (self.logs / f"{name}.log").open("a", encoding="utf-8") as out:
            out.write(f"$ airflow {' '.join(args)}  (exit {proc.returncode})\n")
            out.write(proc.stdout + proc.stderr + "\n")
        if check and proc.returncode != 0:
            pytest.fail(
                f"`airflow {' '.join(args)}` exited {proc.returncode}:\n"
                f"{(proc.stdout + proc.stderr)[-4000:]}"
            )
        return proc

    def migrate(self) -> None:
        self.cli("db", "migrate", log_name="db-migrate")

    def start(self, components: Sequence[str] = COMPONENTS) -> None:
        """Start each component in its own session (so it can be stopped as a group)."""
        for name in components:
            args = [name]
            if name == "api-server":
                args += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
            log = (self.logs / f"{name}.log").open("ab")
            try:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "airflow", *args],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            finally:
                log.close()

    def wait_until_up(self, timeout: float = 180) -> None:
        """The API answers and the scheduler, DAG processor and triggerer are healthy."""

        def healthy() -> bool:
            self.assert_alive()
            try:
                health = self.api("GET", "/api/v2/monitor/health")
            except (OSError, urllib.error.URLError, ValueError):
                return False
            parts = [health.get(k, {}) for k in ("scheduler", "triggerer", "dag_processor")]
            return all(p.get("status") == "healthy" for p in parts)

        wait_for(
            "the Airflow components to be healthy",
            healthy,
            timeout=timeout,
            diagnostics=self.diagnostics,
        )

    def assert_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            pytest.fail(f"Airflow component(s) exited: {dead}\n{self.diagnostics()}")

    # -- REST --------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: object = None, *, timeout: float = 30) -> Any:
        """Call the REST API (the simple auth manager lets everyone in as admin here)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        found = self.api(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances",
        )
        return {ti["task_id"]: ti["state"] for ti in found["task_instances"]}

    # -- diagnostics -------------------------------------------------------------------------

    def task_logs(self, lines: int = 30, files: int = 8) -> str:
        """The last lines of the most recent task logs, one short line per JSON record."""
        found = [p for p in (self.home / "logs").rglob("*.log") if "dag_id=" in str(p)]
        found.sort(key=lambda p: p.stat().st_mtime)
        out = []
        for path in found[-files:]:
            shown = []
            for raw in tail(path, lines).splitlines():
                try:
                    record = json.loads(raw)
                    raw = f"{record.get('timestamp', '')} {record.get('level', '')} "
                    raw += str(record.get("event", ""))
                    if record.get("error_detail"):
                        raw += f" {record['error_detail']}"
                except ValueError:
                    pass
                shown.append(raw[:600])
            out.append(f"--- task log {path.relative_to(self.home / 'logs')}\n" + "\n".join(shown))
        return "\n".join(out)

    def diagnostics(self, lines: int = 30) -> str:
        parts = [
            f"--- {name} (exit {proc.poll()})\n{tail(self.logs / f'{name}.log', lines)}"
            for name, proc in self.procs.items()
        ]
        parts.append(self.task_logs(lines))
        return "\n".join(parts)

    # -- cleanup -----------------------------------------------------------------------------

    def leftovers(self) -> list[psutil.Process]:
        """Live processes that carry this stack's marker: all started by it, directly or not."""
        found = []
        for proc in psutil.process_iter(["pid"]):
            if proc.pid == os.getpid():
                continue
            with contextlib.suppress(psutil.Error):
                if proc.environ().get(MARKER_VAR) == self.marker and proc.status() != "zombie":
                    found.append(proc)
        return found

    def stop(self, grace: float = 20) -> list[str]:
        """End every process this stack started; return those that needed SIGKILL."""
        # Scheduler first: it stops handing out tasks while the others still answer.
        order = sorted(self.procs, key=lambda n: (n != "scheduler", n == "api-server"))
        for name in order:
            proc = self.procs[name]
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        end = time.monotonic() + grace
        for name in order:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.procs[name].wait(timeout=max(0.1, end - time.monotonic()))
        killed = []
        for name in order:
            proc = self.procs[name]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.poll() is None:
                killed.append(name)
                proc.wait(timeout=10)
        # Task processes live in their own groups: find them by the marker.
        rest = self.leftovers()
        for proc in rest:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        _, alive = psutil.wait_procs(rest, timeout=5)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)
        killed += [f"pid {p.pid}" for p in rest]
        return killed


@pytest.fixture
def airflow_stack_factory(tmp_path: Path) -> Iterator[Callable[..., AirflowStack]]:
    """Build stacks for a test; every one is stopped, and checked gone, at teardown."""
    stacks: list[AirflowStack] = []

    def make(**kwargs: Any) -> AirflowStack:
        stack = AirflowStack(tmp_path / f"stack{len(stacks)}", **kwargs)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop()
        left = stack.leftovers()
        assert not left, f"processes left behind by the Airflow stack: {[p.pid for p in left]}"


class SandboxDays:
    """The sandbox plus a migrated Airflow home: whole provider-days through ``airflow dags test``.

    The fault-injection tests change what a provider's server or CRM serves between runs (files
    under :meth:`server_root`, the CRM's routes) and run the real DAG again. Each run gets its
    own logical date and a new run id (``manual__<wall clock>``: ``dags test`` names the run by
    when it starts, so a run token is known only once the run exists), and processes
    ``target_date`` from its conf, exactly as an operator's re-run does. Deadlines are off:
    ``dags test`` crashes on them in 3.3.2 (apache/airflow#73428).
    """

    def __init__(self, sandbox: Any, stack: AirflowStack, data: Path, providers_dir: Path) -> None:
        self.sandbox = sandbox
        self.stack = stack
        self.data = data
        self.providers_dir = providers_dir
        self._runs = 0

    def day(self, provider: str) -> Any:
        return self.sandbox.days[provider]

    def server_root(self, provider: str) -> Path:
        return Path(self.sandbox.server_root(provider))

    def layout(self, provider: str, day: Any = None) -> Any:
        from include.cc_intake.layout import DayLayout

        return DayLayout(self.data, provider, day or self.day(provider))

    def run(
        self,
        dag_id: str,
        *,
        conf: Mapping[str, Any] | None = None,
        timeout: float = 420,
    ) -> subprocess.CompletedProcess[str]:
        """One run of ``dag_id`` (a fresh run id each time); the exit code is not checked."""
        import datetime as dt

        self._runs += 1
        logical = dt.datetime(2030, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=self._runs)
        args = ["dags", "test", dag_id, logical.isoformat()]
        if conf:
            args += ["-c", json.dumps(dict(conf))]
        return self.stack.cli(
            *args, timeout=timeout, check=False, log_name=f"dags-test-{self._runs}"
        )

    def run_day(
        self, provider: str, *, day: Any = None, conf: Mapping[str, Any] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Process ``day`` (default the sandbox's processed day) of a sandbox provider."""
        cfg = self.sandbox.providers[provider]
        target = (day or self.day(provider)).isoformat()
        return self.run(cfg.dag_id, conf={"target_date": target, **dict(conf or {})})

    def mails(self) -> list[Any]:
        assert self.sandbox.smtp is not None
        return list(self.sandbox.smtp.messages())


@pytest.fixture
def sandbox_days(
    tmp_path: Path, airflow_stack_factory: Callable[..., AirflowStack]
) -> Iterator[SandboxDays]:
    """A started sandbox (SFTP, CRM, SMTP) and a migrated Airflow that sees its providers."""
    from include.cc_intake.sandbox.env import Sandbox
    from include.cc_intake.sandbox.services import default_services

    data = tmp_path / "data"
    providers_dir = tmp_path / "providers"  # real providers: empty unless a test writes one
    providers_dir.mkdir()
    with Sandbox(tmp_path / "sandbox", services=default_services()) as sandbox:
        stack = airflow_stack_factory(
            extra_env={
                **sandbox.env(),
                "CC_INTAKE_SANDBOX": "1",
                "CC_INTAKE_PROVIDERS_DIR": str(providers_dir),
                "CC_INTAKE_DEADLINES": "off",
                "CC_INTAKE_DATA_ROOT": str(data),
            }
        )
        stack.migrate()
        yield SandboxDays(sandbox, stack, data, providers_dir)
