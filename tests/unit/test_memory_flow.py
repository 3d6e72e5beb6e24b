"""Long-term memory through the default flow, on scripted models and the real embedded store:
a finished run's finding is stored in its tenant's (and user's) scope and recalled by the next
run's planner and executor; another tenant never sees it; a rollback removes it."""

from __future__ import annotations

import json

import pytest

from crewkit.memory.store import MemoryStore, Scope
from crewkit.models.registry import RoleMap
from crewkit.runtime.runner import run_flow
from tests.fakes import ScriptedLLM, tool_call

DELEGATE = "delegate_work_to_coworker"
UNTRUSTED = [{"passed": True, "issues": []}]  # a reviewer that passes "banana": not asked (cached)


def _plan(description: str) -> dict:
    return {"subtasks": [{"description": description, "task_type": "reasoning", "acceptance": "Answers."}]}


def _run(settings, task: str, answer: str, *, first: bool, **inputs: str):
    reasoning = ScriptedLLM([_plan(task), answer, *(UNTRUSTED if first else [])])
    manager = ScriptedLLM(
        [tool_call(DELEGATE, task=task, context="", coworker="Reasoning Specialist"), answer]
    )
    fakes = {"reasoning": reasoning, "manager": manager, "code": ScriptedLLM([]), "vision": ScriptedLLM([])}
    outcome = run_flow(settings, RoleMap(settings, overrides=fakes), "default", {"task": task, **inputs})
    assert outcome.status == "done", outcome.record.get("error")
    return outcome, reasoning, manager


@pytest.fixture
def memories(settings):
    store = MemoryStore.open(settings)
    yield store
    store.close()


def test_a_second_run_recalls_what_the_first_stored_and_another_tenant_does_not(settings, memories):
    first, _, _ = _run(
        settings,
        "Which port does the billing service listen on?",
        "The billing service listens on port 8443.",
        first=True,
        tenant="acme",
        user="ann",
    )
    learned = first.record["memory"]["learned"]
    [stored] = memories.list_memories(Scope("acme", "ann"))
    assert stored.id == learned["id"] and "port 8443" in stored.text

    second, planner, manager = _run(
        settings,
        "Which port should the firewall open for the billing service?",
        "Open port 8443 for the billing service.",
        first=False,
        tenant="acme",
        user="ann",
    )
    recalled = second.record["memory"]["recalled"]
    assert [m["id"] for m in recalled] == [learned["id"]]
    plan_prompt = planner.calls[0].prompt
    assert "Relevant memories from earlier work" in plan_prompt and "port 8443" in plan_prompt
    assert "port 8443" in manager.calls[0].prompt  # the executor's manager sees it too

    other, planner, _ = _run(
        settings,
        "Which port should the firewall open for the billing service?",
        "Ask the billing team.",
        first=False,
        tenant="globex",
        user="ann",
    )
    assert other.record["memory"]["recalled"] == []
    assert "port 8443" not in planner.calls[0].prompt
    assert memories.count(Scope("globex")) == 1  # its own finding only


def test_with_long_term_memory_off_nothing_is_recalled_or_stored(project, memories):
    from crewkit.settings import load_settings

    path = project / "config" / "memory.yaml"
    path.write_text(path.read_text().replace("  enabled: true", "  enabled: false", 1))
    settings = load_settings(project)
    outcome, planner, _ = _run(settings, "What is 2 + 2?", "2 + 2 = 4.", first=True)
    assert "memory" not in outcome.record or outcome.record["memory"].get("learned") is None
    assert "Relevant memories" not in planner.calls[0].prompt
    assert memories.count() == 0


def test_rolling_a_run_back_removes_what_it_stored_and_the_audit_log_says_so(settings, memories):
    from crewkit import cli
    from crewkit.runtime.store import StateStore

    outcome, _, _ = _run(settings, "Who owns the payroll runbook?", "Dana Reyes owns it.", first=True)
    assert memories.count(Scope("default")) == 1
    memories.close()  # the rollback's compensator opens the embedded store itself
    assert cli.main(["rollback", outcome.run_id, "--to", "start"]) == 0
    again = MemoryStore.open(settings)
    try:
        assert again.count(Scope("default")) == 0
    finally:
        again.close()
    undone = StateStore.open(settings.home).read(
        "SELECT detail FROM audit WHERE action = 'memory.undone' AND run_id = ?", (outcome.run_id,)
    )
    assert len(undone) == 1 and json.loads(undone[0][0])["run_id"] == outcome.run_id


def test_a_memory_store_held_by_another_process_is_a_limitation_and_the_run_still_ends_done(
    project, settings
):
    import subprocess
    import sys

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from crewkit.settings import load_settings\n"
            "from crewkit.memory.store import MemoryStore\n"
            "MemoryStore.open(load_settings()).index\n"
            "print('open', flush=True)\n"
            "time.sleep(120)\n",
        ],
        cwd=project,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        outcome, planner, _ = _run(settings, "What is 2 + 2?", "2 + 2 = 4.", first=True)
    finally:
        holder.kill()
        holder.wait()
    limits = outcome.record["limitations"]
    assert any(
        line.startswith("no long-term memory recalled: ") and "another process" in line for line in limits
    )
    assert any(line.startswith("nothing stored in long-term memory: ") for line in limits)
    assert "Relevant memories" not in planner.calls[0].prompt
