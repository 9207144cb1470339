"""The completion handshake on the provider's server (`recordings.on_complete`, contract #12).

After a green day the provider's copy scripts learn what we took:

- ``marker``: ``<direction folder>/_RECU_<YYYY-MM-DD>.ok`` lists, as CSV (``file_name,
  size_bytes,sha256``), every file we hold for that direction (the manifest's received rows);
  it is uploaded under a temporary name and renamed, so the final name only ever shows a
  complete list;
- ``move``: each file we hold with its SHA-256 is renamed into ``<direction folder>/<done_folder>/``
  (created if needed) — never deleted, never over an existing file.

Both are idempotent: a re-run rewrites the same marker, and a file already moved is fine.
Our listing (:func:`fold_listing`) ignores the markers, and in ``move`` mode reads the done
folder as part of the direction (a moved file is still the provider's file of the day, listed
under its own name), so a re-run neither rejects our marker nor turns moved files into
``kept`` rows.

Pure orchestration over an open ``asyncssh.SFTPClient``, like :mod:`include.cc_intake.recordings`.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import logging
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.cc_intake.errors import IntakeError
from include.cc_intake.manifest import ManifestRow
from include.cc_intake.naming import RemoteEntry, render_folder
from include.cc_intake.status import GREEN

if TYPE_CHECKING:
    import asyncssh

    from include.cc_intake.config import ProviderConfig, RecordingsConfig

log = logging.getLogger(__name__)

MARKER_PREFIX = "_RECU_"
MARKER_SUFFIX = ".ok"
MARKER_COLUMNS = ("file_name", "size_bytes", "sha256")
# Our marker and its temporary upload name (``._RECU_<day>.ok.<token>.part``): never a
# recording of the provider's, whatever the day.
_OURS_RE = re.compile(r"^\.?_RECU_\d{4}-\d{2}-\d{2}\.ok(\.[A-Za-z0-9]+\.part)?$")


class HandshakeError(IntakeError):
    """The completion handshake on the provider's server failed (the day stays landed)."""

    FACTS = ("endpoint", "path")

    def __init__(
        self, message: str, *, endpoint: str | None = None, path: str | None = None, **where: Any
    ) -> None:
        super().__init__(message, **where)
        self.endpoint = endpoint
        self.path = path


def marker_name(day: dt.date) -> str:
    """``_RECU_<YYYY-MM-DD>.ok``: the marker's name in each direction folder."""
    return f"{MARKER_PREFIX}{day.isoformat()}{MARKER_SUFFIX}"


def is_marker(rel_name: str) -> bool:
    """Whether a listed name is one of our markers (or its temporary upload)."""
    return "/" not in rel_name and _OURS_RE.match(rel_name) is not None


def fold_listing(
    entries: list[RemoteEntry] | None, cfg: RecordingsConfig
) -> list[RemoteEntry] | None:
    """A direction's listing as the pipeline reads it: our markers left out, and in ``move``
    mode the done folder's files listed under their own names (``traites/x.wav`` → ``x.wav``).

    ``entries`` may hold the done folder's content already prefixed (``traites/…``: a recursive
    listing, or :func:`include.cc_intake.recordings.list_day`'s extra read); the folder entry
    itself is dropped. A name both at the top and in the done folder (the provider delivered it
    again) is read from the top: that is the file the provider now offers.
    """
    if entries is None:
        return None
    done = cfg.done_folder if cfg.on_complete == "move" else None
    top: list[RemoteEntry] = []
    moved: list[RemoteEntry] = []
    for entry in entries:
        if is_marker(entry.rel_name):
            continue
        if done is not None:
            if entry.rel_name == done:
                continue
            if entry.rel_name.startswith(done + "/"):
                inner = entry.rel_name[len(done) + 1 :]
                if inner and not is_marker(inner):
                    moved.append(replace(entry, rel_name=inner))
                continue
        top.append(entry)
    names = {e.rel_name for e in top}
    return top + [e for e in moved if e.rel_name not in names]


def done_folder_entry(entries: Iterable[RemoteEntry], cfg: RecordingsConfig) -> RemoteEntry | None:
    """The done folder in a non-recursive listing, when ``move`` mode has one to read."""
    if cfg.on_complete != "move" or cfg.recursive:
        return None
    for entry in entries:
        if entry.rel_name == cfg.done_folder and entry.kind == "dir":
            return entry
    return None


# --------------------------------------------------------------------------- when


@dataclass(frozen=True)
class Go:
    """Whether the handshake may run for the day, and why not."""

    ok: bool
    why: str


def may_run(summary: Mapping[str, Any] | None, *, provider: str, day: dt.date) -> Go:
    """Only a green day, as its ``summary.json`` says (amber, red, missing: never)."""
    if summary is None:
        return Go(False, f"{provider} {day}: no readable summary.json, so no verdict: no handshake")
    status = summary.get("status")
    if status != GREEN:
        return Go(
            False,
            f"{provider} {day}: the day is {status!r}, not green: the provider is not told that "
            "we hold the day (on_complete runs after a green day only)",
        )
    return Go(True, f"{provider} {day}: the day is green")


