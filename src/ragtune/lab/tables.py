"""The lab's result as formatted tables and (label, value) lists: the Markdown and the HTML are
built from the same ones, so the two never disagree."""

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

__all__ = [
    "Table",
    "adapters_table",
    "arms_of",
    "arms_table",
    "calls_table",
    "capability_table",
    "drift_arms_of",
    "drift_facts",
    "drift_table",
    "retrained_line",
    "settings_facts",
    "setup_table",
]

INPUT_CLIP = 120
ANSWER_CLIP = 200

# What a null setting means, where "default" would not say it.
_NULL_SETTINGS = {"max_items": "all"}


# -- the data, read once --------------------------------------------------------------------------


def arms_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The arms of the result, in the lab's order."""
    return [a for a in data.get("arms") or [] if isinstance(a, dict)]


def drift_arms_of(data: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The drift test's arms by name, or None when the lab ran no drift test."""
    drift = data.get("drift")
    if not drift:
        return None
    return {str(a.get("name")): a for a in drift.get("arms") or [] if isinstance(a, dict)}


def _capabilities(data: dict[str, Any]) -> list[str]:
    """Capabilities in the eval set's order, then any an arm reports that the eval set does not."""
    names = list((data.get("eval") or {}).get("by_capability") or {})
    for arm in arms_of(data):
        names += [c for c in arm.get("by_capability") or {} if c not in names]
    return names


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


def arms_table(data: dict[str, Any]) -> Table:
    """The arms' metrics, with their spread over seeds when the lab sampled."""
    arms = arms_of(data)
    spread = any(a.get("spread") for a in arms)
    headers = ["arm", "fact accuracy"]
    headers += ["fact accuracy over seeds"] if spread else []
    headers += ["contract compliance"]
    headers += ["compliance over seeds"] if spread else []
    headers += ["p50 latency", "tokens / call", "USD / 1k calls"]
    rows = []
    for a in arms:
        seeds = a.get("spread") or {}
        row = [str(a.get("name")), pct(a.get("fact_accuracy"))]
        row += [seed_spread(seeds.get("fact_accuracy"))] if spread else []
        row += [pct(a.get("contract_compliance"))]
        row += [seed_spread(seeds.get("contract_compliance"))] if spread else []
        row += [
            secs(a.get("latency_p50_s")),
            tokens(a.get("tokens_per_call")),
            usd(a.get("cost_per_1k")),
        ]
        rows.append(row)
    return Table(headers, rows, numeric=len(headers) - 1)


def capability_table(data: dict[str, Any]) -> Table:
    """Arm by capability: fact accuracy / contract compliance."""
    counts = (data.get("eval") or {}).get("by_capability") or {}
    capabilities = _capabilities(data)
    headers = ["arm"] + [
        f"{c} ({counts[c]} items)" if counts.get(c) is not None else c for c in capabilities
    ]
    rows = []
    for a in arms_of(data):
        by = a.get("by_capability") or {}
        cells = []
        for c in capabilities:
            m = by.get(c) or {}
            cells.append(f"{pct(m.get('fact_accuracy'))} / {pct(m.get('contract_compliance'))}")
        rows.append([str(a.get("name")), *cells])
    return Table(headers, rows, numeric=len(capabilities))


def setup_table(data: dict[str, Any]) -> Table | None:
    """How each arm served each capability, or None when no arm says."""
    capabilities = _capabilities(data)
    arms = arms_of(data)
    if not any(a.get("setup") for a in arms):
        return None
    rows = [
        [str(a.get("name")), *((a.get("setup") or {}).get(c) or NA for c in capabilities)]
        for a in arms
    ]
    return Table(["arm", *capabilities], rows)


def _time_to_correct(arm: dict[str, Any]) -> str:
    if not missing(arm.get("time_to_correct_s")):
        return secs(arm.get("time_to_correct_s"))
    # No time: the arm was measured and never gave the new facts, or it was not measured at all.
    return NA if missing(arm.get("fact_accuracy")) else "not corrected"


def drift_table(data: dict[str, Any]) -> Table:
    """Per arm: accuracy before and after the change, stale share, time to correct."""
    headers = ["arm", "accuracy before", "accuracy after", "stale share", "time to correct"]
    rows = [
        [
            name,
            pct(a.get("fact_accuracy_before")),
            pct(a.get("fact_accuracy")),
            pct(a.get("stale_share")),
            _time_to_correct(a),
        ]
        for name, a in (drift_arms_of(data) or {}).items()
    ]
    return Table(headers, rows, numeric=4)


def drift_facts(drift: dict[str, Any]) -> list[tuple[str, str]]:
    """The drift test's setting as (label, value) pairs; values may hold ``code`` spans."""
    documents = drift.get("documents") or []
    resync: float | None = drift.get("resync_seconds")
    retrain: float | None = drift.get("retrain_seconds")
    timing = f"re-sync {secs(resync)} against retraining {secs(retrain)}"
    if resync is not None and retrain is not None and resync > 0 and not math.isnan(retrain):
        timing += f" (re-sync about {retrain / resync:,.0f}× faster)"
    return [
        ("change set", f"`{drift.get('change_set')}`" if drift.get("change_set") else NA),
        ("documents changed", ", ".join(f"`{d}`" for d in documents) if documents else "none"),
        ("questions changed", text_or_na(drift.get("questions"))),
        ("knowledge update", timing),
    ]


def retrained_line(drift: dict[str, Any]) -> str | None:
    """The retrained LoRA arm in one sentence, or None when the lab did not retrain."""
    r = drift.get("retrained")
    if not r:
        return None
    return (
        f"{r.get('name') or 'LoRA (retrained)'}: fact accuracy {pct(r.get('fact_accuracy'))}, "
        f"stale share {pct(r.get('stale_share'))}, retrained in {secs(r.get('seconds'))}."
    )


def adapters_table(data: dict[str, Any]) -> Table | None:
    """The adapters the arms used, or None when none did."""
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
            yes_no(a.get("context")),
            NA if a.get("steps") is None else f"{a['steps']:,}",
            secs(a.get("seconds")),
        ]
        for a in adapters
    ]
    headers = ["adapter", "capability", "arm", "source", "trained with context", "steps", "time"]
    return Table(headers, rows, numeric=2)


