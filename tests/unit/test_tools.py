"""Tools in tools/ work on their own and inside a crew driven by a scripted model."""

from __future__ import annotations

import pytest

from crewkit import assembly
from crewkit.models.registry import RoleMap
from tests.fakes import ScriptedLLM, tool_call
from tests.unit.test_crews import AGENTS, TASKS, make_crew
from tools.folder_read import folder_read_tools
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
    result = assembly.kickoff_crew(
        settings, RoleMap(settings, overrides={"reasoning": fake}), "with_tool", {"topic": "x"}
    )
    assert result.raw == "The code has a syntax error."
    assert "check_python_syntax" in fake.calls[0].tool_names
    assert "syntax error at line 1" in fake.calls[1].prompt


def test_agent_reads_a_folder_with_crewai_tools_and_nothing_outside_it(project, settings):
    notes = project / "notes"
    notes.mkdir()
    (notes / "owls.md").write_text("Owls hunt at night.\n")
    (project / "secret.txt").write_text("do not read me")
    folder = make_crew(project, "with_folder", agents=AGENTS, tasks=TASKS)
    code = (folder / "crew.py").read_text()
    code = code.replace("verbose=False)", "verbose=False, tools=folder_read_tools('notes'))")
    (folder / "crew.py").write_text("from tools.folder_read import folder_read_tools\n" + code)
    fake = ScriptedLLM(
        [
            tool_call("list_files_in_directory"),
            tool_call("read_a_files_content", file_path="owls.md"),
            tool_call("read_a_files_content", file_path="../secret.txt"),
            "Owls hunt at night.",
        ]
    )
    result = assembly.kickoff_crew(
        settings, RoleMap(settings, overrides={"reasoning": fake}), "with_folder", {"topic": "owls"}
    )
    assert result.raw == "Owls hunt at night."
    assert {"list_files_in_directory", "read_a_files_content"} <= set(fake.calls[0].tool_names)
    assert str(notes / "owls.md") in fake.calls[1].prompt  # the listing
    assert "Owls hunt at night." in fake.calls[2].prompt  # the file
    assert "outside the allowed directory" in fake.calls[3].prompt
    assert "do not read me" not in fake.calls[3].prompt


def test_folder_read_tools_refuse_a_missing_folder(tmp_path):
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        folder_read_tools(tmp_path / "nope")
