"""`make up`: `airflow standalone` wired to the sandbox, for a look at the UI.

Starts the sandbox (one SFTP server per fictional provider, the CRM export server, an SMTP
sink) on fixed ports so that ``airflow_settings.yaml`` can describe it, then `airflow
standalone` (api-server, scheduler, dag-processor, triggerer) with the sandbox connections in
its environment, and the link pool of ``airflow_settings.yaml`` (created once the API answers,
named by ``CC_INTAKE_LINK_POOL``). Unlike `make demo`, deadlines stay on: the real scheduler
handles them.

Ports (env overrides): UI ``CC_INTAKE_UP_PORT`` (8080), ``CC_INTAKE_UP_SFTP_ACME_PORT`` (2222),
``CC_INTAKE_UP_SFTP_BAOBAB_PORT`` (2223), ``CC_INTAKE_UP_CRM_PORT`` (8181),
``CC_INTAKE_UP_SMTP_PORT`` (8025). Ctrl-C or SIGTERM stops everything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from include.cc_intake.sandbox.env import Sandbox

HOST = "127.0.0.1"
# Port name -> (environment variable, default). The names other than `ui` and `crm` are the
# Airflow connection ids the sandbox's `ports=` mapping expects.
PORTS: dict[str, tuple[str, int]] = {
    "ui": ("CC_INTAKE_UP_PORT", 8080),
    "sftp_acme": ("CC_INTAKE_UP_SFTP_ACME_PORT", 2222),
    "sftp_baobab": ("CC_INTAKE_UP_SFTP_BAOBAB_PORT", 2223),
    "crm": ("CC_INTAKE_UP_CRM_PORT", 8181),
    "smtp_default": ("CC_INTAKE_UP_SMTP_PORT", 8025),
}
# Fixed (sandbox-only, fictional) CRM credentials, so airflow_settings.yaml can hold them.
CRM_SECRETS = {"crm_acme": "sandbox-acme-token", "crm_baobab": "sandbox-baobab-api-key"}
KNOWN_HOSTS_NAME = "known_hosts"  # written into <work>/sandbox/, named by airflow_settings.yaml
PID_FILE_NAME = "standalone.pid"
LOG_FILE_NAME = "standalone.log"
READY_TIMEOUT_S = 300.0
STOP_GRACE_S = 30.0


class _Stop(Exception):
    """SIGTERM arrived: leave the wait loop and clean up like on Ctrl-C."""


def ports_from_env(
    environ: Mapping[str, str], table: Mapping[str, tuple[str, int]] = PORTS
) -> dict[str, int]:
    """Every port `make up` uses: the defaults, overridden by the ``CC_INTAKE_UP_*`` variables.

    ``table`` (name -> (variable, default)) lets `make cluster` add its own ports.
    """
    ports: dict[str, int] = {}
    for name, (var, default) in table.items():
        raw = environ.get(var, "").strip()
        if not raw:
            ports[name] = default
            continue
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise SystemExit(f"[up] {var}={raw!r} is not a port: expected an integer 1-65535")
        ports[name] = int(raw)
    if len(set(ports.values())) != len(ports):
        raise SystemExit(f"[up] two services would share a port: {ports}")
    return ports


def check_ports_free(
    ports: Mapping[str, int], table: Mapping[str, tuple[str, int]] = PORTS
) -> None:
    """Fail early, naming the variable to change, rather than deep inside a server's start."""
    for name, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                var = table[name][0]
                raise SystemExit(
                    f"[up] port {HOST}:{port} ({name}) is taken: stop what uses it or set {var}"
                ) from None


