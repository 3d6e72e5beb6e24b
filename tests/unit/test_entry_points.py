"""CrewAI's entry points in main.py map onto the crewkit command."""

from __future__ import annotations

import json
import sys

import pytest

import main


@pytest.fixture
def captured(monkeypatch):
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(main, "_cli", lambda *argv: calls.append(argv))
    return calls


def test_kickoff_runs_the_default_flow_with_given_args(monkeypatch, captured):
    monkeypatch.setattr(sys, "argv", ["kickoff", "--inputs", '{"task": "t"}'])
    main.kickoff()
    assert captured == [("run", "--inputs", '{"task": "t"}')]


@pytest.mark.parametrize(
    ("payload", "inputs"),
    [
        ('{"task": "summarise", "source": "cron"}', {"task": "summarise"}),
        ('{"inputs": {"task": "x", "tenant": "acme"}}', {"task": "x", "tenant": "acme"}),
    ],
)
def test_trigger_payload_becomes_flow_inputs(monkeypatch, captured, payload, inputs):
    monkeypatch.setattr(sys, "argv", ["run_with_trigger", payload])
    main.run_with_trigger()
    (argv,) = captured
    assert argv[:2] == ("run", "--inputs") and json.loads(argv[2]) == inputs


@pytest.mark.parametrize("payload", ["{oops", "[1]", '{"other": 1}'])
def test_bad_trigger_payload_exits_2(monkeypatch, captured, capsys, payload):
    monkeypatch.setattr(sys, "argv", ["run_with_trigger", payload])
    with pytest.raises(SystemExit) as exit_info:
        main.run_with_trigger()
    assert exit_info.value.code == 2 and captured == []
    assert capsys.readouterr().err.startswith("error: trigger payload")


def test_plot_writes_the_flow_diagram(project, capsys):
    from crewkit.cli import main as cli_main

    assert cli_main(["plot"]) == 0
    html = (project / "output" / "flow_default.html").read_text()
    script = (project / "output" / "flow_default_script.js").read_text()
    assert "flow_default_script.js" in html
    assert all(step in script for step in ("plan", "execute", "verify", "guard"))
