"""Escaping and number formatting shared by the figures, tables and the page.

Every string that comes from data, users or records (run names, model names, dataset
text, error messages) passes through `esc` before it reaches HTML, and through
`esc_plot` before it reaches a Plotly figure:
Plotly renders labels, legend names, tick labels and hover text through its own
pseudo-HTML parser (`<b>`, `<br>`, `<a href>`...), so an unescaped `<a href=...>` in a
run name would become a live link.  Plotly decodes the entities back, so escaped text
displays as typed.
"""

from __future__ import annotations

import html
import math
from typing import Any

# Verdict labels for people: eval_notes §3 asks for "inconclusive", never "no regression",
# when the paired interval straddles zero.
VERDICT_LABELS = {
    "gain": "gain",
    "regression": "regression",
    "no detectable change": "inconclusive",
}
VERDICT_COLORS = {"gain": "#2ca02c", "regression": "#d62728", "no detectable change": "#7f7f7f"}

# Memory parts in stacking order (DESIGN.md "Estimate": memory_gib), bottom to top.
MEMORY_PARTS = ("weights", "gradients", "optimizer", "activations", "adapter", "overhead")
MEMORY_COLORS = {
    "weights": "#4c78a8",
    "gradients": "#f58518",
    "optimizer": "#e45756",
    "activations": "#72b7b2",
    "adapter": "#54a24b",
    "overhead": "#b279a2",
}


def esc(value: Any) -> str:
    """HTML-escape any value's text, quotes included (safe in text and attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def esc_plot(value: Any) -> str:
    """Escape text for Plotly labels, legend names, ticks and hover text.

    Plotly's pseudo-HTML decodes `&lt; &gt; &amp;` (and numeric entities) but shows
    `&quot;` literally; once `<` is escaped no tag can form, so quotes stay as typed.
    `%{` would open a hovertemplate field, so a zero-width space splits it.
    """
    return html.escape("" if value is None else str(value), quote=False).replace("%{", "%\u200b{")


def verdict_label(verdict: str | None) -> str:
    return VERDICT_LABELS.get(verdict or "", verdict or "n/a")


def finite(value: Any) -> float | None:
    """The value as a float when it is a finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def fmt_signed(value: float | None, unit: str = "pp", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f} {unit}".strip()


def fmt_gib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} GiB"


def fmt_usd(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"${value:,.2f}" if value < 100 else f"${value:,.0f}"


def fmt_duration(seconds: float | None) -> str:
    """Seconds as a short human duration: 42 s, 13 min, 2.4 h, 3.1 days."""
    if seconds is None:
        return "n/a"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"
