"""The completion handshake and the retention of personal data through real DAG runs (#12).

One provider-day of the sandbox's server, played through ``airflow dags test`` (see
``SandboxDays``): an amber day and a red day get no marker, a green day gets one; the
``cc_intake_housekeeping`` DAG first lists what it would purge (dry run), then purges and
journals; a re-run of the purged day fails with the "journée purgée" e-mail, and succeeds with
``restore``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from typing import Any

import pytest
import yaml

from include.cc_intake import constants as C
from include.cc_intake.handshake import marker_name
from include.cc_intake.manifest import read_manifest
from include.cc_intake.messages import SUBJECTS
from tests.e2e.conftest import SandboxDays

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

PID = "acme_handshake"
DAG_ID = f"{C.DAG_PREFIX}{PID}"
HOUSEKEEPING = "cc_intake_housekeeping"


def _provider(days: SandboxDays) -> None:
    """The sandbox's acme provider, renamed, recordings only, with ``on_complete: marker``;
    its sandbox server accepts writes (it is read-only by default)."""
    from include.cc_intake.sandbox.env import PROVIDERS_FOLDER

    spec = yaml.safe_load((PROVIDERS_FOLDER / "acme_abidjan.yaml").read_text("utf-8"))
    spec.update(id=PID, name="ACME (accusé de réception)")
    spec.pop("digital")
    spec["recordings"]["on_complete"] = "marker"
    (days.providers_dir / f"{PID}.yaml").write_text(yaml.safe_dump(spec), "utf-8")
    days.sandbox.sftp["acme_abidjan"].read_only = False


def _states(days: SandboxDays, dag_id: str) -> dict[str, str]:
    """The task states of the DAG's latest run (by logical date), from the metadata DB."""

    def rows(*args: str) -> list[dict[str, str]]:
        out = days.stack.cli(*args, "-o", "json").stdout
        return list(json.loads(next(x for x in out.splitlines() if x.startswith("["))))

    latest = max(rows("dags", "list-runs", dag_id), key=lambda r: r["logical_date"])
    tasks = rows("tasks", "states-for-dag-run", dag_id, latest["run_id"])
    return {t["task_id"]: t["state"] for t in tasks}


def _journal(days: SandboxDays) -> list[dict[str, Any]]:
    path = days.data / "audit" / "retention.jsonl"
    lines = path.read_text("utf-8").splitlines() if path.exists() else []
    return [r for r in map(json.loads, lines) if r["provider"] == PID]


