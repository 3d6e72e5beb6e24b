"""Load and validate every config file once, at the edge.

`load_settings(project_dir, profile)` reads `config/models.yaml`, `config/governance.yaml`,
`config/profiles.yaml`, `config/memory.yaml`, `config/experiments.yaml`, `config/operations.yaml` and `config/schedules.yaml` into pydantic models (extra keys forbidden),
checks the cross-references inside them (a role naming an unknown model, an allowlist naming an unknown role, an unknown
profile) and returns one frozen `Settings` under the chosen deployment profile. It imports nothing of the engine: what
depends on registries (providers, guardrails) is checked next to them, from one start-up
function (`crewkit.runtime.startup.start`). Every error is a
`ConfigError` whose message starts with FILE:LINE and suggests the close match.

This is the only module that reads YAML config or environment variables; everything inward
receives typed objects.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from crewkit import yamlfile
from crewkit.errors import ConfigError
from crewkit.evaluation.experiments import ExperimentsConfig, check_config
from crewkit.memory.config import MemoryConfig
from crewkit.operations import OperationsConfig
from crewkit.scheduling import config as schedule_config
from crewkit.scheduling.config import SchedulesConfig

Capability = Literal["text", "tools", "vision", "embedding"]

# What each built-in role needs from its model. A gap is an explicit, reported degradation
# (`crewkit models list` shows it; a call that really needs it fails with CapabilityError).
ROLE_NEEDS: dict[str, Capability] = {
    "reasoning": "text",
    "code": "text",
    "vision": "vision",
    "manager": "tools",
    "embedding": "embedding",
}
REQUIRED_ROLES = tuple(ROLE_NEEDS)

# Telemetry and tracing are off unless the user turns them on in .env or the environment.
TELEMETRY_OFF = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "CREWAI_DISABLE_TRACKING": "true",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Strict):
    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)


class ModelEntry(_Strict):
    """One named model: where it runs, what it can do, what it costs."""

    provider: str
    model: str | None = None
    file: str | None = None
    tokenizer: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    context: int = Field(8192, gt=0)
    capabilities: list[Capability] = Field(default_factory=lambda: ["text"])
    price: Price = Price()
    params: dict[str, Any] = Field(default_factory=dict)

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities


class RoleEntry(_Strict):
    model: str
    fallbacks: list[str] = Field(default_factory=list)


# --- routing (the `routing:` section of config/models.yaml; crewkit.models.routing decides) ----
# A policy's rules pick which model of a role's chain (model + fallbacks) a subtask gets first.
Level = Literal["low", "medium", "high"]
LEVELS: tuple[str, ...] = ("low", "medium", "high")
STATIC = "static"
CHOICES: tuple[str, ...] = ("primary", "cheapest", "strongest")  # what `use:` may say besides a model
# The plan's task types (crewkit.plan.TaskType; a unit test keeps them equal). Roles of the role
# map other than manager and embedding are task types too (a crew of your own may use them).
TASK_TYPES: tuple[str, ...] = ("reasoning", "code", "vision")
NOT_TASK_ROLES = ("manager", "embedding")


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


def check_routing(cfg: ModelsConfig, doc: yamlfile.YamlDoc) -> None:
    """Cross-references of `routing:`: the active policy, rules' task types, roles and models."""
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


class ModelsConfig(_Strict):
    models: dict[str, ModelEntry]
    roles: dict[str, RoleEntry]
    default_role: str = "reasoning"
    routing: RoutingConfig = RoutingConfig()  # which model of a role's chain a subtask gets first


class GuardrailPolicy(_Strict):
    max_retries: int = Field(2, ge=0, le=10)


class VerifierPolicy(_Strict):
    max_rounds: int = Field(2, ge=1, le=10)


# The Guard step's checks when config/governance.yaml does not list them (README, "Config reference").
DEFAULT_OUTPUT_GUARDRAILS = ("not_empty", "no_secrets", "no_prompt_injection")


# Risk tiers, lowest first (`crewkit.governance.risk`). A tier is the highest any rule, label
# or the default gives; a label can raise a tier, never lower what the rules found.
Tier = Literal["low", "medium", "sensitive"]
TIERS: tuple[str, ...] = ("low", "medium", "sensitive")
# The data classes `crewkit.governance.data_classes` detects (a unit test keeps the two equal).
DataClass = Literal[
    "payment", "bank_details", "money_movement", "credentials", "personal_data", "external_side_effect"
]


