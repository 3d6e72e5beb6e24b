"""YAML crews: find them, validate their YAML, build them and wire every model to the role map.

A crew is `crews/<name>/crew.py` (a stock `@CrewBase` class) with `config/agents.yaml` and
`config/tasks.yaml`. `build_crew` makes it runnable offline without touching its code:

- tasks' `guardrails: [name, ...]` (and `guardrail: name`) are resolved from crewkit's registry
  before CrewAI sees them (CrewAI would turn a string into a model-based guardrail);
- after the crew is built, every agent gets its role's `RoleLLM` (`llm:` in agents.yaml names a
  role or a model entry; no `llm` means the role map's default role), and so do the manager
  (hierarchical), the planner (`planning=True`), function calling and memory (LLM + embedder);
- so nothing is left on a CrewAI default model: no silent OpenAI call. The role map wins over an
  `llm=` set in the crew's code (logged), so switching models stays a config change.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crewkit import yamlfile
from crewkit.errors import ConfigError, CrewkitError, GuardrailBlocked, UsageError
from crewkit.governance import guardrails
from crewkit.models.registry import RoleMap
from crewkit.settings import Settings, suggest

log = logging.getLogger(__name__)

AGENT_KEYS = {
    "role", "goal", "backstory", "llm", "function_calling_llm", "tools", "verbose", "allow_delegation",
    "max_iter", "max_rpm", "max_execution_time", "max_retry_limit", "memory", "cache", "allow_code_execution",
    "code_execution_mode", "respect_context_window", "multimodal", "reasoning", "max_reasoning_attempts",
    "inject_date", "date_format", "system_template", "prompt_template", "response_template", "use_system_prompt",
    "step_callback", "knowledge_sources", "embedder", "callbacks", "cache_handler", "apps", "mcps",
}  # fmt: skip
TASK_KEYS = {
    "description", "expected_output", "agent", "context", "tools", "output_file", "output_json",
    "output_pydantic", "async_execution", "human_input", "markdown", "callback", "callbacks", "guardrail",
    "guardrails", "guardrail_max_retries", "max_retries", "create_directory", "name", "converter_cls",
    "response_model", "input_files",
}  # fmt: skip


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
    root = settings.crews_dir
    if not root.is_dir():
        return {}
    return {p.parent.name: p.parent for p in sorted(root.glob("*/crew.py"))}


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
    for key, info in agents.data.items():
        if not isinstance(info, dict):
            raise ConfigError(
                f"{agents.where((key,))}: agent '{key}' must be a mapping (role, goal, backstory)"
            )
        for field in info:
            if field not in AGENT_KEYS:
                raise ConfigError(
                    f"{agents.where((key, field))}: agent '{key}' has unknown field '{field}'{suggest(field, AGENT_KEYS)}"
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
            if field not in TASK_KEYS:
                raise ConfigError(
                    f"{tasks.where((key, field))}: task '{key}' has unknown field '{field}'{suggest(field, TASK_KEYS)}"
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


def import_project_module(project_dir: Path, dotted: str) -> Any:
    """Import `crews.x.crew` / `flows.x` from *this* project's folders (they win over installed copies).

    An error raised while importing the user's file becomes a one-line `ConfigError` at its line.
    """
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    top = dotted.split(".", 1)[0]
    package = importlib.import_module(top)
    folder = str(project_dir / top)
    if folder not in list(package.__path__):
        package.__path__.insert(0, folder)
    try:
        return importlib.import_module(dotted)
    except SyntaxError as exc:
        where = f"{yamlfile.display_path(Path(exc.filename or dotted))}:{exc.lineno or 1}"
        raise ConfigError(f"{where}: syntax error: {exc.msg}") from None
    except Exception as exc:
        raise ConfigError(
            f"{user_frame(exc, project_dir)}: cannot import {dotted}: {type(exc).__name__}: {exc}"
        ) from None


def user_frame(exc: BaseException, project_dir: Path) -> str:
    """FILE:LINE of the deepest traceback frame inside the project (the user's code), else the project."""
    where = yamlfile.display_path(project_dir)
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        if path.is_relative_to(project_dir) and ".venv" not in path.parts:
            where = f"{yamlfile.display_path(path)}:{frame.lineno}"
    return where


def load_crew_class(spec: CrewSpec, project_dir: Path) -> type:
    module_name = f"crews.{spec.name}.crew"
    module = import_project_module(project_dir, module_name)
    classes = [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if getattr(obj, "is_crew_class", False) and obj.__module__ == module.__name__
    ]
    if not classes:
        raise ConfigError(
            f"{yamlfile.display_path(spec.directory / 'crew.py')}:1: no @CrewBase class found; decorate your crew class"
        )
    return classes[0]


def prepare_tasks_config(instance: Any, settings: Settings) -> None:
    """Replace guardrail names with crewkit's callables before CrewAI builds the tasks."""
    for key, info in (getattr(instance, "tasks_config", None) or {}).items():
        if not isinstance(info, dict):
            continue
        names = [name for _, name in _guardrail_names(key, info)]
        if not names:
            continue
        if isinstance(info.get("guardrail"), str):
            info.pop("guardrail")
        extra = [g for g in (info.get("guardrails") or []) if callable(g)]
        info["guardrails"] = [guardrails.as_task_guardrail(n) for n in names] + extra
        info.setdefault("guardrail_max_retries", settings.governance.guardrails.max_retries)


def wire(crew: Any, spec: CrewSpec | None, role_map: RoleMap) -> Any:
    """Give every model user in `crew` its role's LLM, so nothing is left on a CrewAI default."""
    from crewkit.models.metered import RoleLLM

    for agent in crew.agents:
        if isinstance(agent.llm, RoleLLM):
            continue
        role = spec.role_of(agent, role_map) if spec else role_map.default_role
        log.info(
            "agent %r runs on role %r (was %r)",
            str(agent.role).strip(),
            role,
            getattr(agent.llm, "model", None),
        )
        agent.llm = role_map.llm(role)
        if agent.function_calling_llm is not None and not isinstance(agent.function_calling_llm, RoleLLM):
            agent.function_calling_llm = agent.llm
    if str(getattr(crew.process, "value", crew.process)) == "hierarchical":
        if crew.manager_agent is not None:
            if not isinstance(crew.manager_agent.llm, RoleLLM):
                crew.manager_agent.llm = role_map.llm("manager")
        elif not isinstance(crew.manager_llm, RoleLLM):
            crew.manager_llm = role_map.llm("manager")
    if crew.planning and not isinstance(crew.planning_llm, RoleLLM):
        crew.planning_llm = role_map.llm("reasoning")
    if crew.function_calling_llm is not None and not isinstance(crew.function_calling_llm, RoleLLM):
        crew.function_calling_llm = role_map.llm(role_map.default_role)
    if getattr(crew, "chat_llm", None) is not None and not isinstance(crew.chat_llm, RoleLLM):
        crew.chat_llm = role_map.llm(role_map.default_role)
    _wire_embeddings(crew, role_map)
    return crew


def _wire_embeddings(crew: Any, role_map: RoleMap) -> None:
    """Memory and knowledge embed with the embedding role (CrewAI would default to OpenAI)."""
    needs = (
        crew.memory is True
        or crew.knowledge_sources
        or any(getattr(a, "knowledge_sources", None) for a in crew.agents)
    )
    if not needs:
        return
    if crew.embedder is None:
        crew.embedder = role_map.embedder_config()
    for agent in crew.agents:
        if getattr(agent, "knowledge_sources", None) and agent.embedder is None:
            agent.embedder = crew.embedder
    if crew.knowledge_sources:
        from crewai.knowledge.knowledge import Knowledge

        crew.knowledge = Knowledge(
            sources=crew.knowledge_sources, embedder=crew.embedder, collection_name="crew"
        )
        crew.knowledge.add_sources()
    if crew.memory is True:
        from crewai.memory.unified_memory import Memory

        crew._memory = Memory(llm=role_map.llm(role_map.default_role), embedder=role_map.embedder())


@contextmanager
def user_errors(settings: Settings, name: str) -> Iterator[None]:
    """CrewAI rejecting what a crew's code and YAML describe -> one ConfigError at the user's line."""
    try:
        yield
    except CrewkitError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"{user_frame(exc, settings.project_dir)}: crew '{name}' cannot be built: {_short(exc)}"
        ) from None


