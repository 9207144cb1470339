"""The file-name grammar: which remote entries belong to the day, and which are rejected.

Remote names are never trusted: a name is safe only if it is a single path component of
printable characters; every landing path is proven to stay under the data root.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from include.cc_intake.config import RecordingsConfig
from include.cc_intake.errors import UnsafePathError

EntryKind = Literal["file", "dir", "symlink", "other"]
Reason = Literal[
    "pattern_mismatch", "other_date", "empty", "not_regular_file", "unsafe_name", "duplicate_name"
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_NAME = 255


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


def is_safe_component(name: str) -> bool:
    """A single, printable, non-special path component."""
    return (
        0 < len(name) <= _MAX_NAME
        and name not in {".", ".."}
        and "/" not in name
        and "\\" not in name
        and _CONTROL.search(name) is None
    )


def is_safe_rel_name(rel_name: str) -> bool:
    return all(is_safe_component(part) for part in rel_name.split("/"))


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


def _parse_date(text: str | None, fmt: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.datetime.strptime(text, fmt).date()
    except ValueError:
        return None


def classify(entry: RemoteEntry, cfg: RecordingsConfig, day: dt.date) -> Verdict:
    """Accept an in-scope entry, or name the first reason to reject it."""
    if not is_safe_rel_name(entry.rel_name):
        return Verdict(entry, "unsafe_name")
    if entry.kind != "file":
        return Verdict(entry, "not_regular_file")
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

    Two names that differ only by case would land on the same file on a case-insensitive
    mount, so the second one is rejected as ``duplicate_name``.
    """
    verdicts: list[Verdict] = []
    seen: set[str] = set()
    for entry in sorted(entries, key=lambda e: e.rel_name):
        if not in_scope(entry, cfg, day, dated_folder=dated_folder):
            continue
        verdict = classify(entry, cfg, day)
        if verdict.accepted:
            key = entry.rel_name.casefold()
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
