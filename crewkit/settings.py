"""Load and validate every config file once, at the edge.

`load_settings(project_dir)` reads `config/models.yaml` and `config/governance.yaml` into
pydantic models (extra keys forbidden), checks the cross-references inside them (a role naming
an unknown model) and returns one frozen `Settings`. It imports nothing of the engine: what
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from crewkit import yamlfile
from crewkit.errors import ConfigError

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


class ModelsConfig(_Strict):
    models: dict[str, ModelEntry]
    roles: dict[str, RoleEntry]
    default_role: str = "reasoning"


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


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    home: Path
    models: ModelsConfig
    governance: GovernanceConfig
    models_doc: yamlfile.YamlDoc
    governance_doc: yamlfile.YamlDoc | None = None

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
        err = exc.errors()[0]
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


def load_settings(project_dir: Path | None = None) -> Settings:
    project_dir = (project_dir or find_project_dir()).resolve()
    apply_environment(project_dir)
    config = project_dir / "config"
    models_doc = yamlfile.load(config / "models.yaml")
    models = _validate(ModelsConfig, models_doc)
    _check_models(models, models_doc)
    gov_doc = yamlfile.load(config / "governance.yaml", required=False)
    governance = _validate(GovernanceConfig, gov_doc)
    return Settings(
        project_dir=project_dir,
        home=Path(os.environ["CREWKIT_HOME"]),
        models=models,
        governance=governance,
        models_doc=models_doc,
        governance_doc=gov_doc,
    )


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON schemas for the YAML files, shipped in config/schema/ for editors."""
    return {
        "models.schema.json": ModelsConfig.model_json_schema(),
        "governance.schema.json": GovernanceConfig.model_json_schema(),
    }
