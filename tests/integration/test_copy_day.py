"""The voice day against real SFTP servers: copy, re-run, change, interruption, hostile entries."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import stat
import threading
import time
import unicodedata
from pathlib import Path

import asyncssh
import pytest

from include.cc_intake.config import ProviderConfig
from include.cc_intake.layout import DayLayout, resume_tag, tmp_path_for
from include.cc_intake.manifest import ManifestRow, read_manifest
from include.cc_intake.recordings import copy_day
from tests.helpers import parse_provider, provider_dict
from tests.integration.servers import ServerHandle

pytestmark = pytest.mark.integration

DAY = dt.date(2026, 11, 25)
OLD = time.time() - 3 * 3600


def make_provider(server: ServerHandle, **recordings: object) -> ProviderConfig:
    data = provider_dict()
    data["recordings"]["directions"] = {
        "ENTRANTS": server.remote("/exports/inbound/{date:%Y%m%d}"),
        "SORTANTS": server.remote("/exports/outbound/{date:%Y%m%d}"),
    }
    data["recordings"].update(recordings)
    return parse_provider(data, source=Path("test.yaml"))


def put(server: ServerHandle, rel: str, content: bytes, mtime: float = OLD) -> Path:
    path = server.files / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (mtime, mtime))
    return path


def seed_day(server: ServerHandle) -> dict[str, bytes]:
    files = {
        "exports/inbound/20261125/20261125_080102_AG01_C1001.wav": os.urandom(300_000),
        "exports/inbound/20261125/20261125_091500_AG02_C1002.wav": os.urandom(5_000),
        "exports/inbound/20261125/20261125_101500_AG02_C1003.mp3": os.urandom(70_000),
        "exports/outbound/20261125/20261125_110000_AG03_C2001.wav": os.urandom(120_000),
    }
    for rel, content in files.items():
        put(server, rel, content)
    return files


def run_copy(server: ServerHandle, cfg: ProviderConfig, root: Path, run_id: str = "run-1"):
    async def go():
        async with server.sftp() as sftp:
            return await copy_day(sftp, cfg, DAY, layout=DayLayout(root, cfg.id, DAY), token=run_id)

    return asyncio.run(go())


def landed(root: Path, rel_remote: str) -> Path:
    direction = "ENTRANTS" if "/inbound/" in rel_remote else "SORTANTS"
    return root / "recordings/acme_abidjan/2026-11-25" / direction / Path(rel_remote).name


def test_full_day_lands_byte_identical(sftp_server: ServerHandle, tmp_path: Path) -> None:
    files = seed_day(sftp_server)
    root = tmp_path / "data"
    summary = run_copy(sftp_server, make_provider(sftp_server), root)
    assert summary.failures == []
    assert summary.directions["ENTRANTS"]["copied"] == 3
    assert summary.directions["SORTANTS"]["copied"] == 1
    for rel, content in files.items():
        path = landed(root, rel)
        assert path.read_bytes() == content
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750
    rows = {
        r.file_name: r
        for r in read_manifest(root / "manifests/acme_abidjan/2026-11-25.csv", ["call_id"])
    }
    assert len(rows) == 4
    for rel, content in files.items():
        row = rows[Path(rel).name]
        assert row.status == "copied"
        assert row.sha256 == hashlib.sha256(content).hexdigest()
        assert row.size_bytes == len(content)
    assert not list(root.rglob("*.part"))


def test_rerun_converges_and_rewrites_nothing(sftp_server: ServerHandle, tmp_path: Path) -> None:
    files = seed_day(sftp_server)
    root = tmp_path / "data"
    cfg = make_provider(sftp_server)
    run_copy(sftp_server, cfg, root)
    before = {rel: landed(root, rel).stat() for rel in files}
    manifest = root / "manifests/acme_abidjan/2026-11-25.csv"
    first = read_manifest(manifest)
    summary = run_copy(sftp_server, cfg, root, run_id="run-2")
    assert summary.directions["ENTRANTS"] == {
        "folder_found": True,
        "copied": 0,
        "skipped_identical": 3,
        "kept": 0,
        "failed": 0,
        "rejected": {},
        "bytes": sum(len(c) for r, c in files.items() if "/inbound/" in r),
    }
    for rel, old in before.items():
        now = landed(root, rel).stat()
        assert (now.st_ino, now.st_mtime_ns) == (old.st_ino, old.st_mtime_ns)
    second = read_manifest(manifest)
    assert [r.status for r in second] == ["skipped_identical"] * 4
    # copied_at keeps the first copy's time; nothing else moves.
    assert [(r.file_name, r.sha256, r.copied_at) for r in second] == [
        (r.file_name, r.sha256, r.copied_at) for r in first
    ]


def test_changed_remote_file_is_copied_again(sftp_server: ServerHandle, tmp_path: Path) -> None:
    seed_day(sftp_server)
    root = tmp_path / "data"
    cfg = make_provider(sftp_server)
    run_copy(sftp_server, cfg, root)
    rel = "exports/inbound/20261125/20261125_091500_AG02_C1002.wav"
    new = os.urandom(7_000)
    put(sftp_server, rel, new, mtime=OLD + 60)
    summary = run_copy(sftp_server, cfg, root, run_id="run-2")
    assert summary.directions["ENTRANTS"]["copied"] == 1
    assert summary.directions["ENTRANTS"]["skipped_identical"] == 2
    assert landed(root, rel).read_bytes() == new


def test_hostile_entries_are_rejected_not_dropped(
    sftp_server: ServerHandle, tmp_path: Path
) -> None:
    seed_day(sftp_server)
    folder = sftp_server.files / "exports/inbound/20261125"
    (folder / "20261125_120000_AG09_C666.wav").symlink_to("/etc/passwd")
    put(sftp_server, "exports/inbound/20261125/20261125_120100_AG09_C667.wav", b"")
    put(sftp_server, "exports/inbound/20261125/20261124_235959_AG09_C668.wav", b"old")
    put(sftp_server, "exports/inbound/20261125/notes de l'agent.txt", b"hello")
    put(sftp_server, "exports/inbound/20261125/20261125_1201\x1b_AG09_C669.wav", b"esc")
    root = tmp_path / "data"
    summary = run_copy(sftp_server, make_provider(sftp_server), root)
    assert summary.directions["ENTRANTS"]["rejected"] == {
        "not_regular_file": 1,
        "empty": 1,
        "other_date": 1,
        "pattern_mismatch": 1,
        "unsafe_name": 1,
    }
    rows = read_manifest(root / "manifests/acme_abidjan/2026-11-25.csv")
    rejected = {r.file_name: r.reason for r in rows if r.status == "rejected"}
    assert rejected["20261125_120000_AG09_C666.wav"] == "not_regular_file"
    assert all(not r.sha256 for r in rows if r.status == "rejected")
    landed_names = {p.name for p in (root / "recordings").rglob("*") if p.is_file()}
    assert "20261125_120000_AG09_C666.wav" not in landed_names
    assert not any(
        "passwd" in p.read_text(errors="ignore")[:20]
        for p in (root / "recordings").rglob("*.wav")
        if p.is_file()
    )


def test_interrupted_copy_leaves_no_partial_and_resumes(
    sftp_server: ServerHandle, tmp_path: Path
) -> None:
    big = os.urandom(6_000_000)
    rel = "exports/inbound/20261125/20261125_080102_AG01_C1001.wav"
    put(sftp_server, rel, big)
    root = tmp_path / "data"
    # A bandwidth cap slows the copy so the line can be cut in the middle of the file.
    cfg = make_provider(sftp_server, max_bandwidth="2MB", max_parallel=1)
    final = landed(root, rel)
    tmp_dir = final.parent

    def cut_when_half_done() -> None:
        limit = time.monotonic() + 20
        while time.monotonic() < limit:
            parts = list(tmp_dir.glob(".*.part")) if tmp_dir.exists() else []
            if parts and parts[0].stat().st_size > 1_500_000:
                sftp_server.drop()
                return
            time.sleep(0.02)

    cutter = threading.Thread(target=cut_when_half_done)
    cutter.start()
    summary = run_copy(sftp_server, cfg, root)
    cutter.join()
    assert len(summary.failures) == 1
    assert not final.exists()
    parts = list(tmp_dir.glob(".*.part"))
    assert len(parts) == 1
    kept = parts[0].stat().st_size
    assert 0 < kept < len(big)

    fast = make_provider(sftp_server)
    retry = run_copy(sftp_server, fast, root)  # same run id: a retry of the same run
    assert retry.failures == []
    assert final.read_bytes() == big
    assert not list(tmp_dir.glob(".*.part"))
    rows = read_manifest(root / "manifests/acme_abidjan/2026-11-25.csv")
    assert rows[0].sha256 == hashlib.sha256(big).hexdigest()


def test_recursive_folders_keep_their_sub_path(sftp_server: ServerHandle, tmp_path: Path) -> None:
    nested = "exports/inbound/20261125/site_b/20261125_120000_AG05_C3001.wav"
    top = "exports/inbound/20261125/20261125_080102_AG01_C1001.wav"
    put(sftp_server, nested, b"n" * 1000)
    put(sftp_server, top, b"t" * 1000)
    root = tmp_path / "data"
    summary = run_copy(sftp_server, make_provider(sftp_server, recursive=True), root)
    assert summary.failures == []
    day_dir = root / "recordings/acme_abidjan/2026-11-25/ENTRANTS"
    assert (day_dir / "site_b/20261125_120000_AG05_C3001.wav").read_bytes() == b"n" * 1000
    assert (day_dir / "20261125_080102_AG01_C1001.wav").read_bytes() == b"t" * 1000
    rows = read_manifest(root / "manifests/acme_abidjan/2026-11-25.csv")
    assert {r.file_name for r in rows} == {
        "site_b/20261125_120000_AG05_C3001.wav",
        "20261125_080102_AG01_C1001.wav",
    }
    # Without `recursive`, the sub-folder is an entry that is not a regular file: listed, not lost.
    flat = run_copy(sftp_server, make_provider(sftp_server), tmp_path / "flat")
    assert flat.directions["ENTRANTS"]["rejected"] == {"not_regular_file": 1}


# --- issue #10, items 1, 3 and 4 (manifest integrity) ----------------------------------------

MANIFEST = "manifests/acme_abidjan/2026-11-25.csv"


def manifest_rows(root: Path) -> dict[str, ManifestRow]:
    return {r.file_name: r for r in read_manifest(root / MANIFEST, ["call_id"])}


def purge(server: ServerHandle, rel: str) -> None:
    """The provider moves a file out of the day's folder (archive, purge)."""
    archive = server.files / "archive" / Path(rel).name
    archive.parent.mkdir(parents=True, exist_ok=True)
    (server.files / rel).rename(archive)


