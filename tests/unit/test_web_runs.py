"""The console's runs room: the list, a run's page, resume.

Runs are made through the engine: the default flow on scripted models (`run_flow` with
ScriptedLLM), and for states a scripted flow does not reach (a priced failed run, a run
still running) `StateStore.create_run` with usage rows and a status, as the runner writes them.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict

import pytest

from crewkit.governance import approvals
from crewkit.models.registry import RoleMap
from crewkit.observability.ledger import CallRecord
from crewkit.runtime.runner import run_flow
from crewkit.runtime.store import StateStore
from tests.fakes import ScriptedLLM, tool_call
from tests.web_support import Resumer, anonymous, make_app, signed_in

EXPLAIN = "Explain recursion in one short paragraph."
ANSWER = (
    "Recursion is when a function calls itself on a smaller part of the problem until a base case stops it."
)
IBAN_TASK = "Pay the invoice: transfer 500 EUR to IBAN DE89 3704 0044 0532 0130 00"


def plan_of(task: str) -> dict:
    return {"subtasks": [{"description": task, "task_type": "reasoning", "acceptance": "Answers the task."}]}


def done_run(settings, task: str = EXPLAIN, answer: str = ANSWER) -> str:
    """A finished run of the default flow: plan, delegated answer, checks; the reviewer fails calibration."""
    delegate = tool_call(
        "delegate_work_to_coworker", task=task, context="plan", coworker="Reasoning Specialist"
    )
    fakes = {
        "reasoning": ScriptedLLM([plan_of(task), answer, {"passed": True, "issues": []}]),
        "manager": ScriptedLLM([delegate, answer]),
    }
    outcome = run_flow(settings, RoleMap(settings, overrides=fakes), "default", {"task": task})
    assert outcome.status == "done", outcome.record.get("error")
    return outcome.run_id


def paused_run(settings) -> tuple[str, str]:
    """A run of the default flow waiting for a person: the IBAN task is sensitive. (run id, approval id)"""
    fakes = {"reasoning": ScriptedLLM([plan_of(IBAN_TASK)])}
    outcome = run_flow(settings, RoleMap(settings, overrides=fakes), "default", {"task": IBAN_TASK})
    assert outcome.status == "paused" and outcome.approval_id
    return outcome.run_id, outcome.approval_id


def failed_priced_run(settings, run_id: str = "r-priced") -> str:
    """A run on a priced model that failed: its usage rows and status as the runner writes them."""
    store = StateStore.open(settings.home)
    store.create_run(run_id, "default", {"task": "Summarise the report"}, "fp", "carol", tenant="acme")
    call = CallRecord("plan", "Planner", "reasoning", "gpt-4o", time.time(), 1.5, 1200, 300, 0.0123)
    store.add_call(run_id, asdict(call))
    store.set_status(run_id, "failed", error="the model timed out after 3 attempts")
    return run_id


def rows(html: str) -> list[str]:
    """The run ids of the listing, in the order shown."""
    return re.findall(r'<tr class="run" data-run-id="([^"]+)"', html)


def audit_actions(store: StateStore, run_id: str) -> list[tuple[str, str]]:
    return [
        (a, b)
        for a, b in store.read("SELECT actor, action FROM audit WHERE run_id = ? ORDER BY seq", (run_id,))
    ]


@pytest.fixture
def resumer() -> Resumer:
    return Resumer()


@pytest.fixture
def app(project, resumer):
    return make_app(project, resumer=resumer)


# --- the list ----------------------------------------------------------------------------------


def test_the_list_shows_runs_newest_first_with_status_cost_models_and_tenant(settings, app):
    done = done_run(settings)
    priced = failed_priced_run(settings)
    page = anonymous(app).get("/runs")
    assert page.status_code == 200
    assert rows(page.text) == [priced, done]
    row = page.text[page.text.index(f'data-run-id="{priced}"') :].split("</tr>")[0]
    assert 'class="status failed"' in row and "the model timed out" in row
    assert "$0.0123" in row and "gpt-4o" in row and "acme" in row and "carol" in row and "1500" in row
    row = page.text[page.text.index(f'data-run-id="{done}"') :].split("</tr>")[0]
    assert 'class="status done"' in row and "local-small" in row and ">default<" in row
    assert f'href="/runs/{done}"' in row


def test_the_list_filters_by_status_and_pages_with_limit_and_offset(settings, app):
    done = done_run(settings)
    paused, _ = paused_run(settings)
    priced = failed_priced_run(settings)
    client = anonymous(app)
    assert rows(client.get("/runs?status=paused").text) == [paused]
    assert rows(client.get("/runs?status=done").text) == [done]
    assert rows(client.get("/runs?status=all").text) == [priced, paused, done]
    first = client.get("/runs?limit=2")
    assert rows(first.text) == [priced, paused]
    assert 'id="older" href="/runs?limit=2&amp;offset=2"' in first.text
    last = client.get("/runs?limit=2&offset=2")
    assert rows(last.text) == [done] and 'id="older"' not in last.text and 'id="newer"' in last.text
    empty = client.get("/runs?status=interrupted")
    assert empty.status_code == 200 and rows(empty.text) == [] and "No interrupted runs" in empty.text


def test_no_runs_says_how_to_start_one(app):
    page = anonymous(app).get("/runs")
    assert page.status_code == 200 and 'id="no-runs"' in page.text and "crewkit run" in page.text


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("status=finished", "unknown status &#39;finished&#39;"),
        ("limit=0", "limit must be between 1 and 500"),
        ("limit=100000", "limit must be between 1 and 500"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset must be between"),
    ],
)
def test_a_bad_listing_query_is_a_422_page_with_one_line(app, query, said):
    page = anonymous(app).get(f"/runs?{query}")
    assert page.status_code == 422
    assert said in page.text and 'id="error-message"' in page.text


# --- one run -----------------------------------------------------------------------------------


def test_a_run_page_shows_plan_steps_routing_guardrails_verification_result_and_audit(settings, app):
    run_id = done_run(settings)
    page = anonymous(app).get(f"/runs/{run_id}")
    assert page.status_code == 200
    html = page.text
    assert 'id="run-status">done<' in html and 'http-equiv="refresh"' not in html
    assert ANSWER in html.split('id="run-result"')[1].split("</pre>")[0]
    plan = html.split('id="plan"')[1].split("</table>")[0]
    assert EXPLAIN in plan and 'data-task-type="reasoning"' in plan and 'data-risk="low"' in plan
    steps = html.split('id="steps"')[1].split("</table>")[0]
    for agent, role in (
        ("Planner", "reasoning"),
        ("Crew Manager", "manager"),
        ("Reasoning Specialist", "reasoning"),
    ):
        assert f"<td>{agent}</td>\n      <td>{role}</td>\n      <td>local-small</td>" in steps
    assert "by-complexity" in html.split('id="routing"')[1].split("</table>")[0]
    guard = html.split('id="guardrails"')[1].split("</table>")[0]
    assert "no_secrets" in guard and 'data-allowed="true"' in guard and 'data-allowed="false"' not in guard
    assert 'id="verification-verdict">passed<' in html
    trail = html.split('id="audit-trail"')[1].split("</table>")[0]
    actions = re.findall(r'data-action="([^"]+)"', trail)
    assert actions[0] == "run.started" and "model.call" in actions and actions[-1] == "run.status"
    assert "is done; nothing to resume" in html and 'id="resume-button"' not in html


def test_a_priced_failed_run_shows_its_error_cost_and_a_resume_button(settings, app):
    run_id = failed_priced_run(settings)
    html = anonymous(app).get(f"/runs/{run_id}").text
    assert "the model timed out after 3 attempts" in html.split('id="run-error"')[1].split("</section>")[0]
    assert "$0.0123" in html.split('id="run-cost"')[1].split("</dd>")[0]
    assert "gpt-4o" in html.split('id="run-models"')[1]
    assert 'id="resume-button"' in html and "acme" in html


def test_a_paused_run_shows_its_pending_approval_and_refuses_resume(settings, app):
    run_id, approval_id = paused_run(settings)
    html = anonymous(app).get(f"/runs/{run_id}").text
    assert 'id="run-status">paused<' in html
    assert f'href="/approvals/{approval_id}" id="review-approval"' in html
    assert 'data-risk="sensitive"' in html and "moves money" in html
    approvals_table = html.split('id="approvals"')[1].split("</table>")[0]
    assert approval_id in approvals_table and 'class="status pending"' in approvals_table
    assert f"still waits for approval {approval_id}" in html and 'id="resume-button"' not in html


def test_a_running_run_page_reloads_itself_every_3_seconds(settings, app):
    store = StateStore.open(settings.home)
    store.create_run("r-live", "default", {"task": "t"}, "fp", "alice")  # this process: alive
    html = anonymous(app).get("/runs/r-live").text
    assert '<meta http-equiv="refresh" content="3">' in html and 'id="live-note"' in html
    assert "is running in process" in html and 'id="resume-button"' not in html
    store.set_status("r-live", "done")
    assert 'http-equiv="refresh"' not in anonymous(app).get("/runs/r-live").text


def test_after_a_decision_the_run_page_reloads_until_the_run_is_taken_up(settings, app):
    from crewkit.web.pages.runs import continuing

    run_id, approval_id = paused_run(settings)
    client = anonymous(app)
    assert 'http-equiv="refresh"' not in client.get(f"/runs/{run_id}").text  # waiting for a person: still
    approvals.decide(StateStore.open(settings.home), settings, approval_id, "approve", "alice", None)
    html = client.get(f"/runs/{run_id}").text
    assert '<meta http-equiv="refresh" content="3">' in html and "Continuing the run" in html
    last = {"action": "approval.approved", "ts": 1000.0}
    assert continuing([last], None, now=1060.0) and not continuing([last], None, now=1200.0)
    assert not continuing([last], "run r is done; nothing to resume", now=1001.0)
    assert not continuing([{"action": "run.status", "ts": 1000.0}], None, now=1001.0)


def test_a_record_in_shapes_of_another_flow_still_shows(settings, app):
    from crewkit.runtime.record import write_atomic

    store = StateStore.open(settings.home)
    store.create_run("r-odd", "mine", {"task": "t"}, "fp", None)
    path = settings.output_dir / "r-odd.json"
    odd = {"plan": ["look it up", "write it down"], "result": {"answer": 42}, "verification": "by hand",
           "routing": ["cheapest"], "blocked": None, "limitations": ["none worth a note"], "steps": ["x"]}  # fmt: skip
    write_atomic(path, odd)
    store.set_status("r-odd", "done", record_path=str(path))
    page = anonymous(app).get("/runs/r-odd")
    assert page.status_code == 200
    assert "look it up" in page.text.split('id="plan"')[1] and "write it down" in page.text
    assert "&#34;answer&#34;: 42" in page.text.split('id="run-result"')[1].split("</pre>")[0]
    assert "by hand" in page.text and "cheapest" in page.text and "none worth a note" in page.text


def test_a_run_whose_process_died_is_marked_and_can_be_resumed(settings, app, resumer):
    import subprocess
    import sys

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    store = StateStore.open(settings.home)
    store.create_run("r-gone", "default", {"task": "t"}, "fp", "alice")
    with store.write() as conn:  # as if the process that started it had been killed
        conn.execute("UPDATE runs SET pid = ?, pid_start = NULL WHERE run_id = 'r-gone'", (int(gone.stdout),))
    client = signed_in(app, "bob")
    listing = client.get("/runs").text
    assert "(process gone)" in listing.split('data-run-id="r-gone"')[1].split("</tr>")[0]
    assert 'id="resume-button"' in client.get("/runs/r-gone").text
    assert client.post("/runs/r-gone/resume", data=client.form()).status_code == 303
    assert resumer.started == ["r-gone"]


def test_an_unknown_run_is_404_on_its_page_and_on_resume(settings, app):
    done_run(settings)
    client = signed_in(app, "bob")
    page = client.get("/runs/nope-123")
    assert page.status_code == 404 and "unknown run &#39;nope-123&#39;" in page.text
    answer = client.post("/runs/nope-123/resume", data=client.form())
    assert answer.status_code == 404


def test_model_text_on_the_run_page_is_escaped(settings, app):
    run_id = done_run(settings, task="Explain what <script>alert(1)</script> does in HTML.",
                      answer="It runs <script>alert(1)</script> as JavaScript when the page loads.")  # fmt: skip
    html = anonymous(app).get(f"/runs/{run_id}").text
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- resume ------------------------------------------------------------------------------------


def test_resume_after_the_approval_is_decided_continues_the_run_and_is_audited(settings, app, resumer):
    run_id, approval_id = paused_run(settings)
    store = StateStore.open(settings.home)
    approvals.decide(store, settings, approval_id, "approve", "alice", "checked the IBAN")
    client = signed_in(app, "bob")
    answer = client.post(f"/runs/{run_id}/resume", data=client.form())
    assert answer.status_code == 303 and answer.headers["location"] == f"/runs/{run_id}"
    assert resumer.started == [run_id]
    assert audit_actions(store, run_id)[-1] == ("bob", "run.resume_requested")
    page = client.get(f"/runs/{run_id}")
    assert f"resuming run {run_id} (test)" in page.text  # the flash
    trail = page.text.split('id="audit-trail"')[1]
    assert 'data-action="approval.approved"' in trail and 'data-action="run.resume_requested"' in trail


def test_resume_of_a_failed_run_is_allowed(settings, app, resumer):
    run_id = failed_priced_run(settings)
    client = signed_in(app, "bob")
    assert client.post(f"/runs/{run_id}/resume", data=client.form()).status_code == 303
    assert resumer.started == [run_id]


@pytest.mark.parametrize("state", ["done", "pending", "running"])
def test_resume_is_409_with_the_reason_and_changes_nothing(settings, app, resumer, state):
    store = StateStore.open(settings.home)
    if state == "done":
        run_id, said = done_run(settings), "is done; nothing to resume"
    elif state == "pending":
        run_id, approval_id = paused_run(settings)
        said = f"still waits for approval {approval_id}"
    else:
        run_id, said = "r-live", "is running in process"
        store.create_run(run_id, "default", {"task": "t"}, "fp", "alice")
    before = (store.get_run(run_id), audit_actions(store, run_id))
    client = signed_in(app, "bob")
    answer = client.post(f"/runs/{run_id}/resume", data=client.form())
    assert answer.status_code == 409 and said in answer.text
    assert resumer.started == [] and (store.get_run(run_id), audit_actions(store, run_id)) == before


def test_resume_needs_a_signed_in_person_and_the_form_token(settings, app, resumer):
    run_id = failed_priced_run(settings)
    store = StateStore.open(settings.home)
    before = audit_actions(store, run_id)
    visitor = anonymous(app)
    assert visitor.post(f"/runs/{run_id}/resume", data=visitor.form()).status_code == 401
    bob = signed_in(app, "bob")
    assert bob.post(f"/runs/{run_id}/resume", data={"csrf_token": "stale"}).status_code == 403
    foreign = bob.post(f"/runs/{run_id}/resume", data=bob.form(), headers={"origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert resumer.started == [] and audit_actions(store, run_id) == before
    assert store.get_run(run_id).status == "failed"


def test_a_resume_that_cannot_start_is_shown_and_nothing_is_audited(settings, project):
    from crewkit.errors import UsageError

    def broken(run_id: str) -> str:
        raise UsageError(f"cannot start `crewkit resume {run_id}`: no such file")

    app = make_app(project, resumer=broken)
    run_id = failed_priced_run(settings)
    client = signed_in(app, "bob")
    before = audit_actions(StateStore.open(settings.home), run_id)
    answer = client.post(f"/runs/{run_id}/resume", data=client.form())
    assert answer.status_code == 422 and "cannot start" in answer.text
    assert audit_actions(StateStore.open(settings.home), run_id) == before
