"""Render an audit report: a Rich table for the terminal, Markdown, one HTML page, or JSON.

Every format shows the same things: the decision per capability with its path through the tree,
the warnings, and what the recommended plan costs against fine-tuning everything and prompting
everything over the horizon. matplotlib is imported only inside :func:`chart_svg`, so importing
this module (and running ``ragtune audit`` without ``--format html``) stays fast.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ragtune.audit.model import STRATEGIES, AuditReport, CapabilityAudit, CostProjection

if TYPE_CHECKING:
    import jinja2
    from rich.console import Console

ReportFormat = Literal["markdown", "html", "json"]
FORMATS: tuple[ReportFormat, ...] = ("markdown", "html", "json")

# One colour per decision (badges, Rich) and per strategy (charts), used by every format.
DECISION_COLOURS = {"retrieval": "#2563eb", "few-shot": "#0d9488", "lora": "#7c3aed"}
DECISION_RICH = {"retrieval": "bold blue", "few-shot": "bold green", "lora": "bold magenta"}
STRATEGY_COLOURS = {
    "plan": "#0d9488",
    "fine-tune everything": "#dc2626",
    "prompt everything": "#2563eb",
}
ALTERNATIVES = STRATEGIES[1:]


# -- shared wording -------------------------------------------------------------------------------


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def _or_dash(value: str | None) -> str:
    return value if value else "—"


def _break_even(cost: CostProjection, alternative: str) -> str:
    """When the plan becomes (and stays) no dearer than ``alternative``, in a few words."""
    if cost.strategies["plan"].cumulative == cost.strategies[alternative].cumulative:
        return "costs the same"
    month = cost.break_even_month.get(alternative)
    if month is None:
        return f"dearer at month {cost.horizon_months}"
    if month == 0:
        return "cheaper from the start"
    return f"cheaper from month {month}"


def _break_even_sentence(cost: CostProjection) -> str:
    """When the plan pays back against each alternative, in one line."""
    parts = [f"{name}: {_break_even(cost, name)}" for name in ALTERNATIVES]
    return "Break-even — plan vs " + "; vs ".join(parts) + "."


def _changes(rate: float) -> str:
    return f"about {rate:g} change{'' if rate == 1 else 's'} a year"


def _retraining_saved(cost: CostProjection) -> str:
    runs = (
        cost.strategies["fine-tune everything"].finetune_runs
        - cost.strategies["plan"].finetune_runs
    )
    if runs <= 0:
        return f"{_usd(cost.retraining_saved_usd)} (no fine-tune run avoided)"
    plural = "run" if runs == 1 else "runs"
    return (
        f"{_usd(cost.retraining_saved_usd)} ({runs} fine-tune {plural} avoided at "
        f"{_usd(cost.finetune_run_usd)} each)"
    )


def _checkpoints(horizon: int) -> list[int]:
    """Months shown in the cumulative table: every 3 months (every 12 past 3 years), and the end."""
    step = 3 if horizon <= 36 else 12
    months = list(range(0, horizon + 1, step))
    if months[-1] != horizon:
        months.append(horizon)
    return months


@dataclass(frozen=True)
class _CostRow:
    strategy: str
    approach: str
    finetune_runs: int
    reindexes: int
    context_tokens: str
    token_usd_per_month: str
    total: str


def _cost_rows(cost: CostProjection) -> list[_CostRow]:
    return [
        _CostRow(
            strategy=name,
            approach=s.approach,
            finetune_runs=s.finetune_runs,
            reindexes=s.reindexes,
            context_tokens=f"{s.context_tokens_per_call:,}",
            token_usd_per_month=_usd(s.token_usd_per_month),
            total=_usd(s.total),
        )
        for name, s in ((n, cost.strategies[n]) for n in STRATEGIES)
    ]


def _cumulative_rows(cost: CostProjection) -> list[tuple[int, list[str]]]:
    return [
        (m, [_usd(cost.strategies[name].cumulative[m]) for name in STRATEGIES])
        for m in _checkpoints(cost.horizon_months)
    ]


COST_HEADERS = (
    "strategy",
    "approach",
    "fine-tune runs",
    "re-indexes",
    "context tokens / call",
    "USD / month in tokens",
    "total USD",
)


# -- JSON -----------------------------------------------------------------------------------------


def render_json(report: AuditReport) -> str:
    """The report as JSON, in the shape of :meth:`AuditReport.to_dict` (a public contract)."""
    return json.dumps(report.to_dict(), indent=2)


# -- Markdown -------------------------------------------------------------------------------------


def _cell(value: object) -> str:
    """A Markdown table cell: one line, with ``|`` escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: int = 0) -> str:
    """A Markdown table; the last ``numeric`` columns are right-aligned."""
    align = ["---"] * (len(headers) - numeric) + ["---:"] * numeric
    lines = [
        "| " + " | ".join(_cell(h) for h in headers) + " |",
        "| " + " | ".join(align) + " |",
    ]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _md_cost(cost: CostProjection) -> list[str]:
    rows = [
        (
            r.strategy,
            r.approach,
            r.finetune_runs,
            r.reindexes,
            r.context_tokens,
            r.token_usd_per_month,
            r.total,
        )
        for r in _cost_rows(cost)
    ]
    return [
        md_table(COST_HEADERS, rows, numeric=5),
        "",
        f"- {_break_even_sentence(cost)}",
        f"- Retraining saved against fine-tuning everything: {_retraining_saved(cost)}.",
    ]


