"""Risk tiers: the highest of rules, labels and default; labels only raise; seeded medium sampling."""

from __future__ import annotations

from pathlib import Path

import pytest

from crewkit.errors import ConfigError
from crewkit.governance import risk
from crewkit.runtime.startup import load_checked as load_settings
from crewkit.settings import GovernanceConfig


def _gov(**risk_cfg: object) -> GovernanceConfig:
    return GovernanceConfig.model_validate({"risk": risk_cfg} if risk_cfg else {})


def test_ordinary_subtask_is_low_with_a_reason() -> None:
    a = risk.assess_subtask(_gov(), "Write a palindrome function in Python", "code")
    assert a.tier == "low" and a.data_classes == ()
    assert a.reasons == ("no rule or label applies; default tier low",)


def test_money_movement_to_an_iban_is_sensitive_with_human_reasons() -> None:
    a = risk.assess_subtask(_gov(), "Transfer 500 EUR to DE89 3704 0044 0532 0130 00", "reasoning")
    assert a.tier == "sensitive"
    assert set(a.data_classes) == {"bank_details", "money_movement"}
    assert "mentions a bank account (IBAN DE89…3000)" in a.reasons
    assert not any("3704 0044" in r for r in a.reasons)


def test_chinese_transfer_is_sensitive() -> None:
    assert risk.assess_subtask(_gov(), "请给张三转账500元", "reasoning").tier == "sensitive"


def test_personal_data_is_medium_by_default() -> None:
    a = risk.assess_subtask(_gov(), "Look up the order of jane.doe@acme.com", "reasoning")
    assert a.tier == "medium" and a.data_classes == ("personal_data",)


def test_tier_is_the_highest_matching_rule() -> None:
    gov = _gov(
        rules=[
            {"when": {"task_type": "code"}, "tier": "medium"},
            {"when": {"data_class": "personal_data"}, "tier": "low"},
            {"when": {"tool": "send_*"}, "tier": "sensitive"},
        ]
    )
    assert risk.assess_subtask(gov, "Fix the parser", "code").tier == "medium"
    assert risk.assess_subtask(gov, "Fix the parser", "reasoning").tier == "low"
    a = risk.assess_subtask(gov, "Tell jane.doe@acme.com", "code", tools=["send_email"])
    assert a.tier == "sensitive" and any("uses tool send_email" in r for r in a.reasons)


def test_every_condition_of_a_rule_must_hold() -> None:
    gov = _gov(rules=[{"when": {"task_type": "code", "data_class": "credentials"}, "tier": "sensitive"}])
    assert risk.assess_subtask(gov, "my password is hunter2", "reasoning").tier == "low"
    assert risk.assess_subtask(gov, "Write a function", "code").tier == "low"
    assert risk.assess_subtask(gov, "Use the password: hunter2 in code", "code").tier == "sensitive"


def test_default_tier_is_the_floor() -> None:
    assert risk.assess_subtask(_gov(default_tier="medium"), "Explain recursion", "reasoning").tier == "medium"


def test_a_label_raises_a_tier() -> None:
    a = risk.assess_subtask(_gov(), "Explain recursion", "reasoning", label="sensitive")
    assert a.tier == "sensitive" and a.reasons == ("the task is labelled sensitive",)


def test_a_label_never_lowers_what_the_rules_found() -> None:
    a = risk.assess_subtask(_gov(), "Pay $1,200 to John for the invoice", "reasoning", label="low")
    assert a.tier == "sensitive"
    assert any("label 'low'" in r and "does not lower" in r for r in a.reasons)


def test_unknown_label_is_a_config_error_with_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean 'sensitive'"):
        risk.assess_subtask(_gov(), "x", "reasoning", label="sensitve")


def test_tool_name_and_arguments_set_the_tier() -> None:
    gov = _gov()
    assert risk.assess_tool(gov, "read_file", {"path": "notes.txt"}).tier == "low"
    assert risk.assess_tool(gov, "send_email", {"to": "team", "body": "done"}).tier == "medium"
    assert risk.assess_tool(gov, "FileWriterTool", {"path": "x"}).tier == "medium"
    a = risk.assess_tool(gov, "transfer_funds", {"iban": "DE89370400440532013000", "amount": 5})
    assert a.tier == "sensitive" and {"bank_details", "money_movement"} <= set(a.data_classes)
    assert (
        risk.assess_tool(gov, "lookup", {"q": "api_key=sk-proj-abcdefghijklmnopqrstuv0123"}).tier
        == "sensitive"
    )