def test_marker_after_a_green_day_only_then_purge_and_restore(sandbox_days: SandboxDays) -> None:
    _provider(sandbox_days)
    seed = sandbox_days.sandbox.seeds["acme_abidjan"]
    day = seed.day
    inbound = seed.local_path(seed.folders["ENTRANTS"])
    marker = inbound / marker_name(day)
    layout = sandbox_days.layout(PID, day)
    conf = {"target_date": day.isoformat()}

    # 1. Amber (the sandbox's traps are rejected): the step is skipped and says why.
    amber = sandbox_days.run(DAG_ID, conf=conf)
    assert amber.returncode == 0, (amber.stdout + amber.stderr)[-4000:]
    assert json.loads((layout.quality_dir / "summary.json").read_text())["status"] == "amber"
    assert _states(sandbox_days, DAG_ID)[C.TASK_CONFIRM] == "skipped"
    assert "the day is 'amber', not green" in amber.stdout + amber.stderr
    assert not marker.exists()

    # 2. Red (the report claims one call fewer than delivered): no marker either.
    for trap in seed.rejected:
        path = seed.local_path(trap.remote_path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    assert seed.report_path is not None
    report = seed.local_path(seed.report_path)
    good_report, stat = report.read_bytes(), report.stat()
    fewer = seed.report_counts["ENTRANTS"] - 1
    report.write_bytes(re.sub(rb",inbound,\d+", b",inbound,%d" % fewer, good_report))
    red = sandbox_days.run(DAG_ID, conf=conf)
    assert red.returncode != 0
    assert json.loads((layout.quality_dir / "summary.json").read_text())["status"] == "red"
    assert _states(sandbox_days, DAG_ID)[C.TASK_CONFIRM] == "upstream_failed"
    assert not marker.exists()

    # 3. Green: the marker lists every file we hold, with its size and SHA-256.
    report.write_bytes(good_report)
    os.utime(report, (stat.st_atime, stat.st_mtime))
    green = sandbox_days.run(DAG_ID, conf=conf)
    assert green.returncode == 0, (green.stdout + green.stderr)[-4000:]
    assert json.loads((layout.quality_dir / "summary.json").read_text())["status"] == "green"
    assert _states(sandbox_days, DAG_ID)[C.TASK_CONFIRM] == "success"
    rows = [r for r in read_manifest(layout.manifest) if r.direction == "ENTRANTS"]
    assert rows and all(r.status in ("copied", "skipped_identical") for r in rows)
    expected = "file_name,size_bytes,sha256\n" + "".join(
        f"{r.file_name},{r.size_bytes},{r.sha256}\n"
        for r in rows  # the manifest is sorted
    )
    assert marker.read_text("utf-8") == expected
    for r in rows:
        landed = layout.recording("ENTRANTS", r.file_name).read_bytes()
        assert hashlib.sha256(landed).hexdigest() == r.sha256

    # 4. Housekeeping, dry run (the default): journalled, nothing deleted. Settings come from
    # Airflow Variables, as an operator sets them.
    sandbox_days.stack.cli("variables", "set", "cc_intake_retention_recordings", "1d")
    dry = sandbox_days.run(HOUSEKEEPING)
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-4000:]
    (listed,) = _journal(sandbox_days)
    assert (listed["action"], listed["dry_run"], listed["day"]) == (
        "would_delete",
        True,
        day.isoformat(),
    )
    assert len(listed["files"]) == len(read_manifest(layout.manifest))
    assert layout.recordings_dir("ENTRANTS").is_dir()

    # 5. Housekeeping for real: the recordings go, the manifest, report and proof stay.
    sandbox_days.stack.cli("variables", "set", "cc_intake_retention_dry_run", "0")
    real = sandbox_days.run(HOUSEKEEPING)
    assert real.returncode == 0, (real.stdout + real.stderr)[-4000:]
    _, deleted = _journal(sandbox_days)
    assert (deleted["action"], deleted["dry_run"]) == ("deleted", False)
    assert deleted["files"] == listed["files"] and deleted["bytes"] == listed["bytes"]
    assert not layout.recordings_dir("ENTRANTS").parent.exists()
    assert layout.manifest.is_file() and (layout.quality_dir / "recordings.html").is_file()
    assert any(layout.reports_dir.iterdir())
    summary = json.loads((layout.quality_dir / "summary.json").read_text())
    assert summary["status"] == "green" and summary["purged_at"] == deleted["purged_at"]

    # 6. A re-run of the purged day fails at once with its own e-mail, copying nothing.
    again = sandbox_days.run(DAG_ID, conf=conf)
    assert again.returncode != 0
    states = _states(sandbox_days, DAG_ID)
    assert states[C.TASK_WAIT] == "failed" and states[C.TASK_COPY] == "skipped", states
    assert not layout.recordings_dir("ENTRANTS").exists()
    assert f"{PID} {day}: this day's recordings were purged at" in again.stdout + again.stderr
    subject = f"[intake][{PID}][{day.isoformat()}] {SUBJECTS['purged']}"
    purged_mails = [m for m in sandbox_days.mails() if str(m["Subject"]) == subject]
    assert len(purged_mails) == 1, [str(m["Subject"]) for m in sandbox_days.mails()]
    body = purged_mails[0].get_body(preferencelist=("plain", "html"))
    assert body is not None and '"restore": true' in body.get_content()

    # 7. With restore: landed again, green again, the day no longer marked purged.
    restored = sandbox_days.run(DAG_ID, conf={**conf, "restore": True})
    assert restored.returncode == 0, (restored.stdout + restored.stderr)[-4000:]
    assert {r.file_name for r in read_manifest(layout.manifest) if r.direction == "ENTRANTS"} == {
        r.file_name for r in rows
    }
    for r in rows:
        assert layout.recording("ENTRANTS", r.file_name).is_file()
    summary = json.loads((layout.quality_dir / "summary.json").read_text())
    assert summary["status"] == "green" and "purged_at" not in summary
    assert marker.read_text("utf-8") == expected
