"""Render the lab's result: Markdown, one self-contained HTML page with two charts, and JSON.

The input is the plain, JSON-ready dict the lab runner produces: the five arms' metrics, the
per-capability breakdown, the drift test (or None), the verdicts against the audit and every
call. Any metric may be null (an arm that could not run, a capability without a contract); it
shows as "n/a" in tables and is left out of charts. Markdown and HTML are built from the same
formatted tables (:mod:`ragtune.lab.tables`), so the two never disagree; the HTML page adds the
charts of :mod:`ragtune.lab.charts` and is laid out by ``templates/lab.html.j2``. matplotlib and
jinja2 are imported only when the HTML page is rendered.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.lab.cells import NA, code_spans, missing, pct, secs, text_or_na, usd
from ragtune.lab.charts import accuracy_chart, cost_chart
from ragtune.lab.tables import (
    adapters_table,
    arms_of,
    arms_table,
    calls_table,
    capability_table,
    drift_arms_of,
    drift_facts,
    drift_table,
    retrained_line,
    settings_facts,
    setup_table,
)
from ragtune.project import write_atomic

if TYPE_CHECKING:
    import jinja2

__all__ = ["render_html", "render_markdown", "write_reports"]


# -- the summary and the verdicts -----------------------------------------------------------------


def _best(rows: Sequence[dict[str, Any]], key: str, *, lowest: bool = False) -> dict[str, Any]:
    """The row with the highest (or lowest) non-null ``key``; the first on a tie; {} for none."""
    scored = [r for r in rows if not missing(r.get(key))]
    if not scored:
        return {}
    pick = min if lowest else max
    return pick(scored, key=lambda r: float(r[key]))


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
    arms = arms_of(data)
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
        text.append(f"{best['name']} scored the most facts ({pct(best['fact_accuracy'])}).")
    else:
        text.append("No arm has a fact accuracy.")
    if cheapest:
        text.append(
            f"{cheapest['name']} cost least ({usd(cheapest['cost_per_1k'])} per 1,000 calls)."
        )
    drift = data.get("drift")
    if drift:
        after = _best(list((drift_arms_of(data) or {}).values()), "fact_accuracy")
        changed = f"`{drift.get('change_set')}`" if drift.get("change_set") else "a change set"
        sentence = f"When the knowledge changed ({changed}"
        if drift.get("questions") is not None:
            sentence += f", {drift['questions']} questions"
        sentence += "), "
        if after:
            sentence += (
                f"{after['name']} answered {pct(after['fact_accuracy'])} of the changed "
                "questions right"
            )
        else:
            sentence += "no arm was scored on the changed questions"
        sentence += (
            f"; re-syncing the knowledge took {secs(drift.get('resync_seconds'))}, "
            f"retraining a LoRA {secs(drift.get('retrain_seconds'))}."
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
        f"Base model `{base}` · knowledge snapshot {text_or_na(data.get('knowledge_snapshot'))} · "
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
    out += ["", "## Arms", "", arms_table(data).markdown(), ""]
    out += [
        "## By capability",
        "",
        "Fact accuracy / contract compliance of each arm on each capability.",
        "",
        capability_table(data).markdown(),
        "",
    ]
    setup = setup_table(data)
    if setup is not None:
        out += ["### How each arm served each capability", "", setup.markdown(), ""]
    drift = data.get("drift")
    if drift:
        out += ["## Drift", ""]
        out += [f"- {label}: {value}" for label, value in drift_facts(drift)]
        out += ["", drift_table(data).markdown(), ""]
        retrained = retrained_line(drift)
        if retrained:
            out += [f"- {retrained}", ""]
    adapters = adapters_table(data)
    out += ["## Adapters", "", adapters.markdown() if adapters else "No adapters.", ""]
    out += ["## Settings", ""]
    out += [f"- {label}: {value}" for label, value in settings_facts(data)]
    out.append("")
    return "\n".join(out)


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
        snapshot=text_or_na(data.get("knowledge_snapshot")),
        summary=code_spans(_summary(data)),
        verdicts=[(code_spans(text), word) for text, word in _verdicts(data)],
        arms=arms_table(data),
        accuracy_chart=Markup(accuracy_chart(data)),
        cost_chart=Markup(cost_chart(data)),
        capabilities=capability_table(data),
        setup=setup_table(data),
        drift=(
            {
                "facts": [(k, code_spans(v)) for k, v in drift_facts(drift)],
                "table": drift_table(data),
                "retrained": retrained_line(drift),
            }
            if drift
            else None
        ),
        adapters=adapters_table(data),
        settings=[(k, code_spans(v)) for k, v in settings_facts(data)],
        calls=calls_table(data),
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
