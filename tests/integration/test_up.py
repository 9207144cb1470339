"""`make up` for real, on free ports: standalone serves the sandbox DAGs, SIGTERM leaves nothing."""

from __future__ import annotations

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
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

from include.cc_intake.sandbox import up
from tests.integration.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_DAGS = {"ingest_acme_abidjan", "ingest_baobab_douala"}
T = TypeVar("T")


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout: float,
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if proc.poll() is not None:
            pytest.fail(f"up.py exited ({proc.returncode}) before {what}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{log.read_text()}")
        time.sleep(1.0)


def get_json(url: str, *, token: str | None = None, body: object = None) -> object | None:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    try:
        request = urllib.request.Request(url, data=data, headers=headers)
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def living(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
    return alive


def group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
    return living(members)


def test_make_up_serves_the_sandbox_dags_and_stops_clean(tmp_path: Path) -> None:
    ports = {var: free_port() for var, _ in up.PORTS.values()}
    # Nothing of the test session's Airflow settings may leak into the standalone.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "CC_INTAKE_"))}
    env.update({var: str(port) for var, port in ports.items()})
    env["PYTHONPATH"] = str(ROOT)
    ui = ports["CC_INTAKE_UP_PORT"]
    base = f"http://127.0.0.1:{ui}"
    work = tmp_path / "up"
    log = tmp_path / "up.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "include.cc_intake.sandbox.up", "--work", str(work)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    pgid = None
    try:
        wait_for("health", lambda: get_json(f"{base}/api/v2/monitor/health"), proc, log, 180)
        pgid = int((work / up.PID_FILE_NAME).read_text())
        pw_file = work / "airflow" / "simple_auth_manager_passwords.json.generated"
        password = (
            wait_for("the admin password", lambda: pw_file.exists(), proc, log, 30)
            and (json.loads(pw_file.read_text())["admin"])
        )
        answer = get_json(f"{base}/auth/token", body={"username": "admin", "password": password})
        assert isinstance(answer, dict), "no token from /auth/token"
        token = answer["access_token"]

        def sandbox_dags() -> set[str] | None:
            listing = get_json(f"{base}/api/v2/dags", token=token)
            found = {d["dag_id"] for d in listing["dags"]} if isinstance(listing, dict) else set()
            return found if found >= SANDBOX_DAGS else None

        wait_for("the sandbox DAGs in the REST API", sandbox_dags, proc, log, 90)
        wait_for("the banner", lambda: "is up" in log.read_text(), proc, log, 30)
        banner = log.read_text()
        assert f"overview page   {base}/cc-intake/" in banner
        assert f"login           admin / {password}" in banner
        # The link pool exists before the banner (#11): a copy in a missing pool never runs.
        assert "[up] link pool cc_intake_link (4 slots)" in banner
        pool = get_json(f"{base}/api/v2/pools/cc_intake_link", token=token)
        assert isinstance(pool, dict) and pool["slots"] == 4, pool
        assert f"SFTP acme_abidjan   127.0.0.1:{ports['CC_INTAKE_UP_SFTP_ACME_PORT']}" in banner
        known_hosts = (work / "sandbox" / up.KNOWN_HOSTS_NAME).read_text()
        assert f"[127.0.0.1]:{ports['CC_INTAKE_UP_SFTP_BAOBAB_PORT']} ssh-ed25519 " in known_hosts

        tree = psutil.Process(proc.pid).children(recursive=True)
        assert len(living(group_members(pgid))) >= 4  # scheduler, dag-processor, api, triggerer

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, log.read_text()
        assert living(tree) == [], [p.info for p in living(tree)]
        assert group_members(pgid) == []
        for port in ports.values():  # no listener left (TIME_WAIT leftovers are fine)
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))
        assert not (work / up.PID_FILE_NAME).exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if pgid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
