"""Scale-out over several GPUs and nodes: what each strategy shards, what it sends per step.

Strategies (TrainSettings.strategy / zero_stage / cpu_offload; runners/accelerate_config.py
launches the same ones through accelerate):

    ddp            every GPU holds all weights, gradients and optimizer states
    deepspeed 1/2  ZeRO-1 shards the optimizer states (with DeepSpeed's fp32 masters),
                   ZeRO-2 also the gradients
    fsdp 2         SHARD_GRAD_OP: gradients and optimizer states sharded; the weights stay
                   gathered from the forward to the backward
    fsdp/ds 3      FULL_SHARD / ZeRO-3: weights sharded too, each layer all-gathered for
                   its forward and again for its backward
    offload        DeepSpeed: optimizer states, masters and gradients in CPU RAM (ZeRO-1/2/3,
                   also on one GPU: ZeRO-Offload), the weights too with ZeRO-3; FSDP:
                   weights, gradients and the optimizer step on the CPU (CPUOffload)

Per-GPU model states (Rajbhandari et al., "ZeRO", arXiv:1910.02054 §5.1-5.3, Fig. 1):
(2+2+K)Psi for DDP, 2Psi + 2Psi + K Psi/N for ZeRO-1, 2Psi + (2+K)Psi/N for ZeRO-2 and
(2+2+K)Psi/N for ZeRO-3 (K = 12 for mixed-precision Adam).  advisor/memory_methods.py
applies the divisors below, plus what the papers leave out: the layers gathered at once
(FSDP: the current and the prefetched one, Zhao et al., "PyTorch FSDP", arXiv:2304.11277
§3.2-3.3; DeepSpeed: at most stage3_max_live_parameters = 1e9), the gradient buffer that
reduce-scatter reads (FSDP: one layer's unsharded gradient; DeepSpeed: reduce_bucket_size,
transformers "auto" = hidden^2), and the bitsandbytes quantisation constants, which are
not parameters and so are replicated on every GPU (QLoRA under FSDP/ZeRO-3 stores the
packed 4-bit weights in the compute dtype, `bnb_4bit_quant_storage`, so they shard like
any other weight: Answer.AI fsdp_qlora, transformers "FSDP-QLoRA").

Communication per GPU and step (ZeRO §7; ring collectives as NCCL counts them, nccl-tests
PERFORMANCE.md: an all-reduce moves 2(N-1)/N x S bytes per GPU, a reduce-scatter or an
all-gather (N-1)/N x S):
    ddp / ZeRO-1   one all-reduce of the gradients per optimizer step: 2(N-1)/N x G
    ZeRO-2         a reduce-scatter of the gradients per micro-step and an all-gather of
                   the updated weights per optimizer step (ZeRO §7.2.1: same volume as DDP)
    ZeRO-3 / FSDP  per micro-step: all-gather the weights in the forward and in the
                   backward, reduce-scatter the gradients: (2P + G)(N-1)/N, 1.5x DDP for
                   full fine-tuning (ZeRO §7.2.2; FSDP paper §3)
    offload        the gradients to the CPU and the updated weights back over PCIe per
                   optimizer step (ZeRO-Offload, arXiv:2101.06840 §4); with offloaded
                   weights also each micro-step's all-gather inputs
With offload the optimizer step runs on the CPU while the GPUs wait: every process of a
node updates its shard at once, so the node streams trainable / nodes parameters through
its memory, HOST_ADAM_BYTES each, at HOST_MEMORY_GBS (a roofline: a fused CPU AdamW is
memory-bound; PyTorch's unfused one is slower).
G = trainable parameters x gradient bytes; P = the weights as stored on the GPU (16-bit,
or packed 4-bit for QLoRA).  Bandwidth: the intra-node link of the catalog
(`interconnect_gbs`); across nodes at the slower of that and the node's network, times
COMM_EFFICIENCY.  The node's network is all its NICs together: NCCL runs one ring per
channel, each crossing the network through a different NIC, so the bus bandwidth of a
collective over nodes is NICs x NIC speed, not one NIC's (NVIDIA/nccl#812, a maintainer:
"On an Nvidia DGX-A100 system we have 8x200Gbit/s IB cards and we measure 192GB/s
AllReduce BusBW"; nccl-tests#152: 4 HDR NICs = "theoretical 100 GB/s").  DGX-style nodes
have one NIC per GPU; a plain Ethernet port serves the whole node.  Overlap: DDP all-reduces gradient buckets
during the backward and FSDP/ZeRO-3 prefetch the next layer's all-gather (FSDP paper
§3.3), so communication hides behind compute: a step takes the longer of the two
(assumption: full overlap; only the excess shows in the time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from advisor.compute import CommPlan
from advisor.hardware import Hardware
from advisor.models import ModelSpec
from tunewise.errors import InputError
from tunewise.methods import Method
from tunewise.settings import TrainSettings

if TYPE_CHECKING:
    from advisor.memory import MemoryKnobs

# GPUs per node when a proposal needs more than one node (HGX/DGX servers hold 8).
GPUS_PER_NODE = 8
# Share of a link's peak that a ring collective sustains (assumption; nccl-tests all-reduce
# bus bandwidth on NVSwitch systems reaches 70-85% of the one-direction NVLink peak).
COMM_EFFICIENCY = 0.7
# Network between nodes: GB/s of one NIC in one direction, whether each GPU has its own NIC
# (else one serves the node), and the source.
INTER_NODE = {
    "infiniband-ndr": (50.0, True, "NVIDIA DGX H100 datasheet (2023): 8 x ConnectX-7 400 Gb/s, one per GPU"),
    "infiniband-hdr": (25.0, True, "NVIDIA DGX A100 datasheet (2020): 8 x ConnectX-6 200 Gb/s HDR, one per GPU"),
    "ethernet-100g": (12.5, False, "one 100 GbE port per node shared by its GPUs (IEEE 802.3ba)"),
}
DEFAULT_INTER_NODE = "infiniband-ndr"
# GPU <-> CPU link for offload: PCIe of the GPU's generation (SXM parts sit on PCIe 4/5 hosts).
HOST_LINK_GBS = {"nvlink3": 32.0, "nvlink4": 64.0, "nvlink5": 64.0, "infinity-fabric": 64.0}
FALLBACK_LINK_GBS = 32.0  # a device without a catalog link: assume PCIe 4.0 x16
# A fused AdamW step on the CPU reads the fp32 weight, gradient and both moments and writes
# back the weight and the moments: 7 x 4 bytes per parameter.
HOST_ADAM_BYTES = 28
# Sustained memory bandwidth of a GPU node's host, GB/s (assumption, ~70% of peak): servers
# with NVLink GPUs have two sockets of 8 DDR5-4800 channels (DGX H100: 2 x Xeon 8480C,
# 2 x 307 GB/s peak); PCIe-card workstations, one socket of 4 channels.
HOST_MEMORY_GBS = {"server": 300.0, "workstation": 100.0}
# DeepSpeed ZeRO-3 keeps at most this many parameters gathered (stage3_max_live_parameters).
DEEPSPEED_MAX_LIVE_PARAMS = 1e9
# Host RAM offload may fill, per node, as a multiple of the node's GPU memory (assumption: DGX
# H100 has 2 TB for 640 GB of GPU memory, 3.2x; workstations often less).
HOST_RAM_PER_GPU_MEMORY = 2.0
# Why each level of sharding, least first: the advisor's zero_stage rule (advisor/hyperparams.py)
# and its more-GPU fixes (advisor/fixes.py) give the same reasons.
SHARDING_WHY = {
    0: "plain data parallel (DDP) fits: every GPU holds the weights, gradients and optimizer states, "
       "and only gradients are all-reduced (least communication)",
    2: "the weights fit on each GPU but not with their gradients and optimizer states: ZeRO-2 shards those "
       "(same traffic as DDP, ZeRO paper sec. 7.2.1)",
    3: "sharding the gradients and optimizer states is not enough: full sharding (FSDP / ZeRO-3) shards "
       "the weights too (1.5x DDP's traffic)",
}
OFFLOAD_WHY = "weights, gradients and optimizer states go to CPU RAM (last resort: PCIe traffic every step)"


@dataclass(frozen=True)
class Sharding:
    """Divisors and offload flags of one layout (module docstring)."""

    gpus: int
    stage: int  # effective ZeRO stage: 0 (DDP) .. 3
    strategy: str  # ddp | deepspeed | fsdp
    offload: bool

    @classmethod
    def of(cls, settings: TrainSettings, gpus: int) -> Sharding:
        stage = settings.zero_stage
        if settings.strategy == "fsdp" and stage == 0:
            stage = 3  # accelerate: FSDP without a stage is FULL_SHARD
        if gpus == 1 and not settings.cpu_offload:
            stage = 0  # one GPU shards nothing
        offload = settings.cpu_offload and stage >= 1  # DDP cannot offload
        return cls(gpus, stage, settings.strategy, offload)

    @property
    def optimizer(self) -> int:
        return self.gpus if self.stage >= 1 else 1

    @property
    def gradients(self) -> int:
        return self.gpus if self.stage >= 2 else 1

    @property
    def weights(self) -> int:
        """Divisor of the stored weights (FSDP SHARD_GRAD_OP stores shards too, and gathers all)."""
        return self.gpus if self.stage >= 3 or self.keeps_unsharded_weights else 1

    @property
    def ddp_buckets(self) -> bool:
        """DDP's flat all-reduce buckets hold a second copy of the gradients."""
        return self.gpus > 1 and self.stage == 0

    @property
    def offload_weights(self) -> bool:
        return self.offload and self.stage >= 3

    @property
    def keeps_unsharded_weights(self) -> bool:
        """FSDP SHARD_GRAD_OP keeps every layer gathered from the forward to the backward."""
        return self.strategy == "fsdp" and self.stage == 2 and self.gpus > 1

    def gathered_params(self, spec: ModelSpec) -> float:
        """Parameters all-gathered at once under ZeRO-3 (module docstring)."""
        if self.stage < 3 or self.gpus == 1 and not self.offload_weights:
            return 0.0
        two_layers = 2 * layer_params(spec)
        return min(two_layers, DEEPSPEED_MAX_LIVE_PARAMS) if self.strategy == "deepspeed" else two_layers

    def reduce_buffer_params(self, spec: ModelSpec, trainable: float) -> float:
        """Gradient elements reduce-scatter (or, offloading, the copy to CPU) reads at once (ZeRO-2/3)."""
        if self.stage < 2 or (self.gpus == 1 and not self.offload):
            return 0.0
        bucket = layer_params(spec) if self.strategy == "fsdp" else float(spec.hidden) ** 2
        return min(bucket, trainable)

    def label(self) -> str:
        if self.stage == 0:
            return "DDP" if self.gpus > 1 else "one device"
        name = {"fsdp": "FSDP " + ("FULL_SHARD" if self.stage == 3 else "SHARD_GRAD_OP"),
                "deepspeed": f"DeepSpeed ZeRO-{self.stage}"}.get(self.strategy, f"ZeRO-{self.stage}")
        return name + (" + CPU offload" if self.offload else "")


