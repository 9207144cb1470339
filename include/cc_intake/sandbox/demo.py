"""`make demo`: run every sandbox provider's DAG for its J-1 through real Airflow, then summarise.

Starts the sandbox (one SFTP server per fictional provider, two FTPS servers — primary and
backup — for the one delivering over FTPS, the CRM export server, an SMTP sink), migrates a
SQLite metadata DB, runs `airflow dags test` for each provider's scheduled run of today (which
processes J-1 in the provider's zone), and prints per provider and direction what landed,
what was rejected and why, which endpoint served it, the verdict and where to look.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import email
import json
import os
import subprocess
import sys
import time
from collections import Counter
from email import policy
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[3]


def airflow_env(work: Path) -> dict[str, str]:
    """The environment every Airflow process of the demo shares (set before importing it)."""
    home = work / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "CC_INTAKE_SANDBOX": "1",
        # `airflow dags test` crashes at the end of a run of a DAG with a deadline (#73428).
        "CC_INTAKE_DEADLINES": "off",
        "CC_INTAKE_DATA_ROOT": str(work / "data"),
        "PYTHONPATH": str(PROJECT),
    }


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_dag(dag_id: str, logical_date: str, env: dict[str, str], log: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", dag_id, logical_date],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    return proc.returncode


def run_digest(env: dict[str, str], work: Path) -> tuple[Path, int]:
    """The morning digest of the processed day, through its DAG as the scheduler runs it."""
    from include.cc_intake.digest import digest_day, digest_path, parse_digest_at

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    zone = parse_digest_at(env.get("CC_INTAKE_DIGEST_AT")).timezone
    ops = env.get("CC_INTAKE_OPS_EMAILS") or "ops@sandbox.example"
    code = run_dag(
        "cc_intake_digest",
        now.isoformat(),
        {**env, "CC_INTAKE_OPS_EMAILS": ops},
        work / "logs" / "digest.log",
    )
    return digest_path(work / "data", digest_day(now, zone)), code


def _manifest_lines(path: Path) -> list[str]:
    if not path.exists():
        return ["    (no manifest: the copy did not run)"]
    from include.cc_intake.manifest import read_manifest

    rows = read_manifest(path)
    lines = []
    for direction in ("ENTRANTS", "SORTANTS"):
        mine = [r for r in rows if r.direction == direction]
        landed = [r for r in mine if r.landed]
        reasons = Counter(r.reason for r in mine if r.status == "rejected")
        size = sum(r.size_bytes for r in landed)
        rejected = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items())) or "none"
        # Only when there are some: a plain day's printout stays as it always was.
        others = Counter(r.status for r in mine if r.status in ("kept", "failed"))
        noted = "".join(f"   {status}: {n}" for status, n in sorted(others.items()))
        lines.append(
            f"    {direction:<9} {len(landed):>4} files  {size / 1e6:7.1f} MB"
            f"   rejected: {rejected}{noted}"
        )
    served = sorted({r.extra.get("endpoint", "") for r in rows if r.landed} - {""})
    if served:
        lines.append(f"    served by  {', '.join(served)} (manifest column endpoint)")
    return lines


def _worklist_lines(folder: Path, day: str) -> list[str]:
    """The evaluators' worklist the run's build_worklist task wrote (#13)."""
    if not (folder / f"{day}.csv").exists():
        return ["    WORKLIST  (none written)"]
    with (folder / f"{day}.csv").open(encoding="utf-8", newline="") as handle:
        kinds = Counter(row["kind"] for row in csv.DictReader(handle))
    return [
        f"    WORKLIST  {kinds['recording']} recordings, {kinds['digital']} conversations"
        f" to evaluate: {folder / f'{day}.html'}"
    ]


def summarise(work: Path, results: dict[str, tuple[str, int, Path]]) -> str:
    data = work / "data"
    out = ["", "=" * 78, "cc-intake demo — sandbox providers, processed day J-1", "=" * 78]
    for pid, (day, code, log) in sorted(results.items()):
        summary_file = data / "quality" / pid / day / "summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
        status = summary.get("status", "unknown")
        out.append(
            f"\n{pid}  day {day}  run: {'success' if code == 0 else 'FAILED'}  "
            f"verdict: {status.upper()}"
        )
        out.extend(_manifest_lines(data / "manifests" / pid / f"{day}.csv"))
        for direction, counts in (summary.get("recordings") or {}).items():
            out.append(
                f"    {direction:<9} report says {counts.get('expected')}, got {counts.get('got')}"
            )
        digital = summary.get("digital")
        if digital:
            out.append(
                f"    DIGITAL   {digital.get('got')} interactions exported, "
                f"CRM states {digital.get('expected')}"
            )
        out.extend(_worklist_lines(data / "worklists" / pid, day))
        out.append(f"    landed in  {data / 'recordings' / pid / day}")
        proof = data / "quality" / pid / day / "recordings.html"
        if proof.exists():
            out.append(f"    proof page {proof}")
        out.append(f"    run log    {log}")
    mails = sorted((work / "sandbox" / "mail").glob("*.eml"))
    out.append(f"\nE-mails caught by the SMTP sink: {len(mails)} in {work / 'sandbox' / 'mail'}")
    for mail in mails:
        with mail.open("rb") as handle:
            subject = email.message_from_binary_file(handle, policy=policy.default)["Subject"]
        out.append(f"    {mail.name}: {subject}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default=".demo", help="work folder (default .demo)")
    args = parser.parse_args(argv)
    work = Path(args.work).resolve()
    env = {**os.environ, **airflow_env(work)}
    os.environ.update(airflow_env(work))

    from include.cc_intake.days import scheduled_run_for
    from include.cc_intake.sandbox.env import Sandbox
    from include.cc_intake.sandbox.services import default_services

    started = time.monotonic()
    print(f"[demo] migrating the metadata DB in {env['AIRFLOW_HOME']} …", flush=True)
    migrate(env)
    results: dict[str, tuple[str, int, Path]] = {}
    # baobab_douala's report claims two inbound calls that never came: a red day to look at.
    with Sandbox(
        work / "sandbox",
        scenarios={"baobab_douala": "report_mismatch"},
        services=default_services(),
    ) as sandbox:
        run_env = {**env, **sandbox.env()}
        for pid, cfg in sorted(sandbox.providers.items()):
            day = sandbox.days[pid]
            logical = scheduled_run_for(day, schedule=cfg.schedule, tz=cfg.tz).isoformat()
            print(f"[demo] {cfg.dag_id}: scheduled run {logical} → processes {day} …", flush=True)
            log = work / "logs" / f"{pid}.log"
            code = run_dag(cfg.dag_id, logical, run_env, log)
            results[pid] = (day.isoformat(), code, log)
        print("[demo] cc_intake_digest: the morning digest of the processed day …", flush=True)
        digest, digest_code = run_digest(run_env, work)
        print(summarise(work, results))
        state = (
            "written" if digest_code == 0 and digest.exists() else "FAILED (see logs/digest.log)"
        )
        print(f"\nMorning digest ({state}): {digest}")
    print(f"\n[demo] done in {time.monotonic() - started:.0f} s")
    # A red day is part of the show; a provider whose pipeline never ran is a broken demo.
    broken = [
        pid
        for pid, (day, _, _) in results.items()
        if not (work / "data" / "manifests" / pid / f"{day}.csv").exists()
    ]
    if broken:
        print(f"[demo] FAILED: no manifest for {', '.join(broken)}: see the run logs above")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
