"""A folder's listing over a real server (issue #15, WAN): its directory reads are pipelined
on one handle (several READDIR requests in flight, not one per round trip), and every entry
still comes back once, with its size and mtime, whatever the number of answers it takes.

The pipelining goes through asyncssh's private request layer (``SFTPClient._handler``,
asyncssh pinned in constraints.txt): the first test fails if an asyncssh upgrade changes it.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from include.cc_intake import listing
from include.cc_intake.listing import READDIR_AHEAD, dir_requests, list_folder, read_dir
from tests.integration.servers import ServerHandle

pytestmark = pytest.mark.integration

# More than three answers from OpenSSH (100 names each) and from asyncssh's server (128).
MANY = 450


def seed(server: ServerHandle, count: int) -> dict[str, tuple[int, int]]:
    folder = server.files / "day"
    folder.mkdir()
    seen = {}
    for i in range(count):
        path = folder / f"r{i:04d}.wav"
        path.write_bytes(b"x" * (i % 7 + 1))
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))
        seen[path.name] = (path.stat().st_size, 1_700_000_000 + i)
    return seen


class InFlight:
    """A spy on the session's READDIR requests: how many were in flight at most."""

    def __init__(self, handler: Any) -> None:
        self.readdir = handler.readdir
        self.now = 0
        self.most = 0
        self.sent = 0

    async def __call__(self, handle: bytes) -> Any:
        self.now += 1
        self.sent += 1
        self.most = max(self.most, self.now)
        try:
            return await self.readdir(handle)
        finally:
            self.now -= 1


@pytest.mark.parametrize("many", [MANY, 1_100])  # 1 100: more answers than the first batch
def test_a_folder_of_many_entries_is_read_whole_with_pipelined_requests(
    sftp_server: ServerHandle, many: int
) -> None:
    expected = seed(sftp_server, many)

    async def go() -> tuple[list[Any], InFlight]:
        async with sftp_server.sftp() as sftp:
            handler = dir_requests(sftp)
            # asyncssh's private request layer as pinned: if this fails after an upgrade, the
            # listing has fallen back to one READDIR per round trip (listing.dir_requests).
            assert handler is not None
            spy = InFlight(handler)
            handler.readdir = spy
            entries = await list_folder(sftp, sftp_server.remote("/day"), "ENTRANTS")
            # The folder's close was sent, not waited for: it is answered before the session ends.
            await asyncio.gather(*listing.BACKGROUND)
            return entries or [], spy

    entries, spy = asyncio.run(go())
    assert {e.rel_name: (e.size, e.mtime) for e in entries} == expected
    assert len(entries) == many  # each name once
    assert all(e.kind == "file" and e.direction == "ENTRANTS" for e in entries)
    assert spy.most >= READDIR_AHEAD  # requests sent back to back, not one per answer
    assert not listing.BACKGROUND


@pytest.mark.parametrize("count", [0, 1, 100])
def test_small_and_empty_folders(sftp_server: ServerHandle, count: int) -> None:
    expected = seed(sftp_server, count)

    async def go() -> tuple[list[Any], list[Any] | None]:
        async with sftp_server.sftp() as sftp:
            names = await read_dir(sftp, sftp_server.remote("/day"))
            missing = await list_folder(sftp, sftp_server.remote("/nothere"), "ENTRANTS")
            return names, missing

    names, missing = asyncio.run(go())
    assert sorted(n.filename for n in names if n.filename not in (".", "..")) == sorted(expected)
    assert all(isinstance(n.filename, str) for n in names)
    assert missing is None


def test_without_the_request_layer_the_public_readdir_is_used(sftp_server: ServerHandle) -> None:
    expected = seed(sftp_server, 150)

    class Public:
        """Only the public client API, as an asyncssh without ``_handler`` would offer."""

        def __init__(self, sftp: Any) -> None:
            self.readdir = sftp.readdir

    async def go() -> list[Any]:
        async with sftp_server.sftp() as sftp:
            public = Public(sftp)
            assert dir_requests(public) is None  # type: ignore[arg-type]
            return await read_dir(public, sftp_server.remote("/day"))  # type: ignore[arg-type]

    names = asyncio.run(go())
    assert sorted(n.filename for n in names if n.filename not in (".", "..")) == sorted(expected)
