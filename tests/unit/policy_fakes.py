"""A small, deliberately simple memory/cost model for policy tests (not the real estimator).

Per device, in GiB:  weights (2 bytes/param, 0.55 for NF4) + full-weight gradients (2)
+ AdamW states (8; 2 for 8-bit) sharded by ZeRO-3 over the GPUs + a DPO reference copy
+ activations (proportional to batch x seq, / 4 with checkpointing) + 1 GiB overhead.
Time: 6 x params x tokens / (GPUs x 100 TFLOP/s); cost at $2 per device-hour.
The policy tests only need monotone, plausible numbers; the real estimator is tested on
its own and in the "known facts" tests that use it.
"""

from __future__ import annotations

from advisor.context import Situation
from tunewise.methods import Method
from tunewise.settings import TrainSettings

GIB = 2**30


def fake_estimate(params: int, memory_gib: float, tokens: int = 10_000_000, device_kind: str = "gpu"):
    def estimate(method: Method, st: TrainSettings, gpus: int, spec) -> dict:
        n = getattr(spec, "params", None) or params
        weights = (0.55 if method is Method.QLORA else 2.0) * n
        trained = n if method in (Method.FULL, Method.DPO, Method.RLHF) else (0 if method is Method.PROMPT else n // 100)
        opt_bytes = 2 if "8bit" in st.optimizer else 8
        states = trained * (2 + opt_bytes)
        shard = gpus if st.zero_stage == 3 else 1
        extra = {Method.DPO: 2.0 * n, Method.RLHF: 6.0 * n}.get(method, 0.0)
        acts = 0 if method is Method.PROMPT else st.batch_size * st.seq_len * n / 2e5
        acts = acts / 4 if st.gradient_checkpointing else acts
        total = ((weights + states + extra) / shard + acts) / GIB + 1.0
        hours = 6 * n * tokens * st.epochs / (gpus * 100e12) / 3600 if method.trains else 0.0
        supported = not (method is Method.QLORA and device_kind == "apple")  # no bitsandbytes 4-bit
        return {"schema": "tunewise/estimate/v1", "method": method.value, "fits": total <= memory_gib,
                "supported": supported, "unsupported_reason": None if supported else "no bnb 4-bit on Apple", "memory_gib": {"total": round(total, 2)},
                "time_hours": round(hours, 3), "cost_usd": round(hours * gpus * 2.0, 2),
                "settings": {"batch_size": st.batch_size, "seq_len": st.seq_len}}
    return estimate


def situation(params: float = 7e9, memory_gib: float = 24.0, gpus: int = 1, **kw) -> Situation:
    """A Situation on the fake estimator; keyword arguments set any Situation field."""
    tokens = kw.pop("tokens", 10_000_000)
    kind = kw.pop("device_kind", "gpu")
    return Situation(model="fake-model", params=int(params), max_position=kw.pop("max_position", 4096),
                     hardware=kw.pop("hardware", "fake-gpu"), memory_gib=memory_gib, gpus=gpus,
                     bf16=kw.pop("bf16", True), device_kind=kind,
                     estimate=fake_estimate(int(params), memory_gib, tokens, kind), **kw)
