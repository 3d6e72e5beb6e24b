"""`crewkit config check` finds what would break a run: crew and flow code, not only YAML."""

from __future__ import annotations

import json
from pathlib import Path

from crewkit.cli import main
from tests.unit.test_crews import make_crew


def _check(capsys) -> tuple[int, str, str]:
    code = main(["config", "check"])
    out, err = capsys.readouterr()
    return code, out, err.strip()


def test_shipped_project_passes_and_lists_crews_and_flows(project, capsys):
    code, out, err = _check(capsys)
    assert code == 0, err
    assert "crew(s): " in out and "planner" in out and "verifier" in out
    assert "flow(s): default, plan" in out


def test_syntax_error_in_a_crew_module_is_one_line_at_its_line(project, capsys):
    folder = make_crew(project, "broken_check")
    code_py = (folder / "crew.py").read_text().replace("def crew(self)", "def crew(self")
    (folder / "crew.py").write_text(code_py)
    code, _, err = _check(capsys)
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: crews/broken_check/crew.py:")
    assert "syntax error" in err


def test_crew_code_that_names_a_missing_agent_config_fails_the_check(project, capsys):
    folder = make_crew(project, "mismatch")
    code_py = (
        (folder / "crew.py").read_text().replace('agents_config["researcher"]', 'agents_config["writer"]')
    )
    (folder / "crew.py").write_text(code_py)
    line = next(i for i, t in enumerate(code_py.splitlines(), 1) if '"writer"' in t)
    code, _, err = _check(capsys)
    assert code == 2
    assert err.startswith(f"error: crews/mismatch/crew.py:{line}: crew 'mismatch' cannot be built")


def test_syntax_error_in_a_flow_module_is_one_line(project, capsys):
    (project / "flows" / "typo_flow.py").write_text(
        "from crewai.flow.flow import Flow\n\nclass F(Flow:\n    pass\n"
    )
    code, _, err = _check(capsys)
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: flows/typo_flow.py:3: syntax error")


def test_flow_listing_an_unknown_crew_fails_the_check(project, capsys):
    (project / "flows" / "bad_crews.py").write_text(
        "from crewai.flow.flow import Flow, start\n\n"
        "class F(Flow):\n    CREWS = ('planer',)\n\n    @start()\n    def go(self):\n        return 1\n"
    )
    code, _, err = _check(capsys)
    assert code == 2
    assert (
        "flow 'bad_crews' lists crew 'planer' in CREWS, which is not in crews/ (did you mean 'planner'?)"
        in err
    )


def test_without_governance_yaml_check_says_defaults_apply(project, capsys):
    (project / "config" / "governance.yaml").unlink()
    code, out, err = _check(capsys)
    assert code == 0, err
    assert "no config/governance.yaml (defaults)" in out


def test_plan_flow_runs_through_crewkit_run(project, capsys, monkeypatch):
    """The second shipped flow, stock CrewAI style: its kickoff's return value is the result."""
    import crewkit.cli
    from crewkit.models.registry import RoleMap
    from crewkit.settings import load_settings
    from tests.fakes import ScriptedLLM

    plan = {
        "subtasks": [
            {"description": "Write a haiku about owls", "task_type": "reasoning", "acceptance": "A haiku"}
        ]
    }
    fake = ScriptedLLM([plan])
    monkeypatch.setattr(
        crewkit.cli, "_engine", lambda: (s := load_settings(), RoleMap(s, overrides={"reasoning": fake}))
    )
    code = main(["run", "plan", "--inputs", '{"task": "Write a haiku about owls"}', "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert len(fake.calls) == 1
    record = json.loads(Path(json.loads(out.strip().splitlines()[-1])["output_file"]).read_text())
    assert record["flow"] == "plan" and record["status"] == "done"
    assert json.loads(record["result"])["subtasks"][0]["description"] == "Write a haiku about owls"
    assert "Write a haiku about owls" in fake.calls[0].prompt


def test_config_check_lists_eval_suites_and_names_a_malformed_one_at_its_line(project, capsys):
    code, out, err = _check(capsys)
    assert code == 0, err
    assert "eval suites (config/suites/): default" in out
    bad = project / "config" / "suites" / "mine.yaml"
    bad.write_text(
        "name: mine\ncases:\n  - id: q1\n    kind: reasoning\n    prompt: 2+2?\n    answr: {exact: '4'}\n"
    )
    code, out, err = _check(capsys)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: config/suites/mine.yaml:6: unknown field 'answr'"), err


def test_config_check_says_how_operations_are_set(project, capsys, monkeypatch):
    (project / "config" / "operations.yaml").write_text(
        "cache: {enabled: false}\nbatching: {enabled: true, max_concurrency: 3}\n"
        "database: {url_env: MY_DB_URL}\n"
    )
    monkeypatch.setenv("MY_DB_URL", "postgresql://u:secret@db.invalid/x")
    code, out, err = _check(capsys)
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("operations"))
    assert "cache off" in line and "batching 3" in line and "state in PostgreSQL (MY_DB_URL)" in line
    assert "secret" not in out  # the variable is named, its value never printed