def layer_params(spec: ModelSpec) -> float:
    """Parameters of one decoder layer (what FSDP wraps as a unit)."""
    return (spec.params - spec.embedding_params - spec.lm_head_params) / spec.n_layers


def check_layout(gpus: int, nodes: int) -> None:
    """--num-gpus counts every GPU (accelerate's num_processes), spread evenly over --num-nodes."""
    if nodes <= 0:
        raise InputError(f"must be positive, got {nodes}", field="num_nodes")
    if gpus % nodes:
        raise InputError(f"{gpus} GPUs do not split evenly over {nodes} nodes", field="num_nodes")


def nodes_for(gpus: int, nodes: int = 1) -> int:
    """Nodes a layout spans: as given, or enough nodes of GPUS_PER_NODE."""
    return max(nodes, math.ceil(gpus / GPUS_PER_NODE))


def gpus_per_node(gpus: int, nodes: int) -> int:
    """GPUs on each node (evenly spread; check_layout refuses an uneven split)."""
    return math.ceil(gpus / nodes)


def link_gbs(hardware: Hardware, gpus: int, nodes: int, inter_node: str = DEFAULT_INTER_NODE) -> float:
    """Sustained bus bandwidth, GB/s, of a collective over `gpus` GPUs on `nodes` nodes: what
    each GPU's share of the traffic moves at (module docstring)."""
    if gpus <= 1:
        return math.inf
    intra = hardware.interconnect_gbs or FALLBACK_LINK_GBS
    if nodes > 1:
        intra = min(intra, node_network_gbs(inter_node, gpus_per_node(gpus, nodes)))
    return intra * COMM_EFFICIENCY


