"""Plain-text rendering for `tunewise estimate` (tables a person reads in a terminal)."""

from __future__ import annotations

PARTS = ("weights", "gradients", "optimizer", "activations", "adapter", "overhead")


def render(est) -> str:
    """The estimate as a short report: header, memory table, time/cost, assumptions."""
    d = est.to_dict()
    mem = d["memory_gib"]
    hw = d["hardware"]
    spec = est.model
    share = f" ({d['trainable_params'] / spec.params:.2%} of {spec.params:,})" if spec.params else ""
    lines = [
        f"{d['method']} of {spec.name} on {hw['count']} x {hw['name']} ({hw['memory_gib']:g} GiB each)",
        f"  trainable parameters  {d['trainable_params']:,}{share}",
        "",
        "  memory per device (GiB)",
    ]
    lines += [f"    {part:<12} {mem[part]:>9.2f}" for part in PARTS]
    verdict = "fits" if d["fits"] else ("unsupported" if not d["supported"] else "does NOT fit")
    lines.append(f"    {'total':<12} {mem['total']:>9.2f}   of {est.hardware.usable_gib:.1f} usable -> {verdict}")
    if not d["supported"]:
        lines.append(f"  unsupported: {d['reason']}")
    lines.append("")
    lines.append(f"  tokens {_num(d['tokens'])}   time {_hours(d['time_hours'])}   cost {_usd(d['cost_usd'])}")
    for title, items in (("assumptions", d["assumptions"]), ("warnings", d["warnings"])):
        if items:
            lines.append(f"  {title}:")
            lines += [f"    - {item}" for item in items]
    return "\n".join(lines)


def _num(value) -> str:
    return "-" if value is None else f"{value:,}"


def _hours(value) -> str:
    if value is None:
        return "-"
    return f"{value * 60:.1f} min" if value < 1 else f"{value:,.1f} h"


def _usd(value) -> str:
    return "-" if value is None else f"${value:,.2f}"


def list_models_text() -> str:
    from advisor.models import load_catalog, resolve_model

    rows = [f"{'model':<42} {'params':>16} {'active':>16}  context"]
    for entry in load_catalog():
        spec = resolve_model(entry["id"])
        rows.append(f"{spec.name:<42} {spec.params:>16,} {spec.active_params:>16,}  {spec.max_position:>7,}")
    return "\n".join(rows)


def list_hardware_text(hardware_file: str | None = None) -> str:
    from advisor.hardware import list_hardware

    rows = [f"{'device':<22} {'kind':<6} {'GiB':>7} {'bf16 TFLOP/s':>13} {'$/h':>7}  price source"]
    for hw in list_hardware(hardware_file):
        tflops = "-" if hw.bf16_tflops is None else f"{hw.bf16_tflops:,.1f}"
        price = "-" if hw.usd_per_hour is None else f"{hw.usd_per_hour:.2f}"
        src = f"{hw.price_source} {hw.price_date}".strip() or "-"
        rows.append(f"{hw.name:<22} {hw.kind:<6} {hw.memory_gib:>7.1f} {tflops:>13} {price:>7}  {src}")
    return "\n".join(rows)
