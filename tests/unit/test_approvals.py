"""The approval gate on a real state store: pause, idempotent keys, decisions, expiry, who may decide."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from crewkit.errors import ApprovalRequired, RunPaused, UsageError
from crewkit.governance import approvals, risk
from crewkit.governance.approvals import ApprovalGate, ToolRefused, decide
from crewkit.runtime.store import StateStore
from crewkit.settings import GovernanceConfig

CARD = "4111 1111 1111 1111"
KEY = "sk-proj-abcdefghijklmnopqrstuv0123"


@dataclass
class Call:
    tool_name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    tool: Any = None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore.open(tmp_path)
    s.create_run("r1", "default", {"task": "t"}, "fp", "carol")
    yield s
    s.close()


def _gov(**approvals_cfg: Any) -> GovernanceConfig:
    return GovernanceConfig.model_validate({"approvals": approvals_cfg})


def _pause(gate: ApprovalGate, call: Call) -> ApprovalRequired:
    with pytest.raises(RunPaused) as paused:
        gate.check_tool(call)
    required = paused.value.required
    assert isinstance(required, ApprovalRequired) and required.exit_code == 75
    return required


def _transfer() -> Call:
    return Call(
        "transfer_funds", {"iban": "DE89370400440532013000", "amount": 500, "card": CARD, "auth": KEY}
    )


def test_low_tool_call_goes_ahead_without_an_approval(store: StateStore) -> None:
    gate = ApprovalGate(store, _gov(), "r1", "carol")
    decision = gate.check_tool(Call("read_file", {"path": "notes.txt"}))
    assert decision.outcome == "auto" and decision.approval is None
    assert store.list_approvals() == []


def test_sensitive_tool_call_pauses_with_a_pending_redacted_approval(store: StateStore) -> None:
    required = _pause(ApprovalGate(store, _gov(), "r1", "carol"), _transfer())
    approval = store.require_approval(required.approval_id)
    assert approval.status == "pending" and approval.tier == "sensitive"
    assert required.approval_id in str(required) and "crewkit resume r1" in str(required)
    stored = json.dumps(approval.subject, ensure_ascii=False) + approval.reason
    assert CARD not in stored and CARD.replace(" ", "") not in stored and KEY not in stored
    subject = approval.subject
    assert subject["what"].startswith("tool call transfer_funds(")
    assert subject["tier"] == "sensitive"
    assert any("bank account (IBAN DE89…3000)" in line for line in subject["why"])
    assert subject["who_may_decide"] == "anyone except carol (who requested the run)"
    assert approval.expires_at == pytest.approx(time.time() + 24 * 3600, abs=60)


def test_same_call_on_resume_finds_the_same_approval(store: StateStore) -> None:
    first = _pause(ApprovalGate(store, _gov(), "r1", "carol"), _transfer())
    again = _pause(ApprovalGate(store, _gov(), "r1", "carol"), _transfer())  # a new process segment
    assert first.approval_id == again.approval_id
    assert len(store.list_approvals()) == 1


def test_approved_call_goes_ahead_and_a_repeat_needs_its_own_approval(store: StateStore) -> None:
    required = _pause(ApprovalGate(store, _gov(), "r1", "carol"), _transfer())
    decide(store, _gov(), required.approval_id, "approve", "alice", None)
    gate = ApprovalGate(store, _gov(), "r1", "carol")
    decision = gate.check_tool(_transfer())
    assert decision.outcome == "approved" and decision.approval.id == required.approval_id
    second = _pause(gate, _transfer())  # the same transfer a second time is a second decision
    assert second.approval_id != required.approval_id


def test_a_later_step_asks_again_for_the_same_call(store: StateStore) -> None:
    required = _pause(ApprovalGate(store, _gov(), "r1", "carol"), _transfer())
    decide(store, _gov(), required.approval_id, "approve", "alice", None)
    store.add_checkpoint("r1", "execute", "out", {}, True)
    later = _pause(ApprovalGate(store, _gov(), "r1", "carol"), _transfer())
    assert later.approval_id != required.approval_id


def test_rejected_call_is_refused_with_the_reason(store: StateStore) -> None:
    required = _pause(ApprovalGate(store, _gov(), "r1", "carol"), _transfer())
    decide(store, _gov(), required.approval_id, "reject", "alice", "wrong beneficiary")
    with pytest.raises(ToolRefused, match="rejected by alice: wrong beneficiary"):
        ApprovalGate(store, _gov(), "r1", "carol").check_tool(_transfer())


def test_tool_labelled_sensitive_is_gated(store: StateStore) -> None:
    class Lookup:
        name = "lookup"
        risk_tier = "sensitive"

    call = Call("lookup", {"q": "weather"}, Lookup())
    _pause(ApprovalGate(store, _gov(), "r1", "carol"), call)
    gov = GovernanceConfig.model_validate({"risk": {"tools": {"lookup": "sensitive"}}})
    _pause(ApprovalGate(store, gov, "r1", "carol"), Call("lookup", {"q": "rain"}))


def test_expired_approval_is_rejected_before_it_is_read(store: StateStore) -> None:
    past = time.time() - 48 * 3600
    required = _pause(ApprovalGate(store, _gov(), "r1", "carol", clock=lambda: past), _transfer())
    with pytest.raises(ToolRefused, match="policy"):
        ApprovalGate(store, _gov(), "r1", "carol").check_tool(_transfer())
    with pytest.raises(UsageError, match="expired"):
        decide(store, _gov(), required.approval_id, "approve", "alice", None)
    assert store.require_approval(required.approval_id).status == "rejected"


def test_expiry_never_approves_a_sensitive_action(store: StateStore) -> None:
    past = time.time() - 48 * 3600
    gov = _gov(on_expiry="approve")
    required = _pause(ApprovalGate(store, gov, "r1", "carol", clock=lambda: past), _transfer())
    store.expire_due()
    assert store.require_approval(required.approval_id).status == "rejected"


def test_expiry_may_approve_a_sampled_medium_check(store: StateStore) -> None:
    past = time.time() - 48 * 3600
    gov = _gov(on_expiry="approve", sample_rate=1.0)
    required = _pause(
        ApprovalGate(store, gov, "r1", "carol", clock=lambda: past), Call("send_email", {"to": "team"})
    )
    store.expire_due()
    assert store.require_approval(required.approval_id).status == "approved"


def test_medium_tool_call_is_sampled_by_the_seeded_draw(store: StateStore) -> None:
    paused = auto = 0
    for i in range(40):
        store.create_run(f"m{i}", "default", {}, "fp", "carol")
        gate = ApprovalGate(store, _gov(), f"m{i}", "carol")
        try:
            decision = gate.check_tool(Call("send_email", {"to": "team", "body": "hi"}))
        except RunPaused:
            paused += 1
        else:
            auto += 1
            assert decision.checks[0]["draw"] >= 0.5 and decision.checks[0]["rate"] == 0.5
    assert paused and auto  # both happen at a 50% rate over 40 runs


# --- the release gate of a flow step ----------------------------------------------------------


def _items(gov: GovernanceConfig) -> list[tuple[str, risk.Assessment]]:
    return [
        ("s1", risk.assess_subtask(gov, "Write a palindrome function", "code")),
        ("s2", risk.assess_subtask(gov, "Pay $1,200 to John for the invoice", "reasoning")),
    ]


def test_step_of_low_items_passes_without_a_person(store: StateStore) -> None:
    gov = _gov()
    decision = ApprovalGate(store, gov, "r1", "carol").check_step("release", _items(gov)[:1])
    assert decision.outcome == "auto" and decision.checks[0]["tier"] == "low"
    assert store.list_approvals() == []


def test_step_needing_a_person_makes_one_approval_listing_every_item(store: StateStore) -> None:
    gov = _gov(sample_rate=1.0)
    items = [*_items(gov), ("s3", risk.assess_subtask(gov, "Email the team about it", "reasoning"))]
    gate = ApprovalGate(store, gov, "r1", "carol")
    with pytest.raises(RunPaused) as paused:
        gate.check_step("release", items)
    [approval] = store.list_approvals()
    assert approval.id == paused.value.required.approval_id and approval.tier == "sensitive"
    assert [c["id"] for c in approval.subject["items"]] == ["s1", "s2", "s3"]
    medium = approval.subject["items"][2]
    assert medium["tier"] == "medium" and medium["draw"] == risk.draw("r1", "release:s3") and medium["human"]
    assert "s2 [sensitive]" in approval.reason and "s1" not in approval.reason
    decide(store, gov, approval.id, "approve", "alice", "checked")
    decision = ApprovalGate(store, gov, "r1", "carol").check_step("release", items)
    assert decision.outcome == "approved" and decision.approval.id == approval.id
    assert decision.checks[2]["draw"] == medium["draw"]


def test_rejected_step_returns_a_rejected_decision(store: StateStore) -> None:
    gov = _gov()
    with pytest.raises(RunPaused) as paused:
        ApprovalGate(store, gov, "r1", "carol").check_step("release", _items(gov))
    decide(store, gov, paused.value.required.approval_id, "reject", "alice", "not this vendor")
    decision = ApprovalGate(store, gov, "r1", "carol").check_step("release", _items(gov))
    assert decision.outcome == "rejected" and decision.rejected


# --- who may decide -------------------------------------------------------------------------


def _pending(store: StateStore, gov: GovernanceConfig) -> str:
    return _pause(ApprovalGate(store, gov, "r1", "carol"), _transfer()).approval_id


def test_requester_may_not_approve_their_own_run(store: StateStore) -> None:
    approval_id = _pending(store, _gov())
    with pytest.raises(UsageError, match="carol requested run r1 and may not approve it"):
        decide(store, _gov(), approval_id, "approve", "carol", None)
    assert store.require_approval(approval_id).status == "pending"
    decide(store, _gov(), approval_id, "reject", "carol", "changed my mind")  # withdrawing is fine


def test_self_approval_when_allowed(store: StateStore) -> None:
    gov = _gov(allow_self_approval=True)
    approval_id = _pending(store, gov)
    assert decide(store, gov, approval_id, "approve", "carol", None).status == "approved"


def test_only_listed_approvers_decide_their_tier(store: StateStore) -> None:
    gov = _gov(approvers={"sensitive": ["alice", "dave"]})
    approval_id = _pending(store, gov)
    assert store.require_approval(approval_id).subject["who_may_decide"] == "alice, dave"
    with pytest.raises(UsageError, match="bob may not decide .*approvers: alice, dave"):
        decide(store, gov, approval_id, "approve", "bob", None)
    approved = decide(store, gov, approval_id, "approve", "dave", "ok")
    assert approved.status == "approved" and approved.decided_by == "dave" and approved.note == "ok"


def test_a_rejection_needs_a_reason(store: StateStore) -> None:
    approval_id = _pending(store, _gov())
    for note in (None, "  "):
        with pytest.raises(UsageError, match="needs a reason"):
            decide(store, _gov(), approval_id, "reject", "alice", note)
    assert store.require_approval(approval_id).status == "pending"


def test_deciding_twice_or_an_unknown_id_is_a_usage_error(store: StateStore) -> None:
    approval_id = _pending(store, _gov())
    decide(store, _gov(), approval_id, "approve", "alice", None)
    with pytest.raises(UsageError, match="already approved by alice"):
        decide(store, _gov(), approval_id, "reject", "bob", "late")
    with pytest.raises(UsageError, match="unknown approval"):
        decide(store, _gov(), "ap-0000000000", "approve", "alice", None)
    with pytest.raises(UsageError, match="'approve' or 'reject'"):
        decide(store, _gov(), approval_id, "maybe", "alice", None)


def test_current_user_prefers_crewkit_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREWKIT_USER", "alice")
    assert approvals.current_user() == "alice"
    monkeypatch.delenv("CREWKIT_USER")
    assert approvals.current_user()


def test_step_content_is_shown_masked_and_new_content_is_a_new_decision(store: StateStore) -> None:
    gov = _gov()
    gate = ApprovalGate(store, gov, "r1", "carol")
    with pytest.raises(RunPaused) as first:
        gate.check_step("guard", _items(gov), content=f"Paid with {CARD}. Done.")
    approval = store.require_approval(first.value.required.approval_id)
    assert "Paid with" in approval.subject["content"] and CARD not in approval.subject["content"]
    decide(store, gov, approval.id, "reject", "alice", "pay the right vendor")
    assert (
        ApprovalGate(store, gov, "r1", "carol")
        .check_step("guard", _items(gov), content=f"Paid with {CARD}. Done.")
        .rejected
    )
    with pytest.raises(RunPaused) as reworked:
        ApprovalGate(store, gov, "r1", "carol").check_step(
            "guard", _items(gov), content="Paid the right vendor."
        )
    assert reworked.value.required.approval_id != approval.id


def test_a_decision_needs_a_name(store: StateStore) -> None:
    approval_id = _pending(store, _gov())
    with pytest.raises(UsageError, match="who is deciding"):
        decide(store, _gov(), approval_id, "approve", "  ", None)
    assert store.require_approval(approval_id).status == "pending"
