"""Crew YAML checks: find a project's crews and validate their agents.yaml and tasks.yaml.

A crew is `crews/<name>/crew.py` or `crews/<name>/<name>.py` (what `crewai flow add-crew`
writes): a stock `@CrewBase` class with `config/agents.yaml` and `config/tasks.yaml`. The YAML's
keys are checked against CrewAI's own `Agent` / `Task` fields (plus the YAML-only keys `CrewBase`
maps), task references, guardrail names and `llm:` roles, with the file and line of a mistake.
Nothing here imports user code.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crewkit import yamlfile
from crewkit.errors import ConfigError, UsageError
from crewkit.governance import guardrails, risk
from crewkit.models.registry import RoleMap
from crewkit.settings import Settings, suggest


@functools.cache
def agent_keys() -> frozenset[str]:
    """What an agents.yaml entry may set: CrewAI's `Agent` fields and `CrewBase`'s YAML-only keys."""
    from crewai import Agent
    from crewai.project.crew_base import AgentConfig

    return frozenset(Agent.model_fields) | frozenset(AgentConfig.__annotations__)


@functools.cache
def task_keys() -> frozenset[str]:
    """What a tasks.yaml entry may set: CrewAI's `Task` fields and `CrewBase`'s YAML-only keys."""
    from crewai import Task
    from crewai.project.crew_base import TaskConfig

    return frozenset(Task.model_fields) | frozenset(TaskConfig.__annotations__)


@dataclass(frozen=True)
class CrewSpec:
    name: str
    directory: Path
    agents: yamlfile.YamlDoc
    tasks: yamlfile.YamlDoc

    def role_of(self, agent: Any, role_map: RoleMap) -> str:
        """The role an agent of this crew runs on: its `llm:` in agents.yaml, else the default role."""
        return role_map.resolve_role(self.agent_llm_names().get(str(agent.role).strip()))

    def agent_llm_names(self) -> dict[str, str | None]:
        """Agent role text (as written) -> the `llm:` it names (None = default role)."""
        return {
            str(info.get("role", key)).strip(): info.get("llm")
            for key, info in (self.agents.data or {}).items()
            if isinstance(info, dict)
        }


def discover(settings: Settings) -> dict[str, Path]:
    """Crew name -> folder: `crews/<name>/crew.py`, or `crews/<name>/<name>.py` (CrewAI's layout)."""
    root = settings.crews_dir
    if not root.is_dir():
        return {}
    return {
        folder.name: folder
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        if crew_module_file(folder) is not None
    }


def crew_module_file(folder: Path) -> Path | None:
    for candidate in (folder / "crew.py", folder / f"{folder.name}.py"):
        if candidate.is_file():
            return candidate
    return None


def load_spec(settings: Settings, name: str, role_map: RoleMap | None = None) -> CrewSpec:
    """Validate a crew's YAML: known keys, agents referenced by tasks, guardrail names, llm roles."""
    crews = discover(settings)
    if name not in crews:
        known = ", ".join(crews) or "none"
        raise UsageError(
            f"unknown crew '{name}'{suggest(name, crews)}; crews in {yamlfile.display_path(settings.crews_dir)}: {known}"
        )
    directory = crews[name]
    agents = yamlfile.load(directory / "config" / "agents.yaml")
    tasks = yamlfile.load(directory / "config" / "tasks.yaml")
    for doc, kind in ((agents, "agent"), (tasks, "task")):
        if not isinstance(doc.data, dict) or not doc.data:
            raise ConfigError(f"{doc.where(())}: expected a mapping of {kind} names to their settings")
    known_agent_keys, known_task_keys = agent_keys(), task_keys()
    for key, info in agents.data.items():
        if not isinstance(info, dict):
            raise ConfigError(
                f"{agents.where((key,))}: agent '{key}' must be a mapping (role, goal, backstory)"
            )
        for field in info:
            if field not in known_agent_keys:
                raise ConfigError(
                    f"{agents.where((key, field))}: agent '{key}' has unknown field '{field}'"
                    f"{suggest(field, known_agent_keys)}"
                )
        for field in ("role", "goal", "backstory"):
            if not info.get(field):
                raise ConfigError(f"{agents.where((key,))}: agent '{key}' needs '{field}:'")
        llm = info.get("llm")
        if llm is not None and not isinstance(llm, str):
            raise ConfigError(f"{agents.where((key, 'llm'))}: 'llm' must be a role or model name (a string)")
        if llm and role_map is not None:
            try:
                role_map.resolve_role(llm)
            except ConfigError as exc:
                raise ConfigError(f"{agents.where((key, 'llm'))}: agent '{key}': {exc}") from None
    for key, info in tasks.data.items():
        if not isinstance(info, dict):
            raise ConfigError(
                f"{tasks.where((key,))}: task '{key}' must be a mapping (description, expected_output)"
            )
        for field in info:
            if field not in known_task_keys and field != risk.TASK_LABEL_KEY:
                raise ConfigError(
                    f"{tasks.where((key, field))}: task '{key}' has unknown field '{field}'"
                    f"{suggest(field, known_task_keys)}"
                )
        for field in ("description", "expected_output"):
            if not info.get(field):
                raise ConfigError(f"{tasks.where((key,))}: task '{key}' needs '{field}:'")
        agent = info.get("agent")
        if agent is not None and agent not in agents.data:
            raise ConfigError(
                f"{tasks.where((key, 'agent'))}: task '{key}' names agent '{agent}', which is not in agents.yaml"
                f"{suggest(agent, agents.data)}"
            )
        for i, ctx in enumerate(info.get("context") or []):
            if ctx not in tasks.data:
                raise ConfigError(
                    f"{tasks.where((key, 'context', i))}: task '{key}' uses context '{ctx}', which is not a task"
                    f"{suggest(ctx, tasks.data)}"
                )
        for loc, gname in _guardrail_names(key, info):
            if gname not in guardrails.REGISTRY:
                raise ConfigError(
                    f"{tasks.where(loc)}: task '{key}' names unknown guardrail '{gname}'"
                    f"{suggest(gname, guardrails.REGISTRY)}; known: {', '.join(sorted(guardrails.REGISTRY))}"
                )
    risk.task_labels(tasks)  # `risk:` labels name tiers
    return CrewSpec(name, directory, agents, tasks)


def _guardrail_names(key: str, info: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    names: list[tuple[tuple[Any, ...], str]] = []
    single = info.get("guardrail")
    if isinstance(single, str) and " " not in single.strip():
        names.append(((key, "guardrail"), single))
    many = info.get("guardrails")
    if isinstance(many, str):
        many = [many]
    for i, item in enumerate(many or []):
        if isinstance(item, str):
            names.append(((key, "guardrails", i), item))
    return names
