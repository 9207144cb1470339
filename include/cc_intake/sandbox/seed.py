"""Realistic provider data for the sandbox: one day's recordings, traps, and the end-of-day report.

``seed_provider`` writes onto a provider's server folder what its copy script would have left
for a day: recordings in both directions following the provider's folders and file-name
grammar (valid WAV A-law/µ-law 8 kHz mono or MPEG-2 layer III frames), a few entries the
pipeline must reject, and the day's report. Everything is deterministic in
(provider, day, rng_seed), so seeding the same day twice rewrites the same bytes, and a day's
files seeded as "history" by a later day are the very files that day's own seed writes.

Expected rejection reasons assume the pipeline checks, in this order: an unsafe name, then the
entry type, then the pattern, the date, and emptiness (each trap is built so that only the
first applicable reason fits, except the leading-dot name, which is ``unsafe_name`` first).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import os
import posixpath
import random
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from include.cc_intake.config import DIRECTIONS, ProviderConfig
from include.cc_intake.errors import ConfigError
from include.cc_intake.layout import atomic_writer

SCENARIOS: tuple[str, ...] = ("normal", "report_mismatch", "missing_report")
Codec = Literal["alaw", "ulaw", "mp3"]

DEFAULT_COUNTS: Mapping[str, int] = {"ENTRANTS": 12, "SORTANTS": 7}
MAX_BYTES_PER_PROVIDER = 32_000_000  # the day's recordings; keeps a demo copy fast
MIN_DURATION_S, MAX_DURATION_S = 20, 480
REPORT_EXTRA_INBOUND = 2  # scenario "report_mismatch": calls the report claims but nobody sent

_WAV_RATE = 8000  # bytes per second: 8 kHz, 8-bit companded, mono
_MP3_FRAME = 72  # MPEG-2 layer III, 16 kbit/s, 16 kHz, mono, no padding
_MP3_FRAME_S = 576 / 16000
_MP3_HEADER = bytes([0xFF, 0xF3, 0x28, 0xC4])
_MP3_SIDE_INFO = 9  # MPEG-2 mono; all zero = no main data, so every frame decodes to silence
# Quiet line noise: sign and 4 quantisation bits, segment 0 (the smallest amplitudes).
_ALAW_QUIET = bytes(((b & 0x8F) ^ 0x55) for b in range(256))
_ULAW_QUIET = bytes(((b & 0x8F) ^ 0xFF) for b in range(256))
# Ancillary bytes of MP3 frames never contain 0xFF, so no false frame sync appears inside a frame.
_NO_FF = bytes(b if b != 0xFF else 0x7F for b in range(256))

# Country code and mobile lead digits; eight random digits follow.
_COUNTRY_PREFIX = {"Africa/Abidjan": "+22507", "Africa/Douala": "+2376", "Africa/Dakar": "+22177"}
_FRENCH_VALUES = {"entrant", "entrants", "entrée", "entrées", "sortant", "sortants", "sortie"}


# -- audio ---------------------------------------------------------------------------------


def wav_bytes(codec: Literal["alaw", "ulaw"], duration_s: float, rng: random.Random) -> bytes:
    """A RIFF/WAVE file, G.711 A-law (format 6) or µ-law (7), 8 kHz mono, of ``duration_s``."""
    samples = int(duration_s * _WAV_RATE) // 2 * 2  # even: no RIFF pad byte needed
    table = _ALAW_QUIET if codec == "alaw" else _ULAW_QUIET
    data = rng.randbytes(samples).translate(table)
    fmt = (
        (6 if codec == "alaw" else 7).to_bytes(2, "little")
        + (1).to_bytes(2, "little")  # channels
        + _WAV_RATE.to_bytes(4, "little")  # samples per second
        + _WAV_RATE.to_bytes(4, "little")  # bytes per second
        + (1).to_bytes(2, "little")  # block align
        + (8).to_bytes(2, "little")  # bits per sample
        + (0).to_bytes(2, "little")  # cbSize: non-PCM formats carry it
    )
    chunks = (
        b"fmt " + len(fmt).to_bytes(4, "little") + fmt
        # Non-PCM WAVE files carry a fact chunk with the sample count.
        + b"fact" + (4).to_bytes(4, "little") + samples.to_bytes(4, "little")
        + b"data" + samples.to_bytes(4, "little") + data
    )  # fmt: skip
    return b"RIFF" + (4 + len(chunks)).to_bytes(4, "little") + b"WAVE" + chunks


def mp3_bytes(duration_s: float, rng: random.Random) -> bytes:
    """A headerless MP3: MPEG-2 layer III frames, 16 kbit/s, 16 kHz mono, of ``duration_s``."""
    frames = max(1, round(duration_s / _MP3_FRAME_S))
    filler = _MP3_FRAME - len(_MP3_HEADER) - _MP3_SIDE_INFO
    ancillary = rng.randbytes(frames * filler).translate(_NO_FF)
    head = _MP3_HEADER + bytes(_MP3_SIDE_INFO)
    return b"".join(head + ancillary[i * filler : (i + 1) * filler] for i in range(frames))


def audio_bytes(codec: Codec, duration_s: float, rng: random.Random) -> bytes:
    if codec == "mp3":
        return mp3_bytes(duration_s, rng)
    return wav_bytes(codec, duration_s, rng)


def audio_size(codec: Codec, duration_s: float) -> int:
    if codec == "mp3":
        return max(1, round(duration_s / _MP3_FRAME_S)) * _MP3_FRAME
    return 4 + 8 + 8 + 18 + 8 + 4 + 8 + int(duration_s * _WAV_RATE) // 2 * 2 + 4


# -- naming ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Style:
    """A file-name grammar the seed knows how to write; picked by trying it on the pattern."""

    render: Callable[[str, dt.time, str, str, str], str]  # date text, time, agent, call id, ext
    agent: Callable[[random.Random], str]
    call_id: Callable[[int], str]
    wav_share: float  # when the pattern allows both wav and mp3


_STYLES = (
    # 20261125_083012_AG0042_C54321007.wav
    _Style(
        render=lambda d, t, a, c, e: f"{d}_{t:%H%M%S}_{a}_{c}.{e}",
        agent=lambda r: f"AG{r.randrange(1, 60):04d}",
        call_id=lambda serial: f"C{serial:08d}",
        wav_share=0.85,
    ),
    # 54321007-2026-11-25_08h30_DL014.mp3
    _Style(
        render=lambda d, t, a, c, e: f"{c}-{d}_{t:%H}h{t:%M}_{a}.{e}",
        agent=lambda r: f"{r.choice(['DL', 'BN', 'KM'])}{r.randrange(1, 60):03d}",
        call_id=lambda serial: f"{serial:08d}",
        wav_share=0.2,
    ),
)


@dataclass(frozen=True)
class _Grammar:
    style: _Style
    extensions: tuple[str, ...]  # among wav, mp3 (wav first)


def _grammar(cfg: ProviderConfig) -> _Grammar:
    pattern = cfg.recordings.pattern
    probe_day = dt.date(2026, 11, 25)
    date_text = probe_day.strftime(cfg.recordings.date_format)
    for style in _STYLES:
        agent = style.agent(random.Random(0))
        call_id = style.call_id(12345678)
        exts = []
        for ext in ("wav", "mp3"):
            match = pattern.match(style.render(date_text, dt.time(9, 5, 7), agent, call_id, ext))
            if match and match["date"] == date_text and match["call_id"] == call_id:
                exts.append(ext)
        if exts:
            return _Grammar(style, tuple(exts))
    raise ConfigError(
        f"{cfg.id}: the sandbox seed knows no file-name grammar that fits filename_pattern "
        f"{cfg.recordings.filename_pattern!r} (expected names like "
        "'20261125_083012_AG0042_C123.wav' or '1234567-2026-11-25_08h30_DL014.mp3')"
    )


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeededFile:
    """One recording written on the server (valid for its day)."""

    direction: str
    name: str
    remote_path: str  # as an SFTP client sees it
    day: dt.date
    call_id: str
    agent: str
    started: dt.datetime  # aware, provider time zone
    duration_s: int
    codec: Codec
    size: int
    mtime: float  # POSIX seconds
    customer_number: str  # fictional; lands in detail reports only
    version: int = 0  # bumped by touch_changed


@dataclass(frozen=True)
class RejectedEntry:
    """A trap: an entry of the day's scope that the pipeline must list as rejected."""

    direction: str
    name: str
    remote_path: str
    reason: str  # pattern_mismatch | other_date | empty | not_regular_file | unsafe_name


