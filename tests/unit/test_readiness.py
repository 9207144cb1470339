from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from include.cc_intake.config import parse_provider
from include.cc_intake.layout import DayLayout
from include.cc_intake.manifest import ManifestRow, landed_index, read_manifest, write_manifest
from include.cc_intake.naming import RemoteEntry
from include.cc_intake.recordings import Listing, assess_readiness, held_files
from tests.helpers import provider_dict, with_recordings

DAY = dt.date(2026, 11, 25)
CFG = with_recordings(min_file_age="5m").recordings
NOW = 1_764_100_000.0


def files(direction: str, *specs: tuple[str, int, float]) -> list[RemoteEntry]:
    return [
        RemoteEntry(direction, name, f"/x/{name}", size, int(mtime), "file")
        for name, size, mtime in specs
    ]


OLD = NOW - 3600
IN = files("ENTRANTS", ("20261125_093012_AG1_C1.wav", 100, OLD))
OUT = files("SORTANTS", ("20261125_103012_AG1_C2.wav", 100, OLD))


def test_ready_when_stable_old_and_reported() -> None:
    listing: Listing = {"ENTRANTS": IN, "SORTANTS": OUT}
    r = assess_readiness(
        listing, listing, cfg=CFG, day=DAY, now=NOW, expected={"ENTRANTS": 1, "SORTANTS": 1}
    )
    assert r.ready
    assert "ENTRANTS: 1 files ready" in r.describe()


def test_not_ready_without_report() -> None:
    listing: Listing = {"ENTRANTS": IN, "SORTANTS": OUT}
    r = assess_readiness(
        listing,
        listing,
        cfg=CFG,
        day=DAY,
        now=NOW,
        expected=None,
        report_note="report calls_20261125.csv not found",
    )
    assert not r.ready
    assert "calls_20261125.csv not found" in r.describe()


def test_growing_file_is_not_ready() -> None:
    grown = files("ENTRANTS", ("20261125_093012_AG1_C1.wav", 200, OLD))
    r = assess_readiness(
        {"ENTRANTS": IN, "SORTANTS": OUT},
        {"ENTRANTS": grown, "SORTANTS": OUT},
        cfg=CFG,
        day=DAY,
        now=NOW,
        expected={"ENTRANTS": 1, "SORTANTS": 1},
    )
    assert not r.ready
    assert "1 still being written" in r.describe()


def test_young_file_is_not_ready() -> None:
    young = files("ENTRANTS", ("20261125_093012_AG1_C1.wav", 100, NOW - 60))
    listing: Listing = {"ENTRANTS": young, "SORTANTS": OUT}
    r = assess_readiness(
        listing, listing, cfg=CFG, day=DAY, now=NOW, expected={"ENTRANTS": 1, "SORTANTS": 1}
    )
    assert not r.ready


def test_direction_without_calls_needs_nothing() -> None:
    # A Sunday without outbound calls: the report says 0 and the folder was never created.
    first: Listing = {"ENTRANTS": IN, "SORTANTS": None}
    r = assess_readiness(
        first, first, cfg=CFG, day=DAY, now=NOW, expected={"ENTRANTS": 1, "SORTANTS": 0}
    )
    assert r.ready
    assert "SORTANTS: folder /exports/outbound/20261125 absent" in r.describe()


def test_expected_direction_missing_keeps_waiting() -> None:
    first: Listing = {"ENTRANTS": IN, "SORTANTS": []}
    r = assess_readiness(
        first, first, cfg=CFG, day=DAY, now=NOW, expected={"ENTRANTS": 1, "SORTANTS": 4}
    )
    assert not r.ready
    assert "SORTANTS: no recording of the day" in r.describe()


# --- item 6 (issue #10): readiness waits for the report's counts


def batch(n: int, *, start: int = 0) -> list[RemoteEntry]:
    return files(
        "ENTRANTS",
        *((f"20261125_09{i:04d}_AG1_C{i}.wav", 100, OLD) for i in range(start, start + n)),
    )


def _gap(tolerance: object) -> Callable[[int], int]:
    data = provider_dict()
    data["daily_report"]["tolerance"] = tolerance
    return parse_provider(data, source=Path("t.yaml")).daily_report.allowed_gap


def test_item6_a_first_settled_batch_is_not_ready() -> None:
    # The provider uploads in batches: 4 of the 10 calls its report counts are there, settled.
    listing: Listing = {"ENTRANTS": batch(4), "SORTANTS": OUT}
    r = assess_readiness(
        listing, listing, cfg=CFG, day=DAY, now=NOW, expected={"ENTRANTS": 10, "SORTANTS": 1}
    )
    assert not r.ready
    entrants = r.directions[0]
    assert (entrants.state, entrants.count) == ("short", 4)
    assert "ENTRANTS: 4 files settled, waiting for the rest; the report says 10" in r.describe()
    assert entrants.facts() == {"ready": 4, "expected": 10}


