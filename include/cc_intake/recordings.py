"""The voice day: is it ready, and bring it home (list once, classify, copy, manifest).

Pure orchestration over an open remote source: an ``asyncssh.SFTPClient`` (wrapped in
:class:`SftpSource`) or any :class:`RemoteSource` such as ``ftps.FtpsSource``. Listing entries,
classification, readiness, rows and the manifest are the same whatever the protocol; only
listing a folder and moving the bytes differ. The Airflow tasks call these.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from include.cc_intake.audio import probe_audio
from include.cc_intake.config import ProviderConfig, RecordingsConfig
from include.cc_intake.errors import UnsafePathError
from include.cc_intake.handshake import done_folder_entry, fold_listing
from include.cc_intake.layout import DayLayout, remove_stale_tmp
from include.cc_intake.listing import list_folder
from include.cc_intake.manifest import (
    ManifestRow,
    can_skip,
    held_index,
    iso_utc,
    landed_index,
    read_manifest,
    still_held,
    write_manifest,
)
from include.cc_intake.naming import (
    RemoteEntry,
    Verdict,
    classify_listing,
    folder_is_dated,
    render_folder,
)
from include.cc_intake.redact import mask_phone, sanitize
from include.cc_intake.transfer import CopyJob, CopyOutcome, copy_all

if TYPE_CHECKING:
    import asyncssh

log = logging.getLogger(__name__)

Listing = dict[str, list[RemoteEntry] | None]


@runtime_checkable
class RemoteSource(Protocol):
    """A provider's server as the day's listing and copy use it, whatever the protocol.

    ``endpoint`` is the connection id that serves it ("" when unknown): the manifest's
    ``endpoint`` column.
    """

    endpoint: str

    async def list_folder(
        self, folder: str, direction: str, *, recursive: bool = False
    ) -> list[RemoteEntry] | None: ...

    async def settle_listing(
        self, listing: Listing, cfg: RecordingsConfig, day: dt.date
    ) -> Listing: ...

    async def read_file(self, path: str) -> bytes | None: ...

    async def copy(
        self,
        jobs: list[CopyJob],
        *,
        token: str,
        root: Path,
        max_parallel: int,
        bytes_per_s: int | None,
        on_progress: Callable[[str], None],
        connections: int = 1,
    ) -> list[CopyOutcome]: ...


SessionOpener = Callable[[], AbstractAsyncContextManager["asyncssh.SFTPClient"]]


class SftpSource:
    """An open SFTP session as a :class:`RemoteSource` (``transfer.py`` does the work).

    ``open_session`` opens a further session to the same endpoint: with it, a day of many
    files is copied over several sessions (``connections``, each joins once open).
    """

    def __init__(
        self,
        sftp: asyncssh.SFTPClient,
        endpoint: str = "",
        *,
        open_session: SessionOpener | None = None,
    ) -> None:
        self.sftp = sftp
        self.endpoint = endpoint
        self.open_session = open_session
        self._closing: list[asyncio.Future[None]] = []

    async def list_folder(
        self, folder: str, direction: str, *, recursive: bool = False
    ) -> list[RemoteEntry] | None:
        return await list_folder(self.sftp, folder, direction, recursive=recursive)

    async def settle_listing(
        self, listing: Listing, cfg: RecordingsConfig, day: dt.date
    ) -> Listing:
        return listing  # SFTP times are exact to the second

    async def read_file(self, path: str) -> bytes | None:
        import asyncssh

        try:
            async with self.sftp.open(path, "rb") as remote:
                data = await remote.read()
        except asyncssh.SFTPNoSuchFile:
            return None
        return data if isinstance(data, bytes) else data.encode()

    async def copy(
        self,
        jobs: list[CopyJob],
        *,
        token: str,
        root: Path,
        max_parallel: int,
        bytes_per_s: int | None,
        on_progress: Callable[[str], None],
        connections: int = 1,
    ) -> list[CopyOutcome]:
        opener = self.open_session
        stack = contextlib.AsyncExitStack()
        try:
            more = (
                [stack.enter_async_context(opener()) for _ in range(connections - 1)]
                if opener is not None
                else []
            )
            outcomes = await copy_all(
                self.sftp,
                jobs,
                token=token,
                root=root,
                max_parallel=max_parallel,
                bytes_per_s=bytes_per_s,
                on_progress=on_progress,
                more_sessions=more,
            )
        except BaseException:
            await stack.aclose()
            raise
        # The further sessions' goodbyes cost a round trip: they need not hold up the
        # manifest. They close in the background; ``aclose`` waits for them.
        self._closing.append(asyncio.ensure_future(stack.aclose()))
        return outcomes

    async def aclose(self) -> None:
        """Wait until the further sessions of the copies are closed (the first one is the
        caller's). A goodbye that fails is logged: the copy and its manifest are complete by
        then, and the session's end closes what is left."""
        closing, self._closing = self._closing, []
        for result in await asyncio.gather(*closing, return_exceptions=True):
            if isinstance(result, Exception):
                log.warning(
                    "%s: a further SFTP session did not close cleanly: %s: %s",
                    self.endpoint or "SFTP",
                    type(result).__name__,
                    result,
                )


def as_source(
    remote: RemoteSource | asyncssh.SFTPClient, *, open_session: SessionOpener | None = None
) -> RemoteSource:
    """A source as is; an ``asyncssh.SFTPClient`` wrapped (its endpoint unknown), with
    ``open_session`` for further sessions."""
    if isinstance(remote, RemoteSource):
        return remote
    return SftpSource(remote, open_session=open_session)


async def list_day(
    remote: RemoteSource | asyncssh.SFTPClient, cfg: RecordingsConfig, day: dt.date
) -> Listing:
    """Every direction's folder for the day, read once (None for a missing folder).

    Our completion handshake's marker is never listed, and in ``move`` mode the done folder's
    files are listed under their own names (:func:`include.cc_intake.handshake.fold_listing`).
    """
    source = as_source(remote)

    async def one(direction: str, template: str) -> list[RemoteEntry] | None:
        entries = await source.list_folder(
            render_folder(template, day), direction, recursive=cfg.recursive
        )
        done = done_folder_entry(entries or [], cfg)
        if entries is not None and done is not None:
            moved = await source.list_folder(done.remote_path, direction) or []
            entries += [replace(e, rel_name=f"{done.rel_name}/{e.rel_name}") for e in moved]
        return fold_listing(entries, cfg)

    # The folders are read at once: on a long link each read costs round trips, not bytes.
    folders = await asyncio.gather(*(one(d, t) for d, t in cfg.directions.items()))
    listing: Listing = dict(zip(cfg.directions, folders, strict=True))
    return await source.settle_listing(listing, cfg, day)


def classify_day(listing: Listing, cfg: RecordingsConfig, day: dt.date) -> list[Verdict]:
    verdicts: list[Verdict] = []
    for direction, entries in listing.items():
        dated = folder_is_dated(cfg.directions[direction])  # type: ignore[index]
        verdicts.extend(classify_listing(entries or [], cfg, day, dated_folder=dated))
    return verdicts


@dataclass(frozen=True)
class DirectionState:
    """What one look saw of a direction, against what the report says for it.

    ``files`` are the day's in-scope files the server lists; ``held`` those we already hold
    (landed by an earlier run, still on disk) that it no longer lists. Both count toward the
    report's number (contract §8.1).
    """

    direction: str
    folder: str
    state: str  # absent | empty | moving | short | ready
    files: int
    moving: int = 0
    held: int = 0
    expected: int | None = None
    allowed_gap: int = 0

    @property
    def count(self) -> int:
        return self.files + self.held

    @property
    def needed(self) -> bool:
        """Whether the day needs files here: unless the report says it had no call (no
        outbound calls on a Sunday), which needs nothing, not even the folder."""
        return self.expected != 0

    def seen(self) -> str:
        """What was seen, without the direction's name (e-mails list it per direction)."""
        held = f" + {self.held} held here, no longer on the server" if self.held else ""
        if self.state == "absent":
            text = f"folder {self.folder} absent"
        elif self.state == "empty":
            text = f"no recording of the day in {self.folder}"
        elif self.state == "moving":
            text = f"{self.files} files{held}, {self.moving} still being written"
        elif self.state == "short":
            text = f"{self.files} files settled{held}, waiting for the rest"
        else:
            text = f"{self.files} files ready{held}"
        if self.expected is not None and self.count != self.expected:
            tolerance = f" (tolerance {self.allowed_gap})" if self.allowed_gap else ""
            text += f"; the report says {self.expected}{tolerance}"
        return text

    def describe(self) -> str:
        return f"{self.direction}: {self.seen()}"

    def facts(self) -> dict[str, Any]:
        """The same, as the "not available" e-mail's per-direction facts (its labels' keys)."""
        facts: dict[str, Any]
        if self.state == "absent":
            facts = {"folder": f"{self.folder} absent"}
        else:
            facts = {"ready": self.files - self.moving}
            if self.moving:
                facts["settling"] = self.moving
            if self.held:
                facts["held"] = self.held
        if self.expected is not None:
            facts["expected"] = self.expected
        return facts


@dataclass(frozen=True)
class Readiness:
    ready: bool
    directions: list[DirectionState]
    expected: Mapping[str, int] | None
    report_note: str = ""

    def describe(self) -> str:
        parts = [d.describe() for d in self.directions]
        if self.expected is None:
            parts.append(self.report_note or "end-of-day report not found")
        else:
            wanted = ", ".join(f"{k} {v}" for k, v in sorted(self.expected.items()))
            parts.append(f"report says {wanted}")
        return "; ".join(parts)


def held_files(
    previous: Mapping[tuple[str, str], ManifestRow], listing: Listing, layout: DayLayout
) -> dict[str, int]:
    """Per direction, the files an earlier run landed that the server no longer lists.

    ``previous`` is :func:`landed_index` of the day's manifest (every landed status, so held
    files recorded as such count too); a file counts only while it is still on disk whole.
    """
    listed = {
        (direction, e.rel_name) for direction, entries in listing.items() for e in entries or []
    }
    held: Counter[str] = Counter()
    for key, row in previous.items():
        if key in listed:
            continue
        try:
            whole = layout.recording(row.direction, row.file_name).stat().st_size == row.size_bytes
        except (OSError, UnsafePathError):  # gone, or a name the landing rules refuse
            whole = False
        if whole:
            held[row.direction] += 1
    return dict(held)


def _no_gap(expected: int) -> int:
    return 0


def assess_readiness(
    first: Listing,
    second: Listing,
    *,
    cfg: RecordingsConfig,
    day: dt.date,
    now: float,
    expected: Mapping[str, int] | None,
    report_note: str = "",
    held: Mapping[str, int] | None = None,
    allowed_gap: Callable[[int], int] = _no_gap,
) -> Readiness:
    """Ready when the report is there and every direction it expects calls for is complete.

    A direction is complete when its day's files are settled (size and mtime unchanged between
    the two listings, each older than ``min_file_age`` by our clock) and their number, plus
    the ``held`` files the server no longer lists, reaches the report's count within
    ``allowed_gap`` (``daily_report.allowed_gap``, as reconciliation reads the tolerance) —
    so a provider uploading in batches is not taken at its first settled batch. A direction the
    report says had no call (no outbound calls on a Sunday) needs nothing, not even its folder;
    one it expects calls for needs at least one file whatever the tolerance.
    """
    states = []
    min_age = cfg.min_file_age.total_seconds()
    for direction, template in cfg.directions.items():
        folder = render_folder(template, day)
        entries = second.get(direction)
        kept = (held or {}).get(direction, 0)
        wanted = None if expected is None else expected.get(direction, 0)
        gap = 0 if wanted is None else allowed_gap(wanted)
        if entries is None and not kept:
            states.append(DirectionState(direction, folder, "absent", 0, expected=wanted))
            continue
        dated = folder_is_dated(template)
        accepted = [
            v.entry
            for v in classify_listing(entries or [], cfg, day, dated_folder=dated)
            if v.accepted
        ]
        before = {e.rel_name: (e.size, e.mtime) for e in first.get(direction) or []}
        moving = sum(
            1
            for e in accepted
            if before.get(e.rel_name) != (e.size, e.mtime) or now - e.mtime < min_age
        )
        count = len(accepted) + kept
        if moving:
            state = "moving"
        elif count == 0:
            state = "empty"
        elif wanted is not None and count < wanted - gap:
            state = "short"
        else:
            state = "ready"
        states.append(
            DirectionState(
                direction, folder, state, len(accepted), moving, kept, wanted, allowed_gap=gap
            )
        )
    ready = expected is not None and all(not s.needed or s.state == "ready" for s in states)
    return Readiness(ready, states, expected, report_note)


@dataclass
class DaySummary:
    """What one copy run did; small enough for XCom and the demo's printout.

    Per direction: ``copied``, ``skipped_identical``, ``kept`` and ``failed`` row counts, the
    ``rejected`` reasons counted, and ``bytes`` received (copied + skipped_identical + kept,
    the manifest's one rule). ``failures`` names each failed file (masked) for the task error.
    """

    provider: str
    day: str
    manifest: str
    landing: str
    directions: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "day": self.day,
            "manifest": self.manifest,
            "landing": self.landing,
            "directions": self.directions,
            "failures": self.failures,
        }


