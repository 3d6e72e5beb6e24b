"""`crewkit config check` beyond the YAML: import and build every crew, import every flow.

What would break a run is found here, before a model is loaded: a syntax or import error in a
crew or flow module, a crew class whose code and YAML disagree (a missing agent config, an
invalid field CrewAI rejects), a flow that defines no Flow, names a crew that does not exist,
or whose `EXAMPLE_INPUTS` do not satisfy its `Inputs`. Each is one `ConfigError` at FILE:LINE.
Crews are built inside `wire.bound(...)`, so building one makes no model and no call.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from crewkit import assembly, yamlfile
from crewkit.assembly import wire
from crewkit.errors import ConfigError
from crewkit.models.registry import RoleMap
from crewkit.settings import Settings, suggest


@dataclass(frozen=True)
class ProjectReport:
    crews: list[str]
    flows: list[str]
    governance_file: bool


def check_crew(settings: Settings, role_map: RoleMap, name: str) -> None:
    """YAML, module import, the CrewBase instance and (if it has one) its `@crew` Crew."""
    instance, spec = assembly.instantiate(settings, role_map, name)
    method = assembly.crew_method(instance)
    if method is None:
        return  # a crew a flow assembles itself (crews/executor): instantiating it was the check
    with assembly.user_errors(settings, name), wire.bound(role_map):
        method()


def check_flow(settings: Settings, name: str) -> None:
    from crewkit.runtime.preflight import discover_flows, load_flow_class

    path = discover_flows(settings)[name]
    where = f"{yamlfile.display_path(path)}:1"
    cls = load_flow_class(settings, name)
    known = assembly.discover(settings)
    for crew_name in getattr(cls, "CREWS", None) or ():
        if crew_name not in known:
            raise ConfigError(
                f"{where}: flow '{name}' lists crew '{crew_name}' in CREWS, which is not in crews/"
                f"{suggest(crew_name, known)}"
            )
    model = getattr(cls, "Inputs", None)
    if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigError(f"{where}: flow '{name}': Inputs must be a pydantic model class")
    example = getattr(cls, "EXAMPLE_INPUTS", None)
    if model is not None and example:
        try:
            model.model_validate(example)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "inputs"
            raise ConfigError(
                f"{where}: flow '{name}': EXAMPLE_INPUTS do not fit Inputs: '{field}': {err['msg']}"
            ) from None


def check_project(settings: Settings, role_map: RoleMap) -> ProjectReport:
    """Every crew, then every flow; the first problem raises."""
    from crewkit.runtime.preflight import discover_flows

    crew_names = list(assembly.discover(settings))
    for name in crew_names:
        check_crew(settings, role_map, name)
    flow_names = list(discover_flows(settings))
    for name in flow_names:
        check_flow(settings, name)
    governance = (settings.project_dir / "config" / "governance.yaml").is_file()
    return ProjectReport(crew_names, flow_names, governance)
