"""The ranges a resume compares with the remote before trusting its temporary file (item 2)."""

from __future__ import annotations

import random

from include.cc_intake.transfer import (
    CHECK_HEAD,
    CHECK_SAMPLE,
    CHECK_SAMPLES,
    CHECK_TAIL,
    resume_check_ranges,
)

MIB = 1024 * 1024


def test_item2_ranges_cover_head_tail_and_fresh_random_spots() -> None:
    offset = 100 * MIB
    ranges = resume_check_ranges(offset, random.Random(1))
    assert ranges == sorted(set(ranges))
    assert (0, CHECK_HEAD) in ranges
    assert (offset - CHECK_TAIL, offset) in ranges
    spots = [r for r in ranges if r not in {(0, CHECK_HEAD), (offset - CHECK_TAIL, offset)}]
    assert len(spots) == CHECK_SAMPLES
    assert all(end - start == CHECK_SAMPLE and 0 <= start < end <= offset for start, end in spots)
    # Drawn per resume: another draw puts them elsewhere.
    assert resume_check_ranges(offset, random.Random(2)) != ranges


def test_item2_ranges_clamp_to_a_short_prefix() -> None:
    assert resume_check_ranges(0, random.Random(1)) == []
    # Shorter than one range: the whole prefix, once.
    assert resume_check_ranges(10, random.Random(1)) == [(0, 10)]
    offset = CHECK_HEAD + 5_000
    ranges = resume_check_ranges(offset, random.Random(1))
    assert (0, CHECK_HEAD) in ranges
    assert (0, offset) in ranges  # the tail range reaches back to byte 0
    assert all(0 <= start < end <= offset for start, end in ranges)
    assert len(ranges) == len(set(ranges))
