"""Measured peak memory of training, to set next to the advisor's estimate.

CUDA: `torch.cuda.max_memory_allocated` / `max_memory_reserved` after resetting the peak
counters just before training (as torchtune `training/memory.py::get_memory_stats`).

CPU: peak resident set size above the baseline taken just before training starts, so the
number covers what training adds (gradients, optimizer state, activations), not the
weights that were already loaded.  On Linux the kernel keeps the exact high-water mark
(`VmHWM` in /proc/self/status); writing "5" to /proc/self/clear_refs resets it to the
current RSS (proc(5), since Linux 4.0), so the mark read after training is the training
peak, at no cost during training.  Elsewhere a background thread samples RSS, and the
lifetime mark (`ru_maxrss`) counts only when it rose during training.  (The sampling thread
is only the fallback: it wakes 50 times a second next to the training threads, and it can
miss a peak that lasts less than one interval.)

Several processes: every rank measures its own peak; `per_rank` collects them all (with
the machine's host name), so a record shows the imbalance FSDP/ZeRO sharding can leave.
"""

from __future__ import annotations

import resource
import socket
import sys
import threading
from typing import Any

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
        self._kernel_mark = False

    def start(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return
        self._baseline = self._peak = _rss()
        self._maxrss_start = _maxrss()
        self._kernel_mark = _reset_high_water_mark()
        if not self._kernel_mark:
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
        if self._kernel_mark:
            peak = max(peak, _status_kib("VmHWM") * 1024)
        elif _maxrss() > self._maxrss_start:  # the lifetime mark moved during training: it is ours
            peak = max(peak, _maxrss())
        return PeakMemory(
            device="cpu",
            rss_delta_gib=round(max(0, peak - self._baseline) / GIB, 4),
            rss_peak_gib=round(peak / GIB, 4),
        )


def _reset_high_water_mark() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS; False where that is unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return _status_kib("VmHWM") > 0
    except OSError:
        return False


def _status_kib(key: str) -> int:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _maxrss() -> int:
    # getrusage(2): Linux reports ru_maxrss in KiB, macOS in bytes.
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def per_rank(peak: PeakMemory, rank: int, local_rank: int, world_size: int) -> list[dict[str, Any]]:
    """Every rank's peak, in rank order (a collective: every rank calls it).

    `torch.distributed.all_gather_object` (pickled dicts over gloo/NCCL) rather than a
    gather to rank 0: NCCL has no gather of objects on older torch, and the list is tiny.
    Returns [] when no process group is running.
    """
    import torch.distributed as dist

    if world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return []
    mine = {"rank": rank, "local_rank": local_rank, "host": socket.gethostname(),
            **{k: v for k, v in vars(peak).items() if k != "per_rank"}}
    everyone: list[Any] = [None] * world_size
    dist.all_gather_object(everyone, mine)
    return sorted(everyone, key=lambda row: row["rank"])
