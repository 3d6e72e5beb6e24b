"""The console's approvals room: the queue, one approval in full, approve and reject.

Pending approvals are made by the real ApprovalGate on the app's own state.db (as a paused run
makes them); decisions go through the page under the signed-in name and the recorded resumer
stands in for `crewkit resume`. Every refused request must leave state.db as it was.
"""

from __future__ import annotations

import time
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from crewkit.errors import RunPaused
from crewkit.governance import audit, risk
from crewkit.governance.approvals import ApprovalGate, decide
from crewkit.settings import GovernanceConfig
from tests import web_support
from tests.unit.test_approvals import Call  # a tool call as the approval gate sees it
from tests.web_support import Client, Resumer, anonymous, make_app

IBAN = "DE89370400440532013000"
CARD = "4111 1111 1111 1111"
CONTENT = "Transfer 500 EUR to DE89 3704 0044 0532 0130 00 for invoice 2026-117 <b>now</b>"


@pytest.fixture
def resumer() -> Resumer:
    return Resumer()


@pytest.fixture
def app(project: Path, resumer: Resumer) -> Any:
    return make_app(project, resumer=resumer)


def signed_in(app: Any, name: str) -> Client:
    return web_support.signed_in(app, name, page="/approvals")


def gov(**approvals_cfg: Any) -> GovernanceConfig:
    return GovernanceConfig.model_validate({"approvals": approvals_cfg})


def paused_tool_call(app: Any, run_id: str = "r1", requester: str | None = "carol", **cfg: Any) -> str:
    """A run paused on a sensitive tool call (a transfer to an IBAN); the approval id."""
    store = app.state.store
    store.create_run(run_id, "default", {"task": "pay invoice 2026-117"}, "fp", requester)
    gate = ApprovalGate(store, gov(**cfg), run_id, requester)
    with pytest.raises(RunPaused) as paused:
        gate.check_tool(Call("transfer_funds", {"iban": IBAN, "amount": 500, "card": CARD}))
    approval_id = paused.value.required.approval_id
    store.set_status(run_id, "paused", approval_id=approval_id)
    return approval_id


def paused_step(app: Any, run_id: str = "r2", requester: str | None = "carol") -> str:
    """A run paused at its release gate with content to review; the approval id."""
    store = app.state.store
    store.create_run(run_id, "default", {"task": "pay John"}, "fp", requester)
    g = gov(sample_rate=0.0)
    items = [
        ("s1", risk.assess_subtask(g, "Write a palindrome function", "code")),
        ("s2", risk.assess_subtask(g, "Pay $1,200 to John for the invoice", "reasoning")),
    ]
    with pytest.raises(RunPaused) as paused:
        ApprovalGate(store, g, run_id, requester).check_step("release", items, content=CONTENT)
    approval_id = paused.value.required.approval_id
    store.set_status(run_id, "paused", approval_id=approval_id)
    return approval_id


def snapshot(app: Any) -> tuple[Any, ...]:
    store = app.state.store
    return (
        store.read("SELECT * FROM approvals ORDER BY id"),
        store.read("SELECT * FROM runs ORDER BY run_id"),
        store.read("SELECT COUNT(*), MAX(seq) FROM audit"),
    )


# --- the queue ----------------------------------------------------------------------------------


def test_queue_lists_pending_approvals_with_what_why_and_who(app: Any) -> None:
    tool_id = paused_tool_call(app)
    step_id = paused_step(app)
    page = anonymous(app).get("/approvals")
    assert page.status_code == 200
    html = page.text
    for approval_id, run_id in ((tool_id, "r1"), (step_id, "r2")):
        assert f'data-approval-id="{approval_id}"' in html
        assert f'href="/runs/{run_id}"' in html
    assert "tool call transfer_funds(" in html
    assert "bank account (IBAN DE89…3000)" in html  # the risk reason, masked
    assert CARD not in html and CARD.replace(" ", "") not in html  # card numbers are masked
    assert "anyone except carol (who requested the run)" in html
    assert "Transfer 500 EUR" in html  # the content's preview
    assert "&lt;b&gt;now&lt;/b&gt;" in html and "<b>now</b>" not in html  # model text is escaped
    assert 'id="pending-count">2<' in html


def test_queue_filters_by_status_and_refuses_an_unknown_one(app: Any) -> None:
    decided = paused_tool_call(app)
    waiting = paused_step(app)
    decide(app.state.store, app.state.settings, decided, "approve", "alice", "fine")
    client = anonymous(app)
    pending = client.get("/approvals").text
    assert waiting in pending and decided not in pending
    approved = client.get("/approvals?status=approved").text
    assert decided in approved and waiting not in approved and "alice" in approved
    assert waiting not in client.get("/approvals?status=rejected").text
    both = client.get("/approvals?status=all").text
    assert decided in both and waiting in both
    bad = client.get("/approvals?status=maybe")
    assert bad.status_code == 422 and "status must be one of" in bad.text
    newest = client.get("/approvals?status=all&limit=1").text
    assert waiting in newest and decided not in newest and 'id="approvals-more"' in newest
    for limit in ("0", "5000", "many"):
        assert client.get(f"/approvals?limit={limit}").status_code == 422