def block_tmp(root: Path, rel_remote: str, token: str, size: int, mtime: float) -> Path:
    """Make the copy of one version of a file fail here: a folder sits on its temporary name."""
    final = landed(root, rel_remote)
    blocker = tmp_path_for(final, token, tag=resume_tag(size, int(mtime)))
    blocker.mkdir(parents=True)
    return blocker


def test_item1_rerun_keeps_rows_of_files_gone_from_remote(
    sftp_server: ServerHandle, tmp_path: Path
) -> None:
    files = seed_day(sftp_server)
    root = tmp_path / "data"
    cfg = make_provider(sftp_server)
    run_copy(sftp_server, cfg, root)
    first = manifest_rows(root)
    gone = [
        "exports/inbound/20261125/20261125_080102_AG01_C1001.wav",
        "exports/inbound/20261125/20261125_091500_AG02_C1002.wav",
    ]
    for rel in gone:
        purge(sftp_server, rel)
    # The whole outbound folder is archived too.
    (sftp_server.files / "exports/outbound/20261125").rename(sftp_server.files / "archive/out")

    summary = run_copy(sftp_server, cfg, root, run_id="run-2")
    assert summary.failures == []
    rows = manifest_rows(root)
    assert set(rows) == set(first)  # 4 rows, not 1
    held = [Path(r).name for r in gone] + ["20261125_110000_AG03_C2001.wav"]
    for name in held:
        assert (rows[name].status, rows[name].reason) == ("kept", "gone_from_remote")
        # The proof earned by the first run: same SHA-256, first copied_at, same groups.
        assert rows[name].sha256 == first[name].sha256
        assert rows[name].copied_at == first[name].copied_at
        assert rows[name].groups == first[name].groups
    assert rows["20261125_101500_AG02_C1003.mp3"].status == "skipped_identical"
    assert summary.directions["ENTRANTS"]["kept"] == 2
    assert summary.directions["SORTANTS"]["kept"] == 1
    assert summary.directions["SORTANTS"]["folder_found"] is False
    assert summary.directions["ENTRANTS"]["bytes"] == sum(
        len(c) for r, c in files.items() if "/inbound/" in r
    )

    # Kept stays kept on later re-runs, with the same proof.
    run_copy(sftp_server, cfg, root, run_id="run-3")
    again = manifest_rows(root)
    assert {n: (r.status, r.sha256, r.copied_at) for n, r in again.items()} == {
        n: (r.status, r.sha256, r.copied_at) for n, r in rows.items()
    }

    # A file we no longer hold whole and that is gone is simply absent.
    landed(root, gone[0]).unlink()
    landed(root, gone[1]).write_bytes(b"truncated")
    run_copy(sftp_server, cfg, root, run_id="run-4")
    assert set(manifest_rows(root)) == {
        "20261125_101500_AG02_C1003.mp3",
        "20261125_110000_AG03_C2001.wav",
    }