def render_markdown(report: AuditReport) -> str:
    """The report as a Markdown document: summary, one section per capability, the portfolio."""
    horizon = report.horizon_months
    out = [
        f"# ragtune audit: {report.project}",
        "",
        f"Project file `{report.project_file}` · horizon {horizon} months · "
        f"ragtune {report.ragtune_version} · generated {report.generated_at}",
        "",
        "## Summary",
        "",
    ]
    rows: list[list[object]] = []
    for c in report.capabilities:
        rows.append(
            [
                c.name,
                c.decision,
                c.kind,
                _or_dash(c.current_approach),
                len(c.warnings),
                *(_usd(c.cost.strategies[s].total) for s in STRATEGIES),
            ]
        )
    rows.append(
        [
            "**portfolio**",
            "",
            "",
            "",
            len(report.warnings),
            *(f"**{_usd(report.portfolio.strategies[s].total)}**" for s in STRATEGIES),
        ]
    )
    out += [
        md_table(
            ["capability", "decision", "kind", "current approach", "warnings", *STRATEGIES],
            rows,
            numeric=4,
        ),
        "",
        f"Costs are cumulative USD over the {horizon}-month horizon.",
        "",
    ]
    for note in report.notes:
        out += [f"> {note}", ""]

    out += ["## Capabilities", ""]
    for c in report.capabilities:
        out += _md_capability(c)

    p = report.portfolio
    out += [
        "## Portfolio",
        "",
        f"All {len(report.capabilities)} capabilities together: {p.calls_per_month:,} calls a "
        f"month, {_changes(p.changes_per_year)}, over {horizon} months.",
        "",
        *_md_cost(p),
        "",
        "### Cumulative cost by month",
        "",
        md_table(
            ["month", *STRATEGIES],
            [[m, *values] for m, values in _cumulative_rows(p)],
            numeric=3,
        ),
        "",
    ]
    return "\n".join(out)


def _md_capability(c: CapabilityAudit) -> list[str]:
    out = [
        f"### {c.name}: {c.decision}",
        "",
        f"*{c.description}*",
        "",
        f"**Decision: {c.decision}** ({c.kind}). {c.summary}",
        "",
        f"Current approach: {c.current_approach or 'none stated'}.",
        "",
        "Path through the decision tree:",
        "",
        md_table(
            ["question", "answer", "source", "confidence", "reason"],
            [(s.question, s.answer, s.source, f"{s.confidence:.2f}", s.reason) for s in c.path],
        ),
        "",
    ]
    if c.warnings:
        out += ["Warnings:", ""]
        out += [f"- **{w.code}**: {w.message}" for w in c.warnings]
    else:
        out += ["No warnings."]
    cost = c.cost
    out += [
        "",
        f"Cost over {cost.horizon_months} months ({cost.calls_per_month:,} calls a month, "
        f"{_changes(cost.changes_per_year)}):",
        "",
        *_md_cost(cost),
        "",
    ]
    return out


# -- charts ---------------------------------------------------------------------------------------

_ID_ATTR = re.compile(r'\sid="([^"]+)"')


