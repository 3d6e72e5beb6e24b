"""Run a flow or one crew: check names, folders and inputs first, kick off, write the run record.

`run_flow` is what `crewkit run`, `main.kickoff` and `crewai run` all call; `run_crew` is
`crewkit crew NAME`. Both return a `RunOutcome` and write `output/<run_id>.json` atomically
when the run ends, whatever the outcome (done, failed, interrupted):

    {"run_id", "flow", "crew"?, "status", "inputs", "plan", "steps", "result", "usage",
     "error"?, "trigger_payload"?, ...the flow's RECORD_FIELDS}

What a flow module gives the runner (the contract, see the README's "Add a flow"):
- a CrewAI `Flow` subclass (`FLOW = Cls`, else the only Flow subclass the module defines);
- optional class attributes `Inputs` (pydantic model the inputs are validated against),
  `EXAMPLE_INPUTS` (dict), `CREWS` (crew names validated before the run) and `RECORD_FIELDS`
  (extra state field names copied into the record).
The runner sets `flow._ctx = RunContext(...)` before kickoff and afterwards reads `plan`,
`result`, `status` and `error` from the state when present. A state without `result` (a stock
CrewAI flow) records the value `kickoff()` returned. Everything is redacted before it is written.

Before anything is imported or paid for, the flow or crew name is checked against the files
in `flows/` / `crews/`, and the output folder and CREWKIT_HOME are probed for writing.
Kickoff runs in a worker thread so Ctrl-C stops the run at once: the record is written with
status "interrupted" and the caller exits 130 without waiting for the model call in flight.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import inspect
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from crewkit import assembly, yamlfile
from crewkit.assembly import wire
from crewkit.errors import ApprovalRequired, ConfigError, CrewkitError, RunPaused, UsageError
from crewkit.models.context_fit import check_inputs_fit
from crewkit.models.registry import RoleMap
from crewkit.observability import ledger
from crewkit.redact import redact, redact_obj
from crewkit.runtime import hooks, pins, rollback, undo
from crewkit.runtime.checkpoints import CheckpointLog
from crewkit.runtime.context import RunContext
from crewkit.runtime.store import StateStore
from crewkit.settings import Settings, env, suggest

INTERRUPTED = "interrupted"
PAUSED = "paused"
# what `crewkit resume` continues: a pause, a failure (from its last checkpoint), an interrupted or
# rolled-back run, and a "running" run whose process died (the store's claim checks the pid)
RESUMABLE = frozenset({PAUSED, "failed", INTERRUPTED, "rolled_back"})
INTERRUPTED_ERROR = "interrupted by the user (Ctrl-C)"
TRIGGER_KEY = "crewai_trigger_payload"  # the name CrewAI's templates pass a trigger's payload under


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str
    record_path: Path
    record: dict[str, Any]
    error_exit_code: int = 1  # the exit code of the error that failed the run (2: config/model)
    approval_id: str | None = None  # the approval a paused run waits for

    @property
    def exit_code(self) -> int:
        if self.status == "done":
            return 0
        if self.status == INTERRUPTED:
            return 130
        if self.status == PAUSED:
            return 75
        return self.error_exit_code


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]


# ---------------------------------------------------------------------------------------------
# Checks that run before CrewAI is imported (cheap: files and folders only)


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


# ---------------------------------------------------------------------------------------------
# Flows


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


def run_flow(
    settings: Settings,
    role_map: RoleMap,
    name: str,
    inputs: dict[str, Any],
    progress: Callable[[str], None] | None = None,
    *,
    verbose: bool = False,
    trigger_payload: dict[str, Any] | None = None,
) -> RunOutcome:
    """Run flow `name` on `inputs`; `trigger_payload` reaches start steps as `crewai_trigger_payload`."""
    from crewkit.governance.approvals import current_user

    flow_cls, inputs = prepare_flow(settings, role_map, name, inputs)
    store = StateStore.open(settings.home)
    run_id = new_run_id()
    stored = {**inputs, TRIGGER_KEY: trigger_payload} if trigger_payload is not None else dict(inputs)
    requester = str(inputs.get("user") or current_user())
    store.create_run(run_id, name, stored, fingerprint(settings, name), requester)
    return _run(
        settings,
        role_map,
        store,
        run_id,
        name,
        flow_cls,
        inputs,
        trigger_payload,
        requester,
        [],
        progress,
        verbose,
    )


def resume_run(
    settings: Settings,
    role_map: RoleMap,
    run_id: str,
    progress: Callable[[str], None] | None = None,
    *,
    verbose: bool = False,
) -> RunOutcome:
    """Continue a paused, failed, interrupted or rolled-back run from its last checkpoint.

    Finished steps are replayed from their checkpoints, model and tool calls already answered
    from the journal: nothing finished runs or is paid for again. Refused with one line (exit 2,
    nothing changed): an unknown id, a finished (done, rejected) or running run, a flow whose
    code changed since. A run still waiting for its approval exits 75 again.
    """
    store = StateStore.open(settings.home)
    row = store.require_run(run_id)
    if row.status in ("done", "rejected"):
        raise UsageError(
            f"run {run_id} is {row.status}; nothing to resume (start it again with `crewkit runs rerun {run_id}`)"
        )
    if row.status == PAUSED and row.approval_id:
        store.expire_due()
        approval = store.get_approval(row.approval_id)
        if approval is not None and approval.status == "pending":
            raise ApprovalRequired(
                f"run {run_id} still waits for approval {approval.id} ({approval.tier}); decide it with "
                f"`crewkit approvals approve {approval.id}` or `crewkit approvals reject {approval.id} --reason ...`",
                approval.id,
            )
    inputs = dict(row.inputs)
    if row.flow.startswith(CREW_PREFIX):
        name = row.flow[len(CREW_PREFIX) :]
        assembly.load_spec(settings, name, role_map)
        check_writable(settings)
        role_map.require_ready()
        if crew_fingerprint(settings, name) != row.fingerprint:
            raise UsageError(
                f"crew '{name}' changed since run {run_id} started, so its journal may not fit the code; "
                f"start it again with `crewkit runs rerun {run_id}`"
            )
        store.claim(run_id, set(RESUMABLE))
        return _run_crew(settings, role_map, store, run_id, name, inputs, row.requester, progress)
    trigger_payload = inputs.pop(TRIGGER_KEY, None)
    flow_cls, inputs = prepare_flow(settings, role_map, row.flow, inputs)
    if fingerprint(settings, row.flow) != row.fingerprint:
        path = yamlfile.display_path(check_flow_name(settings, row.flow))
        raise UsageError(
            f"{path} changed since run {run_id} was checkpointed, so its checkpoints may not fit the code; "
            f"start it again with `crewkit runs rerun {run_id}` (or restore the file)"
        )
    store.claim(run_id, set(RESUMABLE))
    previous = store.checkpoints(run_id)
    return _run(
        settings, role_map, store, run_id, row.flow, flow_cls, inputs, trigger_payload, row.requester, previous,
        progress, verbose,
    )  # fmt: skip


@contextmanager
def _feedback_on_approvals() -> Iterator[None]:
    """CrewAI's `@human_feedback` steps ask through the approval queue while the run works."""
    from crewai.flow.flow_config import flow_config

    from crewkit.governance.feedback import ApprovalFeedbackProvider

    previous = flow_config.hitl_provider
    flow_config.hitl_provider = ApprovalFeedbackProvider()
    try:
        yield
    finally:
        flow_config.hitl_provider = previous


