"""Table 1 of estimate_accuracy: the estimator vs published measured peaks.

Reads benchmarks/data/calibration_points.csv (copied from the project's shared reference
material; each row cites its source).  Every row becomes one scenario by reading what the
row itself states, with these rules (no row is special-cased):

* units: `unit=GB(1e9)` rows are converted to GiB; `unit=GiB` kept; unspecified -> GiB
  (torch's own memory stats divide by 1024**3).
* metric: rows saying allocated/active are compared with our allocated peak; rows saying
  reserved (or not saying) with allocated x (1 + allocator reserve); rows read from a
  screenshot of the GPU's memory (a system monitor: NVML, as nvidia-smi) with that plus the
  CUDA context and NCCL buffers, which the device shows and torch's counters do not.
  Paged optimizer states live in CUDA unified memory, which torch's counters do not include.
* sequence length: a number is used as is; "variable" data with a stated truncation
  limit uses the limit (over a long run the longest batch reaches it); torchtune's April 2024
  alpaca rows use its builders' default truncation, 512 tokens (TORCHTUNE_2024_ALPACA_TOKENS);
  other unpacked Alpaca with no limit uses 1,024 tokens (assumption, flagged "var" in the
  table); tweets use 128.
* framework features stated in the row map to MemoryKnobs: torchtune's chunked
  cross-entropy (configs since the 2024-09 tables, and the optimization-flags rows from
  "+ Chunked Cross Entropy"), torch.compile, fusing the optimizer step into backward,
  activation offloading, FSDP/ZeRO-3 sharding.  torchtune and PEFT MetaMathQA LoRA use
  lora_dropout 0; the PEFT example scripts 0.1.  torchtune keeps adapters in the model dtype
  (bf16); PEFT upcasts them to fp32.  Precision: "bf16 mixed"/AMP rows are "amp" (fp32
  masters + autocast), plain or "pure" bf16 rows are pure bf16; losses are transformers'
  (full fp32 logits) unless the row uses torchtune's chunked cross-entropy; torchtune rows
  without it return fp32 logits, which recipes kept through backward before 2024-07-28
  (torchtune commit 8a98fbaa: loss "fp32-logits"; the Apr/May 2024 tables, PR #961 and the
  April 2024 tutorials) and free before it since ("fp32-logits-freed": the 2024-11
  optimization-flags table).
* rows we cannot model are listed with the reason and left out of the statistics:
  encoder-decoder models (T0/mT0), LoRA variants other than LoRA (DoRA, LoHa, VeRA, LoRA-FA), unstated batch sizes, ranges that include
  checkpoint saving.
* rows whose settings the source itself leaves open are left out too: the torchtune
  2024-09 table says its 4090 and A6000 rows differ in memory flags without saying which, so
  both rows of every such model/method pair are unknown (neither is preferred).
* OOM rows ("value = GPU capacity") check the fit verdict only, at the smallest setting
  the row allows (batch 1): if even that does not fit, "OOM" is predicted correctly.
  Every measured row on a GPU of known size must also be predicted to fit.

Rows are scored but marked *contradicted* -- reported in the table and in the statistics of
all rows, and left out of the statistics of consistent rows -- when their own source or
plain arithmetic says the stated setting is not what was measured, never because of our
error on them:
* the source's maintainers could not reproduce the value (their reproductions are rows of
  their own: torchtune PR #961 for the 24.1 GB single-GPU full fine-tune);
* the source says the model alone had reserved >= 95% of the peak before training began
  (torchtune's QLoRA tutorial: 9.13 of 9.29 GB "after model init"): reserved memory never
  shrinks, so the peak measures the loader's transients, not the training step;
* the measurement is below `lower_bound_gib`, what the stated setting must hold at once in
  any framework (fixed-length rows only: a variable length has no lower bound).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from advisor.estimate import estimate
from advisor.hardware import Hardware, resolve_hardware
from advisor.memory import ALLOCATOR_RESERVE, MemoryKnobs, quantized_weight_bytes
from advisor.models import resolve_model
from tunewise.errors import TunewiseError
from tunewise.methods import Method
from tunewise.settings import TrainSettings

CSV_PATH = Path(__file__).parent / "data" / "calibration_points.csv"
GB_TO_GIB = 1e9 / 2**30
ALPACA_TOKENS = 1024
# torchtune's alpaca builders truncated at max_seq_len=512 by default from 2024-03-30 (commit
# 73647e26, "Configure max_seq_len in InstructDataset") until the SFTDataset refactor of
# 2024-08-15 (8295cc35); the April 2024 configs the rows name did not override it.
TORCHTUNE_2024_ALPACA_TOKENS = 512
# torchtune sources whose figures were written before that refactor: the April 2024 README
# table and the tutorials measured that month (lora_finetune.rst ff594c23 and qlora_finetune.rst
# 0914d5cf, 2024-04-15; llama3.rst 20747cd8, 2024-04-18; `git log -S` on each figure).
TORCHTUNE_SPRING_2024 = ("README (Apr 2024 table)", "tutorials/lora_finetune.rst", "tutorials/qlora_finetune.rst",
                         "tutorials/llama3.rst")
TWEET_TOKENS = 128
TORCHTUNE_FLAGS = ("Baseline", "Packed", "Compile", "Chunked Cross Entropy", "Activation Checkpointing",
                   "Fuse optimizer", "Activation Offloading", "8-bit AdamW")


@dataclass
class Scenario:
    index: int
    label: str
    method: Method
    measured_gib: float | None
    metric: str  # "allocated" | "reserved" | "device"
    oom: bool = False
    skip: str | None = None
    variable_seq: bool = False
    settings: TrainSettings | None = None
    knobs: MemoryKnobs = field(default_factory=MemoryKnobs)
    model: str = ""
    gpus: int = 1
    hardware: Hardware | None = None
    estimate_gib: float | None = None
    fits: bool | None = None
    contradicted: str | None = None  # why the stated setting cannot be what was measured

    @property
    def error(self) -> float | None:
        if self.measured_gib is None or self.estimate_gib is None or self.oom:
            return None
        return (self.estimate_gib - self.measured_gib) / self.measured_gib


def load_rows(path: Path = CSV_PATH) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def scenarios(path: Path = CSV_PATH) -> list[Scenario]:
    """One evaluated Scenario per CSV row."""
    rows = load_rows(path)
    out = [_parse(i, row) for i, row in enumerate(rows)]
    _skip_unstated_flags(out, rows)
    for sc in out:
        if sc.skip is None:
            _evaluate(sc)
    return out


def _skip_unstated_flags(scs: list[Scenario], rows: list[dict[str, str]]) -> None:
    """A note saying "which memory flags differed between A and B rows is NOT stated" leaves
    the setting of every row of that model and method on A or B unknown (see the docstring)."""
    for sc, row in zip(scs, rows, strict=True):
        said = re.search(r"which memory flags differed between (\w+) and (\w+) rows is NOT stated",
                         row["throughput_note"])
        if sc.skip or not said:
            continue
        pair = [r for r in rows if r["model"] == row["model"] and r["method"] == row["method"]
                and r["source"] == row["source"]]
        gpus = {g for g in said.groups() if any(g in r["gpu"] for r in pair)}
        if len(gpus) == 2 and any(g in row["gpu"] for g in gpus):
            sc.skip = f"memory flags of the {' vs '.join(said.groups())} rows not stated"


def _parse(i: int, row: dict[str, str]) -> Scenario:
    text = " ".join(row.values())
    method = Method(row["method"])
    label = f"{row['model'].split('/')[-1]} {method} bs{row['batch_size'].split(' ')[0]} {row['gpu'].split(' ')[0]}"
    oom = row["measured_or_estimated"].startswith("measured_OOM")
    sc = Scenario(i, label, method, _measured(row), _metric(row), oom=oom)
    sc.skip = _skip_reason(row, text, oom)
    if sc.skip:
        return sc
    try:
        sc.model = resolve_model(row["model"]).name
    except TunewiseError:
        sc.skip = "model not in catalog"
        return sc
    seq, sc.variable_seq = _seq_len(row["seq_len"], row["source"])
    batch, accum = _batch(row["batch_size"], oom)
    rank, targets, dropout = _lora(row, text)
    gpus = int(row["num_gpus"])
    sharded = any(k in text for k in ("FSDP", "ZeRO-3")) and gpus > 1
    sc.settings = TrainSettings(
        batch_size=batch, grad_accum=accum, seq_len=seq if not oom else 64,
        gradient_checkpointing=row["grad_checkpointing"].lower().startswith(("yes", "config default")),
        lora_rank=rank, lora_targets=targets, lora_dropout=dropout,
        optimizer=_optimizer(row["optimizer"]), precision=_precision(row["precision"]),
        zero_stage=3 if sharded else 0,
        strategy=("deepspeed" if "DeepSpeed" in text else "fsdp") if sharded else "ddp",
        cpu_offload=_cpu_offload(row, text),
    )
    sc.knobs = _knobs(row, text)
    sc.gpus = gpus
    sc.hardware = _hardware(row["gpu"])
    disputed = re.search(r"could not reproduce ([\d.]+)GB single-GPU full FT", row["throughput_note"])
    if disputed and method is Method.FULL and gpus == 1 and row["measured_peak_gb"].strip() == disputed.group(1):
        sc.contradicted = "its maintainers could not reproduce it (their reproductions are rows of their own)"
    init = re.search(r"peak reserved after model init ([\d.]+)GB", row["throughput_note"])
    stated = _stated_value(row)
    if init and not oom and stated and float(init.group(1)) >= 0.95 * stated:  # the same source's unit
        sc.contradicted = (f"{init.group(1)} GB were reserved after model init, before training: "
                           "the peak is the loader's, not the training step's")
    return sc


def _skip_reason(row: dict[str, str], text: str, oom: bool) -> str | None:
    if row["model"].split("/")[-1].lower().startswith(("t0", "mt0")):
        return "encoder-decoder model (not a causal LM)"
    variant = re.search(r"PEFT variant=(\w+)/[^ ;]*?(dora|lorafa)?[ ;]", row["throughput_note"])
    if variant and (variant.group(1) != "lora" or variant.group(2)):
        if variant.group(1) != "full":
            return f"PEFT variant {variant.group(1)}{'-' + variant.group(2) if variant.group(2) else ''} not modelled"
    if "LoRA-FA" in row["optimizer"]:
        return "LoRA-FA not modelled"
    if "not stated" in row["batch_size"] and not oom:
        return "batch size not stated"
    if "-" in row["measured_peak_gb"] and "FULL_STATE_DICT" in text:
        return "range includes checkpoint saving"
    return None


def _cpu_offload(row: dict[str, str], text: str) -> bool:
    """Parameters, gradients and optimizer states in CPU RAM (DeepSpeed offload, FSDP
    CPUOffload), as the row states it; activation offloading is a different knob."""
    optimizer = row["optimizer"].lower().replace("no offload", "")
    stated = "CPU offload" in text and not any(x in text for x in ("disabled", "activation offload"))
    return "offload" in optimizer or stated


def _measured(row: dict[str, str]) -> float | None:
    value = _stated_value(row)
    if value is None:
        return None
    return value * GB_TO_GIB if "GB(1e9)" in row["throughput_note"] else value


def _stated_value(row: dict[str, str]) -> float | None:
    """The measured value in the row's own unit ("~16" -> 16, a range "72-80" -> its middle)."""
    nums = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", row["measured_peak_gb"])]
    return sum(nums) / len(nums) if nums else None


