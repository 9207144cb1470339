"""The audio header parser on recordings built byte by byte."""

from __future__ import annotations

import struct

import pytest

from include.cc_intake.audio import HEAD_BYTES, AudioInfo, probe_audio


def wav(
    *,
    tag: int,
    channels: int = 1,
    rate: int = 8000,
    bits: int = 8,
    block_align: int | None = None,
    byte_rate: int | None = None,
    data: bytes = b"",
    declared_data: int | None = None,
    fmt_extra: bytes = b"",
    before_data: bytes = b"",
) -> bytes:
    """A RIFF/WAVE file; ``declared_data`` lies about the data size (as a cut copy would)."""
    block_align = block_align if block_align is not None else channels * bits // 8
    byte_rate = byte_rate if byte_rate is not None else rate * block_align
    fmt = struct.pack("<HHIIHH", tag, channels, rate, byte_rate, block_align, bits) + fmt_extra
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + before_data
    size = len(data) if declared_data is None else declared_data
    chunks += b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def probe(blob: bytes, name: str) -> AudioInfo:
    return probe_audio(blob[:HEAD_BYTES], len(blob), name)


def mpeg1_l3_frame(*, kbps: int = 128, rate_index: int = 0, padding: int = 0, body: bytes = b""):
    """One MPEG-1 layer III stereo frame at 44.1 kHz (rate_index 0), zero-filled."""
    index = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320).index(kbps)
    header = 0xFFE00000 | (0b11 << 19) | (0b01 << 17) | (1 << 16)
    header |= index << 12 | rate_index << 10 | padding << 9
    length = 144 * kbps * 1000 // (44100, 48000, 32000)[rate_index] + padding
    frame = struct.pack(">I", header) + body
    return frame + bytes(length - len(frame))