@dataclass
class SeedResult:
    """What ``seed_provider`` wrote, and what a correct intake of the day should find.

    Mutable on purpose: ``add_late_file`` and ``touch_changed`` update it in place.
    """

    provider: str
    day: dt.date
    root: Path
    scenario: str
    rng_seed: int
    folders: dict[str, str]  # direction -> remote folder for the day
    files: list[SeededFile] = field(default_factory=list)
    rejected: list[RejectedEntry] = field(default_factory=list)
    ignored: list[SeededFile] = field(default_factory=list)  # other days, out of scope
    report_path: str | None = None  # remote path; None when the scenario writes no report
    report_counts: dict[str, int] = field(default_factory=dict)  # what the report claims
    report_extra_call_ids: list[str] = field(default_factory=list)  # claimed, never delivered

    @property
    def valid(self) -> dict[str, list[str]]:
        """Expected valid file names per direction (sorted)."""
        return {d: sorted(f.name for f in self.files if f.direction == d) for d in self.folders}

    @property
    def delivered_counts(self) -> dict[str, int]:
        return {d: len(names) for d, names in self.valid.items()}

    @property
    def rejected_reasons(self) -> dict[str, dict[str, str]]:
        """Expected rejections: direction -> file name -> reason."""
        out: dict[str, dict[str, str]] = {d: {} for d in self.folders}
        for entry in self.rejected:
            out[entry.direction][entry.name] = entry.reason
        return out

    @property
    def total_bytes(self) -> int:
        """Bytes of the valid recordings (what a full copy of the day transfers)."""
        return sum(f.size for f in self.files)

    def file(self, name: str) -> SeededFile:
        for seeded in self.files:
            if seeded.name == name:
                return seeded
        raise KeyError(f"{self.provider} {self.day}: no seeded recording named {name!r}")

    def local_path(self, remote_path: str) -> Path:
        """Where a remote path lives on disk (under ``root``)."""
        return self.root / remote_path.lstrip("/")