class RiskWhen(_Strict):
    """A rule's conditions; every one given must hold."""

    task_type: str | None = None  # reasoning | code | vision, or a task type of your crews
    tool: str | None = None  # a tool name or a glob ('send_*'); a subtask matches if any tool does
    data_class: DataClass | None = None

    @model_validator(mode="after")
    def _has_a_condition(self) -> RiskWhen:
        if self.task_type is None and self.tool is None and self.data_class is None:
            raise ValueError(
                "a rule needs at least one condition (task_type, tool or data_class); "
                "use 'default_tier' for a tier that applies to everything"
            )
        return self


class RiskRule(_Strict):
    when: RiskWhen
    tier: Tier


def _default_risk_rules() -> list[RiskRule]:
    sensitive = ("payment", "bank_details", "money_movement", "credentials")
    medium = ("personal_data", "external_side_effect")
    return [RiskRule(when=RiskWhen(data_class=c), tier="sensitive") for c in sensitive] + [
        RiskRule(when=RiskWhen(data_class=c), tier="medium") for c in medium
    ]


class RiskPolicy(_Strict):
    """`risk:` in governance.yaml. Writing `rules:` replaces the built-in list."""

    default_tier: Tier = "low"
    rules: list[RiskRule] = Field(default_factory=_default_risk_rules)
    tools: dict[str, Tier] = Field(default_factory=dict)  # tool name (or glob, "send_*") -> label


class ApprovalPolicy(_Strict):
    """`approvals:` in governance.yaml: who decides, how many medium checks a person sees."""

    sample_rate: float = Field(0.5, ge=0, le=1)  # share of medium-tier checks sent to a person
    # tier -> the people who may decide; a tier not listed: anyone but the requester
    approvers: dict[Tier, list[str]] = Field(default_factory=dict)
    allow_self_approval: bool = False
    expires_after_hours: float = Field(24, gt=0)
    on_expiry: Literal["reject", "approve"] = "reject"  # 'approve' applies to medium only
    on_reject: Literal["end", "rework"] = "end"


class GovernanceConfig(_Strict):
    guardrails: GuardrailPolicy = GuardrailPolicy()
    verifier: VerifierPolicy = VerifierPolicy()
    output_guardrails: list[str] = Field(default_factory=lambda: list(DEFAULT_OUTPUT_GUARDRAILS))
    risk: RiskPolicy = RiskPolicy()
    approvals: ApprovalPolicy = ApprovalPolicy()
    # role (a role-map role, or an agent's `role` text) -> the tools (names or globs) its agents
    # may call; a role not listed may call any tool its agent has.
    tool_allowlist: dict[str, list[str]] = Field(default_factory=dict)


# --- deployment profiles (config/profiles.yaml) ---------------------------------------------
Usd = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]  # a number: `true` or "5" is an error
NationalId = Literal["us_ssn", "cn_resident_id", "uk_nino"]
NATIONAL_IDS: tuple[str, ...] = ("us_ssn", "cn_resident_id", "uk_nino")


class Slo(_Strict):
    p99_ms: float = Field(gt=0, strict=True)
    availability: float = Field(gt=0, le=1, strict=True)
    error_rate: float = Field(ge=0, le=1, strict=True)


class AlertSinks(_Strict):
    """Where budget alerts go besides the log and the audit log."""

    file: str | None = None  # a JSONL file (relative to the project), one alert per line
    webhook: str | None = None  # an http(s) URL that gets each alert as a JSON POST

    @model_validator(mode="after")
    def _webhook_is_http(self) -> AlertSinks:
        if self.webhook is not None and not re.match(r"^https?://[^\s/]+", self.webhook):
            raise ValueError(f"webhook '{self.webhook}' is not an http(s) URL")
        return self


class BudgetPolicy(_Strict):
    """USD limits, checked before each model call. A limit left out is no limit."""

    per_run: Usd | None = None
    total: Usd | None = None  # all runs together, per period
    per_tenant: Usd | None = None  # each tenant, per period (tenant: the run's inputs, else 'default')
    tenants: dict[str, Usd] = Field(default_factory=dict)  # a tenant's own limit instead of per_tenant
    per_role: dict[str, Usd] = Field(default_factory=dict)  # role -> limit per period
    period: Literal["day", "month"] = "day"  # UTC
    alerts: list[Annotated[float, Field(gt=0, le=1, strict=True)]] = Field(
        default_factory=lambda: [0.5, 0.8, 1.0]
    )
    on_exceed: Literal["stop", "ask"] = "stop"  # ask: the run waits for a person to raise the limit
    sinks: AlertSinks = AlertSinks()