def test_empty_queue_says_nothing_waits(app: Any) -> None:
    page = anonymous(app).get("/approvals")
    assert page.status_code == 200 and 'id="approvals-empty"' in page.text
    assert "Nothing waits for a person" in page.text


def test_expired_approvals_take_their_default_before_the_queue_is_shown(app: Any) -> None:
    approval_id = paused_tool_call(app)
    store = app.state.store
    store.expire_due(now=time.time() + 48 * 3600)  # as if two days passed
    assert store.require_approval(approval_id).status == "rejected"
    html = anonymous(app).get("/approvals").text
    assert approval_id not in html
    assert approval_id in anonymous(app).get("/approvals?status=rejected").text


# --- one approval -------------------------------------------------------------------------------


def test_detail_shows_the_content_in_full_the_reasons_the_plan_and_the_form(app: Any) -> None:
    approval_id = paused_step(app)
    html = signed_in(app, "bob").get(f"/approvals/{approval_id}").text
    assert 'id="approval-content"' in html and "Transfer 500 EUR" in html and "invoice 2026-117" in html
    assert "&lt;b&gt;now&lt;/b&gt;" in html
    assert "s2" in html and "sensitive" in html  # the item that needs a person, with its tier
    assert 'id="decision-form"' in html and 'id="approve-button"' in html and 'id="reject-button"' in html
    assert f'action="/approvals/{approval_id}/approve"' in html
    assert f'formaction="/approvals/{approval_id}/reject"' in html
    assert "Deciding as <strong>bob</strong>" in html


def test_detail_of_a_tool_call_shows_its_masked_arguments(app: Any) -> None:
    approval_id = paused_tool_call(app)
    html = anonymous(app).get(f"/approvals/{approval_id}").text
    assert 'id="approval-arguments"' in html and "transfer_funds" in html
    assert IBAN in html  # the beneficiary a person checks
    assert CARD not in html and CARD.replace(" ", "") not in html
    assert 'id="approval-signin"' in html and 'id="decision-form"' not in html  # read-only until signed in


def test_detail_of_an_unknown_approval_is_404(app: Any) -> None:
    page = anonymous(app).get("/approvals/ap-0000000000")
    assert page.status_code == 404 and "unknown approval 'ap-0000000000'" in unescape(page.text)


def test_a_decided_approval_shows_who_decided_and_no_form(app: Any) -> None:
    approval_id = paused_tool_call(app)
    decide(app.state.store, app.state.settings, approval_id, "reject", "alice", "wrong payee")
    html = signed_in(app, "bob").get(f"/approvals/{approval_id}").text
    assert "rejected by alice" in html and "wrong payee" in html
    assert 'id="decision-form"' not in html and 'id="approval-closed"' in html


# --- deciding -----------------------------------------------------------------------------------


def test_approve_records_the_signed_in_name_continues_the_run_and_lands_on_it(
    app: Any, resumer: Resumer
) -> None:
    approval_id = paused_tool_call(app)
    client = signed_in(app, "bob")
    answer = client.post(f"/approvals/{approval_id}/approve", data=client.form(note="checked the invoice"))
    assert answer.status_code == 303 and answer.headers["location"] == "/runs/r1"
    approval = app.state.store.require_approval(approval_id)
    assert (approval.status, approval.decided_by, approval.note) == ("approved", "bob", "checked the invoice")
    assert resumer.started == ["r1"]
    decided = [r for r in audit.records(app.state.store, "r1") if r.action == "approval.approved"]
    assert [(r.actor, r.detail.get("note")) for r in decided] == [("bob", "checked the invoice")]
    after = client.get("/approvals").text
    assert f'data-approval-id="{approval_id}"' not in after  # left the queue
    assert f"approval {approval_id} approved by bob" in after and "resuming run r1 (test)" in after


def test_approve_without_a_note_is_fine(app: Any, resumer: Resumer) -> None:
    approval_id = paused_step(app)
    client = signed_in(app, "bob")
    answer = client.post(f"/approvals/{approval_id}/approve", data=client.form())
    assert answer.status_code == 303 and answer.headers["location"] == "/runs/r2"
    approval = app.state.store.require_approval(approval_id)
    assert approval.status == "approved" and approval.note is None
    assert resumer.started == ["r2"]