def test_item1_a_kept_file_back_on_the_server_is_skipped(
    sftp_server: ServerHandle, tmp_path: Path
) -> None:
    seed_day(sftp_server)
    root = tmp_path / "data"
    cfg = make_provider(sftp_server)
    run_copy(sftp_server, cfg, root)
    rel = "exports/inbound/20261125/20261125_091500_AG02_C1002.wav"
    first = manifest_rows(root)[Path(rel).name]
    purge(sftp_server, rel)
    run_copy(sftp_server, cfg, root, run_id="run-2")
    (sftp_server.files / "archive" / Path(rel).name).rename(sftp_server.files / rel)
    summary = run_copy(sftp_server, cfg, root, run_id="run-3")
    row = manifest_rows(root)[Path(rel).name]
    assert (row.status, row.reason, row.sha256, row.copied_at) == (
        "skipped_identical",
        "",
        first.sha256,
        first.copied_at,
    )
    assert summary.directions["ENTRANTS"]["copied"] == 0


def test_item3_a_name_too_long_for_the_disk_is_rejected_not_stuck(
    sftp_server: ServerHandle, tmp_path: Path
) -> None:
    seed_day(sftp_server)
    # 141 characters, 90 of them "é": 231 bytes, so the final name would fit, its .part not.
    agent = "é" * 90 + "x" * 25
    name = f"20261125_093000_{agent}_C1009.wav"
    assert len(name) == 141 and len(name.encode()) == 231
    put(sftp_server, f"exports/inbound/20261125/{name}", b"v" * 1000)
    root = tmp_path / "data"
    cfg = make_provider(sftp_server)
    for run in ("run-1", "run-2"):  # the same answer every run, never a failure
        summary = run_copy(sftp_server, cfg, root, run_id=run)
        assert summary.failures == []
        assert summary.directions["ENTRANTS"]["rejected"] == {"name_too_long": 1}
        row = manifest_rows(root)[name]
        assert (row.status, row.reason, row.sha256) == ("rejected", "name_too_long", "")
    assert len(manifest_rows(root)) == 5
    assert not list(root.rglob("*.part"))


