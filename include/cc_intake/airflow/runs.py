"""What an alert says about an Airflow run that its fields do not say outright: its day.

Both alerts (the failure notifier and the deadline callback) name the processed day; they get
the run's fields in different shapes (a ``DagRun`` model, or its JSON), hence the tolerance.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from include.cc_intake import errors, redact
from include.cc_intake.days import processed_day


def _as_datetime(value: object) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def day_of_run(
    *,
    tz: str,
    logical_date: object,
    run_after: object,
    conf: Mapping[str, Any] | None,
    params: Mapping[str, Any] | None = None,
) -> dt.date | str:
    """The processed day of a run, or the raw ``target_date`` / ``"inconnue"`` if it is invalid.

    An alert must still go out when the day itself is the problem (a bad ``target_date``).
    """
    merged: dict[str, Any] = {}
    if params and params.get("target_date"):
        merged["target_date"] = params["target_date"]
    if conf and conf.get("target_date"):
        merged["target_date"] = conf["target_date"]
    try:
        return processed_day(
            tz=tz,
            logical_date=_as_datetime(logical_date),
            run_after=_as_datetime(run_after),
            conf=merged,
        )
    except errors.ConfigError:
        # Shown as given, but on one line: it ends up in the subject (a mail header).
        return redact.one_line(str(merged.get("target_date") or "inconnue"))
