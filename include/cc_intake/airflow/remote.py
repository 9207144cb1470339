"""The provider's server as the tasks open it: SFTP or FTPS, the first endpoint that answers.

:func:`open_remote` is how the tasks reach a provider (``recordings.protocol``): it tries the
connections of ``recordings.conn_ids`` in order, each with a short connect timeout, and yields
a ``recordings.RemoteSource`` for the first that answers **and verifies**. A host key or
certificate mismatch (:class:`HostKeyError`, :class:`CertificateError`) fails at once: it is an
attack or a misconfiguration, never a reason to try the next endpoint. When a backup serves
the day, the operators get one e-mail per provider-day (a marker under the data root,
``endpoints/<provider>/<day>.primary-unreachable``, outside the proof folder).

FTPS: the connection is an Airflow FTP connection read through the ftp provider's hook lookup
only (its ``FTP_TLS`` has no pinning, session reuse or timeouts): host, port, login, password,
extra ``cert_sha256`` or ``ca_file``; the transfer work is :mod:`include.cc_intake.ftps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from include.cc_intake.errors import ConfigError, HostKeyError, RemoteError

if TYPE_CHECKING:
    from include.cc_intake.config import ProviderConfig
    from include.cc_intake.ftps import FtpsEndpoint
    from include.cc_intake.recordings import RemoteSource

log = logging.getLogger(__name__)

# Seconds an endpoint has to answer when there is another one to try (a dead primary must not
# eat the wait step's poke); a single endpoint keeps the protocol's own timeouts.
CONNECT_TIMEOUT_S = 10.0

Unreachable = list[tuple[str, str]]


def ftps_endpoint(conn_id: str, *, connect_timeout: float | None = None) -> FtpsEndpoint:
    """The FTPS endpoint of an Airflow FTP connection (the ftp provider's lookup)."""
    from airflow.providers.ftp.hooks.ftp import FTPSHook

    from include.cc_intake import ftps

    try:
        conn = FTPSHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException, or no metadata DB
        raise ConfigError(
            f"FTP connection {conn_id!r} cannot be read ({type(exc).__name__}); set "
            f"AIRFLOW_CONN_{conn_id.upper()} or create it (Admin > Connections)"
        ) from None
    extra = conn.extra_dejson
    if not conn.host:
        raise ConfigError(f"FTP connection {conn_id!r} has no host")
    return ftps.FtpsEndpoint(
        host=conn.host,
        port=int(conn.port or ftps.DEFAULT_PORT),
        login=conn.login or "anonymous",
        password=conn.password or "",
        ca_file=str(extra["ca_file"]) if extra.get("ca_file") else None,
        cert_sha256=str(extra["cert_sha256"]) if extra.get("cert_sha256") else None,
        name=conn_id,
        connect_timeout=connect_timeout or ftps.CONNECT_TIMEOUT,
    )


@contextlib.asynccontextmanager
async def open_ftps(
    provider: ProviderConfig,
    day: dt.date,
    *,
    conn_id: str | None = None,
    connect_timeout: float | None = None,
) -> AsyncIterator[RemoteSource]:
    """One verified, logged-in FTPS session (more are opened for parallel transfers)."""
    from include.cc_intake import ftps

    conn_id = conn_id or provider.recordings.conn_id
    endpoint = ftps_endpoint(conn_id, connect_timeout=connect_timeout)
    where = f"{provider.id} {day}"

    def open_session() -> ftps.FtpsSession:
        return ftps.connect(endpoint, where=where, provider=provider.id, day=day)

    session = await asyncio.to_thread(open_session)
    source = ftps.FtpsSource(session, open_session, endpoint=conn_id)
    try:
        yield source
    finally:
        await source.aclose()


@contextlib.asynccontextmanager
async def _open_sftp_source(
    provider: ProviderConfig, day: dt.date, *, conn_id: str, connect_timeout: float | None
) -> AsyncIterator[RemoteSource]:
    from include.cc_intake.airflow.sftp import open_sftp
    from include.cc_intake.recordings import SftpSource

    async with open_sftp(provider, day, conn_id=conn_id, connect_timeout=connect_timeout) as sftp:
        # Further sessions of a many-file day go to the endpoint that answered (#15).
        source = SftpSource(
            sftp, endpoint=conn_id, open_session=lambda: open_sftp(provider, day, conn_id=conn_id)
        )
        try:
            yield source
        finally:
            await source.aclose()  # further sessions closed after the manifest (recordings.py)


def _opener(
    provider: ProviderConfig,
) -> Callable[..., contextlib.AbstractAsyncContextManager[RemoteSource]]:
    return open_ftps if provider.recordings.protocol == "ftps" else _open_sftp_source


@contextlib.asynccontextmanager
async def open_remote(
    provider: ProviderConfig,
    day: dt.date,
    *,
    announce: Callable[[ProviderConfig, dt.date, str, Unreachable], None] | None = None,
) -> AsyncIterator[RemoteSource]:
    """The first of the provider's endpoints that answers and verifies.

    A host key or certificate mismatch raises at once (the next endpoints untouched); an
    endpoint that does not answer (refused, timed out, lost) passes to the next one. With
    every endpoint down, a :class:`RemoteError` names each and why. When a backup serves the
    day, ``announce`` (default :func:`announce_backup`) is told which and why.
    """
    ids = provider.recordings.conn_ids
    timeout = CONNECT_TIMEOUT_S if len(ids) > 1 else None
    opener = _opener(provider)
    unreachable: Unreachable = []
    async with contextlib.AsyncExitStack() as stack:
        source: RemoteSource | None = None
        for conn_id in ids:
            try:
                source = await stack.enter_async_context(
                    opener(provider, day, conn_id=conn_id, connect_timeout=timeout)
                )
            except HostKeyError:
                raise  # never a reason to try another endpoint
            except RemoteError as exc:
                if len(ids) == 1:
                    raise
                log.warning("%s %s: endpoint %r did not answer: %s", provider.id, day, conn_id, exc)
                unreachable.append((conn_id, str(exc)))
                continue
            break
        if source is None:
            tried = "; ".join(f"{conn_id}: {error}" for conn_id, error in unreachable)
            raise RemoteError(
                f"{provider.id} {day}: none of the {len(ids)} endpoints answered ({tried})",
                provider=provider.id,
                day=day,
            )
        if unreachable:
            log.warning(
                "%s %s: served by the backup endpoint %r (%s did not answer)",
                provider.id,
                day,
                source.endpoint,
                ", ".join(conn_id for conn_id, _ in unreachable),
            )
            try:
                await asyncio.to_thread(
                    announce or announce_backup, provider, day, source.endpoint, unreachable
                )
            except Exception as exc:  # the notice must never fail the day's work
                log.error("%s %s: backup notice not sent: %s", provider.id, day, exc)
        yield source


def backup_marker(root: Path, provider_id: str, day: dt.date) -> Path:
    """The once-a-day marker of the backup notice (outside the proof folder)."""
    return root / "endpoints" / provider_id / f"{day.isoformat()}.primary-unreachable"


def announce_backup(
    provider: ProviderConfig, day: dt.date, served_by: str, unreachable: Sequence[tuple[str, str]]
) -> bool:
    """E-mail the operators that a backup serves the day, once per provider-day.

    The marker is created exclusively before sending: two tasks of the day racing send one
    e-mail. Returns whether this call sent (or queued) it.
    """
    from include.cc_intake import messages
    from include.cc_intake.airflow.delivery import deliver
    from include.cc_intake.constants import dag_id_of
    from include.cc_intake.layout import data_root, make_dirs

    root = data_root()
    marker = backup_marker(root, provider.id, day)
    make_dirs(marker.parent, stop_at=root)
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as out:
        json.dump(
            {
                "served_by": served_by,
                "unreachable": [list(pair) for pair in unreachable],
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            },
            out,
        )
    email = messages.primary_unreachable(
        provider_id=provider.id,
        provider_name=provider.name,
        day=day,
        served_by=served_by,
        unreachable=list(unreachable),
        protocol=provider.recordings.protocol,
    )
    deliver(email, provider.alert_emails, dag_id=dag_id_of(provider.id), day=day)
    return True


async def read_report(source: RemoteSource, provider: ProviderConfig, day: dt.date) -> bytes | None:
    """The day's report bytes over the same protocol, or None while it is not published."""
    from include.cc_intake.naming import render_folder

    return await source.read_file(render_folder(provider.daily_report.path, day))
