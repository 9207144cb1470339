"""What a recording's first bytes say about it: codec, duration, and whether it is whole.

The copy step reads back the first ``HEAD_BYTES`` of each file it lands (from the page cache,
just written), then calls ``probe_audio``. Three families are understood:

- WAV (RIFF/WAVE, and RF64): the ``fmt`` chunk gives the codec (PCM, A-law, µ-law,
  GSM 6.10, ADPCM…), the ``data`` chunk's declared size gives the duration and proves the
  file is whole (a file shorter than its header says is truncated);
- MP3 (MPEG audio, optional ID3v2 tag): the first frame header gives version, layer, bitrate
  and sample rate; a Xing/Info/VBRI header gives the exact frame count of a VBR file,
  otherwise the duration is the CBR estimate; the next frame must follow where the first
  one says;
- raw GSM 06.10 (``.gsm``): 33-byte frames of 20 ms, each starting with the 0xD signature.

A file that is none of these, is empty or truncated gets ``audio_ok=False`` and a ``detail``
saying why; the validation counts it as a warning, never as a lost file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import PurePosixPath

HEAD_BYTES = 64 * 1024
"""How many leading bytes of each recording the copy step keeps for ``probe_audio``."""

GSM_FRAME_BYTES = 33
GSM_FRAME_SECONDS = 0.020

# WAVE format tags (mmreg.h) → codec names as ffmpeg spells them, which evaluators know.
_WAV_CODECS = {
    0x0001: "pcm",
    0x0002: "adpcm_ms",
    0x0003: "pcm_float",
    0x0006: "pcm_alaw",
    0x0007: "pcm_mulaw",
    0x0011: "adpcm_ima_wav",
    0x0031: "gsm_ms",
    0x0040: "g721",
    0x0050: "mp2",
    0x0055: "mp3",
    0x0064: "g726",
}
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# A RIFF size field that a streaming recorder never patched.
_UNFINALISED = 0xFFFFFFFF


@dataclass(frozen=True)
class AudioInfo:
    """What the header says: ``codec`` and ``duration_s`` are None when unknown."""

    codec: str | None
    duration_s: float | None
    audio_ok: bool
    detail: str


def probe_audio(head: bytes, total_size: int, file_name: str) -> AudioInfo:
    """Describe a recording from its first bytes (``head``) and its full size in bytes.

    :param head: the file's first bytes, ideally ``HEAD_BYTES`` of them (fewer if the file
        is smaller).
    :param total_size: the size of the whole file, as copied.
    :param file_name: the file's name; its extension is used only for headerless raw GSM
        and to say what was expected.
    """
    head = head[: max(total_size, 0)]
    if total_size <= 0:
        return AudioInfo(None, None, False, "empty file (0 bytes)")
    ext = PurePosixPath(file_name).suffix.lower()
    if head[:4] in (b"RIFF", b"RF64"):
        return _probe_wav(head, total_size)
    if head[:3] == b"ID3" or _looks_like_mpeg(head, 0):
        return _probe_mp3(head, total_size)
    if ext == ".gsm":
        return _probe_gsm(head, total_size)
    expected = {
        ".wav": "a RIFF/WAVE header",
        ".mp3": "an ID3 tag or an MPEG audio frame",
    }.get(ext, "a WAV, MP3 or GSM recording")
    return AudioInfo(None, None, False, f"not audio: expected {expected}, found {_describe(head)}")


# --- WAV ------------------------------------------------------------------------------------


def _probe_wav(head: bytes, total_size: int) -> AudioInfo:
    if len(head) < 12 or head[8:12] != b"WAVE":
        return AudioInfo(
            None, None, False, f"not audio: RIFF file of type {head[8:12]!r}, not WAVE"
        )
    rf64 = head[:4] == b"RF64"
    fmt: _WavFormat | None = None
    fact_samples: int | None = None
    ds64_data_size: int | None = None
    pos = 12
    while pos + 8 <= len(head):
        chunk_id = head[pos : pos + 4]
        (size,) = struct.unpack_from("<I", head, pos + 4)
        body = head[pos + 8 : pos + 8 + size]
        if chunk_id == b"ds64" and len(body) >= 16:
            (ds64_data_size,) = struct.unpack_from("<Q", body, 8)
        elif chunk_id == b"fmt ":
            fmt = _parse_fmt(body)
            if fmt is None:
                return AudioInfo(None, None, False, f"malformed WAV: fmt chunk of {size} bytes")
        elif chunk_id == b"fact" and len(body) >= 4:
            (fact_samples,) = struct.unpack_from("<I", body, 0)
        elif chunk_id == b"data":
            if fmt is None:
                return AudioInfo(None, None, False, "malformed WAV: data chunk before fmt chunk")
            if rf64 and size == _UNFINALISED and ds64_data_size is not None:
                size = ds64_data_size
            return _wav_result(fmt, pos + 8, size, total_size, fact_samples)
        # Chunks are word-aligned: an odd size is followed by one pad byte.
        pos += 8 + size + (size & 1)
    if fmt is None:
        what = "file ends" if len(head) >= total_size else f"first {len(head)} bytes end"
        return AudioInfo(None, None, False, f"malformed WAV: {what} before a fmt chunk")
    if len(head) >= total_size:
        return AudioInfo(fmt.codec, None, False, f"truncated WAV ({fmt}): no data chunk")
    return AudioInfo(
        fmt.codec, None, False, f"WAV {fmt}: no data chunk in the first {len(head)} bytes read"
    )


@dataclass(frozen=True)
class _WavFormat:
    codec: str
    tag: int
    channels: int
    rate: int
    byte_rate: int
    block_align: int
    bits: int

    def __str__(self) -> str:
        layout = {1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels} channels")
        bits = f" {self.bits} bit" if self.bits else ""
        return f"{self.codec} {self.rate} Hz {layout}{bits}"


def _parse_fmt(body: bytes) -> _WavFormat | None:
    if len(body) < 16:
        return None
    tag, channels, rate, byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body, 0)
    if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
        # The real format tag is the first two bytes of the SubFormat GUID.
        (tag,) = struct.unpack_from("<H", body, 24)
    codec = _WAV_CODECS.get(tag, f"wav_0x{tag:04x}")
    if tag == 0x0001:
        codec = "pcm_u8" if bits == 8 else f"pcm_s{bits}le"
    elif tag == 0x0003:
        codec = f"pcm_f{bits}le"
    return _WavFormat(codec, tag, channels, rate, byte_rate, block_align, bits)


def _wav_result(
    fmt: _WavFormat, data_offset: int, data_size: int, total_size: int, fact_samples: int | None
) -> AudioInfo:
    if fmt.channels == 0 or fmt.rate == 0 or fmt.block_align == 0:
        return AudioInfo(fmt.codec, None, False, f"malformed WAV fmt chunk: {fmt}")
    present = max(total_size - data_offset, 0)
    notes = []
    if data_size == _UNFINALISED:
        # Some recorders stream and never go back to write the sizes: trust the file size.
        data_size = present
        notes.append("header sizes not finalised by the recorder")
    duration = _wav_duration(fmt, min(data_size, present), fact_samples, present >= data_size)
    described = f"WAV {fmt}"
    if duration is not None:
        described += f", {duration:.2f} s"
    if notes:
        described += f" ({'; '.join(notes)})"
    if data_size == 0:
        trailing = f" ({present} bytes follow it: header not finalised?)" if present else ""
        return AudioInfo(fmt.codec, 0.0, False, f"{described}: data chunk is empty{trailing}")
    if present < data_size:
        return AudioInfo(
            fmt.codec,
            duration,
            False,
            f"truncated {described}: data chunk declares {data_size} bytes, "
            f"the file holds {present} (file {total_size} bytes, expected "
            f"{data_offset + data_size})",
        )
    return AudioInfo(fmt.codec, duration, True, described)


def _wav_duration(
    fmt: _WavFormat, data_bytes: int, fact_samples: int | None, whole: bool
) -> float | None:
    if fmt.tag in (0x0001, 0x0003, 0x0006, 0x0007):
        # Uncompressed: one block per sample frame, whatever byte_rate claims.
        return round(data_bytes / fmt.block_align / fmt.rate, 3)
    if fact_samples and whole:
        return round(fact_samples / fmt.rate, 3)
    if fmt.byte_rate:
        return round(data_bytes / fmt.byte_rate, 3)
    return None


# --- MP3 ------------------------------------------------------------------------------------

# Bitrates in kbit/s by (MPEG-1?, layer) and index; 0 is "free format", 15 is invalid.
_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_SAMPLE_RATES = {
    "1": (44100, 48000, 32000),
    "2": (22050, 24000, 16000),
    "2.5": (11025, 12000, 8000),
}
_VERSIONS = {0b00: "2.5", 0b10: "2", 0b11: "1"}
_LAYERS = {0b01: 3, 0b10: 2, 0b11: 1}
# Layer III side-information size by (MPEG-1?, mono?).
_SIDE_INFO_BYTES = {(True, False): 32, (True, True): 17, (False, False): 17, (False, True): 9}


@dataclass(frozen=True)
class _MpegFrame:
    version: str
    layer: int
    bitrate_kbps: int
    rate: int
    padding: int
    mono: bool

    @property
    def length(self) -> int:
        if self.layer == 1:
            return (12 * self.bitrate_kbps * 1000 // self.rate + self.padding) * 4
        factor = 72 if self.layer == 3 and self.version != "1" else 144
        return factor * self.bitrate_kbps * 1000 // self.rate + self.padding

    @property
    def samples(self) -> int:
        if self.layer == 1:
            return 384
        return 576 if self.layer == 3 and self.version != "1" else 1152

    @property
    def codec(self) -> str:
        return {1: "mp1", 2: "mp2", 3: "mp3"}[self.layer]

    def same_stream(self, other: _MpegFrame) -> bool:
        return (self.version, self.layer, self.rate) == (other.version, other.layer, other.rate)

    def __str__(self) -> str:
        return (
            f"MPEG-{self.version} layer {'I' * self.layer if self.layer < 3 else 'III'} "
            f"{self.bitrate_kbps} kbit/s {self.rate} Hz {'mono' if self.mono else 'stereo'}"
        )


def _parse_frame(head: bytes, pos: int) -> _MpegFrame | None:
    if pos + 4 > len(head):
        return None
    (word,) = struct.unpack_from(">I", head, pos)
    if word >> 21 != 0x7FF:
        return None
    version = _VERSIONS.get((word >> 19) & 0b11)
    layer = _LAYERS.get((word >> 17) & 0b11)
    bitrate_index = (word >> 12) & 0xF
    rate_index = (word >> 10) & 0b11
    # Free-format (index 0) streams carry no length in the header: not worth supporting here.
    if version is None or layer is None or bitrate_index in (0, 15) or rate_index == 3:
        return None
    return _MpegFrame(
        version=version,
        layer=layer,
        bitrate_kbps=_BITRATES[(version == "1", layer)][bitrate_index],
        rate=_SAMPLE_RATES[version][rate_index],
        padding=(word >> 9) & 1,
        mono=(word >> 6) & 0b11 == 0b11,
    )


def _looks_like_mpeg(head: bytes, pos: int) -> bool:
    """A valid frame header whose successor (if within ``head``) is valid too."""
    frame = _parse_frame(head, pos)
    if frame is None:
        return False
    following = _parse_frame(head, pos + frame.length)
    if following is None:
        # Acceptable only when the next header lies beyond what was read (or the file ends).
        return pos + frame.length + 4 > len(head)
    return frame.same_stream(following)


def _id3v2_size(head: bytes) -> int:
    if head[:3] != b"ID3" or len(head) < 10:
        return 0
    flags = head[5]
    # Sizes are "synchsafe": 7 bits per byte.
    size = 0
    for byte in head[6:10]:
        size = (size << 7) | (byte & 0x7F)
    return 10 + size + (10 if flags & 0x10 else 0)


def _probe_mp3(head: bytes, total_size: int) -> AudioInfo:
    tag = _id3v2_size(head)
    if tag >= len(head):
        if tag >= total_size:
            return AudioInfo(None, None, False, f"not audio: an ID3 tag of {tag} bytes, no frame")
        return AudioInfo(
            "mp3",
            None,
            False,
            f"MP3 not checked: its ID3 tag ({tag} bytes) exceeds the {len(head)} bytes read",
        )
    # Tolerate padding or junk between the tag and the first frame, but say so.
    pos = next((p for p in range(tag, len(head) - 3) if _looks_like_mpeg(head, p)), None)
    if pos is None:
        return AudioInfo(
            None, None, False, f"not audio: no MPEG audio frame after {tag} bytes of ID3 tag"
        )
    frame = _parse_frame(head, pos)
    assert frame is not None  # _looks_like_mpeg checked it
    described = str(frame)
    if pos > tag:
        described += f", {pos - tag} bytes skipped before the first frame"
    audio_bytes = total_size - pos
    if pos + frame.length > total_size:
        return AudioInfo(
            frame.codec,
            None,
            False,
            f"truncated MP3 ({described}): first frame needs {frame.length} bytes, "
            f"the file holds {audio_bytes}",
        )
    vbr = _vbr_header(head, pos, frame)
    if vbr is not None:
        frames, vbr_bytes, kind = vbr
        duration = round(frames * frame.samples / frame.rate, 3)
        if vbr_bytes and audio_bytes < vbr_bytes:
            return AudioInfo(
                frame.codec,
                duration,
                False,
                f"truncated MP3 ({described}): {kind} header declares {vbr_bytes} bytes of "
                f"audio, the file holds {audio_bytes}",
            )
        return AudioInfo(frame.codec, duration, True, f"MP3 {described}, {duration:.2f} s ({kind})")
    duration = round(audio_bytes * 8 / (frame.bitrate_kbps * 1000), 3)
    return AudioInfo(frame.codec, duration, True, f"MP3 {described}, {duration:.2f} s (CBR)")


def _vbr_header(head: bytes, pos: int, frame: _MpegFrame) -> tuple[int, int, str] | None:
    """(frames, bytes, kind) from a Xing/Info or VBRI header in the first frame, if any."""
    # Side information sits between the frame header and the Xing tag.
    side_info = _SIDE_INFO_BYTES[(frame.version == "1", frame.mono)]
    xing = pos + 4 + side_info
    if head[xing : xing + 4] in (b"Xing", b"Info") and xing + 8 <= len(head):
        (flags,) = struct.unpack_from(">I", head, xing + 4)
        cursor = xing + 8
        frames = nbytes = 0
        if flags & 1 and cursor + 4 <= len(head):
            (frames,) = struct.unpack_from(">I", head, cursor)
            cursor += 4
        if flags & 2 and cursor + 4 <= len(head):
            (nbytes,) = struct.unpack_from(">I", head, cursor)
        if frames:
            return frames, nbytes, head[xing : xing + 4].decode()
    vbri = pos + 4 + 32
    if head[vbri : vbri + 4] == b"VBRI" and vbri + 18 <= len(head):
        nbytes, frames = struct.unpack_from(">II", head, vbri + 10)
        if frames:
            return frames, nbytes, "VBRI"
    return None


# --- raw GSM --------------------------------------------------------------------------------


def _probe_gsm(head: bytes, total_size: int) -> AudioInfo:
    # Every GSM 06.10 frame (libgsm/toast layout) starts with the 4-bit signature 0xD.
    for offset in range(0, len(head) - len(head) % GSM_FRAME_BYTES, GSM_FRAME_BYTES):
        if head[offset] >> 4 != 0xD:
            return AudioInfo(
                None,
                None,
                False,
                f"not audio: expected raw GSM 06.10 frames, the frame at byte {offset} lacks "
                "the 0xD signature",
            )
    frames, extra = divmod(total_size, GSM_FRAME_BYTES)
    duration = round(frames * GSM_FRAME_SECONDS, 3)
    if extra:
        return AudioInfo(
            "gsm",
            duration,
            False,
            f"truncated GSM: {total_size} bytes is not a whole number of 33-byte frames "
            f"({frames} frames and {extra} bytes)",
        )
    return AudioInfo("gsm", duration, True, f"GSM 06.10 8000 Hz mono, {duration:.2f} s")


def _describe(head: bytes) -> str:
    # Never echo content: a misnamed text file may hold personal data.
    sample = head[:64]
    if all(32 <= b < 127 or b in (9, 10, 13) or b >= 0x80 for b in sample):
        try:
            sample.decode("utf-8")
            return "text"
        except UnicodeDecodeError as exc:
            if exc.start >= len(sample) - 3:  # a character cut at the sample's end
                return "text"
    return f"binary data starting {head[:4].hex(' ')}"
