"""The lab's two charts as inline SVG: fact accuracy per arm (on the unseen questions, the seen
and rephrased ones beside it for an arm that serves an adapter, before and after the change when
the drift test ran, contract compliance beside it) and cost against (unseen) accuracy.

matplotlib is imported only when a chart is drawn; a null metric is marked "n/a" or left out,
and an arm without adapter has no seen or rephrased bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from ragtune.audit.report import DECISION_COLOURS, figure_svg
from ragtune.lab.cells import NA, missing
from ragtune.lab.results import LabResult, Scores

__all__ = ["accuracy_chart", "cost_chart"]

# One colour per arm in every chart; the audit's decision colours for the arms that match them.
ARM_COLOURS = {
    "zero-shot": "#6b7280",
    "few-shot": DECISION_COLOURS["few-shot"],
    "RAG": DECISION_COLOURS["retrieval"],
    "LoRA": DECISION_COLOURS["lora"],
    "RAG+LoRA": "#db2777",
}
OTHER_COLOUR = "#4b5563"
# The accuracy series are shades apart from the arm colours, so a bar is never read as an arm.
UNSEEN = ("unseen questions", "#475569")
SEEN = ("seen: the adapter trained on them", "#cbd5e1")
REPHRASED = ("seen, rephrased", "#94a3b8")
SKIP = "skip"
"""A value with no bar and no "n/a" mark: the seen bar of an arm without adapter."""
CHANGED_BEFORE = ("changed questions, before the change", "#a5b4fc")
CHANGED_AFTER = ("changed questions, after the change", "#4338ca")

ACCURACY_TITLE = "Fact accuracy per arm"
COST_TITLE = "Cost against accuracy"


def _arm_names(data: LabResult) -> list[str]:
    """The arms in the lab's order, then any the drift test has that the lab does not."""
    names = [a.name for a in data.arms]
    names += [a.name for a in (data.drift.arms if data.drift else ()) if a.name not in names]
    return names


def _exposure(scores: Scores | None, known: bool) -> Any:
    """A seen or rephrased bar's value: skipped for an arm without adapter (or one that does
    not say what it trained on), "n/a" for no item."""
    if scores is None or not known:
        return SKIP
    return scores.fact_accuracy if scores.items else None


def _chart_style(title: str) -> AbstractContextManager[None]:
    """The audit's chart settings; ``title`` salts the SVG ids so charts can share a page."""
    import matplotlib

    return matplotlib.rc_context(
        {
            "svg.fonttype": "none",  # keep text as <text>, not glyph outlines
            "svg.hashsalt": f"ragtune-lab:{title}",  # deterministic, distinct between charts
            "text.parse_math": False,  # "$" is a currency here, not mathtext
            "font.family": "sans-serif",
            "font.size": 9,
        }
    )


