"""The copy's pipeline across files (issue #15): opens sent ahead, closes not awaited, more
files at once when they are small. Every file still lands whole, hashed, under its final name;
a file that vanishes after the listing fails alone."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import asyncssh
import pytest

from include.cc_intake.config import RecordingsConfig
from include.cc_intake.naming import RemoteEntry
from include.cc_intake.transfer import (
    MAX_FILES_AT_ONCE,
    READ_BLOCK,
    CopyJob,
    CopyOutcome,
    _files_at_once,
    copy_all,
)
from tests.integration.servers import ServerHandle

pytestmark = pytest.mark.integration


def seed(server: ServerHandle, count: int, size: int) -> tuple[list[CopyJob], dict[str, bytes]]:
    folder = server.files / "many"
    folder.mkdir()
    contents: dict[str, bytes] = {}
    jobs = []
    for i in range(count):
        name = f"f{i:03d}.wav"
        contents[name] = os.urandom(size + i)  # sizes differ: a mix-up would show
        path = folder / name
        path.write_bytes(contents[name])
        entry = RemoteEntry(
            "ENTRANTS",
            name,
            server.remote(f"/many/{name}"),
            size + i,
            int(path.stat().st_mtime),
            "file",
        )
        jobs.append(CopyJob(entry=entry, final=server.files.parent / "landed" / name))
    return jobs, contents


def run(server: ServerHandle, jobs: list[CopyJob], max_parallel: int) -> list[CopyOutcome]:
    async def go() -> list[CopyOutcome]:
        async with server.sftp() as sftp:
            return await copy_all(
                sftp, jobs, token="pipe", root=server.files.parent, max_parallel=max_parallel
            )

    return asyncio.run(go())


def test_many_small_files_land_whole_and_hashed(sftp_server: ServerHandle) -> None:
    jobs, contents = seed(sftp_server, 90, 3_000)
    # Small files: more at once than max_parallel (the session's window), all opened ahead.
    assert _files_at_once(jobs, 2) > 2
    outcomes = run(sftp_server, jobs, max_parallel=2)
    assert sorted(o.job.entry.rel_name for o in outcomes) == sorted(contents)
    for outcome in outcomes:
        assert outcome.ok, outcome.error
        data = outcome.job.final.read_bytes()
        assert data == contents[outcome.job.entry.rel_name]
        assert outcome.sha256 == hashlib.sha256(data).hexdigest()
    landed = outcomes[0].job.final.parent
    assert sorted(p.name for p in landed.iterdir()) == sorted(contents)  # no temporary left


def test_a_file_gone_after_the_listing_fails_alone(sftp_server: ServerHandle) -> None:
    jobs, contents = seed(sftp_server, 12, 2_000)
    gone = jobs[5].entry.rel_name
    (sftp_server.files / "many" / gone).unlink()  # listed, then deleted before its open
    outcomes = {o.job.entry.rel_name: o for o in run(sftp_server, jobs, max_parallel=3)}
    assert len(outcomes) == 12
    assert not outcomes[gone].ok and "SFTPNoSuchFile" in outcomes[gone].error
    assert not jobs[5].final.exists()
    for name, outcome in outcomes.items():
        if name != gone:
            assert outcome.ok, outcome.error
            assert outcome.job.final.read_bytes() == contents[name]


def test_large_files_keep_max_parallel() -> None:
    def job(size: int) -> CopyJob:
        entry = RemoteEntry("ENTRANTS", "a.wav", "/a.wav", size, 0, "file")
        return CopyJob(entry=entry, final=Path("/nowhere/a.wav"))

    assert _files_at_once([job(20_000_000)] * 50, 4) == 4
    assert _files_at_once([job(50_000)] * 400, 4) > 4
    assert _files_at_once([job(50_000)] * 3, 4) == 3  # never more than the files
    assert _files_at_once([job(10)] * 1000, 4) == MAX_FILES_AT_ONCE


class Counting:
    """An SFTP session that counts the files opened through it."""

    def __init__(self, sftp: object) -> None:
        self._sftp = sftp
        self.opened = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._sftp, name)

    def open(self, *args: object, **kwargs: object) -> object:
        self.opened += 1
        return self._sftp.open(*args, **kwargs)  # type: ignore[attr-defined]


def test_a_second_session_joins_and_takes_its_share(sftp_server: ServerHandle) -> None:
    jobs, contents = seed(sftp_server, 80, 3_000)

    async def go() -> tuple[list[CopyOutcome], Counting, Counting]:
        async with sftp_server.sftp() as one, sftp_server.sftp() as two:
            first, second = Counting(one), Counting(two)

            async def later() -> Counting:
                # Open one loop turn after the copy started: the first session has taken no
                # more than its window of files (32 of 80) by then, whatever the speed.
                await asyncio.sleep(0)
                return second

            outcomes = await copy_all(
                first,  # type: ignore[arg-type]
                jobs,
                token="pipe",
                root=sftp_server.files.parent,
                max_parallel=2,
                more_sessions=[later()],  # type: ignore[list-item]
            )
            return outcomes, first, second

    outcomes, first, second = asyncio.run(go())
    assert first.opened > 0 and second.opened > 0
    assert first.opened + second.opened == 80  # each file opened once, by one session
    assert sorted(o.job.entry.rel_name for o in outcomes) == sorted(contents)
    for outcome in outcomes:
        assert outcome.ok, outcome.error
        assert outcome.job.final.read_bytes() == contents[outcome.job.entry.rel_name]


def test_a_session_that_fails_to_open_leaves_the_copy_to_the_first(
    sftp_server: ServerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    jobs, _ = seed(sftp_server, 20, 2_000)

    async def refused() -> object:
        raise OSError("connection refused")

    async def go() -> list[CopyOutcome]:
        async with sftp_server.sftp() as sftp:
            return await copy_all(
                sftp,
                jobs,
                token="pipe",
                root=sftp_server.files.parent,
                more_sessions=[refused()],  # type: ignore[list-item]
            )

    outcomes = asyncio.run(go())
    assert all(o.ok for o in outcomes) and len(outcomes) == 20
    assert "a further SFTP session could not be opened: OSError: connection refused" in caplog.text


def test_connections_default_to_two_on_many_files_only() -> None:
    from include.cc_intake.recordings import MANY_FILES, connections_for
    from tests.helpers import parse_provider, provider_dict

    def cfg(**recordings: object) -> RecordingsConfig:
        data = provider_dict()
        data["recordings"].update(recordings)
        return parse_provider(data, source=Path("t.yaml")).recordings

    assert connections_for(cfg(), MANY_FILES) == 2
    assert connections_for(cfg(), MANY_FILES - 1) == 1
    assert connections_for(cfg(connections=3), 10) == 3
    assert connections_for(cfg(connections=3), 2) == 2  # never more sessions than files
    assert connections_for(cfg(connections=1), 10_000) == 1


def test_a_file_that_grew_or_shrank_after_the_listing_fails_alone(
    sftp_server: ServerHandle,
) -> None:
    """No stat per file: the last read asks one byte past the listed size instead."""
    jobs, contents = seed(sftp_server, 3, 40_000)
    grew, shrank, same = (sftp_server.files / "many" / j.entry.rel_name for j in jobs)
    grew.write_bytes(contents[grew.name] + b"more")
    shrank.write_bytes(contents[shrank.name][:-10])
    outcomes = {o.job.entry.rel_name: o for o in run(sftp_server, jobs, max_parallel=3)}
    assert "changed during the copy (longer than the 40000 bytes listed)" in (
        outcomes[grew.name].error
    )
    assert "remote file ended at byte 39991" in outcomes[shrank.name].error
    assert outcomes[same.name].ok
    assert not jobs[0].final.exists() and not jobs[1].final.exists()
    assert jobs[2].final.read_bytes() == contents[same.name]


def test_sizes_at_the_edges_of_a_read_request_land_whole(sftp_server: ServerHandle) -> None:
    async def block_size() -> int:
        async with sftp_server.sftp() as sftp:
            return min(READ_BLOCK, sftp.limits.max_read_len or READ_BLOCK)

    block = asyncio.run(block_size())
    folder = sftp_server.files / "edges"
    folder.mkdir()
    jobs, contents = [], {}
    for size in (0, 1, block - 1, block, block + 1, 2 * block):
        name = f"s{size}.wav"
        contents[name] = os.urandom(size)
        (folder / name).write_bytes(contents[name])
        entry = RemoteEntry(
            "ENTRANTS",
            name,
            sftp_server.remote(f"/edges/{name}"),
            size,
            int((folder / name).stat().st_mtime),
            "file",
        )
        jobs.append(CopyJob(entry=entry, final=sftp_server.files.parent / "landed" / name))
    for outcome in run(sftp_server, jobs, max_parallel=2):
        assert outcome.ok, outcome.error
        assert outcome.job.final.read_bytes() == contents[outcome.job.entry.rel_name]


def test_further_sessions_close_after_the_copy_returns(sftp_server: ServerHandle) -> None:
    """Their goodbyes (a round trip) are not waited for by ``copy``: ``aclose`` waits for them.

    The further session's exit blocks on an event the test sets only after ``copy`` returned:
    had ``copy`` waited for it, the test would hang (and fail on its timeout).
    """
    import contextlib
    from collections.abc import AsyncIterator

    from include.cc_intake.listing import BACKGROUND
    from include.cc_intake.recordings import SftpSource

    jobs, contents = seed(sftp_server, 60, 2_000)
    states: list[str] = []

    async def go() -> list[CopyOutcome]:
        release = asyncio.Event()

        async with sftp_server.sftp() as sftp, sftp_server.sftp() as two:

            @contextlib.asynccontextmanager
            async def further() -> AsyncIterator[asyncssh.SFTPClient]:
                # Already connected: it joins at once, so it takes files whatever the speed.
                states.append("open")
                yield two
                await release.wait()
                states.append("closed")

            source = SftpSource(sftp, open_session=further)
            outcomes = await asyncio.wait_for(
                source.copy(
                    jobs,
                    token="pipe",
                    root=sftp_server.files.parent,
                    max_parallel=2,
                    bytes_per_s=None,
                    on_progress=lambda _: None,
                    connections=2,
                ),
                timeout=60,
            )
            assert "closed" not in states  # copy returned before the further session's close
            release.set()
            await source.aclose()
            assert states[-1] == "closed"
            # The last handles' closes were sent, not waited for: they are answered anyway.
            await asyncio.gather(*BACKGROUND)
            assert not BACKGROUND
            return outcomes

    outcomes = asyncio.run(go())
    assert states == ["open", "closed"]
    assert sorted(o.job.entry.rel_name for o in outcomes if o.ok) == sorted(contents)


def test_the_progress_line_comes_while_the_copy_runs_and_once_at_its_end(
    sftp_server: ServerHandle,
) -> None:
    """The operator's progress line: every ``progress_every`` seconds during the copy, then a
    last one counting every file."""
    jobs, _ = seed(sftp_server, 6, 20_000)
    lines: list[str] = []

    async def go() -> list[CopyOutcome]:
        async with sftp_server.sftp() as sftp:
            return await copy_all(
                sftp,
                jobs,
                token="pipe",
                root=sftp_server.files.parent,
                max_parallel=2,
                bytes_per_s=200_000,  # 120 kB at 200 kB/s: about 0.6 s
                on_progress=lines.append,
                progress_every=0.1,
            )

    outcomes = asyncio.run(go())
    assert all(o.ok for o in outcomes)
    assert len(lines) >= 3, lines  # at least two while copying, and the last one
    assert all(line.startswith("progress: ") for line in lines)
    assert lines[-1].startswith("progress: 6/6 files, 0.1/0.1 MB")
