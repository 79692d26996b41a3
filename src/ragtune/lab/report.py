"""Render the lab's result: Markdown, one self-contained HTML page with two charts, and JSON.

The input is the plain, JSON-ready dict the lab runner produces: the five arms' metrics, the
per-capability breakdown, the drift test (or None), the verdicts against the audit and every
call. Any metric may be null (an arm that could not run, a capability without a contract); it
shows as "n/a" in tables and is left out of charts. Markdown and HTML are built from the same
formatted tables, so the two never disagree. matplotlib and jinja2 are imported only when the
HTML page is rendered.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.audit.report import DECISION_COLOURS, figure_svg, md_table
from ragtune.project import write_atomic

if TYPE_CHECKING:
    import jinja2
    from markupsafe import Markup

__all__ = ["render_html", "render_markdown", "write_reports"]

NA = "n/a"
INPUT_CLIP = 120
ANSWER_CLIP = 200

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
ALL_QUESTIONS = ("all questions", "#475569")
CHANGED_BEFORE = ("changed questions, before the change", "#a5b4fc")
CHANGED_AFTER = ("changed questions, after the change", "#4338ca")

ACCURACY_TITLE = "Fact accuracy per arm"
COST_TITLE = "Cost against accuracy"


# -- formatting -----------------------------------------------------------------------------------


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _pct(value: float | None) -> str:
    """A share as a whole percentage: ``0.92`` -> ``"92%"``."""
    return NA if _missing(value) else f"{value:.0%}"


def _secs(value: float | None) -> str:
    return NA if _missing(value) else f"{value:,.2f} s"


def _usd(value: float | None) -> str:
    return NA if _missing(value) else f"${value:,.4f}"


def _tokens(value: float | None) -> str:
    return NA if _missing(value) else f"{value:,.0f}"


def _score(value: float | None) -> str:
    return NA if _missing(value) else f"{value:.2f}"


def _yes_no(value: bool | None) -> str:
    return NA if value is None else ("yes" if value else "no")


def _text(value: object) -> str:
    return NA if value is None else str(value)


# What a null setting means, where "default" would not say it.
_NULL_SETTINGS = {"max_items": "all"}


def _plain(value: object) -> str:
    """A setting's value: null means the lab's default."""
    if value is None:
        return "default"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) if value else "none"
    return str(value)


def _spread(stats: dict[str, float] | None) -> str:
    """A metric over seeds as ``"± 3% (88%-95%)"``."""
    if not stats or any(_missing(stats.get(k)) for k in ("std", "min", "max")):
        return NA
    return f"± {stats['std']:.0%} ({stats['min']:.0%}-{stats['max']:.0%})"


def _clip(text: object, limit: int) -> str:
    """One line of at most ``limit`` characters, with an ellipsis where it was cut."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _code_spans(text: str) -> Markup:
    """Escaped text, with Markdown ``code`` spans as ``<code>``."""
    from markupsafe import Markup, escape

    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: show the text as it is
        return escape(text)
    return Markup("").join(
        Markup("<code>{}</code>").format(p) if i % 2 else escape(p) for i, p in enumerate(parts)
    )


# -- the data, read once --------------------------------------------------------------------------


def _arms(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in data.get("arms") or [] if isinstance(a, dict)]


