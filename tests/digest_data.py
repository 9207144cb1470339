"""A mixed day for the morning digest, written by the pipeline's own writers (no hand-made JSON
where a writer exists): green, amber, red, running (a re-run of a green day), config error,
not started yet, and an unreadable summary.

Shared by the unit, browser and e2e tests of the digest.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import yaml

from include.cc_intake.digest import DigestProvider
from include.cc_intake.layout import DayLayout
from include.cc_intake.manifest import ManifestRow, write_manifest
from include.cc_intake.proof import (
    write_config_error_summary,
    write_running_summary,
    write_summary,
)
from tests.helpers import provider_dict

# The digest runs at 09:00 UTC on the 26th: every provider here processed the 25th.
AT = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
DAY = dt.date(2026, 11, 25)

GREEN, AMBER, RED, RUNNING = "vert_abidjan", "orange_douala", "rouge_dakar", "encours_lome"
BROKEN, WAITING, UNREADABLE = "casse_bamako", "attente_accra", "illisible_conakry"
ZONES = {
    GREEN: "Africa/Abidjan",
    AMBER: "Africa/Douala",
    RED: "Africa/Dakar",
    RUNNING: "Africa/Lome",
    BROKEN: "Africa/Bamako",
    WAITING: "Africa/Accra",
    UNREADABLE: "Africa/Conakry",
}
NAMES = {
    GREEN: "Vert Abidjan",
    AMBER: "Orange Douala",
    RED: "Rouge Dakar",
    RUNNING: "En cours Lomé",
    BROKEN: "Cassé Bamako",
    WAITING: "Attente Accra",
    UNREADABLE: "Illisible Conakry",
}
EXPECTED_STATUS = {
    GREEN: "green",
    AMBER: "amber",
    RED: "red",
    RUNNING: "running",
    BROKEN: "config_error",
    WAITING: "missing",
    UNREADABLE: "invalid",
}
BROKEN_ERROR = (
    "casse_bamako.yaml: recordings.filename_pattern: no call_id group (agent +2250707123456)"
)
PHONE = "0707123456"
AMBER_CALLS = {"ENTRANTS": 8, "SORTANTS": 3}
RUNNING_BEFORE = {"ENTRANTS": 10, "SORTANTS": 2}


def recordings_result(
    got: dict[str, int], expected: dict[str, int], *, success: bool = True, rejected: int = 0
) -> dict[str, Any]:
    """The part of a recordings validation result that the summary reads."""
    return {
        "success": success,
        "warnings": [],
        "reconciliation": {
            "directions": {
                d: {"expected": expected[d], "got": got[d]} for d in ("ENTRANTS", "SORTANTS")
            },
            "rejected": [{"file_name": f"bad{i}.txt"} for i in range(rejected)],
        },
    }


def _proof(folder: Path, name: str = "recordings.html") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(f"<!DOCTYPE html><p>{name}</p>", encoding="utf-8")


def _manifest(root: Path, provider: str, received: dict[str, int], rejected: int = 0) -> None:
    rows = []
    for direction, n in received.items():
        for i in range(n):
            rows.append(
                ManifestRow(
                    direction=direction,
                    file_name=f"20261125_10{i:02d}00_ag01_{direction[0]}{i}.wav",
                    remote_path=f"/x/{direction}/{i}.wav",
                    size_bytes=1000,
                    remote_mtime="2026-11-25T10:00:00Z",
                    sha256="0" * 64,
                    copied_at="2026-11-26T02:40:00Z",
                    status="copied",
                )
            )
    for i in range(rejected):
        rows.append(
            ManifestRow(
                direction="ENTRANTS",
                file_name=f"{PHONE}_{i}.txt",
                remote_path=f"/x/{i}.txt",
                size_bytes=0,
                remote_mtime="2026-11-25T10:00:00Z",
                sha256="",
                copied_at="",
                status="rejected",
                reason="pattern_mismatch",
            )
        )
    write_manifest(
        DayLayout(root, provider, DAY).manifest, rows, group_names=(), token="test", root=root
    )


def _worklist(root: Path, provider: str, items: int) -> None:
    path = root / "worklists" / provider / f"{DAY.isoformat()}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "item_id,kind,direction,agent,started_at,duration_s,path,sha256,stratum,added_at"
    lines = [header] + [f"i{n},recording,ENTRANTS,ag01,,42,p,s,ENTRANTS,t" for n in range(items)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_mixed_day(root: Path) -> None:
    """Every provider's files for :data:`DAY` under the data root ``root``."""

    def quality(provider: str) -> Path:
        return DayLayout(root, provider, DAY).quality_dir

    both = {"ENTRANTS": 12, "SORTANTS": 5}
    _proof(quality(GREEN))
    _proof(quality(GREEN), "digital.html")
    (quality(GREEN) / "digital.json").write_text(
        json.dumps(
            {"success": True, "warnings": [], "checks": {"stated_total": 40, "records": 40}}
        ),
        encoding="utf-8",
    )
    write_summary(
        quality(GREEN),
        provider=GREEN,
        day=DAY,
        recordings=recordings_result(both, both),
        run_id="scheduled__2026-11-26T02:30:00+00:00",
        timezone=ZONES[GREEN],
    )
    _manifest(root, GREEN, both)
    _worklist(root, GREEN, 6)

    _proof(quality(AMBER))
    write_summary(
        quality(AMBER),
        provider=AMBER,
        day=DAY,
        recordings=recordings_result(AMBER_CALLS, AMBER_CALLS, rejected=2),
        timezone=ZONES[AMBER],
    )
    _worklist(root, AMBER, 0)

    _proof(quality(RED))
    write_summary(
        quality(RED),
        provider=RED,
        day=DAY,
        recordings=recordings_result(
            {"ENTRANTS": 7, "SORTANTS": 4}, {"ENTRANTS": 9, "SORTANTS": 4}, success=False
        ),
        timezone=ZONES[RED],
    )

    # A re-run of a green day, in progress: 3 inbound files landed again so far.
    _proof(quality(RUNNING))
    write_summary(
        quality(RUNNING),
        provider=RUNNING,
        day=DAY,
        recordings=recordings_result(RUNNING_BEFORE, RUNNING_BEFORE),
        run_id="scheduled__1",
        attempt="0",
    )
    write_running_summary(
        quality(RUNNING), provider=RUNNING, day=DAY, run_id="manual__2", attempt="0"
    )
    _manifest(root, RUNNING, {"ENTRANTS": 3}, rejected=1)

    write_config_error_summary(quality(BROKEN), provider=BROKEN, day=DAY, timezone=ZONES[BROKEN])

    quality(UNREADABLE).mkdir(parents=True, exist_ok=True)
    (quality(UNREADABLE) / "summary.json").write_text('{"status": "green", ', encoding="utf-8")


def digest_providers() -> list[DigestProvider]:
    """The provider list the Airflow layer would hand over for the mixed day."""
    return [
        DigestProvider(pid, NAMES[pid], ZONES[pid], BROKEN_ERROR if pid == BROKEN else None)
        for pid in ZONES
    ]


def write_provider_yamls(folder: Path) -> None:
    """The mixed day's providers as YAML files (the broken one broken the same way)."""
    folder.mkdir(parents=True, exist_ok=True)
    for pid in ZONES:
        data = provider_dict(id=pid, name=NAMES[pid], timezone=ZONES[pid])
        if pid == BROKEN:
            data["recordings"]["filename_pattern"] = r"^(?P<date>\d{8}).wav$"
        (folder / f"{pid}.yaml").write_text(
            yaml.safe_dump(data, allow_unicode=True), encoding="utf-8"
        )
