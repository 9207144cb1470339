"""Landing paths, modes and temporary files (contract §4, §5 and §7 *Housekeeping*)."""

from __future__ import annotations

import datetime as dt
import os
import stat
import time
from pathlib import Path

import pytest

from include.cc_intake.errors import UnsafePathError
from include.cc_intake.layout import (
    DIR_MODE,
    FILE_MODE,
    TOKEN_LEN,
    DayLayout,
    atomic_writer,
    longest_tmp_name,
    make_dirs,
    remove_stale_tmp,
    run_token,
    tmp_path_for,
)

DAY = dt.date(2026, 11, 20)


def test_day_layout_puts_each_kind_in_its_dated_folder(tmp_path: Path) -> None:
    layout = DayLayout(tmp_path, "acme", DAY)
    assert layout.recording("ENTRANTS", "a/b.wav") == (
        tmp_path / "recordings" / "acme" / "2026-11-20" / "ENTRANTS" / "a" / "b.wav"
    )
    assert layout.manifest == tmp_path / "manifests" / "acme" / "2026-11-20.csv"
    assert layout.quality_dir == tmp_path / "quality" / "acme" / "2026-11-20"
    assert layout.digital_dir == tmp_path / "digital" / "acme" / "2026-11-20"
    assert layout.reports_dir == tmp_path / "reports" / "acme" / "2026-11-20"
    # The lock is never among the published proof files.
    assert layout.lock == tmp_path / "locks" / "acme" / "2026-11-20.lock"
    assert layout.quality_dir not in layout.lock.parents


@pytest.mark.parametrize("name", ["../escape.wav", "a/../../b.wav", "/etc/passwd", "a\\b.wav"])
def test_a_remote_name_never_lands_outside_its_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafePathError):
        DayLayout(tmp_path, "acme", DAY).recording("ENTRANTS", name)


def test_one_layout_checks_every_name_after_its_folder_is_known(tmp_path: Path) -> None:
    # The day's folder is proved once per direction; each name is still checked on its own.
    layout = DayLayout(tmp_path, "acme", DAY)
    assert layout.recording("ENTRANTS", "b.wav").parent == layout.recordings_dir("ENTRANTS")
    for name in ("../escape.wav", "a//b.wav", "./b.wav", "a/./b.wav", "x\x00.wav"):
        with pytest.raises(UnsafePathError):
            layout.recording("ENTRANTS", name)
    with pytest.raises(UnsafePathError):
        layout.recording("../ENTRANTS", "b.wav")


def test_run_token_is_stable_short_and_unique_per_run() -> None:
    token = run_token("scheduled__2026-11-21T02:30:00+00:00")
    assert token == run_token("scheduled__2026-11-21T02:30:00+00:00")
    assert len(token) == TOKEN_LEN and token.isalnum()
    assert token != run_token("manual__2026-11-21T02:30:00+00:00")


def test_temporary_names_are_hidden_siblings_and_the_longest_one_is_measured() -> None:
    final = Path("/data/x/call.wav")
    assert tmp_path_for(final, "tok", tag="10-20") == Path("/data/x/.call.wav.tok.10-20.part")
    longest = longest_tmp_name("call.wav", size=10, mtime=20)
    assert longest == ".call.wav." + "0" * TOKEN_LEN + ".10-20.part"


def test_make_dirs_uses_landing_modes_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        make_dirs(tmp_path / "root" / "a" / "b", stop_at=tmp_path / "root")
    finally:
        os.umask(old)
    for folder in (tmp_path / "root", tmp_path / "root" / "a", tmp_path / "root" / "a" / "b"):
        assert stat.S_IMODE(folder.stat().st_mode) == DIR_MODE, folder


def test_atomic_writer_publishes_whole_files_or_nothing(tmp_path: Path) -> None:
    final = tmp_path / "out" / "manifest.csv"
    with atomic_writer(final, "tok", root=tmp_path) as handle:
        handle.write("first\n")
    assert final.read_text() == "first\n"
    assert stat.S_IMODE(final.stat().st_mode) == FILE_MODE

    with pytest.raises(RuntimeError), atomic_writer(final, "tok", root=tmp_path) as handle:
        handle.write("half of the second")
        raise RuntimeError("interrupted")
    assert final.read_text() == "first\n"  # the previous version stays whole
    assert sorted(p.name for p in final.parent.iterdir()) == ["manifest.csv"]  # no temp left


def test_remove_stale_tmp_spares_fresh_files_and_other_runs(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    mine = folder / ".a.wav.tok1.5-6.part"
    other = folder / ".b.wav.tok2.5-6.part"
    old = folder / ".c.wav.tok3.5-6.part"
    landed = folder / "a.wav"
    for path in (mine, other, old, landed):
        path.write_bytes(b"x")
    week_ago = time.time() - 8 * 86400
    os.utime(old, (week_ago, week_ago))

    assert remove_stale_tmp(folder) == 1  # only the one older than 7 days
    assert not old.exists() and mine.exists() and other.exists()
    assert remove_stale_tmp(folder, older_than=dt.timedelta(0), token="tok1") == 1
    assert not mine.exists() and other.exists() and landed.exists()
