"""The whole sandbox in one object: seeded provider servers, an SMTP sink, Airflow connections.

``Sandbox(work).start()`` generates the SSH keys, seeds each sandbox provider's server folder
under ``work/servers/<id>/`` for its processed day, starts one SFTP server per provider (for an
FTPS provider, one pyftpdlib TLS server per connection of ``recordings.conn_ids``, all serving
the same folder, with a self-signed certificate in ``work/tls/`` pinned in the connections) and
an SMTP sink writing into ``work/mail/``. :meth:`Sandbox.env` gives the ``AIRFLOW_CONN_*``
variables a task needs to reach them. More servers (the CRM export) plug in through
``services``: objects with ``start(sandbox)``, ``stop()`` and ``connections()``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol

from include.cc_intake.config import ProviderConfig, load_providers
from include.cc_intake.days import processed_day
from include.cc_intake.errors import ConfigError
from include.cc_intake.sandbox.ftps_server import FtpsServer, SandboxCertificate, ensure_certificate
from include.cc_intake.sandbox.keys import SandboxKeys, ensure_keys
from include.cc_intake.sandbox.seed import SeedResult, seed_provider
from include.cc_intake.sandbox.sftp_server import SftpServer
from include.cc_intake.sandbox.smtp_sink import SmtpSink

PROVIDERS_FOLDER = Path(__file__).resolve().parent / "providers"
SFTP_LOGIN = "intake"
SMTP_CONN_ID = "smtp_default"
MAIL_FROM = "intake@sandbox.example"


class SandboxService(Protocol):
    """A further sandbox server (e.g. the CRM export), started after the built-in ones."""

    def start(self, sandbox: Sandbox) -> None: ...

    def stop(self) -> None: ...

    def connections(self) -> Mapping[str, str]:
        """Airflow connection id -> connection JSON (as for ``AIRFLOW_CONN_<ID>``)."""
        ...


def env_var(conn_id: str) -> str:
    """The environment variable Airflow reads a connection from."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