class AuditPolicy(_Strict):
    retention_days: float = Field(90, gt=0, strict=True)
    text: Literal["hash", "redacted"] = "hash"  # prompts and responses in the audit log


class PiiPolicy(_Strict):
    redact_hosted: bool = False  # mask PII in what is sent to a hosted model
    redact_records: bool = False  # mask PII in the run records written to output/ (stdout keeps the result)
    national_ids: list[NationalId] = Field(default_factory=lambda: list(NATIONAL_IDS))


class GroundingPolicy(_Strict):
    """Grounded verification: whether result claims the run's sources do not support fail the run."""

    require: bool = False  # true: more than max_unsupported unsupported claims fail the verification
    max_unsupported: int = Field(0, ge=0, strict=True)
    semantic: bool = False  # also ask the embedding role (paraphrases pass; ~20 ms per text)


class EvalWeights(_Strict):
    """How `crewkit eval compare` weighs a model's metrics under a profile (crewkit.evaluation.report).

    Each metric is first normalised to 0..1 (quality: the mean case score; latency and cost:
    limit / (limit + value), so 1 at zero, 0.5 at the profile's limit, 1/3 at twice it); the score
    is the weighted mean of the metrics the suite measured. At least one weight must be positive."""

    reasoning: float = Field(1.0, ge=0, allow_inf_nan=False, strict=True)
    tool_use: float = Field(1.0, ge=0, allow_inf_nan=False, strict=True)
    drift: float = Field(1.0, ge=0, allow_inf_nan=False, strict=True)
    latency: float = Field(1.0, ge=0, allow_inf_nan=False, strict=True)
    cost: float = Field(1.0, ge=0, allow_inf_nan=False, strict=True)

    @model_validator(mode="after")
    def _not_all_zero(self) -> EvalWeights:
        if not any((self.reasoning, self.tool_use, self.drift, self.latency, self.cost)):
            raise ValueError("eval weights are all zero; give at least one metric a positive weight")
        return self


class Profile(_Strict):
    """A deployment profile: targets, SLOs, budgets and the risk policy of one kind of deployment."""

    description: str = ""
    latency_ms: float = Field(gt=0, strict=True)  # target per model call
    price_ceiling_per_1k: Usd  # no role may use a model dearer than this (USD per 1k tokens)
    slo: Slo
    budgets: BudgetPolicy = BudgetPolicy()
    audit: AuditPolicy = AuditPolicy()
    pii: PiiPolicy = PiiPolicy()
    risk: RiskPolicy | None = None  # replaces governance.yaml's `risk:` under this profile
    approvals: ApprovalPolicy | None = None  # replaces governance.yaml's `approvals:`
    grounding: GroundingPolicy = GroundingPolicy()  # the verifier's check of claims against sources
    eval: EvalWeights = EvalWeights()  # weights of `crewkit eval compare`'s score under this profile


class ProfilesConfig(_Strict):
    default: str = "startup"
    profiles: dict[str, Profile]


