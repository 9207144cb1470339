"""The per-day lock: one writer at a time of a provider-day's proof and summary."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from include.cc_intake.layout import FILE_MODE, make_dirs

if TYPE_CHECKING:
    from include.cc_intake.layout import DayLayout


@contextlib.contextmanager
def day_lock(layout: DayLayout) -> Iterator[None]:
    """Serialise proof + summary writes of one day (recordings and digital run in parallel).

    The lock file is ``layout.lock`` (``locks/<provider>/<day>.lock``): kept out of the proof
    folder, which holds only what the proof consists of. Folders 0750 and the file 0640 like
    every landed file, whatever the umask.
    """
    import fcntl

    make_dirs(layout.lock.parent, stop_at=layout.root)
    try:
        fd = os.open(layout.lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
    except FileExistsError:  # made by an earlier run, or by the other task of this run
        fd = os.open(layout.lock, os.O_RDWR)
    with os.fdopen(fd, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
