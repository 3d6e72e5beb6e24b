"""Task-based routing: which model of a role's chain answers a subtask, and why.

The executor routes each subtask of a plan before its crew runs (`decide`): from the subtask's
task type, a deterministic complexity estimate of its text (`estimate`), the active routing
policy of `config/models.yaml` (`routing:`) and what is left of the run's budget. A route never
leaves the role map: it picks one model of the role's chain (its `model` plus `fallbacks`) to
try first; the rest of the chain follows in its order, as fallbacks (`Route.order`).

    routing:
      policy: by-complexity            # the active policy (an A/B arm may name another)
      policies:
        static: {}                     # built in: the role's model, then its fallbacks
        by-complexity:
          rules:                       # first match wins
            - when: {level: low}       # task_type, role, level: a value or a list; all must hold
              use: cheapest            # primary | cheapest | strongest | a model of the chain
          default: primary             # when no rule matches
      cooldown: {allowed_fails: 3, window_s: 60, cooldown_s: 60}   # crewkit.models.cooldown

`cheapest` and `strongest` compare the chain's models by price (`price_per_1k`: the dearer of
input and output per 1k tokens; a dearer model counts as the stronger), then by how many
capabilities they have; a tie goes to the earlier model of the chain. A rule naming a model
applies only to roles whose chain holds it (checked at load: a rule that names a role or task
type must name a model of that role's chain). A subtask that needs a capability (vision) is
routed among the models that have it.

Budget: when the run's budget left (the tightest limited scope of the call: per run, role,
tenant, total; `budget_left`) cannot cover an estimated call on the chosen model, the route
takes the dearest model of the chain that fits, else the cheapest, and says so in its reason.

Every decision is a `Route` whose `reason` says which rule chose what; the default flow writes
them to the run record (`routing`) and the audit log (`route`). The config models (`RoutingConfig`,
`Policy`, `RouteRule`, `Cooldown`) and their load-time checks are in `crewkit.settings`, with the
rest of config/models.yaml; this module re-exports them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crewkit import task_profile
from crewkit.errors import ConfigError

# The config models live with the rest of config/models.yaml in crewkit.settings (which imports
# nothing of the engine); they are re-exported here, beside the decision that reads them.
from crewkit.settings import (  # noqa: F401 - re-exported
    CHOICES,
    LEVELS,
    NOT_TASK_ROLES,
    STATIC,
    TASK_TYPES,
    Cooldown,
    Level,
    Policy,
    RouteRule,
    RouteWhen,
    RoutingConfig,
    chain,
    check_routing,
    price_per_1k,
    role_for,
    suggest,
    task_types,
)

if TYPE_CHECKING:
    from crewkit.settings import ModelEntry, Settings

NEEDS: dict[str, str] = {"vision": "vision"}  # task type -> the capability its model needs

# -- the complexity estimate ------------------------------------------------------------------------

MEDIUM_AT = 0.25  # score from which a subtask is "medium"
HIGH_AT = 0.6  # ... and "high"
WEIGHTS: dict[str, float] = {"length": 0.25, "parts": 0.15, "code": 0.2, "constraints": 0.2, "reasoning": 0.2}

_CODE_TEXT = re.compile(
    r"```|\bdef\s+\w+\s*\(|\bclass\s+\w+\s*[:(]|\bfunction\s*\w*\s*\(|^\s*(?:import|from)\s+\w|[{};]\s*$",
    re.M,
)
_CONSTRAINT = re.compile(
    r"(?i)\b(?:must(?:\s+not)?|should(?:\s+not)?|shall|without|at\s+(?:least|most)|no\s+more\s+than|"
    r"no\s+less\s+than|exactly|only|ensure|guarantee|handle|within|less\s+than|fewer\s+than|under\s+\d+|"
    r"do\s+not|don't|never|always|required?|requirements?|constraints?|limit(?:ed)?)\b|"
    r"\bO\([^)]{1,12}\)|\b\d+\s*(?:ms|s|seconds?|minutes?|lines?|words?|characters?|chars|bytes|[KMG]B|%)(?!\w)|"
    r"必须|不能|不得|不要|不可|至少|最多|不超过|不少于|确保|保证|只能|仅|要求|限制|以内|务必|禁止"
)
_REASONING = re.compile(
    r"(?i)\b(?:prove|proof|derive|derivation|why|analy[sz]e|analysis|compare|comparison|trade-?offs?|"
    r"justify|reason(?:ing)?|step[- ]by[- ]step|optimi[sz]e|optimal|algorithm|complexity|design|"
    r"architecture|evaluate|debug|concurren(?:t|cy)|thread-?safe|distributed|edge\s+cases?|correctness|"
    r"invariants?|formal(?:ly)?|recursi(?:on|ve)|probability|statistic(?:s|al)|security|scal(?:e|able|ability))\b|"
    r"证明|推导|为什么|分析|比较|对比|权衡|论证|推理|逐步|优化|最优|算法|复杂度|设计|架构|评估|调试|并发|线程安全|"
    r"分布式|边界|正确性|不变量|递归|概率|统计|安全|扩展"
)


@dataclass(frozen=True)
class Complexity:
    score: float  # 0..1
    level: str  # low | medium | high
    features: dict[str, float] = field(default_factory=dict)  # each 0..1, before weighting


def _tokens(text: str) -> int:
    """Tokens without a tokenizer, as budgets count them: ASCII chars / 4, one per other character."""
    from crewkit.governance.budget import _text_tokens

    return _text_tokens(text)


def estimate(description: str, task_type: str = "reasoning") -> Complexity:
    """A deterministic complexity estimate of a subtask: a score in [0, 1] and a level.

    Five features, each in [0, 1], weighted by `WEIGHTS`; adding words, asks, constraints or
    reasoning never lowers one (except parts where text turns into a list: then the list's items
    are the parts, as `task_profile` counts them):
    - length: tokens of the text (English ~4 characters a token, Chinese one a character),
      log-scaled: log2(1 + tokens/20) / 4 (20 tokens 0.25, 60 tokens 0.5, 300 tokens 1);
    - parts: the separate asks in the text (`crewkit.task_profile.split_parts`: list items,
      questions, imperative sentences, "..., and explain it"): (parts - 1) / 3;
    - code: 0.5 for a code task (task type `code`, or a text asking for code), plus 0.5 when
      the text holds code itself (a fenced block, `def f(`, `class X:`, an import);
    - constraints: words that restrict the answer ("must", "without", "at most", "only",
      "O(n)", "100 ms"; 必须, 不能, 至少, 不超过, 确保 ...): matches / 4;
    - reasoning: words that ask for reasoning ("prove", "why", "analyse", "trade-offs",
      "algorithm", "thread-safe", "edge cases"; 证明, 为什么, 分析, 权衡, 算法, 并发 ...): matches / 3.
    The level is `low` below MEDIUM_AT (0.25), `high` from HIGH_AT (0.6), else `medium`.
    """
    text = description or ""
    tokens = _tokens(text)
    parts = len(task_profile.split_parts(text)) if text.strip() else 1
    code = 0.0
    if task_type == "code" or task_profile.asks_for_code(text):
        code += 0.5
    if _CODE_TEXT.search(text):
        code += 0.5
    features = {
        "length": min(1.0, math.log2(1 + tokens / 20) / 4),
        "parts": min(1.0, max(0, parts - 1) / 3),
        "code": min(1.0, code),
        "constraints": min(1.0, len(_CONSTRAINT.findall(text)) / 4),
        "reasoning": min(1.0, len(_REASONING.findall(text)) / 3),
    }
    score = round(min(1.0, sum(WEIGHTS[k] * v for k, v in features.items())), 3)
    return Complexity(score, level_of(score), {k: round(v, 3) for k, v in features.items()})


def level_of(score: float) -> str:
    return "high" if score >= HIGH_AT else "medium" if score >= MEDIUM_AT else "low"


# -- the decision ------------------------------------------------------------------------------------

PROMPT_OVERHEAD_TOKENS = 600  # what an agent's call adds to the subtask text: role, goal, format


@dataclass(frozen=True)
class Route:
    """Which model answers a subtask first (`model`), the order the role's chain is tried in, and why."""

    subtask: str
    task_type: str
    role: str
    complexity: float
    level: str
    model: str
    order: tuple[str, ...]
    reason: str
    policy: str = STATIC

    def as_record(self) -> dict[str, Any]:
        """The run record's `routing` entry (and the audit record's detail)."""
        return {
            "subtask": self.subtask,
            "task_type": self.task_type,
            "role": self.role,
            "complexity": self.complexity,
            "level": self.level,
            "model": self.model,
            "reason": self.reason,
            "policy": self.policy,
            "order": list(self.order),
        }