def _row_for(
    verdict: Verdict,
    *,
    status: str,
    sha256: str = "",
    copied_at: str = "",
    reason: str = "",
    extra: Mapping[str, str] | None = None,
) -> ManifestRow:
    entry = verdict.entry
    return ManifestRow(
        direction=entry.direction,
        file_name=entry.rel_name,
        remote_path=entry.remote_path,
        size_bytes=entry.size,
        remote_mtime=iso_utc(entry.mtime),
        sha256=sha256,
        copied_at=copied_at,
        status=status,  # type: ignore[arg-type]
        reason=reason or verdict.reason or "",
        groups=verdict.groups,
        extra=dict(extra or {}),
    )


# A failed row's reason is the error, as an operator reads it in the manifest: one line, short.
FAILED_REASON_LIMIT = 300


def _failed_row(verdict: Verdict, error: str, held: ManifestRow | None) -> ManifestRow:
    """The ``failed`` row of a remote entry whose copy failed this run.

    Without a copy held, the row describes the remote entry (``sha256`` and ``copied_at``
    empty). With an earlier copy still on disk (a changed file whose re-copy failed: the final
    file is only ever replaced by a complete new version), the row keeps that copy's proof —
    ``size_bytes``, ``remote_mtime``, ``sha256``, ``copied_at`` and the added columns all
    describe the bytes we hold — and the reason says so. It is never skipped or counted as
    received: the remote now has a version we do not.
    """
    reason = sanitize(" ".join(error.split()), limit=FAILED_REASON_LIMIT)
    if held is None:
        return _row_for(verdict, status="failed", reason=reason)
    entry = verdict.entry
    return replace(
        held,
        remote_path=entry.remote_path,
        status="failed",
        reason=f"{reason} (holding the earlier copy; the remote now has {entry.size} bytes, "
        f"mtime {iso_utc(entry.mtime)})",
        groups=verdict.groups,
    )


