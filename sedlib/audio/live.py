"""Live audio: sources that deliver samples as they arrive, and a resampler that keeps up.

A source is an iterator of float32 mono native-rate chunks ``(n,)`` with a ``rate`` attribute:

- :func:`pcm_source`: raw 16-bit little-endian PCM from a binary stream (stdin by default);
- :func:`growing_wav_source`: a WAV file that may still be being written (read as it grows,
  ended when it has not grown for ``idle_seconds``); other formats are read as complete files;
- :func:`microphone_source`: the default input device, if ``sounddevice`` is installed.

Integer samples become float32 as soundfile makes them (``x / 2**(bits-1)``) and channels are
averaged in float32, as :func:`sedlib.audio.io.load_audio` does, so a stream of a file and the
file itself give the same samples. :class:`StreamResampler` resamples a stream block by block
and equals :func:`sedlib.audio.io.resample` of the whole signal up to float32 rounding (the
argument of :func:`sedlib.audio.io._read_resampled`: the sinc resampler is a strided
convolution; as for ``iter_windows``, the rounding differs with the block length, ~3e-8).
"""

from __future__ import annotations

import math
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from sedlib.audio.io import LOWPASS_FILTER_WIDTH, ROLLOFF, resample
from sedlib.errors import AudioError

#: Leading bytes of containers that are not raw PCM (a common mistake: piping a WAV file).
_MAGIC = {b"RIFF": "a WAV file", b"RF64": "an RF64 file", b"fLaC": "a FLAC file", b"OggS": "an Ogg file",
          b"ID3": "an MP3 file", b"FORM": "an AIFF file"}
#: Bytes per read from a live stream (0.25 s of 16 kHz 16-bit mono).
CHUNK_BYTES = 8000


class Source:
    """An iterator of float32 mono chunks at ``rate`` Hz (see the module doc)."""

    def __init__(self, chunks: Iterator[np.ndarray], rate: int, name: str) -> None:
        self._chunks, self.rate, self.name = chunks, int(rate), name

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._chunks


