"""Render the lab's result: Markdown, one self-contained HTML page with two charts, and JSON.

The input is the :class:`~ragtune.lab.results.LabResult` the lab runner produces (or the JSON of
one, ``lab.json``, read back with its ``from_dict``): the arms' metrics - unseen, seen and
rephrased apart - the per-capability breakdown, the split, the drift test (or None), the
verdicts against the audit and every call. Only unseen scores rank an arm. Any metric may be
null (an arm that could not run, a capability without a contract); it shows as "n/a" in tables
and is left out of charts. Markdown and HTML are built from the same
formatted tables (:mod:`ragtune.lab.tables`), so the two never disagree; the HTML page adds the
charts of :mod:`ragtune.lab.charts` and is laid out by ``templates/lab.html.j2``. matplotlib and
jinja2 are imported only when the HTML page is rendered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.lab.cells import NA, code_spans, missing, pct, secs, text_or_na, usd
from ragtune.lab.charts import accuracy_chart, cost_chart
from ragtune.lab.records import DriftResult
from ragtune.lab.results import ArmResult, LabResult, as_result
from ragtune.lab.tables import (
    adapters_table,
    arms_table,
    calls_table,
    capability_table,
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


def _verdicts(data: LabResult) -> list[tuple[str, str]]:
    """Each verdict's text and whether the lab agrees with the audit."""
    out = []
    for v in data.verdicts:
        word = NA if v.agrees is None else ("agrees" if v.agrees else "disagrees")
        out.append((v.text or v.capability, word))
    return out


def _ranked(arms: Sequence[ArmResult]) -> tuple[ArmResult | None, list[str]]:
    """The arm with the highest fact accuracy on unseen questions (the first on a tie), and
    the arms that have a score only on questions their adapter trained on."""
    scored = [a for a in arms if not missing(a.fact_accuracy)]
    seen_only = [
        a.name
        for a in arms
        if missing(a.fact_accuracy) and a.seen is not None and not missing(a.seen.fact_accuracy)
    ]
    best = max(scored, key=lambda a: float(a.fact_accuracy or 0.0)) if scored else None
    return best, seen_only


def _summary(data: LabResult) -> str:
    """One paragraph: what was compared, what won on unseen questions, what the drift test
    showed."""
    arms = data.arms
    ev = data.eval
    base = data.base_model.get("name")
    names = ", ".join(a.name for a in arms)
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
    best, seen_only = _ranked(arms)
    if best is not None:
        text.append(
            f"On questions no adapter trained on, {best.name} scored the most facts "
            f"({pct(best.fact_accuracy)})."
        )
    else:
        text.append("No arm has a fact accuracy on unseen questions.")
    if seen_only:
        text.append(
            f"{', '.join(seen_only)} had no unseen question (only ones "
            f"{'its adapter' if len(seen_only) == 1 else 'their adapters'} trained on), so "
            f"{'it is' if len(seen_only) == 1 else 'they are'} not ranked."
        )
    memorised = [a for a in arms if a.seen is not None and a.seen.items]
    if memorised:
        text.append(
            "On the questions their adapters trained on: "
            + ", ".join(f"{a.name} {pct(a.seen.fact_accuracy)}" for a in memorised if a.seen)
            + " (memorisation, not ranked)."
        )
    cheapest = [a for a in arms if not missing(a.cost_per_1k)]
    if cheapest:
        low = min(cheapest, key=lambda a: float(a.cost_per_1k or 0.0))
        text.append(f"{low.name} cost least ({usd(low.cost_per_1k)} per 1,000 calls).")
    text.append(_drift_sentence(data.drift))
    judged = [w for _, w in _verdicts(data) if w != NA]
    if judged:
        text.append(
            f"The lab agrees with the audit on {judged.count('agrees')} of {len(judged)} "
            f"capabilit{'y' if len(judged) == 1 else 'ies'}."
        )
    return " ".join(text)