def chart_svg(cost: CostProjection, title: str, *, width: float = 7.0, height: float = 3.6) -> str:
    """Cumulative cost by month of each strategy, as inline SVG text (``<svg ...>...</svg>``).

    The months where the plan breaks even with an alternative are marked. Text stays text in the
    SVG (strategy names can be searched for), ids are unique per chart, so several charts can
    share one HTML page.

    Args:
        cost: the projection to draw (one capability's or the portfolio's).
        title: the chart's title; also salts its element ids.
        width: figure width in inches.
        height: figure height in inches.
    """
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    with matplotlib.rc_context(
        {
            "svg.fonttype": "none",  # keep text as <text>, not glyph outlines
            "svg.hashsalt": f"ragtune:{title}",  # deterministic, and distinct between charts
            "text.parse_math": False,  # "$" is a currency here, not mathtext
            "font.family": "sans-serif",
            "font.size": 9,
        }
    ):
        # Figure without pyplot: no global state, safe in a server thread, no GUI backend.
        fig = Figure(figsize=(width, height), layout="constrained")
        ax = fig.add_subplot()
        months = list(range(cost.horizon_months + 1))
        plan = cost.strategies["plan"].cumulative
        for name in STRATEGIES:
            strategy = cost.strategies[name]
            label = f"{name} ({strategy.approach})"
            if name != "plan":
                label += f": plan {_break_even(cost, name)}"
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
        # Mark a break-even inside the horizon; "from the start" and "never" the legend says.
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
        return figure_svg(fig, title)


def figure_svg(fig: Any, title: str) -> str:
    """A matplotlib figure as inline SVG: no timestamps or creator (reproducible output),
    labelled for screen readers (:func:`_inline_svg`)."""
    buffer = io.StringIO()
    fig.savefig(
        buffer,
        format="svg",
        metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
    )
    return _inline_svg(buffer.getvalue(), title)


def _inline_svg(svg: str, label: str) -> str:
    """Strip the XML prolog, drop ids nothing refers to, and label the chart for screen readers."""
    svg = svg[svg.index("<svg") :]
    referenced = set(re.findall(r"#([\w.-]+)", svg))
    svg = _ID_ATTR.sub(lambda m: m.group(0) if m.group(1) in referenced else "", svg)
    aria = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return svg.replace("<svg ", f'<svg role="img" aria-label="{aria}" ', 1).strip()


# -- HTML -----------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("ragtune.audit", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _html_cost(
    cost: CostProjection, title: str, chart_size: tuple[float, float] | None
) -> dict[str, Any]:
    from markupsafe import Markup

    chart = (
        Markup(chart_svg(cost, title, width=chart_size[0], height=chart_size[1]))
        if chart_size is not None
        else None
    )
    return {
        "rows": _cost_rows(cost),
        "break_even": {name: _break_even(cost, name) for name in ALTERNATIVES},
        "retraining_saved": _retraining_saved(cost),
        "chart": chart,
        "calls_per_month": f"{cost.calls_per_month:,}",
        "changes": _changes(cost.changes_per_year),
        "horizon": cost.horizon_months,
    }


# A chart costs about 80 ms to draw: past this many capabilities only the portfolio gets one.
MAX_CAPABILITY_CHARTS = 50


def render_html(report: AuditReport) -> str:
    """The report as one self-contained HTML page: inline CSS and SVG charts, no links out."""
    small = (6.0, 2.8) if len(report.capabilities) <= MAX_CAPABILITY_CHARTS else None
    capabilities = [
        {
            "audit": c,
            "anchor": f"cap-{c.name}",
            "colour": DECISION_COLOURS.get(c.decision, "#4b5563"),
            "confidences": [f"{s.confidence:.2f}" for s in c.path],
            "totals": [_usd(c.cost.strategies[s].total) for s in STRATEGIES],
            "cost": _html_cost(c.cost, f"{c.name}: cumulative cost", small),
        }
        for c in report.capabilities
    ]
    portfolio = _html_cost(
        report.portfolio, f"{report.project}: cumulative cost of the portfolio", (8.0, 3.8)
    )
    decisions = {
        name: sum(1 for c in report.capabilities if c.decision == name) for name in DECISION_COLOURS
    }
    template = _environment().get_template("audit.html.j2")
    return template.render(
        report=report,
        capabilities=capabilities,
        portfolio=portfolio,
        portfolio_totals=[_usd(report.portfolio.strategies[s].total) for s in STRATEGIES],
        cumulative=_cumulative_rows(report.portfolio),
        strategies=STRATEGIES,
        strategy_colours=STRATEGY_COLOURS,
        decision_colours=DECISION_COLOURS,
        decisions=decisions,
        warning_count=len(report.warnings),
        cost_headers=COST_HEADERS,
    )


# -- terminal -------------------------------------------------------------------------------------


