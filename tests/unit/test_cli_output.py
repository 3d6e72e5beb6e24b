"""What `crewkit run` / `crewkit crew` print: results on stdout as produced, nothing read as markup,
decorations on stderr, secrets redacted everywhere, blocked results withheld."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from crewkit import cli
from crewkit.models.registry import RoleMap
from tests.fakes import ScriptedLLM
from tests.sample_project import add_crew, add_flow, run_cli

FAKE_KEY = "sk-proj-FAKEfake1234567890abcdefABCDEF"


def only_record(project) -> dict:
    (path,) = (project / "output").glob("*.json")
    return json.loads(path.read_text())


def test_square_brackets_in_task_and_result_are_printed_as_written(project, scripted, capsys):
    add_flow(project, "echo")
    task = "Explain what the [/INST] token means"
    reply = "The [/INST] token closes an [INST] block; [bold]not markup[/bold] [red]either[/]."
    scripted.add(reply)
    code, out, err = run_cli(capsys, "run", "echo", "--inputs", json.dumps({"task": task}), "--json")
    assert code == 0, err
    assert out.splitlines()[:-1] == [reply]
    assert json.loads(out.splitlines()[-1])["status"] == "done"
    assert "s1 [code] Explain what the [/INST] token means" in err  # the plan's label stays visible
    assert "1 [deterministic] check passed" in err  # the verification summary
    assert only_record(project)["result"] == reply


def test_result_on_stdout_is_not_wrapped_or_styled(project, scripted, capsys):
    add_flow(project, "echo")
    long_json = json.dumps({"rows": [{"id": i, "name": "n" * 30} for i in range(20)]})
    code_block = "```python\ndef f():\n    return " + "1 + " * 60 + "1\n```"
    scripted.add(long_json + "\n\n" + code_block)
    code, out, _ = run_cli(capsys, "run", "echo", "--inputs", '{"task": "t"}')
    assert code == 0
    assert out == long_json + "\n\n" + code_block + "\n"
    assert "\x1b[" not in out


def test_piped_stdout_of_the_real_command_parses_as_json(project):
    """A subprocess with stdout on a pipe: rich used to hard-wrap it at 80 columns."""
    add_flow(project, "fixed")
    env = {**os.environ, "CREWKIT_PROJECT": str(project), "COLUMNS": "80"}
    proc = subprocess.run(
        [sys.executable, "-m", "crewkit.cli", "run", "fixed", "--inputs", '{"task": "t"}', "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    first, second, last = lines
    assert json.loads(first)["items"][11]["n"] == 11
    assert second == "    " + "y" * 150
    assert json.loads(last)["status"] == "done"
    # what a step prints is a decoration: on stderr, redacted
    assert "a step printing to stdout, key [REDACTED]" in proc.stderr
    assert "STEPKEY" not in proc.stdout + proc.stderr


def test_a_key_in_the_task_and_in_a_provider_error_is_redacted(project, scripted, capsys, monkeypatch):
    monkeypatch.setenv("ACME_API_KEY", "acme-secret-value-42")
    add_flow(project, "echo")
    scripted.add(RuntimeError(f"401 Incorrect API key provided: {FAKE_KEY}; account acme-secret-value-42"))
    task = f"Use my key {FAKE_KEY} to call the API"
    code, out, err = run_cli(capsys, "run", "echo", "--inputs", json.dumps({"task": task}), "--json")
    assert code != 0
    text = (project / "output").glob("*.json").__next__().read_text()
    for where in (text, out, err):
        assert FAKE_KEY not in where
        assert "acme-secret-value-42" not in where
    record = json.loads(text)
    assert record["inputs"]["task"] == "Use my key [REDACTED] to call the API"
    assert record["status"] == "failed" and "[REDACTED]" in record["error"]
    assert "Use my key [REDACTED]" in err  # the progress line, redacted too


def test_blocked_result_is_withheld_from_stdout_and_record(project, capsys):
    add_flow(project, "blocked")
    code, out, err = run_cli(capsys, "run", "blocked", "--inputs", '{"task": "t"}', "--json")
    assert code == 1
    assert "SECRET-BLOCKED-TEXT" not in out + err
    assert [json.loads(line)["status"] for line in out.splitlines()] == ["failed"]
    assert f"result withheld: guardrail no_prompt_injection blocked it (sha256 {'ab' * 32})" in err
    record = only_record(project)
    assert record["result"] is None and record["blocked"]["sha256"] == "ab" * 32
    assert "SECRET-BLOCKED-TEXT" not in json.dumps(record)


def test_stock_flow_records_the_value_kickoff_returned(project, capsys):
    add_flow(project, "stock")
    code, out, _ = run_cli(capsys, "run", "stock", "--inputs", '{"topic": "herons"}')
    assert code == 0
    assert out == "a poem about herons\n"
    record = only_record(project)
    assert record["flow"] == "stock" and record["status"] == "done"
    assert record["result"] == "a poem about herons"


def test_a_failed_step_is_recorded_and_exits_1(project, capsys):
    add_flow(project, "fixed")
    code, out, err = run_cli(capsys, "run", "fixed", "--inputs", '{"task": "fail"}', "--json")
    assert code == 1
    record = only_record(project)
    assert record["status"] == "failed" and record["error"] == "RuntimeError: the step failed"
    assert json.loads(out.splitlines()[-1])["status"] == "failed"
    assert "error: RuntimeError: the step failed" in err


def test_verbose_gives_back_crewai_flow_events_on_stderr(project, capsys):
    add_flow(project, "fixed")
    code, out, err = run_cli(capsys, "run", "fixed", "--inputs", '{"task": "t"}')
    assert code == 0 and "Flow Started" not in err
    code, out, err = run_cli(capsys, "run", "fixed", "--inputs", '{"task": "t"}', "--verbose")
    assert code == 0
    assert "Flow Started" in err and "Name: Fixed" in err
    assert json.loads(out.splitlines()[0])["items"][0]["n"] == 0  # stdout still only the result


def test_crew_run_alone_writes_a_record_and_a_json_line(project, capsys, monkeypatch):
    add_crew(project)
    fake = ScriptedLLM(["Owls [hoot] at night."])

    def engine():
        from crewkit.settings import load_settings

        settings = load_settings()
        return settings, RoleMap(settings, overrides={"reasoning": fake})

    monkeypatch.setattr(cli, "_engine", engine)
    code, out, err = run_cli(capsys, "crew", "echo", "--inputs", '{"topic": "owls"}', "--json")
    assert code == 0, err
    *result, last = out.splitlines()
    assert result == ["Owls [hoot] at night."]
    line = json.loads(last)
    assert line["status"] == "done"
    record = json.loads((project / "output" / f"{line['run_id']}.json").read_text())
    assert line["output_file"].endswith(f"{line['run_id']}.json")
    assert record["flow"] is None and record["crew"] == "echo"
    assert record["inputs"] == {"topic": "owls"} and record["result"] == "Owls [hoot] at night."
    assert record["usage"]["reasoning"]["calls"] == 1
    assert [s["agent"] for s in record["steps"]] == ["Writer"]


def test_verbose_gives_back_crewai_agent_output_for_crews(project, capsys, monkeypatch):
    """CrewAI resets its console's verbosity from each Crew built (verbose=False): --verbose must hold."""
    add_crew(project)
    fake = ScriptedLLM(["Owls hoot.", "Owls hoot again."])

    def engine():
        from crewkit.settings import load_settings

        settings = load_settings()
        return settings, RoleMap(settings, overrides={"reasoning": fake})

    monkeypatch.setattr(cli, "_engine", engine)
    code, out, err = run_cli(capsys, "crew", "echo", "--inputs", '{"topic": "owls"}')
    assert code == 0 and out == "Owls hoot.\n"
    assert "Crew Execution Started" not in err
    code, out, err = run_cli(capsys, "crew", "echo", "--inputs", '{"topic": "owls"}', "--verbose")
    assert code == 0 and out == "Owls hoot again.\n"
    assert "Crew Execution Started" in err and "Agent: Writer" in err


