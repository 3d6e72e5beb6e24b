"""Run metrics: every model call of a persisted run in `metric_events`, and the queries on them.

Write side: `MetricsSubscriber` is a hook-path subscriber (`crewkit.runtime.hooks`). Its
`after_model` writes one `model_call` row per attempt `RoleLLM` makes or answers: run, flow,
profile, agent, role, model, task, latency, tokens, cost, error, and an `outcome`:

| outcome    | what happened                                   | in latency / error rate |
|------------|-------------------------------------------------|-------------------------|
| `ok`       | the model answered                              | yes                     |
| `error`    | the model call failed (a fallback may follow)   | yes                     |
| `cached`   | the response cache answered (no model ran)      | no (counted as a hit)   |
| `replayed` | the run's journal answered on resume            | no                      |
| `relayed`  | no model ran: a relayed tool result             | no                      |
| `refused`  | a before hook refused it (budget, allowlist)    | no                      |
| `skipped`  | the model was cooling down                      | no                      |

Attempts of one logical call (the primary and its fallbacks, made one after another on one
thread) share a `call_id`; `attempt` > 0 is a retry on a fallback. Rows are buffered and
written together (`FLUSH_ROWS` rows, or `FLUSH_SECONDS` after the last write, inside the per-call
transaction of the call that fills the buffer, and when the run's segment ends), so a call pays
a tuple and an append: an INSERT and its pages in every call's commit cost ~5x more (see
bench/metrics_overhead.py). The price: a process killed mid-run loses its last rows (at most
`FLUSH_ROWS`, or `FLUSH_SECONDS` of calls), never a run's state. The CrewAI event listener
(`crewkit.observability.listener`) adds the task, agent, tool and guardrail rows through
`MetricsSubscriber.record` and tells it which task each agent works on.

Read side: `summarize(store, since, until, by)` groups the rows of a window by role and model
(or agent, task, run_id, flow, profile) into `Stats`: p50/p95/p99 latency (nearest rank, over
calls a model answered or failed), error rate (failed attempts / attempts), availability
(logical calls that got an answer, from any attempt or the cache / all logical calls, refused
ones left out), throughput (answered calls, cache hits included, per minute of the window),
tokens, cost, cache hits, retries, and the listener's task, guardrail, tool and agent counts.
Only standard SQL with `?` placeholders (the store may be PostgreSQL); times are unix seconds
computed here. `purge` applies `metrics.retention_days`.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from crewkit.errors import UsageError
from crewkit.runtime.hooks import Subscriber

if TYPE_CHECKING:
    from crewkit.runtime.hooks import ModelResult

log = logging.getLogger(__name__)

MODEL_CALL = "model_call"
GROUP_KEYS = ("role", "model", "agent", "task", "run_id", "flow", "profile")
ANSWERED = ("ok", "cached", "replayed", "relayed")  # a logical call with one of these got an answer
RAN = ("ok", "error")  # a model really ran
PURGE_EVERY_S = 3600.0  # retention is applied at most this often per process
FLUSH_ROWS = 100  # buffered rows are written once this many wait ...
FLUSH_SECONDS = 2.0  # ... or this long after the last write, and when the run's segment ends
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_INSERT = (
    "INSERT INTO metric_events (ts, run_id, kind, flow, profile, agent, role, model, task, seconds, "
    "input_tokens, output_tokens, cost_usd, error, outcome, call_id, attempt, detail) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_purged_at = float("-inf")
_purge_lock = threading.Lock()


def parse_duration(text: str) -> float:
    """Seconds of a duration like `90s`, `15m`, `1h`, `1d`, `2w`; ValueError otherwise."""
    match = _DURATION.fullmatch(str(text).strip().lower())
    if not match or float(match[1]) <= 0:
        raise ValueError(f"'{text}' is not a duration; use a number and a unit: 90s, 15m, 1h, 1d, 2w")
    return float(match[1]) * _UNIT[match[2]]


def parse_since(text: str, now: float | None = None) -> float:
    """`--since`: an age (`1h`, `7d`, `30m`) before now or an ISO date/time (UTC unless it names
    an offset); unix seconds. A bad value is a `UsageError` (one line, exit 2)."""
    from crewkit.governance import audit

    return audit.parse_since(text, now)


def _outcome(result: ModelResult) -> str:
    if result.not_run == "refused":
        return "refused"
    if result.not_run and not result.relayed:
        return "skipped"
    if result.replayed:
        return "cached" if getattr(result, "replay_source", None) == "cache" else "replayed"
    if result.relayed:
        return "relayed"
    return "error" if result.error else "ok"


class MetricsSubscriber(Subscriber):
    """Writes a `model_call` row per model attempt of run `run_id`; the listener's rows go
    through `record`. Never fails the run: a row that cannot be written is logged."""

    def __init__(
        self, store: Any, run_id: str | None, *, flow: str | None = None, profile: str | None = None
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.flow = flow
        self.profile = profile
        self.tasks: dict[str, str] = {}  # agent -> the task it works on now (the listener sets it)
        self.active_task: str | None = None  # the task started last (a delegated specialist's calls)
        self.task_started: dict[str, float] = {}  # task key -> wall-clock time it started
        self.agents: dict[str, tuple[str | None, str | None]] = {}  # agent -> (role, model)
        self._prefix = secrets.token_hex(4)
        self._seq = itertools.count(1)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pending: list[tuple[Any, ...]] = []
        self._flushed = time.monotonic()

    # -- the hook path -----------------------------------------------------------------------

    def after_model(self, result: ModelResult) -> None:
        call = result.call
        outcome = _outcome(result)
        local = self._local
        # a new logical call starts at attempt 0, unless the attempt before it on this thread was
        # a skipped primary (a skip does not advance the attempt number)
        if call.attempt == 0 and not getattr(local, "skipped_first", False):
            local.call_id = f"{self._prefix}-{next(self._seq)}"
        local.skipped_first = outcome == "skipped" and call.attempt == 0
        if call.agent not in self.agents:  # the listener's guardrail rows name the agent only
            self.agents[call.agent] = (call.role, call.model)
        paid = outcome in RAN
        row = (
            result.started,
            self.run_id,
            MODEL_CALL,
            self.flow,
            self.profile,
            call.agent,
            call.role,
            call.model,
            self.tasks.get(call.agent) or self.active_task,
            result.seconds,
            result.input_tokens if paid else 0,
            result.output_tokens if paid else 0,
            result.cost_usd if paid else 0.0,
            result.error,
            outcome,
            getattr(local, "call_id", None),
            call.attempt,
            call.stage or None,
        )
        self._add(row)

    # -- the listener's rows -----------------------------------------------------------------

    def record(
        self,
        kind: str,
        *,
        agent: str | None = None,
        role: str | None = None,
        model: str | None = None,
        task: str | None = None,
        seconds: float | None = None,
        error: str | None = None,
        outcome: str | None = None,
        detail: str | None = None,
        ts: float | None = None,
    ) -> None:
        row = (
            time.time() if ts is None else ts,
            self.run_id,
            kind,
            self.flow,
            self.profile,
            agent,
            role,
            model,
            task,
            seconds,
            None,
            None,
            None,
            error,
            outcome,
            None,
            None,
            detail,
        )
        self._add(row)

    # -- buffered writes ---------------------------------------------------------------------

    def _add(self, row: tuple[Any, ...]) -> None:
        with self._lock:
            self._pending.append(row)
            due = len(self._pending) >= FLUSH_ROWS or time.monotonic() - self._flushed >= FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows (one executemany; inside the hook path's per-call transaction
        when called from a call's after hook). A failure is logged and the rows dropped."""
        with self._lock:
            rows, self._pending = self._pending, []
            self._flushed = time.monotonic()
        if not rows:
            return
        try:
            with self.store.write() as conn:
                conn.executemany(_INSERT, rows)
        except Exception as exc:  # noqa: BLE001 - metrics never fail a run
            log.warning("metrics: %d row(s) not written: %s", len(rows), exc)

    def task_begins(
        self,
        key: str,
        agent: str | None,
        task: str,
        started: float,
        role: str | None = None,
        model: str | None = None,
    ) -> None:
        """The listener saw a task start (`started`: the event's wall-clock time)."""
        with self._lock:
            if agent:
                self.tasks[agent] = task
                self.agents[agent] = (role, model)
            self.active_task = task
            self.task_started[key] = started

    def task_ends(self, key: str, agent: str | None, task: str | None, ended: float) -> float | None:
        """The listener saw the task end: seconds it took (None when its start was not seen).
        The task's agent's model calls made while it ran that carry no task yet get it (the
        listener runs behind the calls, so the first calls of a task may have been written
        before it knew the task)."""
        with self._lock:
            started = self.task_started.pop(key, None)
            if agent and task and self.tasks.get(agent) == task:
                del self.tasks[agent]  # its later calls (outside a task) are not this task's
            if task and self.active_task == task:
                self.active_task = None
        if started is None:
            return None
        if task and agent:
            self.flush()  # the task's calls are in the table before they are labelled
            try:
                with self.store.write() as conn:
                    conn.execute(
                        "UPDATE metric_events SET task = ? WHERE run_id = ? AND kind = ? AND agent = ? "
                        "AND task IS NULL AND ts >= ? AND ts <= ?",
                        (task, self.run_id, MODEL_CALL, agent, started, ended),
                    )
            except Exception as exc:  # noqa: BLE001 - metrics never fail a run
                log.warning("metrics: task of model calls not set: %s", exc)
        return max(0.0, ended - started)


