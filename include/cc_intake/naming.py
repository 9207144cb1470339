"""The file-name grammar: which remote entries belong to the day, and which are rejected.

Remote names are never trusted: a name is safe only if it is a single path component of
printable characters, with no bidirectional-override character (which makes a name display as
another); it must fit the local file system (:data:`NAME_MAX` bytes, UTF-8, for the name and
for the longest temporary name we give it); every landing path is proven to stay under the data
root. Two names that one file system may store as one (case, Unicode normalisation) cannot
both be accepted.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from include.cc_intake.config import RecordingsConfig
from include.cc_intake.errors import UnsafePathError

EntryKind = Literal["file", "dir", "symlink", "other"]
Reason = Literal[
    "pattern_mismatch",
    "other_date",
    "empty",
    "not_regular_file",
    "unsafe_name",
    "name_too_long",
    "duplicate_name",
]

# Control characters, and the bidirectional embeddings/overrides/isolates (U+202A–U+202E,
# U+2066–U+2069) that make "evil\u202ewav.exe" display as another name.
UNSAFE_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
NAME_MAX = 255  # bytes per path component on ext4, XFS, btrfs, tmpfs (Linux NAME_MAX)


def escape_unsafe(text: str) -> str:
    """``text`` with each unsafe character shown as ``\\xNN`` / ``\\uNNNN``, for a page or a
    terminal: a hostile name must read as what it is, not as what it displays."""

    def shown(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return UNSAFE_CHARACTERS.sub(shown, text)


@dataclass(frozen=True)
class RemoteEntry:
    """One entry of a remote listing, as the server's directory read returned it."""

    direction: str
    rel_name: str  # relative to the direction's folder, "/"-separated
    remote_path: str
    size: int
    mtime: int  # seconds since the epoch, as the server reports it
    kind: EntryKind


@dataclass(frozen=True)
class Verdict:
    """An in-scope entry: accepted (reason None) or rejected with a reason."""

    entry: RemoteEntry
    reason: Reason | None = None
    groups: dict[str, str] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.reason is None


def render_folder(template: str, day: dt.date) -> str:
    """Render a remote folder or report path template for the processed day."""
    return template.format(date=day)


def folder_is_dated(template: str) -> bool:
    """True when the folder itself names the day: every entry in it is then in scope."""
    return "{date" in template


def _name_bytes(name: str) -> int | None:
    """The UTF-8 length of ``name``; None when it cannot be encoded (a lone surrogate)."""
    try:
        return len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def _is_clean_component(name: str) -> bool:
    """A single, printable, non-special path component, whatever its length."""
    return (
        name not in {"", ".", ".."}
        and "/" not in name
        and "\\" not in name
        and UNSAFE_CHARACTERS.search(name) is None
        and _name_bytes(name) is not None
    )


def is_safe_component(name: str) -> bool:
    """A single, printable, non-special path component of at most :data:`NAME_MAX` bytes."""
    size = _name_bytes(name)
    return _is_clean_component(name) and size is not None and size <= NAME_MAX


def is_safe_rel_name(rel_name: str) -> bool:
    return all(is_safe_component(part) for part in rel_name.split("/"))


def fits_on_disk(entry: RemoteEntry) -> bool:
    """Every component of the landed path, and the file's longest temporary name, fit NAME_MAX.

    Counted in UTF-8 bytes (what the kernel counts), with the temporary name we would create
    for this very version of the file (its size and mtime are in it).
    """
    # Imported here: layout builds on this module (safe_join), so it cannot be imported first.
    from include.cc_intake.layout import longest_tmp_name

    *folders, base = entry.rel_name.split("/")
    names = [*folders, base, longest_tmp_name(base, size=entry.size, mtime=entry.mtime)]
    return all((_name_bytes(name) or NAME_MAX + 1) <= NAME_MAX for name in names)


def collision_key(rel_name: str) -> str:
    """What a case-insensitive or normalising file system may store two names under.

    Unicode's canonical caseless match (NFD, case fold, NFD): "Appel.wav" and "appel.wav",
    and the NFC and NFD spellings of "é", each share one key.
    """
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", rel_name).casefold())


def in_scope(
    entry: RemoteEntry, cfg: RecordingsConfig, day: dt.date, *, dated_folder: bool
) -> bool:
    """Whether an entry belongs to the day at all (undated folders hold many days)."""
    if dated_folder:
        return True
    base = entry.rel_name.rsplit("/", 1)[-1]
    match = cfg.pattern.match(base)
    if match is not None:
        return _parse_date(match.group("date"), cfg.date_format) == day
    # A name we cannot parse is ours only if it visibly carries the day.
    return day.strftime(cfg.date_format) in base


@functools.lru_cache(maxsize=1024)  # a day's names carry a handful of dates; strptime is slow
def _parse_date(text: str | None, fmt: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.datetime.strptime(text, fmt).date()
    except ValueError:
        return None


def classify(entry: RemoteEntry, cfg: RecordingsConfig, day: dt.date) -> Verdict:
    """Accept an in-scope entry, or name the first reason to reject it."""
    if not all(_is_clean_component(part) for part in entry.rel_name.split("/")):
        return Verdict(entry, "unsafe_name")
    if entry.kind != "file":
        return Verdict(entry, "not_regular_file")
    if not fits_on_disk(entry):
        return Verdict(entry, "name_too_long")
    base = entry.rel_name.rsplit("/", 1)[-1]
    match = cfg.pattern.match(base)
    if match is None:
        return Verdict(entry, "pattern_mismatch")
    groups = {k: v for k, v in match.groupdict().items() if v is not None}
    parsed = _parse_date(groups.get("date"), cfg.date_format)
    if parsed is None:
        return Verdict(entry, "pattern_mismatch", groups)
    if parsed != day:
        return Verdict(entry, "other_date", groups)
    if entry.size <= 0:
        return Verdict(entry, "empty", groups)
    return Verdict(entry, None, groups)


def classify_listing(
    entries: list[RemoteEntry], cfg: RecordingsConfig, day: dt.date, *, dated_folder: bool
) -> list[Verdict]:
    """Classify one direction's listing; out-of-scope entries are left out entirely.

    Two names that differ only by case, or by Unicode normalisation (NFC and NFD spellings
    of "é"), would land on the same file on a case-insensitive or normalising mount, so the
    second one (in code-point order) is rejected as ``duplicate_name``.
    """
    verdicts: list[Verdict] = []
    seen: set[str] = set()
    for entry in sorted(entries, key=lambda e: e.rel_name):
        if not in_scope(entry, cfg, day, dated_folder=dated_folder):
            continue
        verdict = classify(entry, cfg, day)
        if verdict.accepted:
            key = collision_key(entry.rel_name)
            if key in seen:
                verdict = Verdict(entry, "duplicate_name", verdict.groups)
            seen.add(key)
        verdicts.append(verdict)
    return verdicts


def safe_join(root: Path, *parts: str) -> Path:
    """Join ``parts`` under ``root`` and prove the result stays inside it."""
    base = Path(os.path.abspath(root))
    for part in parts:
        for component in part.split("/"):
            if not is_safe_component(component):
                raise UnsafePathError(f"unsafe path component {component!r} under {base}")
    candidate = Path(os.path.abspath(base.joinpath(*parts)))
    if os.path.commonpath([base, candidate]) != str(base):
        raise UnsafePathError(f"path {candidate} escapes {base}")
    return candidate
