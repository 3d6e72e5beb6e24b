"""Routing in the default flow: each subtask routed, the routed model answers, all of it recorded."""

from __future__ import annotations

import json

import pytest

from crewkit.models.registry import RoleMap
from crewkit.runtime.runner import run_flow
from crewkit.runtime.store import StateStore
from crewkit.settings import load_settings
from tests.fakes import ScriptedLLM, tool_call
from tests.unit.test_default_flow import DELEGATE, PLAN, UNTRUSTED
from tests.unit.test_routing import set_routing

CODE = "```python\ndef is_palindrome(s):\n    return s == s[::-1]\n```"
TASK = "Write a palindrome checker and explain it"
ROUTE_CODE = """
routing:
  policy: code-on-mini
  policies:
    code-on-mini:
      rules:
        - when: {task_type: code}
          use: gpt-4o-mini
"""
CODE_CHAIN = {"code": "{model: local-small, fallbacks: [gpt-4o-mini]}"}


def delegate(coworker: str, task: str) -> list:
    return tool_call(DELEGATE, task=task, context="", coworker=coworker)


def manager() -> ScriptedLLM:
    return ScriptedLLM(
        [
            delegate("Code Specialist", "Write is_palindrome(s) in Python."),
            CODE,
            delegate("Reasoning Specialist", "Explain how is_palindrome works."),
            "It compares the string with its reverse.",
        ]
    )


def run(settings, fakes):
    return run_flow(settings, RoleMap(settings, overrides=fakes), "default", {"task": TASK})


def audit_routes(settings, run_id: str) -> list[dict]:
    rows = StateStore.open(settings.home).read(
        "SELECT subject, detail FROM audit WHERE action = 'route' AND run_id = ? ORDER BY seq", (run_id,)
    )
    return [{"subject": s, **json.loads(d)} for s, d in rows]


def test_every_subtask_is_routed_and_recorded_in_the_run_record_and_audit_log(settings):
    fakes = {
        "reasoning": ScriptedLLM([PLAN, "It compares the string with its reverse.", *UNTRUSTED]),
        "code": ScriptedLLM([CODE]),
        "manager": manager(),
    }
    outcome = run(settings, fakes)
    assert outcome.status == "done", outcome.record.get("error")
    record = json.loads(outcome.record_path.read_text())
    routing = record["routing"]
    assert [(r["subtask"], r["task_type"], r["role"]) for r in routing] == [
        ("s1", "code", "code"),
        ("s2", "reasoning", "reasoning"),
    ]
    for entry in routing:
        assert {"subtask", "task_type", "role", "complexity", "level", "model", "reason"} <= set(entry)
        assert entry["model"] == "local-small" and entry["answered_by"] == ["local-small"]
        assert entry["level"] == "low" and 0 <= entry["complexity"] < 0.25
        assert "policy 'by-complexity'" in entry["reason"] and entry["round"] == 1
    audited = audit_routes(settings, outcome.run_id)
    assert [(a["subject"], a["model"]) for a in audited] == [("s1", "local-small"), ("s2", "local-small")]
    assert audited[0]["reason"] == routing[0]["reason"]
    assert audited[0]["budget_left"] == pytest.approx(settings.profile.budgets.per_run)


@pytest.mark.parametrize("policy, answers", [("code-on-mini", "gpt-4o-mini"), ("static", "local-small")])
def test_the_routed_model_answers_the_subtask(project, policy, answers):
    set_routing(project, ROUTE_CODE.replace("policy: code-on-mini", f"policy: {policy}"), CODE_CHAIN)
    settings = load_settings(project)
    primary, mini = ScriptedLLM([]), ScriptedLLM([])
    (mini if answers == "gpt-4o-mini" else primary).add(CODE)
    fakes = {
        "reasoning": ScriptedLLM([PLAN, "It compares the string with its reverse.", *UNTRUSTED]),
        "code": primary,
        "gpt-4o-mini": mini,
        "manager": manager(),
    }
    outcome = run(settings, fakes)
    assert outcome.status == "done", outcome.record.get("error")
    chosen = primary if answers == "local-small" else mini
    other = mini if chosen is primary else primary
    assert [c.agent for c in chosen.calls] == ["Code Specialist"]  # the specialist's call, delegated
    assert other.calls == []
    record = outcome.record
    code_route = record["routing"][0]
    assert code_route["model"] == answers and code_route["answered_by"] == [answers]
    steps = [s for s in record["steps"] if s["agent"] == "Code Specialist"]
    assert [s["model"] for s in steps] == [answers]
    # the manager's and the reasoning specialist's calls are not moved by the code route
    others = {s["model"] for s in record["steps"] if s["role"] and s["agent"] != "Code Specialist"}
    assert others == {"local-small"}


