"""What `crewkit runs show` reports: a run's row in state.db, its record, checkpoints and approvals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crewkit.runtime.store import StateStore, when
from crewkit.settings import Settings


def detail(settings: Settings, run_id: str) -> dict[str, Any]:
    """The run as one JSON-able dict: status, inputs, plan, steps, usage, checkpoints, approvals."""
    store = StateStore.open(settings.home)
    row = store.require_run(run_id)
    record: dict[str, Any] = {}
    path = Path(row.record_path) if row.record_path else settings.output_dir / f"{run_id}.json"
    if path.is_file():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = {}
    steps, usage = record.get("steps") or [], record.get("usage") or {}
    rows = store.calls(run_id)
    if rows:  # what the run paid for, every segment, even one killed before it wrote its record
        from crewkit.runtime.record import ledger_from_rows

        paid = ledger_from_rows(rows)
        steps, usage = paid.steps() + [s for s in steps if s.get("role") is None], paid.usage()
    return {
        "run_id": row.run_id,
        "flow": row.flow,
        "status": row.status,
        "requester": row.requester,
        "profile": row.profile,
        "tenant": row.tenant,
        "created": when(row.created),
        "updated": when(row.updated),
        "error": row.error,
        "inputs": row.inputs,
        "plan": record.get("plan") or [],
        "steps": steps,
        "usage": usage,
        "result": record.get("result"),
        "rollback": record.get("rollback"),
        "checkpoints": [
            {"seq": cp.seq, "step": cp.step, "stable": cp.stable, "at": when(cp.created)}
            for cp in store.checkpoints(run_id)
        ],
        "approvals": [
            {
                "id": a.id,
                "step": a.step,
                "tier": a.tier,
                "status": a.status,
                "decided_by": a.decided_by,
                "note": a.note,
                "reason": a.reason,
            }
            for a in store.list_approvals(run_id=run_id)
        ],
        "record": str(path) if path.is_file() else None,
    }
