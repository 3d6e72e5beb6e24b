"""config/experiments.yaml: the shipped example, a missing file, FILE:LINE errors, the JSON schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crewkit.errors import ConfigError
from crewkit.evaluation.experiments import ExperimentsConfig
from crewkit.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def _write(project: Path, text: str) -> None:
    (project / "config" / "experiments.yaml").write_text(text, encoding="utf-8")


def test_the_shipped_example_loads_disabled_and_a_missing_file_means_no_experiments(project):
    shipped = load_settings(project).experiments
    assert shipped.experiments and not shipped.enabled()  # one example, enabled: false
    for exp in shipped.experiments.values():
        assert len(exp.arms) >= 2
    (project / "config" / "experiments.yaml").unlink()
    settings = load_settings(project)
    assert settings.experiments == ExperimentsConfig() and settings.experiments_doc is None


def test_the_shipped_schema_is_the_models_schema():
    from crewkit.settings import json_schemas

    shipped = json.loads((ROOT / "config" / "schema" / "experiments.schema.json").read_text())
    assert shipped == json_schemas()["experiments.schema.json"]


GOOD_ARMS = """    arms:
      control: {weight: 50}
      treatment: {weight: 50, roles: {reasoning: {model: gpt-4o-mini}}}
"""


@pytest.mark.parametrize(
    ("text", "line", "needles"),
    [
        (  # an unknown routing policy: did you mean
            "experiments:\n  r:\n    arms:\n      control: {weight: 1}\n      treatment:\n"
            "        weight: 1\n        routing: by-complexty\n",
            7,
            ["routing policy 'by-complexty'", "is not defined"],
        ),
        (  # a role that does not exist
            "experiments:\n  r:\n    arms:\n      control: {weight: 1}\n      treatment:\n        weight: 1\n"
            "        roles:\n          reasonng: {model: gpt-4o-mini}\n",
            8,
            ["role 'reasonng'", "did you mean 'reasoning'"],
        ),
        (  # a model that does not exist
            "experiments:\n  r:\n    arms:\n      control: {weight: 1}\n      treatment:\n        weight: 1\n"
            "        roles:\n          reasoning:\n            model: gpt-4o-mni\n",
            9,
            ["model 'gpt-4o-mni'", "did you mean 'gpt-4o-mini'"],
        ),
        (  # a fallback that does not exist
            "experiments:\n  r:\n    arms:\n      control: {weight: 1}\n      treatment:\n        weight: 1\n"
            "        roles:\n          reasoning:\n            fallbacks:\n              - gpt-4o\n              - gpt4o\n",
            11,
            ["model 'gpt4o'", "did you mean 'gpt-4o'"],
        ),
        (  # every weight zero
            "experiments:\n  r:\n    arms:\n      control: {weight: 0}\n      treatment: {weight: 0}\n",
            3,
            ["every arm has weight 0"],
        ),
        (  # one arm
            "experiments:\n  r:\n    arms:\n      control: {weight: 1}\n",
            3,
            ["1 arm(s)", "at least two"],
        ),
        (  # a typo of a field
            "experiments:\n  r:\n    arms:\n      control: {weight: 1}\n      treatment: {wieght: 1}\n",
            5,
            ["unknown field 'wieght'", "did you mean 'weight'"],
        ),
        (  # a weight that is not a number
            "experiments:\n  r:\n    arms:\n      control: {weight: '50'}\n      treatment: {weight: 50}\n",
            4,
            ["experiments.r.arms.control.weight"],
        ),
        (  # a negative weight
            "experiments:\n  r:\n    arms:\n      control: {weight: -1}\n      treatment: {weight: 50}\n",
            4,
            ["experiments.r.arms.control.weight"],
        ),
        ("experiments:\n  r:\n    unit: tennant\n" + GOOD_ARMS, 3, ["did you mean 'tenant'"]),
        ("experiments:\n  r:\n    primary_metric: cost\n" + GOOD_ARMS, 3, ["'cost' is not one of"]),
        (  # a patch that changes nothing
            "experiments:\n  r:\n    arms:\n      control: {weight: 1}\n      treatment:\n        weight: 1\n"
            "        roles: {reasoning: {}}\n",
            7,
            ["needs 'model' or 'fallbacks'"],
        ),
        (  # the embedding role on a chat model: models.yaml's own check, at the arm
            "experiments:\n  r:\n    arms:\n      control: {weight: 1}\n      treatment:\n        weight: 1\n"
            "        roles: {embedding: {model: gpt-4o-mini}}\n",
            5,
            ["arm 'treatment' of experiment 'r'", "role 'embedding' needs an embedding model"],
        ),
        (  # two enabled experiments changing the same role
            "experiments:\n  a:\n    enabled: true\n" + GOOD_ARMS + "  b:\n    enabled: true\n" + GOOD_ARMS,
            8,
            ["experiments 'a' and 'b'", "role 'reasoning'", "disable one"],
        ),
        ("experiments: [1, 2]\n", 1, ["experiments"]),
    ],
)
def test_bad_experiments_yaml_is_one_line_with_file_and_line(project, text, line, needles):
    _write(project, text)
    with pytest.raises(ConfigError) as err:
        load_settings(project)
    message = str(err.value)
    assert message.startswith(f"config/experiments.yaml:{line}: "), message
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_two_enabled_experiments_may_change_different_things(project):
    other = GOOD_ARMS.replace("reasoning", "code")
    _write(
        project, "experiments:\n  a:\n    enabled: true\n" + GOOD_ARMS + "  b:\n    enabled: true\n" + other
    )
    assert [name for name, _ in load_settings(project).experiments.enabled()] == ["a", "b"]
    # one of them disabled: the same role may be in both
    _write(
        project,
        "experiments:\n  a:\n    enabled: true\n" + GOOD_ARMS + "  b:\n    enabled: false\n" + GOOD_ARMS,
    )
    assert [name for name, _ in load_settings(project).experiments.enabled()] == ["a"]


def test_routing_arms_name_policies_of_models_yaml(project):
    settings = load_settings(project)
    policies = list(settings.models.routing.policies)
    assert len(policies) >= 2  # static and by-complexity ship
    arms = "".join(f"      {p}: {{weight: 1, routing: {p}}}\n" for p in policies)
    _write(project, f"experiments:\n  r:\n    enabled: true\n    arms:\n{arms}")
    loaded = load_settings(project).experiments.experiments["r"]
    assert [a.routing for a in loaded.arms.values()] == policies


def test_two_enabled_routing_experiments_conflict(project):
    arms = "    arms:\n      control: {weight: 1}\n      treatment: {weight: 1, routing: static}\n"
    _write(project, "experiments:\n  a:\n    enabled: true\n" + arms + "  b:\n    enabled: true\n" + arms)
    with pytest.raises(ConfigError) as err:
        load_settings(project)
    assert str(err.value).startswith("config/experiments.yaml:8: ") and "the routing policy" in str(err.value)


def test_config_check_reports_an_experiments_error(project, capsys):
    from crewkit import cli

    assert cli.main(["config", "check"]) == 0
    assert "experiments (config/experiments.yaml): 1, enabled: none" in capsys.readouterr().out
    _write(project, "experiments:\n  r:\n    arms:\n      control: {weight: 1}\n")
    assert cli.main(["config", "check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config/experiments.yaml:3: ") and err.count("\n") == 1


def test_an_arm_whose_role_map_breaks_a_routing_rule_is_refused_at_the_arm(project):
    models = project / "config" / "models.yaml"
    text = models.read_text()
    text = text.replace(
        "  code:      {model: local-small}", "  code:      {model: local-small, fallbacks: [gpt-4o]}"
    )
    text = text.replace("        # - when: {task_type: code, level: high}\n        #   use: gpt-4o",
                        "        - when: {task_type: code, level: high}\n          use: gpt-4o")  # fmt: skip
    models.write_text(text)
    assert load_settings(project).models.roles["code"].fallbacks == [
        "gpt-4o"
    ]  # the rule is valid as configured
    _write(
        project,
        "experiments:\n  r:\n    arms:\n      control: {weight: 1}\n      treatment:\n        weight: 1\n"
        "        roles: {code: {fallbacks: []}}\n",
    )
    with pytest.raises(ConfigError) as err:
        load_settings(project)
    message = str(err.value)
    assert message.startswith("config/experiments.yaml:5: arm 'treatment' of experiment 'r': "), message
    assert "'gpt-4o'" in message and "role 'code'" in message
