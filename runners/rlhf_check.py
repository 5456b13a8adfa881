"""What the RLHF policy stage bought, in the numbers the record keeps.

- `windows`: the first and last quarter of a logged curve (reward, KL): the reward should
  rise while the KL to the reference stays bounded.  Each logged value is already trl's
  mean over its logging interval.
- `held_out_rewards`: greedy completions of held-out prompts from the reference policy and
  from the trained policy, both scored by the reward model -- a before/after comparison on
  prompts the policy never trained on, without sampling noise.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any

GENERATE_BATCH = 16


def windows(rows: list[dict], key: str) -> dict[str, Any] | None:
    """{first, last, min, max, logged, window}: means of the first and last quarter of `key`."""
    values = [float(r[key]) for r in rows if isinstance(r.get(key), int | float) and math.isfinite(r[key])]
    if not values:
        return None
    n = max(1, len(values) // 4)
    return {"first": round(sum(values[:n]) / n, 6), "last": round(sum(values[-n:]) / n, 6),
            "min": round(min(values), 6), "max": round(max(values), 6), "logged": len(values), "window": n}


def held_out_rewards(trainer, tokenizer, scorer, prompts: list, max_new_tokens: int) -> dict[str, Any]:
    """Mean reward of greedy completions: reference vs trained policy on the same prompts."""
    if not prompts:
        return {"prompts": 0}
    model = trainer.accelerator.unwrap_model(trainer.model)
    after = _greedy(model, tokenizer, prompts, max_new_tokens)
    with _reference(trainer, model) as reference:
        before = _greedy(reference, tokenizer, prompts, max_new_tokens) if reference is not None else None
    out: dict[str, Any] = {"prompts": len(prompts), "max_new_tokens": max_new_tokens, "decoding": "greedy"}
    policy_scores = scorer(prompts, after)
    out["policy"] = round(sum(policy_scores) / len(prompts), 6)
    if before is not None:
        ref_scores = scorer(prompts, before)
        out["reference"] = round(sum(ref_scores) / len(prompts), 6)
        out["gain"] = round(out["policy"] - out["reference"], 6)
        out["improved_share"] = round(sum(a > b for a, b in zip(policy_scores, ref_scores, strict=True))
                                      / len(prompts), 6)
    out["examples"] = [{"prompt": _text(p), "reference": _text(b) if before else None, "policy": _text(a)}
                       for p, a, b in list(zip(prompts, after, before or after, strict=True))[:3]]
    return out


@contextmanager
def _reference(trainer, model):
    """The reference policy: trl's "ref" adapter, the adapter disabled, or trl's frozen copy."""
    if getattr(model, "peft_config", None) is not None:
        from trl.trainer.utils import use_adapter

        with use_adapter(model, adapter_name="ref" if "ref" in model.peft_config else None):
            yield model
        return
    yield getattr(trainer, "ref_model", None)


def _greedy(model, tokenizer, prompts: list, max_new_tokens: int) -> list:
    """Greedy completions, as plain strings or one assistant message (like the prompts)."""
    import torch

    chat = isinstance(prompts[0], list)
    if chat:
        ids = [list(tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True,
                                                  return_dict=True)["input_ids"]) for p in prompts]
    else:
        ids = tokenizer(text=prompts)["input_ids"]
    was_training = model.training
    model.eval()
    texts: list[str] = []
    with torch.no_grad():
        for start in range(0, len(ids), GENERATE_BATCH):
            batch = tokenizer.pad({"input_ids": ids[start : start + GENERATE_BATCH]}, padding=True,
                                  padding_side="left", return_tensors="pt")
            batch = {k: v.to(model.device) for k, v in batch.items()}
            generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                                       pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            texts += tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    model.train(was_training)
    return [[{"role": "assistant", "content": t}] for t in texts] if chat else texts


def _text(value) -> str:
    if isinstance(value, list):
        return "\n".join(f"{m['role']}: {m['content']}" for m in value)
    return str(value)