def test_item6_ready_once_the_count_reaches_the_report() -> None:
    listing: Listing = {"ENTRANTS": batch(10), "SORTANTS": OUT}
    r = assess_readiness(
        listing, listing, cfg=CFG, day=DAY, now=NOW, expected={"ENTRANTS": 10, "SORTANTS": 1}
    )
    assert r.ready
    assert "ENTRANTS: 10 files ready" in r.describe()
    # More files than the report counts is not a reason to wait: reconciliation names it.
    more: Listing = {"ENTRANTS": batch(11), "SORTANTS": OUT}
    assert assess_readiness(
        more, more, cfg=CFG, day=DAY, now=NOW, expected={"ENTRANTS": 10, "SORTANTS": 1}
    ).ready


@pytest.mark.parametrize(
    ("tolerance", "present", "ready"),
    [(0, 9, False), (2, 8, True), (2, 7, False), ("20%", 8, True), ("20%", 7, False)],
)
def test_item6_tolerance_is_read_as_reconciliation_reads_it(
    tolerance: object, present: int, ready: bool
) -> None:
    listing: Listing = {"ENTRANTS": batch(present), "SORTANTS": OUT}
    r = assess_readiness(
        listing,
        listing,
        cfg=CFG,
        day=DAY,
        now=NOW,
        expected={"ENTRANTS": 10, "SORTANTS": 1},
        allowed_gap=_gap(tolerance),
    )
    assert r.ready is ready
    if ready:
        assert f"the report says 10 (tolerance {10 - present})" in r.describe()


def test_item6_tolerance_never_makes_an_expected_direction_ready_with_nothing() -> None:
    listing: Listing = {"ENTRANTS": [], "SORTANTS": OUT}
    r = assess_readiness(
        listing,
        listing,
        cfg=CFG,
        day=DAY,
        now=NOW,
        expected={"ENTRANTS": 2, "SORTANTS": 1},
        allowed_gap=_gap(5),
    )
    assert not r.ready


def test_item6_a_moving_file_still_holds_the_batch() -> None:
    first: Listing = {"ENTRANTS": batch(10), "SORTANTS": OUT}
    grown = batch(10)
    grown[3] = replace(grown[3], size=999)
    r = assess_readiness(
        first,
        {"ENTRANTS": grown, "SORTANTS": OUT},
        cfg=CFG,
        day=DAY,
        now=NOW,
        expected={"ENTRANTS": 10, "SORTANTS": 1},
    )
    assert not r.ready
    assert r.directions[0].facts() == {"ready": 9, "settling": 1, "expected": 10}


def test_item6_held_files_count_toward_the_report() -> None:
    # A re-run after the provider archived 6 of the day's 10 inbound files: we hold them.
    listing: Listing = {"ENTRANTS": batch(4), "SORTANTS": None}
    r = assess_readiness(
        listing,
        listing,
        cfg=CFG,
        day=DAY,
        now=NOW,
        expected={"ENTRANTS": 10, "SORTANTS": 1},
        held={"ENTRANTS": 6, "SORTANTS": 1},
    )
    assert r.ready, r.describe()
    assert "ENTRANTS: 4 files ready + 6 held here, no longer on the server" in r.describe()
    assert r.directions[1].facts() == {"ready": 0, "held": 1, "expected": 1}


def _landed(layout: DayLayout, entry: RemoteEntry, *, size: int | None = None) -> ManifestRow:
    path = layout.recording(entry.direction, entry.rel_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * (entry.size if size is None else size))
    return ManifestRow(
        direction=entry.direction,
        file_name=entry.rel_name,
        remote_path=entry.remote_path,
        size_bytes=entry.size,
        remote_mtime="2026-11-25T09:00:00Z",
        sha256="ab" * 32,
        copied_at="2026-11-26T02:31:00Z",
        status="copied",
    )


def test_item6_held_files_are_landed_whole_and_no_longer_listed(tmp_path: Path) -> None:
    layout = DayLayout(tmp_path, "acme_abidjan", DAY)
    day = batch(6)
    rows = [_landed(layout, e) for e in day[:4]]  # 0-3 landed whole
    rows.append(_landed(layout, day[4], size=50))  # 4: landed, but not whole any more
    gone = _landed(layout, day[5])  # 5: recorded, then deleted here
    layout.recording(gone.direction, gone.file_name).unlink()
    rows.append(gone)
    rows.append(replace(_landed(layout, OUT[0]), status="rejected", reason="empty"))
    write_manifest(layout.manifest, rows, group_names=[], token="t", root=tmp_path)
    previous = landed_index(read_manifest(layout.manifest))

    # The server still lists file 0; 1-5 are gone from it.
    listing: Listing = {"ENTRANTS": day[:1], "SORTANTS": []}
    assert held_files(previous, listing, layout) == {"ENTRANTS": 3}
    # A folder gone from the server: everything we hold whole counts.
    assert held_files(previous, {"ENTRANTS": None, "SORTANTS": None}, layout) == {"ENTRANTS": 4}