# The brief's figures; config/profiles.yaml ships the same (a unit test keeps them equal).
BUILTIN_PROFILES: dict[str, Any] = {
    "default": "startup",
    "profiles": {
        "startup": {
            "description": "small team, fast and cheap",
            "latency_ms": 200,
            "price_ceiling_per_1k": 0.01,
            "slo": {"p99_ms": 500, "availability": 0.99, "error_rate": 0.01},
            "budgets": {"per_run": 0.5, "total": 20.0},
            "eval": {"reasoning": 1.0, "tool_use": 1.0, "drift": 0.5, "latency": 2.0, "cost": 2.0},
        },
        "mid-size": {
            "description": "several teams, an availability target",
            "latency_ms": 500,
            "price_ceiling_per_1k": 0.05,
            "slo": {"p99_ms": 1000, "availability": 0.999, "error_rate": 0.005},
            "budgets": {"per_run": 2.0, "total": 200.0, "per_tenant": 50.0},
            "eval": {"reasoning": 1.0, "tool_use": 1.0, "drift": 1.0, "latency": 1.0, "cost": 1.0},
            "pii": {"redact_hosted": True, "redact_records": True},
        },
        "enterprise": {
            "description": "regulated, with an SLA",
            "latency_ms": 1000,
            "price_ceiling_per_1k": 0.10,
            "slo": {"p99_ms": 2000, "availability": 0.9999, "error_rate": 0.001},
            "budgets": {"per_run": 10.0, "total": 2000.0, "per_tenant": 500.0, "on_exceed": "ask"},
            "pii": {"redact_hosted": True, "redact_records": True},
            "grounding": {"require": True, "max_unsupported": 0},
            "eval": {"reasoning": 3.0, "tool_use": 3.0, "drift": 2.0, "latency": 0.5, "cost": 0.5},
        },
    },
}


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    home: Path
    models: ModelsConfig
    governance: GovernanceConfig
    models_doc: yamlfile.YamlDoc
    governance_doc: yamlfile.YamlDoc | None = None
    profiles: ProfilesConfig = ProfilesConfig.model_validate(BUILTIN_PROFILES)
    profiles_doc: yamlfile.YamlDoc | None = None
    profile_name: str = "startup"

    @property
    def profile(self) -> Profile:
        return self.profiles.profiles[self.profile_name]

    def with_profile(self, name: str | None) -> Settings:
        """These settings under profile `name` (None: unchanged). Its `risk:` and `approvals:`,
        when given, replace governance.yaml's. An unknown name is a ConfigError naming the choices."""
        if name is None or name == self.profile_name:
            return self
        profile = _pick_profile(self.profiles, self.profiles_doc, name)
        governance = self.base_governance.model_copy(
            update={
                k: v for k, v in (("risk", profile.risk), ("approvals", profile.approvals)) if v is not None
            }
        )
        return replace(self, governance=governance, profile_name=name, _base=self.base_governance)

    _base: GovernanceConfig | None = None
    memory: MemoryConfig = MemoryConfig()  # config/memory.yaml (missing: the defaults)
    memory_doc: yamlfile.YamlDoc | None = None
    experiments: ExperimentsConfig = ExperimentsConfig()  # config/experiments.yaml (missing: none)
    experiments_doc: yamlfile.YamlDoc | None = None
    operations: OperationsConfig = OperationsConfig()  # config/operations.yaml (missing: the defaults)
    operations_doc: yamlfile.YamlDoc | None = None
    schedules: SchedulesConfig = SchedulesConfig()  # config/schedules.yaml (missing: no jobs)
    schedules_doc: yamlfile.YamlDoc | None = None

    @property
    def base_governance(self) -> GovernanceConfig:
        """governance.yaml as written, before a profile replaced sections of it."""
        return self._base or self.governance

    @property
    def output_dir(self) -> Path:
        return self.project_dir / "output"

    @property
    def crews_dir(self) -> Path:
        return self.project_dir / "crews"

    def role(self, name: str) -> RoleEntry:
        if name not in self.models.roles:
            raise ConfigError(
                f"{self.models_doc.where(('roles',))}: unknown role '{name}'"
                f"{suggest(name, self.models.roles)}; add it under 'roles:'"
            )
        return self.models.roles[name]

    def where(self, *loc: Any) -> str:
        return self.models_doc.where(loc)


def _pick_profile(cfg: ProfilesConfig, doc: yamlfile.YamlDoc | None, name: str) -> Profile:
    if name not in cfg.profiles:
        where = doc.where(("profiles",)) if doc is not None else "config/profiles.yaml"
        raise ConfigError(
            f"{where}: unknown profile '{name}'{suggest(name, cfg.profiles)}; "
            f"the profiles are {', '.join(cfg.profiles)}"
        )
    return cfg.profiles[name]


def price_per_1k(entry: ModelEntry) -> float:
    """A model's price per 1k tokens as a profile's ceiling reads it: the dearer of input and output."""
    return max(entry.price.input_per_mtok, entry.price.output_per_mtok) / 1000


def price_warnings(settings: Settings) -> list[str]:
    """Roles (and fallbacks) mapped to a model dearer than the profile's price ceiling: reported by
    `crewkit config check` and logged at start-up, not refused (a hosted model's missing key is
    the error a user must see first; the ceiling is a target of the deployment)."""
    profile, name = settings.profile, settings.profile_name
    where = settings.profiles_doc.where(("profiles", name)) if settings.profiles_doc else "built-in profiles"
    out = []
    for role, entry in settings.models.roles.items():
        for i, model in enumerate([entry.model, *entry.fallbacks]):
            price = price_per_1k(settings.models.models[model])
            if price > profile.price_ceiling_per_1k + 1e-12:
                loc = ("roles", role, "model") if i == 0 else ("roles", role, "fallbacks", i - 1)
                out.append(
                    f"{settings.models_doc.where(loc)}: role '{role}' uses model '{model}' at ${price:g} per 1k "
                    f"tokens, above profile '{name}''s price ceiling of ${profile.price_ceiling_per_1k:g} "
                    f"({where}); map the role to a cheaper model or pick another profile (--profile)"
                )
    return out