def _metric(row: dict[str, str]) -> str:
    text = (row["measured_or_estimated"] + " " + row["throughput_note"]).lower()
    if "screenshot" in row["measured_or_estimated"]:
        return "device"
    if "allocated" in text and "reserved similar" not in text or "active" in text:
        return "allocated"
    return "reserved"


def _seq_len(raw: str, source: str) -> tuple[int, bool]:
    if "tweet" in raw:
        return TWEET_TOKENS, True
    limit = re.search(r"(\d{3,5})", raw)
    if "variable" in raw or "unpacked" in raw:
        if limit and "much shorter" not in raw:
            return int(limit.group(1)), True
        if "alpaca" in raw and "torchtune" in source and any(s in source for s in TORCHTUNE_SPRING_2024):
            return TORCHTUNE_2024_ALPACA_TOKENS, True
        return ALPACA_TOKENS, True
    return int(limit.group(1)), False


def _batch(raw: str, oom: bool) -> tuple[int, int]:
    if "not stated" in raw:
        return 1, 1  # OOM rows: the smallest setting
    batch = int(re.match(r"\d+", raw).group(0))
    accum = re.search(r"GA (\d+)", raw)
    return (1 if oom else batch), (int(accum.group(1)) if accum else 1)


def _lora(row: dict[str, str], text: str) -> tuple[int, str, float]:
    raw = row["lora_rank"]
    rank = int(re.match(r"\d+", raw).group(0)) if re.match(r"\d+", raw) else 8
    targets = "q_proj,v_proj"
    listed = re.search(r"targets=\[([^\]]*)\]", text)
    if listed:
        targets = ",".join(re.findall(r"'(\w+)'", listed.group(1)))
    elif "all-linear" in raw:
        targets = "all-linear"
    elif "all layers" in raw:
        targets = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,lm_head"
    elif "MLP" in raw:
        attn = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "output_proj": "o_proj"}
        names = [attn[n] for n in re.findall(r"\b(q|k|v|o|output_proj)\b", raw.split("+")[0])]
        targets = ",".join([*names, "gate_proj", "up_proj", "down_proj"])
    elif "(q,k,v" in raw:
        targets = "q_proj,k_proj,v_proj"
    if "bloom" in row["model"]:
        targets = "query_key_value"  # PEFT's default target for BLOOM
    dropout = 0.0 if ("torchtune" in row["source"] or "MetaMathQA" in row["source"]) else 0.1
    return rank, targets, dropout


