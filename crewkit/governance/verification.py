"""How a result was verified: the deterministic checks, the grounding check, then the reviewer.

The grounding check (`crewkit.governance.grounding`) lists the result's claims that the run's
sources do not support; the deployment profile's `grounding.require` decides whether more than
`grounding.max_unsupported` of them fail the result (else they are only listed).
`Verification.as_record()` is the run record's `verification` key (see the README, "How a
result is verified"); `summary` is the one line the console prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crewkit.governance.acceptance import Check
from crewkit.governance.grounding import Grounding
from crewkit.governance.reviewer import ReviewerVerdict


@dataclass(frozen=True)
class Verification:
    checks: list[Check] = field(default_factory=list)
    reviewer: ReviewerVerdict | None = None
    not_attempted: int = 0  # subtasks answered with a stated limitation instead of a model
    grounding: Grounding | None = None
    require_grounding: bool = False  # the profile's grounding.require
    max_unsupported: int = 0  # the profile's grounding.max_unsupported

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def grounding_failed(self) -> bool:
        g = self.grounding
        return g is not None and g.fails(self.require_grounding, self.max_unsupported)

    @property
    def passed(self) -> bool:
        if self.failed_checks or self.grounding_failed:
            return False
        r = self.reviewer
        return r is None or not r.trusted or r.agreed is True

    def feedback(self) -> list[str]:
        """What to fix, for the next executor round: failed checks first, then unsupported claims
        (when they fail the result), else the reviewer's issues."""
        if self.failed_checks:
            return [c.reason for c in self.failed_checks]
        if self.grounding_failed and self.grounding is not None:
            return self.grounding.feedback()
        if self.reviewer and self.reviewer.trusted and not self.reviewer.agreed:
            return list(self.reviewer.issues) or ["the reviewer rejected the result without a reason"]
        return []

    @property
    def summary(self) -> str:
        names = list(dict.fromkeys(c.check for c in self.checks))
        if not self.checks:
            line = "nothing verified: no subtask was answered by a model"
        elif self.failed_checks:
            bad = self.failed_checks
            line = f"{len(bad)} of {len(self.checks)} deterministic checks failed ({bad[0].reason}); reviewer not asked"
        else:
            line = f"{len(self.checks)} deterministic checks passed ({', '.join(names)})"
            r = self.reviewer
            if r is not None:
                who = f"reviewer ({r.role}: {r.model})"
                if not r.trusted:
                    reason = r.issues[0] if r.issues else "failed calibration"
                    line += f"; {who} not asked, untrusted ({reason}): the checks alone verified this result"
                elif r.agreed:
                    line += f"; {who} agreed"
                else:
                    line += f"; {who} rejected it: {'; '.join(r.issues) or 'no reason given'}"
        g = self.grounding
        if g is not None:
            line += f"; {g.summary}"
            if g.unsupported:
                line += (
                    f" (more than {self.max_unsupported} fails the result under this profile; reviewer not asked)"
                    if self.grounding_failed
                    else " (listed, not failing: the profile does not require grounding)"
                    if not self.require_grounding
                    else f" (within the profile's max_unsupported: {self.max_unsupported})"
                )
        if self.not_attempted:
            line += f"; {self.not_attempted} subtask(s) not attempted (see limitations)"
        return line

    def as_record(self) -> dict[str, Any]:
        return {
            "verdict": "passed" if self.passed else "failed",
            "checks": [c.as_dict() for c in self.checks],
            "reviewer": self.reviewer.as_dict() if self.reviewer else None,
            "grounding": self.grounding.as_record(self.require_grounding, self.max_unsupported)
            if self.grounding
            else None,
            "summary": self.summary,
        }
