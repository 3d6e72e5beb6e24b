"""The default flow on scripted models: plan -> delegated execution -> verification -> guard."""

from __future__ import annotations

import json

import pytest

from crewkit.models.registry import RoleMap
from crewkit.runner import run_flow
from tests.fakes import ScriptedLLM, tool_call

DELEGATE = "delegate_work_to_coworker"
PLAN = {
    "subtasks": [
        {"description": "Write is_palindrome(s) in Python.", "task_type": "code", "acceptance": "Has code."},
        {
            "description": "Explain how is_palindrome works.",
            "task_type": "reasoning",
            "acceptance": "Explains.",
        },
    ]
}


# The reviewer is calibrated once per model before it is first asked (crewkit.governance.reviewer):
# it must reject "banana" for 2+2, then accept "2 + 2 = 4". A reviewer that passes "banana" is
# not asked at all (one probe call instead of the review call).
TRUSTED = [{"passed": False, "issues": ["banana is not 4"]}, {"passed": True, "issues": []}]
UNTRUSTED = [{"passed": True, "issues": []}]
PASS = {"passed": True, "issues": []}


def delegate(coworker: str, task: str) -> list:
    return tool_call(DELEGATE, task=task, context="from the plan", coworker=coworker)


def scripted_roles(reasoning: list, code: list, manager: list, vision: list | None = None) -> dict:
    return {
        "reasoning": ScriptedLLM(reasoning),
        "code": ScriptedLLM(code),
        "manager": ScriptedLLM(manager),
        "vision": ScriptedLLM(vision or []),
    }


def run(settings, fakes, task="Write a palindrome checker and explain it"):
    return run_flow(settings, RoleMap(settings, overrides=fakes), "default", {"task": task})


def test_manager_delegates_each_subtask_to_the_specialist_for_its_type(settings):
    fakes = scripted_roles(
        reasoning=[PLAN, "It compares the string with its reverse.", *TRUSTED, PASS],
        code=["```python\ndef is_palindrome(s):\n    return s == s[::-1]\n```"],
        manager=[
            delegate("Code Specialist", "Write is_palindrome(s) in Python."),
            "```python\ndef is_palindrome(s):\n    return s == s[::-1]\n```",
            delegate("Reasoning Specialist", "Explain how is_palindrome works."),
            "It compares the string with its reverse.",
        ],
    )
    outcome = run(settings, fakes)
    assert outcome.status == "done", outcome.record.get("error")

    # the specialists really worked: one call each, made by the agent for the subtask's type
    assert [c.agent for c in fakes["code"].calls] == ["Code Specialist"]
    specialist_calls = [c for c in fakes["reasoning"].calls if c.agent == "Reasoning Specialist"]
    assert len(specialist_calls) == 1
    assert "Explain how is_palindrome works." in specialist_calls[0].prompt
    assert "Write is_palindrome(s) in Python." in fakes["code"].calls[0].prompt
    # the manager was offered the delegation tool and told which specialist to use
    first = fakes["manager"].calls[0]
    assert DELEGATE in first.tool_names
    assert "Code Specialist" in first.prompt
    assert fakes["vision"].calls == []

    record = json.loads(outcome.record_path.read_text())
    assert record["status"] == "done"
    assert [s["task_type"] for s in record["plan"]] == ["code", "reasoning"]
    assert "def is_palindrome" in record["result"]
    agents = [s["agent"] for s in record["steps"] if s["step"] == "execute"]
    assert agents.count("Code Specialist") == 1 and agents.count("Reasoning Specialist") == 1
    assert record["usage"]["code"]["calls"] == 1
    assert record["usage"]["manager"]["calls"] == 4
    # planner, specialist, two calibration probes, review: 5 calls x 10 scripted tokens
    assert record["usage"]["reasoning"]["input_tokens"] == 50
    assert record["verification"]["verdict"] == "passed"
    assert (
        record["verification"]["reviewer"]["agreed"] is True and record["verification"]["reviewer"]["trusted"]
    )
    guard = [s for s in record["steps"] if s["step"] == "guard"][0]
    assert all(v["allowed"] for v in guard["verdicts"])


def test_plan_duplicates_are_dropped(settings):
    dup = {
        "subtasks": [
            PLAN["subtasks"][0],
            dict(PLAN["subtasks"][0], description="write IS_PALINDROME(s) in python."),
        ]
    }
    fakes = scripted_roles(
        reasoning=[dup, *UNTRUSTED],
        code=["def is_palindrome(s): return s == s[::-1]"],
        manager=[delegate("Code Specialist", "x"), "def is_palindrome(s): return s == s[::-1]"],
    )
    outcome = run(settings, fakes)
    assert outcome.status == "done"
    assert len(outcome.record["plan"]) == 1