# -- planning ------------------------------------------------------------------------------


def _is_dated(template: str) -> bool:
    return any(f == "date" for _, f, _, _ in string.Formatter().parse(template) if f)


def _serial(day: dt.date, direction: str, index: int) -> int:
    # Unique across days and directions, increasing with time: as a PBX numbers its calls.
    return (day.toordinal() % 100_000) * 1000 + DIRECTIONS.index(direction) * 500 + index


def _phone(cfg: ProviderConfig, rng: random.Random) -> str:
    """A fictional mobile number in the provider's country (E.164)."""
    prefix = _COUNTRY_PREFIX.get(cfg.timezone, "+336")
    return prefix + "".join(str(rng.randrange(10)) for _ in range(8))


def _rng(*parts: object) -> random.Random:
    # String seeds hash with SHA-512: stable across processes, unlike hash().
    return random.Random("|".join(str(p) for p in parts))


@dataclass(frozen=True)
class _Plan:
    direction: str
    index: int
    started: dt.datetime
    duration_s: int
    codec: Codec
    agent: str
    customer_number: str


def _plan_day(
    cfg: ProviderConfig, day: dt.date, rng_seed: int, counts: Mapping[str, int]
) -> list[_Plan]:
    """The day's calls, deterministic in (provider, day, rng_seed, counts)."""
    grammar = _grammar(cfg)
    rng = _rng(cfg.id, day.isoformat(), rng_seed, "plan")
    plans: list[_Plan] = []
    for direction in cfg.recordings.directions:
        n = counts.get(direction, 0)
        # Opening hours 07:00-20:30; sorted so call ids grow with time.
        seconds = sorted(rng.randrange(7 * 3600, 20 * 3600 + 1800) for _ in range(n))
        for index, sec in enumerate(seconds):
            started = dt.datetime.combine(day, dt.time(0), tzinfo=cfg.tz) + dt.timedelta(
                seconds=sec
            )
            # Call lengths are log-normal around 2.5 min; the first inbound call is the
            # longest possible one (WAV when allowed), so tests always have a file big enough
            # to cut mid-way.
            longest = direction == DIRECTIONS[0] and index == 0
            duration = MAX_DURATION_S if longest else rng.lognormvariate(math.log(150), 0.7)
            duration_s = int(min(MAX_DURATION_S, max(MIN_DURATION_S, duration)))
            codec: Codec
            if "wav" in grammar.extensions and (
                longest or "mp3" not in grammar.extensions or rng.random() < grammar.style.wav_share
            ):
                codec = "alaw" if rng.random() < 0.7 else "ulaw"
            else:
                codec = "mp3"
            plans.append(
                _Plan(
                    direction,
                    index,
                    started,
                    duration_s,
                    codec,
                    grammar.style.agent(rng),
                    _phone(cfg, rng),
                )
            )
    return _fit_budget(plans)