# -- retention -----------------------------------------------------------------------------------


def purge(store: Any, retention_days: float, now: float | None = None) -> int:
    """Delete metric rows older than `retention_days` (and SLO alerts of windows that old)."""
    cutoff = (time.time() if now is None else now) - retention_days * 86400.0
    with store.write() as conn:
        removed = conn.execute("DELETE FROM metric_events WHERE ts < ?", (cutoff,)).rowcount
        conn.execute("DELETE FROM slo_alerts WHERE window_end < ?", (cutoff,))
    return int(removed or 0)


def purge_due(store: Any, retention_days: float) -> None:
    """`purge`, at most once per `PURGE_EVERY_S` per process (called when a run starts)."""
    global _purged_at
    with _purge_lock:
        now = time.monotonic()
        if now - _purged_at < PURGE_EVERY_S:
            return
        _purged_at = now
    try:
        purge(store, retention_days)
    except Exception as exc:  # noqa: BLE001 - metrics never fail a run
        log.warning("metrics: old rows were not purged: %s", exc)


# -- queries -------------------------------------------------------------------------------------


@dataclass
class Stats:
    """One group's figures over a window (see the module docstring for each definition)."""

    group: dict[str, str | None]
    calls: int = 0  # attempts a model ran (ok + error)
    errors: int = 0
    error_rate: float | None = None
    availability: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    throughput_per_min: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cache_hits: int = 0
    replayed: int = 0
    refused: int = 0
    retries: int = 0  # fallback attempts plus guardrail retries
    logical_calls: int = 0
    failed_calls: int = 0  # logical calls no attempt answered
    tasks_completed: int = 0
    tasks_failed: int = 0
    guardrails_passed: int = 0
    guardrails_failed: int = 0
    tool_errors: int = 0
    agent_errors: int = 0
    llm_failures: int = 0  # CrewAI's LLMCallFailedEvent (a provider error it saw)
    _latencies: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if not k.startswith("_") and k != "group"}
        return {**self.group, **out}


