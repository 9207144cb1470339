"""Fixtures for the worklist plugin tests: Airflow's real api-server app with a test-only auth
manager that denies ``operator`` the DAG of ``globex_dakar``, and worklists built by the
production code from landed files.

Import the fixture in a test module (``from tests.integration.conftest_worklist import
worklist_api``).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.cc_intake.config import ProviderConfig
from include.cc_intake.layout import DayLayout
from include.cc_intake.manifest import ManifestRow, write_manifest
from include.cc_intake.worklist import Worklist, build_worklist
from tests.helpers import provider
from tests.integration.conftest_overview import AirflowApi, api_app, write_summary
from tests.integration.deny_auth_manager import MANAGER

DAY = dt.date(2026, 11, 25)
PROVIDERS = ("acme_abidjan", "globex_dakar")
DIGITAL = {
    "http_conn_id": "crm",
    "endpoint": "/x",
    "id_field": "id",
    "timestamp_field": "created_at",
    "content_field": "messages",
}


def pcm_wav(seconds: float, rate: int = 8000) -> bytes:
    """A PCM 16-bit mono WAV of a 440 Hz tone (the plain case every browser plays)."""
    import math

    samples = int(seconds * rate)
    data = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
        for i in range(samples)
    )
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def config(provider_id: str) -> ProviderConfig:
    return provider(
        id=provider_id,
        sampling={"recordings": 10, "digital": 5, "strata": ["direction"]},
        digital=DIGITAL,
    )


def land_day(root: Path, provider_id: str) -> Worklist:
    """A landed day (a PCM WAV, an A-law WAV from the sandbox, a GSM file, an MP3, one
    conversation) and its worklist, built by the production code."""
    from include.cc_intake.sandbox.seed import mp3_bytes, wav_bytes

    rng = random.Random(provider_id)
    files = {
        ("ENTRANTS", "20261125_090000_AG01_C00001.wav"): (pcm_wav(3.0), "pcm_s16le", "3.0"),
        ("ENTRANTS", "20261125_100000_AG02_C00002.wav"): (
            wav_bytes("alaw", 4.0, rng), "pcm_alaw", "4.0"),
        ("SORTANTS", "20261125_110000_AG03_0712345678.gsm"): (bytes(33 * 200), "gsm", "4.0"),
        ("SORTANTS", "20261125_120000_AG01_C00004.mp3"): (mp3_bytes(3.0, rng), "mp3", "3.0"),
    }  # fmt: skip
    layout = DayLayout(root, provider_id, DAY)
    rows = []
    for (direction, name), (data, codec, seconds) in files.items():
        path = layout.recording(direction, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        date, time, agent, call = name.rsplit(".", 1)[0].split("_")
        rows.append(
            ManifestRow(
                direction=direction,
                file_name=name,
                remote_path=f"/x/{name}",
                size_bytes=len(data),
                remote_mtime="2026-11-25T12:00:00Z",
                sha256="00" * 32,
                copied_at="2026-11-26T02:31:00Z",
                status="copied",
                groups={"date": date, "time": time, "agent": agent, "call_id": call},
                extra={"codec": codec, "duration_s": seconds, "audio_ok": "true"},
            )
        )
    write_manifest(
        layout.manifest,
        rows,
        group_names=["date", "time", "agent", "call_id"],
        token="t",
        root=root,
    )
    layout.digital_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "id": "CRM-1",
        "channel": "chat",
        "created_at": "2026-11-25T08:00:00+00:00",
        "agent": {"id": "AG01"},
        "messages": [
            {"from": "client", "at": "2026-11-25T08:00:00+00:00", "text": "Rappelez le 0712345678"},
            {"from": "agent", "at": "2026-11-25T08:01:00+00:00", "text": "C'est noté."},
        ],
    }
    (layout.digital_dir / "interactions.jsonl").write_text(json.dumps(record) + "\n")
    now = dt.datetime(2026, 11, 26, 3, tzinfo=dt.UTC)
    return build_worklist(config(provider_id), DAY, root, now=now, token="t")


@pytest.fixture(scope="module")
def worklist_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowApi]:
    """The api-server app (core API, UI, auth, our plugins) with the test-only auth manager."""
    data = tmp_path_factory.mktemp("data")
    for provider_id in PROVIDERS:
        land_day(data, provider_id)
        write_summary(data, provider_id, DAY, "green")  # the overview's row
    with api_app(tmp_path_factory.getbasetemp(), data, AIRFLOW__CORE__AUTH_MANAGER=MANAGER) as api:
        yield api
