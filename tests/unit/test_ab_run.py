# ruff: noqa: F811 - `steps` is a fixture imported from test_runs
"""A/B experiments through runs: the arm applied, stored, audited, kept on resume; the outcome kept.

The default flow runs on scripted models under an enabled experiment whose treatment arm maps
the reasoning role to gpt-4o-mini: the run record's steps name that model and its price makes
the run cost money (the embedded model is free). The `steps` flow of test_runs pauses for a
person, so a resume can show that the stored arm, not a new draw, is used.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crewkit.evaluation import experiments as ab
from crewkit.models.registry import RoleMap
from crewkit.runtime.runner import run_flow
from crewkit.runtime.store import StateStore
from crewkit.settings import load_settings
from tests.fakes import ScriptedLLM, tool_call
from tests.unit.test_runs import IBAN_TASK, json_line, run_cli, start, steps  # noqa: F401 - fixture

EXPERIMENT = """
experiments:
  mini:
    enabled: true
    unit: tenant
    arms:
      control:   {{weight: {control}}}
      treatment: {{weight: {treatment}, roles: {{reasoning: {{model: gpt-4o-mini}}}}}}
    min_runs_per_arm: 2
"""


def write_experiment(project: Path, control: float, treatment: float) -> None:
    (project / "config" / "experiments.yaml").write_text(
        EXPERIMENT.format(control=control, treatment=treatment)
    )


def tenant_in(arm: str, weights: dict[str, float]) -> str:
    """A tenant name that the `mini` experiment assigns to `arm` under `weights`."""
    return next(
        t for t in (f"tenant-{i}" for i in range(1000)) if ab.pick_arm(ab.key_hash("mini", t), weights) == arm
    )


def default_flow_fakes() -> dict:
    code = "```python\ndef is_palindrome(s):\n    return s == s[::-1]\n```"
    plan = {"subtasks": [{"description": "Write is_palindrome(s) in Python.", "task_type": "code",
                          "acceptance": "Has code."}]}  # fmt: skip
    return {
        "reasoning": ScriptedLLM([plan, {"passed": True, "issues": []}]),  # the plan, one calibration probe
        "code": ScriptedLLM([code]),
        "manager": ScriptedLLM(
            [
                tool_call(
                    "delegate_work_to_coworker",
                    task="Write is_palindrome(s) in Python.",
                    context="plan",
                    coworker="Code Specialist",
                ),
                code,
            ]
        ),  # fmt: skip
    }


def rows(settings) -> list[tuple]:
    return StateStore.open(settings.home).read(
        "SELECT experiment, run_id, arm, unit, key_hash, outcome, ended FROM ab_assignments ORDER BY created"
    )


@pytest.mark.parametrize("arm", ["treatment", "control"])
def test_a_run_under_an_arm_uses_its_role_map_and_keeps_assignment_and_outcome(project, arm):
    write_experiment(project, 50, 50)
    settings = load_settings(project)
    tenant = tenant_in(arm, {"control": 50, "treatment": 50})
    fakes = default_flow_fakes()
    outcome = run_flow(
        settings, RoleMap(settings, overrides=fakes), "default",
        {"task": "Write a palindrome checker in Python", "tenant": tenant},
    )  # fmt: skip
    assert outcome.status == "done", outcome.record.get("error")
    record = json.loads(outcome.record_path.read_text())
    assert record["experiment"] == {"name": "mini", "arm": arm}
    reasoning_models = {s["model"] for s in record["steps"] if s["role"] == "reasoning"}
    assert reasoning_models == ({"gpt-4o-mini"} if arm == "treatment" else {"local-small"})
    cost = sum(u["cost_usd"] for u in record["usage"].values())
    assert (cost > 0) == (arm == "treatment")  # gpt-4o-mini is priced, the embedded model is free

    [(name, run_id, stored_arm, unit, key_hash, outcome_json, ended)] = rows(settings)
    assert (name, run_id, stored_arm, unit) == ("mini", outcome.run_id, arm, "tenant")
    assert key_hash == ab.key_hash("mini", tenant) and tenant not in key_hash  # the hash, never the tenant
    kept = json.loads(outcome_json)
    assert kept["status"] == "done" and kept["verified"] is True and kept["approval"] == "none"
    assert kept["cost_usd"] == pytest.approx(cost) and kept["seconds"] > 0 and ended is not None
    # the settings the caller passed are unchanged: the arm ran on a copy
    assert settings.models.roles["reasoning"].model == "local-small"

    audit = StateStore.open(settings.home).read(
        "SELECT subject, detail, run_id FROM audit WHERE action = 'ab.assign'"
    )
    assert len(audit) == 1 and audit[0][0] == "experiment mini" and audit[0][2] == outcome.run_id
    detail = json.loads(audit[0][1])
    assert {k: detail[k] for k in ("arm", "unit", "key_hash")} == {
        "arm": arm,
        "unit": "tenant",
        "key_hash": key_hash,
    }


def test_a_disabled_experiment_assigns_nothing(project):
    (project / "config" / "experiments.yaml").write_text(
        EXPERIMENT.format(control=50, treatment=50).replace("enabled: true", "enabled: false")
    )
    settings = load_settings(project)
    outcome = run_flow(settings, RoleMap(settings, overrides=default_flow_fakes()), "default",
                       {"task": "Write a palindrome checker in Python"})  # fmt: skip
    assert outcome.status == "done"
    assert "experiment" not in outcome.record and rows(settings) == []


def test_a_resumed_run_keeps_its_stored_arm_and_its_outcome_adds_up(project, steps, capsys, tmp_path):
    write_experiment(project, 0, 100)  # every key -> treatment (reasoning on gpt-4o-mini)
    steps.add("one", "two")
    code, line, err = start(capsys, IBAN_TASK, tmp_path / "f.txt")
    assert code == 75, err  # the payment waits for a person
    settings = load_settings(project)
    [row] = rows(settings)
    assert row[2] == "treatment" and json.loads(row[5])["status"] == "paused" and row[6] is None
    paused_seconds = json.loads(row[5])["seconds"]

    write_experiment(project, 100, 0)  # a new draw would now give control
    run_cli(capsys, "approvals", "approve", line["approval_id"], "--by", "bob")
    code, out, err = run_cli(capsys, "resume", line["run_id"], "--json")
    assert code == 0, err
    record = json.loads(Path(json_line(out)["output_file"]).read_text())
    assert record["experiment"] == {"name": "mini", "arm": "treatment"}
    assert {s["model"] for s in record["steps"]} == {"gpt-4o-mini"}
    [row] = rows(settings)
    kept = json.loads(row[5])
    assert row[2] == "treatment" and kept["status"] == "done" and row[6] is not None
    assert kept["seconds"] > paused_seconds  # both segments' wall time


def test_a_routing_arm_sets_the_policy_the_executor_routes_by(project):
    settings = load_settings(project)
    assert settings.models.routing.policy != "static"  # the shipped models.yaml routes by complexity
    (project / "config" / "experiments.yaml").write_text(
        "experiments:\n  routing-v2:\n    enabled: true\n    unit: run\n    arms:\n"
        "      control: {weight: 0, routing: by-complexity}\n      treatment: {weight: 1, routing: static}\n"
    )
    settings = load_settings(project)
    outcome = run_flow(settings, RoleMap(settings, overrides=default_flow_fakes()), "default",
                       {"task": "Write a palindrome checker in Python"})  # fmt: skip
    assert outcome.status == "done", outcome.record.get("error")
    assert outcome.record["experiment"] == {"name": "routing-v2", "arm": "treatment"}
    assert outcome.record["routing"] and {r["policy"] for r in outcome.record["routing"]} == {"static"}
    [row] = rows(settings)
    assert row[3] == "run" and row[4] == ab.key_hash("routing-v2", outcome.run_id)


def test_an_arm_whose_model_cannot_run_here_says_so_and_nothing_is_stored(project, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    write_experiment(project, 0, 100)  # every run -> reasoning on gpt-4o-mini, with no API key here
    settings = load_settings(project)
    from crewkit.errors import ModelUnavailable

    with pytest.raises(ModelUnavailable) as err:
        run_flow(settings, RoleMap(settings), "default", {"task": "Explain recursion"})
    assert "OPENAI_API_KEY" in str(err.value) and "arm 'treatment' of experiment 'mini'" in str(err.value)
    assert rows(settings) == [] and StateStore.open(settings.home).list_runs() == []


def test_a_crew_run_alone_is_assigned_too(project, capsys, monkeypatch):
    from crewkit import cli
    from tests.sample_project import add_crew

    add_crew(project)
    write_experiment(project, 0, 100)
    fake = ScriptedLLM(["Owls hoot at night."])

    def engine():
        settings = load_settings()
        return settings, RoleMap(settings, overrides={"reasoning": fake})

    monkeypatch.setattr(cli, "_engine", engine)
    code, out, err = run_cli(capsys, "crew", "echo", "--inputs", '{"topic": "owls"}', "--json")
    assert code == 0, err
    record = json.loads(Path(json_line(out)["output_file"]).read_text())
    assert record["experiment"] == {"name": "mini", "arm": "treatment"}
    assert {s["model"] for s in record["steps"]} == {"gpt-4o-mini"}
    [row] = rows(load_settings(project))
    kept = json.loads(row[5])
    assert kept["status"] == "done" and kept["verified"] is None and kept["cost_usd"] > 0


def test_models_check_names_an_enabled_arms_missing_key_with_the_arm(project, capsys, monkeypatch):
    from crewkit.cli import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    write_experiment(project, 50, 50)  # treatment maps reasoning to gpt-4o-mini
    code = main(["models", "check"])
    err = capsys.readouterr().err
    assert code == 2
    assert "OPENAI_API_KEY" in err and "arm 'treatment'" in err, err
    (project / "config" / "experiments.yaml").write_text(
        EXPERIMENT.format(control=50, treatment=50).replace("enabled: true", "enabled: false")
    )
    assert main(["models", "check"]) == 0  # a disabled experiment's arms are not checked