def _fit_budget(plans: list[_Plan]) -> list[_Plan]:
    total = sum(audio_size(p.codec, p.duration_s) for p in plans)
    if total <= MAX_BYTES_PER_PROVIDER:
        return plans
    scale = MAX_BYTES_PER_PROVIDER / total
    return [
        replace(p, duration_s=max(MIN_DURATION_S, int(p.duration_s * scale)))
        if p.index or p.direction != DIRECTIONS[0]
        else p
        for p in plans
    ]


# -- writing -------------------------------------------------------------------------------


def _ready_ceiling(cfg: ProviderConfig) -> float:
    """Latest mtime still old enough for min_file_age (with margin), by our clock."""
    margin = max(cfg.recordings.min_file_age, dt.timedelta(minutes=5)) + dt.timedelta(minutes=5)
    return (dt.datetime.now(dt.UTC) - margin).timestamp()


def _write(path: Path, data: bytes, mtime: float) -> None:
    if path.is_symlink():
        path.unlink()
    with atomic_writer(path, f"seed{os.getpid()}", binary=True) as handle:
        handle.write(data)
        handle.flush()  # before the mtime: a later write would move it
        os.utime(handle.fileno(), (mtime, mtime))


def _folder(cfg: ProviderConfig, direction: str, day: dt.date) -> str:
    folders = {str(d): f for d, f in cfg.recordings.directions.items()}
    return folders[direction].format(date=day)


def _name(cfg: ProviderConfig, plan: _Plan, day: dt.date) -> str:
    grammar = _grammar(cfg)
    ext = "mp3" if plan.codec == "mp3" else "wav"
    return grammar.style.render(
        day.strftime(cfg.recordings.date_format),
        plan.started.time(),
        plan.agent,
        grammar.style.call_id(_serial(day, plan.direction, plan.index)),
        ext,
    )


def _write_recording(
    root: Path,
    cfg: ProviderConfig,
    plan: _Plan,
    *,
    day: dt.date,
    rng_seed: int,
    version: int = 0,
    mtime: float | None = None,
) -> SeededFile:
    name = _name(cfg, plan, day)
    folder = _folder(cfg, plan.direction, day)
    data = audio_bytes(plan.codec, plan.duration_s, _rng(cfg.id, name, rng_seed, version))
    end = (plan.started + dt.timedelta(seconds=plan.duration_s)).timestamp()
    if mtime is None:
        mtime = min(end, _ready_ceiling(cfg))
    remote = posixpath.join(folder, name)
    _write(root / remote.lstrip("/"), data, mtime)
    match = cfg.recordings.pattern.match(name)
    assert match is not None, name
    return SeededFile(
        direction=plan.direction,
        name=name,
        remote_path=remote,
        day=day,
        call_id=match["call_id"],
        agent=plan.agent,
        started=plan.started,
        duration_s=plan.duration_s,
        codec=plan.codec,
        size=len(data),
        mtime=mtime,
        customer_number=plan.customer_number,
        version=version,
    )