def id3v2(payload_size: int) -> bytes:
    synchsafe = bytes((payload_size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + synchsafe + bytes(payload_size)


def test_wav_alaw():
    info = probe(wav(tag=6, data=bytes(8000 * 3)), "a.wav")
    assert info == AudioInfo("pcm_alaw", 3.0, True, info.detail)
    assert "8000 Hz mono 8 bit" in info.detail


def test_wav_mulaw_stereo():
    info = probe(wav(tag=7, channels=2, data=bytes(2 * 8000 * 2)), "b.WAV")
    assert (info.codec, info.duration_s, info.audio_ok) == ("pcm_mulaw", 2.0, True)
    assert "stereo" in info.detail


def test_wav_pcm_16_bit_with_list_chunk_before_data():
    meta = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\x00"  # odd size: one pad byte
    info = probe(wav(tag=1, bits=16, rate=16000, data=bytes(16000 * 2), before_data=meta), "c.wav")
    assert (info.codec, info.duration_s, info.audio_ok) == ("pcm_s16le", 1.0, True)


def test_wav_extensible_reads_the_sub_format():
    # cbSize, valid bits, channel mask, then the SubFormat GUID whose first two bytes are
    # the real format tag (A-law here).
    extra = struct.pack("<HHI", 22, 8, 4) + struct.pack("<H", 6) + bytes(14)
    info = probe(wav(tag=0xFFFE, data=bytes(4000), fmt_extra=extra), "d.wav")
    assert (info.codec, info.duration_s, info.audio_ok) == ("pcm_alaw", 0.5, True)


def test_gsm_in_wav_uses_the_byte_rate():
    # GSM 6.10 (Microsoft): 65-byte blocks of 320 samples, 1625 bytes/s at 8 kHz.
    extra = struct.pack("<HH", 2, 320)
    blob = wav(
        tag=0x31, bits=0, block_align=65, byte_rate=1625, data=bytes(1625 * 4), fmt_extra=extra
    )
    info = probe(blob, "e.wav")
    assert (info.codec, info.duration_s, info.audio_ok) == ("gsm_ms", 4.0, True)


def test_truncated_wav_is_flagged_with_sizes():
    whole = wav(tag=6, data=bytes(8000 * 10))
    cut = whole[:30000]
    info = probe_audio(cut, len(cut), "cut.wav")
    assert info.codec == "pcm_alaw"
    assert info.audio_ok is False
    assert "truncated" in info.detail
    assert "80000" in info.detail  # what the header declared
    # The duration of what is actually there, for the evaluator.
    assert info.duration_s == pytest.approx((30000 - 44) / 8000, abs=0.001)


def test_truncation_is_judged_by_total_size_not_by_the_head():
    # A 10-minute file of which only the first 64 KiB was kept: whole, not truncated.
    blob = wav(tag=6, data=bytes(8000 * 600))
    info = probe_audio(blob[:HEAD_BYTES], len(blob), "long.wav")
    assert (info.duration_s, info.audio_ok) == (600.0, True)


def test_wav_with_empty_data_chunk_is_not_ok():
    info = probe(wav(tag=6, data=b""), "silent.wav")
    assert (info.audio_ok, info.duration_s) == (False, 0.0)
    assert "empty" in info.detail


def test_wav_whose_recorder_never_wrote_the_sizes():
    blob = wav(tag=7, data=bytes(8000), declared_data=0xFFFFFFFF)
    info = probe(blob, "stream.wav")
    assert (info.duration_s, info.audio_ok) == (1.0, True)
    assert "not finalised" in info.detail


def test_wav_cut_inside_its_header():
    blob = wav(tag=6, data=bytes(100))[:30]
    info = probe(blob, "stub.wav")
    assert info.audio_ok is False
    assert "fmt" in info.detail


def test_text_file_named_wav_is_not_audio_and_is_not_echoed():
    blob = b"Bonjour, rappeler le +225 07 12 34 56 78 demain\n" * 20
    info = probe(blob, "notes.wav")
    assert info == AudioInfo(None, None, False, info.detail)
    assert "RIFF/WAVE" in info.detail and "text" in info.detail
    assert "225" not in info.detail


def test_binary_file_named_mp3_is_not_audio():
    info = probe(bytes(range(256)) * 4, "x.mp3")
    assert info.audio_ok is False
    assert "MPEG" in info.detail and "00 01 02 03" in info.detail


def test_empty_file():
    assert probe_audio(b"", 0, "a.wav") == AudioInfo(None, None, False, "empty file (0 bytes)")


def test_mp3_cbr_without_id3():
    blob = b"".join(mpeg1_l3_frame(padding=i % 2) for i in range(50))
    info = probe(blob, "call.mp3")
    assert info.codec == "mp3" and info.audio_ok is True
    assert info.duration_s == pytest.approx(len(blob) * 8 / 128000, abs=0.001)
    assert "MPEG-1 layer III 128 kbit/s 44100 Hz" in info.detail


def test_mp3_with_id3_tag_skips_it():
    tag = id3v2(2000)
    blob = tag + b"".join(mpeg1_l3_frame(kbps=64) for _ in range(100))
    info = probe(blob, "call.mp3")
    assert (info.codec, info.audio_ok) == ("mp3", True)
    assert info.duration_s == pytest.approx((len(blob) - len(tag)) * 8 / 64000, abs=0.001)


def test_mp3_vbr_uses_the_xing_frame_count():
    # Xing tag after 32 bytes of side information (MPEG-1 stereo): flags=frames|bytes.
    frames, nbytes = 1000, 418 * 1000
    xing = bytes(32) + b"Xing" + struct.pack(">III", 3, frames, nbytes)
    blob = mpeg1_l3_frame(body=xing) + b"".join(mpeg1_l3_frame() for _ in range(10))
    info = probe(blob, "vbr.mp3")
    # Declares 418000 bytes, holds 11 frames: truncated, duration from the frame count.
    assert info.audio_ok is False and "Xing header declares 418000" in info.detail
    assert info.duration_s == pytest.approx(1000 * 1152 / 44100, abs=0.001)


def test_mp3_whose_second_frame_is_garbage_is_not_audio():
    blob = mpeg1_l3_frame() + b"garbage!" * 100
    info = probe(blob, "bad.mp3")
    assert info.audio_ok is False and info.codec is None


def test_mp3_cut_inside_its_first_frame():
    blob = mpeg1_l3_frame()[:200]
    info = probe(blob, "cut.mp3")
    assert (info.codec, info.audio_ok) == ("mp3", False)
    assert "truncated" in info.detail


def gsm_frames(count: int) -> bytes:
    return (b"\xd0" + bytes(32)) * count


def test_raw_gsm():
    info = probe(gsm_frames(500), "call.gsm")
    assert info == AudioInfo("gsm", 10.0, True, info.detail)


def test_raw_gsm_with_a_partial_last_frame_is_truncated():
    info = probe(gsm_frames(500)[:-5], "call.gsm")
    assert (info.codec, info.audio_ok) == ("gsm", False)
    assert "33-byte frames" in info.detail


def test_raw_gsm_without_frame_signatures_is_not_audio():
    info = probe(bytes(33 * 10), "call.gsm")
    assert (info.codec, info.audio_ok) == (None, False)
    assert "0xD signature" in info.detail
