"""Run a flow, or resume one: the run kept in state.db, checkpointed, gated, recorded.

`run_flow` is what `crewkit run`, `main.kickoff` and `crewai run` all call; `resume_run` is
`crewkit resume` (crews run alone: `crewkit.runtime.crew_run`). Both return a `RunOutcome`
(`crewkit.runtime.record`) after writing `output/<run_id>.json`, at every end or pause.

What a flow module gives the runner (the contract, see the README's "Add a flow"):
- a CrewAI `Flow` subclass (`FLOW = Cls`, else the only Flow subclass the module defines),
  best a `crewkit.runtime.flow.CrewkitFlow` (checkpoints, gate, pins);
- optional class attributes `Inputs`, `EXAMPLE_INPUTS`, `CREWS`, `RECORD_FIELDS`.
The runner sets `flow._ctx = RunContext(...)` before kickoff and afterwards reads `plan`,
`result`, `status` and `error` from the state when present. A state without `result` (a stock
CrewAI flow) records the value `kickoff()` returned.

One segment of a run: the run's hook path (the tool gate, the call journal, the ledger) and
undo log are opened, CrewAI's `@human_feedback` asks through the approval queue, the flow is
kicked off in a worker thread (replaying finished steps on resume), then a pause (exit 75), a
rollback (the flow's `ROLLBACK_ON` failures) or the end is written to the record and state.db.

A/B experiments (`crewkit.evaluation.experiments`): a new run gets an arm of every enabled
experiment and runs under it (a resumed run under the arms it started with); the record names
them (`experiment`) and the run's outcome is kept for `crewkit ab report`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from crewkit import yamlfile
from crewkit.assembly import wire
from crewkit.errors import ApprovalRequired, UsageError
from crewkit.evaluation import experiments as ab
from crewkit.models.registry import RoleMap
from crewkit.runtime import rollback, segment
from crewkit.runtime.checkpoints import CheckpointLog
from crewkit.runtime.context import RunContext, tenant_of
from crewkit.runtime.crew_run import CREW_PREFIX, crew_fingerprint, prepare_crew, run_crew, run_crew_segment
from crewkit.runtime.injection_shield import screen_inputs
from crewkit.runtime.preflight import (
    check_flow_name,
    check_writable,
    discover_flows,
    fingerprint,
    load_flow_class,
    prepare_flow,
    validate_inputs,
)
from crewkit.runtime.record import (
    INTERRUPTED,
    PAUSED,
    RESUMABLE,
    RunOutcome,
    finish,
    flow_record,
    new_run_id,
    write_atomic,
)
from crewkit.runtime.store import StateStore
from crewkit.settings import Settings

__all__ = [
    "CREW_PREFIX",
    "INTERRUPTED",
    "PAUSED",
    "RESUMABLE",
    "TRIGGER_KEY",
    "RunOutcome",
    "check_flow_name",
    "check_writable",
    "discover_flows",
    "load_flow_class",
    "resume_run",
    "run_crew",
    "start_queued",
    "run_flow",
    "validate_inputs",
    "write_atomic",
]

TRIGGER_KEY = "crewai_trigger_payload"  # the name CrewAI's templates pass a trigger's payload under


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
    from crewkit.governance.approvals import requester_of

    run_id = new_run_id()
    arms = ab.assign(settings, inputs, run_id)  # one arm of each enabled A/B experiment, by its key's hash
    settings, role_map = ab.under_arms(settings, role_map, arms)
    flow_cls, inputs = prepare_flow(settings, role_map, name, inputs)
    store = StateStore.open(settings.home)
    stored = {**inputs, TRIGGER_KEY: trigger_payload} if trigger_payload is not None else dict(inputs)
    requester = requester_of(inputs)
    store.create_run(
        run_id, name, stored, fingerprint(settings, name), requester,
        profile=settings.profile_name, tenant=tenant_of(inputs),
    )  # fmt: skip
    ab.store_assignments(store, run_id, arms)
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


def check_continuable(store: StateStore, row: Any) -> None:
    """Refuse to continue a finished run (exit 2) or one whose approval is still pending (exit 75);
    what `crewkit resume` and `crewkit resume --queue` both check first."""
    run_id = row.run_id
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
    settings = settings.with_profile(row.profile)  # the profile the run started under
    if row.status == rollback.ROLLING_BACK:
        raise UsageError(f"run {run_id} is half rolled back: {row.error}")
    check_continuable(store, row)
    inputs = dict(row.inputs)
    if row.flow.startswith(CREW_PREFIX):
        name = row.flow[len(CREW_PREFIX) :]
        settings, role_map = ab.under_arms(settings, role_map, ab.stored(store, run_id))
        prepare_crew(settings, role_map, name)
        if crew_fingerprint(settings, name) != row.fingerprint:
            raise UsageError(
                f"crew '{name}' changed since run {run_id} started, so its journal may not fit the code; "
                f"start it again with `crewkit runs rerun {run_id}`"
            )
        store.claim(run_id, set(RESUMABLE))
        return run_crew_segment(settings, role_map, store, run_id, name, inputs, row.requester, progress)
    trigger_payload = inputs.pop(TRIGGER_KEY, None)
    # the arms it started with, not a new draw
    settings, role_map = ab.under_arms(settings, role_map, ab.stored(store, run_id))
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


QUEUED = "queued"  # a run `crewkit run --queue` created; a worker starts it (crewkit.scheduling.queue)


def start_queued(
    settings: Settings,
    role_map: RoleMap,
    run_id: str,
    progress: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Start a queued run in this process (a worker's task): its stored flow, inputs, profile and arms.
    A run queued again (`crewkit resume --queue`) continues from its checkpoints, as `resume_run`.

    Refused with a UsageError, the run left queued: its flow or inputs do not check out here, or the
    flow's code differs from the code it was queued with. The claim is atomic: of two workers
    handed the same run, one starts it and the other gets a UsageError.
    """
    store = StateStore.open(settings.home)
    row = store.require_run(run_id)
    settings = settings.with_profile(row.profile)
    settings, role_map = ab.under_arms(settings, role_map, ab.stored(store, run_id))
    inputs = dict(row.inputs)
    trigger_payload = inputs.pop(TRIGGER_KEY, None)
    flow_cls, inputs = prepare_flow(settings, role_map, row.flow, inputs)
    if fingerprint(settings, row.flow) != row.fingerprint:
        path = yamlfile.display_path(check_flow_name(settings, row.flow))
        raise UsageError(
            f"{path} on this worker differs from the code run {run_id} was queued with; "
            "deploy the same project to the workers and to where runs are queued"
        )
    store.claim(run_id, {QUEUED})
    previous = store.checkpoints(run_id)
    return _run(
        settings, role_map, store, run_id, row.flow, flow_cls, inputs, trigger_payload, row.requester, previous,
        progress, False,
    )  # fmt: skip


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

    started = time.monotonic()
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
    flagged = [] if previous else screen_inputs(store, run_id, inputs)  # a blocked input: nothing runs
    kickoff_inputs = dict(inputs)
    if trigger_payload is not None:
        kickoff_inputs[TRIGGER_KEY] = trigger_payload
    ended, run_ledger = segment.kickoff(
        settings, store, run_id, gate, count,
        lambda: wire.call(role_map, flow.kickoff, inputs=kickoff_inputs),
        tenant=tenant_of(inputs),
    )  # fmt: skip
    if log is not None and ended.error is None and not ended.interrupted:
        state = log.take_restore(final=True)  # every step had finished before: the last state
        if state is not None:
            flow.restore(state)
    fields = flow_record(flow, tuple(getattr(flow_cls, "RECORD_FIELDS", ()) or ()), ended)
    record = {
        "run_id": run_id, "flow": name, "profile": settings.profile_name, "status": fields.pop("status"),
        "inputs": inputs, **fields,
    }  # fmt: skip
    if trigger_payload is not None:
        record["trigger_payload"] = trigger_payload
    if flagged:
        record["guard"] = {"inputs": flagged}
    if log is not None and isinstance(ended.error, getattr(flow_cls, "ROLLBACK_ON", ())):
        record["rollback"] = rollback.to_stable(store, run_id)
    if log is not None and log.replayed:
        record["resumed"] = {"replayed_steps": list(log.replayed)}
    arms = ab.stored(store, run_id)
    if arms:
        record["experiment"] = ab.record_field(arms)
    outcome = finish(settings, run_id, record, run_ledger, ended, store=store)
    if arms:  # the run's outcome for the A/B report (its segments' wall time add up)
        ab.record_outcome(store, run_id, outcome.record, time.monotonic() - started)
    return outcome
