"""The budget check on the hook path: a call that would exceed a budget is not sent.

`BudgetGuard` is a hook-path subscriber (`crewkit.runtime.hooks`). Before each model attempt it
estimates the call's cost (`Budgets.estimate`: prompt tokens estimated without a tokenizer,
plus the model's maximum output) and reserves it on the run's scopes; a refusal raises
`BudgetExceeded` before the model is called. After the attempt the hold is replaced by the real
cost (`ModelResult.cost_usd`); an error, a replayed or a refused attempt releases its hold and
adds only what it really cost. A free model (price 0) reserves nothing and writes nothing, unless
a budget is already over its limit (then the call is refused like any other).

With `on_exceed: ask` and an approval gate (a persisted run), a refusal asks a person to raise
the limit instead (`ApprovalGate.check_budget`): the run pauses (exit 75); on resume the same
call reserves again, an approved request becomes a grant (the limit raised for the period) and
the reserve is retried, a rejected one stops the run with `BudgetExceeded`.

Subscribe it after the call journal, so a replayed call is neither reserved nor paid again.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from crewkit.errors import BudgetExceeded
from crewkit.governance.budget import Budgets, Reservation, Scope
from crewkit.runtime.hooks import ModelCall, ModelResult, Subscriber

FREE_CHECK_S = 1.0  # a free call re-reads whether a budget is over at most this often (per role)
_MAX_GRANT_ROUNDS = 8  # grants in a row for one call before it is refused anyway (cannot loop for ever)


class BudgetGuard(Subscriber):
    """Reserves each model call's estimate before it is sent and settles its real cost after."""

    def __init__(
        self, budgets: Budgets, run_id: str | None, tenant: str | None = None, gate: Any = None
    ) -> None:
        self.budgets = budgets
        self.run_id = run_id
        self.tenant = tenant or "default"
        self.gate = gate
        self.ask = budgets.policy.on_exceed == "ask" and gate is not None
        self._open: dict[int, tuple[ModelCall, Reservation]] = {}  # id(call) -> its reservation
        self._over: dict[tuple[Scope, ...], tuple[float, bool]] = {}  # scopes -> (checked at, over)
        self._lock = threading.Lock()

    def before_model(self, call: ModelCall) -> None:
        budgets = self.budgets
        scopes = budgets.scopes(self.run_id, self.tenant, call.role)
        amount = budgets.estimate(call.model, call.messages, call.tools)
        if amount <= 0 and not self._already_over(scopes):
            return None  # a free model, every budget within its limit: nothing to hold
        detail = {"role": call.role, "model": call.model, "agent": call.agent}
        for _ in range(_MAX_GRANT_ROUNDS):
            try:
                reservation = budgets.reserve(scopes, amount, self.run_id, detail=detail)
            except BudgetExceeded as exc:
                if not self.ask:
                    raise
                self._ask(exc, scopes)  # grants and retries, or raises RunPaused / BudgetExceeded
                continue
            if reservation is not None:
                with self._lock:
                    self._open[id(call)] = (call, reservation)
            return None
        raise BudgetExceeded(f"budget exceeded: {_MAX_GRANT_ROUNDS} grants in a row did not cover this call")

    def _already_over(self, scopes: tuple[Scope, ...]) -> bool:
        """Whether a budget is over its limit already (read at most every FREE_CHECK_S, and after
        this guard spent): a free call costs nothing, so a second-old answer is good enough."""
        if not self.budgets.limited:
            return False
        now = time.monotonic()
        checked = self._over.get(scopes)
        if checked is not None and now - checked[0] < FREE_CHECK_S:
            return checked[1]
        over = self.budgets.over(scopes)
        self._over[scopes] = (now, over)
        return over

    def after_model(self, result: ModelResult) -> None:
        with self._lock:
            entry = self._open.pop(id(result.call), None)
        reservation = entry[1] if entry is not None and entry[0] is result.call else None
        cost = 0.0 if result.replayed else result.cost_usd
        if reservation is None and cost <= 0:
            return
        scopes = (
            None
            if reservation is not None
            else self.budgets.scopes(self.run_id, self.tenant, result.call.role)
        )
        self.budgets.settle(reservation, cost, self.run_id, scopes)
        if self._over:
            self._over.clear()  # what this guard spent may have put a budget over

    def close(self) -> None:
        """Release the holds of calls that never finished (a pause or an interrupt raised by a later
        hook or inside the model call); call when the segment ends."""
        with self._lock:
            open_, self._open = list(self._open.values()), {}
        self.budgets.release(r for _, r in open_)

    # -- on_exceed: ask --------------------------------------------------------------------------

    def _ask(self, exc: BudgetExceeded, scopes: tuple[Scope, ...]) -> None:
        scope = next(s for s in scopes if s.key == exc.scope_key)
        base = scope.limit or 0.0
        shortfall = exc.spent + exc.held + exc.needed - exc.limit
        decision = self.gate.check_budget(
            scope.key,
            scope.period,
            self.budgets.grants_so_far(scope),
            budget=scope.name,
            limit=exc.limit,
            spent=exc.spent,
            needed=exc.needed,
            raise_by=round(max(base, shortfall), 9),
            reason=str(exc),
        )  # pending: RunPaused
        approval = decision.approval
        if decision.rejected:
            why = f": {approval.note}" if approval.note else ""
            raise BudgetExceeded(
                f"{exc}; raising it was refused: approval {approval.id} was rejected by {approval.decided_by}{why}",
                exc.scope,
                exc.limit,
                exc.spent,
                held=exc.held,
                needed=exc.needed,
                scope_key=exc.scope_key,
                period=exc.period,
            ) from None
        amount = float(approval.subject.get("raise_by") or max(base, shortfall))
        self.budgets.grant(scope, amount, approval.id, approval.decided_by or "unknown", self.run_id)

    def __repr__(self) -> str:
        return f"BudgetGuard(run={self.run_id}, tenant={self.tenant}, ask={self.ask}, open={len(self._open)})"


def from_settings(
    settings: Any, store: Any, run_id: str | None, tenant: str | None, gate: Any = None
) -> BudgetGuard:
    """The guard for one segment of run `run_id` under `settings.profile`'s budgets."""
    return BudgetGuard(Budgets(store, settings), run_id, tenant, gate)
