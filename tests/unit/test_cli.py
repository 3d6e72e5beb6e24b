"""The CLI contract: exit codes, one-line errors, nothing written on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crewkit.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ("{not json", "--inputs: invalid JSON at line 1 column 2"),
        ("[1, 2]", "expected a JSON object"),
        ('{"colour": "red"}', "--inputs: missing field 'task'"),
        ('{"task": "x", "tasks": 1}', "unknown field 'tasks'"),
        ('{"tsk": "x"}', "unknown field 'tsk' (did you mean 'task'?)"),
    ],
)
def test_bad_inputs_exit_2_with_one_line_and_no_record(project, capsys, inputs, expected):
    code, out, err = run_cli(capsys, "run", "--inputs", inputs)
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert not (project / "output").exists()


def test_inputs_file_that_does_not_exist(project, capsys):
    code, _, err = run_cli(capsys, "run", "--inputs-file", "nope.json")
    assert code == 2 and "--inputs-file nope.json: cannot read" in err


def test_unknown_flow_is_a_usage_error(project, capsys):
    code, _, err = run_cli(capsys, "run", "defualt", "--inputs", '{"task": "x"}')
    assert code == 2 and "unknown flow 'defualt' (did you mean 'default'?)" in err


def test_config_check_reports_file_and_line(project, capsys):
    path = project / "config" / "models.yaml"
    path.write_text(path.read_text().replace("code:      {model: local-small}", "code:      {model: gpt4o}"))
    code, _, err = run_cli(capsys, "config", "check")
    assert code == 2
    assert err.startswith("error: config/models.yaml:")
    assert "role 'code' uses model 'gpt4o', which is not defined (did you mean 'gpt-4o'?)" in err


def test_config_check_passes_on_the_shipped_project(project, capsys):
    code, out, _ = run_cli(capsys, "config", "check")
    assert code == 0 and "crew(s): executor, planner, verifier" in out


def test_models_check_names_role_and_key(project, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = project / "config" / "models.yaml"
    path.write_text(
        path.read_text().replace("manager:   {model: local-small}", "manager:   {model: gpt-4o-mini}")
    )
    code, _, err = run_cli(capsys, "models", "check")
    assert code == 2 and "role 'manager'" in err and "OPENAI_API_KEY" in err
    # and a run refuses to start, before any model is loaded or anything is written
    code, _, err = run_cli(capsys, "run", "--inputs", '{"task": "x"}')
    assert code == 2 and "OPENAI_API_KEY" in err
    assert not (project / "output").exists()


def test_models_list_json(project, capsys):
    code, out, _ = run_cli(capsys, "models", "list", "--format", "json")
    rows = json.loads(out)
    assert code == 0
    vision = next(r for r in rows if r["role"] == "vision")
    assert vision["degraded"] == "'local-small' lacks 'vision'"


def test_unknown_option_is_exit_2(project, capsys):
    code, _, err = run_cli(capsys, "run", "--bogus")
    assert code == 2 and "--bogus" in err


def test_user_errors_print_no_traceback_from_the_real_command(project):
    path = project / "config" / "models.yaml"
    path.write_text(path.read_text() + "\n  oops: [\n")
    env = {**os.environ, "CREWKIT_PROJECT": str(project)}
    proc = subprocess.run(
        [sys.executable, "-m", "crewkit.cli", "config", "check"],
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: config/models.yaml:") and "invalid YAML" in proc.stderr


def test_broken_crew_yaml_stops_the_run_before_it_starts(project, capsys):
    path = project / "crews" / "executor" / "config" / "tasks.yaml"
    path.write_text(
        path.read_text().replace("guardrails: [not_empty, no_secrets]", "guardrails: [not_empty, no_secrest]")
    )
    code, _, err = run_cli(capsys, "run", "--inputs", '{"task": "x"}')
    assert code == 2
    assert err.startswith("error: crews/executor/config/tasks.yaml:")
    assert "unknown guardrail 'no_secrest' (did you mean 'no_secrets'?)" in err
    assert not (project / "output").exists()


def test_agent_with_unknown_role_stops_the_run(project, capsys):
    path = project / "crews" / "executor" / "config" / "agents.yaml"
    path.write_text(path.read_text().replace("llm: code", "llm: coder"))
    code, _, err = run_cli(capsys, "run", "--inputs", '{"task": "x"}')
    assert code == 2 and "crews/executor/config/agents.yaml:" in err and "'coder'" in err
    assert not (project / "output").exists()


def test_flow_module_that_fails_to_import_is_one_line(project, capsys):
    (project / "flows" / "mine.py").write_text(
        "from crewai.flow.flow import Flow\n\nclass Mine(Flow:\n    pass\n"
    )
    code, _, err = run_cli(capsys, "run", "mine", "--inputs", '{"task": "x"}')
    assert code == 2 and err.startswith("error: flows/mine.py:3: syntax error")
    assert not (project / "output").exists()
