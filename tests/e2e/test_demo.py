"""`make demo` stays true: the sandbox days land through real Airflow and the summary says so."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_demo_lands_both_providers_and_shows_the_red_day(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CC_INTAKE"))}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-m", "include.cc_intake.sandbox.demo", "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=ROOT,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    assert "acme_abidjan  day " in text and "run: success" in text
    assert "baobab_douala  day " in text and "verdict: RED" in text
    assert "ENTRANTS  report says 14, got 12" in text
    assert "écart entre enregistrements et rapport" in text
    # The morning digest of the processed day: written under the data root, and e-mailed.
    digest = text.split("Morning digest (written): ", 1)[1].splitlines()[0]
    assert Path(digest).parent == tmp_path / "data" / "digests" and Path(digest).is_file()
    assert "[intake] synthèse du " in text

    assert "cedre_lome  day " in text and "served by  ftps_cedre" in text  # over FTPS
    for provider in ("acme_abidjan", "baobab_douala", "cedre_lome"):
        manifests = list((tmp_path / "data" / "manifests" / provider).glob("*.csv"))
        assert len(manifests) == 1
        with manifests[0].open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        copied = [r for r in rows if r["status"] == "copied"]
        assert len(copied) == 19, provider  # 12 inbound + 7 outbound seeded per provider
        day = manifests[0].stem
        for row in copied:
            landed = (
                tmp_path / "data/recordings" / provider / day / row["direction"] / row["file_name"]
            )
            assert landed.stat().st_size == int(row["size_bytes"])
        if provider == "cedre_lome":  # FTPS, no CRM export; its primary served every file
            assert {row["endpoint"] for row in copied} == {"ftps_cedre"}
            continue
        assert (tmp_path / "data/digital" / provider / day / "interactions.jsonl").stat().st_size
        # #13: each run built the evaluators' worklist, and the demo prints its size.
        worklist = tmp_path / "data" / "worklists" / provider / f"{day}.csv"
        with worklist.open(encoding="utf-8") as handle:
            items = list(csv.DictReader(handle))
        recordings = sum(item["kind"] == "recording" for item in items)
        conversations = len(items) - recordings
        assert recordings and conversations, provider
        assert f"WORKLIST  {recordings} recordings, {conversations} conversations" in text
    # The red day's worklist was built, and its run still failed: the worklist is a teardown.
    assert re.search(r"baobab_douala  day \S+  run: FAILED  verdict: RED", text), text[-3000:]
