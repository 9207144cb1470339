"""The FTPS client's pure parts: the strict `ls -l` parse, MLSD times, pins, time precision."""

from __future__ import annotations

import datetime as dt

import pytest

from include.cc_intake.ftps import (
    FtpsEndpoint,
    normalise_fingerprint,
    parse_list_line,
    parse_mlsd_time,
    same_time,
)

NOW = dt.datetime(2026, 11, 29, 10, 0, tzinfo=dt.UTC).timestamp()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC).timestamp())


def test_vsftpd_line_with_a_time_is_this_year_to_the_minute() -> None:
    line = "-rw-r--r--    1 0        0          300000 Nov 25 08:01 20261125_080102_AG01_C1.wav"
    parsed = parse_list_line(line, NOW)
    assert parsed is not None
    assert parsed.name == "20261125_080102_AG01_C1.wav"
    assert (parsed.kind, parsed.size, parsed.step) == ("file", 300000, 60)
    assert parsed.mtime == utc(2026, 11, 25, 8, 1)


def test_a_time_ahead_of_now_is_last_year() -> None:
    parsed = parse_list_line("-rw-r--r-- 1 ftp ftp 5 Dec 31 23:59 a.wav", NOW)
    assert parsed is not None and parsed.mtime == utc(2025, 12, 31, 23, 59)


def test_an_old_file_has_a_year_and_day_precision() -> None:
    parsed = parse_list_line("-rw-r--r-- 1 ftp ftp 5 Jan  3  2025 old file.wav", NOW)
    assert parsed is not None
    assert (parsed.name, parsed.mtime, parsed.step) == ("old file.wav", utc(2025, 1, 3), 86400)


def test_names_keep_their_inner_spaces_and_links_lose_their_target() -> None:
    parsed = parse_list_line("lrwxrwxrwx 1 0 0 11 Nov 25 08:01 a  b.wav -> /etc/passwd", NOW)
    assert parsed is not None and (parsed.name, parsed.kind) == ("a  b.wav", "symlink")
    folder = parse_list_line("drwxr-xr-x 2 0 0 4096 Nov 25 08:01 sub", NOW)
    assert folder is not None and folder.kind == "dir"
    pipe = parse_list_line("prw-r--r-- 1 0 0 0 Nov 25 08:01 fifo", NOW)
    assert pipe is not None and pipe.kind == "other"


def test_total_line_is_not_an_entry() -> None:
    assert parse_list_line("total 12", NOW) is None


@pytest.mark.parametrize(
    "line",
    [
        "weird listing line 42",
        "11-25-26  08:01AM               300000 a.wav",  # the Windows/IIS format
        "-rw-r--r-- 1 0 0 300000 Foo 25 08:01 a.wav",
        "-rw-r--r-- 1 0 0 300000 Feb 30 08:01 a.wav",
        "-rw-r--r-- 1 0 0 3e5 Nov 25 08:01 a.wav",
    ],
)
def test_any_other_line_is_an_error_naming_it(line: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_list_line(line, NOW)
    assert repr(line) in str(caught.value)


def test_mlsd_times_are_utc_and_may_have_fractions() -> None:
    assert parse_mlsd_time("20261125080102") == utc(2026, 11, 25, 8, 1, 2)
    assert parse_mlsd_time("20261125080102.517") == utc(2026, 11, 25, 8, 1, 2)


def test_same_time_accepts_the_listed_truncations_only() -> None:
    exact = utc(2026, 11, 25, 8, 1, 42)
    assert same_time(exact, exact)
    assert same_time(utc(2026, 11, 25, 8, 1), exact)
    assert same_time(utc(2026, 11, 25), exact)
    assert not same_time(utc(2026, 11, 25, 8, 2), exact)


def test_pins_compare_without_colons_or_case() -> None:
    assert normalise_fingerprint("AB:cd:EF ") == "abcdef"


def test_endpoint_repr_hides_the_password() -> None:
    assert "s3cret" not in repr(FtpsEndpoint("h", password="s3cret"))


def test_blocking_limiter_shares_one_budget_across_threads() -> None:
    import threading

    from include.cc_intake.ftps import BlockingRateLimiter

    limiter = BlockingRateLimiter(1_000_000_000)  # 1 GB/s: the sleeps stay tiny
    start = limiter._next

    def book() -> None:
        for _ in range(10):
            limiter.consume_blocking(100_000)

    threads = [threading.Thread(target=book) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 4 MB booked at 1 GB/s: the budget's end moved by at least 4 ms, whatever the interleaving.
    assert limiter._next - start >= 4_000_000 / 1_000_000_000
    assert BlockingRateLimiter(None).chunk == BlockingRateLimiter(0).chunk
