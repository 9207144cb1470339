"""The ranges a resume compares before trusting its temporary file (item 2); the ciphers (#15)."""

from __future__ import annotations

import random
from pathlib import Path

from include.cc_intake.ssh_setup import cpu_has_aes, preferred_ciphers
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


def test_aes_instructions_are_read_from_cpuinfo(tmp_path: Path) -> None:
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu sse2 aes avx2\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd aes pmull sha1\n")
    none = tmp_path / "none"
    none.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 vaes_not_this\n")
    assert cpu_has_aes(x86) and cpu_has_aes(arm)
    assert not cpu_has_aes(none)
    assert not cpu_has_aes(tmp_path / "missing")


def test_ciphers_put_aes_gcm_first_only_with_aes_instructions() -> None:
    import asyncssh.encryption

    known = {a.decode() for a in asyncssh.encryption.get_encryption_algs()}
    with_aes = preferred_ciphers(has_aes=True)
    without = preferred_ciphers(has_aes=False)
    assert with_aes[0] == "aes128-gcm@openssh.com"
    assert without[0] == "chacha20-poly1305@openssh.com"
    assert set(with_aes) == set(without) and set(with_aes) <= known
    assert "aes128-ctr" in with_aes  # a server offering neither still connects
