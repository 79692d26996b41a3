"""Render an audit report: a Rich table for the terminal, Markdown, one HTML page, or JSON.

Every format shows the same things: the decision per capability with its path through the tree,
the warnings, and what the recommended plan costs against fine-tuning everything and prompting
everything over the horizon, in the words of :mod:`ragtune.audit.wording`. The pieces of the
terminal table are in :mod:`ragtune.audit.terminal`, the cost chart in :mod:`ragtune.audit.chart`.
matplotlib is imported only when :func:`chart_svg` draws, so importing this module (and running
``ragtune audit`` without ``--format html``) stays fast. The lab's report shares the decision
colours, :func:`md_table` and :func:`figure_svg`.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ragtune.audit import chart, terminal
from ragtune.audit.chart import STRATEGY_COLOURS
from ragtune.audit.model import STRATEGIES, AuditReport, CapabilityAudit, CostProjection
from ragtune.audit.wording import (
    ALTERNATIVES,
    COST_HEADERS,
    break_even,
    break_even_sentence,
    changes_a_year,
    cost_rows,
    cumulative_rows,
    or_dash,
    retraining_saved,
    usd,
)

if TYPE_CHECKING:
    import jinja2
    from rich.console import Console

ReportFormat = Literal["markdown", "html", "json"]
FORMATS: tuple[ReportFormat, ...] = ("markdown", "html", "json")

# One colour per decision: the HTML badges, and the lab's charts for the arms that match one.
DECISION_COLOURS = {"retrieval": "#2563eb", "few-shot": "#0d9488", "lora": "#7c3aed"}


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
    """The cost table of one projection, its break-evens and the retraining it saves."""
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
        for r in cost_rows(cost)
    ]
    return [
        md_table(COST_HEADERS, rows, numeric=5),
        "",
        f"- {break_even_sentence(cost)}",
        f"- Retraining saved against fine-tuning everything: {retraining_saved(cost)}.",
    ]


def render_markdown(report: AuditReport) -> str:
    """The report as a Markdown document: summary, one section per capability, the portfolio."""
    out = [
        f"# ragtune audit: {report.project}",
        "",
        f"Project file `{report.project_file}` · horizon {report.horizon_months} months · "
        f"ragtune {report.ragtune_version} · generated {report.generated_at}",
        "",
        *_md_summary(report),
        "## Capabilities",
        "",
    ]
    for c in report.capabilities:
        out += _md_capability(c)
    out += _md_portfolio(report)
    return "\n".join(out)


def _md_summary(report: AuditReport) -> list[str]:
    """One row per capability with the three totals, the portfolio's row, then the notes."""
    rows: list[list[object]] = []
    for c in report.capabilities:
        rows.append(
            [
                c.name,
                c.decision,
                c.kind,
                or_dash(c.current_approach),
                len(c.warnings),
                *(usd(c.cost.strategies[s].total) for s in STRATEGIES),
            ]
        )
    rows.append(
        [
            "**portfolio**",
            "",
            "",
            "",
            len(report.warnings),
            *(f"**{usd(report.portfolio.strategies[s].total)}**" for s in STRATEGIES),
        ]
    )
    out = [
        "## Summary",
        "",
        md_table(
            ["capability", "decision", "kind", "current approach", "warnings", *STRATEGIES],
            rows,
            numeric=4,
        ),
        "",
        f"Costs are cumulative USD over the {report.horizon_months}-month horizon.",
        "",
    ]
    for note in report.notes:
        out += [f"> {note}", ""]
    return out


def _md_portfolio(report: AuditReport) -> list[str]:
    """All capabilities together: the cost table and the cumulative cost by month."""
    p = report.portfolio
    return [
        "## Portfolio",
        "",
        f"All {len(report.capabilities)} capabilities together: {p.calls_per_month:,} calls a "
        f"month, {changes_a_year(p.changes_per_year)}, over {report.horizon_months} months.",
        "",
        *_md_cost(p),
        "",
        "### Cumulative cost by month",
        "",
        md_table(
            ["month", *STRATEGIES],
            [[m, *values] for m, values in cumulative_rows(p)],
            numeric=3,
        ),
        "",
    ]


def _md_capability(c: CapabilityAudit) -> list[str]:
    """One capability's section: decision, path, warnings, costs."""
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
    out += _md_measured(c)
    cost = c.cost
    out += [
        "",
        f"Cost over {cost.horizon_months} months ({cost.calls_per_month:,} calls a month, "
        f"{changes_a_year(cost.changes_per_year)}):",
        "",
        *_md_cost(cost),
        "",
    ]
    return out


def _md_measured(c: CapabilityAudit) -> list[str]:
    """What the last lab run measured on the capability, when one did."""
    m = c.measured
    if m is None:
        return []
    out = [
        "",
        f"Measured by the lab ({m.lab_file}, {m.created_at or 'undated'}), {m.metric} on items "
        "no adapter trained on:",
        "",
        md_table(["arm", "score"], [(arm, f"{score:.2f}") for arm, score in m.scores.items()], 1),
        "",
        f"Lab verdict: {m.verdict}.",
    ]
    if m.reader_gap is not None:
        out += ["", m.reader_gap.sentence()]
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
    with chart.style(title):
        return figure_svg(chart.cost_figure(cost, title, width, height), title)


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
    """What the page's cost block shows of one projection; no chart when ``chart_size`` is None."""
    from markupsafe import Markup

    svg = (
        Markup(chart_svg(cost, title, width=chart_size[0], height=chart_size[1]))
        if chart_size is not None
        else None
    )
    return {
        "rows": cost_rows(cost),
        "break_even": {name: break_even(cost, name) for name in ALTERNATIVES},
        "retraining_saved": retraining_saved(cost),
        "chart": svg,
        "calls_per_month": f"{cost.calls_per_month:,}",
        "changes": changes_a_year(cost.changes_per_year),
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
            "totals": [usd(c.cost.strategies[s].total) for s in STRATEGIES],
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
        portfolio_totals=[usd(report.portfolio.strategies[s].total) for s in STRATEGIES],
        cumulative=cumulative_rows(report.portfolio),
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
    console.print(terminal.heading(report))
    console.print(terminal.summary(report))
    for c in report.capabilities:
        console.print(terminal.capability_panel(c))
    console.print(terminal.portfolio(report))


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
