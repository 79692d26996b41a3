"""The pieces of the audit's terminal table, as Rich renderables.

:func:`ragtune.audit.report.render_table` prints them in order: the heading, the summary table,
one panel per capability, the portfolio. Rich is imported inside the functions, so importing
this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragtune.audit.model import STRATEGIES, AuditReport, CapabilityAudit
from ragtune.audit.wording import break_even_sentence, or_dash, retraining_saved, usd

if TYPE_CHECKING:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

# The terminal's styles for the decisions (the report's DECISION_COLOURS elsewhere).
DECISION_RICH = {"retrieval": "bold blue", "few-shot": "bold green", "lora": "bold magenta"}


def _decision(name: str) -> Text:
    from rich.text import Text

    return Text(name, style=DECISION_RICH.get(name, "bold"))


def heading(report: AuditReport) -> Text:
    """The project, how many capabilities, the horizon."""
    from rich.text import Text

    return Text.assemble(
        ("ragtune audit: ", "bold"),
        (report.project, "bold cyan"),
        f"  ({len(report.capabilities)} capabilities, horizon {report.horizon_months} months)",
    )


def summary(report: AuditReport) -> Table:
    """One row per capability (decision, warnings, the three totals) and the portfolio's row."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption=f"cost over {report.horizon_months} months: the plan, fine-tune everything, "
        "prompt everything",
        caption_justify="left",
    )
    widest = max(len(c.name) for c in report.capabilities)
    table.add_column("capability", style="bold", min_width=min(widest, 30), overflow="fold")
    table.add_column("decision", no_wrap=True)
    table.add_column("today", no_wrap=True)
    table.add_column("warn", justify="right", no_wrap=True)
    # Short headers and whole dollars keep the summary on one line a row at 80 columns.
    for header in ("plan", "fine-tune", "prompt"):
        table.add_column(header, justify="right", no_wrap=True)
    for c in report.capabilities:
        table.add_row(
            Text(c.name),
            _decision(c.decision),
            or_dash(c.current_approach),
            Text(str(len(c.warnings)), style="yellow" if c.warnings else "dim"),
            *(f"${c.cost.strategies[s].total:,.0f}" for s in STRATEGIES),
        )
    table.add_section()
    table.add_row(
        Text("portfolio", style="bold"),
        "",
        "",
        str(len(report.warnings)),
        *(Text(f"${report.portfolio.strategies[s].total:,.0f}", "bold") for s in STRATEGIES),
    )
    return table


def _path(c: CapabilityAudit) -> Table:
    """The capability's path through the decision tree, one question a row."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

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
    return path


def capability_panel(c: CapabilityAudit) -> Panel:
    """One capability: its summary, its path, its warnings and its costs over the horizon."""
    from rich.console import Group, RenderableType
    from rich.panel import Panel
    from rich.text import Text

    parts: list[RenderableType] = [Text(c.summary), _path(c)]
    for w in c.warnings:
        parts.append(
            Text.assemble(
                ("! ", "bold yellow"), (f"{w.code}: ", "bold yellow"), (w.message, "yellow")
            )
        )
    if c.measured is not None:
        m = c.measured
        scores = ", ".join(f"{arm} {score:.2f}" for arm, score in m.scores.items())
        parts.append(Text(f"lab ({m.metric}, unseen items): {scores}", style="cyan"))
        if m.reader_gap is not None:
            parts.append(Text(m.reader_gap.sentence(), style="cyan"))
    parts.append(
        Text(
            f"over {c.cost.horizon_months} months: "
            + ", ".join(f"{s} {usd(c.cost.strategies[s].total)}" for s in STRATEGIES),
            style="dim",
        )
    )
    title = Text.assemble((c.name, "bold"), "  ", _decision(c.decision))
    return Panel(Group(*parts), title=title, title_align="left", border_style="dim")


def portfolio(report: AuditReport) -> Text:
    """The portfolio's totals, its break-evens and the retraining it saves."""
    from rich.text import Text

    p = report.portfolio
    return Text.assemble(
        ("Portfolio over ", "bold"),
        (f"{report.horizon_months} months: ", "bold"),
        ("plan ", "bold"),
        (usd(p.strategies["plan"].total), "bold green"),
        " vs fine-tune everything ",
        usd(p.strategies["fine-tune everything"].total),
        " vs prompt everything ",
        usd(p.strategies["prompt everything"].total),
        ".\n",
        break_even_sentence(p),
        "\nRetraining saved: ",
        retraining_saved(p),
        ".",
    )