def _history(
    root: Path, cfg: ProviderConfig, day: dt.date, rng_seed: int, counts: Mapping[str, int]
) -> list[SeededFile]:
    """A few recordings of the two previous days, exactly as their own seeds would write them.

    In an undated folder they sit next to the day's files and must be ignored; in dated folders
    they live in their own day's folder, so the day's listing does not see them.
    """
    out = []
    for back, keep in ((1, 2), (2, 1)):
        other = day - dt.timedelta(days=back)
        plans = _plan_day(cfg, other, rng_seed, counts)
        for direction in cfg.recordings.directions:
            shortest = sorted(
                (p for p in plans if p.direction == direction), key=lambda p: p.duration_s
            )
            for plan in shortest[:keep]:
                out.append(_write_recording(root, cfg, plan, day=other, rng_seed=rng_seed))
    return out


def _traps(
    root: Path, cfg: ProviderConfig, day: dt.date, rng_seed: int, plans: list[_Plan]
) -> list[RejectedEntry]:
    """Entries of the day's scope that must be rejected, spread over the two directions."""
    grammar = _grammar(cfg)
    rng = _rng(cfg.id, day.isoformat(), rng_seed, "traps")
    directions = list(cfg.recordings.directions)
    first, second = directions[0], directions[-1]
    date_text = day.strftime(cfg.recordings.date_format)
    ext = grammar.extensions[0]
    codec: Codec = "alaw" if ext == "wav" else "mp3"
    pattern = cfg.recordings.pattern
    out: list[RejectedEntry] = []

    def name_for(direction: str, index: int, when: dt.time, text: str = date_text) -> str:
        return grammar.style.render(
            text,
            when,
            grammar.style.agent(rng),
            grammar.style.call_id(_serial(day, direction, 400 + index)),
            ext,
        )

    def put(
        direction: str, name: str, reason: str, data: bytes | None, *, symlink: str | None = None
    ) -> None:
        folder = _folder(cfg, direction, day)
        remote = posixpath.join(folder, name)
        path = root / remote.lstrip("/")
        mtime = min(
            dt.datetime.combine(day, dt.time(12, 0), tzinfo=cfg.tz).timestamp(),
            _ready_ceiling(cfg),
        )
        try:
            if symlink is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.is_symlink() or path.exists():
                    path.unlink()
                path.symlink_to(symlink)
            else:
                _write(path, data or b"", mtime)
        except (OSError, ValueError):
            return  # this filesystem refuses such a name: nothing to expect then
        out.append(RejectedEntry(direction, name, remote, reason))

    audio = audio_bytes(codec, 30, rng)

    # A recorder's metadata sidecar: carries the day, safe, but not a recording.
    sidecar = posixpath.splitext(name_for(first, 0, dt.time(9, 14, 2)))[0] + ".xml"
    assert pattern.match(sidecar) is None
    put(first, sidecar, "pattern_mismatch", b'<?xml version="1.0"?><call duration="30"/>\n')

    # Recorded just before midnight the day before, dropped in this day's scope.
    before = day - dt.timedelta(days=1)
    templates = {str(d): f for d, f in cfg.recordings.directions.items()}
    if _is_dated(templates[first]):
        late = name_for(first, 1, dt.time(23, 58, 41), before.strftime(cfg.recordings.date_format))
        put(first, late, "other_date", audio)

    # A crash mid-upload left a zero-byte file.
    put(first, name_for(first, 2, dt.time(10, 2, 11)), "empty", b"")

    # A link that would leak the server's password file if followed.
    put(
        first,
        name_for(first, 3, dt.time(11, 40, 0)),
        "not_regular_file",
        None,
        symlink="/etc/passwd",
    )

    # A terminal escape sequence in a name (log injection), and a hidden upload temp file.
    valid = name_for(second, 4, dt.time(15, 21, 9))
    stem, dot, suffix = valid.rpartition(".")
    put(second, f"{stem}\x1b[2K{dot}{suffix}", "unsafe_name", audio)
    put(second, "." + name_for(second, 5, dt.time(16, 3, 30)), "unsafe_name", audio)
    return out