def _held_rows(
    previous: Mapping[tuple[str, str], ManifestRow],
    listed: set[tuple[str, str]],
    layout: DayLayout,
) -> list[ManifestRow]:
    """``kept`` rows: earlier proofs of files we still hold that the remote no longer lists.

    A provider that purges or archives its folder after our copy must not erase the proof we
    earned: the row keeps its first ``copied_at`` and ``sha256`` (contract §8). A file we no
    longer hold whole (deleted, truncated) is simply absent: the reconciliation names the gap.
    """
    rows = []
    for key, row in sorted(previous.items()):
        if key in listed:
            continue
        try:
            landed = layout.recording(row.direction, row.file_name)
        except UnsafePathError:  # not a name we would have landed: nothing of ours to keep
            continue
        if still_held(row, landed):
            rows.append(row if row.status == "kept" else row.as_kept())
    return rows


def _audio_columns(outcome: CopyOutcome, endpoint: str = "") -> dict[str, str]:
    """The added columns of a copied row: the audio probe's, then the serving endpoint's."""
    info = probe_audio(outcome.head, outcome.job.entry.size, outcome.job.entry.rel_name)
    columns = {
        "codec": info.codec or "",
        "duration_s": "" if info.duration_s is None else f"{info.duration_s:.1f}",
        "audio_ok": "true" if info.audio_ok else "false",
    }
    if endpoint:
        columns["endpoint"] = endpoint
    return columns