def _run(
    settings: Settings,
    role_map: RoleMap,
    store: StateStore,
    run_id: str,
    name: str,
    flow_cls: type,
    inputs: dict[str, Any],
    trigger_payload: dict[str, Any] | None,
    requester: str | None,
    previous: list[Any],
    progress: Callable[[str], None] | None,
    verbose: bool,
) -> RunOutcome:
    """One segment of a persisted run: kickoff (replaying `previous` checkpoints), then the record."""
    from crewkit.governance.approvals import ApprovalGate
    from crewkit.runtime.flow import CrewkitFlow
    from crewkit.runtime.journal import CallJournal
    from crewkit.runtime.tool_gate import ToolGate

    flow = flow_cls(suppress_flow_events=not verbose)  # crewkit prints its own progress
    log = (
        CheckpointLog(store, run_id, flow.stable_steps(), previous) if isinstance(flow, CrewkitFlow) else None
    )
    count = log.count if log is not None else (lambda: 0)
    gate = ApprovalGate(store, settings, run_id, requester, checkpoints=count)
    flow._ctx = RunContext(
        settings, role_map, run_id, progress or (lambda message: None),
        store=store, checkpoints=log, gate=gate, requester=requester,
    )  # fmt: skip
    kickoff_inputs = dict(inputs)
    if trigger_payload is not None:
        kickoff_inputs[TRIGGER_KEY] = trigger_payload
    run_hooks = hooks.RunHooks([ToolGate(gate), CallJournal(store, run_id, count)])
    try:
        with (
            ledger.open_ledger() as run_ledger,
            hooks.scope(run_hooks),
            undo.recording(store, run_id, count),
            pins.run_table(),
            _feedback_on_approvals(),
        ):
            ended = _kickoff(lambda: wire.call(role_map, flow.kickoff, inputs=kickoff_inputs), run_ledger)
    except CrewkitError as exc:  # a user error before anything was paid for: no record
        store.set_status(run_id, "failed", error=str(exc))
        raise
    if log is not None and ended.error is None and not ended.interrupted:
        state = log.take_restore(final=True)  # every step had finished before: the last state
        if state is not None:
            flow.restore(state)
    fields = flow_record(flow, tuple(getattr(flow_cls, "RECORD_FIELDS", ()) or ()), ended)
    record = {"run_id": run_id, "flow": name, "status": fields.pop("status"), "inputs": inputs, **fields}
    if trigger_payload is not None:
        record["trigger_payload"] = trigger_payload
    approval_id = None
    if isinstance(ended.error, RunPaused):
        approval_id = ended.error.required.approval_id
        record.update(status=PAUSED, approval_id=approval_id, error=None)
        record["waiting"] = str(ended.error.required)
    elif log is not None and isinstance(ended.error, getattr(flow_cls, "ROLLBACK_ON", ())):
        record["rollback"] = rollback.to_stable(store, run_id)
    if log is not None and log.replayed:
        record["resumed"] = {"replayed_steps": list(log.replayed)}
    outcome = _finish(settings, run_id, record, run_ledger, ended, store=store)
    store.set_status(
        run_id, outcome.status, error=record.get("error") or "", record_path=str(outcome.record_path),
        approval_id=approval_id or "",
    )  # fmt: skip
    return RunOutcome(
        outcome.run_id,
        outcome.status,
        outcome.record_path,
        outcome.record,
        outcome.error_exit_code,
        approval_id,
    )