def _optimizer(raw: str) -> str:
    low = raw.lower()
    if "paged" in low:
        return "paged-adamw-8bit"  # paged: states outside torch's counters either way
    if "8-bit" in low or "8bit" in low:
        return "adamw-8bit"
    return "adamw"


def _precision(raw: str) -> str:
    """The row's training precision in tunewise's terms (advisor/memory.py): "bf16 mixed"/AMP
    = fp32 masters + autocast ("amp"); plain or "pure" bf16 = pure bf16."""
    low = raw.lower()
    if "fp32" in low or low.startswith("not stated"):
        return "fp32"
    if "mixed" in low or ("amp" in low and "no amp" not in low):
        return "amp"
    return "bf16"


def _knobs(row: dict[str, str], text: str) -> MemoryKnobs:
    torchtune = "torchtune" in row["source"]
    flags_table = "Optimization flags" in row["source"]
    technique = re.search(r"technique='\+? ?([^']+)'", text)
    level = _flag_level(technique.group(1)) if technique and flags_table else -1
    adapter_row = row["method"] in ("lora", "qlora")
    chunked = torchtune and ("30b8519" in text or "bd2a0fc" in row["url_or_path"] and "tutorials" not in row["url_or_path"])
    if flags_table:
        chunked = adapter_row or level >= 3
    compiled = "compile on" in text.lower() or (flags_table and (adapter_row or level >= 2))
    in_bwd = "optimizer_in_bwd" in text and not (flags_table and adapter_row)
    attention = "flash" if "flash-attn on" in text else "sdpa"
    # torchtune without chunked CE: its models return fp32 logits; recipes kept them through
    # backward until 2024-07-28 (the Apr/May 2024 tables, PR #961, the April 2024 tutorials)
    # and free them since (the 2024-11 optimization-flags table) -- activations.py
    loss = "hf"
    if torchtune:
        loss = "chunked" if chunked else ("fp32-logits-freed" if flags_table else "fp32-logits")
    return MemoryKnobs(attention=attention, loss=loss, compiled=compiled,
                       optimizer_in_backward=in_bwd, activation_offload="activation offload" in text,
                       # torchtune keeps LoRA in the model dtype (the precision says it); PEFT
                       # upcasts adapters to fp32 even on a pure-bf16 base (autocast_adapter_dtype)
                       adapter_bytes=None if torchtune else 4,
                       # torchtune's NF4 is torchao's NF4Tensor: FSDP2 shards its constants too
                       quant_constants_sharded=torchtune)


