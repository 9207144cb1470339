from __future__ import annotations

import datetime as dt

from include.cc_intake.naming import RemoteEntry
from include.cc_intake.recordings import assess_readiness
from tests.helpers import with_recordings

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
    listing = {"ENTRANTS": IN, "SORTANTS": OUT}
    r = assess_readiness(
        listing, listing, cfg=CFG, day=DAY, now=NOW, expected={"ENTRANTS": 1, "SORTANTS": 1}
    )
    assert r.ready
    assert "ENTRANTS: 1 files ready" in r.describe()


def test_not_ready_without_report() -> None:
    listing = {"ENTRANTS": IN, "SORTANTS": OUT}
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
    listing = {"ENTRANTS": young, "SORTANTS": OUT}
    r = assess_readiness(
        listing, listing, cfg=CFG, day=DAY, now=NOW, expected={"ENTRANTS": 1, "SORTANTS": 1}
    )
    assert not r.ready


def test_direction_without_calls_needs_nothing() -> None:
    # A Sunday without outbound calls: the report says 0 and the folder was never created.
    first = {"ENTRANTS": IN, "SORTANTS": None}
    r = assess_readiness(
        first, first, cfg=CFG, day=DAY, now=NOW, expected={"ENTRANTS": 1, "SORTANTS": 0}
    )
    assert r.ready
    assert "SORTANTS: folder /exports/outbound/20261125 absent" in r.describe()


def test_expected_direction_missing_keeps_waiting() -> None:
    first = {"ENTRANTS": IN, "SORTANTS": []}
    r = assess_readiness(
        first, first, cfg=CFG, day=DAY, now=NOW, expected={"ENTRANTS": 1, "SORTANTS": 4}
    )
    assert not r.ready
    assert "SORTANTS: no recording of the day" in r.describe()