def test_reject_with_a_reason_records_it_and_continues_the_run(app: Any, resumer: Resumer) -> None:
    approval_id = paused_step(app)
    client = signed_in(app, "dave")
    answer = client.post(f"/approvals/{approval_id}/reject", data=client.form(note="  wrong payee  "))
    assert answer.status_code == 303 and answer.headers["location"] == "/runs/r2"
    approval = app.state.store.require_approval(approval_id)
    assert (approval.status, approval.decided_by, approval.note) == ("rejected", "dave", "wrong payee")
    assert resumer.started == ["r2"]
    rejected = [r for r in audit.records(app.state.store, "r2") if r.action == "approval.rejected"]
    assert [r.actor for r in rejected] == ["dave"]


def test_reject_without_a_reason_is_422_and_changes_nothing(app: Any, resumer: Resumer) -> None:
    approval_id = paused_step(app)
    before = snapshot(app)
    client = signed_in(app, "bob")
    answer = client.post(f"/approvals/{approval_id}/reject", data=client.form(note="   "))
    assert answer.status_code == 422 and "a rejection needs a reason" in answer.text
    assert 'id="error-message"' in answer.text
    assert snapshot(app) == before and resumer.started == []


def test_deciding_twice_is_409_and_changes_nothing(app: Any, resumer: Resumer) -> None:
    approval_id = paused_tool_call(app)
    client = signed_in(app, "bob")
    assert client.post(f"/approvals/{approval_id}/approve", data=client.form()).status_code == 303
    before = snapshot(app)
    other = signed_in(app, "dave")
    for action, note in (("approve", ""), ("reject", "too late"), ("reject", "")):
        answer = other.post(f"/approvals/{approval_id}/{action}", data=other.form(note=note))
        assert answer.status_code == 409, (action, note)
        assert "already approved by bob" in answer.text
    assert snapshot(app) == before and resumer.started == ["r1"]


def test_an_expired_approval_cannot_be_decided(app: Any, resumer: Resumer) -> None:
    store = app.state.store
    store.create_run("r9", "default", {"task": "t"}, "fp", "carol")
    past = time.time() - 48 * 3600
    with pytest.raises(RunPaused) as paused:
        ApprovalGate(store, gov(), "r9", "carol", clock=lambda: past).check_tool(
            Call("transfer_funds", {"iban": IBAN})
        )
    approval_id = paused.value.required.approval_id
    client = signed_in(app, "bob")
    answer = client.post(f"/approvals/{approval_id}/approve", data=client.form())
    assert answer.status_code == 409 and "expired" in answer.text
    approval = store.require_approval(approval_id)
    assert approval.status == "rejected" and approval.decided_by != "bob"
    assert resumer.started == []


def test_unknown_approval_is_404_and_changes_nothing(app: Any, resumer: Resumer) -> None:
    paused_tool_call(app)
    before = snapshot(app)
    client = signed_in(app, "bob")
    answer = client.post("/approvals/ap-0000000000/approve", data=client.form(note="x"))
    assert answer.status_code == 404 and "unknown approval" in answer.text
    assert snapshot(app) == before and resumer.started == []


def test_the_requester_may_not_approve_their_own_run(app: Any, resumer: Resumer) -> None:
    approval_id = paused_tool_call(app, requester="carol")
    before = snapshot(app)
    client = signed_in(app, "carol")
    answer = client.post(f"/approvals/{approval_id}/approve", data=client.form(note="mine"))
    assert answer.status_code == 403 and "carol requested run r1 and may not approve it" in answer.text
    assert snapshot(app) == before and resumer.started == []


def test_someone_not_among_the_approvers_is_403(app: Any, resumer: Resumer) -> None:
    approval_id = paused_tool_call(app, approvers={"sensitive": ["alice"]})
    before = snapshot(app)
    client = signed_in(app, "bob")
    for action in ("approve", "reject"):
        answer = client.post(f"/approvals/{approval_id}/{action}", data=client.form(note="no"))
        assert answer.status_code == 403 and "bob may not decide" in answer.text and "alice" in answer.text
    assert snapshot(app) == before and resumer.started == []
    alice = signed_in(app, "alice")
    assert alice.post(f"/approvals/{approval_id}/approve", data=alice.form()).status_code == 303
    assert app.state.store.require_approval(approval_id).decided_by == "alice"


def test_not_signed_in_is_401_and_changes_nothing(app: Any, resumer: Resumer) -> None:
    approval_id = paused_tool_call(app)
    before = snapshot(app)
    client = anonymous(app)
    answer = client.post(f"/approvals/{approval_id}/approve", data=client.form(note="ok"))
    assert answer.status_code == 401 and "sign in first" in answer.text
    assert snapshot(app) == before and resumer.started == []