@dataclass
class Summary:
    since: float
    until: float
    by: tuple[str, ...]
    rows: list[Stats]
    total: Stats

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "by": list(self.by),
            "groups": [r.as_dict() for r in self.rows],
            "total": self.total.as_dict(),
        }


STAT_FIELDS = tuple(f.name for f in fields(Stats) if not f.name.startswith("_") and f.name != "group")


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (`q` in 0..1) of an ascending list; None when it is empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


_LISTENER_COUNTS = {
    ("task_completed", None): "tasks_completed",
    ("task_failed", None): "tasks_failed",
    ("guardrail", "passed"): "guardrails_passed",
    ("guardrail", "failed"): "guardrails_failed",
    ("tool_error", None): "tool_errors",
    ("agent_error", None): "agent_errors",
    ("llm_failed", None): "llm_failures",
    ("retry", None): "retries",
}


def summarize(
    store: Any,
    since: float,
    until: float | None = None,
    by: tuple[str, ...] | list[str] = ("role", "model"),
    *,
    profile: str | None = None,
) -> Summary:
    """The figures of `metric_events` rows with `since <= ts < until`, grouped by `by`."""
    by = tuple(by)
    unknown = [k for k in by if k not in GROUP_KEYS]
    if unknown:
        raise UsageError(
            f"--by {unknown[0]!r} is not a metric dimension; use one of: {', '.join(GROUP_KEYS)}"
        )
    until = time.time() if until is None else until
    cols = ", ".join(by) + ", " if by else ""
    where = "ts >= ? AND ts < ?"
    args: tuple[Any, ...] = (since, until)
    if profile is not None:
        where += " AND profile = ?"
        args += (profile,)
    rows = store.read(
        f"SELECT {cols}kind, outcome, seconds, input_tokens, output_tokens, cost_usd, call_id, attempt "
        f"FROM metric_events WHERE {where} ORDER BY id",
        args,
    )
    n = len(by)
    groups: dict[tuple[Any, ...], Stats] = {}
    total = Stats(group={k: None for k in by})
    chains: dict[str, tuple[tuple[Any, ...], list[str]]] = {}  # call_id -> (group key, outcomes)
    for r in rows:
        key = tuple(r[:n])
        kind, outcome, seconds, tin, tout, cost, call_id, attempt = r[n:]
        s = groups.get(key)
        if s is None:
            s = groups[key] = Stats(group=dict(zip(by, key, strict=True)))
        for target in (s, total):
            _add(target, kind, outcome, seconds, tin, tout, cost, attempt)
        if kind == MODEL_CALL and call_id is not None:
            chain = chains.get(call_id)
            if chain is None:
                chains[call_id] = (key, [outcome])
            else:
                chain[1].append(outcome)
    for key, outcomes in chains.values():
        if "refused" in outcomes and not any(o in ANSWERED for o in outcomes):
            continue  # a refusal (budget, allowlist) is policy, not unavailability
        answered = any(o in ANSWERED for o in outcomes)
        for target in (groups[key], total):
            target.logical_calls += 1
            target.failed_calls += 0 if answered else 1
    minutes = max(until - since, 1e-9) / 60.0
    ordered = sorted(
        groups.values(), key=lambda s: tuple("" if v is None else str(v) for v in s.group.values())
    )
    for s in (*ordered, total):
        _finish(s, minutes)
    return Summary(since, until, by, ordered, total)


