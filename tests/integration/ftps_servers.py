"""Real FTPS peers on loopback for the integration tests, behind one small handle.

* ``vsftpd``: Debian's vsftpd (``$CC_INTAKE_VSFTPD``, ``/usr/sbin/vsftpd`` or the copy `.ci/run`
  unpacks under ``/opt/vsftpd``), explicit TLS, ``require_ssl_reuse=YES``, no MLSD (the strict
  ``LIST`` parse is exercised), anonymous login chrooted into the test's folder;
* ``proftpd``: Debian's ProFTPD with ``mod_tls`` (``proftpd-mod-crypto``), TLS required, session
  reuse required (no ``NoSessionReuseRequired``), MLSD;
* ``pyftpdlib``: the sandbox's in-process TLS server (``sandbox/ftps_server.py``).

The first two run as root (they chroot and drop to ``nobody``); they are skipped with a reason
when missing or not root, unless ``CI=true``, where the tests fail instead.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.cc_intake.ftps import FtpsEndpoint
from include.cc_intake.sandbox.ftps_server import FtpsServer, SandboxCertificate, ensure_certificate
from tests.integration.servers import free_port

PROFTPD = Path("/usr/sbin/proftpd")
PROFTPD_MODULES = Path("/usr/lib/proftpd")


def vsftpd_binary() -> Path | None:
    candidates = [os.environ.get("CC_INTAKE_VSFTPD", ""), "/usr/sbin/vsftpd"]
    candidates.append("/opt/vsftpd/usr/sbin/vsftpd")
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def missing(kind: str) -> str | None:
    """Why a server cannot run here (None when it can)."""
    if kind == "pyftpdlib":
        return None
    if os.geteuid() != 0:
        return f"{kind} needs root here (it chroots and drops to nobody)"
    if kind == "vsftpd" and vsftpd_binary() is None:
        return "vsftpd not installed (.ci/run unpacks it; or set CC_INTAKE_VSFTPD)"
    if not _ftp_user_home():
        return f"{kind}'s anonymous login needs the system user `ftp` with a home folder"
    if kind == "proftpd" and not (PROFTPD.exists() and (PROFTPD_MODULES / "mod_tls.so").exists()):
        return "ProFTPD with mod_tls not installed (.ci/run installs proftpd-core, -mod-crypto)"
    return None


def _ftp_user_home() -> bool:
    """vsftpd enters the anonymous user's home before its ``anon_root`` (proftpd-core's
    package creates ``ftp`` with /srv/ftp)."""
    try:
        return Path(pwd.getpwnam("ftp").pw_dir).is_dir()
    except KeyError:
        return False


@dataclass
class FtpsHandle:
    """What a test needs from an FTPS server, whichever it is."""

    kind: str
    port: int
    login: str
    password: str
    certificate: SandboxCertificate
    files: Path  # the served root: remote "/x" is files / "x"
    mlsd: bool
    _stop: Any = field(repr=False, default=None)
    _connections: Any = field(repr=False, default=None)

    def remote(self, path: str) -> str:
        return path

    def endpoint(self, *, name: str = "ftps_test", **changes: Any) -> FtpsEndpoint:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "login": self.login,
            "password": self.password,
            "cert_sha256": self.certificate.sha256,
            "name": name,
            "timeout": 20.0,
            "connect_timeout": 5.0,
        }
        values.update(changes)
        return FtpsEndpoint(**values)

    def connection_json(self, *, cert_sha256: str | None = None, ca_file: str | None = None) -> str:
        """An Airflow FTP connection (env var form) with the pin in its extra."""
        import json

        extra: dict[str, str] = {}
        if ca_file:
            extra["ca_file"] = ca_file
        else:
            extra["cert_sha256"] = cert_sha256 or self.certificate.sha256
        return json.dumps(
            {
                "conn_type": "ftp",
                "host": "127.0.0.1",
                "port": self.port,
                "login": self.login,
                "password": self.password,
                "extra": extra,
            }
        )

    @property
    def connections(self) -> int:
        return int(self._connections())

    def stop(self) -> None:
        self._stop()


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}: {err.strip()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port}")


def _stopper(proc: subprocess.Popen[bytes]) -> Any:
    def stop() -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    return stop


@contextlib.contextmanager
def _served_root(base: Path) -> Iterator[Path]:
    """The folder a server serves, readable by its anonymous user.

    Outside pytest's temporary tree: ProFTPD enters it as that user before its chroot, and
    pytest resets its base folder to 0700 (other sessions on the machine do too).
    """
    base.mkdir(parents=True, exist_ok=True)
    files = Path(tempfile.mkdtemp(prefix="cc-intake-ftps-"))
    files.chmod(0o755)
    try:
        yield files
    finally:
        shutil.rmtree(files, ignore_errors=True)


@contextlib.contextmanager
def pyftpdlib_server(base: Path, **options: Any) -> Iterator[FtpsHandle]:
    cert = ensure_certificate(base / "tls")
    with _served_root(base) as files:
        server = FtpsServer(files, cert, **options)
        port = server.start()
        try:
            yield FtpsHandle(
                "pyftpdlib",
                port,
                server.login,
                server.password,
                cert,
                files,
                server.mlsd,
                server.stop,
                lambda: server.connections,
            )
        finally:
            server.stop()


def _log_counter(log: Path, marker: str) -> Any:
    def count() -> int:
        try:
            return log.read_text(errors="replace").count(marker)
        except FileNotFoundError:
            return 0

    return count


@contextlib.contextmanager
def vsftpd_server(base: Path) -> Iterator[FtpsHandle]:
    with _served_root(base) as files, _vsftpd(base, files) as handle:
        yield handle


@contextlib.contextmanager
def _vsftpd(base: Path, files: Path) -> Iterator[FtpsHandle]:
    binary = vsftpd_binary()
    assert binary is not None
    cert = ensure_certificate(base / "tls")
    port = free_port()
    pasv = free_port()
    empty = base / "empty"
    empty.mkdir(exist_ok=True)
    log = base / "vsftpd.log"
    config = base / "vsftpd.conf"
    config.write_text(
        "\n".join(
            [
                "listen=YES",
                "listen_ipv6=NO",
                "listen_address=127.0.0.1",
                f"listen_port={port}",
                "background=NO",
                "anonymous_enable=YES",
                "local_enable=NO",
                "write_enable=NO",
                "no_anon_password=YES",
                "ftp_username=ftp",
                f"anon_root={files}",
                "allow_anon_ssl=YES",
                "force_anon_logins_ssl=YES",
                "force_anon_data_ssl=YES",
                "ssl_enable=YES",
                "ssl_tlsv1=YES",
                "ssl_sslv2=NO",
                "ssl_sslv3=NO",
                "require_ssl_reuse=YES",
                "ssl_ciphers=HIGH",
                f"rsa_cert_file={cert.cert_path}",
                f"rsa_private_key_file={cert.key_path}",
                "pasv_enable=YES",
                "pasv_address=127.0.0.1",
                f"pasv_min_port={pasv}",
                f"pasv_max_port={pasv + 50}",
                "seccomp_sandbox=NO",
                "isolate=NO",
                "isolate_network=NO",
                f"secure_chroot_dir={empty}",
                "dirmessage_enable=NO",
                "use_localtime=NO",
                "xferlog_enable=YES",
                "log_ftp_protocol=YES",
                "dual_log_enable=NO",
                "syslog_enable=NO",
                f"vsftpd_log_file={log}",
                "max_per_ip=20",
                "",
            ]
        )
    )
    proc = subprocess.Popen(
        [str(binary), str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    stop = _stopper(proc)
    try:
        _wait_port(port, proc, "vsftpd")
        yield FtpsHandle(
            "vsftpd",
            port,
            "anonymous",
            "",
            cert,
            files,
            False,
            stop,
            _log_counter(log, "CONNECT: Client"),
        )
    finally:
        stop()


@contextlib.contextmanager
def proftpd_server(base: Path) -> Iterator[FtpsHandle]:
    with _served_root(base) as files, _proftpd(base, files) as handle:
        yield handle


@contextlib.contextmanager
def _proftpd(base: Path, files: Path) -> Iterator[FtpsHandle]:
    cert = ensure_certificate(base / "tls")
    port = free_port()
    pasv = free_port()
    log = base / "proftpd.log"
    config = base / "proftpd.conf"
    config.write_text(
        "\n".join(
            [
                f"ModulePath {PROFTPD_MODULES}",
                "LoadModule mod_tls.c",
                'ServerName "cc-intake test"',
                "ServerType standalone",
                "DefaultServer on",
                f"Port {port}",
                "DefaultAddress 127.0.0.1",
                "UseIPv6 off",
                "User nobody",
                "Group nogroup",
                f"PidFile {base / 'proftpd.pid'}",
                f"ScoreboardFile {base / 'proftpd.scoreboard'}",
                "DelayEngine off",
                "WtmpLog off",
                "UseReverseDNS off",
                "RequireValidShell off",
                "AuthPAM off",
                "UseFtpUsers off",
                f"PassivePorts {pasv} {pasv + 50}",
                "MaxInstances 30",
                "TimesGMT on",
                f"SystemLog {log}",
                f"ExtendedLog {log} ALL",
                "<IfModule mod_tls.c>",
                "  TLSEngine on",
                "  TLSRequired on",
                "  TLSProtocol TLSv1.2 TLSv1.3",
                f"  TLSECCertificateFile {cert.cert_path}",
                f"  TLSECCertificateKeyFile {cert.key_path}",
                "  TLSVerifyClient off",
                f"  TLSLog {base / 'tls.log'}",
                "</IfModule>",
                f"<Anonymous {files}>",
                "  User ftp",
                "  Group nogroup",
                "  UserAlias anonymous ftp",
                "  RequireValidShell off",
                "  <Limit WRITE>",
                "    DenyAll",
                "  </Limit>",
                "</Anonymous>",
                "",
            ]
        )
    )
    proc = subprocess.Popen(
        [str(PROFTPD), "-n", "-q", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    stop = _stopper(proc)
    try:
        _wait_port(port, proc, "proftpd")
        yield FtpsHandle(
            "proftpd",
            port,
            "anonymous",
            "intake@example.invalid",
            cert,
            files,
            True,
            stop,
            _log_counter(base / "tls.log", "TLS/TLS-C requested"),
        )
    finally:
        stop()


FACTORIES = {"vsftpd": vsftpd_server, "proftpd": proftpd_server, "pyftpdlib": pyftpdlib_server}


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
