"""Where things land under the data root (contract §4), and how they are written.

Every write goes to a temporary name in the destination folder, is fsynced, then renamed:
a reader never sees a half-written file under a final name. Landed data is personal data, so
folders are 0750 and files 0640.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from include.cc_intake.errors import StorageError
from include.cc_intake.naming import is_safe_rel_name, safe_join

DIR_MODE = 0o750
FILE_MODE = 0o640
TMP_SUFFIX = ".part"
TOKEN_LEN = 10  # characters of a run token (see run_token)
STALE_TMP_AGE = dt.timedelta(days=7)


def data_root() -> Path:
    """``CC_INTAKE_DATA_ROOT``, else ``$AIRFLOW_HOME/data`` (read at run time, never at parse)."""
    explicit = os.environ.get("CC_INTAKE_DATA_ROOT")
    if explicit:
        return Path(explicit)
    home = os.environ.get("AIRFLOW_HOME") or str(Path("~/airflow").expanduser())
    return Path(home) / "data"


class DayLayout:
    """The paths of one provider-day partition."""

    def __init__(self, root: Path, provider: str, day: dt.date) -> None:
        self.root = Path(os.path.abspath(root))
        self.provider = provider
        self.day = day
        self._recording_dirs: dict[str, Path] = {}

    @property
    def _day(self) -> str:
        return self.day.isoformat()

    def recordings_dir(self, direction: str) -> Path:
        return safe_join(self.root, "recordings", self.provider, self._day, direction)

    def recording(self, direction: str, rel_name: str) -> Path:
        # Called once per file of the day: the folder is proved once, then each component of
        # ``rel_name`` (no "", ".", "..", separator or control character: it cannot climb out).
        folder = self._recording_dirs.get(direction)
        if folder is None:
            folder = self._recording_dirs[direction] = self.recordings_dir(direction)
        if not is_safe_rel_name(rel_name):
            return safe_join(folder, rel_name)  # raises, naming the bad component
        return folder / rel_name

    @property
    def reports_dir(self) -> Path:
        return safe_join(self.root, "reports", self.provider, self._day)

    @property
    def digital_dir(self) -> Path:
        return safe_join(self.root, "digital", self.provider, self._day)

    @property
    def manifest(self) -> Path:
        return safe_join(self.root, "manifests", self.provider, f"{self._day}.csv")

    @property
    def quality_dir(self) -> Path:
        return safe_join(self.root, "quality", self.provider, self._day)

    @property
    def lock(self) -> Path:
        """The day's lock file: under ``locks/``, never among the proof files (contract §8)."""
        return safe_join(self.root, "locks", self.provider, f"{self._day}.lock")


def run_token(run_id: str) -> str:
    """A short, filesystem-safe token unique to a DAG run (stable across its retries)."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:TOKEN_LEN]


def make_dirs(path: Path, *, stop_at: Path | None = None) -> None:
    """Create ``path`` and its missing parents with mode 0750, whatever the umask.

    With ``stop_at`` (the data root), that folder is created too and nothing above it.
    """
    if stop_at is not None:
        stop_at.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    missing = []
    current = path
    while not current.exists() and current != stop_at and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # a concurrent run of the day made it first
            folder.mkdir(mode=DIR_MODE)
        os.chmod(folder, DIR_MODE)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_name_for(name: str, token: str, *, tag: str = "") -> str:
    """The temporary name beside a file called ``name`` (see :func:`tmp_path_for`)."""
    suffix = f".{tag}" if tag else ""
    return f".{name}.{token}{suffix}{TMP_SUFFIX}"


def tmp_path_for(final: Path, token: str, *, tag: str = "") -> Path:
    """The temporary sibling of ``final`` for one run (and one remote version, for resumes)."""
    return final.with_name(tmp_name_for(final.name, token, tag=tag))


def resume_tag(size: int, mtime: int) -> str:
    """The remote version a recording's temporary file holds bytes of (its size and mtime)."""
    return f"{size}-{mtime}"


def longest_tmp_name(name: str, *, size: int, mtime: int) -> str:
    """The longest name we create beside a landed file ``name``: its resumable copy's ``.part``.

    The file-name check (:func:`include.cc_intake.naming.fits_on_disk`) measures this, not the
    final name: a name that fits but whose temporary name does not would fail every run.
    """
    return tmp_name_for(name, "0" * TOKEN_LEN, tag=resume_tag(size, mtime))


@contextlib.contextmanager
def atomic_writer(
    final: Path,
    token: str,
    *,
    root: Path | None = None,
    binary: bool = False,
    mode: int = FILE_MODE,
) -> Iterator[IO]:
    """Write to a temporary sibling, fsync, then rename onto ``final``; nothing on failure.

    On any failure (a full disk raises at a write, at the flush on close or at the fsync) the
    temporary file is removed and ``final`` keeps its previous content. Text mode is UTF-8
    with no newline translation. ``root`` bounds the folders created. ``mode`` is the file's
    from its creation (0640 for what lands; the sandbox's private keys and mailbox use 0600).
    """
    make_dirs(final.parent, stop_at=root)
    tmp = tmp_path_for(final, token)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        handle = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def storage_errors(final: Path, *, provider: str, day: str, what: str) -> Iterator[None]:
    """Turn a refused write of ``final`` (disk full, quota, file too large) into a StorageError.

    Meant around :func:`atomic_writer`, which has already removed its temporary file when the
    error reaches here: whatever was under ``final`` before is still there, whole.
    """
    try:
        yield
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0)
        reason = f"{exc.strerror} ({code})" if exc.strerror and code else str(exc)
        raise StorageError(
            f"{provider} {day}: cannot write the {what} {final}: {reason}. Nothing was replaced: "
            f"the previous {what}, if any, is left as it was. Free space on the data root, "
            "then re-run the day.",
            provider=provider,
            day=day,
            path=str(final),
        ) from exc


def remove_stale_tmp(
    folder: Path, *, older_than: dt.timedelta = STALE_TMP_AGE, token: str = ""
) -> int:
    """Remove our temporary files under ``folder`` older than ``older_than``.

    With ``token``, only that run's files (another run of the same day may be copying).
    """
    if not folder.is_dir():
        return 0
    limit = time.time() - older_than.total_seconds()
    removed = 0
    glob = f".*.{token}.*{TMP_SUFFIX}" if token else f".*{TMP_SUFFIX}"
    for path in folder.rglob(glob):
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and path.stat().st_mtime < limit:
                path.unlink()
                removed += 1
    return removed