def settings_facts(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Everything the result was made from, as (label, value) pairs."""
    base = data.get("base_model") or {}
    ev = data.get("eval") or {}
    counts = ev.get("by_capability") or {}
    items = text_or_na(ev.get("items"))
    if counts:
        items += " (" + ", ".join(f"{c} {n}" for c, n in counts.items()) + ")"
    sha = base.get("sha256")
    pairs = [
        ("base model", f"{base.get('name') or NA}" + (f" (sha256 `{sha}`)" if sha else "")),
        ("knowledge snapshot", text_or_na(data.get("knowledge_snapshot"))),
        ("eval files", ", ".join(f"`{f}`" for f in ev.get("files") or []) or "none"),
        ("eval items", items),
    ]
    pairs += [
        (k.replace("_", " "), _NULL_SETTINGS.get(k, "default") if v is None else plain(v))
        for k, v in (data.get("settings") or {}).items()
    ]
    pairs += [
        ("ragtune", str(data.get("ragtune_version") or NA)),
        ("created", str(data.get("created_at") or NA)),
    ]
    return pairs


def calls_table(data: dict[str, Any]) -> Table:
    """Every call, its input and answer clipped to one line."""
    headers = ["arm", "capability", "phase", "where", "input", "answer"]
    headers += ["fact score", "contract ok", "stale", "time"]
    rows = [
        [
            str(c.get("arm") or NA),
            str(c.get("capability") or NA),
            str(c.get("phase") or NA),
            str(c.get("where") or NA),
            clip(c.get("input"), INPUT_CLIP),
            clip(c.get("answer"), ANSWER_CLIP),
            score(c.get("fact_score")),
            yes_no(c.get("contract_ok")),
            yes_no(c.get("stale")),
            secs(c.get("seconds")),
        ]
        for c in data.get("calls") or []
        if isinstance(c, dict)
    ]
    return Table(headers, rows, numeric=4)