def test_item3_a_failed_copy_gets_a_failed_row(sftp_server: ServerHandle, tmp_path: Path) -> None:
    files = seed_day(sftp_server)
    root = tmp_path / "data"
    cfg = make_provider(sftp_server)
    rel = "exports/inbound/20261125/20261125_091500_AG02_C1002.wav"
    blocker = block_tmp(root, rel, "run-1", len(files[rel]), OLD)
    summary = run_copy(sftp_server, cfg, root)
    # The task still fails naming the file (CopyRecordingsOperator raises on failures) …
    assert len(summary.failures) == 1 and Path(rel).name in summary.failures[0]
    assert summary.directions["ENTRANTS"]["failed"] == 1
    # … and the manifest has one row for every remote entry, the failed one included.
    rows = manifest_rows(root)
    assert len(rows) == 4
    row = rows[Path(rel).name]
    assert (row.status, row.sha256, row.copied_at) == ("failed", "", "")
    assert "IsADirectoryError" in row.reason and "\n" not in row.reason
    assert row.size_bytes == len(files[rel]) and row.groups["call_id"] == "C1002"
    assert not landed(root, rel).exists()

    # The next run copies it again: a failed row is never taken for a landed file.
    blocker.rmdir()
    retry = run_copy(sftp_server, cfg, root)
    assert retry.failures == []
    assert retry.directions["ENTRANTS"]["copied"] == 1
    row = manifest_rows(root)[Path(rel).name]
    assert row.status == "copied"
    assert row.sha256 == hashlib.sha256(files[rel]).hexdigest()