def _drift_sentence(drift: DriftResult | None) -> str:
    """What the drift test showed, in one sentence: the best arm on the changed questions the
    arms did not train on."""
    if drift is None:
        return "The lab ran no drift test."
    changed = f"`{drift.change_set}`" if drift.change_set else "a change set"
    sentence = f"When the knowledge changed ({changed}"
    if drift.questions is not None:
        sentence += f", {drift.questions} questions"
    sentence += "), "
    scored = [a for a in drift.arms if not missing(a.unseen_fact_accuracy)]
    if scored:
        after = max(scored, key=lambda a: float(a.unseen_fact_accuracy or 0.0))
        sentence += (
            f"{after.name} answered {pct(after.unseen_fact_accuracy)} of the changed "
            "questions it had not trained on right"
        )
    else:
        sentence += "no arm was scored on changed questions it had not trained on"
    return sentence + (
        f"; re-syncing the knowledge took {secs(drift.resync_seconds)}, "
        f"retraining a LoRA {secs(drift.retrain_seconds)}."
    )


# -- Markdown -------------------------------------------------------------------------------------

ARMS_NOTE = (
    "Fact accuracy on the questions each arm did not train on (unseen) ranks the arms; for an "
    "arm that serves an adapter, seen is its accuracy on the questions the adapter trained on "
    "and rephrased on those questions asked in other words (items in brackets). An arm "
    "without adapter has only the unseen column."
)
CAPABILITY_NOTE = (
    "Fact accuracy / contract compliance of each arm on each capability's unseen questions; "
    "seen and rephrased after it for an arm that serves an adapter."
)


def render_markdown(data: LabResult | Mapping[str, Any]) -> str:
    """The lab's result as a Markdown document.

    Args:
        data: the lab's result, or the JSON of it (``lab.json``, read with
            :meth:`~ragtune.lab.results.LabResult.from_dict`). Null metrics show as "n/a".

    Returns:
        Title, summary, verdicts, the arms (unseen, seen and rephrased side by side), the
        per-capability table, the drift test when there was one, the adapters and the settings
        (with the split and the estimate).
    """
    data = as_result(data)
    base = data.base_model.get("name") or NA
    out = [
        f"# ragtune lab: {data.project or NA}",
        "",
        f"Base model `{base}` · knowledge snapshot {text_or_na(data.knowledge_snapshot)} · "
        f"ragtune {data.ragtune_version or NA} · generated {data.created_at or NA}",
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
    out += ["", "## Arms", "", ARMS_NOTE, "", arms_table(data).markdown(), ""]
    out += [
        "## By capability",
        "",
        CAPABILITY_NOTE,
        "",
        capability_table(data).markdown(),
        "",
    ]
    setup = setup_table(data)
    if setup is not None:
        out += ["### How each arm served each capability", "", setup.markdown(), ""]
    drift = data.drift
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


def render_html(data: LabResult | Mapping[str, Any]) -> str:
    """The lab's result as one self-contained HTML page.

    The page shows what :func:`render_markdown` shows, plus two inline SVG charts (fact accuracy
    per arm, cost against accuracy) and a collapsible table of every call. CSS and charts are
    inline; nothing is loaded from outside, and all text from the data is escaped.

    Args:
        data: the lab's result, as :func:`render_markdown` takes it.
    """
    from markupsafe import Markup

    data = as_result(data)
    drift = data.drift
    template = _environment().get_template("lab.html.j2")
    return template.render(
        project=data.project or NA,
        version=data.ragtune_version or NA,
        created_at=data.created_at or NA,
        base_model=data.base_model.get("name") or NA,
        snapshot=text_or_na(data.knowledge_snapshot),
        summary=code_spans(_summary(data)),
        verdicts=[(code_spans(text), word) for text, word in _verdicts(data)],
        arms_note=ARMS_NOTE,
        capability_note=CAPABILITY_NOTE,
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


def write_reports(data: LabResult | Mapping[str, Any], folder: Path) -> dict[str, Path]:
    """Write ``lab.md``, ``lab.html`` and ``lab.json`` into ``folder``, each atomically.

    Everything is rendered before anything is written, so a rendering error leaves the folder
    as it was; each file is written to a temporary file beside it and then replaced.

    Args:
        data: the lab's result, as :func:`render_markdown` takes it; ``lab.json`` holds its
            :meth:`~ragtune.lab.results.LabResult.to_dict`.
        folder: where to write; created when missing.

    Returns:
        The paths written, under the keys ``"markdown"``, ``"html"`` and ``"json"``.
    """
    data = as_result(data)
    texts = {
        "json": ("lab.json", json.dumps(data.to_dict(), indent=2) + "\n"),
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
