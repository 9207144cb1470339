"""Listing a remote folder over SFTP: one pipelined directory read per folder.

Attributes come with the names (no ``stat`` per entry; symlinks not followed). The READDIR
requests of a folder are sent several at a time on its handle (``read_dir``): a round trip per
100 names was most of a listing's time on a long link (docs/benchmarks.md, issue #15).
"""

from __future__ import annotations

import asyncio
import logging
import stat
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from include.cc_intake.naming import EntryKind, RemoteEntry

if TYPE_CHECKING:
    import asyncssh

log = logging.getLogger(__name__)


def _kind(mode: int | None) -> EntryKind:
    if mode is None:
        return "other"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


# READDIR requests a folder read sends at once: first this many (OpenSSH sends at most 100
# names per answer), then twice as many each time all of them brought names, at most
# READDIR_MAX_AHEAD.
READDIR_AHEAD = 8
READDIR_MAX_AHEAD = 64
# Requests sent and not waited for (a folder's close here, a file's in transfer._Closer):
# referenced until answered.
BACKGROUND: set[asyncio.Future[Any]] = set()


def in_background(request: Awaitable[Any]) -> None:
    """Send a request whose answer nobody waits for; a failure is only logged (debug)."""

    def done(task: asyncio.Future[Any]) -> None:
        BACKGROUND.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("a request nobody waits for failed: %s", task.exception())

    task = asyncio.ensure_future(request)
    BACKGROUND.add(task)
    task.add_done_callback(done)


def dir_requests(sftp: asyncssh.SFTPClient) -> Any | None:
    """asyncssh's per-session request layer, when it offers opendir/readdir/close.

    ``SFTPClient._handler`` is private: its ``opendir(path) -> handle``, ``readdir(handle) ->
    (names, at_end)`` (``SFTPEOFError`` at the end) and ``close(handle)`` are those of asyncssh
    2.24.1, pinned in constraints.txt; ``tests/integration/test_transfer_listing.py`` fails if
    they change. Without them the listing falls back to the public ``readdir`` (one request
    per round trip).
    """
    handler = getattr(sftp, "_handler", None)
    if all(callable(getattr(handler, name, None)) for name in ("opendir", "readdir", "close")):
        return handler
    return None


async def read_dir(sftp: asyncssh.SFTPClient, path: str) -> list[asyncssh.SFTPName]:
    """Every name of a remote folder, its directory reads pipelined on one handle.

    ``SFTPClient.readdir`` waits for each READDIR answer before it sends the next one: a
    round trip per 100 names from OpenSSH, then one for the end and one for the close. Here
    ``READDIR_AHEAD`` requests go out at once, and a batch twice as large (at most
    ``READDIR_MAX_AHEAD``) only once every request sent has brought names: a request sent
    while earlier ones are unanswered could only add a round trip at the end of the folder.
    The server answers requests on a handle in order (SFTP servers handle a handle's reads one
    after another: OpenSSH and asyncssh's do), so the first end-of-directory answer means the
    rest will be too; every request sent is still waited for, and its names kept. The
    folder's close is not waited for. Raises ``SFTPNoSuchFile`` as ``readdir`` does.
    """
    import asyncssh

    handler = dir_requests(sftp)
    names: list[asyncssh.SFTPName] = []
    if handler is None:
        return list(await sftp.readdir(path))
    handle = await handler.opendir(sftp.compose_path(path))
    pending: deque[asyncio.Future[Any]] = deque()
    ended = False

    def ask(count: int) -> None:
        for _ in range(count):
            pending.append(asyncio.ensure_future(handler.readdir(handle)))

    batch_size = READDIR_AHEAD
    try:
        ask(batch_size)
        while pending:
            try:
                batch, at_end = await pending.popleft()
            except asyncssh.SFTPEOFError:
                ended = True
                continue
            for name in batch:
                if isinstance(name.filename, bytes):
                    name.filename = sftp.decode(name.filename)
            names.extend(batch)
            ended = ended or at_end or not batch
            if not ended and not pending:  # all answered with names: the folder goes on
                batch_size = min(2 * batch_size, READDIR_MAX_AHEAD)
                ask(batch_size)
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        in_background(handler.close(handle))
    return names


async def list_folder(
    sftp: asyncssh.SFTPClient,
    folder: str,
    direction: str,
    *,
    recursive: bool = False,
) -> list[RemoteEntry] | None:
    """One pipelined directory read per folder (``read_dir``: attributes come with the names;
    symlinks not followed).

    Returns None when the folder does not exist.
    """
    import asyncssh

    entries: list[RemoteEntry] = []
    pending: list[tuple[str, str]] = [(folder.rstrip("/") or "/", "")]

    def convert(path: str, prefix: str, names: list[asyncssh.SFTPName]) -> list[RemoteEntry]:
        found = []
        for name in names:
            raw = name.filename
            filename = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            if filename in (".", ".."):
                continue
            rel = f"{prefix}{filename}"
            kind = _kind(name.attrs.permissions)
            remote = f"{path.rstrip('/')}/{filename}"
            if kind == "dir" and recursive:
                pending.append((remote, f"{rel}/"))
                continue
            found.append(
                RemoteEntry(
                    direction=direction,
                    rel_name=rel,
                    remote_path=remote,
                    size=int(name.attrs.size or 0),
                    mtime=int(name.attrs.mtime or 0),
                    kind=kind,
                )
            )
        return found

    while pending:
        path, prefix = pending.pop()
        try:
            names = await read_dir(sftp, path)
        except asyncssh.SFTPNoSuchFile:
            if not prefix:
                return None
            continue
        entries.extend(convert(path, prefix, names))
    return entries
