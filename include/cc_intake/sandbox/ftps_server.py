"""A provider's FTPS server for the sandbox: pyftpdlib with explicit TLS, in its own thread.

One login with a password, one folder as its root, TLS required on the control and the data
channels (``AUTH TLS``, ``PROT P``), MLSD advertised, 127.0.0.1 only. The certificate is a
self-signed one generated once into a folder (``ensure_certificate``) and reused, so the pinned
SHA-256 in the sandbox's Airflow connection stays valid across restarts. Read-only: the
pipeline never writes to a provider's server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CERT_NAME = "ftps_cert.pem"
KEY_NAME = "ftps_key.pem"
_START_TIMEOUT = 15.0


@dataclass(frozen=True)
class SandboxCertificate:
    cert_path: Path
    key_path: Path

    @property
    def sha256(self) -> str:
        """Lower-case hex SHA-256 of the DER certificate: the ``cert_sha256`` extra."""
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def ensure_certificate(folder: Path, *, name: str = "cc-intake sandbox") -> SandboxCertificate:
    """A self-signed certificate for 127.0.0.1 and localhost, created once in ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    found = SandboxCertificate(folder / CERT_NAME, folder / KEY_NAME)
    if found.cert_path.exists() and found.key_path.exists():
        return found
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(found.key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem)
    found.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return found


class FtpsServer:
    """pyftpdlib's TLS handler on 127.0.0.1, serving ``root`` to one login, in a thread."""

    def __init__(
        self,
        root: Path,
        certificate: SandboxCertificate,
        *,
        login: str = "intake",
        password: str = "sandbox-ftps",
        port: int = 0,
        writable: bool = False,
        mlsd: bool = True,
        list_fault: str | None = None,
    ) -> None:
        self.root = root
        self.certificate = certificate
        self.login = login
        self.password = password
        self.port = port
        self.writable = writable
        # ``mlsd=False`` serves like vsftpd (no MLST in FEAT, LIST only); ``list_fault`` is a
        # line every LIST adds to its answer (fault injection for the strict LIST parse).
        self.mlsd = mlsd
        self.list_fault = list_fault
        self.connections = 0  # control connections accepted (tests: "never contacted")
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> int:
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.filesystems import AbstractedFS
        from pyftpdlib.handlers import TLS_FTPHandler
        from pyftpdlib.ioloop import IOLoop
        from pyftpdlib.servers import FTPServer

        # Its INFO lines (one per poll of the loop below, one per session) drown the task logs.
        logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
        owner = self
        authorizer = DummyAuthorizer()
        perm = "elradfmwMT" if self.writable else "elr"
        authorizer.add_user(self.login, self.password, str(self.root), perm=perm)

        class Handler(TLS_FTPHandler):
            certfile = str(owner.certificate.cert_path)
            keyfile = str(owner.certificate.key_path)
            tls_control_required = True
            tls_data_required = True
            banner = "cc-intake sandbox FTPS"

            def on_connect(self) -> None:
                owner.connections += 1

        class FaultyFS(AbstractedFS):
            def format_list(self, *args: Any, **kwargs: Any) -> Any:
                yield from super().format_list(*args, **kwargs)
                if owner.list_fault is not None:
                    yield (owner.list_fault + "\r\n").encode()

            def format_mlsx(
                self, basedir: str, listing: Any, perms: Any, facts: Any, ignore_err: bool = True
            ) -> Any:
                # pyftpdlib stats through links: show a link as a link, as ProFTPD does (and
                # the SFTP sandbox), so the client under test has to reject it itself.
                for name in listing:
                    link = os.path.islink(os.path.join(basedir, name))
                    for line in super().format_mlsx(basedir, [name], perms, facts, ignore_err):
                        if link:
                            line = (
                                line.replace(b"type=file;", b"type=OS.unix=slink;")
                                if isinstance(line, bytes)
                                else line.replace("type=file;", "type=OS.unix=slink;")
                            )
                        yield line

        Handler.authorizer = authorizer
        Handler.abstracted_fs = FaultyFS
        if not self.mlsd:
            Handler.proto_cmds = {
                k: v for k, v in TLS_FTPHandler.proto_cmds.items() if k not in ("MLSD", "MLST")
            }
        Handler.passive_ports = None
        # Its own loop: pyftpdlib's default is one per process, and two sandbox servers (a
        # primary and its backup) polled from two threads would close each other's sockets.
        self._server = FTPServer(("127.0.0.1", self.port), Handler, ioloop=IOLoop())
        self.port = int(self._server.address[1])
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="sandbox-ftps", daemon=True)
        self._thread.start()
        return self.port

    def _serve(self) -> None:
        server = self._server
        while not self._stop.is_set():
            server.ioloop.loop(0.1, blocking=False)  # serve_forever logs each call
        server.close_all()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_START_TIMEOUT)
            self._thread = None

    def __enter__(self) -> FtpsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
