"""The run record: a run's status and fields read from its flow's state, written atomically.

`output/<run_id>.json`, whatever the outcome (done, failed, paused, rejected, interrupted):

    {"run_id", "flow", "crew"?, "status", "inputs", "plan", "steps", "result", "usage",
     "error"?, "approval_id"?, "rollback"?, "resumed"?, "trigger_payload"?, "context_budget"?,
     ...RECORD_FIELDS}

Steps and usage come from state.db (every segment of a run, before a pause or a crash too),
else the segment's ledger. Everything is redacted before it is written.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from crewkit.errors import BudgetExceeded, CrewkitError, RunPaused
from crewkit.observability import ledger
from crewkit.redact import redact, redact_obj
from crewkit.runtime.store import StateStore
from crewkit.runtime.worker import Ended, error_text
from crewkit.settings import Settings

INTERRUPTED = "interrupted"
PAUSED = "paused"
# what `crewkit resume` continues: a pause, a failure (from its last checkpoint), an interrupted or
# rolled-back run, and a "running" run whose process died (the store's claim checks the pid)
BUDGET_EXCEEDED = "budget_exceeded"  # a call would have exceeded a budget: raise it, then resume
RESUMABLE = frozenset({PAUSED, "failed", INTERRUPTED, "rolled_back", BUDGET_EXCEEDED})
INTERRUPTED_ERROR = "interrupted by the user (Ctrl-C)"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]


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


def _state_get(state: Any, name: str) -> Any:
    if isinstance(state, dict):
        return state.get(name)
    return getattr(state, name, None)


def _state_has(state: Any, name: str) -> bool:
    if isinstance(state, dict):
        return name in state
    fields = getattr(type(state), "model_fields", None)
    return name in fields if fields is not None else hasattr(state, name)


def as_text(value: Any) -> str | None:
    """A kickoff's return value as the run's result: a CrewOutput's `.raw`, else `str(value)`."""
    if value is None:
        return None
    raw = getattr(value, "raw", None)
    if isinstance(raw, str):
        return raw
    return value if isinstance(value, str) else str(value)


def status_of(state: Any, ended: Ended) -> tuple[str, str | None]:
    state_status = str(_state_get(state, "status") or "") if state is not None else ""
    state_error = _state_get(state, "error") if state is not None else None
    if ended.interrupted:
        return INTERRUPTED, INTERRUPTED_ERROR
    if isinstance(ended.error, BudgetExceeded):
        return BUDGET_EXCEEDED, str(ended.error)
    if ended.error is not None:
        status = state_status if state_status not in ("", "running", "done") else "failed"
        return status, str(state_error or error_text(ended.error))
    if state_status in ("", "running"):
        return ("failed" if state_error else "done"), (str(state_error) if state_error else None)
    return state_status, (str(state_error) if state_error else None)


def flow_record(flow: Any, record_fields: tuple[str, ...], ended: Ended) -> dict[str, Any]:
    """The record's fields read from a flow's state after kickoff (see the module docstring)."""
    state = flow.state
    status, error = status_of(state, ended)
    if _state_has(state, "result"):
        result = _state_get(state, "result")
    else:
        result = as_text(ended.value) if ended.error is None and not ended.interrupted else None
    record: dict[str, Any] = {
        "status": status,
        "plan": jsonable(_state_get(state, "plan") or []),
        "result": result,
    }
    for name in record_fields:
        record[name] = jsonable(_state_get(state, name))
    extra_steps = _state_get(state, "guard_steps")  # steps a flow records itself (no model call)
    if isinstance(extra_steps, list):
        record["extra_steps"] = jsonable(extra_steps)
    if record.get("blocked"):
        record["result"] = None  # a blocked result never reaches the record in clear
    if error:
        record["error"] = error
    return record


def jsonable(value: Any) -> Any:
    """A state field or a step's output as JSON data (a model dumped, a CrewOutput as its text)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    raw = getattr(value, "raw", None)
    return raw if isinstance(raw, str) else value


def finish(
    settings: Settings,
    run_id: str,
    record: dict[str, Any],
    run_ledger: ledger.Ledger,
    ended: Ended,
    *,
    store: StateStore | None = None,
) -> RunOutcome:
    """Write the record (a pause noted: its approval, no result released) and the run's status."""
    approval_id = None
    if isinstance(ended.error, RunPaused):
        approval_id = ended.error.required.approval_id
        record.update(status=PAUSED, result=None, approval_id=approval_id, waiting=str(ended.error.required))
        record.pop("error", None)
    if store is not None:  # every segment of the run (before a pause or crash too), from state.db
        rows = store.calls(run_id)
        if rows:
            run_ledger = ledger_from_rows(rows)
    steps = run_ledger.steps()
    extra_steps = record.pop("extra_steps", None) or []
    record = {
        **{k: v for k, v in record.items() if k != "usage"},
        "steps": steps + list(extra_steps),
        "usage": run_ledger.usage(),
    }
    if record.get("error") is None:
        record.pop("error", None)
    if store is not None:  # calls whose older messages were summarised or trimmed to fit
        from crewkit.runtime.context_budget import summary

        fitted = summary(store, run_id)
        if fitted is not None:
            record["context_budget"] = fitted
    record = redact_obj(record)
    path = settings.output_dir / f"{run_id}.json"
    write_atomic(path, _stored(settings, record))
    code = ended.error.exit_code if isinstance(ended.error, CrewkitError) else 1
    if store is not None:
        store.set_status(
            run_id, record["status"], error=record.get("error") or "", record_path=str(path),
            approval_id=approval_id or "",
        )  # fmt: skip
    return RunOutcome(run_id, record["status"], path, record, error_exit_code=code, approval_id=approval_id)


def _stored(settings: Settings, record: dict[str, Any]) -> dict[str, Any]:
    """The record as written to output/: personal data masked when the profile says so
    (`pii.redact_records`); the caller keeps the result as produced for stdout."""
    policy = settings.profile.pii
    if not policy.redact_records:
        return record
    from crewkit.governance import pii

    return pii.redact_obj(record, policy.national_ids)


def ledger_from_rows(rows: list[dict[str, Any]]) -> ledger.Ledger:
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
