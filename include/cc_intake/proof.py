"""Keep the day's proof: ``quality/<provider>/<day>/`` (contract §7 *Proof files*).

:func:`write_proof` writes a validation result as ``<kind>.json`` and its page ``<kind>.html``
(rendered by :mod:`include.cc_intake.proof_pages`); :func:`write_summary` writes
``summary.json``, the one file the overview and the digest read, with the day's status
(:mod:`include.cc_intake.status`); :func:`write_config_error_summary` marks a day whose
provider file was broken. Every write is atomic: a run-unique temporary sibling, fsync, rename.
The JSON proofs keep exact file names (they sit beside the data); the pages mask phones.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from include.cc_intake.config import DIRECTIONS
from include.cc_intake.layout import atomic_writer, storage_errors
from include.cc_intake.proof_pages import render_digital_page, render_recordings_page
from include.cc_intake.status import (
    CONFIG_ERROR,
    RUNNING,
    VERDICTS,
    ProofKind,
    day_status,
    keeps_verdict,
    verdict,
)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` under a run-unique temporary sibling, fsync, then rename onto ``path``.

    A refused write (disk full, …) raises :class:`StorageError` naming provider, day and path;
    the previous proof file stays whole.
    """
    # Proof files live at <root>/quality/<provider>/<day>/<name> (DayLayout.quality_dir).
    day_dir = path.parent
    guard = storage_errors(path, provider=day_dir.parent.name, day=day_dir.name, what="proof file")
    with guard, atomic_writer(path, secrets.token_hex(5), binary=True) as handle:
        handle.write(data)


