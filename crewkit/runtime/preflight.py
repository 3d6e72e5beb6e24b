"""Checks before a run starts, cheapest first: names, folders, the flow's code and inputs.

Flow and crew names are checked against the files in `flows/` / `crews/` before CrewAI is
imported; `output/` and CREWKIT_HOME are probed with a real write; then the flow module is
imported (errors at the user's line), the inputs validated against its `Inputs`, the models
checked, every crew's YAML validated and the task's size checked against every prompt.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from crewkit import assembly, yamlfile
from crewkit.errors import ConfigError, UsageError
from crewkit.models.context_fit import check_inputs_fit
from crewkit.models.registry import RoleMap
from crewkit.settings import Settings, env, suggest


def discover_flows(settings: Settings) -> dict[str, Path]:
    root = settings.project_dir / "flows"
    return {p.stem: p for p in sorted(root.glob("*.py")) if not p.stem.startswith("_")}


def check_flow_name(settings: Settings, name: str) -> Path:
    """The flow's file, or a one-line UsageError naming the close match (no import)."""
    flows = discover_flows(settings)
    if name not in flows:
        raise UsageError(f"unknown flow '{name}'{suggest(name, flows)}; flows: {', '.join(flows) or 'none'}")
    return flows[name]


def _probe_writable(path: Path, what: str, fix: str) -> None:
    """Fail unless `path` (or the folder it would be created in) accepts a new file; leave nothing behind.

    A real probe write, not `os.access`: root passes every permission check but still cannot
    write on a read-only mount or under a regular file.
    """
    target = path.resolve()  # follows a symlinked output/ to where the files would go
    while not target.exists() and target.parent != target:
        target = target.parent
    if not target.is_dir():
        raise ConfigError(f"{what} {path} is not writable ({target} is not a directory); {fix}")
    try:
        fd, probe = tempfile.mkstemp(dir=target, prefix=".crewkit-write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        where = "" if target == path else f" (in {target})"
        raise ConfigError(f"{what} {path} is not writable{where} ({exc.strerror}); {fix}") from None


def check_writable(settings: Settings) -> None:
    """The folders a run writes to accept files: output/ and CREWKIT_HOME (and CrewAI's storage)."""
    _probe_writable(
        settings.output_dir,
        "output folder",
        "make it writable, or run from a project folder you can write to",
    )
    _probe_writable(
        settings.home,
        "CREWKIT_HOME",
        "set CREWKIT_HOME to a writable folder (in .env or the environment)",
    )
    storage = env("CREWAI_STORAGE_DIR")
    if storage and not Path(storage).resolve().is_relative_to(settings.home):
        _probe_writable(
            Path(storage).resolve(),
            "CREWAI_STORAGE_DIR",
            "set CREWAI_STORAGE_DIR to a writable folder, or unset it",
        )


def load_flow_class(settings: Settings, name: str) -> type:
    path = check_flow_name(settings, name)
    from crewkit.assembly import import_project_module

    module = import_project_module(settings.project_dir, f"flows.{name}")
    cls = getattr(module, "FLOW", None)
    if cls is None:
        from crewai.flow.flow import Flow

        found = [
            obj
            for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, Flow) and obj is not Flow and obj.__module__ == module.__name__
        ]
        if not found:
            raise UsageError(f"{yamlfile.display_path(path)}:1: defines no Flow subclass")
        cls = found[0]
    return cls


def validate_inputs(flow_cls: type, inputs: dict[str, Any]) -> dict[str, Any]:
    """Check `inputs` against the flow's `Inputs` model (if it declares one)."""
    model: type[BaseModel] | None = getattr(flow_cls, "Inputs", None)
    if model is None:
        return inputs
    try:
        return model.model_validate(inputs).model_dump(exclude_none=True)
    except ValidationError as exc:
        errors = exc.errors()
        # an unknown field close to a known one is the misspelling behind the "missing" error: name it
        typos = [
            e
            for e in errors
            if e["type"] == "extra_forbidden" and suggest(str(e["loc"][-1]), model.model_fields)
        ]
        err = (typos or errors)[0]
        name = ".".join(str(p) for p in err["loc"]) or "inputs"
        if err["type"] == "missing":
            raise UsageError(
                f"--inputs: missing field '{name}' (e.g. --inputs '{{\"{name}\": \"...\"}}')"
            ) from None
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(model.model_fields)
            raise UsageError(
                f"--inputs: unknown field '{name}'{suggest(name, model.model_fields)}; allowed: {allowed}"
            ) from None
        raise UsageError(f"--inputs: field '{name}': {err['msg']}") from None


def prepare_flow(
    settings: Settings, role_map: RoleMap, name: str, inputs: dict[str, Any]
) -> tuple[type, dict[str, Any]]:
    """Everything checked before a run starts: the flow, its inputs, models, crews' YAML, prompt sizes."""
    check_flow_name(settings, name)
    check_writable(settings)
    flow_cls = load_flow_class(settings, name)
    inputs = validate_inputs(flow_cls, inputs)
    role_map.require_ready()
    for crew_name in getattr(flow_cls, "CREWS", None) or assembly.discover(settings):
        assembly.load_spec(settings, crew_name, role_map)  # YAML errors now, not halfway through a run
    check_inputs_fit(settings, role_map, flow_cls, inputs)  # a task too long for its prompts, now
    return flow_cls, inputs


def fingerprint(settings: Settings, name: str) -> str:
    """The flow's code as it was when a run started: a resumed run must replay the same steps."""
    path = check_flow_name(settings, name)
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