def _figure(width: float, height: float) -> Any:
    """A figure on its own Agg canvas: no pyplot, no global backend, safe in a server thread."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style(ax: Any) -> None:
    ax.grid(True, axis="y", color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _bars(ax: Any, names: Sequence[str], series: Sequence[tuple[str, str, list[Any]]]) -> None:
    """Grouped bars, one group per name; a null value is marked "n/a" instead of a bar."""
    width = 0.8 / max(len(series), 1)
    for i, (label, colour, values) in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * width
        shown = [
            (x + offset, float(v)) for x, v in enumerate(values) if v is not SKIP and not missing(v)
        ]
        if shown:
            xs, ys = zip(*shown, strict=True)
            bars = ax.bar(xs, ys, width * 0.92, label=label, color=colour, zorder=2)
            ax.bar_label(bars, labels=[f"{y:.0%}" for y in ys], fontsize=6.5, padding=1)
        for x, v in enumerate(values):
            if v is not SKIP and missing(v):
                ax.text(
                    x + offset,
                    0.02,
                    NA,
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color="#9ca3af",
                )
    ax.set_xticks(range(len(names)), names)
    ax.set_xlim(-0.6, max(len(names), 1) - 0.4)
    ax.set_ylim(0, 1.12)


def accuracy_chart(data: LabResult) -> str:
    """Grouped bars: fact accuracy per arm on the unseen questions, on the seen and rephrased
    ones for the arms that serve an adapter, on the changed questions before and after the
    change when the lab ran a drift test, and contract compliance beside it when measured."""
    from matplotlib.ticker import PercentFormatter

    names = _arm_names(data)
    arms = [data.arm(n) for n in names]
    series: list[tuple[str, str, list[Any]]] = [
        (*UNSEEN, [None if a is None else a.fact_accuracy for a in arms])
    ]
    for label, pick in ((SEEN, "seen"), (REPHRASED, "rephrased")):
        values = [SKIP if a is None else _exposure(getattr(a, pick), a.seen_known) for a in arms]
        if any(v is not SKIP for v in values):
            series.append((*label, values))
    if data.drift is not None:
        rows = [data.drift.arm(n) for n in names]
        before = [None if r is None else r.fact_accuracy_before for r in rows]
        series.append((*CHANGED_BEFORE, before))
        series.append((*CHANGED_AFTER, [None if r is None else r.fact_accuracy for r in rows]))
    compliance = [None if a is None else a.contract_compliance for a in arms]
    with_compliance = any(not missing(v) for v in compliance)

    with _chart_style(ACCURACY_TITLE):
        fig = _figure(10.0 if with_compliance else 8.0, 4.0)
        if with_compliance:
            ax, side = fig.subplots(1, 2, width_ratios=[3.0, 1.2])
        else:
            ax, side = fig.add_subplot(), None
        _bars(ax, names, series)
        ax.set_title(ACCURACY_TITLE, loc="left", fontsize=11, fontweight="bold")
        ax.set_ylabel("fact accuracy")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        _style(ax)
        if ax.get_legend_handles_labels()[0]:
            # Below the axes: above them the bars reach 100% and the title takes the left.
            ax.legend(
                loc="upper center",
                bbox_to_anchor=(0.5, -0.1),
                frameon=False,
                fontsize=8,
                ncols=len(series),
            )
        if side is not None:
            colours = [ARM_COLOURS.get(n, OTHER_COLOUR) for n in names]
            _bars(side, names, [("contract compliance", OTHER_COLOUR, compliance)])
            # Colour each compliance bar as its arm.
            shown = [n for n, v in zip(names, compliance, strict=True) if not missing(v)]
            for patch, name in zip(side.patches, shown, strict=True):
                patch.set_facecolor(colours[names.index(name)])
            side.set_title("Contract compliance", loc="left", fontsize=10, fontweight="bold")
            side.yaxis.set_major_formatter(PercentFormatter(1.0))
            side.tick_params(axis="x", labelrotation=30)
            _style(side)
        return figure_svg(fig, ACCURACY_TITLE)


def cost_chart(data: LabResult) -> str:
    """A scatter of USD per 1,000 calls against fact accuracy on unseen questions, each point
    named by its arm."""
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    points = [
        (a.name, float(a.cost_per_1k), float(a.fact_accuracy))
        for a in data.arms
        if a.cost_per_1k is not None
        and a.fact_accuracy is not None
        and not missing(a.cost_per_1k)
        and not missing(a.fact_accuracy)
    ]
    with _chart_style(COST_TITLE):
        fig = _figure(7.0, 3.6)
        ax = fig.add_subplot()
        for name, cost, accuracy in points:
            ax.scatter(
                [cost], [accuracy], s=46, color=ARM_COLOURS.get(name, OTHER_COLOUR), zorder=3
            )
            ax.annotate(
                name, (cost, accuracy), xytext=(6, 4), textcoords="offset points", fontsize=8
            )
        dearest = max((c for _, c, _ in points), default=0.0)
        decimals = 2 if dearest >= 0.1 else 4
        if points:
            ax.set_xlim(0, dearest * 1.2 or 1.0)
        left_out = [a.name for a in data.arms]
        left_out = [n for n in left_out if n not in {name for name, _, _ in points}]
        if left_out and points:
            fig.text(
                0.01,
                0.01,
                "not shown (no cost or no accuracy): " + ", ".join(left_out),
                fontsize=7,
                color="#6b7280",
            )
        if not points:
            ax.text(
                0.5,
                0.5,
                "no arm has both a cost and a fact accuracy",
                transform=ax.transAxes,
                ha="center",
                color="#6b7280",
            )
        ax.set_ylim(0, 1.05)
        ax.set_title(COST_TITLE, loc="left", fontsize=11, fontweight="bold")
        ax.set_xlabel("USD per 1,000 calls")
        ax.set_ylabel("fact accuracy (unseen)")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"${v:,.{decimals}f}"))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        _style(ax)
        ax.grid(True, axis="x", color="#e5e7eb", linewidth=0.8)
        return figure_svg(fig, COST_TITLE)