# A day with at least this many files to copy gets a second SSH session by default
# (`recordings.connections` unset): measured in docs/benchmarks.md.
MANY_FILES = 200


def connections_for(cfg: RecordingsConfig, files: int) -> int:
    """SSH sessions for a copy of ``files`` files: ``recordings.connections``, else by count.

    Two sessions mean two sshd processes on the server and two TCP windows: on a day of many
    small files the server side, not our client, was the limit (docs/benchmarks.md). Never
    more sessions than files.
    """
    wanted = cfg.connections or (2 if files >= MANY_FILES else 1)
    return max(1, min(wanted, files))


async def copy_day(
    remote: RemoteSource | asyncssh.SFTPClient,
    provider: ProviderConfig,
    day: dt.date,
    *,
    layout: DayLayout,
    token: str,
    on_progress: Callable[[str], None] = log.info,
    open_session: SessionOpener | None = None,
) -> DaySummary:
    """List the day once, copy what is new or changed, and write the complete manifest.

    ``open_session`` (for a raw SFTP client) opens a further session to the same server: with
    it, a day of many files is copied over ``connections_for`` sessions. A source from
    ``airflow/remote.open_remote`` brings its own.

    Every in-scope remote entry gets exactly one row (copied, skipped_identical, failed or
    rejected), and every earlier proof of a file we still hold that the remote no longer
    lists is carried over as ``kept``. Files that fail are also named in
    ``summary.failures`` (the task fails with them); their temporary files stay, so a retry
    resumes instead of starting over.
    """
    cfg = provider.recordings
    source = as_source(remote, open_session=open_session)
    listing = await list_day(source, cfg, day)
    verdicts = classify_day(listing, cfg, day)
    earlier = read_manifest(layout.manifest, cfg.group_names)
    previous = landed_index(earlier)
    held = held_index(earlier)

    rows: list[ManifestRow] = []
    jobs: list[tuple[Verdict, CopyJob]] = []
    for verdict in verdicts:
        if not verdict.accepted:
            rows.append(_row_for(verdict, status="rejected"))
            continue
        entry = verdict.entry
        final = layout.recording(entry.direction, entry.rel_name)
        before = previous.get((entry.direction, entry.rel_name))
        if can_skip(before, size=entry.size, remote_mtime=iso_utc(entry.mtime), landed=final):
            assert before is not None
            rows.append(before.as_skipped())
        else:
            jobs.append((verdict, CopyJob(entry=entry, final=final)))

    skipped = len(rows) - sum(1 for r in rows if r.status == "rejected")
    listed = {(v.entry.direction, v.entry.rel_name) for v in verdicts}
    kept = _held_rows(held, listed, layout)
    on_progress(
        f"{provider.id} {day}: {len(verdicts)} entries in scope, {len(jobs)} to copy, "
        f"{skipped} already landed, {len(verdicts) - len(jobs) - skipped} rejected, "
        f"{len(kept)} held but no longer listed by the server"
    )
    rows.extend(kept)
    outcomes = await source.copy(
        [job for _, job in jobs],
        token=token,
        root=layout.root,
        max_parallel=cfg.max_parallel,
        bytes_per_s=cfg.max_bandwidth,
        on_progress=on_progress,
        connections=connections_for(cfg, len(jobs)),
    )
    by_final = {o.job.final: o for o in outcomes}
    failures = []
    for verdict, job in jobs:
        outcome = by_final[job.final]
        if not outcome.ok:
            # File names may carry the caller's number: logs and e-mails get it masked.
            failures.append(mask_phone(f"{job.entry.remote_path}: {outcome.error}"))
            before = held.get((job.entry.direction, job.entry.rel_name))
            rows.append(
                _failed_row(
                    verdict, outcome.error, before if still_held(before, job.final) else None
                )
            )
            continue
        assert outcome.copied_at is not None
        rows.append(
            _row_for(
                verdict,
                status="copied",
                sha256=outcome.sha256,
                copied_at=iso_utc(outcome.copied_at),
                extra=_audio_columns(outcome, source.endpoint),
            )
        )

    write_manifest(
        layout.manifest, rows, group_names=cfg.group_names, token=token, root=layout.root
    )
    if source is not remote and isinstance(source, SftpSource):
        await source.aclose()  # our wrapper: its further sessions are closed before we return
    if not failures:
        for direction in cfg.directions:
            remove_stale_tmp(
                layout.recordings_dir(direction), older_than=dt.timedelta(0), token=token
            )
    remove_stale_tmp(layout.root / "recordings" / provider.id)

    summary = DaySummary(
        provider=provider.id,
        day=day.isoformat(),
        manifest=str(layout.manifest),
        landing=str(layout.recordings_dir("ENTRANTS").parent),
        failures=failures,
    )
    for direction in cfg.directions:
        mine = [r for r in rows if r.direction == direction]
        statuses = Counter(r.status for r in mine)
        summary.directions[direction] = {
            "folder_found": listing[direction] is not None,
            "copied": statuses["copied"],
            "skipped_identical": statuses["skipped_identical"],
            "kept": statuses["kept"],
            "failed": statuses["failed"],
            "rejected": dict(Counter(r.reason for r in mine if r.status == "rejected")),
            "bytes": sum(r.size_bytes for r in mine if r.landed),
        }
    return summary
