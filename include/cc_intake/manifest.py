"""The day's manifest: one CSV row per in-scope remote entry (PRODUCT.md §4 and §7).

A re-run lists the whole day again and writes the complete manifest, so the file always
describes the current remote day, never a run's partial view.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from include.cc_intake import constants as C
from include.cc_intake.layout import atomic_writer, storage_errors

Status = Literal["copied", "skipped_identical", "rejected"]
# One home for the column names: the config validator refuses pattern groups named like them.
LEADING_COLUMNS = C.MANIFEST_LEADING_COLUMNS


def iso_utc(moment: dt.datetime | float | int) -> str:
    """ISO-8601 UTC with a ``Z`` (seconds precision) — the manifest's only time format."""
    if not isinstance(moment, dt.datetime):
        moment = dt.datetime.fromtimestamp(moment, tz=dt.UTC)
    return moment.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ManifestRow:
    direction: str
    file_name: str
    remote_path: str
    size_bytes: int
    remote_mtime: str
    sha256: str
    copied_at: str
    status: Status
    reason: str = ""
    groups: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.direction, self.file_name)

    @property
    def landed(self) -> bool:
        return self.status in ("copied", "skipped_identical")

    def as_skipped(self) -> ManifestRow:
        return replace(self, status="skipped_identical", reason="")


def columns(group_names: Iterable[str], extra_names: Iterable[str] = ()) -> list[str]:
    groups = sorted(set(group_names))
    extras = [name for name in extra_names if name not in LEADING_COLUMNS and name not in groups]
    return [*LEADING_COLUMNS, *groups, *extras]


def read_manifest(path: Path, group_names: Iterable[str] = ()) -> list[ManifestRow]:
    """Read a manifest written by :func:`write_manifest`; a missing file is an empty day."""
    if not path.exists():
        return []
    groups = set(group_names)
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for record in csv.DictReader(handle):
            rows.append(
                ManifestRow(
                    direction=record["direction"],
                    file_name=record["file_name"],
                    remote_path=record["remote_path"],
                    size_bytes=int(record["size_bytes"] or 0),
                    remote_mtime=record["remote_mtime"],
                    sha256=record["sha256"],
                    copied_at=record["copied_at"],
                    status=record["status"],  # type: ignore[arg-type]
                    reason=record.get("reason", ""),
                    groups={k: v for k, v in record.items() if k in groups and v},
                    extra={
                        k: v
                        for k, v in record.items()
                        if k not in LEADING_COLUMNS and k not in groups and v is not None
                    },
                )
            )
    return rows


def write_manifest(
    path: Path,
    rows: Iterable[ManifestRow],
    *,
    group_names: Iterable[str],
    token: str,
    root: Path,
) -> int:
    """Write the complete manifest atomically, rows sorted by direction then name.

    A refused write (disk full, …) raises :class:`StorageError` naming provider, day and path,
    and leaves the previous manifest as it was.
    """
    ordered = sorted(rows, key=lambda r: r.key)
    groups = set(group_names)
    extra_names: list[str] = []
    for row in ordered:
        groups.update(row.groups)
        extra_names.extend(name for name in row.extra if name not in extra_names)
    header = columns(groups, extra_names)
    # The manifest lives at <root>/manifests/<provider>/<day>.csv (DayLayout.manifest).
    guard = storage_errors(path, provider=path.parent.name, day=path.stem, what="manifest")
    with guard, atomic_writer(path, token, root=root) as handle:
        writer = csv.DictWriter(handle, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        for row in ordered:
            writer.writerow(
                {
                    "direction": row.direction,
                    "file_name": row.file_name,
                    "remote_path": row.remote_path,
                    "size_bytes": row.size_bytes,
                    "remote_mtime": row.remote_mtime,
                    "sha256": row.sha256,
                    "copied_at": row.copied_at,
                    "status": row.status,
                    "reason": row.reason,
                    **row.groups,
                    **row.extra,
                }
            )
    return len(ordered)


def landed_index(rows: Iterable[ManifestRow]) -> dict[tuple[str, str], ManifestRow]:
    """The previous manifest's landed files, by (direction, file_name)."""
    return {row.key: row for row in rows if row.landed}


def can_skip(previous: ManifestRow | None, *, size: int, remote_mtime: str, landed: Path) -> bool:
    """``skipped_identical``: recorded with this remote size and mtime, and still landed whole."""
    if previous is None or previous.size_bytes != size or previous.remote_mtime != remote_mtime:
        return False
    try:
        return landed.stat().st_size == size and bool(previous.sha256)
    except FileNotFoundError:
        return False
