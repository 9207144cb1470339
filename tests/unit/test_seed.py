"""The sandbox seed writes what a provider would: valid audio, the traps, a matching report."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from include.cc_intake.config import ProviderConfig, load_provider, load_providers
from include.cc_intake.days import day_bounds
from include.cc_intake.sandbox.env import PROVIDERS_FOLDER
from include.cc_intake.sandbox.seed import (
    SeedResult,
    add_late_file,
    seed_provider,
    touch_changed,
    write_report,
)

DAY = dt.date(2026, 11, 25)
PROVIDER_IDS = ["acme_abidjan", "baobab_douala", "cedre_lome"]


def _cfg(provider_id: str) -> ProviderConfig:
    return load_provider(PROVIDERS_FOLDER / f"{provider_id}.yaml")


@pytest.fixture(params=PROVIDER_IDS)
def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[ProviderConfig, SeedResult]:
    cfg = _cfg(request.param)
    return cfg, seed_provider(tmp_path / cfg.id, cfg, DAY)


def test_sandbox_providers_are_valid_and_differ() -> None:
    good, broken = load_providers(PROVIDERS_FOLDER)
    assert broken == []
    acme, baobab, cedre = good
    assert [acme.id, baobab.id, cedre.id] == PROVIDER_IDS
    # The third delivers over FTPS, through a primary and a backup connection (issue #12).
    assert cedre.recordings.protocol == "ftps"
    assert cedre.recordings.conn_ids == ("ftps_cedre", "ftps_cedre_backup")
    assert acme.recordings.filename_pattern != baobab.recordings.filename_pattern
    assert (acme.daily_report.kind, baobab.daily_report.kind) == ("summary", "detail")
    assert acme.digital and baobab.digital
    assert (acme.digital.pagination.type, baobab.digital.pagination.type) == ("cursor", "page")
    for cfg in good:
        assert cfg.recordings.min_file_age == dt.timedelta(minutes=1)
        assert cfg.recordings.settle == dt.timedelta(seconds=2)
        assert cfg.alert_emails == ["ops@sandbox.example"]


def _wav_info(data: bytes) -> tuple[int, int, int, int]:
    """(format tag, channels, sample rate, data bytes) of a RIFF/WAVE file."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert int.from_bytes(data[4:8], "little") == len(data) - 8
    pos, fmt, size = 12, b"", -1
    while pos < len(data):
        chunk, length = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if chunk == b"fmt ":
            fmt = data[pos + 8 : pos + 8 + length]
        if chunk == b"data":
            size = length
        pos += 8 + length + (length & 1)
    assert pos == len(data)
    return (
        int.from_bytes(fmt[0:2], "little"),
        int.from_bytes(fmt[2:4], "little"),
        int.from_bytes(fmt[4:8], "little"),
        size,
    )


def _mp3_frames(data: bytes) -> int:
    """Walk MPEG-2 layer III frames from offset 0 to the end; every header must be valid."""
    bitrates = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160]
    rates = [22050, 24000, 16000]
    pos = frames = 0
    while pos < len(data):
        header = data[pos : pos + 4]
        assert header[0] == 0xFF and header[1] & 0xFE == 0xF2, f"no frame sync at {pos}"
        bitrate = bitrates[header[2] >> 4] * 1000
        rate = rates[(header[2] >> 2) & 3]
        pos += 72 * bitrate // rate + ((header[2] >> 1) & 1)
        frames += 1
    assert pos == len(data)
    return frames


def test_recordings_are_valid_audio_of_a_realistic_length(
    seeded: tuple[ProviderConfig, SeedResult],
) -> None:
    _, result = seeded
    assert result.delivered_counts == {"ENTRANTS": 12, "SORTANTS": 7}
    assert 1_000_000 < result.total_bytes < 40_000_000
    for seeded_file in result.files:
        data = result.local_path(seeded_file.remote_path).read_bytes()
        assert len(data) == seeded_file.size
        assert 20 <= seeded_file.duration_s <= 480
        if seeded_file.codec == "mp3":
            assert seeded_file.name.endswith(".mp3")
            seconds = _mp3_frames(data) * 576 / 16000
        else:
            tag, channels, rate, size = _wav_info(data)
            assert (tag, channels, rate) == ({"alaw": 6, "ulaw": 7}[seeded_file.codec], 1, 8000)
            seconds = size / 8000
        assert abs(seconds - seeded_file.duration_s) < 1
    longest = max(result.files, key=lambda f: f.size)
    assert longest.codec != "mp3" and longest.duration_s == 480


def test_names_follow_the_pattern_and_mtimes_fall_on_the_day(
    seeded: tuple[ProviderConfig, SeedResult],
) -> None:
    cfg, result = seeded
    start, end = day_bounds(DAY, cfg.tz)
    too_young = dt.datetime.now(dt.UTC) - cfg.recordings.min_file_age
    for seeded_file in result.files:
        match = cfg.recordings.pattern.match(seeded_file.name)
        assert match is not None, seeded_file.name
        assert dt.datetime.strptime(match["date"], cfg.recordings.date_format).date() == DAY
        assert seeded_file.remote_path.startswith(result.folders[seeded_file.direction] + "/")
        mtime = result.local_path(seeded_file.remote_path).stat().st_mtime
        assert start.timestamp() <= mtime < end.timestamp()
        assert mtime < too_young.timestamp()
    ids = [f.call_id for f in result.files]
    assert len(set(ids)) == len(ids)


