"""A crew run alone (`crewkit crew NAME`), kept in state.db like a flow's run.

A tool call that needs a person pauses it (exit 75); its result is released through the gate by
its tasks' risk tiers (`risk:` labels in tasks.yaml, data classes in their text); `crewkit
resume` runs the crew again with every answered model and tool call replayed from the journal
(a crew has no steps of its own to checkpoint).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from typing import Any

from crewkit import assembly
from crewkit.errors import CrewkitError, RunPaused
from crewkit.evaluation import experiments as ab
from crewkit.models.registry import RoleMap
from crewkit.runtime import segment
from crewkit.runtime.context import tenant_of
from crewkit.runtime.injection_shield import screen_inputs
from crewkit.runtime.preflight import check_writable
from crewkit.runtime.record import RunOutcome, as_text, finish, new_run_id, status_of
from crewkit.runtime.store import StateStore
from crewkit.settings import Settings

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


def prepare_crew(settings: Settings, role_map: RoleMap, name: str) -> None:
    """Checked before a crew runs or resumes: its YAML (unknown name, bad keys: one line, before
    any model call), the folders it writes to, the models it runs on."""
    assembly.load_spec(settings, name, role_map)
    check_writable(settings)
    role_map.require_ready()


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
    from crewkit.governance.approvals import requester_of

    run_id = new_run_id()
    arms = ab.assign(settings, inputs, run_id)  # one arm of each enabled A/B experiment
    settings, role_map = ab.under_arms(settings, role_map, arms)
    prepare_crew(settings, role_map, name)
    store = StateStore.open(settings.home)
    requester = requester_of(inputs)
    store.create_run(
        run_id, CREW_PREFIX + name, dict(inputs), crew_fingerprint(settings, name), requester,
        profile=settings.profile_name, tenant=tenant_of(inputs),
    )  # fmt: skip
    ab.store_assignments(store, run_id, arms)
    flagged = screen_inputs(store, run_id, inputs)  # a blocked input: nothing runs
    return run_crew_segment(settings, role_map, store, run_id, name, inputs, requester, progress, flagged)


def run_crew_segment(
    settings: Settings,
    role_map: RoleMap,
    store: StateStore,
    run_id: str,
    name: str,
    inputs: dict[str, Any],
    requester: str | None,
    progress: Callable[[str], None] | None,
    flagged: list[dict[str, Any]] | None = None,
) -> RunOutcome:
    """One segment of a crew run; `flagged`: inputs the injection screen sent for review."""
    from crewkit.governance.approvals import ApprovalGate

    started = time.monotonic()
    gate = ApprovalGate(store, settings, run_id, requester, checkpoints=lambda: 0)
    try:
        crew, _ = assembly.build_crew(settings, role_map, name)
    except CrewkitError as exc:
        store.set_status(run_id, "failed", error=str(exc))
        raise
    (progress or (lambda message: None))(f"crew {name}: running")
    ended, run_ledger = segment.kickoff(
        settings, store, run_id, gate, lambda: 0, lambda: assembly.kickoff(crew, inputs, role_map),
        tenant=tenant_of(inputs),
    )  # fmt: skip
    status, error = status_of(None, ended)
    record: dict[str, Any] = {
        "run_id": run_id,
        "flow": None,
        "crew": name,
        "profile": settings.profile_name,
        "status": status,
        "inputs": inputs,
        "plan": [],
        "result": as_text(ended.value) if ended.error is None and not ended.interrupted else None,
    }
    if error:
        record["error"] = error
    if flagged:
        record["guard"] = {"inputs": flagged}
    if status == "done":  # the crew's result is released by its tasks' risk tiers
        try:
            decision = _release_crew(settings, gate, name, inputs, record["result"] or "")
        except RunPaused as paused:
            ended.error = paused
        else:
            record["approval"] = decision.as_record()
            if decision.rejected:
                record.update(status="rejected", result=None, error=decision.rejection())
    arms = ab.stored(store, run_id)
    if arms:
        record["experiment"] = ab.record_field(arms)
    outcome = finish(settings, run_id, record, run_ledger, ended, store=store)
    if arms:  # the run's outcome for the A/B report
        ab.record_outcome(store, run_id, outcome.record, time.monotonic() - started)
    return outcome


def _release_crew(settings: Settings, gate: Any, name: str, inputs: dict[str, Any], result: str) -> Any:
    """The release gate of a crew run alone: each task's tier (its text with the inputs, its
    `risk:` label); a person decides when the policy says so (RunPaused until then). Returns
    the gate's Decision."""
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
    return gate.check_step("release", items, content=result)


class _Blank(dict):  # type: ignore[type-arg]
    """`str.format_map` values that leave an unknown `{name}` as it is."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
