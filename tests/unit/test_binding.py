"""Whatever CrewAI builds lands on the role map: stock flows, memory, text guardrails, planning.

Every test runs with the network blocked (tests/conftest.py) and OPENAI_API_KEY unset, so a
model left on CrewAI's default (OpenAI) fails the test instead of passing silently.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crewkit import assembly
from crewkit.assembly import wire
from crewkit.models.registry import RoleMap
from tests.fakes import ScriptedLLM
from tests.unit.test_crews import AGENTS, TASKS, make_crew


class FakeEmbedder:
    """The embedding role in tests: a fixed 4-d vector per text, calls counted."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.texts += texts
        return [[float(len(t) % 7), 1.0, 0.5, 0.25] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


STOCK_FLOW = """
from crewai.flow.flow import Flow, listen, start
from pydantic import BaseModel

from crews.{crew}.crew import {cls}


class State(BaseModel):
    topic: str = "Owl"
    facts: str = ""


class StockFlow(Flow[State]):
    @start()
    def research(self):
        result = {cls}().crew().kickoff(inputs={{"topic": self.state.topic}})
        self.state.facts = result.raw

    @listen(research)
    def done(self):
        return self.state.facts
"""


def _cli_with(monkeypatch: pytest.MonkeyPatch, overrides: dict) -> None:
    """`crewkit` commands in this test build their role map with scripted roles."""
    import crewkit.cli
    from crewkit.settings import load_settings

    def engine() -> tuple:
        settings = load_settings()
        return settings, RoleMap(settings, overrides=overrides)

    monkeypatch.setattr(crewkit.cli, "_engine", engine)


def test_stock_flow_kicking_off_a_crew_runs_on_the_role_map(project, capsys, monkeypatch):
    make_crew(project, "flow_research")
    (project / "flows" / "stock_flow.py").write_text(
        STOCK_FLOW.format(crew="flow_research", cls="FlowResearchCrew")
    )
    fake = ScriptedLLM(["- Owls fly silently.\n- Owls see in the dark."])
    _cli_with(monkeypatch, {"reasoning": fake})
    from crewkit.cli import main

    code = main(["run", "stock_flow", "--inputs", "{}", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Owls fly silently" in out
    assert [c.agent for c in fake.calls] == ["Owl Researcher"]
    record = json.loads(Path(json.loads(out.strip().splitlines()[-1])["output_file"]).read_text())
    assert record["status"] == "done" and "Owls see in the dark" in record["result"]
    assert record["usage"]["reasoning"]["calls"] == 1


def test_crewai_run_entry_point_binds_the_role_map(project, capsys, monkeypatch):
    make_crew(project, "entry_research")
    (project / "flows" / "entry_flow.py").write_text(
        STOCK_FLOW.format(crew="entry_research", cls="EntryResearchCrew")
    )
    fake = ScriptedLLM(["- Owls are birds."])
    _cli_with(monkeypatch, {"reasoning": fake})
    import main as entry_points

    monkeypatch.setattr("sys.argv", ["kickoff", "entry_flow", "--inputs", "{}"])
    with pytest.raises(SystemExit) as exited:
        entry_points.kickoff()
    assert exited.value.code == 0, capsys.readouterr().err
    assert len(fake.calls) == 1


def test_agent_with_memory_true_uses_the_default_and_embedding_roles(project, settings):
    make_crew(project, "remembering", agents=AGENTS + "  llm: code\n  memory: true\n")
    code = ScriptedLLM(["- Owls are nocturnal."])
    default = ScriptedLLM([{"memories": []}])  # memory's own analysis runs on the default role
    embedder = FakeEmbedder()
    role_map = RoleMap(settings, overrides={"code": code, "reasoning": default, "embedding": embedder})
    assert role_map.default_role == "reasoning"
    result = assembly.kickoff_crew(settings, role_map, "remembering", {"topic": "Owl"})
    assert "Owls are nocturnal" in result.raw
    assert [c.agent for c in code.calls] == ["Owl Researcher"]
    assert [c.response_model.__name__ for c in default.calls] == ["ExtractedMemories"]
    assert embedder.texts  # memory searched with the embedding role


def test_text_guardrail_runs_on_the_reasoning_role(project, settings):
    make_crew(
        project,
        "judged",
        agents=AGENTS + "  llm: code\n",
        tasks=TASKS + "  guardrail: The answer must mention where owls live\n",
    )
    code = ScriptedLLM(["- Owls live in forests.\n- Owls hunt mice."])
    reasoning = ScriptedLLM([{"valid": True, "feedback": None}])
    role_map = RoleMap(settings, overrides={"code": code, "reasoning": reasoning})
    result = assembly.kickoff_crew(settings, role_map, "judged", {"topic": "Owl"})
    assert "forests" in result.raw
    assert [c.agent for c in code.calls] == ["Owl Researcher"]
    assert [c.agent for c in reasoning.calls] == ["Guardrail Agent"]
    assert "where owls live" in reasoning.calls[0].prompt


def test_planning_true_runs_on_the_reasoning_role(project, settings):
    folder = make_crew(project, "planned_crew", agents=AGENTS + "  llm: code\n")
    code_py = (
        (folder / "crew.py")
        .read_text()
        .replace("process=Process.sequential", "process=Process.sequential, planning=True")
    )
    (folder / "crew.py").write_text(code_py)
    plan = {"list_of_plans_per_task": [{"task_number": 1, "task": "facts", "plan": "Step 1: recall owls"}]}
    reasoning = ScriptedLLM([plan])
    code = ScriptedLLM(["- Owls are raptors."])
    role_map = RoleMap(settings, overrides={"reasoning": reasoning, "code": code})
    result = assembly.kickoff_crew(settings, role_map, "planned_crew", {"topic": "Owl"})
    assert result.raw.startswith("- Owls are raptors")
    assert [c.agent for c in reasoning.calls] == ["Task Execution Planner"]
    assert "Step 1: recall owls" in code.calls[0].prompt


def test_hierarchical_manager_llm_string_runs_on_the_manager_role(project, settings):
    folder = make_crew(project, "managed_crew", tasks=TASKS.replace("  agent: researcher\n", ""))
    code_py = (folder / "crew.py").read_text()
    code_py = code_py.replace(
        "process=Process.sequential", 'process=Process.hierarchical, manager_llm="gpt-4o"'
    )
    (folder / "crew.py").write_text(code_py)
    manager = ScriptedLLM(["- Owls are owls.\n- Owls hoot."])
    role_map = RoleMap(settings, overrides={"manager": manager, "reasoning": ScriptedLLM([])})
    result = assembly.kickoff_crew(settings, role_map, "managed_crew", {"topic": "Owl"})
    assert "Owls hoot" in result.raw
    assert [c.agent for c in manager.calls] == ["Crew Manager"]


def test_model_strings_in_code_resolve_by_role_name_else_default(settings):
    from crewai import LLM, Agent

    from crewkit.models.metered import RoleLLM

    role_map = RoleMap(settings)
    with wire.bound(role_map):
        named = Agent(role="a", goal="g", backstory="b", llm="code")
        unnamed = Agent(role="b", goal="g", backstory="b", llm="gpt-4.1-mini")
        default = Agent(role="c", goal="g", backstory="b")
        built = LLM(model="openai/gpt-4o-mini")
    assert isinstance(named.llm, RoleLLM) and named.llm.role == "code"
    assert isinstance(unnamed.llm, RoleLLM) and unnamed.llm.role == role_map.default_role
    assert isinstance(default.llm, RoleLLM) and default.llm.role == role_map.default_role
    assert isinstance(built, RoleLLM)
    outside = LLM(model="gpt-4o-mini")  # outside a binding CrewAI is stock
    assert not isinstance(outside, RoleLLM)


def test_users_own_llm_class_is_kept(settings):
    from crewai import Agent

    own = ScriptedLLM([])
    with wire.bound(RoleMap(settings)):
        agent = Agent(role="a", goal="g", backstory="b", llm=own)
    assert agent.llm is own


def test_stock_flow_crew_missing_a_template_variable_is_one_line_exit_2(project, capsys, monkeypatch):
    make_crew(project, "flow_missing", tasks=TASKS.replace("about {topic}.", "about {topic} in {year}."))
    (project / "flows" / "missing_flow.py").write_text(
        STOCK_FLOW.format(crew="flow_missing", cls="FlowMissingCrew")
    )
    fake = ScriptedLLM([])
    _cli_with(monkeypatch, {"reasoning": fake})
    from crewkit.cli import main

    code = main(["run", "missing_flow", "--inputs", "{}"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2
    assert len(errors) == 1
    assert errors[0].startswith("error: crews/flow_missing/config/tasks.yaml:2: task 'research_task'")
    assert "uses {year}" in errors[0]
    assert errors[0].endswith("""give it in the crew's kickoff(inputs={"topic": "Owl", "year": "..."})""")
    assert fake.calls == []
