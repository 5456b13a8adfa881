"""One steady-state training step on a (fake) model, as trl's trainers run it.

Used by runners.trace: `prepare_for_training` applies what `SFTTrainer`/`DPOTrainer`
(trl 1.16) do to the model before training, `build_optimizer` what the transformers
Trainer builds for our optimizer names, and `run_step` the forward (+ DPO reference
forward), backward, gradient clipping and optimizer step, labelling every phase and
decoder-layer position for the tracker.
"""

from __future__ import annotations

from contextlib import contextmanager

from tunewise.methods import Method
from tunewise.settings import TrainSettings


@contextmanager
def unpadded_causal_mask():
    """Let transformers skip the causal mask under fake tensors, as it does for real ones.

    With no attention mask, transformers' SDPA path checks whether `position_ids` pack
    several sequences; for one sequence per row it drops the (batch, 1, seq, seq) mask and
    uses `is_causal=True`.  It cannot read a FakeTensor's values, so under fake mode it
    assumes packing, builds the mask and (mask => no native GQA) repeats k/v.  The traced
    rows are single unpadded sequences by construction, so the check is answered as a
    real run answers it: "not packed".
    """
    from unittest import mock

    from transformers import masking_utils

    with mock.patch.object(masking_utils, "find_packed_sequence_indices", lambda position_ids: None):
        yield


def prepare_for_training(policy, reference, method: Method, settings: TrainSettings) -> None:
    """What trl's trainers do to the model before the first step."""
    from peft import PeftModel
    from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model

    is_peft = isinstance(policy, PeftModel)
    # trl: per-token log-probs in vocabulary chunks, never the (batch, seq, vocab) logits
    add_fused_lm_head(policy.get_base_model() if is_peft else policy,
                      outputs=("log_probs", "entropy", "is_top1"))
    policy.config.use_cache = False
    if settings.gradient_checkpointing:
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if is_peft:
            policy.enable_input_require_grads()
    policy.train()
    if method is Method.DPO:
        disable_dropout_in_model(policy)  # DPOConfig.disable_dropout defaults to True
    if reference is not None:
        add_fused_lm_head(reference)
        reference.eval()


def build_optimizer(params, settings: TrainSettings):
    """The optimizer the Trainer builds for `settings.optimizer`.

    Constructed outside fake mode: bitsandbytes builds its quantisation maps with
    data-dependent Python.  "adamw" = `adamw_torch_fused` (the Trainer default);
    paged 8-bit AdamW has the same device bytes as 8-bit AdamW (paging moves states only
    under memory pressure); "sgd" = SGD without momentum (the Trainer's `sgd`).
    """
    import torch
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    with unset_fake_temporarily():
        if settings.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=1e-5, fused=True)
        if settings.optimizer in ("adamw-8bit", "paged-adamw-8bit"):
            import bitsandbytes as bnb

            return bnb.optim.AdamW8bit(params, lr=1e-5)
        return torch.optim.SGD(params, lr=1e-5)


def prime_optimizer(optimizer, trainable, tracker, *, keep_grads: bool) -> None:
    """One optimizer step on zero gradients so the states exist (steady state).

    With gradient accumulation the gradients of earlier micro-batches stay alive.
    """
    import torch

    with tracker.category("gradients", "setup"):
        for param in trainable:
            param.grad = torch.zeros_like(param)
    with tracker.category("optimizer", "setup"):
        optimizer.step()
    if not keep_grads:
        optimizer.zero_grad(set_to_none=True)


def track_positions(models, trainable, tracker) -> None:
    """Hooks that tell the tracker which decoder layer runs: first/second/inner/penultimate/last.

    Forward (and checkpoint recompute): a pre-hook per decoder layer; after the last layer
    the position is "post" (norm + LM head).  Backward without recompute fires no module
    hooks, so a layer's first landing gradient moves the position there.
    """
    trainable_ids = {id(p) for p in trainable}
    for model in models:
        layers = decoder_layers(model)
        for index, layer in enumerate(layers):
            position = layer_position(index, len(layers))
            layer.register_forward_pre_hook(lambda *_, p=position: tracker.set_position(p))
            if index == len(layers) - 1:
                layer.register_forward_hook(lambda *_: _after_last(tracker))
            for param in layer.parameters():
                if id(param) in trainable_ids:
                    param.register_post_accumulate_grad_hook(
                        lambda _, p=position: tracker.set_position(p))
    for param in trainable:
        param.register_post_accumulate_grad_hook(lambda p: tracker.register(p.grad, "gradients"))


def _after_last(tracker) -> None:
    if "forward" in tracker.phase:
        tracker.set_position("post")


def layer_position(index: int, count: int) -> str:
    if index == count - 1:
        return "last"
    if index == 0:
        return "first"
    if index == 1:
        return "second"
    return "penultimate" if index == count - 2 else "inner"


def decoder_layers(model):
    """The ModuleList of decoder layers (the longest ModuleList in the model)."""
    import torch

    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    return max(lists, key=len)


def run_step(policy, reference, optimizer, method: Method, settings: TrainSettings, tracker, *,
             autocast=None, device: str = "cpu") -> None:
    """Forward (+ DPO reference forward), backward, clip, optimizer step, zero_grad.

    `autocast`: the Trainer's mixed-precision dtype (accelerate wraps the forward in it).
    `device`: where the (real) model lives; fake traces use the CPU device.
    """
    import torch

    rows = settings.batch_size * (2 if method is Method.DPO else 1)  # DPO: chosen + rejected
    autocast = (torch.autocast(device, dtype=autocast) if autocast is not None
                else torch.autocast(device, enabled=False))
    with tracker.category("other", "inputs"):
        input_ids = torch.randint(0, policy.config.vocab_size, (rows, settings.seq_len), device=device)
    with tracker.category("activations", "forward", "pre"), autocast:
        out = policy(input_ids=input_ids, labels=input_ids, fused_lm_head=True, use_cache=False)
        loss = out.loss
    if method is Method.DPO:
        with tracker.category("activations", "reference forward", "pre"), autocast:
            loss = _dpo_loss(policy, reference, input_ids, out, settings)
    with tracker.category("activations", "backward", "post"):
        loss.backward()
        del loss, out
    with tracker.category("optimizer", "optimizer"):
        torch.nn.utils.clip_grad_norm_([p for p in policy.parameters() if p.requires_grad], 1.0)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _dpo_loss(policy, reference, input_ids, out, settings: TrainSettings):
    """trl DPOTrainer._compute_loss, sigmoid loss: reference log-probs under no_grad."""
    import torch
    import torch.nn.functional as F
    from trl.models.utils import disable_gradient_checkpointing
    from trl.trainer.utils import use_adapter

    with torch.no_grad(), disable_gradient_checkpointing(policy, {"use_reentrant": False}):
        if reference is None:  # peft: the base model is the reference
            with use_adapter(policy, adapter_name=None):
                ref = policy(input_ids=input_ids, labels=input_ids, fused_lm_head=True, use_cache=False)
        else:
            ref = reference(input_ids=input_ids, labels=input_ids, fused_lm_head=True, use_cache=False)
    chosen, rejected = out.log_probs.sum(dim=1).chunk(2)
    ref_chosen, ref_rejected = ref.log_probs.sum(dim=1).chunk(2)
    delta = (chosen - ref_chosen) - (rejected - ref_rejected)
    return -F.logsigmoid(settings.dpo_beta * delta).mean()