def suggest(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _validate(model: type[BaseModel], doc: yamlfile.YamlDoc) -> Any:
    if not isinstance(doc.data, dict):
        raise ConfigError(
            f"{doc.where(())}: expected a mapping at the top level, got {type(doc.data).__name__}"
        )
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        errors = exc.errors()
        # a misspelt required field is reported as the typo ('wieght': did you mean 'weight'?), not as missing
        missing = {tuple(e["loc"][:-1]) for e in errors if e["type"] == "missing"}
        typo = [e for e in errors if e["type"] == "extra_forbidden" and tuple(e["loc"][:-1]) in missing]
        err = (typo or errors)[0]
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            parent = loc[:-1]
            allowed = _allowed_fields(model, parent, doc.data)
            msg = f"unknown field '{loc[-1]}'{suggest(loc[-1], allowed)}"
            if allowed:
                msg += f"; allowed here: {', '.join(sorted(allowed))}"
        elif err["type"] == "missing":
            msg = f"missing required field '{field}'"
        elif err["type"] == "literal_error":  # 'sensitve' -> did you mean 'sensitive'?
            choices = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
            if loc and loc[-1] == "[key]":  # a mapping's key: name the mapping
                field = ".".join(str(p) for p in loc[:-2])
            msg = f"field '{field}': '{err['input']}' is not one of {', '.join(choices)}{suggest(err['input'], choices)}"
        elif err["type"] == "value_error":  # a validator's own sentence, without pydantic's prefix
            msg = f"field '{field}': {err['ctx']['error']}"
        else:
            msg = f"field '{field}': {err['msg']}"
            if "input" in err and not isinstance(err["input"], dict | list):
                msg += f" (got {err['input']!r})"
        raise ConfigError(f"{doc.where(loc)}: {msg}") from None


def _allowed_fields(model: type[BaseModel], loc: tuple[Any, ...], data: Any) -> list[str]:
    """The field names the pydantic model accepts at `loc` (walks dicts of sub-models)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        else:
            args = getattr(current, "__args__", ())
            current = args[-1] if args else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _check_models(cfg: ModelsConfig, doc: yamlfile.YamlDoc) -> None:
    """Cross-references inside models.yaml (providers are checked by `crewkit.models.providers`)."""
    for role in REQUIRED_ROLES:
        if role not in cfg.roles:
            raise ConfigError(
                f"{doc.where(('roles',))}: role '{role}' is missing; every deployment maps "
                f"{', '.join(REQUIRED_ROLES)} (add '{role}: {{model: <name>}}')"
            )
    for role, entry in cfg.roles.items():
        for i, model in enumerate([entry.model, *entry.fallbacks]):
            loc = ("roles", role, "model") if i == 0 else ("roles", role, "fallbacks", i - 1)
            if model not in cfg.models:
                raise ConfigError(
                    f"{doc.where(loc)}: role '{role}' uses model '{model}', which is not defined"
                    f"{suggest(model, cfg.models)}; define it under 'models:'"
                )
        is_embedding = cfg.models[entry.model].can("embedding")
        if (role == "embedding") != is_embedding:
            need = (
                "an embedding model" if role == "embedding" else "a generative model, not an embedding model"
            )
            raise ConfigError(f"{doc.where(('roles', role, 'model'))}: role '{role}' needs {need}")
    if cfg.default_role not in cfg.roles:
        raise ConfigError(
            f"{doc.where(('default_role',))}: default_role '{cfg.default_role}' is not a role"
            f"{suggest(cfg.default_role, cfg.roles)}"
        )
    check_routing(cfg, doc)


def apply_environment(project_dir: Path) -> None:
    """Load `.env`, switch telemetry off unless set, keep CrewAI's storage inside the project."""
    from dotenv import load_dotenv

    load_dotenv(project_dir / ".env", override=False)
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
    home = Path(os.environ.get("CREWKIT_HOME", project_dir / ".crewkit")).resolve()
    os.environ["CREWKIT_HOME"] = str(home)
    os.environ.setdefault("CREWAI_STORAGE_DIR", str(home / "crewai"))


def env(name: str) -> str | None:
    """The one accessor for secrets and deployment variables (API keys, base URLs)."""
    value = os.environ.get(name)
    return value or None


def find_project_dir(start: Path | None = None) -> Path:
    """The nearest folder upwards holding config/models.yaml (the project root)."""
    explicit = os.environ.get("CREWKIT_PROJECT")
    if explicit:
        return Path(explicit).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "config" / "models.yaml").exists():
            return folder
    return here


