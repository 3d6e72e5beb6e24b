"""The runs room in headless Chromium: find a run, read it, resume it, watch it finish.

Runs are made through the engine on the test project: the default flow on scripted models
(a finished run, and the IBAN task that pauses for a person), and `StateStore.create_run` for a
run still running (this test process holds it, so it is alive).
"""

from __future__ import annotations

import pytest

from crewkit.governance import approvals
from crewkit.runtime.store import StateStore
from crewkit.settings import load_settings
from tests.browser.conftest import shot, sign_in
from tests.fakes import ScriptedLLM, tool_call
from tests.unit.conftest import set_batching, unseed
from tests.unit.test_web_runs import ANSWER, EXPLAIN, IBAN_TASK, done_run, paused_run

PAID = "The invoice payment of 500 EUR is prepared for the approved account; the transfer is scheduled today."


@pytest.fixture
def settings(project):
    """The project as the unit tests run it: subtasks one after another, no seeded cache."""
    set_batching(project, enabled=False)
    unseed(project)
    return load_settings(project)


def test_find_a_run_by_status_and_read_its_plan_steps_and_audit_trail(settings, console, page):
    done = done_run(settings)
    paused, approval_id = paused_run(settings)
    page.goto(console.url + "/runs")
    assert page.locator("tr.run").count() == 2
    assert page.locator("tr.run").first.get_attribute("data-run-id") == paused  # newest first
    page.click('#status-filter a[data-status="paused"]')
    page.wait_for_url("**/runs?status=paused*")
    assert [r.get_attribute("data-run-id") for r in page.locator("tr.run").all()] == [paused]
    page.click("#status-filter a >> text=all")
    page.wait_for_selector(f'tr.run[data-run-id="{done}"]')
    shot(page, "runs-list")

    page.click(f'tr.run[data-run-id="{done}"] a.run-link')
    page.wait_for_selector("#run-status")
    assert page.inner_text("#run-status") == "done"
    assert ANSWER in page.inner_text("#run-result")
    assert EXPLAIN in page.inner_text("#plan") and "reasoning" in page.inner_text("#plan")
    assert "Reasoning Specialist" in page.inner_text("#steps")
    assert page.locator('#guardrails tr.verdict[data-allowed="true"]').count() >= 1
    assert page.locator('#audit-trail tr[data-action="run.started"]').count() == 1
    assert page.locator("#resume-button").count() == 0
    shot(page, "runs-detail")

    page.goto(console.url + f"/runs/{paused}")
    assert page.inner_text("#run-status") == "paused"
    assert "sensitive" in page.inner_text("#plan")
    assert page.get_attribute("#review-approval", "href") == f"/approvals/{approval_id}"
    assert "still waits for approval" in page.inner_text("#resume-refusal")


class ScriptedResume:
    """Continues a run in the console's request, as `crewkit resume` would, on scripted models."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.started: list[str] = []

    def __call__(self, run_id: str) -> str:
        from crewkit.models.registry import RoleMap
        from crewkit.runtime.runner import resume_run

        self.started.append(run_id)
        delegate = tool_call(
            "delegate_work_to_coworker", task=PAID, context="plan", coworker="Reasoning Specialist"
        )
        fakes = {
            "reasoning": ScriptedLLM([PAID, {"passed": True, "issues": []}]),
            "manager": ScriptedLLM([delegate, PAID]),
        }
        outcome = resume_run(self.settings, RoleMap(self.settings, overrides=fakes), run_id)
        return f"resumed run {run_id}: {outcome.status}"


@pytest.fixture
def console_resumer(settings) -> ScriptedResume:
    return ScriptedResume(settings)


def test_resume_a_decided_run_as_a_signed_in_person(settings, console, console_resumer, page):
    run_id, approval_id = paused_run(settings)
    approvals.decide(StateStore.open(settings.home), settings, approval_id, "approve", "alice", "ok")
    page.goto(console.url + f"/runs/{run_id}")
    page.click("#resume-button")  # not signed in: refused, nothing started
    assert page.inner_text("#error-message").startswith("sign in first")
    assert console_resumer.started == []

    sign_in(page, console.url, "bob")
    page.goto(console.url + f"/runs/{run_id}")
    page.click("#resume-button")
    page.wait_for_selector("p.flash")
    assert page.inner_text("p.flash") == f"resumed run {run_id}: done"
    assert console_resumer.started == [run_id]
    assert page.inner_text("#run-status") == "done" and PAID in page.inner_text("#run-result")
    row = page.locator('#audit-trail tr[data-action="run.resume_requested"]')
    assert row.count() == 1 and row.locator("td.actor").inner_text() == "bob"
    assert page.locator('#audit-trail tr[data-action="approval.approved"] td.actor').inner_text() == "alice"
    shot(page, "runs-resumed")


def test_a_running_run_page_refreshes_until_the_run_is_done(settings, console, page):
    store = StateStore.open(settings.home)
    store.create_run("r-live", "default", {"task": IBAN_TASK}, "fp", "alice")
    page.goto(console.url + "/runs/r-live")
    assert page.inner_text("#run-status") == "running" and page.locator("#live-note").count() == 1
    store.set_status("r-live", "done")
    page.locator("#run-status.done").wait_for(timeout=10_000)  # no click: the page reloaded itself
    assert page.locator("#live-note").count() == 0
