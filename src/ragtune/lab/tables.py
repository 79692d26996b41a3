"""The lab's result (:class:`~ragtune.lab.results.LabResult`) as formatted tables and (label,
value) lists: the Markdown and the HTML are built from the same ones, so the two never disagree.

An arm that serves an adapter has three fact-accuracy columns: *unseen* (what it did not train
on, the one that ranks), *seen* (the lines its adapter trained on) and *rephrased* (those lines
asked in other words); an arm without adapter has only the first ("—" in the others)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ragtune.audit.report import md_table
from ragtune.lab.cells import (
    NA,
    clip,
    missing,
    pct,
    plain,
    score,
    secs,
    seed_spread,
    text_or_na,
    tokens,
    usd,
    yes_no,
)
from ragtune.lab.records import DriftArm, DriftResult
from ragtune.lab.results import CapabilityResult, LabResult, Scores

__all__ = [
    "NO_ADAPTER",
    "UNKNOWN",
    "Table",
    "adapters_table",
    "arms_table",
    "calls_table",
    "capability_table",
    "drift_facts",
    "drift_table",
    "exposure_cell",
    "retrained_line",
    "settings_facts",
    "setup_table",
    "split_facts",
]

INPUT_CLIP = 120
ANSWER_CLIP = 200

# What a null setting means, where "default" would not say it.
_NULL_SETTINGS = {"max_items": "all"}


# -- the data, read once --------------------------------------------------------------------------


def _capabilities(data: LabResult) -> list[str]:
    """Capabilities in the eval set's order, then any an arm reports that the eval set does not."""
    names = list(_by_capability(data))
    for arm in data.arms:
        names += [c for c in arm.by_capability if c not in names]
    return names


def _by_capability(data: LabResult) -> dict[str, Any]:
    counts = data.eval.get("by_capability")
    return counts if isinstance(counts, dict) else {}


# -- the tables -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """Formatted cells shared by the Markdown and the HTML; the last ``numeric`` are numbers."""

    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    numeric: int = 0

    @property
    def first_numeric(self) -> int:
        return len(self.headers) - self.numeric

    def markdown(self) -> str:
        return md_table(self.headers, self.rows, numeric=self.numeric)


NO_ADAPTER = "—"
"""A seen or rephrased cell of an arm without adapter: it has one column, everything unseen."""

UNKNOWN = "unknown"
"""A seen cell of an arm whose adapter's manifest does not say what it trained on."""


def exposure_cell(scores: Scores | None, known: bool, metric: str = "fact_accuracy") -> str:
    """A seen or rephrased score with its items: ``"100% (2)"``; "—" for an arm without
    adapter, "unknown" where the adapter does not say what it trained on, "n/a" for no item."""
    if not known:
        return UNKNOWN
    if scores is None:
        return NO_ADAPTER
    if not scores.items:
        return NA
    return f"{pct(getattr(scores, metric))} ({scores.items})"


def arms_table(data: LabResult) -> Table:
    """The arms' metrics: unseen, seen and rephrased fact accuracy side by side (with their
    spread over seeds when the lab sampled), compliance, latency, tokens and cost."""
    spread = any(a.sampled for a in data.arms)
    headers = ["arm", "fact accuracy (unseen)"]
    headers += ["fact accuracy over seeds"] if spread else []
    headers += ["seen", "rephrased", "contract compliance"]
    headers += ["compliance over seeds"] if spread else []
    headers += ["p50 latency", "tokens / call", "USD / 1k calls"]
    rows = []
    for a in data.arms:
        row = [a.name, pct(a.fact_accuracy)]
        row += [seed_spread(a.fact_spread)] if spread else []
        row += [exposure_cell(a.seen, a.seen_known), exposure_cell(a.rephrased, a.seen_known)]
        row += [pct(a.contract_compliance)]
        row += [seed_spread(a.compliance_spread)] if spread else []
        row += [secs(a.latency_p50_s), tokens(a.tokens_per_call), usd(a.cost_per_1k)]
        rows.append(row)
    return Table(headers, rows, numeric=len(headers) - 1)


def capability_table(data: LabResult) -> Table:
    """Arm by capability: fact accuracy / contract compliance on unseen items, with the seen
    (and rephrased) fact accuracy after it for an arm that serves an adapter."""
    counts = _by_capability(data)
    capabilities = _capabilities(data)
    headers = ["arm"] + [
        f"{c} ({counts[c]} items)" if counts.get(c) is not None else c for c in capabilities
    ]
    rows = []
    for a in data.arms:
        cells = []
        for c in capabilities:
            m = a.by_capability.get(c) or CapabilityResult()
            cell = f"{pct(m.fact_accuracy)} / {pct(m.contract_compliance)}"
            if not a.seen_known:
                cell += f"; seen {UNKNOWN}"
            elif m.seen is not None:
                cell += f"; seen {exposure_cell(m.seen, True)}"
                if m.rephrased is not None and m.rephrased.items:
                    cell += f", rephrased {exposure_cell(m.rephrased, True)}"
            cells.append(cell)
        rows.append([a.name, *cells])
    return Table(headers, rows, numeric=len(capabilities))


def setup_table(data: LabResult) -> Table | None:
    """How each arm served each capability, or None when no arm says."""
    capabilities = _capabilities(data)
    if not any(a.setup for a in data.arms):
        return None
    rows = [[a.name, *(a.setup.get(c) or NA for c in capabilities)] for a in data.arms]
    return Table(["arm", *capabilities], rows)