class Sandbox:
    """Seeded SFTP servers for every sandbox provider, an SMTP sink, and their connections.

    :param work: the sandbox's work folder (keys/, servers/<id>/, mail/ go there).
    :param days: the processed day, for all providers or per provider id; default J-1 in each
        provider's zone, from ``now``.
    :param scenarios: seed scenario per provider id (default ``normal``).
    :param ports: fixed ports by connection id (``sftp_acme``, ``smtp_default``); default free.
    :param services: further servers to run with the sandbox (see :class:`SandboxService`).
    :param providers_folder: where the sandbox provider YAML files are.
    :param now: the clock used for the default days.
    :param rng_seed: varies the seeded data.
    """

    def __init__(
        self,
        work: Path,
        *,
        days: dt.date | Mapping[str, dt.date] | None = None,
        scenarios: Mapping[str, str] | None = None,
        ports: Mapping[str, int] | None = None,
        services: Sequence[SandboxService] = (),
        providers_folder: Path = PROVIDERS_FOLDER,
        now: dt.datetime | None = None,
        rng_seed: int = 0,
    ) -> None:
        self.work = Path(work).resolve()
        self.providers_folder = Path(providers_folder)
        self.services = list(services)
        self._ports = dict(ports or {})
        self._scenarios = dict(scenarios or {})
        self._rng_seed = rng_seed
        good, broken = load_providers(self.providers_folder)
        if broken:
            raise ConfigError("; ".join(b.error for b in broken))
        self.providers: dict[str, ProviderConfig] = {cfg.id: cfg for cfg in good}
        clock = now or dt.datetime.now(dt.UTC)
        self.days: dict[str, dt.date] = {}
        for pid, cfg in self.providers.items():
            if isinstance(days, dt.date):
                self.days[pid] = days
            elif days is not None and pid in days:
                self.days[pid] = days[pid]
            else:
                self.days[pid] = processed_day(tz=cfg.tz, logical_date=clock)
        self.keys: SandboxKeys | None = None
        self.seeds: dict[str, SeedResult] = {}
        self.sftp: dict[str, SftpServer] = {}
        self.ftps: dict[str, FtpsServer] = {}  # FTPS connection id -> its server
        self.certificate: SandboxCertificate | None = None
        self.smtp: SmtpSink | None = None
        self._started: list[SftpServer | FtpsServer | SmtpSink | SandboxService] = []

    # -- folders ---------------------------------------------------------------------------

    @property
    def keys_folder(self) -> Path:
        return self.work / "keys"

    @property
    def mail_folder(self) -> Path:
        return self.work / "mail"

    def server_root(self, provider_id: str) -> Path:
        """The folder served as ``/`` by a provider's SFTP server."""
        return self.work / "servers" / provider_id

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Seed and start everything; stop what started if anything fails."""
        try:
            self.keys = ensure_keys(self.keys_folder)
            for pid, cfg in self.providers.items():
                self.seeds[pid] = seed_provider(
                    self.server_root(pid),
                    cfg,
                    self.days[pid],
                    scenario=self._scenarios.get(pid, "normal"),
                    rng_seed=self._rng_seed,
                )
                if cfg.recordings.protocol == "ftps":
                    self._start_ftps(pid, cfg)
                    continue
                server = SftpServer(
                    self.server_root(pid),
                    self.keys,
                    port=self._ports.get(cfg.recordings.conn_id, 0),
                    login=SFTP_LOGIN,
                )
                server.start()
                self._started.append(server)
                self.sftp[pid] = server
            self.smtp = SmtpSink(self.mail_folder, port=self._ports.get(SMTP_CONN_ID, 0))
            self.smtp.start()
            self._started.append(self.smtp)
            for service in self.services:
                service.start(self)
                self._started.append(service)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_ftps(self, pid: str, cfg: ProviderConfig) -> None:
        if self.certificate is None:
            self.certificate = ensure_certificate(self.work / "tls")
        for conn_id in cfg.recordings.conn_ids:
            server = FtpsServer(
                self.server_root(pid),
                self.certificate,
                login=SFTP_LOGIN,
                port=self._ports.get(conn_id, 0),
            )
            server.start()
            self._started.append(server)
            self.ftps[conn_id] = server

    def stop(self) -> None:
        """Stop every server, last started first."""
        errors: list[BaseException] = []
        while self._started:
            item = self._started.pop()
            try:
                item.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- connections -----------------------------------------------------------------------

    def sftp_connection(self, provider_id: str) -> dict[str, object]:
        """The Airflow connection (as a dict) for a provider's SFTP server."""
        if self.keys is None or provider_id not in self.sftp:
            raise RuntimeError("the sandbox is not started")
        server = self.sftp[provider_id]
        return {
            "conn_type": "sftp",
            "host": server.host,
            "port": server.port,
            "login": SFTP_LOGIN,
            "extra": {
                "private_key": self.keys.client_private_key,
                # Pinned host key: asyncssh and paramiko both match it on a non-22 port.
                "host_key": self.keys.host_public_line,
                "no_host_key_check": False,
            },
        }

    def ftps_connection(self, conn_id: str) -> dict[str, object]:
        """The Airflow FTP connection (as a dict) for one of an FTPS provider's servers."""
        if self.certificate is None or conn_id not in self.ftps:
            raise RuntimeError("the sandbox is not started")
        server = self.ftps[conn_id]
        return {
            "conn_type": "ftp",
            "host": "127.0.0.1",
            "port": server.port,
            "login": server.login,
            "password": server.password,
            "extra": {"cert_sha256": self.certificate.sha256},
        }

    def smtp_connection(self) -> dict[str, object]:
        if self.smtp is None:
            raise RuntimeError("the sandbox is not started")
        return {
            "conn_type": "smtp",
            "host": self.smtp.host,
            "port": self.smtp.port,
            "extra": {"disable_ssl": True, "disable_tls": True, "from_email": MAIL_FROM},
        }

    def connections(self) -> dict[str, str]:
        """Connection id -> Airflow connection JSON, for ``AIRFLOW_CONN_<ID>`` variables."""
        out = {
            self.providers[pid].recordings.conn_id: json.dumps(self.sftp_connection(pid))
            for pid in self.sftp
        }
        out.update((conn_id, json.dumps(self.ftps_connection(conn_id))) for conn_id in self.ftps)
        out[SMTP_CONN_ID] = json.dumps(self.smtp_connection())
        for service in self.services:
            out.update(service.connections())
        return out

    def env(self) -> dict[str, str]:
        """Every ``AIRFLOW_CONN_*`` variable the sandbox's connections need, and nothing else."""
        return {env_var(conn_id): value for conn_id, value in self.connections().items()}