def instantiate(settings: Settings, role_map: RoleMap, name: str) -> tuple[Any, CrewSpec]:
    """The crew class's instance, YAML validated and guardrails resolved, before any Crew is made."""
    spec = load_spec(settings, name, role_map)
    cls = load_crew_class(spec, settings.project_dir)
    with user_errors(settings, name):
        instance = cls()
        prepare_tasks_config(instance, settings)
    return instance, spec


def build_crew(settings: Settings, role_map: RoleMap, name: str) -> tuple[Any, CrewSpec]:
    instance, spec = instantiate(settings, role_map, name)
    with user_errors(settings, name):
        crew = instance.crew()
    return wire(crew, spec, role_map), spec


def _short(exc: BaseException) -> str:
    """One line for an exception; pydantic's first error with its field."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ())) or type(exc).__name__
            return f"{field}: {first.get('msg')}"
        except Exception:  # noqa: BLE001 - fall back to the plain message
            pass
    if isinstance(exc, KeyError):
        return f"no entry {exc} in the crew's YAML config"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def guardrail_failure(exc: BaseException) -> GuardrailBlocked | None:
    """CrewAI's 'Task failed guardrail validation after N retries' -> GuardrailBlocked."""
    text = str(exc)
    if text.startswith("Task failed") and "guardrail" in text:
        reason = text.split("Last error:", 1)[-1].strip()
        return GuardrailBlocked(f"output rejected after retries: {reason}")
    return None


def kickoff(crew: Any, inputs: dict[str, Any] | None = None) -> Any:
    """`crew.kickoff`, with CrewAI's final guardrail failure turned into `GuardrailBlocked`."""
    try:
        return crew.kickoff(inputs=inputs)
    except Exception as exc:
        blocked = guardrail_failure(exc)
        if blocked:
            raise blocked from None
        raise


def kickoff_crew(settings: Settings, role_map: RoleMap, name: str, inputs: dict[str, Any]) -> Any:
    crew, _ = build_crew(settings, role_map, name)
    return kickoff(crew, inputs)