def _time_to_correct(arm: DriftArm) -> str:
    if not missing(arm.time_to_correct_s):
        return secs(arm.time_to_correct_s)
    # No time: the arm was measured and never gave the new facts, or it was not measured at all.
    return NA if missing(arm.fact_accuracy) else "not corrected"


def _after_apart(arm: DriftArm) -> str:
    """Accuracy after the change on the unseen and the seen questions of an adapter arm."""
    if not arm.adapter:
        return NO_ADAPTER
    return f"{pct(arm.unseen_fact_accuracy)} / {pct(arm.seen_fact_accuracy)}"


def drift_table(data: LabResult) -> Table:
    """Per arm: accuracy before and after the change (after also unseen / seen apart), stale
    share, time to correct."""
    headers = ["arm", "accuracy before", "accuracy after", "after: unseen / seen"]
    headers += ["stale share", "time to correct"]
    rows = [
        [
            a.name,
            pct(a.fact_accuracy_before),
            pct(a.fact_accuracy),
            _after_apart(a),
            pct(a.stale_share),
            _time_to_correct(a),
        ]
        for a in (data.drift.arms if data.drift else ())
    ]
    return Table(headers, rows, numeric=5)


def drift_facts(drift: DriftResult) -> list[tuple[str, str]]:
    """The drift test's setting as (label, value) pairs; values may hold ``code`` spans."""
    resync, retrain = drift.resync_seconds, drift.retrain_seconds
    timing = f"re-sync {secs(resync)} against retraining {secs(retrain)}"
    if resync is not None and retrain is not None and resync > 0 and not math.isnan(retrain):
        timing += f" (re-sync about {retrain / resync:,.0f}× faster)"
    documents = drift.documents
    return [
        ("change set", f"`{drift.change_set}`" if drift.change_set else NA),
        ("documents changed", ", ".join(f"`{d}`" for d in documents) if documents else "none"),
        ("questions changed", text_or_na(drift.questions)),
        ("knowledge update", timing),
    ]


def retrained_line(drift: DriftResult) -> str | None:
    """The retrained LoRA arm in one sentence, or None when the lab did not retrain."""
    r = drift.retrained
    if r is None:
        return None
    return (
        f"{r.name}: fact accuracy {pct(r.fact_accuracy)}, "
        f"stale share {pct(r.stale_share)}, retrained in {secs(r.seconds)}."
    )


def adapters_table(data: LabResult) -> Table | None:
    """The adapters the arms used, with how many inputs each trained on, or None when none."""
    if not data.adapters:
        return None
    sources = {"lab": "trained by the lab", "project": "the project's own"}
    rows = [
        [
            a.name,
            a.capability or NA,
            a.arm or NA,
            sources.get(a.source or "", a.source or NA),
            yes_no(a.context),
            UNKNOWN if a.inputs is None else f"{a.inputs:,}",
            NA if a.steps is None else f"{a.steps:,}",
            secs(a.seconds),
        ]
        for a in data.adapters
    ]
    headers = ["adapter", "capability", "arm", "source", "trained with context"]
    headers += ["inputs trained on", "steps", "time"]
    return Table(headers, rows, numeric=3)


def split_facts(data: LabResult) -> list[tuple[str, str]]:
    """The train / held-out split as (label, value) pairs; none when the result has no split."""
    split = data.split
    if split is None:
        return []
    counts = ", ".join(
        f"{c} {n.get('train', 0)} train / {n.get('held_out', 0)} held out"
        for c, n in split.by_capability.items()
    )
    return [
        ("split", f"seed {split.seed}, {split.share:.0%} of the lines held out"),
        ("lines", counts or "none"),
    ]


def settings_facts(data: LabResult) -> list[tuple[str, str]]:
    """Everything the result was made from, as (label, value) pairs."""
    base = data.base_model
    counts = _by_capability(data)
    items = text_or_na(data.eval.get("items"))
    if counts:
        items += " (" + ", ".join(f"{c} {n}" for c, n in counts.items()) + ")"
    sha = base.get("sha256")
    pairs = [
        ("base model", f"{base.get('name') or NA}" + (f" (sha256 `{sha}`)" if sha else "")),
        ("knowledge snapshot", text_or_na(data.knowledge_snapshot)),
        ("eval files", ", ".join(f"`{f}`" for f in data.eval.get("files") or []) or "none"),
        ("eval items", items),
    ]
    pairs += split_facts(data)
    pairs += [
        (k.replace("_", " "), _NULL_SETTINGS.get(k, "default") if v is None else plain(v))
        for k, v in data.settings.items()
    ]
    if data.estimate is not None:
        pairs.append(("estimate before the run", clip(data.estimate.text(), 400)))
    pairs += [
        ("ragtune", str(data.ragtune_version or NA)),
        ("created", str(data.created_at or NA)),
    ]
    return pairs


def calls_table(data: LabResult) -> Table:
    """Every call, its input and answer clipped to one line."""
    headers = ["arm", "capability", "phase", "item", "where", "input", "answer"]
    headers += ["fact score", "contract ok", "stale", "time"]
    rows = [
        [
            str(c.get("arm") or NA),
            str(c.get("capability") or NA),
            str(c.get("phase") or NA),
            str(c.get("exposure") or "unseen"),
            str(c.get("where") or NA),
            clip(c.get("input"), INPUT_CLIP),
            clip(c.get("answer"), ANSWER_CLIP),
            score(c.get("fact_score")),
            yes_no(c.get("contract_ok")),
            yes_no(c.get("stale")),
            secs(c.get("seconds")),
        ]
        for c in data.calls
    ]
    return Table(headers, rows, numeric=4)
