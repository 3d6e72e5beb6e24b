"""Routing: the complexity estimate, the policies' rules, budget-aware choices and config errors."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from crewkit import plan
from crewkit.errors import ConfigError
from crewkit.models import routing
from crewkit.settings import load_settings
from tests.sample_project import run_cli

EASY = "Write is_palindrome(s) in Python."
HARD = (
    "Write a thread-safe LRU cache in Python with O(1) get and put. It must handle eviction "
    "without holding the lock during I/O, and explain the design trade-offs and the edge cases."
)


def set_routing(project: Path, text: str, roles: dict[str, str] | None = None) -> Path:
    """Replace the routing section of the project's models.yaml (and some roles' lines)."""
    path = project / "config" / "models.yaml"
    body = path.read_text()
    body = body[: body.index("\nrouting:")] + "\n" + text.strip("\n") + "\n"
    for role, line in (roles or {}).items():
        start = body.index(f"\n  {role}:")
        end = body.index("\n", start + 1)
        body = body[:start] + f"\n  {role}: {line}" + body[end:]
    path.write_text(body)
    # the shipped A/B experiment names the shipped policies, which these tests replace
    (project / "config" / "experiments.yaml").unlink(missing_ok=True)
    return path


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if needle in line)


CODE_CHAIN = {"code": "{model: local-small, fallbacks: [gpt-4o-mini, gpt-4o]}"}


# -- the complexity estimate ------------------------------------------------------------------------


def test_easy_and_hard_subtasks_get_low_and_high_levels():
    easy, hard = routing.estimate(EASY, "code"), routing.estimate(HARD, "code")
    assert easy.level == "low" and hard.level == "high"
    assert 0 <= easy.score < hard.score <= 1
    assert set(hard.features) == {"length", "parts", "code", "constraints", "reasoning"}


def test_the_estimate_is_deterministic():
    assert routing.estimate(HARD, "code") == routing.estimate(HARD, "code")


@pytest.mark.parametrize(
    "base, more",
    [
        ("Explain recursion.", "Explain recursion. " + "Give a long worked example with many steps. " * 6),
        (
            "Summarise the report.",
            "Summarise the report. Then list its risks. Then compare it with last year.",
        ),
        ("Sort a list.", "Sort a list. It must be stable, use at most O(n log n) time and never allocate."),
        ("Describe the weather.", "Describe the weather and explain why it changes; analyse the trade-offs."),
        ("Describe the weather.", "Describe the weather.\n```python\nimport math\n```"),
        ("解释递归。", "解释递归，必须给出至少两个例子，并分析为什么会栈溢出，比较不同的算法。"),
    ],
)
def test_more_text_parts_constraints_or_reasoning_never_lower_the_score(base, more):
    low, high = routing.estimate(base, "reasoning"), routing.estimate(more, "reasoning")
    assert high.score > low.score
    for name, value in low.features.items():
        assert high.features[name] >= value, name


def test_each_feature_is_monotonic_when_text_is_appended():
    text = "Design a cache."
    previous = routing.estimate(text, "code")
    for extra in [
        " It must be thread-safe.",
        " Handle edge cases.",
        " 必须保证正确性。",
        " Also explain why.",
    ] * 3:
        text += extra
        current = routing.estimate(text, "code")
        assert current.score >= previous.score
        assert all(current.features[k] >= v for k, v in previous.features.items())
        previous = current
    assert previous.level == "high"


def test_chinese_constraints_and_reasoning_words_count():
    plain = routing.estimate("写一个排序函数。", "code")
    harder = routing.estimate("写一个排序函数，必须稳定，不能使用额外内存，并分析复杂度和边界情况。", "code")
    assert harder.features["constraints"] > 0 and harder.features["reasoning"] > 0
    assert harder.score > plain.score


def test_a_code_task_type_or_code_in_the_text_raises_the_code_feature():
    assert routing.estimate("Explain the idea.", "reasoning").features["code"] == 0
    assert routing.estimate("Explain the idea.", "code").features["code"] == 0.5
    assert routing.estimate("Fix this:\n```python\ndef f(:\n```", "code").features["code"] == 1.0


def test_levels_follow_the_thresholds():
    assert routing.level_of(0.0) == "low"
    assert routing.level_of(routing.MEDIUM_AT) == "medium"
    assert routing.level_of(routing.HIGH_AT) == "high"


def test_task_types_are_the_plans():
    assert typing.get_args(plan.TaskType) == routing.TASK_TYPES


# -- rules ------------------------------------------------------------------------------------------


def test_shipped_config_routes_like_today(settings):
    assert settings.models.routing.policy == "by-complexity"
    for role in ("reasoning", "code", "vision"):
        for text in (EASY, HARD):
            route = routing.decide(settings, role, role, text, subtask="s1")
            assert route.model == settings.models.roles[role].model
            assert route.order == (route.model, *settings.models.roles[role].fallbacks)


def test_static_policy_keeps_the_roles_model_first(project):
    set_routing(project, "routing: {policy: static}", CODE_CHAIN)
    settings = load_settings(project)
    route = routing.decide(settings, "code", "code", EASY, subtask="s1")
    assert route.model == "local-small" and route.order == ("local-small", "gpt-4o-mini", "gpt-4o")
    assert "policy 'static'" in route.reason


RULES = """
routing:
  policy: tiered
  policies:
    tiered:
      rules:
        - when: {task_type: code, level: high}
          use: strongest
        - when: {task_type: code, level: [medium, high]}
          use: gpt-4o-mini
        - when: {level: low}
          use: cheapest
      default: gpt-4o-mini
