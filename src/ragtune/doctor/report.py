"""What the doctor finds: one :class:`Check` per thing looked at, gathered in a
:class:`DoctorReport`."""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    """One finding of the doctor.

    Attributes:
        area: install, models, store, index, adapters, links (or project).
        name: What was checked, within the area.
        status: ``ok``; ``warn``: works, but worth knowing; ``fail``: broken or will not work.
        detail: What was found, naming the file and the value.
        fix: The command that fixes it (None when nothing needs fixing).
    """

    area: str
    name: str
    status: Status
    detail: str
    fix: str | None = None


@dataclass
class DoctorReport:
    """Every check, in the order they ran.

    Attributes:
        project: The project's name (None when it could not be loaded).
        root: The project folder (None when it could not be loaded).
        checks: The findings.
    """

    project: str | None
    root: Path | None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No check failed (warnings allowed)."""
        return not self.problems

    @property
    def problems(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[Check]:
        """The checks that warned."""
        return [c for c in self.checks if c.status == "warn"]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON values (what ``ragtune doctor --json`` prints)."""
        return {
            "project": self.project,
            "root": str(self.root) if self.root else None,
            "ok": self.ok,
            "problems": len(self.problems),
            "warnings": len(self.warnings),
            "checks": [asdict(c) for c in self.checks],
        }


class Area:
    """Collects the checks of one area, and spells the ragtune commands their fixes name."""

    def __init__(self, area: str, root: Path | None) -> None:
        self.area = area
        self.checks: list[Check] = []
        here = root is None or root.resolve() == Path.cwd().resolve()
        self.suffix = "" if here else f" -p {shlex.quote(str(root))}"

    def fix(self, command: str) -> str:
        """``ragtune COMMAND`` for this project (``-p DIR`` unless it is the current folder)."""
        return f"ragtune {command}{self.suffix}"

    def ok(self, name: str, detail: str) -> None:
        """Record a check that passed."""
        self.checks.append(Check(self.area, name, "ok", detail))

    def warn(self, name: str, detail: str, fix: str | None = None) -> None:
        """Record something that works but is worth knowing."""
        self.checks.append(Check(self.area, name, "warn", detail, fix))

    def fail(self, name: str, detail: str, fix: str) -> None:
        """Record a problem and the command that fixes it."""
        self.checks.append(Check(self.area, name, "fail", detail, fix))