def write_proof(quality_dir: Path, kind: ProofKind, result: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``<kind>.json`` (the full result) and ``<kind>.html`` (the page) in ``quality_dir``."""
    if kind not in ("recordings", "digital"):
        raise ValueError(f"proof kind must be 'recordings' or 'digital', got {kind!r}")
    json_path = quality_dir / f"{kind}.json"
    html_path = quality_dir / f"{kind}.html"
    payload = json.dumps(result, ensure_ascii=False, indent=1, default=str) + "\n"
    _atomic_write(json_path, payload.encode("utf-8"))
    render = render_recordings_page if kind == "recordings" else render_digital_page
    page = render(result, verdict(result))
    _atomic_write(html_path, page.encode("utf-8"))
    return json_path, html_path


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_summary(
    quality_dir: Path,
    *,
    provider: str,
    day: dt.date,
    recordings: Mapping[str, Any] | None = None,
    digital: Mapping[str, Any] | None = None,
    rejected: int | None = None,
    run_id: str | None = None,
    timezone: str | None = None,
    attempt: str | None = None,
) -> Path:
    """Write ``summary.json`` from the day's results (contract §7 *Proof files*).

    ``recordings`` / ``digital`` are results of :func:`.gx_suites.validate_recordings` /
    :func:`.gx_suites.validate_digital`; a section not given is read from its proof file
    (``recordings.json`` / ``digital.json``) when there is one, so the recordings and digital
    tasks can each update the summary without losing the other's verdict. ``rejected``
    defaults to the recordings result's number of rejected manifest rows. ``kept`` and
    ``failed`` (optional keys, present when not 0) are its numbers of kept and failed rows;
    kept ones are already part of each direction's ``got``. ``run_id`` and ``timezone``, when
    given, are added for the overview's link to the run (optional keys).

    ``attempt`` names the run attempt (see :func:`write_running_summary`). While the summary
    says ``running`` for this same attempt, a digital verdict alone keeps it ``running`` (the
    recordings, which decide the day, are still on their way); the recordings verdict ends it.
    """
    earlier = _load_json(quality_dir / "summary.json")
    still_running = (
        recordings is None
        and attempt is not None
        and earlier is not None
        and earlier.get("status") == RUNNING
        and _same_attempt(earlier, run_id, attempt)
    )
    rec = (
        dict(recordings) if recordings is not None else _load_json(quality_dir / "recordings.json")
    )
    dig = dict(digital) if digital is not None else _load_json(quality_dir / "digital.json")

    directions = (rec or {}).get("reconciliation", {}).get("directions", {})
    recordings_section = {
        d: {
            "expected": directions.get(d, {}).get("expected"),
            "got": directions.get(d, {}).get("got"),
        }
        for d in DIRECTIONS
    }
    digital_section = None
    if dig is not None:
        checks = dig.get("checks", {})
        digital_section = {
            "expected": checks.get("stated_total"),
            "got": checks.get("records"),
            "conflicting_ids": checks.get("conflicting_ids") or 0,
        }
    reconciliation = (rec or {}).get("reconciliation", {})
    if rejected is None:
        rejected = len(reconciliation.get("rejected", []))

    status = day_status(
        (verdict(r) for r in (rec, dig) if r is not None),
        recordings_validated=rec is not None,
        rejected=rejected,
    )
    if still_running:
        assert earlier is not None
        reconciliation = {}  # the recordings.json on disk is an earlier run's
        recordings_section = earlier.get("recordings") or recordings_section
        rejected = earlier.get("rejected", rejected)

    summary: dict[str, Any] = {
        "provider": provider,
        "day": day.isoformat(),
        "status": RUNNING if still_running else status,
        "recordings": recordings_section,
        "digital": digital_section,
        "rejected": rejected,
        "updated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    # Optional, only when there are some: kept files are already inside each ``got``, failed
    # copies are warned about; the overview shows both counts.
    for listed in ("kept", "failed"):
        if reconciliation.get(listed):
            summary[listed] = len(reconciliation[listed])
    # Optional: the backup endpoints that served the day (the primary did not answer).
    if (rec or {}).get("served_by_backup"):
        summary["served_by_backup"] = list(rec["served_by_backup"])  # type: ignore[index]
    if run_id is not None:
        summary["run_id"] = run_id
    if timezone is not None:
        summary["timezone"] = timezone
    summary.update(_purge_marks(quality_dir))
    if attempt is not None:
        summary["attempt"] = attempt
    if still_running:
        assert earlier is not None
        for key in ("started_at", "previous", "kept", "failed"):
            if key in earlier:
                summary[key] = earlier[key]
    path = quality_dir / "summary.json"
    _atomic_write(path, (json.dumps(summary, indent=1) + "\n").encode("utf-8"))
    return path


def _purge_marks(quality_dir: Path) -> dict[str, Any]:
    """The earlier summary's purge marks (``purged_at``, ``purged``; #12), carried over.

    A validation re-run does not bring purged data back: only the step that lands it again
    (``restore``) lifts its kind's mark (:func:`include.cc_intake.retention.lift_purged`).
    """
    earlier = _load_json(quality_dir / "summary.json") or {}
    return {key: earlier[key] for key in ("purged", "purged_at") if earlier.get(key)}


def _same_attempt(summary: Mapping[str, Any], run_id: str | None, attempt: str) -> bool:
    return summary.get("run_id") == run_id and summary.get("attempt") == attempt


# What a ``running`` summary keeps of the day's last summary: its counts stay visible while
# the run works (a re-run of a green day still shows what landed and was proven).
# The retention's purge marks stay too: a re-run of a purged day must still be refused (#12).
_KEPT_WHILE_RUNNING = (
    "recordings",
    "digital",
    "rejected",
    "kept",
    "failed",
    "purged",
    "purged_at",
)


def write_running_summary(
    quality_dir: Path,
    *,
    provider: str,
    day: dt.date,
    run_id: str,
    attempt: str,
    timezone: str | None = None,
) -> Path | None:
    """Mark the day ``running`` at the start of a run attempt (contract §8.1 *Evaluators*).

    ``attempt`` tells the attempts of one run apart (a cleared run keeps its ``run_id``): the
    first step of an attempt to get here writes ``running``; any later call for the same
    attempt (a second root task, a rescheduled sensor) leaves the file alone, so it never
    overwrites a verdict that a later step of the attempt has written. The day's counts and
    its earlier verdict (``previous``) are kept; the proof files are not touched. Returns the
    path written, or ``None`` when this attempt had already marked the day.
    """
    path = quality_dir / "summary.json"
    earlier = _load_json(path) or {}
    if _same_attempt(earlier, run_id, attempt):
        return None
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    summary: dict[str, Any] = {
        "provider": provider,
        "day": day.isoformat(),
        "status": RUNNING,
        "recordings": None,
        "digital": None,
        "rejected": None,
    }
    for key in _KEPT_WHILE_RUNNING:
        if key in earlier:
            summary[key] = earlier[key]
    previous = earlier.get("status")
    if previous not in VERDICTS:  # a run that never ended keeps the verdict before it
        previous = earlier.get("previous")
    if previous in VERDICTS:
        summary["previous"] = previous
    summary.update(updated_at=now, started_at=now, run_id=run_id, attempt=attempt)
    if timezone is not None:
        summary["timezone"] = timezone
    _atomic_write(path, (json.dumps(summary, indent=1) + "\n").encode("utf-8"))
    return path


def finish_running_summary(
    quality_dir: Path, *, run_id: str, attempt: str, succeeded: bool
) -> Path | None:
    """End a ``running`` mark that no validation replaced (the run ended before its verdict).

    Only this attempt's own mark is touched. With a recordings proof on disk, the day's status
    is what its proof files say now (the earlier recordings verdict, and a digital verdict this
    run may have renewed); without one, its earlier verdict, else ``red``: the day was not
    proven. Returns the path written, or ``None`` when there was nothing to end.
    """
    path = quality_dir / "summary.json"
    earlier = _load_json(path)
    if earlier is None or earlier.get("status") != RUNNING:
        return None
    if not _same_attempt(earlier, run_id, attempt):
        return None
    summary = dict(earlier)
    previous = summary.pop("previous", None)
    rec = _load_json(quality_dir / "recordings.json")
    if rec is not None:
        dig = _load_json(quality_dir / "digital.json")
        rejected = len((rec.get("reconciliation") or {}).get("rejected") or [])
        verdicts = [verdict(r) for r in (rec, dig) if r is not None]
        summary["status"] = day_status(verdicts, recordings_validated=True, rejected=rejected)
    else:
        summary["status"] = previous if previous in VERDICTS else "red"
    summary["last_run"] = "success" if succeeded else "failed"
    summary["updated_at"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    _atomic_write(path, (json.dumps(summary, indent=1) + "\n").encode("utf-8"))
    return path


def write_config_error_summary(
    quality_dir: Path,
    *,
    provider: str,
    day: dt.date,
    run_id: str | None = None,
    timezone: str | None = None,
) -> Path | None:
    """Mark the day ``config_error`` (contract §8.1): the provider's YAML was broken when the
    day was due, so nothing was fetched. The overview and the digest read it.

    A day that already has a verdict (green, amber, red) keeps it: a run made before the file
    broke proved that day, and a placeholder run proves nothing. Returns the path written, or
    ``None`` when the earlier verdict was kept.
    """
    path = quality_dir / "summary.json"
    earlier = _load_json(path)
    if earlier is not None and keeps_verdict(earlier.get("status")):
        return None
    summary: dict[str, Any] = {
        "provider": provider,
        "day": day.isoformat(),
        "status": CONFIG_ERROR,
        "recordings": None,
        "digital": None,
        "rejected": None,
        "updated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if run_id is not None:
        summary["run_id"] = run_id
    if timezone is not None:
        summary["timezone"] = timezone
    _atomic_write(path, (json.dumps(summary, indent=1) + "\n").encode("utf-8"))
    return path
