"""The approval gate: where a run stops for a person, and how a person's decision is taken.

`ApprovalGate` sits on two paths of a persisted run:
- `check_tool(call)`, before every tool call (through `crewkit.runtime.tool_gate`): a call
  whose tier needs a person (`crewkit.governance.risk.human_check`) gets one approval, keyed by
  the tool, the sha256 of its canonical arguments and its occurrence, so the same call on resume
  finds the same approval. Pending: `RunPaused`. Rejected: `ToolRefused`, which the agent sees
  as the tool's answer. Approved: the call goes ahead.
- `check_step(step, items)`, a flow's release gate: every subtask that needs a person goes into
  ONE approval for the step, listing each item with its tier, reasons and draw.

The subject a person reads says what, why, the tier and who may decide; it is redacted
(`crewkit.redact`) and card numbers, secrets and national ids are masked before it is stored.
Approvals past their expiry take their default (`approvals.on_expiry`, reject) before they are
read. `decide(...)` enforces who may decide: the tier's approvers (anyone else when none are
listed), never the requester approving their own run unless `allow_self_approval`; a rejection
needs a reason; an expired or decided approval cannot be decided again.
"""

from __future__ import annotations

import getpass
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crewkit import redact
from crewkit.errors import ApprovalRequired, CrewkitError, NotAllowed, RunPaused, UsageError
from crewkit.governance import data_classes, risk
from crewkit.settings import GovernanceConfig, Settings, env

_ARG_PREVIEW = 400  # characters of a tool's arguments shown in the subject
_CONTENT_PREVIEW = 4000  # characters of a step's result shown in the subject
_CONTENT_PREVIEW = 4000  # characters of a step's content (the result to release) shown in the subject


class ToolRefused(CrewkitError):
    """A person (or the expiry policy) rejected this tool call; the agent gets this as the answer."""

    exit_code = 1


@dataclass(frozen=True)
class Decision:
    outcome: str  # "auto" | "approved" | "rejected"
    approval: Any | None  # the store's Approval row, when a person was asked
    checks: tuple[dict[str, Any], ...] = field(default_factory=tuple)  # per item: tier, reasons, draw...

    @property
    def rejected(self) -> bool:
        return self.outcome == "rejected"

    def as_record(self) -> dict[str, Any]:
        """The decision as a run record keeps it: outcome, who decided, why, every item's check."""
        a = self.approval
        return {
            "outcome": self.outcome,
            "approval_id": a.id if a else None,
            "step": a.step if a else None,
            "decided_by": a.decided_by if a else None,
            "note": a.note if a else None,
            "items": list(self.checks),
        }

    def rejection(self) -> str:
        """One line for a rejected decision: which approval, who, why."""
        a = self.approval
        return f"approval {a.id} was rejected by {a.decided_by}: {a.note or 'no reason given'}"


