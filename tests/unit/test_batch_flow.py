"""The default flow with batching on: independent subtasks run at the same time, and the run's
result, prompts, usage, journal and routing are the same as one subtask after another.

The scripted models answer by prompt, never by call order (two subtasks' calls interleave)."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from crewkit.models.registry import RoleMap
from crewkit.runtime.runner import run_flow
from crewkit.settings import load_settings
from tests.fakes import Call, ScriptedLLM, tool_call
from tests.unit.conftest import set_batching

DELEGATE = "delegate_work_to_coworker"
TASK = "Write a palindrome checker in Python, explain it, and list two edge cases"
SUBTASKS = [
    {"description": "Write is_palindrome(s) in Python.", "task_type": "code", "acceptance": "Has code."},
    {"description": "Explain how is_palindrome works.", "task_type": "reasoning", "acceptance": "Explains."},
    {
        "description": "List two edge cases of is_palindrome.",
        "task_type": "reasoning",
        "acceptance": "Lists.",
    },
]
UNTRUSTED = [{"passed": True, "issues": []}]  # the reviewer fails calibration: not asked
ANSWERS = {
    "Write is_palindrome": "```python\ndef is_palindrome(s):\n    return s == s[::-1]\n```",
    "Explain how is_palindrome": "It compares the string with its reverse.",
    "List two edge cases": "An empty string and a single character are palindromes.",
}


def manager(call: Call) -> Any:
    """Delegates the subtask its prompt names to the specialist its prompt names; relays the answer."""
    if call.messages[-1].get("role") == "tool":
        return str(call.messages[-1]["content"])
    subtask = re.search(r"Subtask \d+ of \d+ \(\w+\): (.+)", call.prompt).group(1).strip()
    coworker = re.search(r"Delegate it to the (.+?) with", call.prompt).group(1)
    return tool_call(DELEGATE, task=subtask, context="", coworker=coworker)


class Specialist:
    """Answers by the subtask in its prompt; with `meet`, waits until that many answer at once."""

    def __init__(self, meet: threading.Barrier | None = None) -> None:
        self.meet = meet

    def __call__(self, call: Call) -> str:
        if self.meet is not None:
            self.meet.wait()  # a BrokenBarrierError (timeout) means they never ran at the same time
        return next(answer for key, answer in ANSWERS.items() if key in call.prompt)


def roles(meet: threading.Barrier | None = None) -> dict[str, ScriptedLLM]:
    specialist = Specialist(meet)
    return {
        "reasoning": ScriptedLLM([{"subtasks": SUBTASKS}, specialist, specialist, *UNTRUSTED]),
        "code": ScriptedLLM([specialist]),
        "manager": ScriptedLLM([manager] * 6),
        "vision": ScriptedLLM([]),
    }


def run(project: Path, fakes: dict[str, ScriptedLLM], *, enabled: bool, limit: int = 2) -> Any:
    """One run in a state home of its own (what one run learns must not reach the next's prompts)."""
    set_batching(project, enabled=enabled, max_concurrency=limit)
    home = project.parent / f"home-{enabled}-{limit}-{len(list(project.parent.glob('home-*')))}"
    os.environ["CREWKIT_HOME"] = str(home)  # the autouse fixture restores it after the test
    settings = load_settings(project)
    assert settings.operations.batching.enabled is enabled
    return run_flow(settings, RoleMap(settings, overrides=fakes), "default", {"task": TASK})


def tokens(usage: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {role: {k: v for k, v in u.items() if k != "seconds"} for role, u in usage.items()}


def specialist_prompts(fakes: dict[str, ScriptedLLM]) -> list[str]:
    calls = [c for llm in fakes.values() for c in llm.calls if c.agent and "Specialist" in c.agent]
    return sorted(c.prompt for c in calls)


def test_batched_subtasks_run_at_once_and_give_what_the_sequential_run_gives(project: Path):
    one_by_one = roles()
    sequential = run(project, one_by_one, enabled=False)
    assert sequential.status == "done", sequential.record.get("error")

    # three specialists' answers wait for each other: they only pass if all three run at once
    batched_roles = roles(threading.Barrier(3, timeout=20))
    batched = run(project, batched_roles, enabled=True, limit=3)
    assert batched.status == "done", batched.record.get("error")

    assert batched.record["result"] == sequential.record["result"]
    assert batched.record["result"].index("def is_palindrome") < batched.record["result"].index("reverse")
    # the same prompts per subtask in both modes
    assert specialist_prompts(batched_roles) == specialist_prompts(one_by_one)
    assert sorted(c.prompt for c in batched_roles["manager"].calls) == sorted(
        c.prompt for c in one_by_one["manager"].calls
    )
    # usage, routing and the journal are whole under concurrency
    assert tokens(batched.record["usage"]) == tokens(sequential.record["usage"])  # none counted twice
    assert [(r["subtask"], r["answered_by"]) for r in batched.record["routing"]] == [
        (r["subtask"], r["answered_by"]) for r in sequential.record["routing"]
    ]
    assert [r["subtask"] for r in batched.record["routing"]] == ["s1", "s2", "s3"]


def test_at_most_max_concurrency_subtasks_run_at_once(project: Path):
    running, most, changed = 0, 0, threading.Condition()

    def counted(call: Call) -> str:
        nonlocal running, most
        with changed:
            running += 1
            most = max(most, running)
            changed.notify_all()
            changed.wait_for(lambda: running >= 3, timeout=1.5)  # a third would show up now
        try:
            return Specialist()(call)
        finally:
            with changed:
                running -= 1

    fakes = {
        "reasoning": ScriptedLLM([{"subtasks": SUBTASKS}, counted, counted, *UNTRUSTED]),
        "code": ScriptedLLM([counted]),
        "manager": ScriptedLLM([manager] * 6),
        "vision": ScriptedLLM([]),
    }
    outcome = run(project, fakes, enabled=True, limit=2)
    assert outcome.status == "done", outcome.record.get("error")
    assert most == 2


def test_a_failing_subtask_fails_the_batched_run_like_the_sequential_one(project: Path):
    def broken(call: Call) -> Any:  # the manager of subtask 2 cannot reach its model
        if "Explain how" in call.prompt and call.messages[-1].get("role") != "tool":
            raise ConnectionError("model server exploded")
        return manager(call)

    outcomes, specialists = [], []
    for enabled in (False, True):
        specialist = Specialist()
        fakes = {
            "reasoning": ScriptedLLM([{"subtasks": SUBTASKS}, specialist, specialist], allow_unused=True),
            "code": ScriptedLLM([specialist], allow_unused=True),
            "manager": ScriptedLLM([broken] * 30, allow_unused=True),
            "vision": ScriptedLLM([]),
        }
        outcomes.append(run(project, fakes, enabled=enabled))
        specialists.append(specialist_prompts(fakes))
    sequential, batched = outcomes
    assert sequential.status == batched.status == "failed"
    for outcome in outcomes:  # (the second run's note that the model cools down since the first aside)
        assert outcome.record["error"].startswith("role 'manager': every model failed")
        assert outcome.record["error"].endswith("local-small: ConnectionError: model server exploded")
    # one at a time, subtask 3 never starts (batched, it may have started while subtask 2 still
    # retried; its answer is not used)
    assert not any("List two edge cases" in p for p in specialists[0])


def test_the_journal_keeps_every_subtask_answer_of_a_batched_run(project: Path):
    fakes = roles()
    outcome = run(project, fakes, enabled=True, limit=3)
    assert outcome.status == "done", outcome.record.get("error")
    settings = load_settings(project)
    from crewkit.runtime.store import StateStore

    store = StateStore.open(settings.home)
    rows = store.read("SELECT value FROM journal WHERE run_id = ?", (outcome.run_id,))
    answers = {json.loads(r[0])["value"] for r in rows if json.loads(r[0])["type"] == "str"}
    assert set(ANSWERS.values()) <= answers  # each specialist's answer, so a resume replays it


@pytest.mark.parametrize("enabled", [False, True])
def test_a_subtask_that_depends_on_another_waits_and_sees_its_result(project: Path, enabled: bool):
    """Plan items may say `depends_on` (ids): the flow waits and gives the dependant their results."""
    from flows import default as default_flow

    plan_step = default_flow.DefaultFlow.plan

    def plan_with_dependency(self: Any) -> None:
        plan_step(self)
        self.state.plan[1]["depends_on"] = ["s1"]

    fakes = roles()
    mp = pytest.MonkeyPatch()
    mp.setattr(default_flow.DefaultFlow, "plan", plan_with_dependency)
    try:
        outcome = run(project, fakes, enabled=enabled)
    finally:
        mp.undo()
    assert outcome.status == "done", outcome.record.get("error")
    # the dependant's crew task (and the pinned delegation's context) carries s1's result
    asked = [c.prompt for c in fakes["manager"].calls if c.messages[-1].get("role") != "tool"]
    explained = next(p for p in asked if "Explain how" in p)
    assert "Result of s1" in explained and "def is_palindrome" in explained
    edge_cases = next(p for p in asked if "List two edge cases" in p)
    assert "Result of s1" not in edge_cases
