"""Small builders shared by tests (plain data, no fixtures, no mocks)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from include.cc_intake.config import ProviderConfig, parse_provider

PATTERN = r"^(?P<date>\d{8})_(?P<time>\d{6})_(?P<agent>[^_]+)_(?P<call_id>[^_.]+)\.(wav|mp3|gsm)$"


def provider_dict(**overrides: Any) -> dict[str, Any]:
    """A valid provider mapping (contract §3), with top-level keys overridden."""
    data: dict[str, Any] = {
        "id": "acme_abidjan",
        "name": "ACME Abidjan",
        "timezone": "Africa/Abidjan",
        "schedule": "30 2 * * *",
        "deadline": "07:00",
        "alert_emails": ["ops@example.com"],
        "recordings": {
            "sftp_conn_id": "sftp_acme",
            "directions": {
                "ENTRANTS": "/exports/inbound/{date:%Y%m%d}",
                "SORTANTS": "/exports/outbound/{date:%Y%m%d}",
            },
            "filename_pattern": PATTERN,
            "date_format": "%Y%m%d",
            "min_file_age": "5m",
            "wait_timeout": "4h",
        },
        "daily_report": {
            "path": "/exports/reports/calls_{date:%Y%m%d}.csv",
            "format": "csv",
            "direction_column": "direction",
            "count_column": "calls",
            "direction_values": {
                "ENTRANTS": ["IN", "inbound", "entrant"],
                "SORTANTS": ["OUT", "outbound", "sortant"],
            },
            "tolerance": 0,
        },
    }
    for key, value in overrides.items():
        data[key] = value
    return copy.deepcopy(data)


def provider(**overrides: Any) -> ProviderConfig:
    return parse_provider(provider_dict(**overrides), source=Path("test.yaml"))


def with_recordings(**changes: Any) -> ProviderConfig:
    data = provider_dict()
    data["recordings"].update(changes)
    return parse_provider(data, source=Path("test.yaml"))