def _drift_arms(data: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The drift test's arms by name, or None when the lab ran no drift test."""
    drift = data.get("drift")
    if not drift:
        return None
    return {str(a.get("name")): a for a in drift.get("arms") or [] if isinstance(a, dict)}


def _arm_names(data: dict[str, Any]) -> list[str]:
    """The arms in the lab's order, then any the drift test has that the lab does not."""
    names = [str(a.get("name")) for a in _arms(data)]
    names += [n for n in _drift_arms(data) or {} if n not in names]
    return names


def _capabilities(data: dict[str, Any]) -> list[str]:
    """Capabilities in the eval set's order, then any an arm reports that the eval set does not."""
    names = list((data.get("eval") or {}).get("by_capability") or {})
    for arm in _arms(data):
        names += [c for c in arm.get("by_capability") or {} if c not in names]
    return names


def _best(rows: Sequence[dict[str, Any]], key: str, *, lowest: bool = False) -> dict[str, Any]:
    """The row with the highest (or lowest) non-null ``key``; the first on a tie; {} for none."""
    scored = [r for r in rows if not _missing(r.get(key))]
    if not scored:
        return {}
    pick = min if lowest else max
    return pick(scored, key=lambda r: float(r[key]))


@dataclass(frozen=True)
class _Table:
    """Formatted cells shared by the Markdown and the HTML; the last ``numeric`` are numbers."""

    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    numeric: int = 0

    @property
    def first_numeric(self) -> int:
        return len(self.headers) - self.numeric

    def markdown(self) -> str:
        return md_table(self.headers, self.rows, numeric=self.numeric)


def _arms_table(data: dict[str, Any]) -> _Table:
    arms = _arms(data)
    spread = any(a.get("spread") for a in arms)
    headers = ["arm", "fact accuracy"]
    headers += ["fact accuracy over seeds"] if spread else []
    headers += ["contract compliance"]
    headers += ["compliance over seeds"] if spread else []
    headers += ["p50 latency", "tokens / call", "USD / 1k calls"]
    rows = []
    for a in arms:
        seeds = a.get("spread") or {}
        row = [str(a.get("name")), _pct(a.get("fact_accuracy"))]
        row += [_spread(seeds.get("fact_accuracy"))] if spread else []
        row += [_pct(a.get("contract_compliance"))]
        row += [_spread(seeds.get("contract_compliance"))] if spread else []
        row += [
            _secs(a.get("latency_p50_s")),
            _tokens(a.get("tokens_per_call")),
            _usd(a.get("cost_per_1k")),
        ]
        rows.append(row)
    return _Table(headers, rows, numeric=len(headers) - 1)


def _capability_table(data: dict[str, Any]) -> _Table:
    """Arm by capability: fact accuracy / contract compliance."""
    counts = (data.get("eval") or {}).get("by_capability") or {}
    capabilities = _capabilities(data)
    headers = ["arm"] + [
        f"{c} ({counts[c]} items)" if counts.get(c) is not None else c for c in capabilities
    ]
    rows = []
    for a in _arms(data):
        by = a.get("by_capability") or {}
        cells = []
        for c in capabilities:
            m = by.get(c) or {}
            cells.append(f"{_pct(m.get('fact_accuracy'))} / {_pct(m.get('contract_compliance'))}")
        rows.append([str(a.get("name")), *cells])
    return _Table(headers, rows, numeric=len(capabilities))


def _setup_table(data: dict[str, Any]) -> _Table | None:
    """How each arm served each capability, or None when no arm says."""
    capabilities = _capabilities(data)
    arms = _arms(data)
    if not any(a.get("setup") for a in arms):
        return None
    rows = [
        [str(a.get("name")), *((a.get("setup") or {}).get(c) or NA for c in capabilities)]
        for a in arms
    ]
    return _Table(["arm", *capabilities], rows)


def _time_to_correct(arm: dict[str, Any]) -> str:
    if not _missing(arm.get("time_to_correct_s")):
        return _secs(arm.get("time_to_correct_s"))
    # No time: the arm was measured and never gave the new facts, or it was not measured at all.
    return NA if _missing(arm.get("fact_accuracy")) else "not corrected"


def _drift_table(data: dict[str, Any]) -> _Table:
    headers = ["arm", "accuracy before", "accuracy after", "stale share", "time to correct"]
    rows = [
        [
            name,
            _pct(a.get("fact_accuracy_before")),
            _pct(a.get("fact_accuracy")),
            _pct(a.get("stale_share")),
            _time_to_correct(a),
        ]
        for name, a in (_drift_arms(data) or {}).items()
    ]
    return _Table(headers, rows, numeric=4)


def _drift_facts(drift: dict[str, Any]) -> list[tuple[str, str]]:
    """The drift test's setting as (label, value) pairs; values may hold ``code`` spans."""
    documents = drift.get("documents") or []
    resync: float | None = drift.get("resync_seconds")
    retrain: float | None = drift.get("retrain_seconds")
    timing = f"re-sync {_secs(resync)} against retraining {_secs(retrain)}"
    if resync is not None and retrain is not None and resync > 0 and not math.isnan(retrain):
        timing += f" (re-sync about {retrain / resync:,.0f}× faster)"
    return [
        ("change set", f"`{drift.get('change_set')}`" if drift.get("change_set") else NA),
        ("documents changed", ", ".join(f"`{d}`" for d in documents) if documents else "none"),
        ("questions changed", _text(drift.get("questions"))),
        ("knowledge update", timing),
    ]


def _retrained_line(drift: dict[str, Any]) -> str | None:
    r = drift.get("retrained")
    if not r:
        return None
    return (
        f"{r.get('name') or 'LoRA (retrained)'}: fact accuracy {_pct(r.get('fact_accuracy'))}, "
        f"stale share {_pct(r.get('stale_share'))}, retrained in {_secs(r.get('seconds'))}."
    )


def _adapters_table(data: dict[str, Any]) -> _Table | None:
    adapters = [a for a in data.get("adapters") or [] if isinstance(a, dict)]
    if not adapters:
        return None
    sources = {"lab": "trained by the lab", "project": "the project's own"}
    rows = [
        [
            str(a.get("name")),
            str(a.get("capability") or NA),
            str(a.get("arm") or NA),
            sources.get(a.get("source") or "", str(a.get("source") or NA)),
            _yes_no(a.get("context")),
            NA if a.get("steps") is None else f"{a['steps']:,}",
            _secs(a.get("seconds")),
        ]
        for a in adapters
    ]
    headers = ["adapter", "capability", "arm", "source", "trained with context", "steps", "time"]
    return _Table(headers, rows, numeric=2)


def _settings(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Everything the result was made from, as (label, value) pairs."""
    base = data.get("base_model") or {}
    ev = data.get("eval") or {}
    counts = ev.get("by_capability") or {}
    items = _text(ev.get("items"))
    if counts:
        items += " (" + ", ".join(f"{c} {n}" for c, n in counts.items()) + ")"
    sha = base.get("sha256")
    pairs = [
        ("base model", f"{base.get('name') or NA}" + (f" (sha256 `{sha}`)" if sha else "")),
        ("knowledge snapshot", _text(data.get("knowledge_snapshot"))),
        ("eval files", ", ".join(f"`{f}`" for f in ev.get("files") or []) or "none"),
        ("eval items", items),
    ]
    pairs += [
        (k.replace("_", " "), _NULL_SETTINGS.get(k, "default") if v is None else _plain(v))
        for k, v in (data.get("settings") or {}).items()
    ]
    pairs += [
        ("ragtune", str(data.get("ragtune_version") or NA)),
        ("created", str(data.get("created_at") or NA)),
    ]
    return pairs


def _verdicts(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Each verdict's text and whether the lab agrees with the audit."""
    out = []
    for v in data.get("verdicts") or []:
        agrees = v.get("agrees")
        word = NA if agrees is None else ("agrees" if agrees else "disagrees")
        out.append((str(v.get("text") or v.get("capability") or ""), word))
    return out


def _summary(data: dict[str, Any]) -> str:
    """One paragraph: what was compared, what won, what the drift test showed."""
    arms = _arms(data)
    ev = data.get("eval") or {}
    base = (data.get("base_model") or {}).get("name")
    names = ", ".join(str(a.get("name")) for a in arms)
    on = f"{ev['items']} eval questions" if ev.get("items") is not None else "the eval set"
    counts = ev.get("by_capability") or {}
    if counts:
        on += " (" + ", ".join(f"{c} {n}" for c, n in counts.items()) + ")"
    text = [
        f"The lab compared {len(arms)} ways of serving the capabilities"
        + (f" ({names})" if names else "")
        + f" on {on}"
        + (f", with {base} as the base model." if base else ".")
    ]
    best, cheapest = _best(arms, "fact_accuracy"), _best(arms, "cost_per_1k", lowest=True)
    if best:
        text.append(f"{best['name']} scored the most facts ({_pct(best['fact_accuracy'])}).")
    else:
        text.append("No arm has a fact accuracy.")
    if cheapest:
        text.append(
            f"{cheapest['name']} cost least ({_usd(cheapest['cost_per_1k'])} per 1,000 calls)."
        )
    drift = data.get("drift")
    if drift:
        after = _best(list((_drift_arms(data) or {}).values()), "fact_accuracy")
        changed = f"`{drift.get('change_set')}`" if drift.get("change_set") else "a change set"
        sentence = f"When the knowledge changed ({changed}"
        if drift.get("questions") is not None:
            sentence += f", {drift['questions']} questions"
        sentence += "), "
        if after:
            sentence += (
                f"{after['name']} answered {_pct(after['fact_accuracy'])} of the changed "
                "questions right"
            )
        else:
            sentence += "no arm was scored on the changed questions"
        sentence += (
            f"; re-syncing the knowledge took {_secs(drift.get('resync_seconds'))}, "
            f"retraining a LoRA {_secs(drift.get('retrain_seconds'))}."
        )
        text.append(sentence)
    else:
        text.append("The lab ran no drift test.")
    judged = [w for _, w in _verdicts(data) if w != NA]
    if judged:
        text.append(
            f"The lab agrees with the audit on {judged.count('agrees')} of {len(judged)} "
            f"capabilit{'y' if len(judged) == 1 else 'ies'}."
        )
    return " ".join(text)


# -- Markdown -------------------------------------------------------------------------------------


def render_markdown(data: dict[str, Any]) -> str:
    """The lab's result as a Markdown document.

    Args:
        data: the lab's result as a JSON-ready dict: ``project``, ``created_at``,
            ``ragtune_version``, ``base_model``, ``knowledge_snapshot``, ``eval``, ``settings``,
            ``arms``, ``adapters``, ``drift`` (or None), ``verdicts`` and ``calls``. Null metrics
            show as "n/a".

    Returns:
        Title, summary, verdicts, the arms, the per-capability table, the drift test when there
        was one, the adapters and the settings.
    """
    base = (data.get("base_model") or {}).get("name") or NA
    out = [
        f"# ragtune lab: {data.get('project') or NA}",
        "",
        f"Base model `{base}` · knowledge snapshot {_text(data.get('knowledge_snapshot'))} · "
        f"ragtune {data.get('ragtune_version') or NA} · generated {data.get('created_at') or NA}",
        "",
        "## Summary",
        "",
        _summary(data),
        "",
        "## Verdicts",
        "",
    ]
    verdicts = _verdicts(data)
    out += [f"- {text} ({word})" for text, word in verdicts] or ["No verdicts."]
    out += ["", "## Arms", "", _arms_table(data).markdown(), ""]
    out += [
        "## By capability",
        "",
        "Fact accuracy / contract compliance of each arm on each capability.",
        "",
        _capability_table(data).markdown(),
        "",
    ]
    setup = _setup_table(data)
    if setup is not None:
        out += ["### How each arm served each capability", "", setup.markdown(), ""]
    drift = data.get("drift")
    if drift:
        out += ["## Drift", ""]
        out += [f"- {label}: {value}" for label, value in _drift_facts(drift)]
        out += ["", _drift_table(data).markdown(), ""]
        retrained = _retrained_line(drift)
        if retrained:
            out += [f"- {retrained}", ""]
    adapters = _adapters_table(data)
    out += ["## Adapters", "", adapters.markdown() if adapters else "No adapters.", ""]
    out += ["## Settings", ""]
    out += [f"- {label}: {value}" for label, value in _settings(data)]
    out.append("")
    return "\n".join(out)


# -- charts ---------------------------------------------------------------------------------------


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
        shown = [(x + offset, float(v)) for x, v in enumerate(values) if not _missing(v)]
        if shown:
            xs, ys = zip(*shown, strict=True)
            bars = ax.bar(xs, ys, width * 0.92, label=label, color=colour, zorder=2)
            ax.bar_label(bars, labels=[f"{y:.0%}" for y in ys], fontsize=6.5, padding=1)
        for x, v in enumerate(values):
            if _missing(v):
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


def _accuracy_chart(data: dict[str, Any]) -> str:
    """Grouped bars: fact accuracy per arm, on the changed questions before and after the
    change when the lab ran a drift test, and contract compliance beside it when measured."""
    from matplotlib.ticker import PercentFormatter

    names = _arm_names(data)
    by_name = {str(a.get("name")): a for a in _arms(data)}
    drift = _drift_arms(data)
    series = [(*ALL_QUESTIONS, [by_name.get(n, {}).get("fact_accuracy") for n in names])]
    if drift is not None:
        series.append(
            (*CHANGED_BEFORE, [drift.get(n, {}).get("fact_accuracy_before") for n in names])
        )
        series.append((*CHANGED_AFTER, [drift.get(n, {}).get("fact_accuracy") for n in names]))
    compliance = [by_name.get(n, {}).get("contract_compliance") for n in names]
    with_compliance = any(not _missing(v) for v in compliance)

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
            shown = [n for n, v in zip(names, compliance, strict=True) if not _missing(v)]
            for patch, name in zip(side.patches, shown, strict=True):
                patch.set_facecolor(colours[names.index(name)])
            side.set_title("Contract compliance", loc="left", fontsize=10, fontweight="bold")
            side.yaxis.set_major_formatter(PercentFormatter(1.0))
            side.tick_params(axis="x", labelrotation=30)
            _style(side)
        return figure_svg(fig, ACCURACY_TITLE)


def _cost_chart(data: dict[str, Any]) -> str:
    """A scatter of USD per 1,000 calls against fact accuracy, each point named by its arm."""
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    points = [
        (str(a.get("name")), float(a["cost_per_1k"]), float(a["fact_accuracy"]))
        for a in _arms(data)
        if not _missing(a.get("cost_per_1k")) and not _missing(a.get("fact_accuracy"))
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
        left_out = [str(a.get("name")) for a in _arms(data)]
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
        ax.set_ylabel("fact accuracy")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"${v:,.{decimals}f}"))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        _style(ax)
        ax.grid(True, axis="x", color="#e5e7eb", linewidth=0.8)
        return figure_svg(fig, COST_TITLE)


# -- HTML -----------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("ragtune.lab", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _calls_table(data: dict[str, Any]) -> _Table:
    headers = ["arm", "capability", "phase", "where", "input", "answer"]
    headers += ["fact score", "contract ok", "stale", "time"]
    rows = [
        [
            str(c.get("arm") or NA),
            str(c.get("capability") or NA),
            str(c.get("phase") or NA),
            str(c.get("where") or NA),
            _clip(c.get("input"), INPUT_CLIP),
            _clip(c.get("answer"), ANSWER_CLIP),
            _score(c.get("fact_score")),
            _yes_no(c.get("contract_ok")),
            _yes_no(c.get("stale")),
            _secs(c.get("seconds")),
        ]
        for c in data.get("calls") or []
        if isinstance(c, dict)
    ]
    return _Table(headers, rows, numeric=4)


def render_html(data: dict[str, Any]) -> str:
    """The lab's result as one self-contained HTML page.

    The page shows what :func:`render_markdown` shows, plus two inline SVG charts (fact accuracy
    per arm, cost against accuracy) and a collapsible table of every call. CSS and charts are
    inline; nothing is loaded from outside, and all text from the data is escaped.

    Args:
        data: the lab's result, in the shape :func:`render_markdown` takes.
    """
    from markupsafe import Markup

    drift = data.get("drift")
    template = _environment().get_template("lab.html.j2")
    return template.render(
        project=data.get("project") or NA,
        version=data.get("ragtune_version") or NA,
        created_at=data.get("created_at") or NA,
        base_model=(data.get("base_model") or {}).get("name") or NA,
        snapshot=_text(data.get("knowledge_snapshot")),
        summary=_code_spans(_summary(data)),
        verdicts=[(_code_spans(text), word) for text, word in _verdicts(data)],
        arms=_arms_table(data),
        accuracy_chart=Markup(_accuracy_chart(data)),
        cost_chart=Markup(_cost_chart(data)),
        capabilities=_capability_table(data),
        setup=_setup_table(data),
        drift=(
            {
                "facts": [(k, _code_spans(v)) for k, v in _drift_facts(drift)],
                "table": _drift_table(data),
                "retrained": _retrained_line(drift),
            }
            if drift
            else None
        ),
        adapters=_adapters_table(data),
        settings=[(k, _code_spans(v)) for k, v in _settings(data)],
        calls=_calls_table(data),
    )


# -- files ----------------------------------------------------------------------------------------


def write_reports(data: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Write ``lab.md``, ``lab.html`` and ``lab.json`` into ``folder``, each atomically.

    Everything is rendered before anything is written, so a rendering error leaves the folder
    as it was; each file is written to a temporary file beside it and then replaced.

    Args:
        data: the lab's result, in the shape :func:`render_markdown` takes; it must be
            JSON-serialisable, and ``lab.json`` holds it unchanged.
        folder: where to write; created when missing.

    Returns:
        The paths written, under the keys ``"markdown"``, ``"html"`` and ``"json"``.
    """
    texts = {
        "json": ("lab.json", json.dumps(data, indent=2) + "\n"),
        "markdown": ("lab.md", render_markdown(data)),
        "html": ("lab.html", render_html(data)),
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for key in ("markdown", "html", "json"):
        name, text = texts[key]
        paths[key] = folder / name
        write_atomic(paths[key], text)
    return paths
