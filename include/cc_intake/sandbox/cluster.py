"""`make cluster`: the production topology on loopback, with the sandbox.

PostgreSQL metadata DB, a Redis broker, Airflow with the CeleryExecutor (api-server, scheduler,
dag-processor, triggerer and ``CC_INTAKE_WORKERS`` Celery workers, default 2, each with its own
hostname) and the sandbox servers that `make up` starts, everything on 127.0.0.1 in a work
folder (``.cluster/``). `make up` (``airflow standalone`` on SQLite) stays the quick look; this is
the topology a company runs once one worker is not enough (docs/deployment.md).

- PostgreSQL: Debian's server binaries (``/usr/lib/postgresql/15/bin``, or ``$CC_INTAKE_PG_BIN``)
  initialise ``<work>/pg`` once; role ``airflow`` with a password (kept in
  ``<work>/secrets.json``, 0600), TCP on 127.0.0.1 only, password (scram) auth. PostgreSQL
  refuses to run as root: as root it runs as the system user ``postgres`` (created if missing),
  which owns the data folder.
- Redis: ``redis-server`` bound to 127.0.0.1 with ``requirepass`` and no persistence.
- Airflow: one JWT secret and one API secret key for every component, the execution API URL,
  the link pool ``cc_intake_link`` created from ``airflow_settings.yaml`` and named by
  ``CC_INTAKE_LINK_POOL`` (its slots in ``CC_INTAKE_LINK_SLOTS``). Workers run with concurrency
  ``CC_INTAKE_WORKER_CONCURRENCY`` (4) and without a log server (``--skip-serve-logs``: every
  worker writes the same log folder, which the api-server reads).

Ports (env overrides): those of `make up` (``CC_INTAKE_UP_PORT`` 8080 for the UI, …), plus
``CC_INTAKE_UP_PG_PORT`` (5433) and ``CC_INTAKE_UP_REDIS_PORT`` (6380). Ctrl-C or SIGTERM stops
everything: each component's process group and every process it started (task runners put
themselves in their own groups), then Redis and PostgreSQL.

:class:`Cluster` is the topology without the sandbox; the e2e test (tests/e2e/test_cluster.py)
drives it with its own providers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from include.cc_intake.sandbox import up

HOST = up.HOST
PORTS: dict[str, tuple[str, int]] = {
    **up.PORTS,
    "pg": ("CC_INTAKE_UP_PG_PORT", 5433),
    "redis": ("CC_INTAKE_UP_REDIS_PORT", 6380),
}
PG_BIN = Path(os.environ.get("CC_INTAKE_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_SYSTEM_USER = "postgres"  # Debian's; created when missing (running as root only)
DB_NAME = DB_ROLE = "airflow"
COMPONENTS: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")
DEFAULT_WORKERS = 2
DEFAULT_CONCURRENCY = 4
READY_TIMEOUT_S = 300.0
STOP_GRACE_S = 30.0
SETTINGS_FILE = Path(__file__).resolve().parents[3] / "airflow_settings.yaml"


class _Stop(Exception):
    """SIGTERM arrived: leave the wait loop and clean up like on Ctrl-C."""


class ClusterError(RuntimeError):
    """A part of the cluster could not start; the message names it and its log."""


# -------------------------------------------------------------------------- small helpers


def missing_binaries() -> list[str]:
    """The server binaries this topology needs and this machine lacks (each with its package)."""
    missing = []
    for name in ("initdb", "postgres"):
        if not (PG_BIN / name).is_file():
            missing.append(f"{PG_BIN / name} (Debian package postgresql)")
    if shutil.which("redis-server") is None:
        missing.append("redis-server (Debian package redis-server)")
    return missing


def workers_from_env(environ: Mapping[str, str]) -> int:
    raw = environ.get("CC_INTAKE_WORKERS", "").strip() or str(DEFAULT_WORKERS)
    if not raw.isdigit() or not 1 <= int(raw) <= 16:
        raise SystemExit(f"[cluster] CC_INTAKE_WORKERS={raw!r}: expected an integer 1-16")
    return int(raw)


def link_pool() -> tuple[str, int, str]:
    """The link pool as ``airflow_settings.yaml`` declares it: name, slots, description."""
    from include.cc_intake.airflow.link_budget import DEFAULT_POOL_NAME
    from include.cc_intake.airflow.settings import load_settings

    for pool in load_settings(SETTINGS_FILE).pools:
        if pool.name == DEFAULT_POOL_NAME:
            return pool.name, pool.slots, pool.description
    raise ClusterError(f"{SETTINGS_FILE}: no pool {DEFAULT_POOL_NAME!r} declared")


def _port_answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


def _wait(what: str, probe: Callable[[], bool], timeout: float, log: Path | None) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            where = f"; last lines of {log}:\n{up._tail(log)}" if log else ""
            raise ClusterError(f"{what} not ready after {timeout:.0f} s{where}")
        time.sleep(0.3)


def _secrets(work: Path) -> dict[str, str]:
    """Passwords and keys, made once per work folder (the PG cluster keeps its password)."""
    path = work / "secrets.json"
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        found = {}
    wanted = {
        "pg_password": lambda: secrets.token_urlsafe(24),
        "redis_password": lambda: secrets.token_urlsafe(24),
        "jwt_secret": lambda: secrets.token_urlsafe(64),
        "api_secret_key": lambda: secrets.token_urlsafe(32),
        "fernet_key": _fernet_key,
    }
    out = {k: str(found.get(k) or make()) for k, make in wanted.items()}
    if out != found:
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(json.dumps(out, indent=2) + "\n")
    return out


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def stop_group(
    proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, grace: float = STOP_GRACE_S
) -> None:
    """``sig`` to the process's group and to every descendant in another group; SIGKILL after
    ``grace`` whatever is left (task runners set their own process group)."""
    import psutil

    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # orphans of a dead leader
        return
    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    for child in tree:
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
            if os.getpgid(child.pid) != proc.pid:
                child.send_signal(sig)
    deadline = time.monotonic() + grace
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    _, alive = psutil.wait_procs(tree, timeout=max(0.0, deadline - time.monotonic()))
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def kill_tree(proc: subprocess.Popen[bytes]) -> list[int]:
    """SIGKILL a process's group and every descendant's group at once: a host lost.

    Returns the pids killed. (The e2e test kills a worker this way.)
    """
    import psutil

    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    groups = {proc.pid}
    for child in tree:
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
            groups.add(os.getpgid(child.pid))
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    proc.wait()
    psutil.wait_procs(tree, timeout=10)  # SIGKILL is delivered asynchronously
    return [proc.pid, *(c.pid for c in tree)]


# -------------------------------------------------------------------------- the topology


class Cluster:
    """PostgreSQL + Redis + Airflow (CeleryExecutor) on loopback, in ``work``.

    :param work: the work folder (``pg/``, ``redis/``, ``airflow/``, ``logs/`` go there).
    :param ports: ``ui``, ``pg`` and ``redis`` ports.
    :param workers: how many ``airflow celery worker`` processes.
    :param extra_env: more variables for every Airflow process (connections, CC_INTAKE_*,
        ``AIRFLOW__<SECTION>__<KEY>`` overrides); they win over the cluster's own.
    :param pg_dir: the PostgreSQL data folder (default ``work/pg``); its parents must be
        traversable by the PostgreSQL user.
    :param base_env: the environment to start from (default this process's).
    :param concurrency: task slots per worker.
    :param pool_slots: the link pool's slots (default: as ``airflow_settings.yaml`` says).
    :param say: where progress lines go.
    """

    def __init__(
        self,
        work: Path,
        *,
        ports: Mapping[str, int],
        workers: int = DEFAULT_WORKERS,
        extra_env: Mapping[str, str] | None = None,
        pg_dir: Path | None = None,
        base_env: Mapping[str, str] | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        pool_slots: int | None = None,
        say: Callable[[str], None] = lambda line: print(f"[cluster] {line}", flush=True),
    ) -> None:
        self.work = Path(work).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.logs = self.work / "logs"
        self.logs.mkdir(exist_ok=True)
        self.pg_dir = Path(pg_dir or self.work / "pg").resolve()
        self.ports = dict(ports)
        self.workers = workers
        self.concurrency = concurrency
        self.say = say
        self.secrets = _secrets(self.work)
        self.pool_name, self.pool_slots, self.pool_description = link_pool()
        if pool_slots is not None:  # a test's smaller link
            self.pool_slots = pool_slots
        self.pg: subprocess.Popen[bytes] | None = None
        self.redis: subprocess.Popen[bytes] | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = self._airflow_env(base_env, extra_env)

    # -- environment --------------------------------------------------------------------

    @property
    def db_url(self) -> str:
        pw = self.secrets["pg_password"]
        return f"postgresql+psycopg2://{DB_ROLE}:{pw}@{HOST}:{self.ports['pg']}/{DB_NAME}"

    @property
    def broker_url(self) -> str:
        return f"redis://:{self.secrets['redis_password']}@{HOST}:{self.ports['redis']}/0"

    def _airflow_env(
        self, base_env: Mapping[str, str] | None, extra_env: Mapping[str, str] | None
    ) -> dict[str, str]:
        from include.cc_intake.airflow.link_budget import LINK_POOL, LINK_SLOTS

        env = {**(os.environ if base_env is None else base_env)}
        env.update(up.standalone_env(self.work, self.ports["ui"]))
        env.pop("AIRFLOW__CORE__PARALLELISM", None)
        home = Path(env["AIRFLOW_HOME"])
        env.update(
            {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__FERNET_KEY": self.secrets["fernet_key"],
                "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.db_url.replace("+psycopg2", ""),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.concurrency),
                # One secret for the tokens every component signs and checks.
                "AIRFLOW__API_AUTH__JWT_SECRET": self.secrets["jwt_secret"],
                "AIRFLOW__API__SECRET_KEY": self.secrets["api_secret_key"],
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
                # The simple auth manager's admin, its password generated into AIRFLOW_HOME.
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                LINK_POOL: self.pool_name,
                LINK_SLOTS: str(max(self.pool_slots, 1)),
            }
        )
        env.update(extra_env or {})
        return env

    def airflow(self, *args: str, timeout: float = 300) -> str:
        """Run ``airflow <args>`` to completion; its output, or a ClusterError naming it."""
        name = "cli-" + "-".join(a for a in args[:2] if not a.startswith("-"))
        proc = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        with (self.logs / f"{name}.log").open("a") as out:
            out.write(f"$ airflow {' '.join(args)}  (exit {proc.returncode})\n")
            out.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise ClusterError(
                f"`airflow {' '.join(args)}` exited {proc.returncode}: "
                f"{(proc.stdout + proc.stderr)[-2000:]}"
            )
        return proc.stdout

    # -- PostgreSQL ---------------------------------------------------------------------

    def _pg_user(self) -> pwd.struct_passwd | None:
        """The unprivileged user PostgreSQL runs as when we are root (created if missing)."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                 "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
                check=True,
            )  # fmt: skip
            return pwd.getpwnam(PG_SYSTEM_USER)

    def _as_pg(self, user: pwd.struct_passwd | None) -> dict[str, Any]:
        if user is None:
            return {}
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _check_reachable(self, user: pwd.struct_passwd | None) -> None:
        """PostgreSQL's user must be able to traverse every parent of the data folder."""
        if user is None:
            return
        for parent in reversed(self.pg_dir.parents):
            st = parent.stat()
            if st.st_uid == user.pw_uid:
                continue
            bit = 0o010 if st.st_gid == user.pw_gid else 0o001
            if not st.st_mode & bit:
                raise ClusterError(
                    f"PostgreSQL runs as {user.pw_name}, which cannot enter {parent} "
                    f"(mode {st.st_mode & 0o777:o}): put the work folder elsewhere "
                    f"(--work), the data folder elsewhere (--pg-dir), or `chmod o+x {parent}`"
                )

    def start_postgres(self) -> None:
        user = self._pg_user()
        self._check_reachable(user)
        data = self.pg_dir / "data"
        run = self.pg_dir / "run"
        self.pg_dir.mkdir(parents=True, exist_ok=True)
        run.mkdir(exist_ok=True)
        if user is not None:
            for path in (self.pg_dir, run, *([data] if data.exists() else [])):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.pg_dir.chmod(0o700)
        pw = self.secrets["pg_password"]
        log = self.logs / "postgres.log"
        if not (data / "PG_VERSION").exists():
            pwfile = self.pg_dir / "pwfile"
            pwfile.write_text(pw + "\n")
            if user is not None:
                os.chown(pwfile, user.pw_uid, user.pw_gid)
            pwfile.chmod(0o600)
            try:
                init = subprocess.run(
                    [str(PG_BIN / "initdb"), "-D", str(data), "-U", DB_ROLE,
                     f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8",
                     "--locale=C.UTF-8"],
                    capture_output=True, text=True, check=False, cwd=self.pg_dir,
                    **self._as_pg(user),
                )  # fmt: skip
            finally:
                pwfile.unlink(missing_ok=True)
            if init.returncode != 0:
                raise ClusterError(f"initdb {data} failed: {(init.stdout + init.stderr)[-2000:]}")
        with log.open("ab") as out:
            self.pg = subprocess.Popen(
                [str(PG_BIN / "postgres"), "-D", str(data), "-p", str(self.ports["pg"]),
                 "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={run}",
                 "-c", "max_connections=200"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.pg_dir, **self._as_pg(user),
            )  # fmt: skip
        _wait("PostgreSQL", self._pg_ready, 60, log)
        self._ensure_database()
        self.say(f"PostgreSQL on {HOST}:{self.ports['pg']} (data {data}, pid {self.pg.pid})")

    def _pg_ready(self) -> bool:
        if self.pg is not None and self.pg.poll() is not None:
            raise ClusterError(
                f"postgres exited ({self.pg.returncode}): {up._tail(self.logs / 'postgres.log')}"
            )
        import psycopg2

        try:
            psycopg2.connect(self._dsn("postgres"), connect_timeout=2).close()
        except psycopg2.OperationalError:
            return False
        return True

    def _dsn(self, db: str) -> str:
        pw = self.secrets["pg_password"]
        return f"host={HOST} port={self.ports['pg']} user={DB_ROLE} password={pw} dbname={db}"

    def _ensure_database(self) -> None:
        import psycopg2

        conn = psycopg2.connect(self._dsn("postgres"))
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{DB_NAME}"')
        finally:
            conn.close()

    # -- Redis --------------------------------------------------------------------------

    def start_redis(self) -> None:
        folder = self.work / "redis"
        folder.mkdir(exist_ok=True)
        log = self.logs / "redis.log"
        with log.open("ab") as out:
            self.redis = subprocess.Popen(
                ["redis-server", "--bind", HOST, "--port", str(self.ports["redis"]),
                 "--requirepass", self.secrets["redis_password"], "--save", "",
                 "--appendonly", "no", "--dir", str(folder), "--daemonize", "no"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        _wait("Redis", lambda: self._redis_ready(), 30, log)
        self.say(f"Redis on {HOST}:{self.ports['redis']} (pid {self.redis.pid})")

    def _redis_ready(self) -> bool:
        if self.redis is not None and self.redis.poll() is not None:
            raise ClusterError(f"redis-server exited: {up._tail(self.logs / 'redis.log')}")
        import redis

        try:
            client = redis.Redis(
                host=HOST, port=self.ports["redis"], password=self.secrets["redis_password"]
            )
            return bool(client.ping())
        except redis.RedisError:
            return False

    def restart_redis(self) -> None:
        """Stop Redis and start it again on the same port (nothing persisted)."""
        if self.redis is not None:
            stop_group(self.redis, grace=10)
        self.start_redis()

    # -- Airflow ------------------------------------------------------------------------

    def prepare_airflow(self) -> None:
        """``airflow db migrate`` and the link pool."""
        self.say("airflow db migrate …")
        self.airflow("db", "migrate", timeout=600)
        self.airflow("pools", "set", self.pool_name, str(self.pool_slots), self.pool_description)
        self.say(f"pool {self.pool_name}: {self.pool_slots} slots")

    def _spawn(self, name: str, args: list[str]) -> None:
        with (self.logs / f"{name}.log").open("ab") as out:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def worker_names(self) -> list[str]:
        return [f"worker{i}" for i in range(1, self.workers + 1)]

    def start_worker(self, name: str) -> None:
        self._spawn(
            name,
            ["celery", "worker", "--celery-hostname", f"{name}@{HOST}",
             "--concurrency", str(self.concurrency), "--skip-serve-logs",
             "--without-gossip", "--without-mingle"],
        )  # fmt: skip

    def start_airflow(self) -> None:
        for name in COMPONENTS:
            args = [name]
            if name == "api-server":
                args += ["--host", HOST, "--port", str(self.ports["ui"]), "--workers", "1"]
            self._spawn(name, args)
        for name in self.worker_names():
            self.start_worker(name)
        self.say(f"Airflow started: {', '.join(self.procs)} (logs in {self.logs})")

    def dead(self) -> dict[str, int]:
        """Components that exited, with their exit codes."""
        out = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        for name, proc in (("postgres", self.pg), ("redis", self.redis)):
            if proc is not None and proc.poll() is not None:
                out[name] = proc.returncode
        return out

    def healthy(self) -> bool:
        """The api-server answers and reports scheduler, triggerer and dag-processor healthy."""
        found = up.health(self.ports["ui"])
        if not found:
            return False
        parts = [found.get(k) or {} for k in ("scheduler", "triggerer", "dag_processor")]
        return all(isinstance(p, dict) and p.get("status") == "healthy" for p in parts)

    def wait_until_up(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            dead = self.dead()
            if dead:
                raise ClusterError(f"component(s) exited: {dead}\n{self.diagnostics()}")
            if time.monotonic() > deadline:
                raise ClusterError(f"not healthy after {timeout:.0f} s\n{self.diagnostics()}")
            time.sleep(1.0)

    def diagnostics(self, lines: int = 25) -> str:
        names = ["postgres", "redis", *self.procs]
        return "\n".join(f"--- {n}\n{up._tail(self.logs / f'{n}.log', lines)}" for n in names)

    def start(self) -> Cluster:
        """Everything, in order; what started is stopped again if a part fails."""
        try:
            self.start_postgres()
            self.start_redis()
            self.prepare_airflow()
            self.start_airflow()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Scheduler first (no new work), then the rest of Airflow, Redis, PostgreSQL."""
        order = sorted(self.procs, key=lambda n: (n != "scheduler", n == "api-server"))
        for name in order:
            stop_group(self.procs[name])
        if self.redis is not None:
            stop_group(self.redis, grace=10)
        if self.pg is not None:
            # SIGINT is PostgreSQL's "fast" shutdown (SIGTERM waits for clients to leave).
            stop_group(self.pg, sig=signal.SIGINT)


# -------------------------------------------------------------------------- `make cluster`


def banner(sandbox: Any, cluster: Cluster, ports: Mapping[str, int]) -> str:
    base = cluster.env["AIRFLOW__API__BASE_URL"]
    pw_file = up.password_file(cluster.env)
    try:
        users = json.loads(pw_file.read_text())
        login = ", ".join(f"{user} / {password}" for user, password in sorted(users.items()))
    except (OSError, ValueError):
        login = f"see {pw_file} once written"
    out = [
        "",
        "=" * 78,
        "cc-intake: the cluster topology (PostgreSQL, Redis, CeleryExecutor) is up",
        "=" * 78,
        f"  Airflow UI      {base}/",
        f"  login           {login}",
        f"  overview page   {base}/cc-intake/",
        f"  metadata DB     postgresql://{DB_ROLE}@{HOST}:{ports['pg']}/{DB_NAME}"
        f" (password in {cluster.work / 'secrets.json'})",
        f"  broker          redis://{HOST}:{ports['redis']}/0",
        f"  workers         {', '.join(f'{n}@{HOST}' for n in cluster.worker_names())}"
        f" (concurrency {cluster.concurrency} each)",
        f"  link pool       {cluster.pool_name} ({cluster.pool_slots} slots)",
        f"  mail sink       SMTP {HOST}:{ports['smtp_default']} -> {sandbox.mail_folder}/*.eml",
        f"  CRM export      http://{HOST}:{ports['crm']}/",
    ]
    for pid, server in sorted(sandbox.sftp.items()):
        out.append(
            f"  SFTP {pid:<14} {server.host}:{server.port}  (processed day {sandbox.days[pid]})"
        )
    out += [
        f"  landed files    {cluster.env['CC_INTAKE_DATA_ROOT']}",
        f"  logs            {cluster.logs}",
        "",
        "  The sandbox DAGs start paused: unpause one and trigger it. Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default=".cluster", help="work folder (default .cluster)")
    parser.add_argument(
        "--pg-dir",
        type=Path,
        help="PostgreSQL's folder (default <work>/pg); its parents must be enterable by the "
        "PostgreSQL user",
    )
    args = parser.parse_args(argv)
    missing = missing_binaries()
    if missing:
        print("[cluster] missing: " + "; ".join(missing), file=sys.stderr)
        return 2
    work = Path(args.work).resolve()
    ports = up.ports_from_env(os.environ, PORTS)
    up.check_ports_free(ports, PORTS)
    workers = workers_from_env(os.environ)

    from include.cc_intake.sandbox.env import Sandbox
    from include.cc_intake.sandbox.services import default_services

    cluster = Cluster(work, ports=ports, workers=workers, pg_dir=args.pg_dir)
    # The sandbox modules read the same settings (data root, sandbox flag) as Airflow.
    os.environ.update({k: v for k, v in cluster.env.items() if k.startswith("CC_INTAKE_")})
    sandbox = Sandbox(
        work / "sandbox",
        ports={k: v for k, v in ports.items() if k not in ("ui", "crm", "pg", "redis")},
        services=default_services(crm_port=ports["crm"], crm_secrets=up.CRM_SECRETS),
    )

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    code = 0
    try:
        sandbox.start()
        up.write_known_hosts(sandbox)
        cluster.env.update(sandbox.env())
        cluster.start()
        print(f"[cluster] waiting for {cluster.env['AIRFLOW__API__BASE_URL']} …", flush=True)
        cluster.wait_until_up()
        print(banner(sandbox, cluster, ports), flush=True)
        while not (dead := cluster.dead()):
            time.sleep(1.0)
        code = 1
        print(f"[cluster] component(s) exited: {dead}\n{cluster.diagnostics()}", flush=True)
    except ClusterError as exc:
        code = 1
        print(f"[cluster] {exc}", file=sys.stderr, flush=True)
    except (KeyboardInterrupt, _Stop):
        print("\n[cluster] stopping Airflow, Redis, PostgreSQL and the sandbox …", flush=True)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut cleanup
        try:
            cluster.stop()
        finally:
            sandbox.stop()
            signal.signal(signal.SIGTERM, previous)
    print("[cluster] stopped", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
