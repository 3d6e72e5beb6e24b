"""The approvals room in headless Chromium: a person reviews a paused run's approval and decides.

The pending approvals are made by the engine (the real ApprovalGate on the console's state.db,
the run marked paused as the runner does); the console's resumer records the runs it was asked
to continue instead of starting `crewkit resume`.
"""

from __future__ import annotations

from typing import Any

import pytest

from crewkit.errors import RunPaused
from crewkit.governance import audit, risk
from crewkit.governance.approvals import ApprovalGate
from crewkit.settings import GovernanceConfig
from tests.browser.conftest import shot, sign_in
from tests.unit.test_approvals import Call  # a tool call as the approval gate sees it

pytestmark = pytest.mark.browser

CONTENT = "Pay 1,200 USD to John Smith, IBAN DE89 3704 0044 0532 0130 00, for invoice 2026-117."


def paused_run(store: Any, run_id: str, *, step: bool = False, requester: str = "carol") -> str:
    """A run paused for a person, as the runner leaves it; the approval's id."""
    gov = GovernanceConfig.model_validate({"approvals": {"sample_rate": 0.0}})
    store.create_run(run_id, "default", {"task": "pay John's invoice"}, "fp", requester)
    gate = ApprovalGate(store, gov, run_id, requester)
    with pytest.raises(RunPaused) as paused:
        if step:
            item = risk.assess_subtask(gov, "Pay $1,200 to John for the invoice", "reasoning")
            gate.check_step("release", [("s1", item)], content=CONTENT)
        else:
            gate.check_tool(Call("transfer_funds", {"iban": "DE89370400440532013000", "amount": 500}))
    approval_id = paused.value.required.approval_id
    store.set_status(run_id, "paused", approval_id=approval_id)
    return approval_id


def test_approve_from_the_queue_and_see_it_leave(console: Any, console_resumer: Any, page: Any) -> None:
    approval_id = paused_run(console.store, "r-pay", step=True)
    sign_in(page, console.url, "bob")
    page.click("nav >> text=Approvals")
    row = page.locator(f'tr[data-approval-id="{approval_id}"]')
    assert row.is_visible()
    assert "sensitive" in row.inner_text() and "moves money" in row.inner_text()
    assert page.inner_text("#pending-count").strip() == "1"
    shot(page, "approvals-queue")

    row.locator("a.approval-link").click()
    page.wait_for_selector("#decision-form")
    assert "John Smith" in page.inner_text("#approval-content")
    assert "moves money" in page.inner_text("#approval-reasons")
    page.fill("#note", "invoice checked against the order")
    shot(page, "approvals-review")
    page.click("#approve-button")

    page.wait_for_url("**/runs/r-pay")
    assert f"approval {approval_id} approved by bob" in page.content()
    assert console_resumer.started == ["r-pay"]
    approval = console.store.require_approval(approval_id)
    assert (approval.status, approval.decided_by, approval.note) == (
        "approved",
        "bob",
        "invoice checked against the order",
    )
    assert [r.actor for r in audit.records(console.store, "r-pay") if r.action == "approval.approved"] == [
        "bob"
    ]

    page.goto(console.url + "/approvals")
    assert page.locator(f'tr[data-approval-id="{approval_id}"]').count() == 0
    assert page.is_visible("#approvals-empty")
    page.click('#approval-filters a[data-status="approved"]')
    assert "bob" in page.locator(f'tr[data-approval-id="{approval_id}"]').inner_text()


def test_reject_needs_a_reason_and_the_requester_may_not_approve(
    console: Any, console_resumer: Any, page: Any
) -> None:
    approval_id = paused_run(console.store, "r-tool", requester="carol")
    sign_in(page, console.url, "carol")
    page.goto(f"{console.url}/approvals/{approval_id}")
    assert "transfer_funds" in page.inner_text("#approval-what")
    assert "DE89370400440532013000" in page.inner_text("#approval-arguments")

    page.click("#reject-button")  # no reason given
    assert "a rejection needs a reason" in page.inner_text("#error-message")
    page.goto(f"{console.url}/approvals/{approval_id}")
    page.click("#approve-button")  # carol asked for the run herself
    assert "may not approve it" in page.inner_text("#error-message")
    shot(page, "approvals-refused")
    assert console.store.require_approval(approval_id).status == "pending"
    assert console_resumer.started == []

    page.goto(f"{console.url}/approvals/{approval_id}")
    page.fill("#note", "wrong beneficiary")
    page.click("#reject-button")
    page.wait_for_url("**/runs/r-tool")
    approval = console.store.require_approval(approval_id)
    assert (approval.status, approval.decided_by, approval.note) == ("rejected", "carol", "wrong beneficiary")
    assert console_resumer.started == ["r-tool"]

    page.goto(f"{console.url}/approvals/{approval_id}")
    assert "rejected by carol" in page.inner_text("#approval-decided")
    assert page.locator("#decision-form").count() == 0
