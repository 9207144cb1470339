from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from include.cc_intake.days import (
    backfill_window,
    day_bounds,
    parse_day,
    processed_day,
    scheduled_run_for,
)
from include.cc_intake.errors import ConfigError

UTC = dt.UTC


def test_j_minus_one_in_the_provider_zone() -> None:
    # 23:30 UTC on the 25th is already the 26th in Douala (UTC+1): J-1 is the 25th there.
    moment = dt.datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    assert processed_day(tz="Africa/Douala", logical_date=moment) == dt.date(2026, 11, 25)
    assert processed_day(tz="Africa/Abidjan", logical_date=moment) == dt.date(2026, 11, 24)


def test_run_after_stands_in_for_a_missing_logical_date() -> None:
    after = dt.datetime(2026, 11, 26, 2, 30, tzinfo=UTC)
    assert processed_day(tz="UTC", logical_date=None, run_after=after) == dt.date(2026, 11, 25)


def test_target_date_overrides() -> None:
    moment = dt.datetime(2026, 11, 26, 2, 30, tzinfo=UTC)
    conf = {"target_date": "2026-10-01"}
    assert processed_day(tz="UTC", logical_date=moment, conf=conf) == dt.date(2026, 10, 1)


def test_bad_target_date_is_named() -> None:
    with pytest.raises(
        ConfigError, match=r"target_date '2026-13-01' is not a day: expected YYYY-MM-DD"
    ):
        parse_day("2026-13-01")


def test_day_bounds_carry_the_offset() -> None:
    start, end = day_bounds(dt.date(2026, 3, 28), "Europe/Paris")
    assert start.isoformat() == "2026-03-28T00:00:00+01:00"
    # DST starts on the 29th: the day after still begins at local midnight.
    assert end.isoformat() == "2026-03-29T00:00:00+01:00"
    assert end - start == dt.timedelta(hours=24)


def test_scheduled_run_processes_the_day_before() -> None:
    run = scheduled_run_for(dt.date(2026, 11, 25), schedule="30 2 * * *", tz="Africa/Abidjan")
    assert run == dt.datetime(2026, 11, 26, 2, 30, tzinfo=ZoneInfo("Africa/Abidjan"))
    assert processed_day(tz="Africa/Abidjan", logical_date=run) == dt.date(2026, 11, 25)


def test_backfill_window_maps_processed_days() -> None:
    first, last = backfill_window(
        dt.date(2026, 11, 1), dt.date(2026, 11, 3), schedule="0 3 * * *", tz="Africa/Douala"
    )
    assert first.isoformat() == "2026-11-02T03:00:00+01:00"
    assert last.isoformat() == "2026-11-04T03:00:00+01:00"
    with pytest.raises(ConfigError, match="empty"):
        backfill_window(dt.date(2026, 11, 3), dt.date(2026, 11, 1), schedule="0 3 * * *", tz="UTC")


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-25\r\nBcc: intrus@example.com",
        "2026-11-25\n",
        " 2026-11-25",
        "20261125",
        "2026-W48-3",
        "2026-11-25T00:00",
        "٢٠٢٦-١١-٢٥",  # Arabic-Indic digits: digits for \d, not for a folder name
    ],
)
def test_item15_processed_day_refuses_a_target_date_that_is_not_exactly_yyyy_mm_dd(
    value: str,
) -> None:
    moment = dt.datetime(2026, 11, 26, 2, 30, tzinfo=UTC)
    with pytest.raises(ConfigError, match="expected YYYY-MM-DD") as info:
        processed_day(tz="UTC", logical_date=moment, conf={"target_date": value})
    assert "\r" not in str(info.value) and "\n" not in str(info.value)
