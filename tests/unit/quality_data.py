"""Test data for the quality modules: a provider, manifest rows, reports, CRM records.

Shared by test_reconcile, test_gx_suites, test_proof and the integration tests that keep
a real proof (test_keep_proof, test_overview_app).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

from include.cc_intake.config import ProviderConfig, parse_provider
from include.cc_intake.gx_suites import validate_digital, validate_recordings
from include.cc_intake.report import DailyReport

DAY = dt.date(2026, 11, 20)
PATTERN = r"^(?P<date>\d{8})_(?P<time>\d{6})_(?P<agent>[^_]+)_(?P<call_id>[^_.]+)\.(wav|mp3|gsm)$"
LEADING = [
    "direction",
    "file_name",
    "remote_path",
    "size_bytes",
    "remote_mtime",
    "sha256",
    "copied_at",
    "status",
    "reason",
]
GROUPS = ["agent", "call_id", "date", "time"]


def _cfg(
    tolerance: int | str = 0,
    directions: tuple[str, ...] = ("ENTRANTS", "SORTANTS"),
    digital: dict[str, Any] | None = None,
    timezone: str = "Africa/Abidjan",
) -> ProviderConfig:
    data: dict[str, Any] = {
        "id": "acme_abidjan",
        "name": "ACME Abidjan",
        "timezone": timezone,
        "schedule": "30 2 * * *",
        "deadline": "07:00",
        "alert_emails": ["ops@example.com"],
        "recordings": {
            "sftp_conn_id": "sftp_acme",
            "directions": {d: f"/exports/{d.lower()}/{{date:%Y%m%d}}" for d in directions},
            "filename_pattern": PATTERN,
            "date_format": "%Y%m%d",
        },
        "daily_report": {
            "path": "/exports/reports/calls_{date:%Y%m%d}.csv",
            "direction_column": "direction",
            "count_column": "calls",
            "direction_values": {"ENTRANTS": ["IN"], "SORTANTS": ["OUT"]},
            "tolerance": tolerance,
        },
    }
    if digital is not None:
        data["digital"] = digital
    return parse_provider(data, source=Path("acme_abidjan.yaml"))


def _row(
    direction: str,
    call_id: str,
    *,
    day: str = "20261120",
    size: int = 48_000,
    status: str = "copied",
    reason: str = "",
    agent: str = "ag01",
    hhmmss: str = "101500",
    name: str | None = None,
) -> dict[str, str]:
    file_name = name or f"{day}_{hhmmss}_{agent}_{call_id}.wav"
    return {
        "direction": direction,
        "file_name": file_name,
        "remote_path": f"/exports/{direction.lower()}/{day}/{file_name}",
        "size_bytes": str(size),
        "remote_mtime": "2026-11-20T23:00:00Z",
        "sha256": "" if status == "rejected" else "ab" * 32,
        "copied_at": "" if status == "rejected" else "2026-11-21T02:31:00Z",
        "status": status,
        "reason": reason,
        "agent": agent,
        "call_id": call_id,
        "date": day,
        "time": hhmmss,
        "codec": "pcm_s16le",
    }


def _day_rows() -> list[dict[str, str]]:
    """A clean day: three inbound calls, two outbound, one already copied by a previous run."""
    return [
        _row("ENTRANTS", "E1"),
        _row("ENTRANTS", "E2", status="skipped_identical"),
        _row("ENTRANTS", "E3"),
        _row("SORTANTS", "S1"),
        _row("SORTANTS", "S2"),
    ]


def _summary(entrants: int = 3, sortants: int = 2, warnings: tuple[str, ...] = ()) -> DailyReport:
    return DailyReport(
        provider="acme_abidjan",
        day=DAY,
        kind="summary",
        source="calls_20261120.csv",
        counts={"ENTRANTS": entrants, "SORTANTS": sortants},
        warnings=warnings,
    )


def _detail(
    entrants: tuple[str, ...] = ("E1", "E2", "E3"), sortants: tuple[str, ...] = ("S1", "S2")
) -> DailyReport:
    return DailyReport(
        provider="acme_abidjan",
        day=DAY,
        kind="detail",
        source="calls_20261120.csv",
        counts={"ENTRANTS": len(entrants), "SORTANTS": len(sortants)},
        call_ids={"ENTRANTS": entrants, "SORTANTS": sortants},
    )


def _manifest(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    path = tmp_path / "2026-11-20.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*LEADING, *GROUPS, "codec"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _validate(
    tmp_path: Path,
    rows: list[dict[str, str]],
    report: DailyReport,
    cfg: ProviderConfig | None = None,
) -> dict[str, Any]:
    return validate_recordings(_manifest(tmp_path, rows), report, cfg or _cfg(), DAY)


def _failed(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Failed GX expectations, keyed by type (plus direction for per-direction checks)."""
    out = {}
    for item in result["results"]:
        if not item["success"]:
            config = item["expectation_config"]
            key = config["type"]
            if config.get("meta", {}).get("direction"):
                key += ":" + config["meta"]["direction"]
            out[key] = item
    return out


def _unexpected_files(item: dict[str, Any]) -> set[str]:
    return {x["file_name"] for x in item["result"]["partial_unexpected_index_list"]}


# --- Great Expectations: digital -------------------------------------------------------------

DIGITAL = {
    "http_conn_id": "crm_acme",
    "endpoint": "/api/export/interactions",
    "id_field": "id",
    "timestamp_field": "meta.created_at",
    "content_field": "body",
}


def _records(n: int = 10) -> list[dict[str, Any]]:
    return [
        {
            "id": f"I{i}",
            "channel": "chat",
            "meta": {"created_at": f"2026-11-20T{8 + i % 12:02d}:15:00+00:00"},
            "body": "Bonjour, je vous contacte au sujet de mon abonnement.",
        }
        for i in range(n)
    ]


def _jsonl(tmp_path: Path, records: list[Any]) -> Path:
    path = tmp_path / "interactions.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return path


def _digital(
    tmp_path: Path, records: list[Any], total: int | None = 10, cfg: ProviderConfig | None = None
) -> dict[str, Any]:
    return validate_digital(_jsonl(tmp_path, records), total, cfg or _cfg(digital=DIGITAL), DAY)
