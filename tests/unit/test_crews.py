"""Stock CrewAI crews run unchanged on the role map; YAML errors point at file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from crewkit import assembly
from crewkit.errors import ConfigError, GuardrailBlocked, UsageError
from crewkit.models.registry import RoleMap
from crewkit.observability import ledger
from tests.fakes import ScriptedLLM

STOCK_CREW = """
from crewai import Agent, Crew, Process, Task
from crewai.project import CrewBase, agent, crew, task


@CrewBase
class {cls}:
    agents_config = "config/agents.yaml"
    tasks_config = "config/tasks.yaml"

    @agent
    def researcher(self) -> Agent:
        return Agent(config=self.agents_config["researcher"], verbose=False)

    @task
    def research_task(self) -> Task:
        return Task(config=self.tasks_config["research_task"])

    @crew
    def crew(self) -> Crew:
        return Crew(agents=self.agents, tasks=self.tasks, process=Process.sequential)
"""

AGENTS = """researcher:
  role: "{topic} Researcher"
  goal: Find facts about {topic}
  backstory: You read a lot.
"""

TASKS = """research_task:
  description: List two facts about {topic}.
  expected_output: Two bullet points.
  agent: researcher
"""


def make_crew(project: Path, name: str, agents: str = AGENTS, tasks: str = TASKS) -> Path:
    folder = project / "crews" / name
    (folder / "config").mkdir(parents=True)
    cls = "".join(p.title() for p in name.split("_")) + "Crew"
    (folder / "crew.py").write_text(STOCK_CREW.format(cls=cls))
    (folder / "config" / "agents.yaml").write_text(agents)
    (folder / "config" / "tasks.yaml").write_text(tasks)
    return folder


def test_stock_crew_without_llm_runs_on_the_default_role(project, settings):
    make_crew(project, "stock_research")
    fake = ScriptedLLM(["- Owls can rotate their heads.\n- Owls are nocturnal."])
    role_map = RoleMap(settings, overrides={settings.models.default_role: fake})
    with ledger.open_ledger() as book:
        result = assembly.kickoff_crew(settings, role_map, "stock_research", {"topic": "Owl"})
    assert "Owls are nocturnal" in result.raw
    assert [c.agent for c in fake.calls] == ["Owl Researcher"]
    assert "List two facts about Owl" in fake.calls[0].prompt
    assert book.usage()[settings.models.default_role]["calls"] == 1


def test_agent_llm_names_a_role(project, settings):
    make_crew(project, "coder_crew", agents=AGENTS + "  llm: code\n")
    code = ScriptedLLM(["print('hi')"])
    role_map = RoleMap(settings, overrides={"code": code, "reasoning": ScriptedLLM([])})
    assembly.kickoff_crew(settings, role_map, "coder_crew", {"topic": "Python"})
    assert len(code.calls) == 1


def test_task_guardrail_from_yaml_retries_with_feedback(project, settings):
    make_crew(project, "guarded", tasks=TASKS + "  guardrails: [no_secrets]\n")
    fake = ScriptedLLM(["my key is sk-proj-abcdefghijklmnopqrstuv0123", "- fact one\n- fact two"])
    role_map = RoleMap(settings, overrides={"reasoning": fake})
    result = assembly.kickoff_crew(settings, role_map, "guarded", {"topic": "Owl"})
    assert result.raw.startswith("- fact one")
    assert len(fake.calls) == 2
    assert "no_secrets" in fake.calls[1].prompt


def test_task_guardrail_final_failure_is_guardrail_blocked(project, settings):
    make_crew(project, "always_bad", tasks=TASKS + "  guardrails: [no_secrets]\n  guardrail_max_retries: 1\n")
    fake = ScriptedLLM(["sk-proj-abcdefghijklmnopqrstuv0123"] * 2)
    with pytest.raises(GuardrailBlocked, match="no_secrets"):
        assembly.kickoff_crew(
            settings, RoleMap(settings, overrides={"reasoning": fake}), "always_bad", {"topic": "x"}
        )
    assert len(fake.calls) == 2


def test_unknown_guardrail_name_points_at_the_yaml_line(project, settings):
    make_crew(project, "typo", tasks=TASKS + "  guardrails: [no_secret]\n")
    with pytest.raises(ConfigError) as err:
        assembly.load_spec(settings, "typo")
    assert str(err.value).startswith("crews/typo/config/tasks.yaml:5: ")
    assert "unknown guardrail 'no_secret' (did you mean 'no_secrets'?)" in str(err.value)


def test_task_naming_unknown_agent_is_rejected(project, settings):
    make_crew(project, "orphan", tasks=TASKS.replace("agent: researcher", "agent: reseacher"))
    with pytest.raises(ConfigError, match=r"tasks.yaml:4: .*agent 'reseacher'.*did you mean 'researcher'"):
        assembly.load_spec(settings, "orphan")


def test_agent_llm_naming_unknown_role_is_rejected(project, settings):
    make_crew(project, "badllm", agents=AGENTS + "  llm: reasonin\n")
    with pytest.raises(ConfigError, match=r"agents.yaml:5: agent 'researcher'.*did you mean 'reasoning'"):
        assembly.load_spec(settings, "badllm", RoleMap(settings))


def test_unknown_crew_is_a_usage_error_with_suggestion(settings):
    with pytest.raises(UsageError, match=r"unknown crew 'planer' \(did you mean 'planner'\?\)"):
        assembly.load_spec(settings, "planer")


def test_syntax_error_in_crew_code_is_one_line_with_its_line(project, settings):
    folder = make_crew(project, "broken_syntax")
    (folder / "crew.py").write_text(
        (folder / "crew.py").read_text().replace("def crew(self)", "def crew(self")
    )
    with pytest.raises(ConfigError, match=r"^crews/broken_syntax/crew.py:\d+: syntax error"):
        assembly.build_crew(settings, RoleMap(settings), "broken_syntax")


def test_crew_code_naming_a_missing_agent_config_points_at_the_code(project, settings):
    folder = make_crew(project, "missing_agent")
    code = (folder / "crew.py").read_text().replace('agents_config["researcher"]', 'agents_config["writer"]')
    (folder / "crew.py").write_text(code)
    with pytest.raises(ConfigError) as err:
        assembly.build_crew(settings, RoleMap(settings), "missing_agent")
    line = next(i for i, text in enumerate(code.splitlines(), 1) if '"writer"' in text)
    assert str(err.value).startswith(
        f"crews/missing_agent/crew.py:{line}: crew 'missing_agent' cannot be built"
    )
    assert "'writer'" in str(err.value)


def test_crewai_validation_errors_become_config_errors(project, settings):
    make_crew(project, "no_agent", tasks=TASKS.replace("  agent: researcher\n", ""))
    with pytest.raises(ConfigError, match=r"crew 'no_agent' cannot be built"):
        assembly.build_crew(settings, RoleMap(settings), "no_agent")


def test_cli_crew_with_broken_code_exits_2_without_traceback(project, capsys):
    from crewkit.cli import main

    folder = make_crew(project, "cli_broken")
    (folder / "crew.py").write_text("import does_not_exist_pkg\n")
    assert main(["crew", "cli_broken"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "error: crews/cli_broken/crew.py:1: cannot import crews.cli_broken.crew: ModuleNotFoundError"
    )
    assert len(err.strip().splitlines()) == 1


def test_crew_in_name_dot_py_is_discovered_and_runs(project, settings):
    """`crewai flow add-crew owls` writes crews/owls/owls.py, not crew.py."""
    folder = make_crew(project, "owls_named")
    (folder / "crew.py").rename(folder / "owls_named.py")
    assert "owls_named" in assembly.discover(settings)
    fake = ScriptedLLM(["- Owls are quiet."])
    result = assembly.kickoff_crew(
        settings, RoleMap(settings, overrides={"reasoning": fake}), "owls_named", {"topic": "Owl"}
    )
    assert "Owls are quiet" in result.raw


def test_yaml_keys_come_from_crewais_agent_and_task_models(project, settings):
    """Keys CrewAI accepts (max_tokens, reasoning, allow_crewai_trigger_context) pass; typos do not."""
    make_crew(
        project,
        "modern",
        agents=AGENTS + "  max_tokens: 200\n  reasoning: false\n  knowledge_config: {results_limit: 3}\n",
        tasks=TASKS + "  allow_crewai_trigger_context: false\n  markdown: true\n",
    )
    assembly.load_spec(settings, "modern")
    make_crew(project, "typo_key", agents=AGENTS + "  max_token: 200\n")
    with pytest.raises(
        ConfigError,
        match=r"agents.yaml:5: agent 'researcher' has unknown field 'max_token' \(did you mean 'max_tokens'\?\)",
    ):
        assembly.load_spec(settings, "typo_key")


def test_crew_executor_alone_says_why_not_in_one_line(project, capsys):
    from crewkit.cli import main

    assert main(["crew", "executor", "--inputs", '{"task": "x"}']) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: crews/executor/crew.py:1: crew 'executor' has no @crew method")


def _crewai_template_crew(project: Path, name: str) -> Path:
    """The crew `crewai create crew` writes (CrewAI's own template files), put in crews/NAME/."""
    import crewai_cli

    template = Path(crewai_cli.__file__).parent / "templates" / "crew"
    folder = project / "crews" / name
    (folder / "config").mkdir(parents=True)
    cls = "".join(p.title() for p in name.split("_"))
    (folder / "crew.py").write_text((template / "crew.py").read_text().replace("{{crew_name}}", cls))
    for part in ("agents.yaml", "tasks.yaml"):
        (folder / "config" / part).write_text((template / "config" / part).read_text())
    return folder


def test_template_crew_missing_variable_is_one_line_before_any_model_call(project, capsys, monkeypatch):
    _crewai_template_crew(project, "research")
    import crewkit.cli
    from crewkit.settings import load_settings

    fake = ScriptedLLM([])
    monkeypatch.setattr(
        crewkit.cli, "_engine", lambda: (s := load_settings(), RoleMap(s, overrides={"reasoning": fake}))
    )
    code = crewkit.cli.main(["crew", "research", "--inputs", '{"topic": "owls"}'])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "Traceback" not in err
    errors = [e for e in err.splitlines() if e.startswith("error:")]
    assert len(errors) == 1, err
    err = errors[0]
    line = next(
        i
        for i, t in enumerate((project / "crews/research/config/tasks.yaml").read_text().splitlines(), 1)
        if "current_year" in t
    )
    assert err.startswith(f"error: crews/research/config/tasks.yaml:{line}: ")
    assert "task 'research_task' (description) uses {current_year}" in err
    assert """--inputs '{"topic": "owls", "current_year": "..."}'""" in err
    assert fake.calls == []
    assert not list((project / "output").glob("*.json"))  # nothing written


def test_template_crew_writes_its_report_under_output(project, settings, monkeypatch):
    _crewai_template_crew(project, "research_report")
    monkeypatch.chdir(project)
    fake = ScriptedLLM(["- Owls 2026: ten facts.", "# Owl report\n\nOwls are great."])
    role_map = RoleMap(settings, overrides={"reasoning": fake})
    result = assembly.kickoff_crew(
        settings, role_map, "research_report", {"topic": "owls", "current_year": "2026"}
    )
    assert result.raw.startswith("# Owl report")
    assert (project / "output" / "report.md").read_text().startswith("# Owl report")
    assert not (project / "report.md").exists()
    assert "the current year is 2026" in fake.calls[0].prompt