def call_estimate(entry: ModelEntry, description: str) -> float:
    """USD one call on `entry` may cost for this subtask, as the budget guard reserves it: the
    prompt (the text plus an agent's framing, PROMPT_OVERHEAD_TOKENS) and the model's max output."""
    from crewkit.governance.budget import max_output_tokens, prompt_tokens

    price = entry.price
    if price.input_per_mtok == 0 and price.output_per_mtok == 0:
        return 0.0
    tokens_in = prompt_tokens(description) + PROMPT_OVERHEAD_TOKENS
    tokens_out = max_output_tokens(entry.params, entry.context)
    return (tokens_in * price.input_per_mtok + tokens_out * price.output_per_mtok) / 1_000_000


def _strength(entry: ModelEntry) -> tuple[float, int]:
    return price_per_1k(entry), len(entry.capabilities)


def pick(use: str, names: Sequence[str], models: dict[str, ModelEntry]) -> str | None:
    """The model `use` names among `names` (a chain, in order), or None when it is not there."""
    if not names:
        return None
    if use == "primary":
        return names[0]
    if use == "cheapest":
        return min(enumerate(names), key=lambda p: (_strength(models[p[1]])[0], p[0]))[1]
    if use == "strongest":
        return max(enumerate(names), key=lambda p: (*_strength(models[p[1]]), -p[0]))[1]
    return use if use in names else None