def test_item3_a_failed_recopy_keeps_the_earlier_copy_proof(
    sftp_server: ServerHandle, tmp_path: Path
) -> None:
    files = seed_day(sftp_server)
    root = tmp_path / "data"
    cfg = make_provider(sftp_server)
    run_copy(sftp_server, cfg, root)
    rel = "exports/inbound/20261125/20261125_091500_AG02_C1002.wav"
    first = manifest_rows(root)[Path(rel).name]
    new = os.urandom(7_000)
    put(sftp_server, rel, new, mtime=OLD + 60)  # a re-delivery …
    block_tmp(root, rel, "run-2", len(new), OLD + 60)  # … whose copy fails here

    for run in ("run-2", "run-2"):  # a failed re-copy, then its failed retry
        summary = run_copy(sftp_server, cfg, root, run_id=run)
        assert len(summary.failures) == 1
        row = manifest_rows(root)[Path(rel).name]
        # The row proves the bytes we still hold: the earlier version, whole, untouched.
        assert row.status == "failed"
        assert (row.size_bytes, row.sha256, row.copied_at, row.remote_mtime) == (
            first.size_bytes,
            first.sha256,
            first.copied_at,
            first.remote_mtime,
        )
        assert "holding the earlier copy" in row.reason and "7000 bytes" in row.reason
        assert landed(root, rel).read_bytes() == files[rel]
        assert summary.directions["ENTRANTS"]["failed"] == 1
        assert summary.directions["ENTRANTS"]["copied"] == 0

    # Then the provider purges it: the earlier copy is still held, so still proven.
    purge(sftp_server, rel)
    run_copy(sftp_server, cfg, root, run_id="run-3")
    row = manifest_rows(root)[Path(rel).name]
    assert (row.status, row.reason, row.sha256, row.copied_at) == (
        "kept",
        "gone_from_remote",
        first.sha256,
        first.copied_at,
    )


