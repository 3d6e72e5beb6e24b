"""Building and kicking off a crew on the role map.

- Tasks' `guardrails: [name, ...]` (and `guardrail: name`) are resolved from crewkit's registry
  before CrewAI sees them (CrewAI would turn a string into a model-based guardrail).
- Every model the crew uses comes from the role map through `crewkit.assembly.wire` (agents'
  `llm:` names a role or model entry; no `llm` means the default role; manager, planning, memory
  and text guardrails have roles of their own): crews are built and kicked off inside `bound(...)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from crewkit import yamlfile
from crewkit.assembly import wire
from crewkit.assembly.loader import load_crew_class, user_frame
from crewkit.assembly.spec import CrewSpec, _guardrail_names, crew_module_file, load_spec
from crewkit.errors import ConfigError, CrewkitError, GuardrailBlocked, UsageError
from crewkit.governance import guardrails
from crewkit.models.registry import RoleMap
from crewkit.settings import Settings


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
    with user_errors(settings, name), wire.bound(role_map):
        instance = cls()
        prepare_tasks_config(instance, settings)
    return instance, spec


def build_crew(settings: Settings, role_map: RoleMap, name: str) -> tuple[Any, CrewSpec]:
    """The crew, every model on the role map (kick it off inside `wire.bound` too)."""
    instance, spec = instantiate(settings, role_map, name)
    method = crew_method(instance)
    if method is None:
        path = crew_module_file(spec.directory) or spec.directory / "crew.py"
        raise UsageError(
            f"{yamlfile.display_path(path)}:1: crew '{name}' has no @crew method, so it cannot run alone; "
            "add one that returns Crew(...) (as `crewai create crew` writes), or run the flow that uses it"
        )
    with user_errors(settings, name), wire.bound(role_map):
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
    Runs inside `wire.bound(role_map)` when a role map is given (else the caller's binding).
    """
    from crewkit.assembly import inputs as crew_inputs  # imports CrewAI's hook types

    role_map = role_map or wire.active()
    if role_map is not None and inputs is not None and not inputs:
        # `{}`: checked here, as CrewAI interpolates nothing then. Other inputs are checked by the
        # binding's INPUT hook (strictly, as here), after the crew's @before_kickoff methods
        # (which may fill some in) and before any model call; it also places output files.
        crew_inputs.check_variables(crew, inputs, role_map.settings, strict=True)
    checked = crew_inputs.strict() if inputs is not None else nullcontext()
    with wire.bound(role_map) if role_map is not None else nullcontext(), checked:
        try:
            return crew.kickoff(inputs=inputs)
        except Exception as exc:
            blocked = guardrail_failure(exc)
            if blocked:
                raise blocked from None
            raise


def kickoff_crew(settings: Settings, role_map: RoleMap, name: str, inputs: dict[str, Any]) -> Any:
    with wire.bound(role_map):
        crew, _ = build_crew(settings, role_map, name)
        return kickoff(crew, inputs, role_map)
