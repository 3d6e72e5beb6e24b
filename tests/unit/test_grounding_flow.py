"""Grounded verification in the default flow, on scripted models: a specialist looks facts up
with a tool, and the verifier checks the answer's claims against what the tool returned."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from crewkit.models.registry import RoleMap
from crewkit.runtime.runner import run_flow
from crewkit.settings import load_settings
from tests.fakes import ScriptedLLM, tool_call

FACTS = "The Eiffel Tower was completed in 1889. It is 330 metres tall."
TASK = "How tall is the Eiffel Tower and when was it completed?"
PLAN = {
    "subtasks": [{"description": TASK, "task_type": "reasoning", "acceptance": "States height and year."}]
}
TRUSTED = [{"passed": False, "issues": ["banana is not 4"]}, {"passed": True, "issues": []}]
PASS = {"passed": True, "issues": []}
GOOD = "The Eiffel Tower is 330 metres tall. It was completed in 1889."
BAD = "The Eiffel Tower is 330 metres tall. It was completed in 1889. It was repainted by Renault in 2019."

TOOL = """
from crewai.tools import BaseTool


class FactsTool(BaseTool):
    name: str = "look_up_facts"
    description: str = "Look up facts about a topic."

    def _run(self, topic: str) -> str:
        return "{facts}"

"""


def _give_the_reasoning_specialist_a_tool(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # an earlier test imported the stock executor crew: import this project's copy, and hand the
    # stock one back afterwards
    for name in ("crews.executor", "crews.executor.crew"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    crew = project / "crews" / "executor" / "crew.py"
    code = crew.read_text()
    code = code.replace(
        'return Agent(config=self.agents_config["reasoning_specialist"])',
        'return Agent(config=self.agents_config["reasoning_specialist"], tools=[FactsTool()])',
    )
    code = code.replace("\n\nclass _Blank", TOOL.replace("{facts}", FACTS) + "\nclass _Blank", 1)
    crew.write_text(code)


def _require_grounding(project: Path) -> None:
    profiles = project / "config" / "profiles.yaml"
    profiles.write_text(
        profiles.read_text().replace(
            "    budgets:                      # USD",
            "    grounding: {require: true, max_unsupported: 0}\n    budgets:                      # USD",
            1,
        )
    )


def _specialist_round(answer: str) -> list:
    return [tool_call("look_up_facts", topic="Eiffel Tower"), answer]


def _fakes(reasoning: list, answers: list[str]) -> dict:
    """The manager delegates each round's subtask, then hands on the specialist's answer."""
    manager = []
    for answer in answers:
        manager += [
            tool_call("delegate_work_to_coworker", task=TASK, context="", coworker="Reasoning Specialist"),
            answer,
        ]
    return {
        "reasoning": ScriptedLLM(reasoning),
        "code": ScriptedLLM([]),
        "manager": ScriptedLLM(manager),
        "vision": ScriptedLLM([]),
    }


def test_unsupported_claims_are_listed_in_the_record_and_do_not_fail_a_startup_run(project, monkeypatch):
    _give_the_reasoning_specialist_a_tool(project, monkeypatch)
    settings = load_settings(project)
    fakes = _fakes([PLAN, *_specialist_round(BAD), *TRUSTED, PASS], [BAD])
    outcome = run_flow(settings, RoleMap(settings, overrides=fakes), "default", {"task": TASK})
    assert outcome.status == "done", outcome.record.get("error")
    g = outcome.record["verification"]["grounding"]
    assert g["checked"] and g["sources"] == 1 and not g["required"] and not g["failed"]
    assert [c["claim"] for c in g["unsupported"]] == ["It was repainted by Renault in 2019."]
    assert {c["source_label"] for c in g["supported_claims"]} == {"look_up_facts"}
    assert "1 unsupported" in outcome.record["verification"]["summary"]


def test_under_a_profile_that_requires_grounding_unsupported_claims_send_the_work_back(project, monkeypatch):
    _give_the_reasoning_specialist_a_tool(project, monkeypatch)
    _require_grounding(project)
    settings = load_settings(project)
    # round 1: an unsupported claim, no review asked; round 2: grounded, reviewed, released
    fakes = _fakes([PLAN, *_specialist_round(BAD), *_specialist_round(GOOD), *TRUSTED, PASS], [BAD, GOOD])
    outcome = run_flow(settings, RoleMap(settings, overrides=fakes), "default", {"task": TASK})
    assert outcome.status == "done", outcome.record.get("error")
    assert outcome.record["result"].strip() == GOOD
    # the second round's task carries the verifier's feedback, which quotes the claim
    assert (
        'the sources do not support "It was repainted by Renault in 2019."'
        in fakes["manager"].calls[2].prompt
    )
    assert [c.agent for c in fakes["reasoning"].calls].count(
        "Reasoning Specialist"
    ) == 4  # 2 rounds x (tool, answer)
    g = outcome.record["verification"]["grounding"]
    assert g["required"] and g["unsupported"] == [] and g["supported"] == 2


def test_under_a_profile_that_requires_grounding_a_run_that_stays_unsupported_fails(project, monkeypatch):
    _give_the_reasoning_specialist_a_tool(project, monkeypatch)
    _require_grounding(project)
    settings = load_settings(project)
    rounds = settings.governance.verifier.max_rounds
    reasoning = [PLAN] + _specialist_round(BAD) * rounds  # the reviewer is never asked
    fakes = _fakes(reasoning, [BAD] * rounds)
    outcome = run_flow(settings, RoleMap(settings, overrides=fakes), "default", {"task": TASK})
    assert outcome.status == "failed"
    assert "the sources do not support" in outcome.record["error"] and "Renault" in outcome.record["error"]
    assert outcome.record["verification"]["grounding"]["failed"]