@pytest.mark.parametrize("token", [None, "", "stale-token"])
def test_missing_or_wrong_csrf_token_is_403_and_changes_nothing(
    app: Any, resumer: Resumer, token: str | None
) -> None:
    approval_id = paused_tool_call(app)
    before = snapshot(app)
    client = signed_in(app, "bob")
    data = {"note": "ok"} if token is None else {"note": "ok", "csrf_token": token}
    answer = client.post(f"/approvals/{approval_id}/approve", data=data)
    assert answer.status_code == 403 and "security token" in answer.text
    assert snapshot(app) == before and resumer.started == []


def test_a_foreign_origin_is_403(app: Any, resumer: Resumer) -> None:
    approval_id = paused_tool_call(app)
    before = snapshot(app)
    client = signed_in(app, "bob")
    answer = client.post(
        f"/approvals/{approval_id}/approve",
        data=client.form(note="ok"),
        headers={"origin": "http://evil.example"},
    )
    assert answer.status_code == 403
    assert snapshot(app) == before and resumer.started == []


def test_an_oversized_note_is_413_and_changes_nothing(app: Any, resumer: Resumer) -> None:
    approval_id = paused_tool_call(app)
    before = snapshot(app)
    client = signed_in(app, "bob")
    answer = client.post(f"/approvals/{approval_id}/reject", data=client.form(note="x" * 2001))
    assert answer.status_code == 413 and "2,001 characters" in answer.text
    assert snapshot(app) == before and resumer.started == []
    huge = client.post(f"/approvals/{approval_id}/reject", data=client.form(note="x" * 70_000))
    assert huge.status_code == 413
    assert snapshot(app) == before and resumer.started == []


def test_a_run_that_waits_for_another_approval_is_not_continued(app: Any, resumer: Resumer) -> None:
    first = paused_tool_call(app)
    store = app.state.store
    store.add_checkpoint("r1", "execute", "out", {}, True)  # a later step asks again for the same call
    with pytest.raises(RunPaused) as again:
        ApprovalGate(store, gov(), "r1", "carol").check_tool(
            Call("transfer_funds", {"iban": IBAN, "amount": 500, "card": CARD})
        )
    second = again.value.required.approval_id
    assert second != first
    store.set_status("r1", "paused", approval_id=second)
    client = signed_in(app, "bob")
    answer = client.post(f"/approvals/{first}/approve", data=client.form())
    assert answer.status_code == 303
    assert store.require_approval(first).status == "approved"
    assert resumer.started == []
    follow = client.get("/approvals").text
    assert "the run was not continued" in follow and second in follow


def test_a_resumer_failure_keeps_the_decision_and_says_how_to_continue(project: Path) -> None:
    from crewkit.errors import UsageError

    def broken(run_id: str) -> str:
        raise UsageError("cannot start `crewkit resume`: no such file")

    app = make_app(project, resumer=broken)
    approval_id = paused_tool_call(app)
    client = signed_in(app, "bob")
    answer = client.post(f"/approvals/{approval_id}/approve", data=client.form())
    assert answer.status_code == 303
    assert app.state.store.require_approval(approval_id).status == "approved"
    follow = client.get("/approvals").text
    assert "the run did not continue" in follow and "crewkit resume r1" in follow


# --- a real paused run of the default flow ------------------------------------------------------


def test_a_paused_default_flow_run_shows_its_plan_and_continues_after_approval(
    project: Path, resumer: Resumer
) -> None:
    from crewkit.models.registry import RoleMap
    from crewkit.runtime.runner import run_flow
    from crewkit.settings import load_settings
    from tests.fakes import ScriptedLLM

    subtask = {
        "description": "Transfer 500 EUR to IBAN DE89 3704 0044 0532 0130 00 for the invoice.",
        "task_type": "reasoning",
        "acceptance": "The transfer is described.",
    }
    settings = load_settings(project)
    roles = {name: ScriptedLLM([]) for name in ("code", "manager", "vision")}
    roles["reasoning"] = ScriptedLLM([{"subtasks": [subtask]}])
    task = "Pay the invoice: transfer 500 EUR to IBAN DE89 3704 0044 0532 0130 00"
    outcome = run_flow(settings, RoleMap(settings, overrides=roles), "default", {"task": task})
    assert outcome.status == "paused", outcome
    app = make_app(project, resumer=resumer)
    approval_id = outcome.approval_id
    html = unescape(anonymous(app).get(f"/approvals/{approval_id}").text)
    plan = html[html.index('id="approval-plan"') :]
    plan = plan[: plan.index("</table>")]
    assert "s1" in plan and "reasoning" in plan and "sensitive" in plan and "IBAN DE89…3000" in plan
    assert "transfer 500 EUR" in plan
    client = signed_in(app, "bob")
    answer = client.post(f"/approvals/{approval_id}/approve", data=client.form(note="ok"))
    assert answer.status_code == 303 and answer.headers["location"] == f"/runs/{outcome.run_id}"
    assert resumer.started == [outcome.run_id]
    assert app.state.store.require_approval(approval_id).decided_by == "bob"