def read_summary(quality_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((quality_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------- what


def held_rows(rows: Iterable[ManifestRow]) -> dict[str, list[ManifestRow]]:
    """Per direction, the files we hold with their SHA-256 (received rows), by name."""
    out: dict[str, list[ManifestRow]] = {}
    for row in sorted(rows, key=lambda r: r.key):
        if row.landed and row.sha256:
            out.setdefault(row.direction, []).append(row)
    return out


def marker_content(rows: Iterable[ManifestRow]) -> bytes:
    """The marker: a CSV header then one line per file we hold (name, size, SHA-256)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MARKER_COLUMNS)
    for row in sorted(rows, key=lambda r: r.file_name):
        writer.writerow((row.file_name, row.size_bytes, row.sha256))
    return buffer.getvalue().encode("utf-8")


@dataclass
class HandshakeResult:
    """What the handshake did, per direction (small enough for XCom)."""

    mode: str
    directions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "directions": self.directions}


# --------------------------------------------------------------------------- how


def _join(folder: str, rel: str) -> str:
    return posixpath.join(folder.rstrip("/") or "/", rel)


async def _exists(sftp: asyncssh.SFTPClient, path: str) -> asyncssh.SFTPAttrs | None:
    import asyncssh

    try:
        return await sftp.lstat(path)
    except asyncssh.SFTPNoSuchFile:
        return None


async def upload_atomically(
    sftp: asyncssh.SFTPClient, final: str, content: bytes, *, token: str
) -> None:
    """Write ``content`` under a temporary sibling name, then rename it onto ``final``.

    The final name never shows a partial file: until the rename the server has only
    ``.<name>.<token>.part``. The rename replaces an earlier marker at once (OpenSSH's
    ``posix-rename``); a server without it gets the old marker removed just before.
    On failure the temporary file is removed (best effort) and the error raised.
    """
    import asyncssh

    folder, name = posixpath.split(final)
    tmp = posixpath.join(folder, f".{name}.{token}.part")
    try:
        async with sftp.open(tmp, "wb") as remote:
            await remote.write(content)
        try:
            await sftp.posix_rename(tmp, final)
        except asyncssh.SFTPOpUnsupported:
            if await _exists(sftp, final) is not None:
                await sftp.remove(final)
            await sftp.rename(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError, asyncssh.Error):
            await sftp.remove(tmp)
        raise


async def write_markers(
    sftp: asyncssh.SFTPClient,
    provider: ProviderConfig,
    day: dt.date,
    rows: Iterable[ManifestRow],
    *,
    token: str,
) -> HandshakeResult:
    """Upload each direction's marker (in every direction folder the server has)."""
    import asyncssh

    cfg = provider.recordings
    held = held_rows(rows)
    result = HandshakeResult("marker")
    for direction, template in cfg.directions.items():
        folder = render_folder(template, day)
        mine = held.get(direction, [])
        if await _exists(sftp, folder) is None:
            # A direction with no call that day may have no folder: nothing to mark.
            result.directions[direction] = {"marker": None, "files": len(mine)}
            log.info("%s %s %s: folder %s absent, no marker", provider.id, day, direction, folder)
            continue
        final = _join(folder, marker_name(day))
        try:
            await upload_atomically(sftp, final, marker_content(mine), token=token)
        except (OSError, asyncssh.Error) as exc:
            raise HandshakeError(
                f"{provider.id} {day}: cannot write the completion marker {final} on the "
                f"provider's server: {type(exc).__name__}: {exc}. The day stays landed and "
                "proven; the marker is written again by a re-run of this task.",
                provider=provider.id,
                day=day,
                endpoint=cfg.conn_id,
                path=final,
            ) from None
        result.directions[direction] = {"marker": final, "files": len(mine)}
        log.info("%s %s: marker %s lists %d file(s)", provider.id, day, final, len(mine))
    return result


async def move_done(
    sftp: asyncssh.SFTPClient,
    provider: ProviderConfig,
    day: dt.date,
    rows: Iterable[ManifestRow],
) -> HandshakeResult:
    """Rename each file we hold with its SHA-256 into the direction's done folder.

    A file is moved only while the server still has the version we copied (same size and
    mtime as its manifest row); a file already in the done folder counts as moved; a file the
    server no longer has anywhere, or whose done-folder name is taken, is left alone and
    reported. Nothing is ever deleted or overwritten.
    """
    import asyncssh

    from include.cc_intake.manifest import iso_utc

    cfg = provider.recordings
    result = HandshakeResult("move")
    for direction, mine in held_rows(rows).items():
        folder = render_folder(cfg.directions[direction], day)  # type: ignore[index]
        done_root = _join(folder, cfg.done_folder)
        moved = already = 0
        left: list[str] = []
        for row in mine:
            source = _join(folder, row.file_name)
            target = _join(done_root, row.file_name)
            try:
                found = await _exists(sftp, source)
                there = await _exists(sftp, target)
                if found is None:
                    if there is not None:
                        already += 1
                    else:
                        left.append(f"{row.file_name}: no longer on the server")
                    continue
                if there is not None:
                    left.append(f"{row.file_name}: {target} exists, not overwritten")
                    continue
                if found.size != row.size_bytes or iso_utc(found.mtime or 0) != row.remote_mtime:
                    left.append(
                        f"{row.file_name}: changed on the server since our copy "
                        f"({found.size} bytes, mtime {iso_utc(found.mtime or 0)})"
                    )
                    continue
                await sftp.makedirs(posixpath.dirname(target), exist_ok=True)
                await sftp.rename(source, target)
            except (OSError, asyncssh.Error) as exc:
                raise HandshakeError(
                    f"{provider.id} {day}: cannot move {source} into {done_root} on the "
                    f"provider's server: {type(exc).__name__}: {exc}. Nothing was deleted; "
                    f"{moved} file(s) of {direction} were moved before this one, and "
                    "a re-run of this task moves the rest.",
                    provider=provider.id,
                    day=day,
                    endpoint=cfg.conn_id,
                    path=source,
                ) from None
            moved += 1
        for note in left:
            log.warning("%s %s %s: left in place: %s", provider.id, day, direction, note)
        result.directions[direction] = {"moved": moved, "already": already, "left": left}
        log.info(
            "%s %s %s: %d moved into %s, %d already there, %d left in place",
            provider.id,
            day,
            direction,
            moved,
            done_root,
            already,
            len(left),
        )
    return result