# ---------------------------------------------------------------------------------------------
# Crews run alone


CREW_PREFIX = "crew:"  # a lone crew's runs are stored under "crew:NAME" in state.db


def crew_fingerprint(settings: Settings, name: str) -> str:
    """A crew's code and YAML as they were when its run started."""
    spec = assembly.load_spec(settings, name)
    digest = hashlib.sha256()
    for path in sorted(
        p for p in spec.directory.rglob("*") if p.is_file() and p.suffix in (".py", ".yaml", ".yml")
    ):
        digest.update(str(path.relative_to(spec.directory)).encode() + b"\0" + path.read_bytes())
    return "sha256:" + digest.hexdigest()


def run_crew(
    settings: Settings,
    role_map: RoleMap,
    name: str,
    inputs: dict[str, Any],
    progress: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Run one crew from crews/ (built on the role map) and write its run record.

    The run is kept in state.db like a flow's: a tool call that needs a person pauses it
    (exit 75), and `crewkit resume` runs the crew again with every answered model and tool call
    replayed from the journal (a crew has no steps of its own to checkpoint).
    """
    from crewkit.governance.approvals import current_user

    assembly.load_spec(settings, name, role_map)  # unknown name or bad YAML: one line, before any model call
    check_writable(settings)
    role_map.require_ready()
    store = StateStore.open(settings.home)
    run_id = new_run_id()
    requester = str(inputs.get("user") or current_user())
    store.create_run(run_id, CREW_PREFIX + name, dict(inputs), crew_fingerprint(settings, name), requester)
    return _run_crew(settings, role_map, store, run_id, name, inputs, requester, progress)


def _run_crew(
    settings: Settings,
    role_map: RoleMap,
    store: StateStore,
    run_id: str,
    name: str,
    inputs: dict[str, Any],
    requester: str | None,
    progress: Callable[[str], None] | None,
) -> RunOutcome:
    from crewkit.governance.approvals import ApprovalGate
    from crewkit.runtime.journal import CallJournal
    from crewkit.runtime.tool_gate import ToolGate

    gate = ApprovalGate(store, settings, run_id, requester, checkpoints=lambda: 0)
    run_hooks = hooks.RunHooks([ToolGate(gate), CallJournal(store, run_id, lambda: 0)])
    try:
        crew, _ = assembly.build_crew(settings, role_map, name)
        (progress or (lambda message: None))(f"crew {name}: running")
        with (
            ledger.open_ledger() as run_ledger,
            hooks.scope(run_hooks),
            undo.recording(store, run_id, lambda: 0),
            pins.run_table(),
        ):
            ended = _kickoff(lambda: assembly.kickoff(crew, inputs, role_map), run_ledger)
    except CrewkitError as exc:
        store.set_status(run_id, "failed", error=str(exc))
        raise
    status, error = _status(None, ended)
    record: dict[str, Any] = {
        "run_id": run_id,
        "flow": None,
        "crew": name,
        "status": status,
        "inputs": inputs,
        "plan": [],
        "result": _as_text(ended.value) if ended.error is None and not ended.interrupted else None,
    }
    if error:
        record["error"] = error
    if status == "done":  # the crew's result is released by its tasks' risk tiers
        try:
            record["approval"] = _release_crew(settings, gate, name, inputs, record["result"] or "")
        except RunPaused as paused:
            ended.error = paused
        if record.get("approval", {}).get("outcome") == "rejected":
            approval = record["approval"]
            record.update(status="rejected", result=None)
            record["error"] = (
                f"approval {approval['approval_id']} was rejected by {approval['decided_by']}: {approval['note']}"
            )
    approval_id = None
    if isinstance(ended.error, RunPaused):
        approval_id = ended.error.required.approval_id
        record.update(status=PAUSED, result=None, approval_id=approval_id, waiting=str(ended.error.required))
        record.pop("error", None)
    outcome = _finish(settings, run_id, record, run_ledger, ended, store=store)
    store.set_status(
        run_id, outcome.status, error=record.get("error") or "", record_path=str(outcome.record_path),
        approval_id=approval_id or "",
    )  # fmt: skip
    return RunOutcome(
        outcome.run_id,
        outcome.status,
        outcome.record_path,
        outcome.record,
        outcome.error_exit_code,
        approval_id,
    )


def _release_crew(
    settings: Settings, gate: Any, name: str, inputs: dict[str, Any], result: str
) -> dict[str, Any]:
    """The release gate of a crew run alone: each task's tier (its text with the inputs, its
    `risk:` label); a person decides when the policy says so (RunPaused until then)."""
    from crewkit.governance import risk

    spec = assembly.load_spec(settings, name)
    labels = risk.task_labels(spec.tasks)
    values = _Blank({k: str(v) for k, v in inputs.items()})
    items = []
    for key, info in (spec.tasks.data or {}).items():
        if not isinstance(info, dict):
            continue
        text = str(info.get("description") or "")
        with contextlib.suppress(ValueError, IndexError, AttributeError):  # braces that are not variables
            text = text.format_map(values)
        items.append((str(key), risk.assess_subtask(settings, text, "task", label=labels.get(str(key)))))
    decision = gate.check_step("release", items, content=result)
    approval = decision.approval
    return {
        "outcome": decision.outcome,
        "approval_id": approval.id if approval else None,
        "decided_by": approval.decided_by if approval else None,
        "note": approval.note if approval else None,
        "items": list(decision.checks),
    }


class _Blank(dict):  # type: ignore[type-arg]
    """`str.format_map` values that leave an unknown `{name}` as it is."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


