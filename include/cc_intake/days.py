"""Which day a run processes, and the calendar arithmetic around it.

The *processed day* is what every folder, file and message calls "the day" (contract §7):
a scheduled run at J processes J-1 in the provider's time zone; ``conf.target_date`` overrides.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from include.cc_intake.config import daily_schedule_time
from include.cc_intake.errors import ConfigError

# ASCII digits only, nothing around them: ``date.fromisoformat`` alone also takes ``20261125``
# and ``2026-W48-3``, and a stripped value could have carried CR/LF into a mail header.
_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def parse_day(value: object, *, what: str = "target_date") -> dt.date:
    """Parse exactly ``YYYY-MM-DD``; the error says what was expected."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value)
    try:
        if not _DAY_RE.fullmatch(text):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ConfigError(f"{what} {shown} is not a day: expected YYYY-MM-DD") from None


def processed_day(
    *,
    tz: str | ZoneInfo,
    logical_date: dt.datetime | None,
    run_after: dt.datetime | None = None,
    conf: Mapping[str, Any] | None = None,
) -> dt.date:
    """The day a run processes: ``conf.target_date``, else (run time in ``tz``).date() - 1.

    The run time is the logical date, or ``run_after`` for runs triggered without one.
    """
    if conf and conf.get("target_date"):
        return parse_day(conf["target_date"])
    moment = logical_date or run_after
    if moment is None:
        raise ConfigError("the run has neither a logical date nor run_after: cannot tell the day")
    if moment.tzinfo is None:
        raise ConfigError(f"run time {moment!r} has no time zone")
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    return moment.astimezone(zone).date() - dt.timedelta(days=1)


def day_bounds(day: dt.date, tz: str | ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The day's start (00:00) and the next day's start, aware, in the provider's zone."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    start = dt.datetime.combine(day, dt.time(0, 0), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0), tzinfo=zone)
    return start, end


def scheduled_run_for(day: dt.date, *, schedule: str, tz: str | ZoneInfo) -> dt.datetime:
    """The logical date of the scheduled run that processes ``day`` (day + 1 at schedule time)."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    return dt.datetime.combine(
        day + dt.timedelta(days=1), daily_schedule_time(schedule), tzinfo=zone
    )


def backfill_window(
    first: dt.date, last: dt.date, *, schedule: str, tz: str | ZoneInfo
) -> tuple[dt.datetime, dt.datetime]:
    """``airflow backfill create`` bounds whose runs process exactly ``first``..``last``.

    Airflow selects the cron ticks inside the window; each tick processes the day before it,
    so the window is shifted one day forward and pinned to the schedule time.
    """
    if last < first:
        raise ConfigError(f"backfill range is empty: FROM {first} is after TO {last}")
    return (
        scheduled_run_for(first, schedule=schedule, tz=tz),
        scheduled_run_for(last, schedule=schedule, tz=tz),
    )
