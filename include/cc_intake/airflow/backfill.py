"""`make backfill`: re-process a range of processed days through `airflow backfill create`.

A scheduled run processes the day *before* its logical date, so `airflow backfill create
--from-date FROM --to-date TO` alone processes FROM-1..TO-1. This helper shifts the window
(:func:`include.cc_intake.days.backfill_window`) so the runs process exactly FROM..TO, and asks
Airflow to reprocess days that already ran (`--reprocess-behavior completed`).

    python -m include.cc_intake.airflow.backfill <provider_id> <FROM> <TO> [--dry-run]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from include.cc_intake.config import ProviderConfig, load_providers
from include.cc_intake.days import backfill_window, parse_day, processed_day, scheduled_run_for
from include.cc_intake.errors import ConfigError


@dataclass(frozen=True)
class BackfillPlan:
    """The runs that process ``first``..``last`` for one provider, and the command creating them."""

    provider: ProviderConfig
    first: dt.date
    last: dt.date
    start: dt.datetime
    end: dt.datetime

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def command(self, *, dry_run: bool = False) -> list[str]:
        """`airflow backfill create …` arguments (after the `airflow` executable)."""
        argv = [
            "backfill",
            "create",
            "--dag-id",
            self.provider.dag_id,
            "--from-date",
            self.start.isoformat(),
            "--to-date",
            self.end.isoformat(),
            # Re-processing days that already ran is the point of a backfill here.
            "--reprocess-behavior",
            "completed",
        ]
        return [*argv, "--dry-run"] if dry_run else argv


def find_provider(provider_id: str, folders: Sequence[Path]) -> ProviderConfig:
    """The provider's validated config; the error lists the known ids or shows the YAML error."""
    known: list[str] = []
    for folder in folders:
        good, broken = load_providers(folder)
        for cfg in good:
            if cfg.id == provider_id:
                return cfg
            known.append(cfg.id)
        for item in broken:
            if provider_id == item.key:
                raise ConfigError(f"provider {provider_id!r} has a broken YAML: {item.error}")
    where = ", ".join(str(f) for f in folders)
    raise ConfigError(
        f"unknown provider {provider_id!r}: expected one of {', '.join(sorted(known)) or '(none)'}"
        f" (YAML files in {where})"
    )


def plan_backfill(
    cfg: ProviderConfig, first: dt.date, last: dt.date, *, now: dt.datetime
) -> BackfillPlan:
    """Airflow's window for processed days ``first``..``last``; refuses days not yet due."""
    start, end = backfill_window(first, last, schedule=cfg.schedule, tz=cfg.tz)
    if end >= now:  # Airflow only plans runs strictly in the past
        latest = processed_day(tz=cfg.tz, logical_date=now)
        if scheduled_run_for(latest, schedule=cfg.schedule, tz=cfg.tz) >= now:
            latest -= dt.timedelta(days=1)
        raise ConfigError(
            f"{cfg.id}: TO {last} is processed by the run of {end.isoformat()}, which is not due "
            f"yet; the last day that can be backfilled now is {latest}"
        )
    return BackfillPlan(provider=cfg, first=first, last=last, start=start, end=end)


def _dag_state(dag_id: str) -> tuple[bool, bool]:
    """(known to the metadata DB, paused) for ``dag_id``."""
    from airflow.models.dag import DagModel
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        if not SerializedDagModel.has_dag(dag_id, session=session):
            return False, False
        paused = session.scalar(select(DagModel.is_paused).where(DagModel.dag_id == dag_id))
        return True, bool(paused)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Re-process the processed days FROM..TO of one provider (airflow backfill)."
    )
    parser.add_argument("provider", help="provider id (the YAML's `id`)")
    parser.add_argument("first", metavar="FROM", help="first processed day, YYYY-MM-DD")
    parser.add_argument("last", metavar="TO", help="last processed day, YYYY-MM-DD")
    parser.add_argument("--dry-run", action="store_true", help="list the runs, create nothing")
    args = parser.parse_args(argv)

    from include.cc_intake.airflow.factory import SANDBOX_PROVIDERS_DIR, provider_folders

    folders = provider_folders()
    try:
        first = parse_day(args.first, what="FROM")
        last = parse_day(args.last, what="TO")
        cfg = find_provider(args.provider, folders)
        plan = plan_backfill(cfg, first, last, now=dt.datetime.now(dt.UTC))
    except ConfigError as exc:
        hint = ""
        sandbox_yaml = SANDBOX_PROVIDERS_DIR / f"{args.provider}.yaml"
        if SANDBOX_PROVIDERS_DIR not in folders and sandbox_yaml.is_file():
            hint = " (a sandbox provider: set CC_INTAKE_SANDBOX=1, as `make up` does)"
        print(f"[backfill] {exc}{hint}", file=sys.stderr)
        return 2

    known, paused = _dag_state(cfg.dag_id)
    if not known:
        print(
            f"[backfill] {cfg.dag_id} is not in the metadata DB yet: start the dag-processor "
            "(or run `airflow dags reserialize`) and try again",
            file=sys.stderr,
        )
        return 1
    runs = "run" if plan.days == 1 else "runs"
    print(
        f"[backfill] {cfg.dag_id}: processed days {plan.first} .. {plan.last} ({plan.days} "
        f"{runs}, logical dates {plan.start.isoformat()} .. {plan.end.isoformat()}, "
        f"{cfg.timezone})"
    )
    if paused and not args.dry_run:
        print(f"[backfill] note: {cfg.dag_id} is paused: its backfill runs wait until unpaused")
    command = plan.command(dry_run=args.dry_run)
    print("[backfill] airflow " + shlex.join(command), flush=True)
    return subprocess.run([sys.executable, "-m", "airflow", *command], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