def node_network_gbs(inter_node: str, gpus_per_node: int) -> float:
    """GB/s one node sends over the network with all its NICs (module docstring)."""
    nic_gbs, nic_per_gpu, _ = INTER_NODE[inter_node]
    return nic_gbs * (gpus_per_node if nic_per_gpu else 1)


def host_link_gbs(hardware: Hardware) -> float:
    return HOST_LINK_GBS.get(hardware.interconnect, hardware.interconnect_gbs or FALLBACK_LINK_GBS) * COMM_EFFICIENCY


@dataclass(frozen=True)
class Traffic:
    """Bytes one GPU sends per micro-step and per optimizer step (module docstring)."""

    micro: float = 0.0
    step: float = 0.0
    host_micro: float = 0.0  # over PCIe to/from the CPU (offload)
    host_step: float = 0.0
    host_optimizer_params: float = 0.0  # parameters each process updates on the CPU per step


def traffic(shard: Sharding, *, trainable: float, grad_bytes: float, stored_bytes: float,
            trainable_stored_bytes: float) -> Traffic:
    """stored_bytes: all weights as the GPU holds them (16-bit or packed 4-bit);
    trainable_stored_bytes: the trainable ones in the dtype they are gathered in."""
    n = shard.gpus
    f = (n - 1) / n if n > 1 else 0.0
    grads = trainable * grad_bytes
    if shard.stage >= 3:
        out = Traffic(micro=f * (2 * stored_bytes + grads))
    elif shard.stage == 2:
        out = Traffic(micro=f * grads, step=f * trainable_stored_bytes)
    else:
        out = Traffic(step=2 * f * grads)
    if not shard.offload:
        return out
    host_step = (grads + trainable_stored_bytes) / n  # gradients down, updated weights up
    host_micro = 2 * stored_bytes / n if shard.offload_weights else 0.0  # shards up for fwd + bwd
    return Traffic(out.micro, out.step, host_micro, host_step, host_optimizer_params=trainable / n)