def standalone_env(work: Path, ui_port: int) -> dict[str, str]:
    """The demo's Airflow environment with deadlines on and the api-server on ``ui_port``."""
    from include.cc_intake.sandbox.demo import airflow_env

    env = airflow_env(work)
    # The real scheduler handles deadlines; only `airflow dags test` crashes on them.
    env.pop("CC_INTAKE_DEADLINES", None)
    base = f"http://{HOST}:{ui_port}"
    if "AIRFLOW__CORE__PARALLELISM" not in os.environ:
        # LocalExecutor forks one worker per slot up front: 32 idle workers for a look is waste.
        env["AIRFLOW__CORE__PARALLELISM"] = "8"
    env.update(link_pool_env())
    env.update(
        {
            "AIRFLOW__API__HOST": HOST,  # loopback only: standalone's admin is for a local look
            "AIRFLOW__API__PORT": str(ui_port),
            "AIRFLOW__API__BASE_URL": base,
            # Task workers reach the api-server here; its default names port 8080 on `localhost`.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            # standalone spawns its components as `airflow …` found on PATH: make it this venv's.
            "PATH": os.pathsep.join(
                p for p in (str(Path(sys.executable).parent), os.environ.get("PATH", "")) if p
            ),
        }
    )
    return env


def link_pool_env() -> dict[str, str]:
    """``CC_INTAKE_LINK_POOL`` / ``_SLOTS`` for the pool ``airflow_settings.yaml`` declares."""
    from include.cc_intake.airflow.link_budget import LINK_POOL, LINK_SLOTS
    from include.cc_intake.sandbox.cluster import link_pool

    name, slots, _ = link_pool()
    return {LINK_POOL: name, LINK_SLOTS: str(max(slots, 1))}


def create_link_pool(env: Mapping[str, str]) -> str:
    """Create (or resize) the link pool in the metadata DB of ``env``'s Airflow."""
    from include.cc_intake.sandbox.cluster import link_pool

    name, slots, description = link_pool()
    subprocess.run(
        [sys.executable, "-m", "airflow", "pools", "set", name, str(slots), description],
        env=dict(env),
        check=True,
        capture_output=True,
    )
    return f"{name} ({slots} slots)"


def write_known_hosts(sandbox: Sandbox) -> Path:
    """A known_hosts file for every sandbox SFTP server (the ``known_hosts`` extra's target)."""
    if sandbox.keys is None:
        raise RuntimeError("the sandbox is not started")
    lines = [
        sandbox.keys.known_hosts_line(server.host, server.port)
        for _, server in sorted(sandbox.sftp.items())
    ]
    path = sandbox.work / KNOWN_HOSTS_NAME
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def password_file(env: Mapping[str, str]) -> Path:
    """Where the simple auth manager of `airflow standalone` writes the admin's password."""
    configured = env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    if configured:
        return Path(configured)
    return Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"


def health(port: int) -> dict[str, object] | None:
    """The api-server's health document, or None while it does not answer."""
    url = f"http://{HOST}:{port}/api/v2/monitor/health"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return dict(json.loads(response.read()))
    except (OSError, ValueError, urllib.error.URLError):
        return None


