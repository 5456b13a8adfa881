"""Measured peak memory of training, to set next to the advisor's estimate.

CUDA: `torch.cuda.max_memory_allocated` / `max_memory_reserved` after resetting the peak
counters just before training (as torchtune `training/memory.py::get_memory_stats`).

CPU: peak resident set size above the baseline taken just before training starts, so the
number covers what training adds (gradients, optimizer state, activations), not the
weights that were already loaded.  RSS is sampled by a background thread; the kernel's
lifetime high-water mark (`ru_maxrss`) is used too, but only when it rose during training
-- before that it may describe an earlier phase (model loading, tokenisation).
"""

from __future__ import annotations

import resource
import sys
import threading

from tunewise.records import PeakMemory

GIB = 1024**3
SAMPLE_EVERY_S = 0.02


class PeakMemoryMeter:
    """`start()` right before training, `stop()` right after; `stop()` returns PeakMemory."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._baseline = 0
        self._peak = 0
        self._maxrss_start = 0

    def start(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return
        self._baseline = self._peak = _rss()
        self._maxrss_start = _maxrss()
        self._thread = threading.Thread(target=self._sample, name="tunewise-rss", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self._peak = max(self._peak, _rss())

    def stop(self) -> PeakMemory:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            return PeakMemory(
                device="cuda",
                allocated_gib=round(torch.cuda.max_memory_allocated() / GIB, 4),
                reserved_gib=round(torch.cuda.max_memory_reserved() / GIB, 4),
            )
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        peak = max(self._peak, _rss())
        maxrss = _maxrss()
        if maxrss > self._maxrss_start:  # the high-water mark moved during training: it is ours
            peak = max(peak, maxrss)
        return PeakMemory(
            device="cpu",
            rss_delta_gib=round(max(0, peak - self._baseline) / GIB, 4),
            rss_peak_gib=round(peak / GIB, 4),
        )


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _maxrss() -> int:
    # getrusage(2): Linux reports ru_maxrss in KiB, macOS in bytes.
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024
