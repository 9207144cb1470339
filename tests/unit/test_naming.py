from __future__ import annotations

import datetime as dt
import unicodedata
from pathlib import Path

import pytest

from include.cc_intake.errors import UnsafePathError
from include.cc_intake.layout import longest_tmp_name
from include.cc_intake.naming import (
    NAME_MAX,
    RemoteEntry,
    classify,
    classify_listing,
    in_scope,
    is_safe_component,
    render_folder,
    safe_join,
)
from tests.helpers import provider

DAY = dt.date(2026, 11, 25)
CFG = provider().recordings


def entry(name: str, *, size: int = 1000, kind: str = "file") -> RemoteEntry:
    return RemoteEntry("ENTRANTS", name, f"/in/{name}", size, 1_764_000_000, kind)  # type: ignore[arg-type]


def test_render_folder() -> None:
    assert render_folder("/exports/inbound/{date:%Y%m%d}", DAY) == "/exports/inbound/20261125"


def test_valid_name_is_accepted_with_groups() -> None:
    verdict = classify(entry("20261125_093012_AG042_C123456.wav"), CFG, DAY)
    assert verdict.accepted
    assert verdict.groups["call_id"] == "C123456"
    assert verdict.groups["agent"] == "AG042"


@pytest.mark.parametrize(
    ("name", "size", "kind", "reason"),
    [
        ("notes.txt", 10, "file", "pattern_mismatch"),
        ("20261124_093012_AG042_C1.wav", 10, "file", "other_date"),
        ("20261399_093012_AG042_C1.wav", 10, "file", "pattern_mismatch"),
        ("20261125_093012_AG042_C1.wav", 0, "file", "empty"),
        ("20261125_093012_AG042_C1.wav", 10, "symlink", "not_regular_file"),
        ("20261125_093012_AG042_C1.wav", 10, "dir", "not_regular_file"),
        ("20261125_093012_AG\x1b042_C1.wav", 10, "file", "unsafe_name"),
        ("..", 10, "file", "unsafe_name"),
        ("a\\b.wav", 10, "file", "unsafe_name"),
    ],
)
def test_rejections_name_their_reason(name: str, size: int, kind: str, reason: str) -> None:
    verdict = classify(entry(name, size=size, kind=kind), CFG, DAY)
    assert verdict.reason == reason


def test_undated_folder_keeps_only_the_day() -> None:
    today = entry("20261125_093012_AG042_C1.wav")
    other = entry("20261124_093012_AG042_C2.wav")
    stray = entry("readme.txt")
    marked = entry("20261125_broken.wav")
    assert in_scope(today, CFG, DAY, dated_folder=False)
    assert not in_scope(other, CFG, DAY, dated_folder=False)
    assert not in_scope(stray, CFG, DAY, dated_folder=False)
    assert in_scope(marked, CFG, DAY, dated_folder=False)  # carries the day: rejected, not ignored
    verdicts = classify_listing([today, other, stray, marked], CFG, DAY, dated_folder=False)
    assert [(v.entry.rel_name, v.reason) for v in verdicts] == [
        ("20261125_093012_AG042_C1.wav", None),
        ("20261125_broken.wav", "pattern_mismatch"),
    ]


def test_dated_folder_rejects_other_dates() -> None:
    verdicts = classify_listing(
        [entry("20261124_093012_AG042_C2.wav")], CFG, DAY, dated_folder=True
    )
    assert verdicts[0].reason == "other_date"


def test_case_collision_is_a_duplicate_name() -> None:
    verdicts = classify_listing(
        [entry("20261125_093012_AG042_C1.wav"), entry("20261125_093012_ag042_C1.wav")],
        CFG,
        DAY,
        dated_folder=True,
    )
    assert sorted(v.reason or "ok" for v in verdicts) == ["duplicate_name", "ok"]


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "x\x00y", "tab\there", "é" * 300])
def test_unsafe_components(name: str) -> None:
    assert not is_safe_component(name)


def test_safe_join_stays_under_root(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "recordings", "acme", "a.wav") == tmp_path / "recordings/acme/a.wav"
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, "recordings", "../../etc/passwd")
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, "/etc/passwd")


# --- issue #10, items 3 and 4: names the local disk cannot hold, or may merge


def _name_with_accents(chars: int, accents: int) -> str:
    """A valid name of ``chars`` characters, ``accents`` of them "é" (two bytes each)."""
    head, tail = "20261125_093012_", "_C1.wav"
    agent_len = chars - len(head) - len(tail)
    return head + "é" * accents + "x" * (agent_len - accents) + tail


def test_item3_name_too_long_counts_bytes_and_the_temporary_name() -> None:
    size, mtime = 1000, 1_764_000_000
    name = _name_with_accents(141, 90)
    assert len(name) == 141 and len(name.encode()) == 231  # the final name alone would fit
    tmp = longest_tmp_name(name, size=size, mtime=mtime)
    assert len(tmp.encode()) > NAME_MAX  # …but not its .part name
    verdict = classify(RemoteEntry("ENTRANTS", name, f"/in/{name}", size, mtime, "file"), CFG, DAY)
    assert verdict.reason == "name_too_long"


def test_item3_the_longest_name_that_fits_is_accepted_and_one_byte_more_is_not() -> None:
    size, mtime = 1000, 1_764_000_000
    overhead = len(longest_tmp_name("a", size=size, mtime=mtime).encode()) - 1
    base = "20261125_093012_AG_C1.wav"
    room = NAME_MAX - overhead - len(base)
    fits = base.replace("_AG_", "_AG" + "x" * room + "_")
    over = base.replace("_AG_", "_AG" + "x" * (room + 1) + "_")
    at = {n: RemoteEntry("ENTRANTS", n, f"/in/{n}", size, mtime, "file") for n in (fits, over)}
    assert classify(at[fits], CFG, DAY).accepted
    assert classify(at[over], CFG, DAY).reason == "name_too_long"
    # A sub-folder component over NAME_MAX bytes cannot be created either.
    nested = RemoteEntry("ENTRANTS", "é" * 128 + "/" + base, "/in/x", size, mtime, "file")
    assert classify(nested, CFG, DAY).reason == "name_too_long"


def test_item4_nfc_and_nfd_spellings_are_duplicate_names() -> None:
    nfc = unicodedata.normalize("NFC", "20261125_093012_Aimé_C1.wav")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    verdicts = classify_listing([entry(nfc), entry(nfd)], CFG, DAY, dated_folder=True)
    assert sorted(v.reason or "ok" for v in verdicts) == ["duplicate_name", "ok"]
    # Case and normalisation together: still one name on a folding, normalising disk.
    upper = unicodedata.normalize("NFD", "20261125_093012_AIMÉ_C1.wav")
    verdicts = classify_listing([entry(nfc), entry(upper)], CFG, DAY, dated_folder=True)
    assert sorted(v.reason or "ok" for v in verdicts) == ["duplicate_name", "ok"]


@pytest.mark.parametrize(
    "char", [*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]
)
def test_item4_bidi_override_characters_are_unsafe_names(char: str) -> None:
    name = f"20261125_093012_AG{char}042_C1.wav"
    assert classify(entry(name), CFG, DAY).reason == "unsafe_name"
    assert not is_safe_component(name)
