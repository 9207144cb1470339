"""The copy's pipeline across files (issue #15): opens sent ahead, closes not awaited, more
files at once when they are small. Every file still lands whole, hashed, under its final name;
a file that vanishes after the listing fails alone."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from include.cc_intake.naming import RemoteEntry
from include.cc_intake.transfer import (
    MAX_FILES_AT_ONCE,
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
