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
them to the run record (`routing`) and the audit log (`route`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crewkit import task_profile
from crewkit.errors import ConfigError

if TYPE_CHECKING:
    from crewkit import yamlfile
    from crewkit.settings import ModelEntry, ModelsConfig, Settings

Level = Literal["low", "medium", "high"]
LEVELS: tuple[str, ...] = ("low", "medium", "high")
STATIC = "static"
CHOICES: tuple[str, ...] = ("primary", "cheapest", "strongest")  # what `use:` may say besides a model
# The plan's task types (crewkit.plan.TaskType; a unit test keeps them equal). Roles of the role
# map other than manager and embedding are task types too (a crew of your own may use them).
TASK_TYPES: tuple[str, ...] = ("reasoning", "code", "vision")
NOT_TASK_ROLES = ("manager", "embedding")
NEEDS: dict[str, str] = {"vision": "vision"}  # task type -> the capability its model needs

# -- config (the `routing:` section of config/models.yaml) ---------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


OneOrMany = str | list[str]


def _as_list(value: OneOrMany | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


class RouteWhen(_Strict):
    """A rule's conditions; every one given must hold (none given: the rule always matches)."""

    task_type: OneOrMany | None = None  # reasoning | code | vision (or a list)
    role: OneOrMany | None = None  # the role that serves the subtask
    level: Level | list[Level] | None = None  # the complexity level: low | medium | high

    def matches(self, role: str, task_type: str, level: str) -> bool:
        for wanted, value in ((self.task_type, task_type), (self.role, role), (self.level, level)):
            allowed = _as_list(wanted)
            if allowed is not None and value not in allowed:
                return False
        return True

    def describe(self) -> str:
        parts = [
            f"{k} {'|'.join(_as_list(v) or [])}"
            for k, v in (("task_type", self.task_type), ("role", self.role), ("level", self.level))
            if v is not None
        ]
        return ", ".join(parts) or "any subtask"


class RouteRule(_Strict):
    when: RouteWhen = RouteWhen()
    use: str = Field(min_length=1)  # primary | cheapest | strongest | a model of the role's chain


class Policy(_Strict):
    """A named routing policy: first-match rules, then `default`."""

    description: str = ""
    rules: list[RouteRule] = Field(default_factory=list)
    default: str = Field("primary", min_length=1)  # the same choices as a rule's `use`


class Cooldown(_Strict):
    """LiteLLM router semantics: more than `allowed_fails` transient failures of a model within
    `window_s` seconds and it is skipped for `cooldown_s` seconds (per process)."""

    allowed_fails: Annotated[int, Field(ge=0, strict=True)] = 3
    window_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 60.0
    cooldown_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 60.0


class RoutingConfig(_Strict):
    """`routing:` in config/models.yaml. Missing: the static policy (each role's model first)."""

    policy: str = STATIC
    policies: dict[str, Policy] = Field(default_factory=dict)
    cooldown: Cooldown = Cooldown()
    budget_aware: bool = True  # take a cheaper model of the chain when the budget left is short

    @model_validator(mode="after")
    def _static_is_built_in(self) -> RoutingConfig:
        static = self.policies.get(STATIC)
        if static is not None and (static.rules or static.default != "primary"):
            raise ValueError(
                "policy 'static' is built in (the role's model, then its fallbacks) and takes no rules; "
                "give your rules another name"
            )
        if static is None:
            object.__setattr__(self, "policies", {STATIC: Policy(), **self.policies})
        return self

    def active(self) -> tuple[str, Policy]:
        return self.policy, self.policies[self.policy]


def task_types(cfg: ModelsConfig) -> list[str]:
    """What a rule's `task_type` may name: the plan's task types and the task-serving roles."""
    return list(dict.fromkeys([*TASK_TYPES, *(r for r in cfg.roles if r not in NOT_TASK_ROLES)]))


def role_for(cfg: ModelsConfig, task_type: str) -> str:
    """The role that serves a task type in the default flow: the role of that name, else the default."""
    return task_type if task_type in cfg.roles else cfg.default_role


def chain(cfg: ModelsConfig, role: str) -> list[str]:
    entry = cfg.roles[role]
    return [entry.model, *entry.fallbacks]


def check(cfg: ModelsConfig, doc: yamlfile.YamlDoc) -> None:
    """Cross-references of `routing:` (called by `crewkit.settings`): FILE:LINE ConfigErrors."""
    from crewkit.settings import suggest

    routing = cfg.routing
    if routing.policy not in routing.policies:
        raise ConfigError(
            f"{doc.where(('routing', 'policy'))}: routing policy '{routing.policy}' is not defined"
            f"{suggest(routing.policy, routing.policies)}; the policies are {', '.join(routing.policies)}"
        )
    known_types = task_types(cfg)
    chat_roles = [r for r in cfg.roles if r != "embedding"]
    for name, policy in routing.policies.items():
        base = ("routing", "policies", name)
        for i, rule in enumerate(policy.rules):
            loc = (*base, "rules", i)
            for t in _as_list(rule.when.task_type) or []:
                if t not in known_types:
                    raise ConfigError(
                        f"{doc.where((*loc, 'when', 'task_type'))}: rule {i + 1} of policy '{name}' names "
                        f"task type '{t}', which is not a task type{suggest(t, known_types)}; "
                        f"the task types are {', '.join(known_types)}"
                    )
            for r in _as_list(rule.when.role) or []:
                if r not in chat_roles:
                    raise ConfigError(
                        f"{doc.where((*loc, 'when', 'role'))}: rule {i + 1} of policy '{name}' names role "
                        f"'{r}', which is not a role{suggest(r, chat_roles)}; the roles are {', '.join(chat_roles)}"
                    )
            _check_use(
                cfg, doc, rule.use, (*loc, "use"), f"rule {i + 1} of policy '{name}'", _rule_roles(cfg, rule)
            )
        _check_use(cfg, doc, policy.default, (*base, "default"), f"the default of policy '{name}'", None)


def _rule_roles(cfg: ModelsConfig, rule: RouteRule) -> list[str] | None:
    """The roles a rule can apply to, when it says (by role or task type); None: any role."""
    roles = _as_list(rule.when.role)
    if roles is not None:
        return roles
    types = _as_list(rule.when.task_type)
    if types is not None:
        return list(dict.fromkeys(role_for(cfg, t) for t in types))
    return None


def _check_use(
    cfg: ModelsConfig,
    doc: yamlfile.YamlDoc,
    use: str,
    loc: tuple[Any, ...],
    what: str,
    roles: list[str] | None,
) -> None:
    from crewkit.settings import suggest

    if use in CHOICES:
        return
    if use not in cfg.models:
        raise ConfigError(
            f"{doc.where(loc)}: {what} uses '{use}', which is neither a model nor one of "
            f"{', '.join(CHOICES)}{suggest(use, [*CHOICES, *cfg.models])}"
        )
    chat_roles = [r for r in cfg.roles if r != "embedding"]
    if roles is None:
        if not any(use in chain(cfg, r) for r in chat_roles):
            raise ConfigError(
                f"{doc.where(loc)}: {what} uses model '{use}', which no role's chain holds (model + fallbacks); "
                f"add it to a role's fallbacks in 'roles:' (a route never leaves the role map)"
            )
        return
    for role in roles:
        names = chain(cfg, role)
        if use not in names:
            raise ConfigError(
                f"{doc.where(loc)}: {what} uses model '{use}', which is not in role '{role}''s chain "
                f"({', '.join(names)}); add it to roles.{role}.fallbacks or use one of those"
                f"{suggest(use, names)}"
            )


# -- the complexity estimate ------------------------------------------------------------------------

MEDIUM_AT = 0.3  # score from which a subtask is "medium"
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

    Five features, each in [0, 1] and non-decreasing as the text grows, weighted by `WEIGHTS`:
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
    The level is `low` below MEDIUM_AT (0.3), `high` from HIGH_AT (0.6), else `medium`.
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
    from crewkit.settings import price_per_1k

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
        from crewkit.settings import suggest

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