def _add(
    s: Stats, kind: str, outcome: str | None, seconds: Any, tin: Any, tout: Any, cost: Any, attempt: Any
) -> None:
    if kind != MODEL_CALL:
        name = _LISTENER_COUNTS.get((kind, outcome)) or _LISTENER_COUNTS.get((kind, None))
        if name is not None:
            setattr(s, name, getattr(s, name) + 1)
        return
    if outcome in RAN:
        s.calls += 1
        if outcome == "error":
            s.errors += 1
        if seconds is not None:
            s._latencies.append(float(seconds))
        s.input_tokens += int(tin or 0)
        s.output_tokens += int(tout or 0)
        s.cost_usd += float(cost or 0.0)
        if attempt:
            s.retries += 1
    elif outcome == "cached":
        s.cache_hits += 1
    elif outcome == "replayed":
        s.replayed += 1
    elif outcome == "refused":
        s.refused += 1


def _finish(s: Stats, minutes: float) -> None:
    lat = sorted(s._latencies)
    s.p50_ms, s.p95_ms, s.p99_ms = (
        None if (v := percentile(lat, q)) is None else round(v * 1000.0, 3) for q in (0.5, 0.95, 0.99)
    )
    s.error_rate = round(s.errors / s.calls, 6) if s.calls else None
    s.availability = round(1.0 - s.failed_calls / s.logical_calls, 6) if s.logical_calls else None
    s.throughput_per_min = round((s.calls - s.errors + s.cache_hits) / minutes, 4)
    s.cost_usd = round(s.cost_usd, 8)


# -- a run's segment -----------------------------------------------------------------------------


def from_settings(settings: Any, store: Any, run_id: str) -> MetricsSubscriber | None:
    """The run's subscriber (None when `metrics.enabled` is false); applies retention first."""
    cfg = settings.operations.metrics
    if not cfg.enabled:
        return None
    purge_due(store, cfg.retention_days)
    run = store.get_run(run_id)
    return MetricsSubscriber(store, run_id, flow=run.flow if run else None, profile=settings.profile_name)


def segment_started(settings: Any, store: Any) -> None:
    """When a run segment starts: the CrewAI listener, and the endpoint / OTel export if enabled."""
    if not settings.operations.metrics.enabled:
        return
    try:
        from crewkit.observability import export, listener

        listener.install()
        export.start_endpoint(settings, store)
        export.start_otel(settings, store)
    except Exception as exc:  # noqa: BLE001 - metrics never fail a run
        log.warning("metrics: not started: %s", exc)


def segment_ended(settings: Any, store: Any, run_id: str, subscriber: Any) -> None:
    """When a run segment ends: its last event rows in, then the profile's SLOs checked."""
    if subscriber is None:
        return
    from crewkit.observability import listener, slo

    subscriber.flush()
    listener.flush()  # CrewAI's handlers still running add their rows ...
    subscriber.flush()  # ... which are written now
    slo.check_quietly(settings, store, run_id)


# -- the SLO figures, aggregated by the database ---------------------------------------------------


@dataclass(frozen=True)
class Totals:
    """What an SLO check needs of a window, all of a profile's model calls together."""

    calls: int  # attempts a model ran
    errors: int
    p99_ms: float | None
    logical_calls: int
    failed_calls: int

    @property
    def error_rate(self) -> float | None:
        return round(self.errors / self.calls, 6) if self.calls else None

    @property
    def availability(self) -> float | None:
        return round(1.0 - self.failed_calls / self.logical_calls, 6) if self.logical_calls else None


