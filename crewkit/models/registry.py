"""The role map: config roles -> metered CrewAI LLM objects (and the embedder).

`RoleMap(settings)` is the only place LLM objects are made. `llm(role)` returns a new
`RoleLLM` for the role (primary model + fallbacks; the models behind it are built once, lazily,
and shared), `embedder()` the embedding role's model, `check()` lists what is missing on this
machine (API keys, placeholder keys, model files) with the role and the variable to set.
Every API key variable the config names is registered with `crewkit.redact`.
Tests pass `overrides={"reasoning": ScriptedLLM([...])}` to script a role (its primary model),
or a model entry's name (`{"gpt-4o-mini": ScriptedLLM([...])}`) to script it in every chain.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crewkit import redact
from crewkit.errors import ConfigError, ModelUnavailable
from crewkit.models.providers import PROVIDERS
from crewkit.settings import ROLE_NEEDS, Settings, suggest

if TYPE_CHECKING:
    from crewkit.models.metered import RoleLLM


@dataclass(frozen=True)
class RoleInfo:
    role: str
    model: str
    provider: str
    fallbacks: list[str]
    capabilities: list[str]
    context: int
    input_per_mtok: float
    output_per_mtok: float
    degraded: str | None


class RoleMap:
    def __init__(self, settings: Settings, overrides: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.overrides = dict(overrides or {})
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._embedder: Any = None
        for role in self.overrides:  # a role (its primary model), or a model entry wherever it is used
            if role not in settings.models.roles and role not in settings.models.models:
                raise ConfigError(f"override for unknown role '{role}'{suggest(role, settings.models.roles)}")
        for model in settings.models.models.values():
            provider = PROVIDERS.get(model.provider)
            redact.register_env(model.api_key_env, provider.key_env(model) if provider else None)

    def derive(self, settings: Settings) -> RoleMap:
        """A role map for `settings` that map roles differently (an A/B arm): the same overrides,
        and the models already built are shared, not loaded again."""
        derived = RoleMap(settings, self.overrides)
        derived._models, derived._lock = self._models, self._lock
        if settings.models.roles.get("embedding") == self.settings.models.roles.get("embedding"):
            derived._embedder = self._embedder
        return derived

    @property
    def roles(self) -> list[str]:
        return list(self.settings.models.roles)

    @property
    def default_role(self) -> str:
        return self.settings.models.default_role

    def resolve_role(self, name: str | None) -> str:
        """An agent's `llm:` value -> a role: a role name, a model entry's role, or the default."""
        if not name:
            return self.default_role
        if name in self.settings.models.roles:
            return name
        for role, entry in self.settings.models.roles.items():
            if entry.model == name:
                return role
        if name in self.settings.models.models:
            raise ConfigError(
                f"llm '{name}' is a model no role uses; name a role (e.g. {self.default_role}) "
                f"or map a role to '{name}' in config/models.yaml"
            )
        raise ConfigError(
            f"llm '{name}' is neither a role nor a model in config/models.yaml{suggest(name, self.roles)}"
        )

    def llm(self, role: str) -> RoleLLM:
        """A new `RoleLLM` for `role` (one per agent: CrewAI sums token usage per agent's llm)."""
        return self._build(role)

    def _model(self, name: str) -> Any:
        """The LLM object for model entry `name`, built on first use and shared by every role."""
        with self._lock:
            if name not in self._models:
                model = self.settings.models.models[name]
                self._models[name] = PROVIDERS[model.provider].build(name, model)
            return self._models[name]

    def _build(self, role: str) -> RoleLLM:
        from crewkit.models.metered import Candidate, RoleLLM

        entry = self.settings.role(role)
        if role == "embedding":
            raise ConfigError("role 'embedding' is an embedder, not a chat model; use RoleMap.embedder()")
        candidates = []
        for name in [entry.model, *entry.fallbacks]:
            model = self.settings.models.models[name]
            if (role in self.overrides and name == entry.model) or name in self.overrides:
                scripted = self.overrides[role if role in self.overrides and name == entry.model else name]
                build = lambda scripted=scripted: scripted  # noqa: E731
            else:
                build = lambda name=name: self._model(name)  # noqa: E731
            candidates.append(
                Candidate(
                    name=name,
                    capabilities=list(model.capabilities),
                    context=model.context,
                    input_per_mtok=model.price.input_per_mtok,
                    output_per_mtok=model.price.output_per_mtok,
                    build=build,
                    key_env=PROVIDERS[model.provider].key_env(model),
                    where=self.settings.where("models", name),
                    server=PROVIDERS[model.provider].server_url(model),
                )
            )
        cooldown = self.settings.models.routing.cooldown
        return RoleLLM(model=f"crewkit/{role}", role=role, candidates=candidates, cooldown=cooldown)

    def embedder(self) -> Any:
        if self._embedder is None:
            if "embedding" in self.overrides:
                self._embedder = self.overrides["embedding"]
            else:
                from crewkit.models.embedder import build_embedder  # an engine or an embeddings endpoint

                name = self.settings.role("embedding").model
                self._embedder = build_embedder(name, self.settings.models.models[name])
        return self._embedder

    def embedder_config(self) -> dict[str, Any]:
        """The embedding role as CrewAI's embedder spec (crews, agents, knowledge sources)."""
        from crewkit.models.embedder import crewai_embedder_config

        return crewai_embedder_config(self.embedder())

    def info(self) -> list[RoleInfo]:
        rows = []
        for role, entry in self.settings.models.roles.items():
            model = self.settings.models.models[entry.model]
            need = ROLE_NEEDS.get(role)
            degraded = None
            if need and need != "text" and not model.can(need):
                degraded = f"'{entry.model}' lacks '{need}'"
            rows.append(
                RoleInfo(
                    role=role,
                    model=entry.model,
                    provider=model.provider,
                    fallbacks=list(entry.fallbacks),
                    capabilities=list(model.capabilities),
                    context=model.context,
                    input_per_mtok=model.price.input_per_mtok,
                    output_per_mtok=model.price.output_per_mtok,
                    degraded=degraded,
                )
            )
        return rows

    def check(self) -> list[str]:
        """Problems that stop a role's primary model or a fallback from working here, one line each."""
        problems = []
        for role, entry in self.settings.models.roles.items():
            if role in self.overrides:
                continue
            for name in [entry.model, *entry.fallbacks]:
                if name in self.overrides:
                    continue
                model = self.settings.models.models[name]
                problem = PROVIDERS[model.provider].missing(role, name, model)
                if problem:
                    problems.append(f"{self.settings.where('roles', role)}: {problem}")
        return problems

    def require_ready(self) -> None:
        """Start-up check: fail with the first missing key or file, naming role and variable."""
        problems = self.check()
        if problems:
            raise ModelUnavailable(problems[0])