def _dialect(cfg: ProviderConfig) -> tuple[str, str, bool]:
    """Delimiter, encoding and French headers, as the provider's YAML suggests.

    French direction values mean a French Excel export: ';' and Latin-1.
    """
    values = {v.casefold() for vs in cfg.daily_report.direction_values.values() for v in vs[:1]}
    if values & _FRENCH_VALUES:
        return ";", "latin-1", True
    return ",", "utf-8", False


def write_report(result: SeedResult, cfg: ProviderConfig) -> str | None:
    """(Re)write the day's report from ``result``; return its remote path (None: no report)."""
    if result.scenario == "missing_report":
        result.report_path = None
        result.report_counts = {}
        return None
    report = cfg.daily_report
    day = result.day
    delimiter, encoding, french = _dialect(cfg)
    value = {str(d): vs[0] for d, vs in report.direction_values.items()}
    counts = dict(result.delivered_counts)
    extra_ids: list[str] = []
    if result.scenario == "report_mismatch":
        first = DIRECTIONS[0]
        counts[first] = counts.get(first, 0) + REPORT_EXTRA_INBOUND
        style = _grammar(cfg).style
        extra_ids = [style.call_id(_serial(day, first, 300 + i)) for i in range(2)]

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    date_header = report.date_column or ("Date" if french else "date")
    if report.kind == "summary":
        assert report.count_column is not None
        writer.writerow([date_header, report.direction_column, report.count_column])
        for direction in result.folders:
            writer.writerow([day.isoformat(), value[direction], counts.get(direction, 0)])
    else:
        assert report.call_id_column is not None
        extra_headers = (
            ["Heure", "Agent", "Durée (s)", "Numéro client"]
            if french
            else ["time", "agent", "duration_s", "customer_number"]
        )
        writer.writerow(
            [report.call_id_column, date_header, report.direction_column, *extra_headers]
        )
        rows = [
            (f.started, f.call_id, value[f.direction], f.agent, f.duration_s, f.customer_number)
            for f in result.files
        ]
        rng = _rng(cfg.id, day.isoformat(), result.rng_seed, "ghosts")
        for i, call_id in enumerate(extra_ids):
            started = dt.datetime.combine(day, dt.time(20, 40 + i), tzinfo=cfg.tz)
            rows.append((started, call_id, value[DIRECTIONS[0]], "XX000", 61, _phone(cfg, rng)))
        for started, call_id, direction_value, agent, duration, phone in sorted(rows):
            time_text = f"{started:%H:%M:%S}"
            writer.writerow(
                [call_id, day.isoformat(), direction_value, time_text, agent, duration, phone]
            )

    remote = report.path.format(date=day)
    end_of_day = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 15), tzinfo=cfg.tz)
    mtime = min(end_of_day.timestamp(), _ready_ceiling(cfg))
    _write(result.local_path(remote), buffer.getvalue().encode(encoding), mtime)
    result.report_path = remote
    result.report_counts = counts
    result.report_extra_call_ids = extra_ids
    return remote


