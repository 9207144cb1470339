"""Copying the day's recordings over SFTP sessions (asyncssh); the listing is ``listing.py``.

Why asyncssh and not paramiko: asyncssh lets us keep many read requests in flight per file,
which is what fills a link with a long round trip (measured in docs/benchmarks.md). The
Airflow layer resolves the connection and the host key through the sftp provider's
``SFTPHookAsync`` and hands us the open ``asyncssh.SFTPClient``; nothing here knows about
Airflow.

How a file travels: a sliding window of read requests (``_pull``) feeds a ``_Sink`` that
hashes and writes each answer into a temporary sibling of the final file. A copy
resumes from that file's size when the remote file is unchanged: its size and mtime are part
of the temporary name, and sampled ranges of the kept bytes must still match the remote's
(``_prefix_matches``), else it starts over. ``copy_all`` then hands finished files to a
``_Lander`` that makes a batch durable at once and renames each onto its final name, while
the next files are fetched. A file appears under its final name only complete, fsynced, with
its SHA-256 known.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import hashlib
import logging
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.cc_intake.audio import HEAD_BYTES
from include.cc_intake.errors import TransferError
from include.cc_intake.layout import FILE_MODE, make_dirs, resume_tag, tmp_path_for
from include.cc_intake.listing import BACKGROUND
from include.cc_intake.naming import RemoteEntry
from include.cc_intake.redact import mask_phone

if TYPE_CHECKING:
    import asyncssh

log = logging.getLogger(__name__)

# Local batch size: re-hashing a resumed prefix.
CHUNK = 4 * 1024 * 1024
# Largest read request we send; OpenSSH answers at most 255 KiB (its limits@openssh.com reply)
# and closes the session on bigger messages, so the server's advertised limit wins when lower.
READ_BLOCK = 256 * 1024
# Bytes one file keeps requested ahead of what it has consumed, with no cap: enough to fill a
# loopback or an 8 Mbit/s link with a few seconds of round trip, small enough for memory.
IN_FLIGHT = 8 * 1024 * 1024
# Bytes the session keeps in flight across files: small files are read more at once (see
# _files_at_once) so that a day of short recordings still fills a link with a long round trip.
SESSION_WINDOW = 2 * 1024 * 1024
MAX_FILES_AT_ONCE = 32
# Bytes an FTPS transfer thread gathers before it hashes and writes them (ftps.py).
HANDOFF = 1024 * 1024
# Bytes written between two starts of the disk's writeback for a large file.
WRITEBACK = 16 * 1024 * 1024
PROGRESS_EVERY = 10.0
# What a resume compares of its temporary file with the remote before trusting it. Size and
# mtime alone do not tell a re-delivery apart (`cp -p`, `rsync -t`, constant-bitrate WAV): the
# head, the stretch the next byte continues, and a few spots drawn anew on every resume.
# About 1.3 MiB read per resume, in one round trip; nothing when a copy starts from zero.
CHECK_HEAD = 64 * 1024
CHECK_TAIL = 1024 * 1024
CHECK_SAMPLE = 64 * 1024
CHECK_SAMPLES = 4
# The OS's randomness: the spots must not be guessable from one resume to the next.
_SPOTS = random.SystemRandom()


class RateLimiter:
    """A shared byte budget: callers sleep so the average never exceeds ``bytes_per_s``."""

    def __init__(self, bytes_per_s: int | None) -> None:
        self.rate = bytes_per_s
        self._next = time.monotonic()

    @property
    def chunk(self) -> int:
        """Size of one read request."""
        # Small requests under a cap keep the link smooth instead of bursting.
        return READ_BLOCK if not self.rate else max(32 * 1024, min(READ_BLOCK, self.rate // 8))

    @property
    def window(self) -> int:
        """Bytes one file may have requested and not yet consumed."""
        # Under a cap, half a second of data per file covers the round trip of any link we
        # serve without letting a burst far above the cap onto it.
        if not self.rate:
            return IN_FLIGHT
        return max(2 * self.chunk, min(IN_FLIGHT, self.rate // 2))

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

    async def report(self, every: float, on_progress: Callable[[str], None]) -> None:
        """Hand ``line()`` to ``on_progress`` every ``every`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(every)
            on_progress(self.line())


@dataclass(frozen=True)
class CopyJob:
    entry: RemoteEntry
    final: Path

    def tmp(self, token: str) -> Path:
        return tmp_path_for(self.final, token, tag=resume_tag(self.entry.size, self.entry.mtime))


@dataclass(frozen=True)
class CopyOutcome:
    job: CopyJob
    sha256: str = ""
    copied_at: dt.datetime | None = None
    resumed_from: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def head(self) -> bytes:
        """The first ``HEAD_BYTES`` of the landed file, for the audio probe.

        Read back from disk (the page cache, just written) rather than kept: 64 KiB held for
        each of a day's 10 000 recordings would be 640 MB.
        """
        if not self.ok:
            return b""
        try:
            with self.job.final.open("rb") as handle:
                return handle.read(HEAD_BYTES)
        except OSError:
            return b""


def _hash_existing(path: Path, size: int) -> hashlib._Hash:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        remaining = size
        while remaining:
            block = handle.read(min(CHUNK, remaining))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    return digest


class _Sink:
    """One file's bytes on their way to disk: hashed and written in order, as they arrive.

    The event loop hashes and writes each answer itself (one ``update`` and one ``write`` per
    read request). A writer thread was measured slower (docs/benchmarks.md, issue #15): the
    GIL hand-offs between it and the loop cost more CPU than the hashing it took off the
    loop, on a 1 GB day and on a 2 GiB file alike, and queued batches cost memory. A write
    that blocks (the kernel throttling dirty pages) holds back the session, as it does
    OpenSSH's sftp; ``sync_file_range`` every ``WRITEBACK`` bytes keeps dirty pages few. The
    temporary file is opened by the first write; a resumed one on a thread, since its kept
    prefix is hashed again from disk first.
    """

    def __init__(self, tmp: Path, start: int) -> None:
        self.tmp = tmp
        self.start = start
        self.fd: int | None = None
        self.digest: hashlib._Hash | None = None
        self._written = start  # bytes in the file
        self._flushed = start  # bytes whose writeback has been started

    def _open(self) -> None:
        # A resumed prefix is hashed again from disk: the SHA-256 covers the whole file.
        self.digest = _hash_existing(self.tmp, self.start) if self.start else hashlib.sha256()
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT, FILE_MODE)
        try:
            os.ftruncate(fd, self.start)
            os.lseek(fd, self.start, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def _write(self, blocks: list[bytes]) -> None:
        """Open if needed, hash and write ``blocks`` (the loop's answers, or an FTPS thread's)."""
        if self.fd is None:
            self._open()
        assert self.fd is not None and self.digest is not None
        for block in blocks:
            self.digest.update(block)
            view = memoryview(block)
            while view:
                view = view[os.write(self.fd, view) :]
            self._written += len(block)
        if self._written - self._flushed >= WRITEBACK:
            # Start the disk on what we have so far: otherwise a large file's bytes all wait
            # for the fsync at its end, one long flush after the network is done.
            writeback = _writeback()
            if writeback is not None:
                writeback(self.fd, self._flushed, self._written - self._flushed)
            self._flushed = self._written

    async def _open_resumed(self) -> None:
        """Open a resumed file on a thread: its kept prefix is hashed again, off the loop."""
        opening = asyncio.ensure_future(asyncio.to_thread(self._open))
        try:
            await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The thread cannot be stopped: close its descriptor once it has one.
            opening.add_done_callback(lambda _: self.close())
            raise

    async def put(self, block: bytes) -> None:
        if self.fd is None and self.start:
            await self._open_resumed()
        self._write([block])

    async def drain(self) -> None:
        """Open the file if no byte came (it is complete, not yet durable, after)."""
        if self.fd is None:
            if self.start:
                await self._open_resumed()
            self._write([])

    def sync(self) -> None:
        assert self.fd is not None
        os.fsync(self.fd)

    def rename(self, final: Path, size: int) -> str:
        """Check the size, set the mode, close, rename onto ``final``; return the SHA-256.

        Only once the bytes are durable (``sync``, or a ``syncfs`` of their file system).
        """
        assert self.fd is not None and self.digest is not None
        try:
            landed = os.fstat(self.fd).st_size
            if landed != size:
                raise TransferError(
                    f"{final.name}: landed {landed} bytes, expected {size}", files=[final.name]
                )
            os.fchmod(self.fd, FILE_MODE)
        finally:
            self.close()
        os.replace(self.tmp, final)
        return self.digest.hexdigest()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    async def settle(self) -> None:
        """After a failure: close. What was written stays for the retry to resume from."""
        self.close()


async def _read_exact(
    remote: asyncssh.SFTPClientFile, entry: RemoteEntry, at: int, n: int
) -> bytes:
    """The rest of a short answer (servers may return less than asked, but never skip)."""
    parts: list[bytes] = []
    while n:
        part: bytes = await remote.read(n, at)
        if not part:
            raise TransferError(
                f"{entry.remote_path}: remote file ended at byte {at}, "
                f"listed as {entry.size} bytes",
                files=[entry.remote_path],
            )
        parts.append(part)
        at += len(part)
        n -= len(part)
    return b"".join(parts)


def resume_check_ranges(offset: int, rng: random.Random) -> list[tuple[int, int]]:
    """The ``[start, end)`` ranges of a kept prefix ``[0, offset)`` that a resume compares.

    Clamped to the prefix (a short prefix is checked whole), sorted, duplicates dropped;
    overlaps are harmless.
    """
    if offset <= 0:
        return []
    ranges = {(0, min(CHECK_HEAD, offset)), (max(0, offset - CHECK_TAIL), offset)}
    size = min(CHECK_SAMPLE, offset)
    for _ in range(CHECK_SAMPLES):
        start = rng.randrange(offset - size + 1)
        ranges.add((start, start + size))
    return sorted(ranges)


def _read_local(path: Path, ranges: list[tuple[int, int]]) -> list[bytes]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return [os.pread(fd, end - start, start) for start, end in ranges]
    finally:
        os.close(fd)


async def _read_remote(
    remote: asyncssh.SFTPClientFile,
    entry: RemoteEntry,
    ranges: list[tuple[int, int]],
    *,
    block: int,
) -> list[bytes]:
    """Every range at once: requests of at most ``block`` bytes, all in flight together."""
    requests = [
        (at, min(block, end - at)) for start, end in ranges for at in range(start, end, block)
    ]
    tasks: list[asyncio.Future[bytes]] = [
        asyncio.ensure_future(remote.read(n, at)) for at, n in requests
    ]
    try:
        answers = await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    pieces: dict[int, bytes] = {}
    for (at, n), data in zip(requests, answers, strict=True):
        if len(data) < n:
            data += await _read_exact(remote, entry, at + len(data), n - len(data))
        pieces[at] = data
    return [b"".join(pieces[at] for at in range(start, end, block)) for start, end in ranges]


def _first_difference(mine: bytes, theirs: bytes) -> int:
    """Index of the first byte where two blocks differ (the shorter one's length if a prefix)."""
    size = min(len(mine), len(theirs))
    if mine[:size] == theirs[:size]:
        return size
    lo, hi = 0, size  # halving: the answer lies in [lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mine[lo:mid] == theirs[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


async def _prefix_matches(
    remote: asyncssh.SFTPClientFile,
    entry: RemoteEntry,
    tmp: Path,
    offset: int,
    *,
    block: int,
    limiter: RateLimiter,
    rng: random.Random,
) -> bool:
    """Whether the kept ``[0, offset)`` of ``tmp`` agrees with the remote file on sampled ranges.

    Only a comparison: nothing read here is hashed or written (the sink hashes the kept prefix
    from disk when it opens it). On a difference, log why at WARNING, with the first range
    that differs.
    """
    ranges = resume_check_ranges(offset, rng)
    local = asyncio.ensure_future(asyncio.to_thread(_read_local, tmp, ranges))
    try:
        await limiter.consume(sum(end - start for start, end in ranges))
        theirs = await _read_remote(remote, entry, ranges, block=block)
    finally:
        mine = await local
    for (start, end), kept, served in zip(ranges, mine, theirs, strict=True):
        if kept != served:
            log.warning(
                "%s: restarting from byte 0 instead of resuming at byte %d of %d: the partial "
                "copy differs from the remote file in bytes %d-%d (first at byte %d): a new "
                "version with the same size and mtime, or a damaged partial copy",
                mask_phone(entry.remote_path),
                offset,
                entry.size,
                start,
                end - 1,
                start + _first_difference(kept, served),
            )
            return False
    return True


async def _pull(
    remote: asyncssh.SFTPClientFile,
    entry: RemoteEntry,
    start: int,
    sink: _Sink,
    *,
    block: int,
    limiter: RateLimiter,
    progress: Progress | None,
) -> None:
    """Read ``[start, size)`` through a sliding window of requests, and check the file ends there.

    Requests stay ``limiter.window`` bytes ahead of what was consumed, so the pipeline never
    drains between blocks. The last request asks for one byte more than the listed size (or
    a 1-byte read at the listed size follows it): an answer with that byte means the file grew
    after the listing, a short one that it shrank; either fails the file. No ``stat`` per
    file: the size and mtime are the listing's, from the one ``readdir``.
    """
    depth = max(1, limiter.window // block)
    pending: deque[tuple[int, int, asyncio.Future[bytes]]] = deque()
    asked = start
    probed = False

    def ask() -> None:
        nonlocal asked, probed
        while asked < entry.size and len(pending) < depth:
            n = min(block, entry.size - asked)
            last = asked + n >= entry.size
            # Within the server's limit, the last request also asks for the byte after the end.
            want = n + 1 if last and n < block else n
            probed = probed or want > n
            pending.append((asked, n, asyncio.ensure_future(remote.read(want, asked))))
            asked += n
        if asked >= entry.size and not probed:
            probed = True
            pending.append((entry.size, 0, asyncio.ensure_future(remote.read(1, entry.size))))

    try:
        ask()
        while pending:
            at, n, task = pending.popleft()
            data = await task
            if len(data) > n:
                raise TransferError(
                    f"{entry.remote_path}: changed during the copy (longer than the "
                    f"{entry.size} bytes listed)",
                    files=[entry.remote_path],
                )
            if len(data) < n:
                data += await _read_exact(remote, entry, at + len(data), n - len(data))
            if not n:
                continue
            await limiter.consume(len(data))
            ask()
            await sink.put(data)
            if progress is not None:
                progress.bytes_done += len(data)
    finally:
        leftovers: list[asyncio.Future[Any]] = [task for _, _, task in pending]
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.gather(*leftovers, return_exceptions=True)


async def _open_remote(sftp: asyncssh.SFTPClient, entry: RemoteEntry) -> asyncssh.SFTPClientFile:
    # block_size=0: one SFTP request per read() call; _pull's window is the pipeline.
    return await sftp.open(entry.remote_path, "rb", block_size=0)


class _Closer:
    """Closes remote handles in the background: a close needs no answer before the next file.

    Waiting for each close costs a round trip per file on a long link. A read-only handle's
    close cannot lose data; a failed one is logged, and the session's end closes it anyway.
    The pending closes are kept referenced beyond the copy (``BACKGROUND``): ``copy_all``
    returns without waiting for the last ones.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[None]] = BACKGROUND

    def __call__(self, remote: asyncssh.SFTPClientFile) -> None:
        task = asyncio.ensure_future(remote.close())
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("closing a remote handle failed: %s", task.exception())

    async def wait(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _drop_opening(opening: asyncio.Future[asyncssh.SFTPClientFile], closer: _Closer) -> None:
    """An open sent for a file nobody will read: cancelled, or its handle closed."""
    if not opening.done():
        opening.cancel()
    elif not opening.cancelled() and opening.exception() is None:
        closer(opening.result())


async def _fetch(
    sftp: asyncssh.SFTPClient,
    job: CopyJob,
    *,
    token: str,
    root: Path,
    limiter: RateLimiter,
    progress: Progress | None,
    rng: random.Random | None = None,
    opening: asyncio.Future[asyncssh.SFTPClientFile] | None = None,
    closer: _Closer | None = None,
    made: set[Path] | None = None,
) -> _Sink:
    """Bring one file's bytes over, resuming its temporary file; the caller lands the sink.

    A kept temporary file is trusted only once ``_prefix_matches`` has compared it with the
    remote on the same handle; otherwise the copy starts from byte 0 (``rng`` draws the sampled
    ranges: the OS's randomness unless a test pins them). ``opening`` is the remote handle's
    open already sent (``copy_all`` opens the next files while this one is read); ``closer``
    closes the handle without waiting for the answer; ``made`` holds the folders this copy
    has already created (two system calls saved per file of a day).
    """
    entry = job.entry
    tmp = job.tmp(token)
    remote: asyncssh.SFTPClientFile | None = None
    sink: _Sink | None = None
    try:
        if made is None or job.final.parent not in made:
            make_dirs(job.final.parent, stop_at=root)
            if made is not None:
                made.add(job.final.parent)
        start = 0
        with contextlib.suppress(FileNotFoundError):
            have = tmp.stat().st_size
            start = have if have <= entry.size else 0
        sink = _Sink(tmp, start)
        remote = await (opening if opening is not None else _open_remote(sftp, entry))
        block = min(limiter.chunk, sftp.limits.max_read_len or READ_BLOCK)
        if start and not await _prefix_matches(
            remote, entry, tmp, start, block=block, limiter=limiter, rng=rng or _SPOTS
        ):
            # The sink has opened nothing yet; this one truncates the file at its first write.
            start = 0
            sink = _Sink(tmp, start)
        if start:
            log.info("resuming %s at byte %d of %d", mask_phone(entry.rel_name), start, entry.size)
        await _pull(remote, entry, start, sink, block=block, limiter=limiter, progress=progress)
        await sink.drain()
    except BaseException:
        if sink is not None:
            await sink.settle()
        raise
    finally:
        if remote is not None:
            if closer is not None:
                closer(remote)
            else:
                await remote.close()
    return sink


def _landed(job: CopyJob, sha256: str, start: int) -> CopyOutcome:
    return CopyOutcome(
        job=job, sha256=sha256, copied_at=dt.datetime.now(dt.UTC), resumed_from=start
    )


@functools.cache
def _writeback() -> Callable[[int, int, int], None] | None:
    """Linux's sync_file_range(2) with SYNC_FILE_RANGE_WRITE: start writeback, do not wait."""
    try:
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]

    def writeback(fd: int, offset: int, nbytes: int) -> None:
        call(fd, offset, nbytes, 2)  # a hint: failures show up at the fsync

    return writeback


@functools.cache
def _syncfs() -> Callable[[int], None] | None:
    """Linux's syncfs(2): one flush and one journal commit for a whole batch of files.

    Before Linux 5.8 it did not report writeback errors the way fsync does; the size check
    before the rename and the manifest's SHA-256 remain.
    """
    try:
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).syncfs  # releases the GIL while it runs
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int]

    def syncfs(fd: int) -> None:
        if call(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return syncfs


def _make_durable(sinks: list[_Sink]) -> list[str]:
    """fsync a batch of written files at once; an error message per file ("" when durable).

    One ``syncfs`` per file system rather than an fsync per file: each fsync is a journal
    commit and a disk cache flush, and file creations wait behind commits in progress. For
    a day of small recordings that is most of the cost; OpenSSH's sftp leaves it to the
    kernel (docs/benchmarks.md). Without syncfs, an fsync per file.
    """
    errors = [""] * len(sinks)
    syncfs = _syncfs()
    if syncfs is not None:
        devices: dict[int, list[int]] = {}
        for i, sink in enumerate(sinks):
            assert sink.fd is not None
            devices.setdefault(os.fstat(sink.fd).st_dev, []).append(i)
        for members in devices.values():
            fd = sinks[members[0]].fd
            assert fd is not None
            try:
                syncfs(fd)
            except OSError as exc:
                for i in members:
                    errors[i] = f"syncfs: {exc}"
        return errors
    for i, sink in enumerate(sinks):
        try:
            sink.sync()
        except OSError as exc:
            errors[i] = f"fsync: {exc}"
    return errors


def _close_all(sinks: list[_Sink], _done: object = None) -> None:
    for sink in sinks:
        sink.close()


class _Lander:
    """Makes fetched files durable a batch at a time on a worker thread, then renames them.

    Fetching goes on meanwhile. A bounded number of files (and descriptors) wait here, so
    memory stays flat when the disk is slow.
    """

    def __init__(self, on_landed: Callable[[CopyOutcome], None], *, room: int = 64) -> None:
        self._on_landed = on_landed
        self._todo: list[tuple[CopyJob, _Sink]] = []
        self._wake = asyncio.Event()
        self._room = asyncio.Semaphore(room)
        self._closing = False

    async def submit(self, job: CopyJob, sink: _Sink) -> None:
        """Queue a fetched file for landing; once room is free, the sink is the lander's."""
        try:
            await self._room.acquire()
        except BaseException:  # cancelled while waiting for room: not the lander's yet
            sink.close()
            raise
        self._todo.append((job, sink))
        self._wake.set()

    def close(self) -> None:
        self._closing = True
        self._wake.set()

    def _land(self, job: CopyJob, sink: _Sink, error: str) -> None:
        outcome = CopyOutcome(job=job, error=error)
        if not error:
            try:
                outcome = _landed(job, sink.rename(job.final, job.entry.size), sink.start)
            except Exception as exc:
                outcome = CopyOutcome(job=job, error=f"{type(exc).__name__}: {exc}")
        sink.close()
        self._on_landed(outcome)
        self._room.release()

    async def run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if not self._todo:
                    if self._closing:
                        return
                    continue
                batch, self._todo = self._todo, []
                sinks = [sink for _, sink in batch]
                durable = asyncio.ensure_future(asyncio.to_thread(_make_durable, sinks))
                try:
                    errors = await asyncio.shield(durable)
                except asyncio.CancelledError:
                    # The thread goes on with these descriptors: close them once it is done.
                    durable.add_done_callback(functools.partial(_close_all, sinks))
                    raise
                except Exception as exc:  # not a file's fault: fail the batch, go on
                    errors = [f"landing failed: {type(exc).__name__}: {exc}"] * len(batch)
                for (job, sink), error in zip(batch, errors, strict=True):
                    self._land(job, sink, error)
                self._wake.set()  # look again: more may have come during the trip
        finally:
            for _, sink in self._todo:  # not handed to a thread: safe to close here
                sink.close()


def _files_at_once(jobs: list[CopyJob], max_parallel: int) -> int:
    """Files read at once: ``max_parallel``, or more when files are small.

    The window is the session's: enough files that ``SESSION_WINDOW`` bytes are in flight,
    so short recordings fill a long link (each file costs a round trip before its bytes
    flow) as a few large ones do. At most ``MAX_FILES_AT_ONCE``.
    """
    if not jobs:
        return 1
    mean = max(1, sum(j.entry.size for j in jobs) // len(jobs))
    wanted = max(max_parallel, min(MAX_FILES_AT_ONCE, -(-SESSION_WINDOW // mean)))
    return max(1, min(wanted, len(jobs)))


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
    rng: random.Random | None = None,
    more_sessions: Iterable[Awaitable[asyncssh.SFTPClient]] = (),
) -> list[CopyOutcome]:
    """Copy every job over one session, ``max_parallel`` files at a time or more for small
    files (``_files_at_once``), opening the next files while these are read; never raises per
    file.

    ``more_sessions`` are further SFTP sessions on their way (opened by the caller, which
    closes them): each joins once open and takes files from the same queue, under the same
    rate limiter; the copy does not wait for one to open.

    A failed file is returned with its error so the caller can record what did land and
    name what did not; its temporary file stays for the retry to resume. ``rng`` draws the
    ranges a resume samples (see ``_fetch``); leave it unset outside tests.
    """
    todo = list(jobs)
    progress = Progress(files_total=len(todo), bytes_total=sum(j.entry.size for j in todo))
    limiter = RateLimiter(bytes_per_s)
    outcomes: list[CopyOutcome] = []

    def done(outcome: CopyOutcome) -> None:
        outcomes.append(outcome)
        progress.files_done += 1

    lander = _Lander(done)
    closer = _Closer()
    made: set[Path] = set()
    workers = _files_at_once(todo, max_parallel)
    waiting = deque(todo)  # shared by every session: a session that joins late takes its share

    class _Session:
        """One SFTP session's workers and the opens sent ahead on it."""

        def __init__(self, client: asyncssh.SFTPClient) -> None:
            self.client = client
            self.ahead: deque[tuple[CopyJob, asyncio.Future[asyncssh.SFTPClientFile]]] = deque()

        def refill(self) -> None:
            while waiting and len(self.ahead) < workers:
                job = waiting.popleft()
                self.ahead.append(
                    (job, asyncio.ensure_future(_open_remote(self.client, job.entry)))
                )

        async def worker(self) -> None:
            while True:
                self.refill()
                if not self.ahead:
                    return
                job, opening = self.ahead.popleft()
                self.refill()
                try:
                    sink = await _fetch(
                        self.client,
                        job,
                        token=token,
                        root=root,
                        limiter=limiter,
                        progress=progress,
                        rng=rng,
                        opening=opening,
                        closer=closer,
                        made=made,
                    )
                except Exception as exc:  # recorded per file; the caller decides the task's fate
                    done(CopyOutcome(job=job, error=f"{type(exc).__name__}: {exc}"))
                    continue
                await lander.submit(job, sink)

        async def run(self) -> None:
            await asyncio.gather(*(self.worker() for _ in range(workers)))

        def drop_ahead(self) -> None:
            """Opens sent for files no worker will read (cancelled): close what did open."""
            while self.ahead:
                _, opening = self.ahead.popleft()
                _drop_opening(opening, closer)

    sessions = [_Session(sftp)]

    async def join(pending: Awaitable[asyncssh.SFTPClient]) -> None:
        """A further session: its workers start once it is open, if files are left by then."""
        try:
            client = await pending
        except Exception as exc:  # the first session carries on alone
            log.warning(
                "a further SFTP session could not be opened: %s: %s", type(exc).__name__, exc
            )
            return
        if waiting:
            session = _Session(client)
            sessions.append(session)
            await session.run()

    ticker = asyncio.ensure_future(progress.report(progress_every, on_progress))
    landing = asyncio.ensure_future(lander.run())
    opens = [asyncio.ensure_future(pending) for pending in more_sessions]
    joining = [asyncio.ensure_future(join(opening)) for opening in opens]
    try:
        await sessions[0].run()
        # Nothing is left to take: a session still opening is not needed any more; one that
        # has joined finishes the files it took.
        for opening in opens:
            if not opening.done():
                opening.cancel()
        await asyncio.gather(*joining, return_exceptions=True)
        lander.close()
        await landing
    finally:
        for task in (*opens, *joining):
            task.cancel()
        await asyncio.gather(*opens, *joining, return_exceptions=True)
        for session in sessions:
            session.drop_ahead()
        for task in (ticker, landing):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # The last handles' closes are not waited for either (a round trip before the
        # manifest): they are answered while it is written; the session's end closes the rest.
    if todo:
        on_progress(progress.line())
    return outcomes


# The landing machinery under public names for the FTPS copy (``ftps.py``), which fetches on
# threads but hashes, writes, makes durable and renames exactly as here.
Sink = _Sink
Lander = _Lander
read_local = _read_local
first_difference = _first_difference
