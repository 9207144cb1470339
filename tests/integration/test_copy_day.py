"""The voice day against real SFTP servers: copy, re-run, change, interruption, hostile entries."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from include.cc_intake.config import ProviderConfig
from include.cc_intake.layout import DayLayout
from include.cc_intake.manifest import read_manifest
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
