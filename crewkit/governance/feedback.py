"""CrewAI's `@human_feedback` on crewkit's approval queue: a flow step asking a person pauses the run.

Stock CrewAI asks on the console (`input()`), which blocks a scheduled run forever. While crewkit
runs a flow, `ApprovalFeedbackProvider` is CrewAI's HITL provider (`flow_config.hitl_provider`,
used by every `@human_feedback` without a provider of its own): the step's output becomes a
pending approval (tier sensitive: a person always decides), the run is checkpointed and exits 75,
and `crewkit approvals approve|reject` answers it. On `crewkit resume` the step asks again, finds
the decision and hands CrewAI the feedback:

- with `emit=[...]`: the outcome the decision names exactly (`--note approved` or a rejection's
  `--reason needs_changes` when that is an outcome), else the first outcome that reads as
  approval (`approve*`, `accept*`, `ok`, `yes`) for an approval and as rejection (`reject*`,
  `deny*`, `decline*`, `no`) for a rejection, else `default_outcome`, else the first/last one.
  `_collapse_to_outcome` takes an exact outcome as it is (`crewkit.assembly.wire`), so deciding a
  route never asks a model;
- without `emit`: the note (or "approved"), or "rejected: REASON".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from crewkit.governance import risk

_YES = re.compile(r"^(approv|accept|ok|yes|pass|continue|proceed)", re.IGNORECASE)
_NO = re.compile(r"^(reject|deny|declin|no\b|fail|stop|revis|change)", re.IGNORECASE)


def exact_outcome(feedback: str, outcomes: Sequence[str]) -> str | None:
    """The outcome `feedback` names exactly (case and surrounding space ignored), else None."""
    wanted = feedback.strip().lower()
    for outcome in outcomes:
        if outcome.strip().lower() == wanted:
            return outcome
    return None


def feedback_for(decision: Any, emit: Sequence[str] | None, default_outcome: str | None) -> str:
    """What CrewAI receives as the person's feedback for a decided approval."""
    approval = decision.approval
    note = (approval.note or "").strip() if approval is not None else ""
    approved = not decision.rejected
    if not emit:
        if approved:
            return note or "approved"
        return f"rejected: {note or 'no reason given'}"
    named = exact_outcome(note, emit) if note else None
    if named:
        return named
    pattern = _YES if approved else _NO
    for outcome in emit:
        if pattern.search(outcome.strip()):
            return outcome
    if default_outcome:
        return default_outcome
    return emit[0] if approved else emit[-1]


class ApprovalFeedbackProvider:
    """A `HumanFeedbackProvider` on the run's approval gate (the flow's `_ctx.gate`)."""

    def request_feedback(self, context: Any, flow: Any) -> str:
        gate = getattr(getattr(flow, "_ctx", None), "gate", None)
        if gate is None:  # a flow kicked off outside crewkit: CrewAI's console behaviour
            from crewai.flow.async_feedback.providers import ConsoleProvider

            return ConsoleProvider().request_feedback(context, flow)
        step = f"feedback:{context.method_name}"
        why = f"the flow asks a person: {context.message}".strip()
        assessment = risk.Assessment("sensitive", (why,), ())
        output = context.method_output
        content = output if isinstance(output, str) else str(getattr(output, "raw", output))
        decision = gate.check_step(step, [(str(context.method_name), assessment)], content=content)
        return feedback_for(decision, context.emit, context.default_outcome)