def decide(
    settings: Settings,
    role: str,
    task_type: str,
    description: str,
    *,
    budget_left: float | None = None,
    subtask: str = "",
    policy: str | None = None,
) -> Route:
    """Route one subtask served by `role` under the active policy (or `policy`)."""
    from crewkit.governance.budget import usd

    cfg = settings.models
    routing = cfg.routing
    name = policy or routing.policy
    if name not in routing.policies:
        raise ConfigError(
            f"{settings.where('routing', 'policy')}: routing policy '{name}' is not defined"
            f"{suggest(name, routing.policies)}; the policies are {', '.join(routing.policies)}"
        )
    rules = routing.policies[name]
    settings.role(role)  # an unknown role: a ConfigError naming the roles
    names = chain(cfg, role)
    models = cfg.models
    cx = estimate(description, task_type)
    need = NEEDS.get(task_type)
    eligible = [n for n in names if need is None or models[n].can(need)] or names  # type: ignore[arg-type]
    choice, why = None, ""
    for i, rule in enumerate(rules.rules, start=1):
        if rule.when.matches(role, task_type, cx.level):
            choice = pick(rule.use, eligible, models)
            if choice is not None:
                why = f"rule {i} ({rule.when.describe()}) -> {rule.use}"
                break
    if choice is None:
        choice = pick(rules.default, eligible, models) or eligible[0]
        why = (
            "the role's model first, then its fallbacks"
            if name == STATIC
            else f"no rule matched -> {rules.default}"
        )
    reason = f"{cx.level} complexity ({cx.score:.2f}); policy '{name}': {why}"
    if len(names) == 1:
        reason += f"; role '{role}' has one model"
    if budget_left is not None and routing.budget_aware:
        cost = call_estimate(models[choice], description)
        if cost > budget_left + 1e-12:
            costs = {n: call_estimate(models[n], description) for n in eligible}
            cheaper = sorted((n for n in eligible if costs[n] < cost), key=lambda n: -costs[n])
            fits = [n for n in cheaper if costs[n] <= budget_left + 1e-12]
            short = f"budget: {usd(budget_left)} left, a call on {choice} may cost ~{usd(cost)}"
            if fits:
                choice = fits[0]
                reason += f"; {short} -> {choice} (~{usd(costs[choice])})"
            elif cheaper:
                choice = cheaper[-1]
                reason += (
                    f"; {short} -> the cheapest, {choice} (~{usd(costs[choice])}), which may not fit either "
                    "(the budget guard refuses a call that does not)"
                )
            else:
                reason += f"; {short} and no model of the chain is cheaper (the budget guard decides)"
    order = (choice, *(n for n in names if n != choice))
    return Route(subtask, task_type, role, cx.score, cx.level, choice, order, reason, name)


def budget_left(
    settings: Settings, store: Any, run_id: str | None, tenant: str | None, role: str
) -> float | None:
    """USD left for a call of `role` in this run: the tightest of its limited budgets (per run,
    role, tenant, total: limit + granted - spent - held), None when none is limited."""
    from crewkit.governance.budget import Budgets

    budgets = Budgets(store, settings)
    if not budgets.limited:
        return None
    return budgets.remaining(budgets.scopes(run_id, tenant, role))
