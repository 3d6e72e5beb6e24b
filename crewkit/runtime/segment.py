"""One segment of a persisted run (from a start or a resume to an end or a pause): what is open.

`kickoff(settings, store, run_id, gate, count, call)` runs `call` (a flow's or a crew's kickoff)
in a worker thread (`crewkit.runtime.worker`) inside everything a run needs while it works:
- its usage ledger, and the hook path with its subscribers (`subscribers`): the tool approval
  gate and allowlists, the call journal (answered calls replayed on resume, every call's usage
  row and audit record), budgets, and the injection and PII shields;
- its audit trail (governance decisions made during the run are recorded for it);
- its undo log (side effects tools register), and a delegation pin table of its own;
- CrewAI's `@human_feedback` asking through the approval queue instead of the console.
A user error raised before anything was paid for marks the run failed and is raised as is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from crewkit.errors import CrewkitError
from crewkit.observability import ledger
from crewkit.runtime import hooks, pins, trail, undo
from crewkit.runtime.store import StateStore
from crewkit.runtime.worker import Ended, kickoff_in_worker


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


def subscribers(
    settings: Any, store: StateStore, run_id: str, gate: Any, count: Callable[[], int], tenant: str | None
) -> list[Any]:
    """The run's hook-path subscribers, in order (before hooks run in this order, the first
    Replay wins): tool gating and allowlists first, then the journal (a replayed call is neither
    paid nor budgeted again), then the context budget (older messages summarised or trimmed, so
    the cost estimate and the shields see what is sent), then the response cache (a deterministic
    call asked before is answered from state.db: nothing reserved or paid), then budgets, then the
    shields."""
    from crewkit.observability import metrics as run_metrics
    from crewkit.runtime import (
        budget_guard,
        context_budget,
        injection_shield,
        pii_shield,
        response_cache,
        tool_allowlist,
    )
    from crewkit.runtime.journal import CallJournal
    from crewkit.runtime.tool_gate import ToolGate

    chain: list[Any] = [ToolGate(gate), tool_allowlist.from_settings(settings)]
    chain.append(CallJournal(store, run_id, count, audit_text=settings.profile.audit.text))
    chain.append(context_budget.from_settings(settings, store, run_id))
    chain.append(response_cache.from_settings(settings, store, tenant))  # a hit is neither budgeted nor paid
    chain.append(budget_guard.from_settings(settings, store, run_id, tenant, gate))
    chain.append(injection_shield.InjectionShield(store, run_id))
    chain.append(pii_shield.from_settings(settings))
    chain.append(run_metrics.from_settings(settings, store, run_id))  # sees every attempt's outcome
    return [s for s in chain if s is not None]


def run_hooks(
    settings: Any, store: StateStore, run_id: str, gate: Any, count: Callable[[], int], tenant: str | None
) -> hooks.RunHooks:
    """The run's hook path: `subscribers`, the after-model hooks of a call sharing one commit."""
    return hooks.RunHooks(subscribers(settings, store, run_id, gate, count, tenant), transaction=store.write)


def kickoff(
    settings: Any,
    store: StateStore,
    run_id: str,
    gate: Any,
    count: Callable[[], int],
    call: Callable[[], Any],
    *,
    tenant: str | None = None,
) -> tuple[Ended, ledger.Ledger]:
    """Run `call` as one segment of run `run_id`; returns how it ended and the segment's ledger."""
    from crewkit.observability import metrics as run_metrics
    from crewkit.runtime.budget_guard import BudgetGuard

    path = run_hooks(settings, store, run_id, gate, count, tenant)
    run_metrics.segment_started(settings, store)  # CrewAI event listener; endpoint/export if enabled
    try:
        with (
            ledger.open_ledger() as run_ledger,
            hooks.scope(path),
            trail.recording(store, run_id),
            undo.recording(store, run_id, count),
            pins.run_table(),
            _feedback_on_approvals(),
        ):
            return kickoff_in_worker(call, run_ledger), run_ledger
    except CrewkitError as exc:  # a user error before anything was paid for: no record
        store.set_status(run_id, "failed", error=str(exc))
        raise
    finally:  # a pause or an interrupt after a reservation: its hold is released now
        guard = path.find(BudgetGuard)
        if guard is not None:
            guard.close()
        run_metrics.segment_ended(settings, store, run_id, path.find(run_metrics.MetricsSubscriber))
