"""Resuming a copy against real SFTP servers: a kept `.part` is checked before it is trusted.

Item 2 of issue #10: the temporary name carries the remote size and mtime, but a re-delivery
with the same size and a preserved mtime (`cp -p`, `rsync -t`, constant-bitrate WAV) would
be spliced onto the old version's bytes. Each test plants the `.part` a cut copy leaves
(first part of version A, under the name the production rule gives it), changes the remote
or not, and copies again with the same run token, as a task retry does.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
from pathlib import Path
from typing import Any

import pytest

from include.cc_intake.listing import list_folder
from include.cc_intake.manifest import read_manifest
from include.cc_intake.transfer import CopyJob, CopyOutcome, copy_all
from tests.integration.servers import ServerHandle
from tests.integration.test_copy_day import OLD, landed, make_provider, put, run_copy

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
FOLDER = "exports/inbound/20261125"
# The caller's number as call id: the restart warning must show it masked.
PHONE = "+2250701020304"
NAME = f"20261125_080102_AG01_{PHONE}.wav"
REL = f"{FOLDER}/{NAME}"
TOKEN = "run-1"


class Pinned(random.Random):
    """Draws every sampled range at ``at``: a test decides where the random spots fall."""

    def __init__(self, at: int) -> None:
        super().__init__(0)
        self.at = at

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        bound = start if stop is None else stop
        assert 0 <= self.at < bound, (self.at, bound)
        return self.at


async def _job(server: ServerHandle, root: Path) -> CopyJob:
    """The remote file's job, from the server's own listing, as copy_day builds it."""
    async with server.sftp() as sftp:
        entries = await list_folder(sftp, server.remote(f"/{FOLDER}"), "ENTRANTS")
    assert entries is not None
    [entry] = [e for e in entries if e.rel_name == NAME]
    return CopyJob(entry=entry, final=landed(root, REL))


def plant_part(server: ServerHandle, root: Path, kept: bytes) -> Path:
    """Leave ``kept`` where a cut copy of the current remote file under ``TOKEN`` leaves it."""
    job = asyncio.run(_job(server, root))
    tmp = job.tmp(TOKEN)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(kept)
    return tmp


def copy_once(server: ServerHandle, root: Path, rng: random.Random | None = None) -> CopyOutcome:
    async def go() -> list[CopyOutcome]:
        job = await _job(server, root)
        async with server.sftp() as sftp:
            # Without a pinned rng, the call is the production one (and today's main's).
            pinned: dict[str, Any] = {} if rng is None else {"rng": rng}
            return await copy_all(sftp, [job], token=TOKEN, root=root, **pinned)

    [outcome] = asyncio.run(go())
    assert outcome.ok, outcome.error
    return outcome


def restarts(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "include.cc_intake.transfer" and r.levelno == logging.WARNING
    ]


def test_item2_resume_of_a_replaced_version_restarts_from_zero(
    sftp_server: ServerHandle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    version_a = os.urandom(3 * MIB)
    version_b = os.urandom(len(version_a))
    remote = put(sftp_server, REL, version_a)
    root = tmp_path / "data"
    tmp = plant_part(sftp_server, root, version_a[: len(version_a) // 2])
    # The provider re-delivers: same size, mtime preserved (`cp -p`).
    put(sftp_server, REL, version_b, mtime=OLD)
    assert int(remote.stat().st_mtime) == int(OLD)

    caplog.set_level(logging.INFO, logger="include.cc_intake.transfer")
    summary = run_copy(sftp_server, make_provider(sftp_server), root, run_id=TOKEN)

    assert summary.failures == []
    final = landed(root, REL)
    assert final.read_bytes() == version_b
    [row] = read_manifest(root / "manifests/acme_abidjan/2026-11-25.csv", ["call_id"])
    assert row.status == "copied"
    assert row.sha256 == hashlib.sha256(version_b).hexdigest()
    assert not tmp.exists()
    [warning] = restarts(caplog)
    assert "restarting from byte 0" in warning
    assert "bytes 0-65535 (first at byte " in warning  # the head differs first
    assert f"resuming at byte {len(version_a) // 2} of {len(version_a)}" in warning
    assert "+225 ******04" in warning
    assert all(PHONE not in r.getMessage() for r in caplog.records)
    assert not any(r.getMessage().startswith("resuming ") for r in caplog.records)


@pytest.mark.parametrize("kept", ["half", "all"])
def test_item2_unchanged_file_still_resumes(
    sftp_server: ServerHandle, tmp_path: Path, caplog: pytest.LogCaptureFixture, kept: str
) -> None:
    content = os.urandom(3 * MIB + 12_345)
    put(sftp_server, REL, content)
    root = tmp_path / "data"
    offset = len(content) // 2 if kept == "half" else len(content)
    plant_part(sftp_server, root, content[:offset])

    caplog.set_level(logging.INFO, logger="include.cc_intake.transfer")
    outcome = copy_once(sftp_server, root)

    assert outcome.resumed_from == offset
    final = landed(root, REL)
    assert final.read_bytes() == content
    # The resumed prefix is hashed from the disk: the SHA-256 is the landed file's.
    assert outcome.sha256 == hashlib.sha256(content).hexdigest()
    assert restarts(caplog) == []


@pytest.mark.parametrize(
    ("where", "changed_at", "spots_at"),
    [
        # The head and the tail before the resume point are always checked: the random spots
        # are pinned away from the change, so only those can catch it.
        pytest.param("head", 100, 1 * MIB, id="head"),
        pytest.param("tail", 3 * MIB - 1_000, 1 * MIB, id="tail-before-offset"),
        # A change in the middle is caught only where a random spot falls: pinned onto it.
        pytest.param("sampled", 1 * MIB + 12_345, 1 * MIB, id="sampled-range"),
    ],
)
def test_item2_resume_check_catches_a_difference_in_each_checked_range(
    sftp_server: ServerHandle,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    where: str,
    changed_at: int,
    spots_at: int,
) -> None:
    offset = 3 * MIB
    version_a = os.urandom(4 * MIB)
    version_b = bytearray(version_a)
    version_b[changed_at : changed_at + 4] = bytes(b ^ 0xFF for b in version_a[changed_at:][:4])
    put(sftp_server, REL, version_a)
    root = tmp_path / "data"
    plant_part(sftp_server, root, version_a[:offset])
    put(sftp_server, REL, bytes(version_b), mtime=OLD)

    caplog.set_level(logging.INFO, logger="include.cc_intake.transfer")
    outcome = copy_once(sftp_server, root, rng=Pinned(spots_at))

    assert outcome.resumed_from == 0
    assert landed(root, REL).read_bytes() == bytes(version_b)
    assert outcome.sha256 == hashlib.sha256(version_b).hexdigest()
    [warning] = restarts(caplog)
    first = {
        "head": (0, 64 * 1024 - 1),
        "tail": (offset - MIB, offset - 1),
        "sampled": (spots_at, spots_at + 64 * 1024 - 1),
    }[where]
    assert f"bytes {first[0]}-{first[1]} (first at byte {changed_at})" in warning