def test_item4_nfc_and_nfd_spellings_land_once(sftp_server: ServerHandle, tmp_path: Path) -> None:
    nfc = unicodedata.normalize("NFC", "20261125_093000_Aimé_C1010.wav")
    nfd = unicodedata.normalize("NFD", nfc)
    put(sftp_server, f"exports/inbound/20261125/{nfc}", b"a" * 1000)
    put(sftp_server, f"exports/inbound/20261125/{nfd}", b"b" * 1000)
    bidi = "20261125_093100_AG\u202e vaw.exe_C1011.wav"
    put(sftp_server, f"exports/inbound/20261125/{bidi}", b"c" * 1000)
    root = tmp_path / "data"
    summary = run_copy(sftp_server, make_provider(sftp_server), root)
    assert summary.failures == []
    assert summary.directions["ENTRANTS"]["copied"] == 1
    assert summary.directions["ENTRANTS"]["rejected"] == {
        "duplicate_name": 1,
        "unsafe_name": 1,
    }
    rows = manifest_rows(root)
    assert sorted(r.status for n, r in rows.items() if n in (nfc, nfd)) == ["copied", "rejected"]
    assert rows[bidi].reason == "unsafe_name"
    day_dir = root / "recordings/acme_abidjan/2026-11-25/ENTRANTS"
    assert len([p for p in day_dir.iterdir() if p.is_file()]) == 1


def test_a_raw_client_with_open_session_closes_its_further_sessions(
    sftp_server: ServerHandle, tmp_path: Path
) -> None:
    """``copy_day(sftp, open_session=...)`` wraps the client itself, so it also closes the
    further sessions it opened (in the background during the manifest), before it returns."""
    import contextlib
    from collections.abc import AsyncIterator

    files = seed_day(sftp_server)
    cfg = make_provider(sftp_server, connections=2)
    states: list[str] = []

    async def go():
        async with sftp_server.sftp() as sftp, sftp_server.sftp() as two:

            @contextlib.asynccontextmanager
            async def further() -> AsyncIterator[asyncssh.SFTPClient]:
                states.append("open")  # already connected: it is open before the copy ends
                yield two
                await asyncio.sleep(0.01)  # a goodbye that takes a while
                states.append("closed")

            summary = await copy_day(
                sftp,
                cfg,
                DAY,
                layout=DayLayout(tmp_path, cfg.id, DAY),
                token="run-1",
                open_session=further,
            )
            assert states == ["open", "closed"]  # before the first session's own close
            return summary

    summary = asyncio.run(go())
    assert not summary.failures
    assert sum(d["copied"] for d in summary.directions.values()) == len(files)


def test_a_further_session_that_fails_to_close_does_not_fail_a_complete_copy(
    sftp_server: ServerHandle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The further sessions close after the manifest: a goodbye that fails is logged, and the
    day's copy (complete, its manifest written) is not turned into a failure."""
    import contextlib
    from collections.abc import AsyncIterator

    files = seed_day(sftp_server)
    cfg = make_provider(sftp_server, connections=2)

    async def go():
        async with sftp_server.sftp() as sftp, sftp_server.sftp() as two:

            @contextlib.asynccontextmanager
            async def further() -> AsyncIterator[asyncssh.SFTPClient]:
                yield two
                raise ConnectionResetError("the server went away during the goodbye")

            return await copy_day(
                sftp,
                cfg,
                DAY,
                layout=DayLayout(tmp_path, cfg.id, DAY),
                token="run-1",
                open_session=further,
            )

    with caplog.at_level("WARNING", logger="include.cc_intake.recordings"):
        summary = asyncio.run(go())
    assert not summary.failures
    assert sum(d["copied"] for d in summary.directions.values()) == len(files)
    assert Path(summary.manifest).is_file()
    assert "did not close cleanly: ConnectionResetError" in caplog.text
