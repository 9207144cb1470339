"""Real SFTP peers on loopback for the integration tests, behind one small handle.

* ``OpenSshServer``: OpenSSH's own sshd (``/usr/sbin/sshd``) in the foreground, on a free port,
  key auth for the current user; remote paths are absolute paths of the test's folder.
* the sandbox's in-process asyncssh server, which serves its folder as ``/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from include.cc_intake.sandbox.keys import SandboxKeys, ensure_keys
from include.cc_intake.sandbox.sftp_server import SftpServer

SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerHandle:
    """What a test needs from an SFTP server, whichever it is."""

    kind: str
    port: int
    login: str
    keys: SandboxKeys
    files: Path  # where the test writes the provider's files
    prefix: str  # how the server names `files` (absolute path for sshd, "" for the sandbox)
    _drop: Any = field(repr=False, default=None)

    def remote(self, path: str) -> str:
        return f"{self.prefix}{path}"

    def drop(self) -> None:
        """Cut every live session (the line drops mid-transfer)."""
        self._drop()

    def known_hosts_line(self) -> str:
        return self.keys.known_hosts_line("127.0.0.1", self.port)

    @contextlib.asynccontextmanager
    async def sftp(self) -> AsyncIterator[asyncssh.SFTPClient]:
        known = asyncssh.import_known_hosts(self.known_hosts_line())
        async with (
            asyncssh.connect(
                "127.0.0.1",
                self.port,
                username=self.login,
                client_keys=[self.keys.client_key],
                known_hosts=known,
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            yield sftp

    def connection_json(self, *, host_key: str | None = None) -> str:
        """An Airflow connection (env var form) for the sftp provider's hooks."""
        extra: dict[str, Any] = {"private_key": self.keys.client_private_key}
        known_file = self.files.parent / f"known_hosts_{self.port}"
        if host_key is None:
            known_file.write_text(self.known_hosts_line() + "\n")
        else:
            known_file.write_text(f"[127.0.0.1]:{self.port} {host_key}\n")
        extra["known_hosts"] = str(known_file)
        return json.dumps(
            {
                "conn_type": "sftp",
                "host": "127.0.0.1",
                "port": self.port,
                "login": self.login,
                "extra": extra,
            }
        )


@contextlib.contextmanager
def sandbox_server(base: Path, **kwargs: Any) -> Iterator[ServerHandle]:
    keys = ensure_keys(base / "keys")
    files = base / "remote"
    files.mkdir(parents=True, exist_ok=True)
    server = SftpServer(files, keys, **kwargs)
    port = server.start()
    try:
        yield ServerHandle("sandbox", port, server.login, keys, files, "", server.drop_connections)
    finally:
        server.stop()


def sshd_config(port: int, listen: str, keys: SandboxKeys, base: Path, authorized: Path) -> str:
    """A foreground sshd serving SFTP to one key, nothing else (tests and benchmarks)."""
    return "\n".join(
        [
            f"Port {port}",
            f"ListenAddress {listen}",
            f"HostKey {keys.host_key_path}",
            f"PidFile {base / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password",
            "StrictModes no",
            "UsePAM no",
            "Subsystem sftp internal-sftp",
            "LogLevel ERROR",
            "",
        ]
    )


@contextlib.contextmanager
def openssh_server(base: Path) -> Iterator[ServerHandle]:
    keys = ensure_keys(base / "keys")
    files = base / "remote"
    files.mkdir(parents=True, exist_ok=True)
    port = free_port()
    authorized = base / "authorized_keys"
    authorized.write_text(keys.client_public_line + "\n")
    authorized.chmod(0o600)
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    config = base / "sshd_config"
    config.write_text(sshd_config(port, "127.0.0.1", keys, base, authorized))
    proc = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.05)

    def drop() -> None:
        # sshd forks one process per session; killing them cuts the line, the listener stays.
        out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
        for pid in out.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)

    login = (
        os.environ.get("USER")
        or subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    )
    try:
        yield ServerHandle("openssh", port, login, keys, files, str(files), drop)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


def have_sshd() -> bool:
    return SSHD.exists() and shutil.which("pgrep") is not None