def _flag_level(technique: str) -> int:
    for level, name in enumerate(TORCHTUNE_FLAGS):
        if technique.startswith(name):
            return level
    return -1


def _hardware(raw: str) -> Hardware | None:
    if raw.startswith("not stated"):
        return None
    size = re.search(r"(\d+)\s*GB", raw)
    name = raw.split(" ")[0].split("-")[0].lower()
    try:
        hw = resolve_hardware(name, float(size.group(1)) if size else None)
    except TunewiseError:
        return None
    if not size and name == "a100":
        return None  # "A100 (memory size not stated)": 40 or 80 GB
    return hw


def _evaluate(sc: Scenario) -> None:
    hw = sc.hardware or resolve_hardware("generic-gpu", 1000.0)
    est = estimate(resolve_model(sc.model), sc.method, hw, sc.settings, gpus=sc.gpus, knobs=sc.knobs)
    mem = est.memory
    allocated = mem.allocated - mem.pageable
    sc.estimate_gib = allocated if sc.metric == "allocated" else allocated * (1 + ALLOCATOR_RESERVE)
    if sc.metric == "device":
        sc.estimate_gib = mem.total - mem.pageable  # + CUDA context and NCCL buffers
    sc.fits = est.fits if sc.hardware is not None else None
    if sc.measured_gib is not None and not sc.oom and not sc.variable_seq and sc.contradicted is None:
        bound = lower_bound_gib(sc)
        if sc.measured_gib < bound:
            sc.contradicted = (f"measured {sc.measured_gib:.1f} GiB < {bound:.1f} GiB that the stated "
                               "weights and saved layer inputs alone need")


