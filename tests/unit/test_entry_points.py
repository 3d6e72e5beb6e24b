"""CrewAI's entry points in main.py, run for real (sys.argv patched, the real CLI underneath):
their exit codes, the files they write, and the trigger payload's path into a flow."""

from __future__ import annotations

import json
import sys

import pytest

import main
from tests.sample_project import add_flow


def call(monkeypatch, capsys, entry, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", [entry.__name__, *argv])
    with pytest.raises(SystemExit) as exit_info:
        entry()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def records(project) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((project / "output").glob("*.json"))]


def test_kickoff_runs_a_flow_and_exits_0_with_its_record(project, monkeypatch, capsys):
    add_flow(project, "fixed")
    code, out, _ = call(monkeypatch, capsys, main.kickoff, "fixed", "--inputs", '{"task": "t"}', "--json")
    assert code == 0
    (record,) = records(project)
    assert record["flow"] == "fixed" and record["status"] == "done"
    assert json.loads(out.splitlines()[-1])["run_id"] == record["run_id"]


def test_kickoff_without_inputs_runs_the_flows_example(project, monkeypatch, capsys):
    add_flow(project, "fixed")
    code, _, err = call(monkeypatch, capsys, main.kickoff, "fixed")
    assert code == 0 and 'running the example: {"task": "example"}' in err
    assert records(project)[0]["inputs"] == {"task": "example"}


def test_kickoff_exits_1_when_the_flow_fails(project, monkeypatch, capsys):
    add_flow(project, "fixed")
    code, _, err = call(monkeypatch, capsys, main.kickoff, "fixed", "--inputs", '{"task": "fail"}')
    assert code == 1 and "RuntimeError: the step failed" in err
    assert records(project)[0]["status"] == "failed"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["fixed", "--inputs", '{"task": "t", "colour": "red"}'], "unknown field 'colour'"),
        (["fixd", "--inputs", '{"task": "t"}'], "unknown flow 'fixd' (did you mean 'fixed'?)"),
        (["fixed", "--inputs", "{oops"], "--inputs: invalid JSON"),
    ],
)
def test_kickoff_exits_2_on_user_errors_and_writes_nothing(project, monkeypatch, capsys, argv, expected):
    add_flow(project, "fixed")
    code, out, err = call(monkeypatch, capsys, main.kickoff, *argv)
    assert code == 2 and expected in err and len(err.splitlines()) == 1 and out == ""
    assert not (project / "output").exists()


def test_run_crew_exits_2_for_an_unknown_crew(project, monkeypatch, capsys):
    code, _, err = call(monkeypatch, capsys, main.run_crew, "plannr")
    assert code == 2 and "unknown crew 'plannr' (did you mean 'planner'?)" in err


def test_plot_writes_the_flow_diagram_and_exits_0(project, monkeypatch, capsys):
    code, out, _ = call(monkeypatch, capsys, main.plot)
    assert code == 0 and "output/flow_default.html" in out
    html = (project / "output" / "flow_default.html").read_text()
    script = (project / "output" / "flow_default_script.js").read_text()
    assert "flow_default_script.js" in html
    assert all(step in script for step in ("plan", "execute", "verify", "guard"))


def test_plot_of_an_unknown_flow_exits_2(project, monkeypatch, capsys):
    code, _, err = call(monkeypatch, capsys, main.plot, "nope")
    assert code == 2 and "unknown flow 'nope'" in err
    assert not (project / "output").exists()


@pytest.mark.parametrize(
    "payload",
    [
        {"inputs": {"task": "summarise"}, "source": "cron"},
        {"crewai_trigger_payload": {"inputs": {"task": "summarise"}, "source": "cron"}},
    ],
)
def test_trigger_payload_reaches_start_steps_and_the_record(project, monkeypatch, capsys, payload):
    add_flow(project, "trigger")
    code, out, err = call(monkeypatch, capsys, main.run_with_trigger, json.dumps(payload), "trigger")
    assert code == 0, err
    full = {"inputs": {"task": "summarise"}, "source": "cron"}
    assert out == f"task=summarise payload={json.dumps(full, sort_keys=True)}\n"
    (record,) = records(project)
    assert record["inputs"] == {"task": "summarise"}
    assert record["trigger_payload"] == full


def test_trigger_payload_keys_become_inputs_and_unknown_ones_are_named(project, monkeypatch, capsys):
    add_flow(project, "trigger")
    payload = '{"task": "summarise", "source": "cron"}'
    code, _, err = call(monkeypatch, capsys, main.run_with_trigger, payload, "trigger")
    assert code == 2
    assert "unknown field 'source'" in err and "allowed: task" in err


def test_trigger_payload_without_an_inputs_model_goes_to_the_state(project, monkeypatch, capsys):
    add_flow(project, "stock")
    code, out, _ = call(monkeypatch, capsys, main.run_with_trigger, '{"topic": "herons"}', "stock")
    assert code == 0 and out == "a poem about herons\n"
    assert records(project)[0]["trigger_payload"] == {"topic": "herons"}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("{oops", "trigger payload: invalid JSON"),
        ("[1]", "trigger payload: expected a JSON object"),
        ('{"inputs": [1]}', "'inputs' must be an object"),
    ],
)
def test_bad_trigger_payload_exits_2(project, monkeypatch, capsys, payload, expected):
    code, _, err = call(monkeypatch, capsys, main.run_with_trigger, payload)
    assert code == 2 and err.startswith("error: ") and expected in err
    assert not (project / "output").exists()
