"""Run a flow: validate inputs, open the run's ledger, kick off, write the run record.

`run_flow` is what `crewkit run`, `main.kickoff` and `crewai run` all call. It returns a
`RunOutcome` (status, run id, record path); the record `output/<run_id>.json` is written
atomically when the run ends, whatever the outcome:

    {"run_id", "flow", "status", "inputs", "plan", "steps", "result", "usage", "error"?}
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from crewkit import yamlfile
from crewkit.errors import CrewkitError, UsageError
from crewkit.models.registry import RoleMap
from crewkit.observability import ledger
from crewkit.settings import Settings, suggest


@dataclass
class RunContext:
    """What a flow's steps need from the engine; set on the flow before kickoff."""

    settings: Settings
    role_map: RoleMap
    run_id: str
    progress: Callable[[str], None] = lambda message: None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str
    record_path: Path
    record: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "done" else 1


def discover_flows(settings: Settings) -> dict[str, Path]:
    root = settings.project_dir / "flows"
    return {p.stem: p for p in sorted(root.glob("*.py")) if not p.stem.startswith("_")}


def load_flow_class(settings: Settings, name: str) -> type:
    flows = discover_flows(settings)
    if name not in flows:
        raise UsageError(f"unknown flow '{name}'{suggest(name, flows)}; flows: {', '.join(flows) or 'none'}")
    from crewkit.crews import import_project_module

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
            raise UsageError(f"{yamlfile.display_path(flows[name])}:1: defines no Flow subclass")
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
        err = exc.errors()[0]
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


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_flow(
    settings: Settings,
    role_map: RoleMap,
    name: str,
    inputs: dict[str, Any],
    progress: Callable[[str], None] | None = None,
) -> RunOutcome:
    flow_cls = load_flow_class(settings, name)
    inputs = validate_inputs(flow_cls, inputs)
    role_map.require_ready()
    from crewkit import crews

    for crew_name in getattr(flow_cls, "CREWS", None) or crews.discover(settings):
        crews.load_spec(settings, crew_name, role_map)  # YAML errors now, not halfway through a run
    run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
    ctx = RunContext(settings, role_map, run_id, progress or (lambda message: None))
    flow = flow_cls(suppress_flow_events=True)  # crewkit prints its own progress
    flow._ctx = ctx
    error: str | None = None
    status = "done"
    interrupted = False
    with ledger.open_ledger() as run_ledger:
        try:
            flow.kickoff(inputs=inputs)
        except CrewkitError as exc:
            status, error = "failed", str(exc)
        except Exception as exc:  # a crashed step: the record says why, the exit code says failed
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        except KeyboardInterrupt:
            interrupted = True
            status, error = "failed", "interrupted by the user"
    state = flow.state
    status = getattr(state, "status", "") or status
    if status == "running":
        status = "done" if error is None else "failed"
    error = error or getattr(state, "error", None) or None
    record: dict[str, Any] = {
        "run_id": run_id,
        "flow": name,
        "status": status,
        "inputs": inputs,
        "plan": list(getattr(state, "plan", []) or []),
        "steps": run_ledger.steps() + list(getattr(state, "guard_steps", []) or []),
        "result": getattr(state, "result", None),
        "usage": run_ledger.usage(),
    }
    if error:
        record["error"] = error
    path = settings.output_dir / f"{run_id}.json"
    write_atomic(path, record)
    if interrupted:
        raise KeyboardInterrupt
    return RunOutcome(run_id, status, path, record)