def test_verifier_sends_work_back_with_its_issues_then_passes(settings):
    fakes = scripted_roles(
        reasoning=[
            {"subtasks": [PLAN["subtasks"][0]]},
            *TRUSTED,
            {"passed": False, "issues": ["handle mixed case"]},
            PASS,
        ],
        code=[
            "def is_palindrome(s): return s == s[::-1]",
            "def is_palindrome(s): return s.lower() == s.lower()[::-1]",
        ],
        manager=[
            delegate("Code Specialist", "v1"),
            "def is_palindrome(s): return s == s[::-1]",
            delegate("Code Specialist", "v2"),
            "def is_palindrome(s): return s.lower() == s.lower()[::-1]",
        ],
    )
    outcome = run(settings, fakes)
    assert outcome.status == "done"
    assert "lower()" in outcome.record["result"]
    # the second round's task carries the verifier's feedback
    assert "handle mixed case" in fakes["manager"].calls[2].prompt


def test_verifier_rejection_after_max_rounds_fails_the_run(settings):
    rounds = settings.governance.verifier.max_rounds
    reasoning = [{"subtasks": [PLAN["subtasks"][0]]}, *TRUSTED] + [
        {"passed": False, "issues": ["wrong"]}
    ] * rounds
    manager = []
    for _ in range(rounds):
        manager += [delegate("Code Specialist", "x"), "print(1)"]
    fakes = scripted_roles(reasoning=reasoning, code=["print(1)"] * rounds, manager=manager)
    outcome = run(settings, fakes)
    assert outcome.status == "failed"
    assert outcome.exit_code == 1
    assert "verifier rejected the result" in outcome.record["error"] and "wrong" in outcome.record["error"]
    assert len(fakes["code"].calls) == rounds


def test_guard_blocks_a_result_that_leaks_a_secret(settings):
    leaked = "use key sk-proj-abcdefghijklmnopqrstuvwxyz123456"
    fakes = scripted_roles(
        reasoning=[{"subtasks": [PLAN["subtasks"][1]]}, leaked],  # the run fails before any review
        code=[],
        manager=[delegate("Reasoning Specialist", "x"), leaked, leaked, leaked],
    )
    outcome = run(settings, fakes, task="Explain how a palindrome check works")
    assert outcome.status == "failed"
    # the task guardrail (no_secrets in executor tasks.yaml) retried, then failed the run with its reason
    assert "no_secrets" in outcome.record["error"] or "secret" in outcome.record["error"].lower()
    assert "sk-proj" not in json.dumps(outcome.record.get("error"))


def test_a_crashed_model_call_fails_the_run_with_a_record(settings):
    # CrewAI retries a failing agent a few times; every attempt crashes here
    fakes = scripted_roles(reasoning=[RuntimeError("model server exploded")] * 10, code=[], manager=[])
    outcome = run(settings, fakes)
    assert outcome.status == "failed"
    assert (
        "role 'reasoning'" in outcome.record["error"] and "model server exploded" in outcome.record["error"]
    )
    assert outcome.record["usage"]["reasoning"]["calls"] == len(fakes["reasoning"].calls) >= 1
    assert all(s.get("error") for s in outcome.record["steps"])
    assert outcome.record_path.exists()


@pytest.mark.parametrize("bad", [{}, {"task": ""}, {"task": "x", "colour": "red"}, {"task": 3}])
def test_bad_inputs_are_usage_errors_and_write_nothing(settings, bad):
    from crewkit.errors import UsageError

    with pytest.raises(UsageError, match="--inputs"):
        run_flow(settings, RoleMap(settings, overrides=scripted_roles([], [], [])), "default", bad)
    assert not (settings.output_dir).exists() or not list(settings.output_dir.iterdir())


def test_task_text_with_braces_and_code_survives_templating(settings):
    task = 'Fix this: def f(d): return {"a": d["b"]}  # and {placeholder} text'
    fakes = scripted_roles(
        reasoning=[{"subtasks": [PLAN["subtasks"][0]]}, *UNTRUSTED],
        code=['def f(d): return {"a": d.get("b")}'],
        manager=[delegate("Code Specialist", "fix"), 'def f(d): return {"a": d.get("b")}'],
    )
    outcome = run(settings, fakes, task=task)
    assert outcome.status == "done", outcome.record.get("error")
    assert task in fakes["reasoning"].calls[0].prompt  # the planner saw the task verbatim
    assert task in fakes["manager"].calls[0].prompt
    assert outcome.record["inputs"]["task"] == task


def test_an_interrupted_run_still_writes_its_record(settings):
    fakes = scripted_roles(reasoning=[KeyboardInterrupt()], code=[], manager=[])
    with pytest.raises(KeyboardInterrupt):
        run(settings, fakes)
    (record_path,) = settings.output_dir.glob("*.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "failed" and record["error"] == "interrupted by the user"


def test_relayed_answers_are_not_counted_as_model_calls(settings):
    from crewkit.observability import ledger

    with ledger.open_ledger() as book:
        ledger.record_call("manager", "m", "Crew Manager", 0.0, 0.1, 10, 5, 0.0)
        ledger.record_call("manager", "m", "Crew Manager", 0.0, 0.0, 0, 0, 0.0, relayed=True)
    assert book.usage()["manager"]["calls"] == 1
    assert [s.get("relayed", False) for s in book.steps()] == [False, True]