def test_verbose_crewai_output_is_redacted_too(project, capsys, monkeypatch):
    add_crew(project)
    # a task carrying a key is sensitive (credentials) and would wait for a person: no rules here
    (project / "config" / "governance.yaml").write_text("risk:\n  rules: []\n")
    fake = ScriptedLLM([f"Your key is {FAKE_KEY}."])

    def engine():
        from crewkit.settings import load_settings

        settings = load_settings()
        return settings, RoleMap(settings, overrides={"reasoning": fake})

    monkeypatch.setattr(cli, "_engine", engine)
    inputs = json.dumps({"topic": f"the key {FAKE_KEY}"})
    code, out, err = run_cli(capsys, "crew", "echo", "--inputs", inputs, "--verbose", "--json")
    assert code == 0
    assert "Crew Execution Started" in err and "[REDACTED]" in err
    assert FAKE_KEY not in out + err
    assert out.splitlines()[0] == "Your key is [REDACTED]."


def test_a_run_on_the_shipped_embedded_model_says_its_content_is_weak(project, scripted, capsys):
    add_flow(project, "echo")
    scripted.add("A short answer.")
    code, out, err = run_cli(capsys, "run", "echo", "--inputs", json.dumps({"task": "Say something"}))
    assert code == 0, err
    note = next(line for line in err.splitlines() if line.startswith("note: answers came from"))
    assert "local-small" in note and "weak content" in note and "config/models.yaml" in note
    assert "note:" not in out  # decorations stay off stdout