def step_traffic(spec: ModelSpec, method: Method, settings: TrainSettings, shard: Sharding, *,
                 trainable: float, with_adapter: bool, knobs: MemoryKnobs) -> Traffic:
    """The bytes of `traffic` for one configuration (P: the weights as the GPU stores them)."""
    from advisor.memory import adapter_weight_bytes, compute_bytes, master_bytes
    from advisor.memory_methods import base_weight_bytes

    cb = compute_bytes(settings.precision)
    if with_adapter:
        shardable, _ = base_weight_bytes(spec, method, settings, knobs)
        ab = adapter_weight_bytes(method, settings.precision, knobs)
        return traffic(shard, trainable=trainable, grad_bytes=ab, stored_bytes=shardable + trainable * ab,
                       trainable_stored_bytes=trainable * ab)
    stored = spec.params * cb
    if method is Method.DPO and not knobs.precompute_reference:
        stored *= 2  # the frozen reference is sharded and gathered like the policy
    return traffic(shard, trainable=trainable, grad_bytes=master_bytes(settings.precision), stored_bytes=stored,
                   trainable_stored_bytes=trainable * cb)


def comm_plan(t: Traffic, hardware: Hardware, *, grad_accum: int, gpus: int, nodes: int,
              inter_node: str = DEFAULT_INTER_NODE) -> CommPlan:
    """Hours each step's traffic takes on the links (before overlap with compute)."""
    ring = link_gbs(hardware, gpus, nodes, inter_node) * 1e9 * 3600
    host = host_link_gbs(hardware) * 1e9 * 3600
    node_params = t.host_optimizer_params * gpus_per_node(gpus, nodes)
    return CommPlan(hours_per_micro_step=t.micro / ring + t.host_micro / host, grad_accum=grad_accum,
                    hours_per_step=t.step / ring + t.host_step / host,
                    host_optimizer_hours_per_step=node_params * HOST_ADAM_BYTES / (host_memory_gbs(hardware) * 1e9)
                    / 3600)


def host_memory_gbs(hardware: Hardware) -> float:
    """The host's sustained memory bandwidth, by the class of server the GPU sits in."""
    return HOST_MEMORY_GBS["server" if (hardware.interconnect or "").startswith(("nvlink", "infinity"))
                           else "workstation"]


def host_ram_gib_needed(offloaded_gib_per_gpu: float, gpus: int, nodes: int) -> float:
    """CPU RAM per node that offload fills."""
    return offloaded_gib_per_gpu * gpus / nodes


