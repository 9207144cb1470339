"""The day's manifest: one CSV row per in-scope remote entry, plus what we still hold.

A re-run lists the whole day again and writes the complete manifest, so the file always
describes the current remote day, never a run's partial view — except that proof already
earned is never dropped: a file we hold whole that the remote no longer lists keeps its row
as ``kept`` (contract §4, §7 and §8 *Manifest statuses*).

Statuses:

- ``copied``, ``skipped_identical``: the remote entry is here, whole, with its SHA-256;
- ``kept`` (reason ``gone_from_remote``): held here, no longer listed by the remote; the row
  keeps the first ``copied_at`` and the ``sha256``;
- ``failed`` (reason: the error, redacted): the copy of this remote entry failed this run;
- ``rejected`` (reason of :mod:`include.cc_intake.naming`): never copied.

:data:`RECEIVED` is the one rule of what counts as received (reconciliation, summaries).
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from include.cc_intake import constants as C
from include.cc_intake.layout import atomic_writer, storage_errors

Status = Literal["copied", "skipped_identical", "kept", "failed", "rejected"]
# A row whose file we hold whole with its SHA-256: what reconciliation counts as received and
# what a re-run may skip. A ``failed`` row never is, even when it carries an earlier copy's
# proof (see :func:`held_index`): the remote now has another version that we do not have.
RECEIVED: frozenset[str] = frozenset({"copied", "skipped_identical", "kept"})
GONE_FROM_REMOTE = "gone_from_remote"
# What a row's reason means, in French, wherever an operator reads it (proof pages, the
# onboarding check): the rejection reasons of include.cc_intake.naming, and ``kept``'s.
REASON_FR = {
    "pattern_mismatch": "nom non conforme au motif",
    "other_date": "autre date",
    "empty": "fichier vide",
    "not_regular_file": "pas un fichier ordinaire (dossier, lien)",
    "unsafe_name": "nom dangereux",
    "name_too_long": "nom trop long pour le disque",
    "duplicate_name": "nom en double (casse, Unicode)",
    GONE_FROM_REMOTE: "plus sur le serveur",
}
# One home for the column names: the config validator refuses pattern groups named like them.
LEADING_COLUMNS = C.MANIFEST_LEADING_COLUMNS


def iso_utc(moment: dt.datetime | float | int) -> str:
    """ISO-8601 UTC with a ``Z`` (seconds precision) — the manifest's only time format."""
    if not isinstance(moment, dt.datetime):  # once or twice per file of a day: the fast way
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
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
        """Received: the file is here whole with its SHA-256 (:data:`RECEIVED`)."""
        return is_received(self.status)

    @property
    def holds_copy(self) -> bool:
        """The row proves a copy we made (a received row, or a failed re-copy of one)."""
        return bool(self.sha256) and self.status in (*RECEIVED, "failed")

    def as_skipped(self) -> ManifestRow:
        return replace(self, status="skipped_identical", reason="")

    def as_kept(self) -> ManifestRow:
        """The same proof (first ``copied_at``, ``sha256``), now that the remote lost the file."""
        return replace(self, status="kept", reason=GONE_FROM_REMOTE)


def is_received(status: str) -> bool:
    """Whether a row with ``status`` counts as received (the one home of that rule)."""
    return status.strip() in RECEIVED


def served_by_backup(rows: Iterable[ManifestRow], primary: str) -> list[str]:
    """The endpoints other than ``primary`` that served received rows (``endpoint`` column).

    Empty when the primary served everything, or for manifests written before the column.
    """
    return sorted(
        {
            endpoint
            for row in rows
            if row.landed and (endpoint := row.extra.get("endpoint", "")) and endpoint != primary
        }
    )


def columns(group_names: Iterable[str], extra_names: Iterable[str] = ()) -> list[str]:
    groups = sorted(set(group_names))
    extras = [name for name in extra_names if name not in LEADING_COLUMNS and name not in groups]
    # The added columns in their stable order (contract §8), whichever row brought them first.
    order = {name: i for i, name in enumerate(C.MANIFEST_ADDED_COLUMNS)}
    extras.sort(key=lambda name: order.get(name, len(order)))
    return [*LEADING_COLUMNS, *groups, *extras]


def read_records(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The manifest CSV as written: its header and its rows as dicts of text.

    The one place a manifest file is parsed: :func:`read_manifest` builds rows from it, the
    reconciliation (:func:`include.cc_intake.reconcile.read_manifest_rows`) takes the dicts as
    they are. Raises what opening and parsing raise (``FileNotFoundError``, ``OSError``,
    ``UnicodeDecodeError``, ``csv.Error``); callers say what it means for them.
    """
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def read_manifest(path: Path, group_names: Iterable[str] = ()) -> list[ManifestRow]:
    """Read a manifest written by :func:`write_manifest`; a missing file is an empty day."""
    try:
        _, records = read_records(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    groups = set(group_names)
    return [
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
        for record in records
    ]


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
    """The previous manifest's received files, by (direction, file_name): the skip candidates."""
    return {row.key: row for row in rows if row.landed}


def held_index(rows: Iterable[ManifestRow]) -> dict[tuple[str, str], ManifestRow]:
    """The previous manifest's proofs of copies we made, by (direction, file_name).

    Wider than :func:`landed_index`: a ``failed`` row that carries an earlier copy's proof
    counts, so that proof survives any number of failed re-copies and a later purge.
    """
    return {row.key: row for row in rows if row.holds_copy}


def still_held(previous: ManifestRow | None, landed: Path) -> bool:
    """The file ``previous`` proves is still on disk at ``landed`` with its recorded size.

    Size, not a re-hash: hashing a day of recordings at every run would cost more than the
    copy, and the landing folders are ours (0750) — a same-size overwrite is not expected.
    """
    if previous is None or not previous.holds_copy:
        return False
    try:
        return landed.stat().st_size == previous.size_bytes
    except (FileNotFoundError, NotADirectoryError):
        return False


def can_skip(previous: ManifestRow | None, *, size: int, remote_mtime: str, landed: Path) -> bool:
    """``skipped_identical``: recorded with this remote size and mtime, and still landed whole."""
    if previous is None or not previous.landed:
        return False
    if previous.size_bytes != size or previous.remote_mtime != remote_mtime:
        return False
    return still_held(previous, landed)