def stop_process_group(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM the standalone's process group, then SIGKILL whatever is left after ``grace``.

    standalone only stops its direct children on Ctrl-C; LocalExecutor workers and task
    runners (which live in their own groups) would outlive it, so their pids are taken first.
    """
    import psutil

    pgid = proc.pid  # start_new_session made the standalone its group's leader
    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    for child in tree:
        # A child may exit between the listing and here (os.getpgid then raises
        # ProcessLookupError, psutil NoSuchProcess): it needs no signal.
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
            if os.getpgid(child.pid) != pgid:
                child.terminate()
    deadline = time.monotonic() + grace
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    _, alive = psutil.wait_procs(tree, timeout=max(0.0, deadline - time.monotonic()))
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def banner(sandbox: Sandbox, env: Mapping[str, str], ports: Mapping[str, int], work: Path) -> str:
    """Where to log in, where things land, what to try first."""
    base = env["AIRFLOW__API__BASE_URL"]
    pw_file = password_file(env)
    try:
        users = json.loads(pw_file.read_text())
        login = ", ".join(f"{user} / {password}" for user, password in sorted(users.items()))
    except (OSError, ValueError):
        login = "see the file below once written"
    out = [
        "",
        "=" * 78,
        "cc-intake: airflow standalone with the sandbox is up",
        "=" * 78,
        f"  Airflow UI      {base}/",
        f"  login           {login}",
        f"                  (written by standalone to {pw_file})",
        f"  overview page   {base}/cc-intake/",
        f"  mail sink       SMTP {HOST}:{ports['smtp_default']} -> {sandbox.mail_folder}/*.eml",
        f"  CRM export      http://{HOST}:{ports['crm']}/",
    ]
    for pid, server in sorted(sandbox.sftp.items()):
        out.append(
            f"  SFTP {pid:<14} {server.host}:{server.port}  (processed day {sandbox.days[pid]})"
        )
    for conn_id, ftps in sorted(sandbox.ftps.items()):  # FTPS providers: primary and backup
        out.append(f"  FTPS {conn_id:<14} {HOST}:{ftps.port}  (explicit TLS, certificate pinned)")
    out += [
        f"  landed files    {env['CC_INTAKE_DATA_ROOT']}",
        f"  Airflow logs    {work / LOG_FILE_NAME}",
        "",
        "  The sandbox DAGs start paused: unpause one and trigger it (it processes J-1), or",
        '  trigger with conf {"target_date": "YYYY-MM-DD"}. Ctrl-C stops everything.',
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default=".up", help="work folder (default .up)")
    args = parser.parse_args(argv)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    ports = ports_from_env(os.environ)
    check_ports_free(ports)
    env = {**os.environ, **standalone_env(work, ports["ui"])}
    # The sandbox modules read the same settings (data root, sandbox flag) as Airflow.
    os.environ.update({k: v for k, v in env.items() if k != "PATH"})

    from include.cc_intake.sandbox.env import Sandbox
    from include.cc_intake.sandbox.services import default_services

    sandbox = Sandbox(
        work / "sandbox",
        ports={k: v for k, v in ports.items() if k not in ("ui", "crm")},
        services=default_services(crm_port=ports["crm"], crm_secrets=CRM_SECRETS),
    )

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    proc: subprocess.Popen[bytes] | None = None
    log_path = work / LOG_FILE_NAME
    pid_path = work / PID_FILE_NAME
    code = 0
    try:
        sandbox.start()
        known_hosts = write_known_hosts(sandbox)
        print(f"[up] sandbox started in {sandbox.work} (known_hosts: {known_hosts})", flush=True)
        run_env = {**env, **sandbox.env()}
        with log_path.open("ab") as log:
            # Its own session: Ctrl-C reaches us only, and we stop the whole group in order.
            proc = subprocess.Popen(
                [sys.executable, "-m", "airflow", "standalone"],
                env=run_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        pid_path.write_text(f"{proc.pid}\n")
        print(
            f"[up] airflow standalone started (pid {proc.pid}); waiting for "
            f"http://{HOST}:{ports['ui']}/api/v2/monitor/health … (logs: {log_path})",
            flush=True,
        )
        started = time.monotonic()
        shown = False
        while proc.poll() is None:
            if not shown and health(ports["ui"]) is not None:
                # Before the banner: a copy step in a missing pool would never be scheduled.
                print(f"[up] link pool {create_link_pool(run_env)}", flush=True)
                print(banner(sandbox, env, ports, work), flush=True)
                shown = True
            elif not shown and time.monotonic() - started > READY_TIMEOUT_S:
                print(f"[up] still not answering after {READY_TIMEOUT_S:.0f} s; see {log_path}")
                started = time.monotonic()
            time.sleep(1.0)
        code = proc.returncode or 1
        print(f"[up] airflow standalone exited ({proc.returncode}); last lines of {log_path}:")
        print(_tail(log_path))
    except (KeyboardInterrupt, _Stop):
        print("\n[up] stopping airflow standalone and the sandbox …", flush=True)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut cleanup
        try:
            if proc is not None:
                stop_process_group(proc)
        finally:
            sandbox.stop()
            pid_path.unlink(missing_ok=True)
            signal.signal(signal.SIGTERM, previous)
    print("[up] stopped", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