"""


def test_first_matching_rule_wins(project):
    set_routing(project, RULES, CODE_CHAIN)
    settings = load_settings(project)
    hard = routing.decide(settings, "code", "code", HARD, subtask="s1")
    assert hard.level == "high" and hard.model == "gpt-4o"  # rule 1, not rule 2
    assert hard.order == ("gpt-4o", "local-small", "gpt-4o-mini")
    assert "rule 1 (task_type code, level high) -> strongest" in hard.reason
    easy = routing.decide(settings, "code", "code", EASY, subtask="s2")
    assert easy.model == "local-small" and "rule 3" in easy.reason  # cheapest: the free local model
    assert easy.as_record()["subtask"] == "s2"


def test_default_applies_when_no_rule_matches(project):
    set_routing(project, RULES, CODE_CHAIN)
    settings = load_settings(project)
    medium = "Explain how a hash map resizes, why load factors matter and compare two designs in detail."
    route = routing.decide(settings, "code", "reasoning", medium)
    assert route.level != "low"
    assert route.model == "gpt-4o-mini" and "no rule matched -> gpt-4o-mini" in route.reason


def test_a_rule_naming_a_model_outside_the_chain_does_not_apply_to_that_role(project):
    set_routing(project, RULES, CODE_CHAIN)
    settings = load_settings(project)  # reasoning's chain is local-small only
    route = routing.decide(
        settings, "reasoning", "reasoning", "Explain in detail why caches must be evicted."
    )
    assert route.model == "local-small"


def test_vision_subtasks_are_routed_among_models_that_can_see(project):
    set_routing(
        project,
        "routing:\n  policy: cheap\n  policies:\n    cheap:\n      rules: [{use: cheapest}]\n",
        {"vision": "{model: gpt-4o, fallbacks: [local-small, gpt-4o-mini]}"},
    )
    settings = load_settings(project)
    route = routing.decide(settings, "vision", "vision", "Describe the chart.")
    assert route.model == "gpt-4o-mini"  # local-small is cheaper but cannot see


def test_policy_argument_overrides_the_active_policy(project):
    set_routing(project, RULES, CODE_CHAIN)
    settings = load_settings(project)
    assert routing.decide(settings, "code", "code", HARD, policy="static").model == "local-small"


# -- budget -----------------------------------------------------------------------------------------


def test_a_short_budget_takes_a_cheaper_model_and_says_so(project):
    set_routing(project, RULES, CODE_CHAIN)
    settings = load_settings(project)
    models = settings.models.models
    strong = routing.call_estimate(models["gpt-4o"], HARD)
    mini = routing.call_estimate(models["gpt-4o-mini"], HARD)
    assert mini < strong
    plenty = routing.decide(settings, "code", "code", HARD, budget_left=strong * 2)
    assert plenty.model == "gpt-4o" and "budget" not in plenty.reason
    short = routing.decide(settings, "code", "code", HARD, budget_left=(mini + strong) / 2)
    assert short.model == "gpt-4o-mini"  # the dearest that fits
    assert "budget:" in short.reason and "gpt-4o-mini" in short.reason
    assert short.order == ("gpt-4o-mini", "local-small", "gpt-4o")
    broke = routing.decide(settings, "code", "code", HARD, budget_left=0.0)
    assert broke.model == "local-small"  # free: fits any budget


def test_nothing_cheaper_leaves_the_choice_and_says_why(project):
    set_routing(project, "routing: {policy: static}", {"code": "{model: gpt-4o}"})
    settings = load_settings(project)
    route = routing.decide(settings, "code", "code", HARD, budget_left=0.0)
    assert route.model == "gpt-4o" and "no model of the chain is cheaper" in route.reason


def test_budget_left_reads_the_runs_limited_scopes(settings, tmp_path):
    from crewkit.governance.budget import Budgets
    from crewkit.runtime.store import StateStore

    store = StateStore.open(tmp_path / "home")
    per_run = settings.profile.budgets.per_run
    assert per_run is not None  # startup: $0.50 per run
    assert routing.budget_left(settings, store, "r-1", None, "code") == pytest.approx(per_run)
    budgets = Budgets(store, settings)
    scopes = budgets.scopes("r-1", None, "code")
    budgets.settle(None, 0.2, "r-1", scopes)
    held = budgets.reserve(scopes, 0.1, "r-1")
    assert routing.budget_left(settings, store, "r-1", None, "code") == pytest.approx(per_run - 0.3)
    budgets.release([held])
    assert routing.budget_left(settings, store, "r-2", None, "code") == pytest.approx(per_run)


# -- config errors ----------------------------------------------------------------------------------


def _error(project: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load_settings(project)
    return str(err.value)


def test_unknown_active_policy_is_a_file_line_error_with_a_suggestion(project):
    path = set_routing(project, RULES.replace("policy: tiered", "policy: tierd"), CODE_CHAIN)
    message = _error(project)
    assert message.startswith(f"config/models.yaml:{line_of(path, 'policy: tierd')}: ")
    assert "routing policy 'tierd' is not defined (did you mean 'tiered'?)" in message


def test_rule_model_not_in_the_roles_chain_is_an_error(project):
    path = set_routing(project, RULES.replace("use: gpt-4o-mini\n", "use: claude-sonnet\n", 1), CODE_CHAIN)
    message = _error(project)
    assert message.startswith(f"config/models.yaml:{line_of(path, 'use: claude-sonnet')}: ")
    assert (
        "model 'claude-sonnet', which is not in role 'code''s chain (local-small, gpt-4o-mini, gpt-4o)"
        in message
    )


def test_rule_naming_an_unknown_model_suggests_the_close_one(project):
    path = set_routing(project, RULES.replace("use: gpt-4o-mini\n", "use: gpt-4o-mni\n", 1), CODE_CHAIN)
    message = _error(project)
    assert message.startswith(f"config/models.yaml:{line_of(path, 'use: gpt-4o-mni')}: ")
    assert "did you mean 'gpt-4o-mini'" in message


def test_unknown_task_type_is_an_error(project):
    path = set_routing(
        project, RULES.replace("task_type: code, level: high", "task_type: cod, level: high"), CODE_CHAIN
    )
    message = _error(project)
    assert message.startswith(f"config/models.yaml:{line_of(path, 'task_type: cod,')}: ")
    assert "task type 'cod'" in message and "did you mean 'code'" in message


def test_unknown_level_is_an_error(project):
    path = set_routing(
        project, RULES.replace("level: {", "level: {").replace("level: high}", "level: hgh}", 1), CODE_CHAIN
    )
    message = _error(project)
    assert message.startswith(f"config/models.yaml:{line_of(path, 'level: hgh')}: ")
    assert "'hgh'" in message


def test_static_takes_no_rules(project):
    set_routing(project, "routing:\n  policies:\n    static: {rules: [{use: cheapest}]}\n")
    assert "policy 'static' is built in" in _error(project)


def test_config_check_reports_a_routing_error_on_one_line(project, capsys):
    set_routing(project, RULES.replace("policy: tiered", "policy: nope"), CODE_CHAIN)
    code, out, err = run_cli(capsys, "config", "check")
    assert code == 2
    assert err.strip().count("\n") == 0 and "routing policy 'nope' is not defined" in err
    assert "Traceback" not in err


def test_missing_routing_section_means_static(project):
    path = project / "config" / "models.yaml"
    body = path.read_text()
    path.write_text(body[: body.index("\nrouting:")] + "\n")
    (project / "config" / "experiments.yaml").unlink(missing_ok=True)  # it names the shipped policies
    settings = load_settings(project)
    assert settings.models.routing.policy == "static"
    assert list(settings.models.routing.policies) == ["static"]
