"""The look shared by every figure: white plot area, light grid, room for labels.

Set as plain layout properties instead of a named Plotly template: assigning a template
costs ~0.1 s per figure (validation of the whole template tree), and the report has
half a dozen figures per page.
"""

from __future__ import annotations

GRID = "#e6e9ef"


def apply_style(fig, **layout):
    """Apply the house style plus `layout` overrides to `fig`; returns the figure."""
    fig.update_layout(
        plot_bgcolor="white",
        paper_bgcolor="white",
        margin={"l": 60, "r": 20, "t": 50, "b": 60},
        **layout,
    )
    fig.update_xaxes(gridcolor=GRID, zerolinecolor="#9aa3af", linecolor="#c9ced6")
    fig.update_yaxes(gridcolor=GRID, zerolinecolor="#9aa3af", linecolor="#c9ced6")
    return fig
