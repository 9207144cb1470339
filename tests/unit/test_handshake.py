"""The completion handshake's pure parts: what the listing ignores, when it runs, the marker."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from include.cc_intake import handshake
from include.cc_intake.config import parse_provider
from include.cc_intake.errors import ConfigError
from include.cc_intake.manifest import ManifestRow
from include.cc_intake.naming import RemoteEntry
from tests.helpers import provider_dict, with_recordings

DAY = dt.date(2026, 11, 25)


def entry(rel: str, kind: str = "file", size: int = 10) -> RemoteEntry:
    return RemoteEntry("ENTRANTS", rel, f"/in/{rel}", size, 1_700_000_000, kind)  # type: ignore[arg-type]


def row(name: str, status: str = "copied", sha: str = "ab" * 32) -> ManifestRow:
    return ManifestRow("ENTRANTS", name, f"/in/{name}", 10, "", sha, "", status)  # type: ignore[arg-type]


def test_marker_name_and_our_names() -> None:
    assert handshake.marker_name(DAY) == "_RECU_2026-11-25.ok"
    assert handshake.is_marker("_RECU_2026-11-25.ok")
    assert handshake.is_marker("._RECU_2026-11-25.ok.0123456789.part")
    assert not handshake.is_marker("sub/_RECU_2026-11-25.ok")
    assert not handshake.is_marker("_RECU_2026-11-25.ok.wav")
    assert not handshake.is_marker("20261125_080102_AG01_C1001.wav")


def test_listing_ignores_our_markers_in_every_mode() -> None:
    cfg = with_recordings().recordings
    listed = [entry("20261125_080102_AG01_C1001.wav"), entry("_RECU_2026-11-24.ok")]
    assert [e.rel_name for e in handshake.fold_listing(listed, cfg) or []] == [
        "20261125_080102_AG01_C1001.wav"
    ]
    assert handshake.fold_listing(None, cfg) is None


def test_move_mode_lists_the_done_folder_under_the_files_own_names() -> None:
    cfg = with_recordings(on_complete="move", recursive=True).recordings
    listed = [
        entry("new.wav"),
        entry("traites", kind="dir"),
        entry("traites/moved.wav"),
        entry("traites/sub/deep.wav"),
        entry("traites/again.wav", size=1),
        entry("again.wav", size=2),  # delivered again after our move: the top one is read
        entry("traites/_RECU_2026-11-25.ok"),
    ]
    folded = handshake.fold_listing(listed, cfg) or []
    by_name = {e.rel_name: e for e in folded}
    assert sorted(by_name) == ["again.wav", "moved.wav", "new.wav", "sub/deep.wav"]
    assert by_name["again.wav"].size == 2
    assert by_name["moved.wav"].remote_path == "/in/traites/moved.wav"


def test_without_move_a_folder_named_like_done_folder_is_the_providers() -> None:
    cfg = with_recordings(recursive=True).recordings  # on_complete: none
    listed = [entry("traites/x.wav")]
    assert [e.rel_name for e in handshake.fold_listing(listed, cfg) or []] == ["traites/x.wav"]
    assert handshake.done_folder_entry([entry("traites", kind="dir")], cfg) is None
    move = with_recordings(on_complete="move").recordings
    assert handshake.done_folder_entry([entry("traites", kind="dir")], move) is not None


@pytest.mark.parametrize(
    ("summary", "ok", "said"),
    [
        ({"status": "green"}, True, "green"),
        ({"status": "amber"}, False, "'amber', not green"),
        ({"status": "red"}, False, "'red', not green"),
        ({"status": "config_error"}, False, "not green"),
        (None, False, "no readable summary.json"),
    ],
)
def test_only_a_green_day_is_confirmed(summary, ok, said) -> None:
    go = handshake.may_run(summary, provider="acme_abidjan", day=DAY)
    assert go.ok is ok
    assert said in go.why and go.why.startswith("acme_abidjan 2026-11-25:")


def test_the_marker_lists_every_file_we_hold_with_size_and_sha256() -> None:
    rows = [
        row("b.wav"),
        row("a.wav", status="kept"),
        row("c.wav", status="skipped_identical"),
        row("failed.wav", status="failed"),
        row("rejected.wav", status="rejected", sha=""),
    ]
    held = handshake.held_rows(rows)
    assert [r.file_name for r in held["ENTRANTS"]] == ["a.wav", "b.wav", "c.wav"]
    content = handshake.marker_content(held["ENTRANTS"]).decode()
    sha = "ab" * 32
    assert content == (
        f"file_name,size_bytes,sha256\na.wav,10,{sha}\nb.wav,10,{sha}\nc.wav,10,{sha}\n"
    )


def test_ftps_providers_cannot_ask_for_a_handshake_yet() -> None:
    data = provider_dict()
    recordings = data["recordings"]
    recordings.pop("sftp_conn_id")
    recordings.update(protocol="ftps", ftp_conn_id="ftp_acme", on_complete="marker")
    with pytest.raises(ConfigError, match="recordings: on_complete: marker is not available with"):
        parse_provider(data, source=Path("test.yaml"))
    recordings["on_complete"] = "none"
    parse_provider(data, source=Path("test.yaml"))
