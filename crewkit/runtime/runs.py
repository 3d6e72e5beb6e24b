"""What `crewkit runs show` reports: a run's row in state.db, its record, checkpoints and approvals.

Also what the console's runs room lists: a run's cost, tokens and models (`paid`), the counts
per status, and whether a run can be resumed now (`resumable`, the reason when not).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crewkit.errors import ApprovalRequired, Conflict, UsageError
from crewkit.runtime.store import RunRow, StateStore, when
from crewkit.settings import Settings

# every status a run can have, in the order a run goes through them
STATUSES = (
    "queued", "running", "paused", "done", "failed", "rejected", "interrupted", "budget_exceeded",
    "rolling_back", "rolled_back",
)  # fmt: skip


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
        "record_error": record.get("error"),
        "waiting": record.get("waiting"),
        "resumed": record.get("resumed"),
        "verification": record.get("verification"),
        "routing": record.get("routing") or [],
        "gates": record.get("approvals") or ([record["approval"]] if record.get("approval") else []),
        "blocked": record.get("blocked"),
        "limitations": record.get("limitations") or [],
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


def paid(store: StateStore, run_id: str) -> dict[str, Any]:
    """What the run's model calls cost (every segment, from state.db): cost, tokens, calls, models."""
    from crewkit.runtime.record import ledger_from_rows

    rows = store.calls(run_id)
    usage = ledger_from_rows(rows).usage() if rows else {}
    answered = [r for r in rows if not (r.get("relayed") or r.get("replayed") or r.get("not_run"))]
    return {
        "cost_usd": round(sum(u["cost_usd"] for u in usage.values()), 8),
        "input_tokens": sum(u["input_tokens"] for u in usage.values()),
        "output_tokens": sum(u["output_tokens"] for u in usage.values()),
        "calls": sum(u["calls"] for u in usage.values()),
        "models": sorted({str(r["model"]) for r in answered if r.get("model")}),
    }


def status_counts(store: StateStore) -> dict[str, int]:
    """How many runs have each status."""
    return {str(s): int(n) for s, n in store.read("SELECT status, COUNT(*) FROM runs GROUP BY status")}


def resumable(store: StateStore, run_id: str) -> RunRow:
    """The run, when `crewkit resume` would continue it now (paused with its approval decided,
    failed, interrupted, rolled back, over budget, or running in a process that died); Conflict
    (409) with the reason otherwise, NotFound for an unknown run."""
    from crewkit.runtime.rollback import ROLLING_BACK
    from crewkit.runtime.runner import RESUMABLE, check_continuable

    row = store.require_run(run_id)
    if row.status == ROLLING_BACK:
        raise Conflict(f"run {run_id} is being rolled back, not resumed: {row.error or 'wait for it'}")
    if row.status == "queued":
        raise Conflict(f"run {run_id} is queued; a worker (`crewkit worker`) starts it")
    try:
        check_continuable(store, row)
    except (UsageError, ApprovalRequired) as exc:
        raise Conflict(str(exc)) from None
    refusal = store.claim_refusal(run_id, RESUMABLE)  # what `crewkit resume` would refuse when it claims
    if refusal:
        raise Conflict(refusal)
    return row