def _to_float(raw: bytes, fmt: int, bits: int, channels: int) -> np.ndarray:
    """Interleaved little-endian samples -> float32 mono (n,)."""
    if fmt == 3:  # IEEE float
        x = np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
    elif bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        x = ((b[:, 0] << 8 | b[:, 1] << 16 | b[:, 2] << 24) / 2.0**31).astype(np.float32)
    elif bits == 8:  # unsigned
        x = ((np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    else:
        x = (np.frombuffer(raw, dtype=f"<i{bits // 8}") / 2.0 ** (bits - 1)).astype(np.float32)
    return x.reshape(-1, channels).mean(axis=1, dtype=np.float32) if channels > 1 else x


def pcm_source(stream: BinaryIO | None = None, rate: int = 16_000, *, name: str = "stdin",
               chunk_bytes: int = CHUNK_BYTES) -> Source:
    """Raw 16-bit little-endian mono PCM at ``rate`` from ``stream`` (default: stdin). A stream
    that starts like a container file, or ends in the middle of a sample, raises AudioError."""
    if stream is None:
        if sys.stdin.isatty():
            raise AudioError("stdin is a terminal, not audio: pipe raw 16-bit mono PCM into it, e.g. "
                             "`arecord -f S16_LE -r 16000 -c 1 -t raw | sedlib stream ...`")
        stream = sys.stdin.buffer
    if rate < 1:
        raise AudioError(f"--rate must be positive, got {rate}")

    def chunks() -> Iterator[np.ndarray]:
        first, carry = True, b""
        while True:
            data = stream.read1(chunk_bytes) if hasattr(stream, "read1") else stream.read(chunk_bytes)
            if not data:
                break
            data = carry + data
            if first and len(data) >= 4:
                kind = next((what for magic, what in _MAGIC.items() if data.startswith(magic)), None)
                if kind:
                    raise AudioError(f"{name}: this is {kind}, not raw PCM; pass it with --input FILE "
                                     f"(or strip the header: sox in.wav -t raw -e signed -b 16 -c 1 -)")
                first = False
            elif first:
                carry = data
                continue
            usable = len(data) - len(data) % 2
            carry = data[usable:]
            if usable:
                yield _to_float(data[:usable], 1, 16, 1)
        if carry and not first:
            raise AudioError(f"{name}: the stream ended in the middle of a sample ({len(carry)} stray "
                             f"byte); expected 16-bit PCM (2 bytes per sample)")
        if carry:  # fewer than 4 bytes in all
            if len(carry) % 2:
                raise AudioError(f"{name}: {len(carry)} byte(s) of input; expected 16-bit PCM")
            yield _to_float(carry, 1, 16, 1)

    return Source(chunks(), rate, name)


def _wav_header(f: BinaryIO, path: Path) -> tuple[int, int, int, int, int, int]:
    """(format, channels, rate, bits, data offset, data size in the header) of a RIFF/WAVE file;
    AudioError unless it is PCM (8/16/24/32-bit) or float (32/64-bit)."""
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise AudioError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    fmt_info = None
    while True:
        chunk = f.read(8)
        if len(chunk) < 8:
            raise AudioError(f"{path}: the WAV header ends before its 'data' chunk")
        cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if cid == b"fmt ":
            body = f.read(size + size % 2)
            fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if fmt == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's code
                fmt = struct.unpack("<H", body[24:26])[0]
            fmt_info = (fmt, channels, rate, bits)
        elif cid == b"data":
            if fmt_info is None:
                raise AudioError(f"{path}: a 'data' chunk before the 'fmt ' chunk")
            fmt, channels, rate, bits = fmt_info
            if not ((fmt == 1 and bits in (8, 16, 24, 32)) or (fmt == 3 and bits in (32, 64))) or channels < 1:
                raise AudioError(f"{path}: WAV format {fmt} with {bits}-bit samples; a growing file must be "
                                 f"PCM (8/16/24/32-bit) or float (32/64-bit)")
            return fmt, channels, rate, bits, f.tell(), size
        else:
            f.seek(size + size % 2, 1)


def growing_wav_source(path: str | Path, *, idle_seconds: float = 2.0, poll_seconds: float = 0.05,
                       chunk_bytes: int = 64_000) -> Source:
    """A WAV file read as it grows: samples are delivered as soon as they are in the file, and
    the stream ends when the file has not grown for ``idle_seconds`` (0: read what is there).
    Until then an unfinished header is waited for too. Other formats (FLAC, OGG, ...) are read
    as complete files through soundfile."""
    from sedlib.audio.io import _existing_file

    path = _existing_file(path)
    with open(path, "rb") as f:
        starts_riff = f.read(4) == b"RIFF"
    if not starts_riff and path.stat().st_size > 0:
        return _complete_file_source(path)
    deadline = time.monotonic() + idle_seconds
    while True:  # wait for a complete header
        try:
            with open(path, "rb") as f:
                fmt, channels, rate, bits, offset, _ = _wav_header(f, path)
            break
        except AudioError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(poll_seconds)
    frame_bytes = channels * bits // 8

    def chunks() -> Iterator[np.ndarray]:
        with open(path, "rb", buffering=0) as f:  # unbuffered: the header is re-read as it changes
            f.seek(offset)
            read, last_growth = 0, time.monotonic()
            while True:
                available = path.stat().st_size - offset - read
                size = _header_data_size(f, offset)  # final once the writer has patched it
                if size not in (0, 0xFFFFFFFF, 0x7FFFFFFF) and read + available > size >= read:
                    available = size - read  # trailing chunks after the data are not audio
                available -= available % frame_bytes
                if available > 0:
                    f.seek(offset + read)
                    raw = f.read(min(available, chunk_bytes - chunk_bytes % frame_bytes))
                    raw = raw[:len(raw) - len(raw) % frame_bytes]
                    read += len(raw)
                    last_growth = time.monotonic()
                    yield _to_float(raw, fmt, bits, channels)
                elif time.monotonic() - last_growth >= idle_seconds:
                    return
                else:
                    time.sleep(poll_seconds)

    return Source(chunks(), rate, path.name)


def _header_data_size(f: BinaryIO, data_offset: int) -> int:
    f.seek(data_offset - 4)
    raw = f.read(4)
    return struct.unpack("<I", raw)[0] if len(raw) == 4 else 0


def _complete_file_source(path: Path, block: int = 65_536) -> Source:
    from sedlib.audio.io import _open, _read_mono

    with _open(path) as f:
        rate, frames = f.samplerate, int(f.frames)

    def chunks() -> Iterator[np.ndarray]:
        with _open(path) as f:
            for start in range(0, frames, block):
                yield _read_mono(f, path, start, min(block, frames - start))

    return Source(chunks(), rate, path.name)


def microphone_source(rate: int = 16_000, *, block_seconds: float = 0.1, device=None) -> Source:
    """The default (or ``device``) input, mono at ``rate``; needs the optional ``sounddevice``."""
    try:
        import sounddevice
    except (ImportError, OSError) as err:
        raise AudioError(f"--input mic needs the optional package sounddevice (pip install "
                         f"sounddevice) and PortAudio: {err}") from None
    import queue

    blocks: queue.Queue = queue.Queue()

    def chunks() -> Iterator[np.ndarray]:
        with sounddevice.InputStream(samplerate=rate, channels=1, dtype="float32", device=device,
                                     blocksize=int(rate * block_seconds),
                                     callback=lambda data, *_: blocks.put(data[:, 0].copy())):
            while True:
                yield blocks.get()

    return Source(chunks(), rate, "microphone")


class StreamResampler:
    """Resample a stream chunk by chunk; the concatenated output equals
    ``resample(whole_signal, orig_sr, new_sr)`` (to float32 rounding, see the module doc).

    Outputs are released in blocks once the input they depend on has arrived (a lookahead of a
    few filter widths), so memory holds only that context, never the stream.
    """

    def __init__(self, orig_sr: int, new_sr: int) -> None:
        self.orig_sr, self.new_sr = int(orig_sr), int(new_sr)
        g = math.gcd(self.orig_sr, self.new_sr)
        self.o, self.n = self.orig_sr // g, self.new_sr // g
        width = math.ceil(LOWPASS_FILTER_WIDTH * self.o / (min(self.o, self.n) * ROLLOFF))
        self.margin = -(-width // self.o) + 1  # in blocks of o input samples
        self._buf = np.zeros(0, np.float32)
        self._base = 0  # input index of _buf[0]
        self._out = 0  # next output index
        self._total = 0  # input samples seen

    def _span(self, out_start: int, out_end: int, total: int) -> np.ndarray:
        first_block = max(0, out_start // self.n - self.margin)
        last_block = -(-out_end // self.n) + self.margin
        a, b = first_block * self.o, min(total, last_block * self.o)
        y = resample(self._buf[a - self._base:b - self._base], self.orig_sr, self.new_sr)
        offset = out_start - first_block * self.n
        return y[offset:offset + out_end - out_start]

    def _release(self, out_end: int, total: int) -> np.ndarray:
        if out_end <= self._out:
            return np.zeros(0, np.float32)
        y = self._span(self._out, out_end, total)
        self._out = out_end
        keep = max(0, self._out // self.n - self.margin) * self.o  # first input the next span reads
        self._buf, self._base = self._buf[keep - self._base:], keep
        return y

    def push(self, x: np.ndarray) -> np.ndarray:
        """Add input samples; returns the output samples that are now final."""
        if self.o == self.n:
            return np.asarray(x, np.float32)
        self._buf = np.concatenate([self._buf, np.asarray(x, np.float32)])
        self._total += len(x)
        ready = (self._total // self.o - self.margin) * self.n  # outputs whose inputs all arrived
        return self._release(ready - ready % self.n, self._total)

    def finish(self) -> np.ndarray:
        """The remaining outputs (zero padding at the true end, as for the whole signal)."""
        if self.o == self.n:
            return np.zeros(0, np.float32)
        return self._release(-(-self._total * self.n // self.o), self._total)
