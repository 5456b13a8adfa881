"""Count the bytes of live tensor storages per category, for fake or real tensors.

`LiveTensorTracker` is a `TorchDispatchMode`: every aten op that runs while it is active
passes through it, and every storage an op returns is remembered with its size and a
category.  A weak-reference callback on the storage removes it when it is freed, so the
running total is the memory a caching allocator would hand out (before rounding) and its
maximum is the analogue of `torch.cuda.max_memory_allocated`.  Under `FakeTensorMode`
nothing is allocated, so a 70B step is traced in seconds on a laptop.

Why not torch's `MemTracker` (torch.distributed._tools.mem_tracker): it registers hooks on
every parameter and fails on frozen parameters (`requires_grad=False`), which is every base
weight of a LoRA/QLoRA model.  Why storages and not tensors: views share a storage and must
be counted once; the weak-reference bookkeeping follows torch's MemTracker.

Categories: the default category of new storages is set by the caller (`category(...)`,
e.g. "optimizer" while `optimizer.step()` runs); `register()` reclassifies an existing
tensor (parameters, and each `.grad` from a post-accumulate-grad hook).

Labels: every update is attributed to the current label "<phase>/<position>" (e.g.
"backward/last" while the last decoder layer is back-propagated; the caller moves the
position with `set_position`), and the peak is also kept per label (`label_peaks`), which
is what lets runners.trace extrapolate a truncated model to its full depth.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary

CATEGORIES = ("weights", "reference", "adapter", "gradients", "optimizer", "activations", "other")


class LiveTensorTracker(TorchDispatchMode):
    """Running and peak live bytes, per category, of every storage created while active.

    `peak` is the largest total seen; `at_peak` its split by category at that moment;
    `category_peaks` each category's own maximum (reached at different moments);
    `peak_label` the label (e.g. "backward/last") current when the peak was reached;
    `label_peaks[label]` = (peak, split at that peak, category peaks) within that label.
    """

    def __init__(self) -> None:
        super().__init__()
        self._keys: WeakIdKeyDictionary = WeakIdKeyDictionary()  # storage -> key
        self._live: dict[int, list] = {}  # key -> [nbytes, category]
        self._next_key = 0
        self._default = "other"
        self.phase = ""
        self.position = ""
        self.current = dict.fromkeys(CATEGORIES, 0)
        self.total = 0
        self.reset_peak()

    # -- bookkeeping -------------------------------------------------------------------
    @property
    def label(self) -> str:
        return f"{self.phase}/{self.position}" if self.position else self.phase

    def reset_peak(self) -> None:
        """Start measuring peaks from the current state (e.g. after model set-up)."""
        self.peak = self.total
        self.at_peak = dict(self.current)
        self.category_peaks = dict(self.current)
        self.peak_label = self.label
        self.label_peaks: dict[str, tuple[int, dict, dict]] = {}

    def set_position(self, position: str) -> None:
        """Where in the model the step is now (e.g. "first", "last" decoder layer, "post")."""
        self.position = position

    def register(self, tensor: torch.Tensor, category: str) -> None:
        """Track `tensor`'s storage under `category` (reclassifying it if already known)."""
        if category not in CATEGORIES:
            raise ValueError(f"unknown memory category {category!r}")
        storage = tensor.untyped_storage()
        key = self._keys.get(storage)
        if key is None:
            self._add(storage, category)
            return
        nbytes, old = self._live[key]
        if old != category:
            self._live[key][1] = category
            self.current[old] -= nbytes
            self.current[category] += nbytes
            self._update_peaks()

    @contextmanager
    def category(self, name: str, phase: str | None = None, position: str = ""):
        """New storages created inside the block count as `name`; `phase` names the block."""
        if name not in CATEGORIES:
            raise ValueError(f"unknown memory category {name!r}")
        saved = self._default, self.phase, self.position
        self._default = name
        if phase is not None:
            self.phase, self.position = phase, position
        try:
            yield self
        finally:
            self._default, self.phase, self.position = saved

    def _add(self, storage: torch.UntypedStorage, category: str) -> None:
        nbytes = storage.nbytes()
        key = self._next_key
        self._next_key += 1
        self._keys[storage] = key
        self._live[key] = [nbytes, category]
        weakref.finalize(storage, self._free, key)
        self.current[category] += nbytes
        self.total += nbytes
        self._update_peaks()

    def _free(self, key: int) -> None:
        entry = self._live.pop(key, None)
        if entry is not None:
            self.current[entry[1]] -= entry[0]
            self.total -= entry[0]

    def _update_peaks(self) -> None:
        for name, value in self.current.items():
            if value > self.category_peaks[name]:
                self.category_peaks[name] = value
        if self.total > self.peak:
            self.peak = self.total
            self.at_peak = dict(self.current)
            self.peak_label = self.label
        label = self.label
        entry = self.label_peaks.get(label)
        if entry is None:
            self.label_peaks[label] = (self.total, dict(self.current), dict(self.current))
            return
        peak, split, cats = entry
        for name, value in self.current.items():
            if value > cats[name]:
                cats[name] = value
        if self.total > peak:
            self.label_peaks[label] = (self.total, dict(self.current), cats)

    # -- the dispatch hook -------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor) and leaf.untyped_storage() not in self._keys:
                self._add(leaf.untyped_storage(), self._default)
        return out
