"""Fault injection: whole provider-days through the real DAG against the real sandbox servers.

Each test plays a hostile provider, a flaky CRM or a careless operator between two runs of the
same processed day (``airflow dags test`` with ``target_date``, see ``SandboxDays``), then
checks what an operator would trust: the manifest, the landed files, the proof and the e-mails
the SMTP sink received. Items refer to issue #10 ("the proof never lies").
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import SandboxDays

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_a_good_day_runs_green_and_sends_no_mail(sandbox_days: SandboxDays) -> None:
    proc = sandbox_days.run_day("acme_abidjan")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    layout = sandbox_days.layout("acme_abidjan")
    assert layout.manifest.is_file()
    assert sandbox_days.mails() == []


# --- item 6 (readiness waits for the report's counts; at wait_timeout what arrived still lands)


def _batched_provider(sandbox_days: SandboxDays, pid: str) -> None:
    """The sandbox's acme provider, renamed, with a wait that gives up within seconds."""
    import yaml

    from include.cc_intake.sandbox.env import PROVIDERS_FOLDER

    spec = yaml.safe_load((PROVIDERS_FOLDER / "acme_abidjan.yaml").read_text("utf-8"))
    spec.update(id=pid, name="ACME (batches)")
    spec.pop("digital")
    spec["recordings"].update(wait_timeout="5s", poll_interval="1s", settle="1s", min_file_age=0)
    (sandbox_days.providers_dir / f"{pid}.yaml").write_text(yaml.safe_dump(spec), "utf-8")


def _task_states(sandbox_days: SandboxDays, dag_id: str) -> tuple[str, dict[str, str]]:
    """The state of the DAG's only run and of its tasks, from the metadata DB (CLI)."""
    import json

    def rows(*args: str) -> list[dict[str, str]]:
        out = sandbox_days.stack.cli(*args, "-o", "json").stdout
        return list(json.loads(next(x for x in out.splitlines() if x.startswith("["))))

    runs = rows("dags", "list-runs", dag_id)
    assert len(runs) == 1, runs
    tasks = rows("tasks", "states-for-dag-run", dag_id, runs[0]["run_id"])
    return runs[0]["state"], {t["task_id"]: t["state"] for t in tasks}


def test_item6_at_wait_timeout_what_arrived_lands_and_the_gap_is_reconciled(
    sandbox_days: SandboxDays,
) -> None:
    import html
    import json
    import re

    from include.cc_intake.manifest import read_manifest
    from include.cc_intake.messages import SUBJECTS

    pid = "acme_batches"
    _batched_provider(sandbox_days, pid)
    seed = sandbox_days.sandbox.seeds["acme_abidjan"]  # its server, connection and report
    day = seed.day
    # The provider uploads in batches: only the first 4 of the 12 inbound calls its report
    # counts are there (and settled) when the wait gives up.
    inbound = sorted(f.name for f in seed.files if f.direction == "ENTRANTS")
    assert seed.report_counts == {"ENTRANTS": 12, "SORTANTS": 7}, seed.report_counts
    for seeded in seed.files:
        if seeded.direction == "ENTRANTS" and seeded.name in inbound[4:]:
            seed.local_path(seeded.remote_path).unlink()

    proc = sandbox_days.run(f"ingest_{pid}", conf={"target_date": day.isoformat()})
    output = proc.stdout + proc.stderr

    # The run fails (its wait gave up), but only after the copy, report and validation ran.
    assert proc.returncode != 0 and "DagRun failed" in output, output[-4000:]
    run_state, states = _task_states(sandbox_days, f"ingest_{pid}")
    assert run_state == "failed"
    assert states == {
        "wait_for_recordings": "failed",
        "copy_recordings": "success",
        "fetch_report": "success",
        "validate_recordings": "failed",
        "recordings_on_time": "upstream_failed",
    }, states

    # What did arrive landed: 4 inbound and the 7 outbound recordings.
    layout = sandbox_days.layout(pid, day)
    rows = read_manifest(layout.manifest, ["agent", "call_id", "date", "time"])
    landed = sorted((r.direction, r.file_name) for r in rows if r.status == "copied")
    outbound = sorted(f.name for f in seed.files if f.direction == "SORTANTS")
    assert landed == [("ENTRANTS", n) for n in inbound[:4]] + [("SORTANTS", n) for n in outbound]
    summary = json.loads((layout.quality_dir / "summary.json").read_text("utf-8"))
    assert summary["status"] == "red"
    assert summary["recordings"]["ENTRANTS"] == {"expected": 12, "got": 4}, summary

    # One e-mail per failed task: the wait names the gap, the reconciliation the numbers.
    mails = {str(m["Subject"]): m for m in sandbox_days.mails()}
    prefix = f"[intake][{pid}][{day.isoformat()}] "
    assert sorted(mails) == sorted(
        prefix + SUBJECTS[kind] for kind in ("not_ready", "reconciliation")
    ), sorted(mails)

    def text(kind: str) -> str:
        body = mails[prefix + SUBJECTS[kind]].get_body(preferencelist=("plain", "html"))
        assert body is not None
        return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body.get_content())))

    assert "ENTRANTS : prêts 4, attendu 12" in text("not_ready"), text("not_ready")
    assert "SORTANTS : prêts 7, attendu 7" in text("not_ready"), text("not_ready")
    assert "attendu 12, reçu 4" in text("reconciliation"), text("reconciliation")