# ---------------------------------------------------------------------------------------------
# Kickoff in a worker thread, the record


@dataclass
class _Ended:
    value: Any = None
    error: BaseException | None = None
    interrupted: bool = False


def _kickoff(call: Callable[[], Any], run_ledger: ledger.Ledger) -> _Ended:
    """Run `call` in a worker thread; Ctrl-C in the main thread returns at once (interrupted).

    CrewAI runs sync flow steps in worker threads of its own, so the main thread would
    otherwise wait for the step in flight (a whole crew) before it saw the interrupt.
    A user error before the first model call (a missing template variable) is raised as is.
    """
    ended = _Ended()

    def target() -> None:
        try:
            ended.value = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            ended.error = exc

    worker = threading.Thread(
        target=contextvars.copy_context().run, args=(target,), name="crewkit-run", daemon=True
    )
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        ended.interrupted = True
        return ended
    exc = ended.error
    if isinstance(exc, CrewkitError) and exc.exit_code == 2 and not run_ledger.calls:
        raise exc  # nothing was paid for yet: a user error, one line, no record
    if isinstance(exc, KeyboardInterrupt):
        ended.interrupted, ended.error = True, None
    return ended


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, CrewkitError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _state_get(state: Any, name: str) -> Any:
    if isinstance(state, dict):
        return state.get(name)
    return getattr(state, name, None)