def test_tool_labels_from_the_class_and_from_governance_yaml() -> None:
    class SendEmail:
        name = "send_email"
        risk_tier = "sensitive"

    assert risk.tool_label(SendEmail()) == "sensitive"
    assert risk.tool_label(object()) is None
    a = risk.assess_tool(_gov(), "send_email", {"to": "team"}, label=risk.tool_label(SendEmail()))
    assert a.tier == "sensitive" and "tool send_email is labelled sensitive" in a.reasons
    gov = _gov(tools={"search": "medium"})
    assert risk.assess_tool(gov, "search", {"q": "weather"}).tier == "medium"
    assert risk.assess_subtask(gov, "Look it up", "reasoning", tools=["search"]).tier == "medium"
    # a governance.yaml label cannot lower a tool the rules find sensitive
    gov = _gov(tools={"transfer_funds": "low"})
    assert risk.assess_tool(gov, "transfer_funds", {"amount": 5}).tier == "sensitive"


def test_bad_tool_label_names_the_tool() -> None:
    class Tool:
        name = "wire"
        risk_tier = "high"

    with pytest.raises(ConfigError, match="tool 'wire'.*'high' is not a tier"):
        risk.tool_label(Tool())


def test_human_check_by_tier() -> None:
    gov = _gov()
    sensitive = risk.Assessment("sensitive", ("x",), ())
    low = risk.Assessment("low", ("x",), ())
    assert risk.human_check(gov, sensitive, "r1", "s").required is True
    assert risk.human_check(gov, low, "r1", "s").required is False
    assert risk.human_check(gov, low, "r1", "s").draw is None


def test_medium_draw_is_seeded_recorded_and_reproducible() -> None:
    gov = _gov()
    medium = risk.Assessment("medium", ("x",), ())
    first = risk.human_check(gov, medium, "run-42", "execute:1")
    again = risk.human_check(gov, medium, "run-42", "execute:1")
    assert first == again and first.rate == 0.5
    assert first.draw == risk.draw("run-42", "execute:1") and 0.0 <= first.draw < 1.0
    assert first.required is (first.draw < 0.5)
    assert f"{first.draw:.4f}" in first.why
    assert risk.draw("run-42", "execute:2") != first.draw


def test_medium_sampling_is_about_the_configured_rate_over_many_runs() -> None:
    medium = risk.Assessment("medium", ("x",), ())
    for rate in (0.5, 0.2):
        gov = GovernanceConfig.model_validate({"approvals": {"sample_rate": rate}})
        share = sum(risk.human_check(gov, medium, f"run-{i}", "execute").required for i in range(4000)) / 4000
        assert abs(share - rate) < 0.03, share
    never = GovernanceConfig.model_validate({"approvals": {"sample_rate": 0}})
    always = GovernanceConfig.model_validate({"approvals": {"sample_rate": 1}})
    assert not any(risk.human_check(never, medium, f"r{i}", "s").required for i in range(200))
    assert all(risk.human_check(always, medium, f"r{i}", "s").required for i in range(200))


# --- config ---------------------------------------------------------------------------------


def _write_governance(project: Path, extra: str) -> Path:
    path = project / "config" / "governance.yaml"
    path.write_text("verifier:\n  max_rounds: 2\n" + extra)
    return path


def test_shipped_governance_yaml_writes_out_the_defaults(settings) -> None:
    assert settings.governance.risk == GovernanceConfig().risk
    assert settings.governance.approvals == GovernanceConfig().approvals


def test_unknown_data_class_is_a_config_error_with_line_and_suggestion(project: Path) -> None:
    _write_governance(project, "risk:\n  rules:\n    - when: {data_class: paymnt}\n      tier: sensitive\n")
    with pytest.raises(ConfigError) as err:
        load_settings(project)
    message = str(err.value)
    assert message.startswith("config/governance.yaml:5: ") and "did you mean 'payment'" in message


def test_unknown_tier_is_a_config_error_with_suggestion(project: Path) -> None:
    _write_governance(project, "approvals:\n  approvers:\n    sensitve: [alice]\n")
    with pytest.raises(ConfigError, match=r"config/governance.yaml:5: .*did you mean 'sensitive'"):
        load_settings(project)
    _write_governance(project, "risk:\n  tools: {send_email: hgh}\n")
    with pytest.raises(ConfigError, match="'hgh' is not one of low, medium, sensitive"):
        load_settings(project)


