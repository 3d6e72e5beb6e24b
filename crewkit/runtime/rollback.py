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


ROLLING_BACK = "rolling_back"  # while side effects are undone: a process killed here leaves it so


def _roll_back(store: StateStore, run_id: str, target: Checkpoint) -> list[str]:
    """Undo and drop what came after `target`, marked `rolling_back` meanwhile.

    Side effects cannot be undone in a transaction with the checkpoints: if the process dies
    halfway, the run stays `rolling_back` (resume refuses it, naming the command that finishes
    the rollback; compensated entries are not compensated twice) instead of `running`, which a
    resume would replay over the undone side effects.
    """
    store.set_status(
        run_id,
        ROLLING_BACK,
        error=f"a rollback to checkpoint {target.seq} ({target.step}) did not finish; "
        f"finish it with `crewkit rollback {run_id} --to {target.seq}`",
    )
    return undo.roll_back(store, run_id, target.seq)


def to_stable(store: StateStore, run_id: str) -> dict[str, Any] | None:
    """Roll back to the last stable checkpoint (None when the run never reached one)."""
    stable = [cp for cp in store.checkpoints(run_id) if cp.stable]
    if not stable:
        return None
    target = stable[-1]
    return _record(target, _roll_back(store, run_id, target), automatic=True)


START = Checkpoint(0, "start", None, {}, True, 0.0)  # before the first step: everything undone


def resolve_target(checkpoints: list[Checkpoint], to: str | None, run_id: str) -> Checkpoint:
    """`--to`: a step name (its latest checkpoint), a checkpoint number, or `start` (0: before the
    first step); default the last stable checkpoint, else the start (a run without checkpoints:
    a stock flow or a crew run alone)."""
    listing = ", ".join(["start (0)", *(f"{cp.step} ({cp.seq})" for cp in checkpoints)])
    if to is None:
        stable = [cp for cp in checkpoints if cp.stable]
        return stable[-1] if stable else START
    if to in ("start", "0"):
        return START
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
    row = store.require_run(run_id)
    target = resolve_target(store.checkpoints(run_id), to, run_id)
    store.claim(run_id, {"done", "failed", "paused", "rejected", "interrupted", ROLLED_BACK, ROLLING_BACK})
    lines = _roll_back(store, run_id, target)
    store.set_status(run_id, ROLLED_BACK, approval_id="", error="")
    done = _record(target, lines, automatic=False)
    _mark_record(row.record_path, done)
    return done


def _mark_record(path: str | None, done: dict[str, Any]) -> None:
    """The run record says it was rolled back (status and `rollback`), when there is one."""
    import json
    from pathlib import Path

    from crewkit.runtime.record import write_atomic

    if not path or not Path(path).is_file():
        return
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    record.update(status=ROLLED_BACK, rollback=done)
    record.pop("approval_id", None)
    write_atomic(Path(path), record)