def lower_bound_gib(sc: Scenario) -> float:
    """GiB the stated setting holds at once in any framework, per GPU:

        weights / shards + layers x batch x seq x hidden x 2 bytes

    The weights in 16 bits (NF4 + constants for QLoRA, `quantized_weight_bytes`), divided
    over the GPUs under FSDP/ZeRO-3, and 0 when they are offloaded to CPU RAM (ZeRO-3 or FSDP
    with CPU offload keeps the shards there).  Backward needs every layer's input: activation
    checkpointing keeps exactly that and nothing more (Chen et al. 2016, arXiv:1604.06174,
    section 3), without it more is kept; with activation offloading it sits in CPU RAM, so
    it is not counted.  No gradients, optimizer states, logits or allocator reserve: every
    real peak is above this."""
    spec = resolve_model(sc.model)
    s = sc.settings
    if sc.method is Method.QLORA:
        weights = quantized_weight_bytes(spec, "bf16", sc.knobs.double_quant)
    else:
        weights = spec.params * 2.0
    shards = sc.gpus if s.zero_stage == 3 else 1
    if s.zero_stage == 3 and s.cpu_offload:
        weights = 0.0
    saved = 0.0 if sc.knobs.activation_offload else spec.n_layers * s.batch_size * s.seq_len * spec.hidden * 2.0
    return (weights / shards + saved) / 2**30


def with_knobs(sc: Scenario, **changes) -> Scenario:
    """A copy of a scenario with changed knobs (for ablations)."""
    return replace(sc, knobs=replace(sc.knobs, **changes))