def current_user() -> str:
    """Who is acting: CREWKIT_USER, else the login name."""
    user = env("CREWKIT_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in a bare container
        return "unknown"


def requester_of(inputs: dict[str, Any]) -> str | None:
    """Who asks for a run, when declared: the inputs' `user`, else CREWKIT_USER; else None.

    A login name is not a declaration: two shells of one login are one person to the OS, and
    refusing them would stop a one-person set-up at its first approval. Declared identities
    (per-person CREWKIT_USER, or the `user` a scheduler passes) make the four-eyes rule bite.
    """
    user = inputs.get("user")
    return str(user) if user else env("CREWKIT_USER")


def _governance(settings: GovernanceConfig | Settings) -> GovernanceConfig:
    return settings.governance if isinstance(settings, Settings) else settings


def approvers_for(gov: GovernanceConfig, tier: str) -> list[str]:
    return list(gov.approvals.approvers.get(tier, []))  # type: ignore[call-overload]


def who_may_decide(approvers: list[str], requester: str | None, allow_self: bool) -> str:
    if approvers:
        names = ", ".join(approvers)
        if requester in approvers and not allow_self:
            names += f" (not {requester}, who requested the run)"
        return names
    if requester and not allow_self:
        return f"anyone except {requester} (who requested the run)"
    return "anyone"


def _clean(value: Any) -> Any:
    """Redacted (credentials) and masked (cards, secrets, national ids): safe to store and show."""
    value = redact.redact_obj(value)
    if isinstance(value, str):
        return data_classes.mask_values(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _on_expiry(gov: GovernanceConfig, tier: str) -> str:
    # A sensitive action is never done without a person: expiry rejects it whatever the config says.
    return "reject" if tier == "sensitive" else gov.approvals.on_expiry


class ApprovalGate:
    """One run's gate. `checkpoints` gives the number of checkpoints so far (part of every key:
    the same tool call in a later step is a new decision); the store is asked when not given."""

    def __init__(
        self,
        store: Any,
        settings: GovernanceConfig | Settings,
        run_id: str,
        requester: str | None,
        *,
        checkpoints: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.gov = _governance(settings)
        self.run_id = run_id
        self.requester = requester
        self._checkpoints = checkpoints or (lambda: len(store.checkpoints(run_id)))
        self._clock = clock
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- tool calls ------------------------------------------------------------------------------

    def tool_key(self, tool_name: str, arguments: Any) -> str:
        """`tool:<checkpoints>:<name>:<sha256 of canonical args>:<occurrence>` (counted per process
        segment from the checkpoint on, so a resumed step replays the same keys in order)."""
        digest = hashlib.sha256(risk.canonical_args(arguments).encode()).hexdigest()[:16]
        base = f"tool:{self._checkpoints()}:{tool_name}:{digest}"
        with self._lock:  # CrewAI may run an agent's tools from several threads
            occurrence = self._seen.get(base, 0)
            self._seen[base] = occurrence + 1
        return f"{base}:{occurrence}"

    def check_tool(self, call: Any) -> Decision:
        """Allowed: returns. Needs a person and none decided yet: RunPaused. Rejected: ToolRefused."""
        tool = getattr(call, "tool", None)
        name = str(getattr(call, "tool_name", None) or getattr(tool, "name", "tool"))
        arguments = getattr(call, "arguments", None) or {}
        assessment = risk.assess_tool(self.gov, name, arguments, label=risk.tool_label(tool))
        key = self.tool_key(name, arguments)
        check = risk.human_check(self.gov, assessment, self.run_id, key)
        record = _check_record(name, assessment, check)
        if not check.required:
            return Decision("auto", None, (record,))
        preview = risk.canonical_args(arguments)
        if len(preview) > _ARG_PREVIEW:
            preview = preview[: _ARG_PREVIEW - 1] + "…"
        subject = {
            "what": f"tool call {name}({preview})",
            "kind": "tool",
            "tool": name,
            "arguments": arguments,
            **self._common(assessment.tier, [record]),
        }
        approval = self._request(key, f"tool {name}", assessment.tier, subject, "; ".join(assessment.reasons))
        if approval.status == "pending":
            raise RunPaused(self._required(approval, f"tool call {name}"))
        if approval.status == "rejected":
            why = f": {approval.note}" if approval.note else ""
            raise ToolRefused(
                f"tool {name} was refused: approval {approval.id} was rejected by {approval.decided_by}{why}; "
                "do not call it again, answer without it"
            )
        return Decision("approved", approval, (record,))

    # -- budgets ---------------------------------------------------------------------------------

    def check_budget(
        self,
        scope: str,
        period: str,
        grants: int,
        *,
        budget: str,
        limit: float,
        spent: float,
        needed: float,
        raise_by: float,
        reason: str,
    ) -> Decision:
        """A call that would exceed budget `scope` (on_exceed: ask): a person decides whether to
        raise its limit by `raise_by` for `period`. One approval per key
        `budget:<scope>:<period>:<grants so far>` (the same on resume). Pending: RunPaused;
        approved or rejected: the Decision (the caller grants, or refuses the call)."""
        key = f"budget:{scope}:{period}:{grants}"
        record = {
            "id": scope,
            "tier": "sensitive",
            "reasons": [reason],
            "data_classes": [],
            "human": True,
            "why": "budget exceeded",
            "draw": None,
            "rate": None,
        }
        subject = {
            "what": f"raise the {budget} by ${raise_by:.4f} (limit ${limit:.4f}, spent ${spent:.4f}, "
            f"this call needs ~${needed:.4f})",
            "kind": "budget",
            "scope": scope,
            "period": period,
            "limit": limit,
            "spent": spent,
            "needed": needed,
            "raise_by": raise_by,
            **self._common("sensitive", [record]),
        }
        approval = self._request(key, f"budget {scope}", "sensitive", subject, reason)
        if approval.status == "pending":
            raise RunPaused(self._required(approval, f"raising the {budget}"))
        return Decision(approval.status, approval, (record,))

    # -- flow steps ------------------------------------------------------------------------------

    def check_step(
        self,
        step: str,
        items: list[tuple[str, risk.Assessment]],
        *,
        content: str | None = None,
        attempt: int = 0,
    ) -> Decision:
        """A release gate over a step's items (subtask id, assessment). Any item needing a person
        makes ONE approval for the step listing every item. `content` (the result to release) is
        shown to the person, and different content is a new decision (a reworked result is asked
        about again); `attempt` separates rounds that release the same content."""
        checks = []
        for item_id, assessment in items:
            check = risk.human_check(self.gov, assessment, self.run_id, f"{step}:{item_id}")
            checks.append(_check_record(item_id, assessment, check))
        needing = [c for c in checks if c["human"]]
        if not needing:
            return Decision("auto", None, tuple(checks))
        tier = risk.highest(*(c["tier"] for c in needing))
        key = f"step:{self._checkpoints()}:{step}"
        subject: dict[str, Any] = {
            "what": f"step '{step}': {len(needing)} of {len(checks)} item(s) need a person",
            "kind": "step",
        }
        if content is not None:
            digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
            key += f":{digest[:16]}"
            preview = content if len(content) <= _CONTENT_PREVIEW else content[: _CONTENT_PREVIEW - 1] + "…"
            subject.update(content=preview, content_sha256=digest)
        if attempt:
            key += f":{attempt}"
        lines = [f"{c['id']} [{c['tier']}]: {'; '.join(c['reasons'])}" for c in needing]
        subject.update(self._common(tier, checks))
        approval = self._request(key, step, tier, subject, " | ".join(lines))
        if approval.status == "pending":
            raise RunPaused(self._required(approval, f"step '{step}'"))
        return Decision(approval.status, approval, tuple(checks))

    # -- shared ----------------------------------------------------------------------------------

    def _common(self, tier: str, checks: list[dict[str, Any]]) -> dict[str, Any]:
        approvers = approvers_for(self.gov, tier)
        return {
            "tier": tier,
            "why": [r for c in checks if c["human"] for r in c["reasons"]] or ["sampled for review"],
            "items": checks,
            "requester": self.requester,
            "who_may_decide": who_may_decide(
                approvers, self.requester, self.gov.approvals.allow_self_approval
            ),
            "on_expiry": _on_expiry(self.gov, tier),
        }

    def _request(self, key: str, step: str, tier: str, subject: dict[str, Any], reason: str) -> Any:
        self.store.expire_due()
        existing = self.store.find_approval(self.run_id, key)
        if existing is not None:
            return existing
        return self.store.request_approval(
            self.run_id,
            key,
            step,
            tier,
            _clean(subject),
            _clean(reason),
            approvers_for(self.gov, tier),
            self._clock() + self.gov.approvals.expires_after_hours * 3600,
            _on_expiry(self.gov, tier),
        )

    def _required(self, approval: Any, what: str) -> ApprovalRequired:
        return ApprovalRequired(
            f"{what} needs a person's approval ({approval.tier}): approval {approval.id}; "
            f"`crewkit approvals show {approval.id}`, then approve or reject it and `crewkit resume {self.run_id}`",
            approval.id,
        )


def _check_record(item_id: str, assessment: risk.Assessment, check: risk.HumanCheck) -> dict[str, Any]:
    return {
        "id": item_id,
        "tier": assessment.tier,
        "reasons": list(assessment.reasons),
        "data_classes": list(assessment.data_classes),
        "human": check.required,
        "why": check.why,
        "draw": check.draw,
        "rate": check.rate,
    }


_DECISIONS = {"approve": "approved", "approved": "approved", "reject": "rejected", "rejected": "rejected"}


def decide(
    store: Any,
    settings: GovernanceConfig | Settings,
    approval_id: str,
    decision: str,
    by: str,
    note: str | None = None,
) -> Any:
    """Record a person's decision; UsageError (one line, nothing changed) when it may not be taken."""
    gov = _governance(settings)
    outcome = _DECISIONS.get(decision)
    if outcome is None:
        raise UsageError(f"decision must be 'approve' or 'reject', not '{decision}'")
    by = (by or "").strip()
    if not by:
        raise UsageError("who is deciding? pass --by NAME or set CREWKIT_USER")
    store.expire_due()
    approval = store.require_approval(approval_id)
    if approval.status != "pending":
        return store.decide(approval_id, outcome, by, note)  # raises: decided already, or expired
    note = (note or "").strip() or None
    if outcome == "rejected" and not note:
        raise UsageError(f"a rejection needs a reason: crewkit approvals reject {approval_id} --reason '...'")
    run = store.get_run(approval.run_id)
    requester = getattr(run, "requester", None)
    allow_self = gov.approvals.allow_self_approval
    if outcome == "approved" and requester and by == requester and not allow_self:
        raise NotAllowed(
            f"{by} requested run {approval.run_id} and may not approve it; another approver decides "
            "(or set approvals.allow_self_approval: true in config/governance.yaml)"
        )
    if approval.approvers and by not in approval.approvers:
        raise NotAllowed(
            f"{by} may not decide approval {approval_id} ({approval.tier}); approvers: {', '.join(approval.approvers)}"
        )
    return store.decide(approval_id, outcome, by, note)
