"""Budgets: USD limits on model spending, reserved before each call and settled after it.

A call's cost is its tokens times its model's prices in `config/models.yaml` (USD per million
tokens). The deployment profile's `budgets:` (`BudgetPolicy`) sets the limits, each a *scope*
with a *period*:

| scope            | period                         | limit                                   |
|------------------|--------------------------------|-----------------------------------------|
| `run:<run_id>`   | `run` (all segments of the run)| `per_run`                               |
| `total`          | UTC day `YYYY-MM-DD` or month `YYYY-MM` (`period:`) | `total`            |
| `tenant:<t>`     | the same                       | `tenants[t]`, else `per_tenant`         |
| `role:<r>`       | the same                       | `per_role[r]`                           |

A limit left out is no limit; spending is tracked on every scope anyway (`show`).

`reserve` holds a call's estimate on every scope in ONE `BEGIN IMMEDIATE` transaction and
refuses the call (`BudgetExceeded`, nothing held) when for some scope
`spent + held + estimate > limit + granted`; so processes sharing state.db never overspend a
budget together by more than their estimates undercount. `settle` replaces the hold by the real
cost in one transaction and fires the alerts it crosses (`alerts:`, shares of the limit), once
per scope, period and threshold: a row in `budget_alerts` and an audit record in the same
transaction, then a WARNING log line and the configured sinks (a JSONL file, a webhook). A hold
never outlives its process for ever: every reserve first drops holds of dead processes on this
host and holds older than `HOLD_TTL_S` (another host's process, or a call that never settled).
`grant` raises a scope's limit for its period (a person's approval, `on_exceed: ask`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crewkit.errors import BudgetExceeded
from crewkit.governance import audit
from crewkit.observability import alerts
from crewkit.runtime.store import _proc_start, pid_alive
from crewkit.settings import BudgetPolicy, Settings

log = logging.getLogger(__name__)

HOLD_TTL_S = 3600.0  # a hold older than this is dropped whatever its process (another host's, a leak)
PURGE_EVERY_S = 5.0  # stale holds are looked for at most this often, and before any refusal
WEBHOOK_TIMEOUT_S = 2.0
RUN_PERIOD = "run"
MAX_RUN_ROWS = 50  # per-run rows in `show`, newest first
IMAGE_TOKENS = 1600  # an image part of a message, estimated (providers charge ~85-1600)
MESSAGE_TOKENS = 4  # per message: role and separators
DEFAULT_MAX_OUTPUT = 4096  # a call's maximum output when the model's params do not cap it
_EPS = 1e-9  # float slack when comparing sums of USD amounts
_IMAGE_PARTS = ("image_url", "image", "input_image")
_HOST = socket.gethostname()


# -- scopes --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """One budget: `key` ("total", "run:r-1", "tenant:acme", "role:reasoning") in a `period`."""

    key: str
    period: str
    limit: float | None  # USD; None: no limit (spending is still tracked)
    name: str  # for people: "total budget for 2026-11-26"
    setting: str  # where the limit is set: "budgets.total"


@dataclass(frozen=True, slots=True)
class Reservation:
    """Holds of one call on its scopes; `granted` as read when reserved (for the alerts' shares)."""

    id: str
    scopes: tuple[Scope, ...]
    amount: float
    granted: dict[str, float] = field(default_factory=dict)


def period_of(policy: BudgetPolicy, now: float) -> str:
    """The current period of the per-day/per-month budgets: "2026-11-26" or "2026-11" (UTC)."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d" if policy.period == "day" else "%Y-%m")


def _period_start(policy: BudgetPolicy, now: float) -> float:
    d = datetime.fromtimestamp(now, UTC)
    d = d.replace(hour=0, minute=0, second=0, microsecond=0)
    if policy.period == "month":
        d = d.replace(day=1)
    return d.timestamp()


def usd(amount: float | None) -> str:
    """$0.50, $12.00, $0.0031: two decimals, more for sums below a cent."""
    if amount is None:
        return "no limit"
    if abs(amount) >= 0.01 or amount == 0:
        return f"${amount:,.2f}"
    text = f"{amount:.6f}".rstrip("0")
    return f"${text}"


# -- estimates -----------------------------------------------------------------------------------


def _text_tokens(text: str) -> int:
    """Tokens of a text, no tokenizer: a quarter of its ASCII characters (rounded up) plus one
    per other character (CJK and most non-Latin scripts take about one token each)."""
    if text.isascii():
        return -(-len(text) // 4)
    ascii_n = len(text.encode("ascii", "ignore"))
    return -(-ascii_n // 4) + len(text) - ascii_n


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def prompt_tokens(messages: Any, tools: Any = None) -> int:
    """An estimate of the prompt tokens of a call: its messages (text, images, tool calls) and tools."""
    n = 0
    if isinstance(messages, str):  # sent as one user message
        n = MESSAGE_TOKENS + _text_tokens(messages)
    else:
        for msg in messages or ():
            n += MESSAGE_TOKENS
            if not isinstance(msg, dict):
                n += _text_tokens(str(msg))
                continue
            for key, value in msg.items():
                if key == "role" or value is None:
                    continue
                if isinstance(value, str):
                    n += _text_tokens(value)
                elif key == "content" and isinstance(value, list):
                    for part in value:
                        if isinstance(part, dict) and part.get("type") in _IMAGE_PARTS:
                            n += IMAGE_TOKENS
                        elif isinstance(part, dict) and isinstance(part.get("text"), str):
                            n += _text_tokens(part["text"])
                        else:
                            n += _text_tokens(part if isinstance(part, str) else _json(part))
                else:
                    n += _text_tokens(_json(value))
    if tools:
        n += _text_tokens(_json(tools))
    return n


def max_output_tokens(params: dict[str, Any], context: int) -> int:
    """A call's maximum output: the model's `max_tokens` / `max_completion_tokens`, else min(4096, context)."""
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = params.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return int(value)
    return min(DEFAULT_MAX_OUTPUT, context)


def _matching(scopes: Sequence[Scope]) -> tuple[str, tuple[str, ...]]:
    """`(scope = ? AND period = ?) OR ...` for these scopes: each an index search (a row-value
    `IN (VALUES ...)` would scan the table, which grows by a row per run)."""
    where = " OR ".join("(scope = ? AND period = ?)" for _ in scopes)
    return f"({where})", tuple(x for s in scopes for x in (s.key, s.period))


# -- the budgets ---------------------------------------------------------------------------------


class Budgets:
    """The profile's budgets over one state store. Thread-safe; one per process is enough."""

    def __init__(
        self,
        store: Any,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        hold_ttl: float = HOLD_TTL_S,
    ) -> None:
        self.store = store
        self.settings = settings
        self.policy: BudgetPolicy = settings.profile.budgets
        self.profile = settings.profile_name
        self._clock = clock
        self.hold_ttl = hold_ttl
        # model name -> (input USD/Mtok, output USD/Mtok, max output tokens)
        self._prices: dict[str, tuple[float, float, int]] = {
            name: (m.price.input_per_mtok, m.price.output_per_mtok, max_output_tokens(m.params, m.context))
            for name, m in settings.models.models.items()
        }
        self._thresholds = sorted(set(self.policy.alerts))
        self._period: tuple[float, float, str] = (0.0, 0.0, "")  # [from, until) -> the period
        self._fired: set[tuple[str, str, float]] = set()  # alerts known to be fired: no insert tried
        self._scopes: dict[tuple[Any, ...], tuple[Scope, ...]] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._pid_start = _proc_start(self._pid)
        self._purged_at = float("-inf")  # time.monotonic() of the last look for stale holds
        p = self.policy
        self.limited = any(x is not None for x in (p.per_run, p.total, p.per_tenant)) or bool(
            p.tenants or p.per_role
        )

    # -- prices and scopes -----------------------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    def period(self, now: float | None = None) -> str:
        now = self.now() if now is None else now
        start, until, period = self._period
        if start <= now < until:
            return period
        start = now - now % 86400  # the UTC day (POSIX days are 86400 s): a month's too
        period = period_of(self.policy, now)
        self._period = (start, start + 86400, period)
        return period

    def estimate(self, model: str, messages: Any, tools: Any = None) -> float:
        """USD a call may cost at most: estimated prompt tokens x input price + max output x output price.

        A model not in config/models.yaml has no price: 0 (its real cost, if any, is settled after)."""
        price = self._prices.get(model)
        if price is None or (price[0] == 0 and price[1] == 0):
            return 0.0
        return (prompt_tokens(messages, tools) * price[0] + price[2] * price[1]) / 1_000_000

    def _settings_path(self) -> str:
        from crewkit.yamlfile import display_path

        doc = self.settings.profiles_doc
        return "config/profiles.yaml" if doc is None else display_path(doc.path)

    def tenant_limit(self, tenant: str) -> tuple[float | None, str]:
        if tenant in self.policy.tenants:
            return self.policy.tenants[tenant], f"budgets.tenants.{tenant}"
        return self.policy.per_tenant, "budgets.per_tenant"

    def scopes(
        self, run_id: str | None, tenant: str | None, role: str, now: float | None = None
    ) -> tuple[Scope, ...]:
        """The scopes a call of `role` in run `run_id` for `tenant` counts against, most specific first."""
        period = self.period(now)
        tenant = tenant or "default"
        key = (run_id, tenant, role, period)
        cached = self._scopes.get(key)
        if cached is not None:
            return cached
        p = self.policy
        out = []
        if run_id is not None:
            out.append(
                Scope(
                    f"run:{run_id}",
                    RUN_PERIOD,
                    p.per_run,
                    f"per-run budget of run {run_id}",
                    "budgets.per_run",
                )
            )
        out.append(
            Scope(
                f"role:{role}",
                period,
                p.per_role.get(role),
                f"budget of role '{role}' for {period}",
                f"budgets.per_role.{role}",
            )
        )
        limit, setting = self.tenant_limit(tenant)
        out.append(
            Scope(f"tenant:{tenant}", period, limit, f"budget of tenant '{tenant}' for {period}", setting)
        )
        out.append(Scope("total", period, p.total, f"total budget for {period}", "budgets.total"))
        scopes = tuple(out)
        with self._lock:
            if len(self._scopes) > 256:
                self._scopes.clear()
            self._scopes[key] = scopes
        return scopes

    # -- reserve, settle, release ----------------------------------------------------------------

    @staticmethod
    def _short(limited: Sequence[Scope], state: dict[str, list[float]], amount: float) -> Scope | None:
        """The first scope `amount` does not fit in, if any."""
        for s in limited:
            st = state[s.key]
            if st[0] + st[1] + amount > s.limit + st[2] + _EPS:  # type: ignore[operator]
                return s
        return None

    def _purge_stale(self, conn: Any, now: float) -> None:
        """Drop holds of dead processes on this host, and holds older than the TTL.

        One query in the common case (nothing stale)."""
        self._purged_at = time.monotonic()
        cutoff = now - self.hold_ttl
        old = False
        for pid, start, host, oldest in conn.execute(
            "SELECT pid, pid_start, host, MIN(created) FROM budget_holds GROUP BY pid, pid_start, host"
        ).fetchall():
            old = old or oldest < cutoff
            if host != _HOST or (pid == self._pid and start == self._pid_start):
                continue
            if not self._alive(int(pid), start):
                conn.execute(
                    "DELETE FROM budget_holds WHERE host = ? AND pid = ? AND pid_start IS ?",
                    (_HOST, pid, start),
                )
        if old:
            conn.execute("DELETE FROM budget_holds WHERE created < ?", (cutoff,))

    @staticmethod
    def _alive(pid: int, start: str | None) -> bool:
        """`pid_alive`, with one read of /proc/PID/stat where there is one (state and start time)."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return not Path("/proc/self/stat").exists() and pid_alive(pid, start)
        except OSError:
            return pid_alive(pid, start)
        fields = stat[stat.rfind(")") + 2 :].split()
        if not fields or fields[0] in ("Z", "X"):
            return False
        return start is None or len(fields) <= 19 or fields[19] == start

    @staticmethod
    def _state(conn: Any, scopes: Sequence[Scope]) -> dict[str, list[float]]:
        """scope key -> [spent, held, granted, number of grants] in its period."""
        state = {s.key: [0.0, 0.0, 0.0, 0.0] for s in scopes}
        if not scopes:
            return state
        where, args = _matching(scopes)
        rows = conn.execute(
            f"SELECT 0, scope, spent, 0 FROM budget_totals WHERE {where} "
            f"UNION ALL SELECT 1, scope, SUM(amount), 0 FROM budget_holds WHERE {where} GROUP BY scope "
            f"UNION ALL SELECT 2, scope, SUM(amount), COUNT(*) FROM budget_grants WHERE {where} GROUP BY scope",
            args * 3,
        ).fetchall()
        for kind, key, amount, count in rows:
            entry = state[key]
            entry[kind] = float(amount or 0.0)
            if kind == 2:
                entry[3] = float(count)
        return state

    def _refusal(self, scope: Scope, st: list[float], needed: float, run_id: str | None) -> BudgetExceeded:
        spent, held, granted = st[0], st[1], st[2]
        limit = (scope.limit or 0.0) + granted
        is_text = usd(scope.limit) + (f" (+{usd(granted)} granted)" if granted else "")
        held_text = f" (+{usd(held)} held)" if held > 0 else ""
        fix = f"raise {scope.setting} in {self._settings_path()} (profile '{self.profile}')"
        if run_id is not None:
            fix += f" and `crewkit resume {run_id}`"
        if scope.period != RUN_PERIOD:
            fix += f", or wait for the next period (budgets reset each UTC {self.policy.period})"
        message = (
            f"budget exceeded: {scope.name} is {is_text}, spent {usd(spent)}{held_text}; "
            f"this call would need ~{usd(needed)}; {fix}"
        )
        return BudgetExceeded(
            message,
            scope.name,
            limit,
            spent,
            held=held,
            needed=needed,
            scope_key=scope.key,
            period=scope.period,
        )

    def remaining(self, scopes: Sequence[Scope]) -> float | None:
        """USD left on the tightest limited scope (limit + granted - spent - held, at least 0);
        None when no scope is limited. A read (no lock taken): routing uses it to plan, the
        reservation before each call stays the check."""
        limited = [s for s in scopes if s.limit is not None]
        if not limited:
            return None
        state = self._standing(limited, holds=True)
        return max(
            0.0, min((s.limit or 0.0) + state[s.key][2] - state[s.key][0] - state[s.key][1] for s in limited)
        )

    def over(self, scopes: Sequence[Scope]) -> bool:
        """Whether some limited scope is already over its limit (a read; no lock taken)."""
        limited = [s for s in scopes if s.limit is not None]
        if not limited:
            return False
        state = self._standing(limited, holds=False)
        return any(state[s.key][0] > (s.limit or 0.0) + state[s.key][2] + _EPS for s in limited)

    def _standing(self, limited: Sequence[Scope], *, holds: bool) -> dict[str, list[float]]:
        """[spent, held, granted] per scope key, in one read (`holds=False` leaves held at 0 and
        skips that query: the check before each call needs only spent and granted)."""
        where, args = _matching(limited)
        parts = [f"SELECT 0, scope, spent FROM budget_totals WHERE {where}"]
        if holds:
            parts.append(f"SELECT 1, scope, SUM(amount) FROM budget_holds WHERE {where} GROUP BY scope")
        parts.append(f"SELECT 2, scope, SUM(amount) FROM budget_grants WHERE {where} GROUP BY scope")
        state: dict[str, list[float]] = {s.key: [0.0, 0.0, 0.0] for s in limited}
        for kind, key, amount in self.store.read(" UNION ALL ".join(parts), args * len(parts)):
            state[key][kind] = float(amount or 0.0)
        return state

    def reserve(
        self,
        scopes: Sequence[Scope],
        amount: float,
        run_id: str | None = None,
        *,
        detail: dict[str, Any] | None = None,
    ) -> Reservation | None:
        """Hold `amount` on every scope, or raise `BudgetExceeded` (nothing held; audited and sent
        to the sinks). One transaction. Returns None when there is nothing to hold (amount 0, or
        none of the scopes has a limit: then nothing is written)."""
        now = self.now()
        limited = [s for s in scopes if s.limit is not None]
        if not limited:
            return None  # no limit to keep: the spending is recorded when the call settles
        refusal = None
        with self.store.write() as conn:
            purge_due = time.monotonic() - self._purged_at >= PURGE_EVERY_S
            if purge_due:
                self._purge_stale(conn, now)
            state = self._state(conn, limited)
            short = self._short(limited, state, amount)
            if short is not None and not purge_due:  # never refuse because of a dead process's hold
                self._purge_stale(conn, now)
                state = self._state(conn, limited)
                short = self._short(limited, state, amount)
            if short is not None:
                st = state[short.key]
                refusal = self._refusal(short, st, amount, run_id)
                event = self._event(
                    "budget.exceeded", short, st, now, run_id, needed=amount, **(detail or {})
                )
                audit.append(conn, audit.Entry("budget.exceeded", short.name, event, run_id=run_id), ts=now)
            else:
                if amount <= 0:
                    return None
                rid = secrets.token_hex(8)
                conn.executemany(
                    "INSERT INTO budget_holds (reservation, scope, period, amount, run_id, pid, pid_start, host, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (rid, s.key, s.period, amount, run_id, self._pid, self._pid_start, _HOST, now)
                        for s in scopes
                    ],
                )
                return Reservation(rid, tuple(scopes), amount, {k: v[2] for k, v in state.items()})
        self._notify(event, str(refusal))
        raise refusal

    def settle(
        self,
        reservation: Reservation | None,
        cost: float,
        run_id: str | None = None,
        scopes: Sequence[Scope] | None = None,
    ) -> list[dict[str, Any]]:
        """Replace a reservation by the real `cost` (or add `cost` to `scopes` when nothing was held):
        holds deleted, spending added, alerts crossed fired. One transaction; returns the alerts."""
        if reservation is not None:
            scopes = reservation.scopes
        scopes = tuple(scopes or ())
        cost = max(0.0, float(cost or 0.0))
        if reservation is None and cost <= 0:
            return []
        now = self.now()
        alerts: list[dict[str, Any]] = []
        with self.store.write() as conn:
            if reservation is not None:
                conn.execute("DELETE FROM budget_holds WHERE reservation = ?", (reservation.id,))
            if cost > 0 and scopes:
                rows = conn.execute(
                    "INSERT INTO budget_totals (scope, period, spent, updated) VALUES "
                    + ",".join("(?, ?, ?, ?)" for _ in scopes)
                    + " ON CONFLICT (scope, period) DO UPDATE SET spent = budget_totals.spent + excluded.spent, "
                    "updated = excluded.updated RETURNING scope, spent",
                    tuple(x for sc in scopes for x in (sc.key, sc.period, cost, now)),
                ).fetchall()
                spent_now = dict(rows)
                watched = [sc for sc in scopes if sc.limit is not None] if self._thresholds else []
                granted = reservation.granted if reservation is not None else None
                if watched and granted is None:
                    granted = {k: v[2] for k, v in self._state(conn, watched).items()}
                for sc in watched:
                    alerts += self._alerts(
                        conn, sc, float(spent_now[sc.key]), granted.get(sc.key, 0.0), now, run_id
                    )  # type: ignore[union-attr]
        if alerts:  # sent once the spending they report is committed
            self.store.after_commit(lambda: [self._notify(e, self._alert_line(e)) for e in alerts])
        return alerts

    def release(self, reservations: Iterable[Reservation]) -> None:
        """Drop holds without spending (a call that was never made)."""
        ids = [(r.id,) for r in reservations]
        if ids:
            with self.store.write() as conn:
                conn.executemany("DELETE FROM budget_holds WHERE reservation = ?", ids)

    # -- alerts and sinks ------------------------------------------------------------------------

    def _alerts(
        self, conn: Any, s: Scope, spent: float, granted: float, now: float, run_id: str | None
    ) -> list[dict[str, Any]]:
        limit = (s.limit or 0.0) + granted
        if limit <= 0:
            return []
        out = []
        for t in self._thresholds:
            if spent + _EPS < t * limit:
                break
            mark = (s.key, s.period, t)
            if mark in self._fired:
                continue
            cur = conn.execute(
                "INSERT INTO budget_alerts (scope, period, threshold, fired) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (scope, period, threshold) DO NOTHING",
                (s.key, s.period, t, now),
            )
            with self._lock:
                self._fired.add(mark)
            if cur.rowcount == 1:
                event = self._event("budget.alert", s, [spent, 0.0, granted], now, run_id, threshold=t)
                audit.append(conn, audit.Entry("budget.alert", s.name, event, run_id=run_id), ts=now)
                out.append(event)
        return out

    def _event(
        self, kind: str, s: Scope, st: Sequence[float], now: float, run_id: str | None, **extra: Any
    ) -> dict[str, Any]:
        limit = (s.limit or 0.0) + st[2]
        event = {
            "event": kind,
            "ts": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "scope": s.key,
            "budget": s.name,
            "period": s.period,
            "limit": s.limit,
            "granted": round(st[2], 9),
            "spent": round(st[0], 9),
            "held": round(st[1], 9),
            "share": round(st[0] / limit, 4) if limit > 0 else None,
            "profile": self.profile,
            "run_id": run_id,
        }
        event.update(extra)
        return event

    @staticmethod
    def _alert_line(event: dict[str, Any]) -> str:
        limit = (event["limit"] or 0.0) + event["granted"]
        return (
            f"budget alert: {event['budget']} has reached {event['threshold']:.0%} "
            f"(spent {usd(event['spent'])} of {usd(limit)})"
        )

    def _notify(self, event: dict[str, Any], line: str) -> None:
        """The log line and the sinks, after the transaction; a failing sink is logged, never raised."""
        alerts.send(
            event, line, self.policy.sinks, self.settings.project_dir, what="budget alert", logger=log
        )

    # -- grants ----------------------------------------------------------------------------------

    def grants_so_far(self, scope: Scope) -> int:
        rows = self.store.read(
            "SELECT COUNT(*) FROM budget_grants WHERE scope = ? AND period = ?", (scope.key, scope.period)
        )
        return int(rows[0][0])

    def grant(
        self, scope: Scope, amount: float, approval_id: str | None, granted_by: str, run_id: str | None = None
    ) -> bool:
        """Raise `scope`'s limit for its period by `amount` (audited "budget.granted"); an approval
        becomes a grant once: False when it already did."""
        now = self.now()
        with self.store.write() as conn:
            if (
                approval_id is not None
                and conn.execute(
                    "SELECT 1 FROM budget_grants WHERE approval_id = ?", (approval_id,)
                ).fetchone()
            ):
                return False
            conn.execute(
                "INSERT INTO budget_grants (scope, period, amount, approval_id, granted_by, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (scope.key, scope.period, float(amount), approval_id, granted_by, now),
            )
            detail = {
                "scope": scope.key,
                "budget": scope.name,
                "period": scope.period,
                "limit": scope.limit,
                "amount": float(amount),
                "approval_id": approval_id,
            }
            audit.append(
                conn,
                audit.Entry("budget.granted", scope.name, detail, actor=granted_by, run_id=run_id),
                ts=now,
            )
        log.warning("budget granted: %s raised by %s by %s", scope.name, usd(amount), granted_by)
        return True

    # -- show ------------------------------------------------------------------------------------

    def show(self, now: float | None = None) -> list[dict[str, Any]]:
        """Every budget in the current period: total, configured and spending tenants and roles,
        and the runs that spent or hold something this period (newest first, capped)."""
        now = self.now() if now is None else now
        p = self.policy
        period = self.period(now)
        start = _period_start(p, now)
        totals: dict[tuple[str, str], tuple[float, float]] = {
            (r[0], r[1]): (float(r[2]), float(r[3]))
            for r in self.store.read(
                "SELECT scope, period, spent, updated FROM budget_totals WHERE period = ? "
                "OR (period = ? AND updated >= ?)",
                (period, RUN_PERIOD, start),
            )
        }
        held: dict[tuple[str, str], float] = {}
        latest: dict[str, float] = {}
        alive: dict[tuple[Any, ...], bool] = {}
        for scope, per, amount, pid, start_, host, created in self.store.read(
            "SELECT scope, period, amount, pid, pid_start, host, created FROM budget_holds"
        ):
            if created < now - self.hold_ttl:
                continue
            if host == _HOST:
                k = (pid, start_)
                if k not in alive:
                    alive[k] = pid_alive(int(pid), start_)
                if not alive[k]:
                    continue
            held[(scope, per)] = held.get((scope, per), 0.0) + float(amount)
            latest[scope] = max(latest.get(scope, 0.0), float(created))
        granted: dict[tuple[str, str], float] = {}
        for scope, per, amount in self.store.read(
            "SELECT scope, period, SUM(amount) FROM budget_grants WHERE period IN (?, ?) GROUP BY scope, period",
            (period, RUN_PERIOD),
        ):
            granted[(scope, per)] = float(amount or 0.0)

        def seen(prefix: str, per: str) -> list[str]:
            keys = {k for k, q in [*totals, *held] if q == per and k.startswith(prefix)}
            return sorted(k[len(prefix) :] for k in keys)

        scopes: list[Scope] = [Scope("total", period, p.total, f"total budget for {period}", "budgets.total")]
        for t in dict.fromkeys([*p.tenants, *seen("tenant:", period)]):
            limit, setting = self.tenant_limit(t)
            scopes.append(
                Scope(f"tenant:{t}", period, limit, f"budget of tenant '{t}' for {period}", setting)
            )
        for r in dict.fromkeys([*p.per_role, *seen("role:", period)]):
            scopes.append(
                Scope(
                    f"role:{r}",
                    period,
                    p.per_role.get(r),
                    f"budget of role '{r}' for {period}",
                    f"budgets.per_role.{r}",
                )
            )
        runs = seen("run:", RUN_PERIOD)
        runs.sort(
            key=lambda r: max(totals.get((f"run:{r}", RUN_PERIOD), (0, 0))[1], latest.get(f"run:{r}", 0)),
            reverse=True,
        )
        for r in runs[:MAX_RUN_ROWS]:
            scopes.append(
                Scope(f"run:{r}", RUN_PERIOD, p.per_run, f"per-run budget of run {r}", "budgets.per_run")
            )

        rows = []
        for s in scopes:
            spent = totals.get((s.key, s.period), (0.0, 0.0))[0]
            reserved = held.get((s.key, s.period), 0.0)
            extra = granted.get((s.key, s.period), 0.0)
            limit = None if s.limit is None else s.limit + extra
            rows.append(
                {
                    "scope": s.key,
                    "name": s.name,
                    "period": s.period,
                    "limit": s.limit,
                    "granted": round(extra, 9),
                    "spent": round(spent, 9),
                    "reserved": round(reserved, 9),
                    "remaining": None if limit is None else round(max(0.0, limit - spent - reserved), 9),
                    "used": None if not limit else round(spent / limit, 4),
                }
            )
        return rows


# -- webhook (kept for callers of these names; the sinks live in crewkit.observability.alerts) --


def _safe_url(url: str) -> str:
    return alerts.safe_url(url)


def post_json(url: str, payload: dict[str, Any], timeout: float = WEBHOOK_TIMEOUT_S) -> bool:
    """POST `payload` as JSON; False (logged, with the URL's path hidden) when it fails."""
    return alerts.post_json(url, payload, timeout, what="budget alert", logger=log)
