"""Peak memory of a block of inference code, on CUDA or CPU (see :class:`PeakMemory`)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import resource
import sys
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

__all__ = ["PeakMemory", "resident_bytes"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def resident_bytes(objects: Iterable[nn.Module | torch.Tensor]) -> int:
    """Bytes of the distinct storages of the given tensors and of the modules' parameters and
    buffers (shared tensors counted once)."""
    seen: dict[int, int] = {}
    for obj in objects:
        tensors = [*obj.parameters(), *obj.buffers()] if isinstance(obj, nn.Module) else [obj]
        for t in tensors:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def _status_kib(key: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])  # "VmHWM:   123456 kB"
    raise KeyError(f"{key} not in {_STATUS}")


def _ru_maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB


def _malloc_trim() -> None:
    """Give freed heap pages back to the OS (glibc), so reused memory shows up as growth."""
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Context manager measuring peak memory (``.peak``, bytes) while the block runs; ``.method``
    says what was measured.

    - CUDA: ``torch.cuda.max_memory_allocated`` after a reset (everything torch's allocator holds:
      weights, inputs, activations, workspaces; the caching allocator's reserve is not included).
    - CPU: ``resident_bytes(resident)`` (weights and inputs, already allocated before the block)
      plus the growth of the peak resident set size over the RSS at entry: VmHWM after resetting
      it via ``/proc/self/clear_refs``; where that is unavailable, the growth of ``ru_maxrss``,
      which is only a lower bound (a higher earlier peak of the process hides the block's peak).
    """

    def __init__(self, device: torch.device | str, resident: Iterable = ()) -> None:
        self.device = torch.device(device)
        self.resident = list(resident)
        self.peak = 0
        self.method = ""

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.method = "cuda max_memory_allocated (weights + input + activations)"
            return self
        gc.collect()
        _malloc_trim()
        self._base_bytes = resident_bytes(self.resident)
        if _STATUS.exists() and _reset_peak_rss():
            self._rss0 = _status_kib("VmRSS") * 1024
            self.method = "cpu: weights + input + peak RSS growth (VmHWM, reset at start)"
        else:
            self._rss0 = _ru_maxrss_bytes()
            self.method = "cpu: weights + input + ru_maxrss growth (lower bound)"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = int(torch.cuda.max_memory_allocated(self.device))
            return
        if "VmHWM" in self.method:
            peak_rss = _status_kib("VmHWM") * 1024
        else:
            peak_rss = _ru_maxrss_bytes()
        self.peak = self._base_bytes + max(0, peak_rss - self._rss0)