def load_settings(project_dir: Path | None = None, profile: str | None = None) -> Settings:
    """`profile`: the deployment profile (else CREWKIT_PROFILE, else profiles.yaml's `default`)."""
    project_dir = (project_dir or find_project_dir()).resolve()
    apply_environment(project_dir)
    config = project_dir / "config"
    models_doc = yamlfile.load(config / "models.yaml")
    models = _validate(ModelsConfig, models_doc)
    _check_models(models, models_doc)
    gov_doc = yamlfile.load(config / "governance.yaml", required=False)
    governance = _validate(GovernanceConfig, gov_doc)
    for key in governance.tool_allowlist:
        if not key.startswith("agent:") and key not in models.roles:
            raise ConfigError(
                f"{gov_doc.where(('tool_allowlist', key))}: tool_allowlist names role '{key}', which is not a "
                f"role{suggest(key, models.roles)}; use a role from config/models.yaml "
                f"({', '.join(models.roles)}) or 'agent:<the agent's role text>'"
            )
    profiles_doc = yamlfile.load(config / "profiles.yaml", required=False)
    if not profiles_doc.path.exists():  # the built-in profiles (the brief's figures)
        profiles, profiles_doc_kept = ProfilesConfig.model_validate(BUILTIN_PROFILES), None
    else:
        profiles, profiles_doc_kept = _validate(ProfilesConfig, profiles_doc), profiles_doc
    default = profiles.default
    if default not in profiles.profiles:
        where = profiles_doc.where(("default",))
        raise ConfigError(
            f"{where}: default profile '{default}' is not defined{suggest(default, profiles.profiles)}; "
            f"the profiles are {', '.join(profiles.profiles)}"
        )
    memory_doc = yamlfile.load(config / "memory.yaml", required=False)
    memory = _validate(MemoryConfig, memory_doc)
    experiments_doc = yamlfile.load(config / "experiments.yaml", required=False)
    experiments = _validate(ExperimentsConfig, experiments_doc)
    check_config(experiments, experiments_doc, models)
    operations_doc = yamlfile.load(config / "operations.yaml", required=False)
    operations = _validate(OperationsConfig, operations_doc)
    schedules_doc = schedule_config.load(config / "schedules.yaml")
    schedules = _validate(SchedulesConfig, schedules_doc)
    schedule_config.check_schedules(
        schedules, schedules_doc, schedule_config.flow_names(project_dir), profiles.profiles
    )
    from crewkit.runtime.database import use_url_env  # the state store reads the URL from this variable

    use_url_env(operations.database.url_env)
    settings = Settings(
        project_dir=project_dir,
        home=Path(os.environ["CREWKIT_HOME"]),
        models=models,
        governance=governance,
        models_doc=models_doc,
        governance_doc=gov_doc,
        profiles=profiles,
        profiles_doc=profiles_doc_kept,
        profile_name="",
        memory=memory,
        memory_doc=memory_doc if memory_doc.path.exists() else None,
        experiments=experiments,
        experiments_doc=experiments_doc if experiments_doc.path.exists() else None,
        operations=operations,
        operations_doc=operations_doc if operations_doc.path.exists() else None,
        schedules=schedules,
        schedules_doc=schedules_doc if schedules_doc.path.exists() else None,
    )
    return settings.with_profile(profile or env("CREWKIT_PROFILE") or default)


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON schemas for the YAML files, shipped in config/schema/ for editors."""
    return {
        "models.schema.json": ModelsConfig.model_json_schema(),
        "governance.schema.json": GovernanceConfig.model_json_schema(),
        "profiles.schema.json": ProfilesConfig.model_json_schema(),
        "memory.schema.json": MemoryConfig.model_json_schema(),
        "experiments.schema.json": ExperimentsConfig.model_json_schema(),
        "operations.schema.json": OperationsConfig.model_json_schema(),
        "schedules.schema.json": SchedulesConfig.model_json_schema(),
    }
