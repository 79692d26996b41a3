"""The audit: a decision per capability with its path, warnings and cost projection.

This package imports no torch: ``ragtune audit`` must start fast. matplotlib is imported only
when a chart is drawn.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime

from ragtune import __version__
from ragtune.audit.answers import resolve_answers
from ragtune.audit.cost import project_capability, project_portfolio
from ragtune.audit.decide import decide
from ragtune.audit.measured import measured_by_lab
from ragtune.audit.model import AuditReport, AuditWarning, CapabilityAudit
from ragtune.project import Capability, Project

__all__ = ["AuditReport", "decisions", "run_audit"]


def run_audit(project: Project, *, now: float | None = None) -> AuditReport:
    """Audit every capability of a project.

    Args:
        project: a loaded project (see :func:`ragtune.project.load_project`).
        now: the time git churn is measured against (default: now); tests pin it.

    Returns:
        The report: one :class:`CapabilityAudit` per capability and the portfolio's costs.
    """
    started = time.perf_counter()
    config = project.config
    measured = measured_by_lab(project)
    audits = []
    for capability in config.capabilities:
        answers = resolve_answers(project, capability, now=now)
        decision = decide(capability, answers, config.prices)
        cost = project_capability(
            decision.decision, decision.kind, answers, config.prices, config.horizon_months
        )
        audits.append(
            CapabilityAudit(
                name=capability.name,
                description=capability.description,
                decision=decision.decision,
                kind=decision.kind,
                summary=decision.summary,
                path=decision.path,
                warnings=decision.warnings + _examples_warnings(project, capability),
                cost=cost,
                answers=answers,
                current_approach=capability.current_approach,
                measured=measured.get(capability.name),
            )
        )
    portfolio = project_portfolio([a.cost for a in audits], config.prices, config.horizon_months)
    return AuditReport(
        project=config.project,
        project_file=str(project.path),
        horizon_months=config.horizon_months,
        capabilities=audits,
        portfolio=portfolio,
        ragtune_version=__version__,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        elapsed_s=time.perf_counter() - started,
    )


def _examples_warnings(project: Project, capability: Capability) -> list[AuditWarning]:
    """The bad lines of a capability's examples file, as ``adapter train`` names them.

    The audit measures what the lines that parse show; the file itself is refused by training,
    few-shot serving and ``ragtune plan`` until it is fixed, so the audit says so here.
    """
    from ragtune.behavior.examples import ExamplesError, load_examples

    if not capability.examples:
        return []
    try:
        load_examples(project.resolve(capability.examples), project.root)
    except ExamplesError as exc:
        return [
            AuditWarning(
                "bad-examples",
                f"{exc}\nThe decision above reads only the lines that parse; `ragtune adapter "
                "train`, few-shot serving and `ragtune plan` refuse the file until it is fixed.",
            )
        ]
    return []


def decisions(
    project: Project, names: Iterable[str] | None = None, *, now: float | None = None
) -> dict[str, str]:
    """The decision per capability (``retrieval``, ``few-shot``, ``lora``, ...) and nothing
    else: what the runtime routes by and ``plan`` trains for, without the cost projection and
    the report of :func:`run_audit`.

    Args:
        project: a loaded project.
        names: only these capabilities (default: all); evidence is gathered for them alone.
        now: the time git churn is measured against (default: now).
    """
    wanted = None if names is None else set(names)
    return {
        capability.name: decide(
            capability, resolve_answers(project, capability, now=now), project.config.prices
        ).decision
        for capability in project.config.capabilities
        if wanted is None or capability.name in wanted
    }
