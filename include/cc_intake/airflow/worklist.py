"""`make worklist`: build (or top up) and show a provider-day's evaluators' worklist.

The same build as the DAG's ``build_worklist`` task (same sample, same files, same day lock):
a re-run only adds what late files call for and never removes a row. ``--show`` prints the
worklist already written without touching it.

    python -m include.cc_intake.airflow.worklist <provider_id> <YYYY-MM-DD> [--show]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence

from include.cc_intake.airflow.backfill import find_provider
from include.cc_intake.airflow.locks import day_lock
from include.cc_intake.days import parse_day
from include.cc_intake.errors import IntakeError
from include.cc_intake.layout import DayLayout, data_root, run_token
from include.cc_intake.redact import mask_phone
from include.cc_intake.worklist import Item, read_worklist, worklist_paths


def describe(items: Sequence[Item]) -> list[str]:
    """One line per item, phone numbers masked (the terminal is a screen like any other)."""
    lines = []
    for number, item in enumerate(items, 1):
        what = item.path.rsplit("/", 1)[-1] if item.kind == "recording" else item.item_id
        duration = f"{float(item.duration_s):.0f} s" if item.duration_s else "-"
        lines.append(
            mask_phone(
                f"{number:>4}  {item.kind:<9} {item.stratum:<32} {item.started_at[:19]:<19} "
                f"{duration:>6}  {what}  (ajouté {item.added_at})"
            )
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build (or top up) and show the evaluators' worklist of a provider-day."
    )
    parser.add_argument("provider", help="provider id (the YAML's `id`)")
    parser.add_argument("day", metavar="DATE", help="processed day, YYYY-MM-DD")
    parser.add_argument("--show", action="store_true", help="show the worklist, build nothing")
    args = parser.parse_args(argv)

    from include.cc_intake.airflow.factory import SANDBOX_PROVIDERS_DIR, provider_folders

    root = data_root()
    folders = provider_folders()
    try:
        day = parse_day(args.day, what="DATE")
        cfg = find_provider(args.provider, folders)
        csv_path, html_path = worklist_paths(root, cfg.id, day)
        if args.show:
            if not csv_path.exists():
                print(f"[worklist] {cfg.id} {day}: no worklist yet ({csv_path})", file=sys.stderr)
                return 1
            items, added = read_worklist(csv_path, provider=cfg.id, day=day), 0
        else:
            if cfg.sampling is None:
                print(
                    f"[worklist] {cfg.id}: no `sampling` section in its YAML, so no worklist "
                    "(see docs/onboarding.md)",
                    file=sys.stderr,
                )
                return 2
            from include.cc_intake.worklist import build_worklist

            layout = DayLayout(root, cfg.id, day)
            now = dt.datetime.now(dt.UTC)
            with day_lock(layout):
                result = build_worklist(
                    cfg, day, root, now=now, token=run_token(f"cli-{now.isoformat()}")
                )
            items, added = list(result.items), result.added
    except (IntakeError, OSError) as exc:
        hint = ""
        if (
            SANDBOX_PROVIDERS_DIR not in folders
            and (SANDBOX_PROVIDERS_DIR / f"{args.provider}.yaml").is_file()
        ):
            hint = " (a sandbox provider: set CC_INTAKE_SANDBOX=1, as `make up` does)"
        print(f"[worklist] {exc}{hint}", file=sys.stderr)
        return 2
    recordings = sum(item.kind == "recording" for item in items)
    print(
        f"[worklist] {cfg.id} {day}: {recordings} recordings, {len(items) - recordings} "
        f"conversations ({added} added now)"
    )
    print("\n".join(describe(items)))
    print(f"[worklist] CSV  {csv_path}\n[worklist] page {html_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
