"""Rollback: a run goes back to a checkpoint, its state and the side effects made since.

Automatic: when a flow fails in a way that means its work is bad (the verifier gave up, the
guard blocked, a person rejected it; the flow's `ROLLBACK_ON`), the runner rolls the run back
to its last *stable* checkpoint (the flow's `STABLE_STEPS`, default its start steps). By hand:
`crewkit rollback RUN_ID [--to STEP]`. Either way every side effect registered in the undo log
since that checkpoint is compensated, newest first (`crewkit.runtime.undo`), later checkpoints
and journalled answers are dropped, and the run can be resumed from there (`crewkit resume`).
"""

from __future__ import annotations

from typing import Any

from crewkit.errors import UsageError
from crewkit.runtime import undo
from crewkit.runtime.store import Checkpoint, StateStore

ROLLED_BACK = "rolled_back"


def _record(target: Checkpoint, lines: list[str], automatic: bool) -> dict[str, Any]:
    return {
        "to_step": target.step,
        "to_checkpoint": target.seq,
        "automatic": automatic,
        "undone": lines,
    }


def to_stable(store: StateStore, run_id: str) -> dict[str, Any] | None:
    """Roll back to the last stable checkpoint (None when the run never reached one)."""
    stable = [cp for cp in store.checkpoints(run_id) if cp.stable]
    if not stable:
        return None
    target = stable[-1]
    return _record(target, undo.roll_back(store, run_id, target.seq), automatic=True)


def resolve_target(checkpoints: list[Checkpoint], to: str | None, run_id: str) -> Checkpoint:
    """`--to`: a step name (its latest checkpoint) or a checkpoint number; default the last stable one."""
    if not checkpoints:
        raise UsageError(f"run {run_id} has no checkpoints to roll back to")
    listing = ", ".join(f"{cp.step} ({cp.seq})" for cp in checkpoints)
    if to is None:
        stable = [cp for cp in checkpoints if cp.stable]
        if not stable:
            raise UsageError(f"run {run_id} has no stable checkpoint; pick one with --to STEP ({listing})")
        return stable[-1]
    if to.isdigit():
        found = [cp for cp in checkpoints if cp.seq == int(to)]
    else:
        found = [cp for cp in checkpoints if cp.step == to]
    if not found:
        from crewkit.settings import suggest

        raise UsageError(
            f"run {run_id} has no step '{to}'{suggest(to, [cp.step for cp in checkpoints])}; "
            f"checkpoints: {listing}"
        )
    return found[-1]


def by_hand(store: StateStore, run_id: str, to: str | None) -> dict[str, Any]:
    """`crewkit rollback`: refused for an unknown or running run; the run ends `rolled_back`."""
    store.require_run(run_id)
    target = resolve_target(store.checkpoints(run_id), to, run_id)
    store.claim(run_id, {"done", "failed", "paused", "rejected", "interrupted", ROLLED_BACK})
    try:
        lines = undo.roll_back(store, run_id, target.seq)
    finally:
        store.set_status(run_id, ROLLED_BACK, approval_id="")
    return _record(target, lines, automatic=False)
