"""Listing and copying the day's recordings over one SFTP session (asyncssh).

Why asyncssh and not paramiko: asyncssh pipelines many read requests per file, which is what
fills a high-latency link (measured in docs/benchmarks.md). The Airflow layer resolves the
connection and the host key through the sftp provider's ``SFTPHookAsync`` and hands us the
open ``asyncssh.SFTPClient``; nothing here knows about Airflow.

A copy streams into a temporary sibling of the final file, hashing on the way, and resumes
from the temporary file's size when the remote file is unchanged (its size and mtime are part
of the temporary name). The rename happens only after size and SHA-256 are known.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from include.cc_intake.errors import TransferError
from include.cc_intake.layout import FILE_MODE, make_dirs, tmp_path_for
from include.cc_intake.naming import EntryKind, RemoteEntry

if TYPE_CHECKING:
    import asyncssh

log = logging.getLogger(__name__)

CHUNK = 4 * 1024 * 1024
HEAD_BYTES = 64 * 1024
PROGRESS_EVERY = 10.0


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


async def list_folder(
    sftp: asyncssh.SFTPClient, folder: str, direction: str, *, recursive: bool = False
) -> list[RemoteEntry] | None:
    """One directory read per folder (attributes come with the names; symlinks not followed).

    Returns None when the folder does not exist.
    """
    import asyncssh

    entries: list[RemoteEntry] = []
    pending: list[tuple[str, str]] = [(folder.rstrip("/") or "/", "")]
    while pending:
        path, prefix = pending.pop()
        try:
            names = await sftp.readdir(path)
        except asyncssh.SFTPNoSuchFile:
            if not prefix:
                return None
            continue
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
            entries.append(
                RemoteEntry(
                    direction=direction,
                    rel_name=rel,
                    remote_path=remote,
                    size=int(name.attrs.size or 0),
                    mtime=int(name.attrs.mtime or 0),
                    kind=kind,
                )
            )
    return entries


class RateLimiter:
    """A shared byte budget: callers sleep so the average never exceeds ``bytes_per_s``."""

    def __init__(self, bytes_per_s: int | None) -> None:
        self.rate = bytes_per_s
        self._next = time.monotonic()

    @property
    def chunk(self) -> int:
        # Small reads under a cap keep the link smooth instead of bursting 4 MB at a time.
        return CHUNK if not self.rate else max(32 * 1024, min(CHUNK, self.rate // 4))

    async def consume(self, nbytes: int) -> None:
        if not self.rate:
            return
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + nbytes / self.rate
        delay = self._next - now
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class Progress:
    """Counters behind the periodic progress line an operator watches in the task log."""

    files_total: int
    bytes_total: int
    files_done: int = 0
    bytes_done: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.bytes_done / elapsed
        left = max(self.bytes_total - self.bytes_done, 0)
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        return (
            f"progress: {self.files_done}/{self.files_total} files, "
            f"{self.bytes_done / 1e6:.1f}/{self.bytes_total / 1e6:.1f} MB, "
            f"{rate * 8 / 1e6:.2f} Mbit/s, ETA {eta}"
        )


@dataclass(frozen=True)
class CopyJob:
    entry: RemoteEntry
    final: Path

    def tmp(self, token: str) -> Path:
        return tmp_path_for(self.final, token, tag=f"{self.entry.size}-{self.entry.mtime}")


@dataclass(frozen=True)
class CopyOutcome:
    job: CopyJob
    sha256: str = ""
    copied_at: dt.datetime | None = None
    resumed_from: int = 0
    head: bytes = b""
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def _hash_existing(path: Path, size: int) -> tuple[hashlib._Hash, bytes]:
    digest = hashlib.sha256()
    head = b""
    with path.open("rb") as handle:
        remaining = size
        while remaining:
            block = handle.read(min(CHUNK, remaining))
            if not block:
                break
            if len(head) < HEAD_BYTES:
                head += block[: HEAD_BYTES - len(head)]
            digest.update(block)
            remaining -= len(block)
    return digest, head


async def copy_file(
    sftp: asyncssh.SFTPClient,
    job: CopyJob,
    *,
    token: str,
    root: Path,
    limiter: RateLimiter,
    progress: Progress | None = None,
) -> CopyOutcome:
    """Copy one remote file to its final path, resuming a previous temporary file if any."""
    entry = job.entry
    tmp = job.tmp(token)
    make_dirs(job.final.parent, stop_at=root)
    start = 0
    if tmp.exists():
        have = tmp.stat().st_size
        start = have if have <= entry.size else 0
    digest, head = _hash_existing(tmp, start) if start else (hashlib.sha256(), b"")
    if start:
        log.info("resuming %s at byte %d of %d", entry.rel_name, start, entry.size)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.ftruncate(fd, start)
        os.lseek(fd, start, os.SEEK_SET)
        async with sftp.open(entry.remote_path, "rb") as remote:
            offset = start
            step = limiter.chunk

            def request(at: int) -> asyncio.Task[bytes]:
                return asyncio.ensure_future(remote.read(min(step, entry.size - at), at))

            pending = request(offset) if offset < entry.size else None
            while pending is not None:
                block = await pending
                if not block:
                    raise TransferError(
                        f"{entry.remote_path}: remote file ended at byte {offset}, "
                        f"listed as {entry.size} bytes"
                    )
                next_at = offset + len(block)
                pending = request(next_at) if next_at < entry.size else None
                await limiter.consume(len(block))
                digest.update(block)
                if len(head) < HEAD_BYTES:
                    head += block[: HEAD_BYTES - len(head)]
                os.write(fd, block)
                offset = next_at
                if progress is not None:
                    progress.bytes_done += len(block)
            attrs = await remote.stat()
        if attrs.size != entry.size or int(attrs.mtime or 0) != entry.mtime:
            raise TransferError(
                f"{entry.remote_path}: changed during the copy (size {entry.size} -> {attrs.size})"
            )
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    landed = tmp.stat().st_size
    if landed != entry.size:
        raise TransferError(f"{entry.remote_path}: landed {landed} bytes, expected {entry.size}")
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, job.final)
    return CopyOutcome(
        job=job,
        sha256=digest.hexdigest(),
        copied_at=dt.datetime.now(dt.UTC),
        resumed_from=start,
        head=head,
    )


async def copy_all(
    sftp: asyncssh.SFTPClient,
    jobs: Iterable[CopyJob],
    *,
    token: str,
    root: Path,
    max_parallel: int = 4,
    bytes_per_s: int | None = None,
    on_progress: Callable[[str], None] = log.info,
    progress_every: float = PROGRESS_EVERY,
) -> list[CopyOutcome]:
    """Copy every job, ``max_parallel`` at a time over one session; never raises per file.

    A failed file is returned with its error so the caller can record what did land and
    name what did not; its temporary file stays for the retry to resume.
    """
    todo = list(jobs)
    progress = Progress(files_total=len(todo), bytes_total=sum(j.entry.size for j in todo))
    limiter = RateLimiter(bytes_per_s)
    queue: asyncio.Queue[CopyJob] = asyncio.Queue()
    for job in todo:
        queue.put_nowait(job)
    outcomes: list[CopyOutcome] = []

    async def worker() -> None:
        while True:
            try:
                job = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                outcome = await copy_file(
                    sftp, job, token=token, root=root, limiter=limiter, progress=progress
                )
            except Exception as exc:  # recorded per file; the caller decides the task's fate
                outcome = CopyOutcome(job=job, error=f"{type(exc).__name__}: {exc}")
            outcomes.append(outcome)
            progress.files_done += 1

    async def reporter() -> None:
        while True:
            await asyncio.sleep(progress_every)
            on_progress(progress.line())

    ticker = asyncio.ensure_future(reporter())
    try:
        await asyncio.gather(*(worker() for _ in range(max(1, min(max_parallel, len(todo))))))
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    if todo:
        on_progress(progress.line())
    return outcomes