def render_table(report: AuditReport, console: Console) -> None:
    """Print the report to a Rich console: summary, one panel per capability, the portfolio."""
    from rich import box
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    def decision(name: str) -> Text:
        return Text(name, style=DECISION_RICH.get(name, "bold"))

    console.print(
        Text.assemble(
            ("ragtune audit: ", "bold"),
            (report.project, "bold cyan"),
            f"  ({len(report.capabilities)} capabilities, horizon {report.horizon_months} months)",
        )
    )
    summary = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption=f"cost over {report.horizon_months} months: the plan, fine-tune everything, "
        "prompt everything",
        caption_justify="left",
    )
    widest = max(len(c.name) for c in report.capabilities)
    summary.add_column("capability", style="bold", min_width=min(widest, 30), overflow="fold")
    summary.add_column("decision", no_wrap=True)
    summary.add_column("today", no_wrap=True)
    summary.add_column("warn", justify="right", no_wrap=True)
    # Short headers and whole dollars keep the summary on one line a row at 80 columns.
    for header in ("plan", "fine-tune", "prompt"):
        summary.add_column(header, justify="right", no_wrap=True)
    for c in report.capabilities:
        summary.add_row(
            Text(c.name),
            decision(c.decision),
            _or_dash(c.current_approach),
            Text(str(len(c.warnings)), style="yellow" if c.warnings else "dim"),
            *(f"${c.cost.strategies[s].total:,.0f}" for s in STRATEGIES),
        )
    summary.add_section()
    summary.add_row(
        Text("portfolio", style="bold"),
        "",
        "",
        str(len(report.warnings)),
        *(Text(f"${report.portfolio.strategies[s].total:,.0f}", "bold") for s in STRATEGIES),
    )
    console.print(summary)

    for c in report.capabilities:
        path = Table(box=box.SIMPLE, show_edge=False, pad_edge=False, expand=True)
        path.add_column("question", ratio=3)
        path.add_column("answer", ratio=1)
        path.add_column("source")
        path.add_column("conf.", justify="right")
        path.add_column("reason", ratio=3, style="dim")
        for s in c.path:
            path.add_row(
                Text(s.question),
                Text(s.answer, "bold"),
                s.source,
                f"{s.confidence:.2f}",
                Text(s.reason),
            )
        parts: list[Any] = [Text(c.summary), path]
        for w in c.warnings:
            parts.append(
                Text.assemble(
                    ("! ", "bold yellow"), (f"{w.code}: ", "bold yellow"), (w.message, "yellow")
                )
            )
        parts.append(
            Text(
                f"over {c.cost.horizon_months} months: "
                + ", ".join(f"{s} {_usd(c.cost.strategies[s].total)}" for s in STRATEGIES),
                style="dim",
            )
        )
        title = Text.assemble((c.name, "bold"), "  ", decision(c.decision))
        console.print(Panel(Group(*parts), title=title, title_align="left", border_style="dim"))

    p = report.portfolio
    console.print(
        Text.assemble(
            ("Portfolio over ", "bold"),
            (f"{report.horizon_months} months: ", "bold"),
            ("plan ", "bold"),
            (_usd(p.strategies["plan"].total), "bold green"),
            " vs fine-tune everything ",
            _usd(p.strategies["fine-tune everything"].total),
            " vs prompt everything ",
            _usd(p.strategies["prompt everything"].total),
            ".\n",
            _break_even_sentence(p),
            "\nRetraining saved: ",
            _retraining_saved(p),
            ".",
        )
    )


# -- files ----------------------------------------------------------------------------------------


def render(report: AuditReport, fmt: str) -> str:
    """The report as text in one of :data:`FORMATS`."""
    renderers = {"markdown": render_markdown, "html": render_html, "json": render_json}
    if fmt not in renderers:
        raise ValueError(
            f"unknown report format {fmt!r}; accepted: {', '.join(FORMATS)} "
            "(the terminal table is printed, not written)"
        )
    return renderers[fmt](report)


def write_report(report: AuditReport, fmt: str, out: Path) -> None:
    """Write the report to ``out`` atomically: the old file or the new one, never half of one.

    Args:
        report: the audit to write.
        fmt: ``"markdown"``, ``"html"`` or ``"json"``.
        out: the file to write; its folder is created when missing.

    Raises:
        ValueError: for an unknown format (nothing is written).
    """
    text = render(report, fmt)  # render first: a failure leaves no file behind at all
    if not text.endswith("\n"):
        text += "\n"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    mode = out.stat().st_mode & 0o777 if out.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)  # mkstemp creates 0600; a report is meant to be shared
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