def totals(store: Any, since: float, until: float, profile: str | None = None) -> Totals:
    """`Totals` of `since <= ts < until` in three aggregate queries (standard SQL): the end of
    every run checks the SLOs, so this must not load the window's rows into Python."""
    where = "kind = ? AND ts >= ? AND ts < ?"
    args: tuple[Any, ...] = (MODEL_CALL, since, until)
    if profile is not None:
        where += " AND profile = ?"
        args += (profile,)
    ran = "('ok', 'error')"
    calls, errors = store.read(
        f"SELECT COUNT(*), SUM(CASE WHEN outcome = 'error' THEN 1 ELSE 0 END) "
        f"FROM metric_events WHERE {where} AND outcome IN {ran}",
        args,
    )[0]
    calls, errors = int(calls or 0), int(errors or 0)
    p99 = None
    if calls:
        offset = calls - max(1, math.ceil(0.99 * calls))  # nearest rank, counted from the slowest
        row = store.read(
            f"SELECT seconds FROM metric_events WHERE {where} AND outcome IN {ran} "
            "ORDER BY seconds DESC LIMIT 1 OFFSET ?",
            (*args, offset),
        )
        p99 = round(float(row[0][0]) * 1000.0, 3) if row and row[0][0] is not None else None
    answered = ", ".join(f"'{o}'" for o in ANSWERED)
    logical, failed = store.read(
        "SELECT COUNT(*), SUM(CASE WHEN answered = 0 THEN 1 ELSE 0 END) FROM ("
        f"SELECT call_id, MAX(CASE WHEN outcome IN ({answered}) THEN 1 ELSE 0 END) AS answered, "
        "MAX(CASE WHEN outcome = 'refused' THEN 1 ELSE 0 END) AS refused "
        f"FROM metric_events WHERE {where} AND call_id IS NOT NULL GROUP BY call_id"
        ") chains WHERE NOT (refused = 1 AND answered = 0)",
        args,
    )[0]
    return Totals(calls, errors, p99, int(logical or 0), int(failed or 0))


def counts(store: Any, since: float, until: float, by: tuple[str, ...] = ("role", "model")) -> Summary:
    """The counters of `summarize` (calls, errors, tokens, cost, hits, retries, the listener's
    counts) aggregated by the database, without percentiles: what a Prometheus scrape of every
    row kept needs, at any table size."""
    by = tuple(by)
    if any(k not in GROUP_KEYS for k in by):
        raise UsageError(f"unknown metric dimension in {by!r}; use: {', '.join(GROUP_KEYS)}")
    cols = "".join(f"{k}, " for k in by)
    rows = store.read(
        f"SELECT {cols}kind, outcome, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost_usd), "
        "SUM(CASE WHEN attempt > 0 THEN 1 ELSE 0 END) FROM metric_events WHERE ts >= ? AND ts < ? "
        f"GROUP BY {cols}kind, outcome",
        (since, until),
    )
    n = len(by)
    groups: dict[tuple[Any, ...], Stats] = {}
    total = Stats(group={k: None for k in by})
    for r in rows:
        key = tuple(r[:n])
        kind, outcome, count, tin, tout, cost, fallbacks = r[n:]
        s = groups.get(key)
        if s is None:
            s = groups[key] = Stats(group=dict(zip(by, key, strict=True)))
        for target in (s, total):
            _add_counted(target, kind, outcome, int(count), int(tin or 0), int(tout or 0), float(cost or 0.0))
            if kind == MODEL_CALL and outcome in RAN:
                target.retries += int(fallbacks or 0)
    ordered = sorted(
        groups.values(), key=lambda s: tuple("" if v is None else str(v) for v in s.group.values())
    )
    for s in (*ordered, total):
        s.cost_usd = round(s.cost_usd, 8)
    return Summary(since, until, by, ordered, total)


def _add_counted(
    s: Stats, kind: str, outcome: str | None, count: int, tin: int, tout: int, cost: float
) -> None:
    if kind != MODEL_CALL:
        name = _LISTENER_COUNTS.get((kind, outcome)) or _LISTENER_COUNTS.get((kind, None))
        if name is not None:
            setattr(s, name, getattr(s, name) + count)
        return
    if outcome in RAN:
        s.calls += count
        if outcome == "error":
            s.errors += count
        s.input_tokens += tin
        s.output_tokens += tout
        s.cost_usd += cost
    elif outcome == "cached":
        s.cache_hits += count
    elif outcome == "replayed":
        s.replayed += count
    elif outcome == "refused":
        s.refused += count
