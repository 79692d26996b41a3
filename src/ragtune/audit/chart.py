"""The audit's cost chart: cumulative cost by month of each strategy, break-evens marked.

matplotlib is imported inside these functions, so importing this module costs nothing;
:func:`ragtune.audit.report.chart_svg` draws the chart in :func:`style` and turns it into SVG.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ragtune.audit.model import STRATEGIES, CostProjection
from ragtune.audit.wording import ALTERNATIVES, break_even

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# One colour per strategy: the lines of the chart and the swatches of the HTML cost tables.
STRATEGY_COLOURS = {
    "plan": "#0d9488",
    "fine-tune everything": "#dc2626",
    "prompt everything": "#2563eb",
}


def style(title: str) -> AbstractContextManager[Any]:
    """The settings a chart is drawn and saved in; ``title`` salts its SVG ids."""
    import matplotlib

    return matplotlib.rc_context(
        {
            "svg.fonttype": "none",  # keep text as <text>, not glyph outlines
            "svg.hashsalt": f"ragtune:{title}",  # deterministic, and distinct between charts
            "text.parse_math": False,  # "$" is a currency here, not mathtext
            "font.family": "sans-serif",
            "font.size": 9,
        }
    )


def cost_figure(cost: CostProjection, title: str, width: float, height: float) -> Figure:
    """The chart of ``cost`` as a matplotlib figure, ``width`` x ``height`` inches."""
    from matplotlib.figure import Figure

    # Figure without pyplot: no global state, safe in a server thread, no GUI backend.
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    _plot_strategies(ax, cost)
    _mark_break_evens(ax, cost)
    _style_axes(ax, cost, title)
    return fig


def _plot_strategies(ax: Axes, cost: CostProjection) -> None:
    """One line per strategy; the legend says when the plan breaks even with each other one."""
    months = list(range(cost.horizon_months + 1))
    for name in STRATEGIES:
        strategy = cost.strategies[name]
        label = f"{name} ({strategy.approach})"
        if name != "plan":
            label += f": plan {break_even(cost, name)}"
        ax.plot(
            months,
            strategy.cumulative,
            label=label,
            color=STRATEGY_COLOURS[name],
            linewidth=2.4 if name == "plan" else 1.6,
            linestyle="-" if name == "plan" else "--",
            marker="o" if len(months) <= 25 else None,
            markersize=3,
            zorder=3 if name == "plan" else 2,
        )


def _mark_break_evens(ax: Axes, cost: CostProjection) -> None:
    """Mark a break-even inside the horizon; "from the start" and "never" the legend says."""
    plan = cost.strategies["plan"].cumulative
    for name in ALTERNATIVES:
        month = cost.break_even_month.get(name)
        if not month or plan == cost.strategies[name].cumulative:
            continue
        colour = STRATEGY_COLOURS[name]
        left = month > cost.horizon_months * 0.6  # keep the label inside the axes
        ax.axvline(month, color=colour, linewidth=1, linestyle=":", alpha=0.8)
        ax.plot([month], [plan[month]], marker="D", markersize=7, color=colour, zorder=4)
        ax.annotate(
            f"break-even vs {name}: month {month}",
            xy=(month, plan[month]),
            xytext=(-6 if left else 6, 10 if name == "fine-tune everything" else -16),
            textcoords="offset points",
            ha="right" if left else "left",
            fontsize=8,
            color=colour,
        )


def _style_axes(ax: Axes, cost: CostProjection, title: str) -> None:
    """Title, labels in months and dollars, a light grid, the legend."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    ax.set_xlabel("month")
    ax.set_ylabel("cumulative USD")
    ax.set_xlim(0, max(cost.horizon_months, 1))
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"${v:,.0f}"))
    ax.grid(True, color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(loc="upper left", frameon=False, fontsize=8)