def test_traps_exist_with_their_expected_reason(
    seeded: tuple[ProviderConfig, SeedResult],
) -> None:
    cfg, result = seeded
    reasons = sorted(e.reason for e in result.rejected)
    expected = ["empty", "not_regular_file", "pattern_mismatch", "unsafe_name", "unsafe_name"]
    if "{date" in cfg.recordings.directions["ENTRANTS"]:
        expected.append("other_date")
    assert reasons == sorted(expected)
    for entry in result.rejected:
        path = result.local_path(entry.remote_path)
        assert entry.remote_path.startswith(result.folders[entry.direction] + "/")
        if entry.reason == "not_regular_file":
            assert path.is_symlink() and str(path.readlink()) == "/etc/passwd"
        elif entry.reason == "empty":
            assert path.stat().st_size == 0
            assert cfg.recordings.pattern.match(entry.name)
        elif entry.reason == "pattern_mismatch":
            assert cfg.recordings.pattern.match(entry.name) is None
            assert DAY.strftime(cfg.recordings.date_format) in entry.name
        elif entry.reason == "unsafe_name":
            assert entry.name.startswith(".") or any(ord(c) < 32 for c in entry.name)
        else:
            match = cfg.recordings.pattern.match(entry.name)
            assert match and match["date"] == (DAY - dt.timedelta(days=1)).strftime("%Y%m%d")
    listed = {
        p.name for folder in result.folders.values() for p in result.local_path(folder).iterdir()
    }
    assert {e.name for e in result.rejected} <= listed
    assert not set(result.valid["ENTRANTS"]) & {e.name for e in result.rejected}


def test_other_days_are_out_of_scope_and_match_their_own_seed(tmp_path: Path) -> None:
    cfg = _cfg("baobab_douala")
    today = seed_provider(tmp_path, cfg, DAY)
    assert today.ignored
    day_text = DAY.strftime(cfg.recordings.date_format)
    for other in today.ignored:
        assert other.day < DAY and day_text not in other.name
        assert other.remote_path.startswith(today.folders[other.direction] + "/")
    history = {f.remote_path: f for f in today.ignored if f.day == DAY - dt.timedelta(days=1)}
    digests = {p: hashlib.sha256(today.local_path(p).read_bytes()).hexdigest() for p in history}
    yesterday = seed_provider(tmp_path, cfg, DAY - dt.timedelta(days=1))
    paths = {f.remote_path for f in yesterday.files}
    assert set(history) <= paths
    for path, digest in digests.items():
        assert hashlib.sha256(today.local_path(path).read_bytes()).hexdigest() == digest


def test_seeding_is_deterministic(tmp_path: Path) -> None:
    cfg = _cfg("acme_abidjan")
    first = seed_provider(tmp_path / "a", cfg, DAY, rng_seed=7)
    second = seed_provider(tmp_path / "b", cfg, DAY, rng_seed=7)
    other = seed_provider(tmp_path / "c", cfg, DAY, rng_seed=8)
    assert first.valid == second.valid
    assert first.valid != other.valid
    sample = first.files[3].remote_path
    assert first.local_path(sample).read_bytes() == second.local_path(sample).read_bytes()


def test_report_dialects(tmp_path: Path) -> None:
    acme = seed_provider(tmp_path / "acme", _cfg("acme_abidjan"), DAY)
    text = acme.local_path(acme.report_path or "").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "date,direction,calls"
    assert text.splitlines()[1] == "2026-11-25,inbound,12"
    baobab = seed_provider(tmp_path / "baobab", _cfg("baobab_douala"), DAY)
    raw = baobab.local_path(baobab.report_path or "").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # Latin-1 "é" in the header, as a French Excel writes it
    lines = raw.decode("latin-1").splitlines()
    assert lines[0].startswith("ID appel;Date;Sens;Heure;Agent;Durée (s)")
    assert len(lines) == 1 + 12 + 7
    assert baobab.report_path == "/RAPPORTS/rapport_2026-11-25.csv"


def test_report_scenarios(tmp_path: Path) -> None:
    cfg = _cfg("baobab_douala")
    mismatch = seed_provider(tmp_path, cfg, DAY, scenario="report_mismatch")
    assert mismatch.report_counts == {"ENTRANTS": 14, "SORTANTS": 7}
    assert len(mismatch.report_extra_call_ids) == 2
    text = mismatch.local_path(mismatch.report_path or "").read_bytes().decode("latin-1")
    for ghost in mismatch.report_extra_call_ids:
        assert f"\r\n{ghost};" in text
        assert ghost not in {f.call_id for f in mismatch.files}
    missing = seed_provider(tmp_path, cfg, DAY, scenario="missing_report")
    assert missing.report_path is None
    assert not (tmp_path / "RAPPORTS" / "rapport_2026-11-25.csv").exists()
    with pytest.raises(ValueError, match="unknown sandbox scenario"):
        seed_provider(tmp_path, cfg, DAY, scenario="chaos")


def test_late_file_and_changed_file(seeded: tuple[ProviderConfig, SeedResult]) -> None:
    cfg, result = seeded
    late = add_late_file(result, cfg, direction="SORTANTS")
    assert late.name in result.valid["SORTANTS"]
    assert result.local_path(late.remote_path).stat().st_size == late.size > 0
    assert result.report_counts["SORTANTS"] == 8
    assert cfg.recordings.pattern.match(late.name)

    target = result.files[2]
    path = result.local_path(target.remote_path)
    before = (path.read_bytes(), path.stat().st_mtime)
    changed = touch_changed(result, cfg, target.name)
    assert result.file(target.name) == changed
    assert path.read_bytes() != before[0]
    assert path.stat().st_mtime != before[1] and path.stat().st_mtime == changed.mtime
    assert changed.size == path.stat().st_size != target.size
    same_size = touch_changed(result, cfg, target.name, keep_size=True)
    assert same_size.size == changed.size and same_size.version == 2
    # The report still counts what is there.
    assert write_report(result, cfg) == result.report_path
    assert result.report_counts == result.delivered_counts
