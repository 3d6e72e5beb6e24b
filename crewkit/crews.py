"""YAML crews: find them, validate their YAML, build and kick them off on the role map.

A crew is `crews/<name>/crew.py` or `crews/<name>/<name>.py` (what `crewai flow add-crew`
writes): a stock `@CrewBase` class with `config/agents.yaml` and `config/tasks.yaml`.

- The YAML's keys are checked against CrewAI's own `Agent` / `Task` fields (plus the YAML-only
  keys `CrewBase` maps), with the file and line of a mistake.
- Tasks' `guardrails: [name, ...]` (and `guardrail: name`) are resolved from crewkit's registry
  before CrewAI sees them (CrewAI would turn a string into a model-based guardrail).
- Every model the crew uses comes from the role map through `crewkit.binding` (agents' `llm:`
  names a role or model entry; no `llm` means the default role; manager, planning, memory and
  text guardrails have roles of their own): crews are built and kicked off inside `bound(...)`.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crewkit import binding, yamlfile
from crewkit.errors import ConfigError, CrewkitError, GuardrailBlocked, UsageError
from crewkit.governance import guardrails
from crewkit.models.registry import RoleMap
from crewkit.settings import Settings, suggest

log = logging.getLogger(__name__)


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
            if field not in known_task_keys:
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
    # crews/, flows/ and tools/ are packages user code imports from each other
    # (`from crews.research.crew import ResearchCrew` in a flow): this project's folders first.
    for top in dict.fromkeys([dotted.split(".", 1)[0], "crews", "flows", "tools"]):
        folder = project_dir / top
        if not (folder / "__init__.py").is_file():
            continue
        package = importlib.import_module(top)
        if str(folder) not in list(package.__path__):
            package.__path__.insert(0, str(folder))
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
    path = crew_module_file(spec.directory) or spec.directory / "crew.py"
    module = import_project_module(project_dir, f"crews.{spec.name}.{path.stem}")
    classes = [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if getattr(obj, "is_crew_class", False) and obj.__module__ == module.__name__
    ]
    if not classes:
        raise ConfigError(
            f"{yamlfile.display_path(path)}:1: no @CrewBase class found; decorate your crew class"
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
    with user_errors(settings, name), binding.bound(role_map):
        instance = cls()
        prepare_tasks_config(instance, settings)
    return instance, spec


def build_crew(settings: Settings, role_map: RoleMap, name: str) -> tuple[Any, CrewSpec]:
    """The crew, every model on the role map (kick it off inside `binding.bound` too)."""
    instance, spec = instantiate(settings, role_map, name)
    method = crew_method(instance)
    if method is None:
        path = crew_module_file(spec.directory) or spec.directory / "crew.py"
        raise UsageError(
            f"{yamlfile.display_path(path)}:1: crew '{name}' has no @crew method, so it cannot run alone; "
            "add one that returns Crew(...) (as `crewai create crew` writes), or run the flow that uses it"
        )
    with user_errors(settings, name), binding.bound(role_map):
        crew = method()
    return crew, spec


def crew_method(instance: Any) -> Any:
    """The instance's `@crew`-decorated method (CrewAI marks it `is_crew`), else None."""
    for attr in dir(type(instance)):
        member = getattr(type(instance), attr, None)
        if getattr(member, "is_crew", False) or getattr(
            getattr(member, "__wrapped__", None), "is_crew", False
        ):
            return getattr(instance, attr)
    crew = getattr(instance, "crew", None)
    return crew if callable(crew) else None


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


def kickoff(crew: Any, inputs: dict[str, Any] | None = None, role_map: RoleMap | None = None) -> Any:
    """`crew.kickoff`, with CrewAI's final guardrail failure turned into `GuardrailBlocked`.

    Given inputs (even `{}`), every `{variable}` of the crew must have one: a missing one is a
    `UsageError` before any model call (CrewAI itself only checks when inputs are not empty).
    Runs inside `binding.bound(role_map)` when a role map is given (else the caller's binding).
    """
    from crewkit import crew_inputs  # imports CrewAI's hook types

    role_map = role_map or binding.active()
    if role_map is not None and inputs is not None:  # output files: the binding's INPUT hook places them
        crew_inputs.check_variables(crew, inputs, role_map.settings, strict=True)
    with binding.bound(role_map) if role_map is not None else nullcontext():
        try:
            return crew.kickoff(inputs=inputs)
        except Exception as exc:
            blocked = guardrail_failure(exc)
            if blocked:
                raise blocked from None
            raise


def kickoff_crew(settings: Settings, role_map: RoleMap, name: str, inputs: dict[str, Any]) -> Any:
    with binding.bound(role_map):
        crew, _ = build_crew(settings, role_map, name)
        return kickoff(crew, inputs, role_map)
