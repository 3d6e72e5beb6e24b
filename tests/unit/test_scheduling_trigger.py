"""A malformed trigger payload (`main.run_with_trigger`, `crewkit run --trigger-payload`): one
line naming the field, exit 2, nothing written (no run row, no record, no output folder)."""

from __future__ import annotations

import json

import pytest

import main
from crewkit.runtime.store import StateStore
from tests.sample_project import add_flow
from tests.unit.test_entry_points import call, records

DEEP = "[" * 5000 + "]" * 5000


def nothing_written(project, crewkit_home) -> bool:
    runs = StateStore.open(crewkit_home).read("SELECT COUNT(*) FROM runs")[0][0]
    return runs == 0 and not (project / "output").exists()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ('{"task": "\\ud800"}', "field 'task': the value is not valid Unicode (a lone surrogate \\ud800"),
        ('{"inputs": {"task": ["ok", "\\udfff"]}}', "field 'inputs.task[1]': the value is not valid Unicode"),
        ('{"\\ud800": 1}', "the key is not valid Unicode"),
        (DEEP, "nested deeper than"),
        ('{"a": ' * 80 + "1" + "}" * 80, "is nested deeper than 64 levels"),
        ('{"task": NaN}', "NaN is not valid JSON"),
        ('{"task": "a", "task": "b"}', "key 'task' is given twice"),
        ('{"crewai_trigger_payload": [1]}', "field 'crewai_trigger_payload' must be an object, got an array"),
        ('{"crewai_trigger_payload": {"task": "t"}, "x": 1}', "'x' is beside it"),
        (
            '{"inputs": {"task": "t", "crewai_trigger_payload": 3}}',
            "field 'inputs.crewai_trigger_payload' is reserved",
        ),
        ('{"inputs": "task"}', "field 'inputs' must be an object"),
        ('{"inputs": {"task": 5}}', "trigger payload: field 'inputs.task': Input should be a valid string"),
        ('{"inputs": {}}', "trigger payload: missing field 'inputs.task'"),
        ('{"inputs": {"task": "t", "colour": "red"}}', "trigger payload: unknown field 'inputs.colour'"),
        ("null", 'expected a JSON object such as \'{"task": "..."}\', got null'),
    ],
)
def test_a_malformed_trigger_payload_is_one_line_exit_2_and_nothing_is_written(
    project, crewkit_home, monkeypatch, capsys, payload, expected
):
    add_flow(project, "trigger")
    code, out, err = call(monkeypatch, capsys, main.run_with_trigger, payload, "trigger")
    assert code == 2 and out == ""
    assert err.startswith("error: trigger payload: ") and expected in err and len(err.splitlines()) == 1, err
    assert nothing_written(project, crewkit_home)


def test_the_crewkit_run_option_checks_the_same_way(project, crewkit_home, monkeypatch, capsys):
    from crewkit.cli import main as cli_main

    add_flow(project, "trigger")
    code = cli_main(["run", "trigger", '--trigger-payload={"task": "\\ud800"}'])
    err = capsys.readouterr().err
    assert code == 2 and "field 'task': the value is not valid Unicode" in err and len(err.splitlines()) == 1
    assert nothing_written(project, crewkit_home)


def test_a_payload_may_come_without_inputs_through_crewkit_run(project, monkeypatch, capsys):
    from crewkit.cli import main as cli_main

    add_flow(project, "trigger")
    code = cli_main(
        ["run", "trigger", "--trigger-payload", json.dumps({"inputs": {"task": "x"}, "source": "cron"})]
    )
    assert code == 0
    (record,) = records(project)
    assert record["inputs"] == {"task": "x"} and record["trigger_payload"]["source"] == "cron"


@pytest.mark.parametrize("flag", ["--inputs"])
def test_inputs_json_is_read_as_strictly(project, crewkit_home, monkeypatch, capsys, flag):
    from crewkit.cli import main as cli_main

    add_flow(project, "trigger")
    code = cli_main(["run", "trigger", flag, '{"task": "\\ud800"}'])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --inputs: field 'task'") and len(err.splitlines()) == 1
    assert nothing_written(project, crewkit_home)