def seed_provider(
    root: Path,
    cfg: ProviderConfig,
    day: dt.date,
    *,
    scenario: str = "normal",
    rng_seed: int = 0,
    counts: Mapping[str, int] | None = None,
) -> SeedResult:
    """Write ``day``'s recordings, traps and report on a provider's server folder ``root``.

    :param root: the folder an SFTP server serves as ``/`` for this provider.
    :param cfg: the provider's configuration (folders, file-name pattern, report layout).
    :param day: the processed day.
    :param scenario: ``normal``; ``report_mismatch`` (the report claims 2 more inbound calls
        than delivered); ``missing_report`` (no report written).
    :param rng_seed: varies the data; the same seed rewrites the same bytes.
    :param counts: valid recordings per direction (default 12 inbound, 7 outbound).
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown sandbox scenario {scenario!r}; expected one of {SCENARIOS}")
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    result = SeedResult(
        provider=cfg.id,
        day=day,
        root=root,
        scenario=scenario,
        rng_seed=rng_seed,
        folders={d: _folder(cfg, d, day) for d in cfg.recordings.directions},
    )
    for folder in result.folders.values():
        result.local_path(folder).mkdir(parents=True, exist_ok=True)
    plans = _plan_day(cfg, day, rng_seed, counts)
    result.files = [_write_recording(root, cfg, p, day=day, rng_seed=rng_seed) for p in plans]
    result.ignored = _history(root, cfg, day, rng_seed, counts)
    result.rejected = _traps(root, cfg, day, rng_seed, plans)
    if scenario == "missing_report":
        stale = result.local_path(cfg.daily_report.path.format(date=day))
        stale.unlink(missing_ok=True)
    write_report(result, cfg)
    return result


def add_late_file(
    result: SeedResult,
    cfg: ProviderConfig,
    *,
    direction: str = "ENTRANTS",
    duration_s: int = 95,
    mtime: float | dt.datetime | None = None,
    update_report: bool = True,
) -> SeededFile:
    """Drop one more valid recording for the result's day (a late delivery before a re-run).

    :param mtime: the file's mtime; default is late in the day (already old enough to copy).
    :param update_report: rewrite the report so that it counts the new call too.
    """
    if direction not in result.folders:
        raise ValueError(f"{cfg.id}: no folder for direction {direction!r}")
    index = 1 + max(
        (_index_of(f) for f in result.files if f.direction == direction),
        default=-1,
    )
    started = dt.datetime.combine(result.day, dt.time(20, 45), tzinfo=cfg.tz) + dt.timedelta(
        minutes=index % 60
    )
    grammar = _grammar(cfg)
    codec: Codec = "alaw" if "wav" in grammar.extensions else "mp3"
    rng = _rng(cfg.id, result.day.isoformat(), result.rng_seed, "late", direction, index)
    plan = _Plan(
        direction, index, started, duration_s, codec, grammar.style.agent(rng), _phone(cfg, rng)
    )
    stamp = mtime.timestamp() if isinstance(mtime, dt.datetime) else mtime
    seeded = _write_recording(
        result.root, cfg, plan, day=result.day, rng_seed=result.rng_seed, mtime=stamp
    )
    result.files.append(seeded)
    if update_report:
        write_report(result, cfg)
    return seeded


def _index_of(seeded: SeededFile) -> int:
    digits = re.sub(r"\D", "", seeded.call_id)
    return int(digits[-3:]) % 500


def touch_changed(
    result: SeedResult,
    cfg: ProviderConfig,
    name: str,
    *,
    mtime: float | dt.datetime | None = None,
    keep_size: bool = False,
) -> SeededFile:
    """Rewrite a seeded recording with new content and a new mtime (a provider re-export).

    :param keep_size: keep the byte size (only content and mtime change); otherwise the call
        gets 7 more seconds.
    :param mtime: default two minutes later than before (still old enough to copy).
    """
    old = result.file(name)
    data = audio_bytes(
        old.codec,
        old.duration_s if keep_size else old.duration_s + 7,
        _rng(cfg.id, name, result.rng_seed, old.version + 1),
    )
    if mtime is None:
        stamp = min(old.mtime + 120, _ready_ceiling(cfg))
        if stamp == old.mtime:
            stamp -= 120
    else:
        stamp = mtime.timestamp() if isinstance(mtime, dt.datetime) else mtime
    _write(result.local_path(old.remote_path), data, stamp)
    new = replace(
        old,
        duration_s=old.duration_s if keep_size else old.duration_s + 7,
        size=len(data),
        mtime=stamp,
        version=old.version + 1,
    )
    result.files[result.files.index(old)] = new
    return new
