"""The provider's SFTP server as the tasks open it: one session, its host key checked.

:func:`open_sftp` is the only way the tasks (and ``make check``) reach a provider's server: the
sftp provider's async hook opens the session with the connection's host key, and a refused key
or an unreachable server becomes the project's :class:`HostKeyError` or :class:`RemoteError`
naming provider, day and connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.cc_intake.errors import HostKeyError, RemoteError
from include.cc_intake.naming import render_folder
from include.cc_intake.ssh_setup import preferred_ciphers, quick_auth_client

if TYPE_CHECKING:
    import asyncssh

    from include.cc_intake.config import ProviderConfig
    from include.cc_intake.report import DailyReport

log = logging.getLogger(__name__)


@functools.cache
def _fast_hook_class() -> type:
    """The sftp provider's async hook, connecting with the ciphers this CPU runs fastest.

    Built once, on first use: the provider is imported only inside tasks, never by a DAG file.
    """
    import asyncssh
    from airflow.providers.sftp.hooks.sftp import SFTPHookAsync

    class FastSFTPHookAsync(SFTPHookAsync):
        """``SFTPHookAsync`` whose connection offers AES-GCM first when the CPU has AES.

        The provider's ``_get_conn`` passes no algorithm options to ``asyncssh.connect``; this
        override builds the same options (host, port, login, password, key, the host-key
        check from the connection's extras: unchanged) and adds ``encryption_algs``.
        """

        negotiated: str = ""

        async def _get_conn(self) -> asyncssh.SSHClientConnection:
            from airflow.providers.common.compat.connection import get_async_connection

            conn = await get_async_connection(self.sftp_conn_id)
            self._parse_extras(conn)
            options: dict[str, Any] = {
                "host": self.host if self.host is not None else conn.host,
                "port": next(v for v in (self.port, conn.port, 22) if v is not None),
                "username": self.username if self.username is not None else conn.login,
                "password": self.password if self.password is not None else conn.password,
                "encryption_algs": preferred_ciphers(),
                "client_factory": quick_auth_client(),  # no "none" auth round trip
            }
            if self.key_file:
                options["client_keys"] = self.key_file
            if self.known_hosts:
                if str(self.known_hosts).lower() == "none":
                    options["known_hosts"] = None
                elif self._should_use_known_hosts():
                    options["known_hosts"] = self.known_hosts
            if self.private_key:
                key = asyncssh.import_private_key(self.private_key, self.passphrase)
                options["client_keys"] = [key]
            if self.passphrase:
                options["passphrase"] = self.passphrase
            ssh = await asyncssh.connect(**options)
            self.negotiated = str(ssh.get_extra_info("recv_cipher") or "")
            return ssh

    return FastSFTPHookAsync


@contextlib.asynccontextmanager
async def open_sftp(
    provider: ProviderConfig,
    day: dt.date,
    *,
    conn_id: str | None = None,
    connect_timeout: float | None = None,
) -> AsyncIterator[asyncssh.SFTPClient]:
    """One SSH session to the provider's server, host key checked by the sftp provider's hook.

    ``conn_id``: one of the provider's endpoints (default: the first); ``connect_timeout``:
    seconds to get the session (``airflow/remote.py`` tries the next endpoint after them).
    """
    import asyncssh

    conn_id = conn_id or provider.recordings.conn_id
    hook = _fast_hook_class()(sftp_conn_id=conn_id)
    stack = contextlib.AsyncExitStack()
    try:
        sftp = await asyncio.wait_for(
            stack.enter_async_context(hook.get_managed_conn()), connect_timeout
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        raise HostKeyError(
            f"{provider.id} {day}: the SFTP server of connection {conn_id!r} presented a host "
            f"key that is not trusted ({exc}). Verify its fingerprint with the provider, then "
            f"set the connection's `host_key` extra (or `known_hosts`); see `make check`.",
            provider=provider.id,
            day=day,
        ) from None
    except (OSError, asyncssh.Error) as exc:
        raise RemoteError(
            f"{provider.id} {day}: cannot open an SFTP session with connection {conn_id!r}: "
            f"{type(exc).__name__}: {exc}",
            provider=provider.id,
            day=day,
        ) from None
    if str(hook.known_hosts).lower() == "none":
        log.warning(
            "%s: host key check DISABLED by connection %r (no_host_key_check): sandbox only",
            provider.id,
            conn_id,
        )
    log.info(
        "%s: SFTP session over connection %r, cipher %s", provider.id, conn_id, hook.negotiated
    )
    async with stack:
        yield sftp


async def read_remote_report(
    sftp: asyncssh.SFTPClient, provider: ProviderConfig, day: dt.date
) -> bytes | None:
    """The report's bytes, or None while the provider has not published it."""
    import asyncssh

    path = render_folder(provider.daily_report.path, day)
    try:
        async with sftp.open(path, "rb") as remote:
            data = await remote.read()
    except asyncssh.SFTPNoSuchFile:
        return None
    return data if isinstance(data, bytes) else data.encode()


def parse_report_bytes(content: bytes, provider: ProviderConfig, day: dt.date) -> DailyReport:
    """Parse the report's bytes as read from the provider's server."""
    from include.cc_intake.report import parse_report_content

    name = Path(render_folder(provider.daily_report.path, day)).name
    return parse_report_content(content, name, provider.daily_report, provider=provider.id, day=day)