def host_ram_ok(mem, hardware: Hardware, gpus: int, nodes: int) -> bool:
    """Whether what CPU offload moves to CPU RAM fits the RAM assumed per node."""
    return host_ram_gib_needed(mem.offloaded, gpus, nodes) <= host_ram_gib_assumed(hardware, gpus, nodes)


def host_ram_gib_assumed(hardware: Hardware, gpus: int, nodes: int) -> float:
    return HOST_RAM_PER_GPU_MEMORY * hardware.memory_gib * gpus / nodes


def layout_assumptions(shard: Sharding, method: Method, hardware: Hardware, timing, *, gpus: int, nodes: int,
                       inter_node: str = DEFAULT_INTER_NODE) -> list[str]:
    """The estimate's lines about the layout: what is sharded, the links, the communication time."""
    if gpus == 1 and not shard.offload:
        return []
    if method.value == "prompt":
        return [f"{gpus} GPUs: evaluation spreads the layers over them (device_map=\"auto\"), which run one "
                "after another: memory is per GPU, no speed-up"]
    lines = [f"{gpus} GPUs on {nodes} node(s), {shard.label()}: memory is per GPU "
             f"(ZeRO arXiv:1910.02054 sharding; FSDP arXiv:2304.11277)" + _sharded_what(shard)]
    if method.value == "qlora" and shard.stage >= 3:
        lines.append("QLoRA sharded: bnb_4bit_quant_storage = the compute dtype, so the packed 4-bit weights "
                     "shard like 16-bit ones; their quantisation constants stay on every GPU")
    if gpus > 1:
        src = hardware.interconnect_source or f"no link on file: assumed PCIe 4.0 x16, {FALLBACK_LINK_GBS:g} GB/s"
        link = f"{hardware.interconnect or 'pcie'} {hardware.interconnect_gbs or FALLBACK_LINK_GBS:g} GB/s per GPU ({src})"
        if nodes > 1:
            net = node_network_gbs(inter_node, gpus_per_node(gpus, nodes))
            link += (f"; between nodes {inter_node} {net:g} GB/s per node, all NICs ({INTER_NODE[inter_node][2]}; "
                     "NCCL spreads its rings over them, NVIDIA/nccl#812); collectives run at the slower")
        lines.append(f"links: {link}; x{COMM_EFFICIENCY} sustained")
    if timing is not None and timing.comm_hours:
        lines.append(f"communication {timing.comm_hours:.3g} h ("
                     + ("ring all-reduce 2(N-1)/N x gradient bytes per step" if shard.stage < 2 else
                        "reduce-scatter per micro-step" if shard.stage == 2 else
                        "all-gather of the weights in forward and backward + reduce-scatter, per micro-step")
                     + (" + PCIe offload traffic" if shard.offload else "")
                     + f"); overlapped with compute, {timing.exposed_comm_hours:.3g} h of it shows in the time")
    if timing is not None and timing.host_optimizer_hours:
        lines.append(f"CPU optimizer steps {timing.host_optimizer_hours:.3g} h (GPUs wait): {HOST_ADAM_BYTES} B per "
                     f"parameter through the host's memory at {host_memory_gbs(hardware):g} GB/s per node "
                     "(assumed; a memory-bound fused AdamW)")
    return lines


def _sharded_what(shard: Sharding) -> str:
    what = {0: "; nothing sharded", 1: "; optimizer states sharded", 2: "; optimizer states and gradients sharded",
            3: "; weights, gradients and optimizer states sharded"}[shard.stage]
    if shard.offload:
        what += "; optimizer states and gradients in CPU RAM" + (" with the weights" if shard.offload_weights else "")
    return what


def layout_warnings(shard: Sharding, mem, hardware: Hardware, gpus: int, nodes: int,
                    settings: TrainSettings) -> list[str]:
    notes = []
    if settings.cpu_offload and shard.stage == 0:
        notes.append("CPU offload needs ZeRO/FSDP sharding (--zero-stage 2 or 3, or --strategy fsdp): ignored with DDP")
    if shard.offload:
        needed = host_ram_gib_needed(mem.offloaded, gpus, nodes)
        assumed = host_ram_gib_assumed(hardware, gpus, nodes)
        notes.append(f"CPU offload holds about {needed:,.0f} GiB of CPU RAM per node"
                     + (f", more than the {assumed:,.0f} GiB assumed ({HOST_RAM_PER_GPU_MEMORY:g}x the node's GPU "
                        "memory): does not fit" if needed > assumed else ""))
    return notes