def test_a_fallback_taken_during_a_routed_call_shows_which_model_answered(project):
    set_routing(project, ROUTE_CODE, CODE_CHAIN)
    settings = load_settings(project)
    fakes = {
        "reasoning": ScriptedLLM([PLAN, "It compares the string with its reverse.", *UNTRUSTED]),
        "code": ScriptedLLM([CODE]),
        "gpt-4o-mini": ScriptedLLM([TimeoutError("upstream timed out")]),
        "manager": manager(),
    }
    outcome = run(settings, fakes)
    assert outcome.status == "done", outcome.record.get("error")
    code_route = outcome.record["routing"][0]
    assert code_route["model"] == "gpt-4o-mini" and code_route["answered_by"] == ["local-small"]
    steps = [s for s in outcome.record["steps"] if s["agent"] == "Code Specialist"]
    assert [(s["model"], "error" in s) for s in steps] == [("gpt-4o-mini", True), ("local-small", False)]


def test_a_cooling_model_is_skipped_in_a_routed_subtask(project):
    from crewkit.models.cooldown import REGISTRY

    set_routing(project, ROUTE_CODE, CODE_CHAIN)
    settings = load_settings(project)
    for _ in range(settings.models.routing.cooldown.allowed_fails + 1):
        REGISTRY.failure("gpt-4o-mini", settings.models.routing.cooldown)
    fakes = {
        "reasoning": ScriptedLLM([PLAN, "It compares the string with its reverse.", *UNTRUSTED]),
        "code": ScriptedLLM([CODE]),
        "gpt-4o-mini": ScriptedLLM([]),
        "manager": manager(),
    }
    outcome = run(settings, fakes)
    assert outcome.status == "done", outcome.record.get("error")
    code_route = outcome.record["routing"][0]
    assert code_route["skipped"] == ["gpt-4o-mini"] and code_route["answered_by"] == ["local-small"]
    skipped = [s for s in outcome.record["steps"] if s.get("not_run") == "cooling down"]
    assert [s["model"] for s in skipped] == ["gpt-4o-mini"]
    actions = StateStore.open(settings.home).read(
        "SELECT subject FROM audit WHERE action = 'model.skipped' AND run_id = ?", (outcome.run_id,)
    )
    assert actions == [("code/gpt-4o-mini",)]


def test_a_short_run_budget_routes_to_a_cheaper_model_of_the_chain(project):
    set_routing(project, "routing: {policy: static}", {"code": "{model: gpt-4o, fallbacks: [gpt-4o-mini]}"})
    profiles = project / "config" / "profiles.yaml"
    profiles.write_text(profiles.read_text().replace("per_run: 0.5\n", "per_run: 0.01\n", 1))
    settings = load_settings(project)
    assert settings.profile.budgets.per_run == 0.01  # a call on gpt-4o may cost ~$0.04, on mini ~$0.003
    fakes = {
        "reasoning": ScriptedLLM([PLAN, "It compares the string with its reverse.", *UNTRUSTED]),
        "gpt-4o": ScriptedLLM([]),
        "gpt-4o-mini": ScriptedLLM([CODE]),
        "manager": manager(),
    }
    outcome = run(settings, fakes)
    assert outcome.status == "done", outcome.record.get("error")
    code_route = outcome.record["routing"][0]
    assert code_route["model"] == "gpt-4o-mini" and code_route["answered_by"] == ["gpt-4o-mini"]
    assert "budget: $0.01 left, a call on gpt-4o may cost" in code_route["reason"]
    assert fakes["gpt-4o"].calls == [] and len(fakes["gpt-4o-mini"].calls) == 1
