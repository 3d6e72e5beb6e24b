"""Tools in tools/ work on their own and inside a crew driven by a scripted model."""

from __future__ import annotations

from crewkit import crews
from crewkit.models.registry import RoleMap
from tests.fakes import ScriptedLLM, tool_call
from tests.unit.test_crews import AGENTS, TASKS, make_crew
from tools.python_syntax import PythonSyntaxTool


def test_python_syntax_tool_reports_errors():
    tool = PythonSyntaxTool()
    assert tool.run(code="def f():\n    return 1\n") == "ok: the code parses"
    assert tool.run(code="```python\nx = 1\n```") == "ok: the code parses"
    assert tool.run(code="def f(:\n").startswith("syntax error at line 1")


def test_agent_calls_a_project_tool(project, settings):
    folder = make_crew(project, "with_tool", agents=AGENTS, tasks=TASKS)
    code = (folder / "crew.py").read_text()
    code = code.replace("verbose=False)", "verbose=False, tools=[PythonSyntaxTool()])")
    code = "from tools.python_syntax import PythonSyntaxTool\n" + code
    (folder / "crew.py").write_text(code)
    fake = ScriptedLLM([tool_call("check_python_syntax", code="def f(:"), "The code has a syntax error."])
    result = crews.kickoff_crew(
        settings, RoleMap(settings, overrides={"reasoning": fake}), "with_tool", {"topic": "x"}
    )
    assert result.raw == "The code has a syntax error."
    assert "check_python_syntax" in fake.calls[0].tool_names
    assert "syntax error at line 1" in fake.calls[1].prompt
