"""Risk tiers: which subtasks and tool calls a person must see before they happen.

Every subtask and every tool call gets a tier, `low`, `medium` or `sensitive`: the highest of
- the rules in `config/governance.yaml` (`risk.rules`), matched on the task type, the tools it
  uses and the data classes found in its text or arguments (`crewkit.governance.data_classes`),
- its explicit labels: a task's `risk:` in tasks.yaml, a tool class's `risk_tier` attribute,
  `risk.tools:` in governance.yaml,
- `risk.default_tier`.
A label can raise a tier, never lower what the rules found: a `low` label on a task that moves
money stays `sensitive`.

`human_check` then says whether a person decides: every sensitive one; a sampled share of the
medium ones (`approvals.sample_rate`, default 50%), drawn from the run id and step so the same
run draws the same way on resume and anyone can recompute the draw from the record:
`int.from_bytes(sha256(f"{run_id}\\n{step}").digest()[:8], "big") / 2**64 < sample_rate`;
low ones never (their automatic review is the verifier and the guardrails).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from crewkit.errors import ConfigError
from crewkit.governance import data_classes
from crewkit.settings import TIERS, GovernanceConfig, RiskPolicy, Settings, suggest

Tier = Literal["low", "medium", "sensitive"]


@dataclass(frozen=True)
class Assessment:
    tier: Tier
    reasons: tuple[str, ...]  # human lines that explain the tier, most severe first
    data_classes: tuple[str, ...]


@dataclass(frozen=True)
class HumanCheck:
    required: bool
    why: str
    draw: float | None  # the seeded draw in [0, 1) (medium tier only)
    rate: float | None  # the share of this tier a person sees (1.0 sensitive, sample_rate medium, 0.0 low)


def rank(tier: str) -> int:
    return TIERS.index(tier)


def highest(*tiers: str) -> Tier:
    return max(tiers, key=rank)  # type: ignore[return-value]


Policy = GovernanceConfig | Settings | RiskPolicy


def _governance(policy: Policy) -> GovernanceConfig:
    """The settings, their governance config, or just the `risk:` part (default approvals)."""
    if isinstance(policy, Settings):
        return policy.governance
    if isinstance(policy, RiskPolicy):
        return GovernanceConfig(risk=policy)
    return policy


def _check_label(label: str | None, what: str) -> str | None:
    if label is None or label == "":
        return None
    if label not in TIERS:
        raise ConfigError(
            f"{what}: risk tier '{label}' is not a tier{suggest(label, TIERS)}; use one of {', '.join(TIERS)}"
        )
    return label


def tool_label(tool: Any) -> str | None:
    """A tool's own label: its `risk_tier` attribute (class or instance), or None. A CrewAI
    `CrewStructuredTool` (what CrewAI's tool hooks see) is read through to its BaseTool."""
    if tool is not None and getattr(tool, "risk_tier", None) is None:
        tool = getattr(tool, "_original_tool", None)  # CrewAI's CrewStructuredTool wraps the BaseTool
    label = getattr(tool, "risk_tier", None) if tool is not None else None
    if label is None or not isinstance(label, str):
        return None
    return _check_label(label, f"tool {getattr(tool, 'name', type(tool).__name__)!r}")


def configured_tool_label(policy: Policy, tool_name: str) -> str | None:
    """`risk.tools` in governance.yaml: the label of this tool name (keys may be globs, 'send_*';
    the highest of those that match)."""
    tools = _governance(policy).risk.tools
    if tool_name in tools:
        return tools[tool_name]
    matched = [tier for pattern, tier in tools.items() if fnmatch.fnmatchcase(tool_name, pattern)]
    return highest(*matched) if matched else None


TASK_LABEL_KEY = "risk"  # a tasks.yaml entry's label: `risk: sensitive`


def task_labels(tasks: Any) -> dict[str, str]:
    """The `risk:` labels of a crew's tasks.yaml (a `YamlDoc`), by task name. A value that is not
    a tier is a ConfigError at its line. CrewAI ignores the key (it is not a Task field)."""
    labels: dict[str, str] = {}
    for key, info in (tasks.data or {}).items():
        if not isinstance(info, dict) or info.get(TASK_LABEL_KEY) is None:
            continue
        value = info[TASK_LABEL_KEY]
        if not isinstance(value, str) or value not in TIERS:
            raise ConfigError(
                f"{tasks.where((key, TASK_LABEL_KEY))}: task '{key}' has risk '{value}', which is not a tier"
                f"{suggest(value, TIERS)}; use one of {', '.join(TIERS)}"
            )
        labels[str(key)] = value
    return labels


def crew_label(spec: Any) -> str | None:
    """The highest `risk:` label among a crew's tasks (a `CrewSpec`), or None: the label of the
    work that crew does, for `assess_subtask(..., label=...)`."""
    labels = task_labels(spec.tasks)
    return highest(*labels.values()) if labels else None


# A contribution to a tier: (tier, reason line).
_Factor = tuple[str, str]


def _decide(gov: GovernanceConfig, factors: list[_Factor], hits: list[data_classes.Hit]) -> Assessment:
    default = gov.risk.default_tier
    tier = highest(default, *(t for t, _ in factors))
    reasons = [line for t, line in factors if t == tier]
    reasons += [
        line for t, line in factors if t != tier and line.startswith("label") and rank(t) < rank(tier)
    ]
    if not reasons:
        reasons = [f"no rule or label applies; default tier {default}"]
    found = tuple(c for c in data_classes.DATA_CLASSES if any(h.data_class == c for h in hits))
    return Assessment(tier, tuple(dict.fromkeys(reasons)), found)


def _rule_factors(
    gov: GovernanceConfig, task_type: str | None, tools: Sequence[str], hits: list[data_classes.Hit]
) -> list[_Factor]:
    factors: list[_Factor] = []
    for rule in gov.risk.rules:
        when = rule.when
        if when.task_type is not None and when.task_type != task_type:
            continue
        matched_tools = [t for t in tools if when.tool is not None and fnmatch.fnmatchcase(t, when.tool)]
        if when.tool is not None and not matched_tools:
            continue
        matched_hits = [h for h in hits if h.data_class == when.data_class]
        if when.data_class is not None and not matched_hits:
            continue
        parts = []
        if matched_hits:
            evidence = ", ".join(dict.fromkeys(h.evidence for h in matched_hits[:2]))
            parts.append(f"{data_classes.DESCRIPTIONS[when.data_class]} ({evidence})")  # type: ignore[index]
        if matched_tools:
            parts.append(f"uses tool {', '.join(matched_tools)}")
        if when.task_type is not None:
            parts.append(f"is a {task_type} task")
        factors.append((rule.tier, "; ".join(parts)))
    return factors


def _label_factor(label: str | None, rules_tier: str, subject: str) -> list[_Factor]:
    if label is None:
        return []
    if rank(label) < rank(rules_tier):
        return [(label, f"label '{label}' on {subject} does not lower what the rules found ({rules_tier})")]
    return [(label, f"{subject} is labelled {label}")]


def assess_subtask(
    policy: Policy,
    description: str,
    task_type: str,
    tools: Sequence[str] = (),
    label: str | None = None,
) -> Assessment:
    """The tier of one subtask: its text's data classes, its type, its tools, its label.

    The `risk.tools` labels of the tools it uses count as labels of the subtask."""
    gov = _governance(policy)
    label = _check_label(label, "task")
    hits = data_classes.detect(description or "")
    factors = _rule_factors(gov, task_type, tools, hits)
    rules_tier = highest(gov.risk.default_tier, *(t for t, _ in factors))
    factors += _label_factor(label, rules_tier, "the task")
    for tool in tools:
        label_of_tool = configured_tool_label(gov, tool)
        if label_of_tool is not None:
            factors += _label_factor(label_of_tool, rules_tier, f"tool {tool}")
    return _decide(gov, factors, hits)


def tool_text(tool_name: str, arguments: Any) -> str:
    """What the detectors read for a tool call: its name as words and its arguments' values."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", tool_name or "").replace("_", " ").replace("-", " ")
    lines = [words.strip()]

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v, key)
        elif value is not None:
            lines.append(f"{key}: {value}" if key else str(value))

    walk(arguments)
    return "\n".join(lines)


_TOOL_ACTIONS = re.compile(
    r"(?i)^(?:send|sender|email|mail|mailer|post|poster|publish|publisher|tweet|upload|uploader|write|writer|"
    r"save|delete|remove|rm|drop|deploy|deployer|push|exec|execute|executor|shell|bash|terminal|command|"
    r"notify|notifier|sms|slack)$"
)
_TOOL_ACTION_WORDS = {"email", "mail", "sms", "slack"}  # nouns that need a verb beside them
_TOOL_MONEY = re.compile(
    r"(?i)^(?:transfer|pay|payout|wire|remit|refund|withdraw|charge|transact|transaction)$"
)


def _tool_name_hits(tool_name: str) -> list[data_classes.Hit]:
    """A tool's name says what it does ('send_email', 'FileWriterTool', 'transfer_funds')."""
    words = tool_text(tool_name, None).lower().split()
    hits = []
    if any(_TOOL_MONEY.match(w) for w in words):
        hits.append(data_classes.Hit("money_movement", f"tool name {tool_name}"))
    actions = [w for w in words if _TOOL_ACTIONS.match(w)]
    if actions and not set(actions) <= _TOOL_ACTION_WORDS or {"send", "sender"} & set(words):
        hits.append(data_classes.Hit("external_side_effect", f"tool name {tool_name}"))
    return hits


def assess_tool(policy: Policy, tool_name: str, arguments: dict, label: str | None = None) -> Assessment:
    """The tier of one tool call: its name and arguments' data classes, the rules naming the
    tool, its labels (`label`: the tool's own `risk_tier`; and `risk.tools` in governance.yaml).

    Rules with a `task_type` condition do not apply to tool calls."""
    gov = _governance(policy)
    label = _check_label(label, f"tool {tool_name!r}")
    hits = _tool_name_hits(tool_name) + data_classes.detect(tool_text("", arguments))
    hits = list(dict.fromkeys(hits))
    factors = _rule_factors(gov, None, [tool_name], hits)
    rules_tier = highest(gov.risk.default_tier, *(t for t, _ in factors))
    factors += _label_factor(label, rules_tier, f"tool {tool_name}")
    configured = configured_tool_label(gov, tool_name)
    if configured is not None:
        factors += _label_factor(configured, rules_tier, f"tool {tool_name} (governance.yaml)")
    return _decide(gov, factors, hits)


def draw(run_id: str, step: str) -> float:
    """The seeded draw in [0, 1): the first 8 bytes of sha256(run_id + newline + step)."""
    digest = hashlib.sha256(f"{run_id}\n{step}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def human_check(policy: Policy, assessment: Assessment, run_id: str, step: str) -> HumanCheck:
    """Whether a person decides: sensitive always, medium when the seeded draw < sample_rate.
    The decision and its draw are audited when a run is recording (`runtime.trail`)."""
    from crewkit.runtime import trail

    check = _human_check(policy, assessment, run_id, step)
    trail.note(
        "risk.decision",
        step,
        {
            "tier": assessment.tier,
            "reasons": list(assessment.reasons),
            "human": check.required,
            "why": check.why,
            "draw": check.draw,
            "rate": check.rate,
        },
    )
    return check


def _human_check(policy: Policy, assessment: Assessment, run_id: str, step: str) -> HumanCheck:
    gov = _governance(policy)
    if assessment.tier == "sensitive":
        return HumanCheck(True, "sensitive: a person approves every one", None, 1.0)
    if assessment.tier == "medium":
        rate = gov.approvals.sample_rate
        value = draw(run_id, step)
        if value < rate:
            return HumanCheck(
                True, f"medium: sampled for a person (draw {value:.4f} < rate {rate:g})", value, rate
            )
        return HumanCheck(
            False, f"medium: automatic review only (draw {value:.4f} >= rate {rate:g})", value, rate
        )
    return HumanCheck(False, "low: automatic review", None, 0.0)


def canonical_args(arguments: Any) -> str:
    """Arguments as canonical JSON (sorted keys, no spaces), the basis of a tool call's key."""
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
