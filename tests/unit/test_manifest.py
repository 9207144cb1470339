from __future__ import annotations

import csv
import datetime as dt
import os
import stat
from pathlib import Path

import pytest

from include.cc_intake.manifest import (
    LEADING_COLUMNS,
    RECEIVED,
    ManifestRow,
    can_skip,
    held_index,
    is_received,
    iso_utc,
    landed_index,
    read_manifest,
    read_records,
    still_held,
    write_manifest,
)


def row(name: str, status: str = "copied", **kw: object) -> ManifestRow:
    base: dict = dict(
        direction="ENTRANTS",
        file_name=name,
        remote_path=f"/in/{name}",
        size_bytes=10,
        remote_mtime="2026-11-25T09:30:12Z",
        sha256="ab" * 32 if status != "rejected" else "",
        copied_at="2026-11-26T02:31:00Z" if status != "rejected" else "",
        status=status,
        reason="empty" if status == "rejected" else "",
        groups={"call_id": name[:3], "date": "20261125"},
    )
    base.update(kw)
    return ManifestRow(**base)


def test_iso_utc() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00Z"
    moment = dt.datetime(2026, 11, 25, 10, 0, 0, 123, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert iso_utc(moment) == "2026-11-25T09:00:00Z"
    # Numbers (listing mtimes) and datetimes give the same text, fractions dropped.
    for seconds in (1, 59.999, 1_795_000_000, 4_102_444_799):
        moment = dt.datetime.fromtimestamp(int(seconds), tz=dt.UTC)
        assert iso_utc(seconds) == iso_utc(moment)


def test_round_trip_with_columns_in_contract_order(tmp_path: Path) -> None:
    path = tmp_path / "manifests" / "acme" / "2026-11-25.csv"
    rows = [
        row("b.wav", extra={"codec": "alaw"}),
        row("a.wav"),
        row("z.txt", "rejected", groups={}),
    ]
    write_manifest(path, rows, group_names=["date", "call_id"], token="t", root=tmp_path)
    with path.open() as handle:
        header = next(csv.reader(handle))
    assert header == [*LEADING_COLUMNS, "call_id", "date", "codec"]
    back = read_manifest(path, ["call_id", "date"])
    assert [r.file_name for r in back] == ["a.wav", "b.wav", "z.txt"]
    assert back[1].extra["codec"] == "alaw"
    assert back[2].sha256 == "" and back[2].reason == "empty"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o750
    assert not list(path.parent.glob(".*.part"))


def test_one_reader_for_the_rows_and_the_raw_records(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    rows = [row("a.wav"), row("z.txt", "rejected")]
    write_manifest(path, rows, group_names=["call_id", "date"], token="t", root=tmp_path)
    header, records = read_records(path)
    assert header == [*LEADING_COLUMNS, "call_id", "date"]
    assert [(r["file_name"], r["status"], r["size_bytes"], r["call_id"]) for r in records] == [
        ("a.wav", "copied", "10", "a.w"),
        ("z.txt", "rejected", "10", "z.t"),
    ]
    assert [r.file_name for r in read_manifest(path, ["call_id"])] == ["a.wav", "z.txt"]


def test_a_missing_manifest_is_an_empty_day_but_the_raw_reader_says_so(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    assert read_manifest(tmp_path / "absent.csv") == []
    assert read_manifest(tmp_path / "a-file" / "m.csv") == []  # a file where a folder should be
    with pytest.raises(FileNotFoundError):  # the reconciliation names it (ManifestError)
        read_records(tmp_path / "absent.csv")


def test_rewrite_never_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    for _ in range(3):
        write_manifest(path, [row("a.wav")], group_names=["call_id"], token="t", root=tmp_path)
    assert len(read_manifest(path)) == 1


def test_can_skip_requires_same_remote_version_and_landed_file(tmp_path: Path) -> None:
    landed = tmp_path / "a.wav"
    landed.write_bytes(b"x" * 10)
    previous = landed_index([row("a.wav")])[("ENTRANTS", "a.wav")]
    mtime = "2026-11-25T09:30:12Z"
    assert can_skip(previous, size=10, remote_mtime=mtime, landed=landed)
    assert not can_skip(previous, size=11, remote_mtime=mtime, landed=landed)
    assert not can_skip(previous, size=10, remote_mtime="2026-11-25T10:00:00Z", landed=landed)
    assert not can_skip(None, size=10, remote_mtime=mtime, landed=landed)
    landed.write_bytes(b"x" * 5)  # truncated locally: copy again
    assert not can_skip(previous, size=10, remote_mtime=mtime, landed=landed)
    landed.unlink()
    assert not can_skip(previous, size=10, remote_mtime=mtime, landed=landed)


def test_rejected_rows_are_not_landed() -> None:
    assert landed_index([row("z.txt", "rejected")]) == {}


# --- issue #10, items 1 and 3: kept and failed rows


def test_item1_kept_rows_are_received_skippable_and_keep_their_proof(tmp_path: Path) -> None:
    copied = row("a.wav")
    kept = copied.as_kept()
    assert (kept.status, kept.reason) == ("kept", "gone_from_remote")
    assert (kept.sha256, kept.copied_at, kept.size_bytes) == (
        copied.sha256,
        copied.copied_at,
        copied.size_bytes,
    )
    assert kept.landed and is_received("kept")
    assert {"copied", "skipped_identical", "kept"} == RECEIVED
    landed = tmp_path / "a.wav"
    landed.write_bytes(b"x" * 10)
    # Back on the server, unchanged: skipped like any received file.
    previous = landed_index([kept])[("ENTRANTS", "a.wav")]
    assert can_skip(previous, size=10, remote_mtime=kept.remote_mtime, landed=landed)
    path = tmp_path / "m.csv"
    write_manifest(path, [kept], group_names=["call_id"], token="t", root=tmp_path)
    assert read_manifest(path, ["call_id", "date"]) == [kept]


def test_item1_still_held_needs_the_proof_and_the_whole_file(tmp_path: Path) -> None:
    landed = tmp_path / "a.wav"
    landed.write_bytes(b"x" * 10)
    assert still_held(row("a.wav"), landed)
    assert not still_held(row("a.wav", sha256=""), landed)  # no proof: nothing to keep
    assert not still_held(row("z.txt", "rejected"), landed)
    assert not still_held(None, landed)
    landed.write_bytes(b"x" * 9)  # truncated here: not held whole
    assert not still_held(row("a.wav"), landed)
    landed.unlink()
    assert not still_held(row("a.wav"), landed)


def test_item3_failed_rows_are_never_received_or_skipped(tmp_path: Path) -> None:
    landed = tmp_path / "a.wav"
    landed.write_bytes(b"x" * 10)
    fresh = row("a.wav", "failed", sha256="", copied_at="", reason="OSError: disk full")
    over_earlier_copy = row("a.wav", "failed", reason="OSError: disk full (holding …)")
    for failed in (fresh, over_earlier_copy):
        assert not failed.landed and not is_received(failed.status)
        assert landed_index([failed]) == {}
        assert not can_skip(failed, size=10, remote_mtime=failed.remote_mtime, landed=landed)
    # The earlier copy's proof survives the failed re-copy, for a later run to keep.
    assert held_index([fresh]) == {}
    assert held_index([over_earlier_copy]) == {("ENTRANTS", "a.wav"): over_earlier_copy}
    assert still_held(over_earlier_copy, landed)
