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
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from include.cc_intake.errors import HostKeyError, RemoteError
from include.cc_intake.naming import render_folder

if TYPE_CHECKING:
    import asyncssh

    from include.cc_intake.config import ProviderConfig
    from include.cc_intake.report import DailyReport

log = logging.getLogger(__name__)


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
    from airflow.providers.sftp.hooks.sftp import SFTPHookAsync

    conn_id = conn_id or provider.recordings.conn_id
    hook = SFTPHookAsync(sftp_conn_id=conn_id)
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