def test_a_rule_without_conditions_is_a_config_error(project: Path) -> None:
    _write_governance(project, "risk:\n  rules:\n    - when: {}\n      tier: medium\n")
    with pytest.raises(ConfigError, match="at least one condition"):
        load_settings(project)


def test_unknown_approvals_key_is_rejected(project: Path) -> None:
    _write_governance(project, "approvals:\n  sample_rat: 0.3\n")
    with pytest.raises(ConfigError, match="did you mean 'sample_rate'"):
        load_settings(project)


def test_tool_label_on_a_crewai_tool_and_its_structured_wrapper() -> None:
    from typing import ClassVar

    from crewai.tools import BaseTool

    class WireMoney(BaseTool):
        name: str = "wire_money"
        description: str = "Wires money to an account."
        risk_tier: ClassVar[str] = "sensitive"

        def _run(self, account: str) -> str:
            return "sent"

    class Search(BaseTool):
        name: str = "search"
        description: str = "Searches."

        def _run(self, q: str) -> str:
            return q

    tool = WireMoney()
    assert risk.tool_label(tool) == "sensitive"
    assert risk.tool_label(tool.to_structured_tool()) == "sensitive"
    assert risk.tool_label(Search().to_structured_tool()) is None


# --- tasks.yaml labels ------------------------------------------------------------------------


def _label_executor(project: Path, label: str) -> Path:
    path = project / "crews" / "executor" / "config" / "tasks.yaml"
    text = path.read_text()
    assert "  guardrails: [not_empty, no_secrets]\n" in text
    path.write_text(
        text.replace(
            "  guardrails: [not_empty, no_secrets]\n",
            f"  guardrails: [not_empty, no_secrets]\n  risk: {label}\n",
            1,
        )
    )
    return path


def test_task_risk_label_in_tasks_yaml_is_accepted_and_read(project: Path) -> None:
    from crewkit import assembly

    _label_executor(project, "sensitive")
    settings = load_settings(project)
    spec = assembly.load_spec(settings, "executor")
    assert risk.task_labels(spec.tasks) == {"subtask": "sensitive"}
    assert risk.crew_label(spec) == "sensitive"
    assert risk.crew_label(assembly.load_spec(settings, "planner")) is None
    from crewai import Task

    config = {k: v for k, v in spec.tasks.data["subtask"].items() if k != "guardrails"}
    task = Task(config=config)  # what CrewBase does with the entry: CrewAI ignores `risk:`
    assert task.expected_output == config["expected_output"]
    a = risk.assess_subtask(settings, "Explain recursion", "reasoning", label=risk.crew_label(spec))
    assert a.tier == "sensitive"


def test_unknown_task_risk_label_is_a_config_error_at_its_line(project: Path) -> None:
    from crewkit import assembly

    path = _label_executor(project, "sensitve")
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "risk: sensitve" in text)
    with pytest.raises(ConfigError) as err:
        assembly.load_spec(load_settings(project), "executor")
    message = str(err.value)
    assert (
        message.startswith(f"crews/executor/config/tasks.yaml:{line}: ")
        and "did you mean 'sensitive'" in message
    )


def test_policy_may_be_the_settings_the_governance_config_or_its_risk_part(settings) -> None:
    text = "Pay $1,200 to John for the invoice"
    for policy in (settings, settings.governance, settings.governance.risk):
        assert risk.assess_subtask(policy, text, "reasoning").tier == "sensitive"
    medium = risk.Assessment("medium", ("x",), ())
    assert risk.human_check(settings.governance.risk, medium, "r", "s").rate == 0.5


def test_governance_tool_labels_may_be_globs() -> None:
    gov = _gov(tools={"send_*": "sensitive", "search*": "medium"})
    assert risk.assess_tool(gov, "send_sms", {"to": "team"}).tier == "sensitive"
    assert risk.assess_tool(gov, "search_web", {"q": "x"}).tier == "medium"
    assert risk.assess_tool(gov, "read_file", {"path": "x"}).tier == "low"
    assert risk.configured_tool_label(gov, "send_sms") == "sensitive"
