"""`make check` on a sandbox provider: the real onboarding check against a running sandbox.

Starts the sandbox (SFTP servers, CRM, SMTP sink) seeded for the day, hands its connections
to the check as `AIRFLOW_CONN_*` variables, and runs the same check an operator runs on a real
provider. Lets a newcomer see what a READY provider looks like with one command.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from include.cc_intake.days import parse_day

PROJECT = Path(__file__).resolve().parents[3]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("provider")
    parser.add_argument("--date", help="processed day YYYY-MM-DD (default J-1)")
    parser.add_argument("--work", default=".check", help="sandbox work folder (default .check)")
    args = parser.parse_args(argv)
    work = Path(args.work).resolve()
    os.environ.setdefault("AIRFLOW_HOME", str(work / "airflow"))
    os.environ["CC_INTAKE_SANDBOX"] = "1"
    # The check writes nothing; an empty data root under the work folder proves it.
    os.environ["CC_INTAKE_DATA_ROOT"] = str(work / "data")

    from include.cc_intake.airflow import check
    from include.cc_intake.sandbox.env import Sandbox
    from include.cc_intake.sandbox.services import default_services

    day = parse_day(args.date, what="DATE") if args.date else None
    with Sandbox(work / "sandbox", days=day, services=default_services()) as sandbox:
        os.environ.update(sandbox.env())
        print(f"[sandbox] servers up for {', '.join(sorted(sandbox.providers))}", flush=True)
        return check.main([args.provider, *(["--date", args.date] if args.date else [])])


if __name__ == "__main__":
    sys.exit(main())