def _state_has(state: Any, name: str) -> bool:
    if isinstance(state, dict):
        return name in state
    fields = getattr(type(state), "model_fields", None)
    return name in fields if fields is not None else hasattr(state, name)


def _as_text(value: Any) -> str | None:
    """A kickoff's return value as the run's result: a CrewOutput's `.raw`, else `str(value)`."""
    if value is None:
        return None
    raw = getattr(value, "raw", None)
    if isinstance(raw, str):
        return raw
    return value if isinstance(value, str) else str(value)


def _status(state: Any, ended: _Ended) -> tuple[str, str | None]:
    state_status = str(_state_get(state, "status") or "") if state is not None else ""
    state_error = _state_get(state, "error") if state is not None else None
    if ended.interrupted:
        return INTERRUPTED, INTERRUPTED_ERROR
    if ended.error is not None:
        status = state_status if state_status not in ("", "running", "done") else "failed"
        return status, str(state_error or _error_text(ended.error))
    if state_status in ("", "running"):
        return ("failed" if state_error else "done"), (str(state_error) if state_error else None)
    return state_status, (str(state_error) if state_error else None)


def flow_record(flow: Any, record_fields: tuple[str, ...], ended: _Ended) -> dict[str, Any]:
    """The record's fields read from a flow's state after kickoff (see the module docstring)."""
    state = flow.state
    status, error = _status(state, ended)
    if _state_has(state, "result"):
        result = _state_get(state, "result")
    else:
        result = _as_text(ended.value) if ended.error is None and not ended.interrupted else None
    record: dict[str, Any] = {
        "status": status,
        "plan": _jsonable(_state_get(state, "plan") or []),
        "result": result,
    }
    for name in record_fields:
        record[name] = _jsonable(_state_get(state, name))
    extra_steps = _state_get(state, "guard_steps")  # steps a flow records itself (no model call)
    if isinstance(extra_steps, list):
        record["extra_steps"] = _jsonable(extra_steps)
    if record.get("blocked"):
        record["result"] = None  # a blocked result never reaches the record in clear
    if error:
        record["error"] = error
    return record


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _finish(
    settings: Settings,
    run_id: str,
    record: dict[str, Any],
    run_ledger: ledger.Ledger,
    ended: _Ended,
    *,
    store: StateStore | None = None,
) -> RunOutcome:
    if store is not None:  # every segment of the run (before a pause or crash too), from state.db
        rows = store.calls(run_id)
        if rows:
            run_ledger = _ledger_from_rows(rows)
    steps = run_ledger.steps()
    extra_steps = record.pop("extra_steps", None) or []
    record = {
        **{k: v for k, v in record.items() if k != "usage"},
        "steps": steps + list(extra_steps),
        "usage": run_ledger.usage(),
    }
    if record.get("error") is None:
        record.pop("error", None)
    record = redact_obj(record)
    path = settings.output_dir / f"{run_id}.json"
    write_atomic(path, record)
    code = ended.error.exit_code if isinstance(ended.error, CrewkitError) else 1
    return RunOutcome(run_id, record["status"], path, record, error_exit_code=code)


def _ledger_from_rows(rows: list[dict[str, Any]]) -> ledger.Ledger:
    """The run's usage rows (state.db, every segment) as a ledger, to sum into the record."""
    from dataclasses import fields

    names = {f.name for f in fields(ledger.CallRecord)}
    return ledger.Ledger(
        calls=[ledger.CallRecord(**{k: v for k, v in row.items() if k in names}) for row in rows]
    )


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False, default=lambda v: redact(str(v)))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
