"""Service level objectives per deployment profile, checked on the run metrics.

A profile's `slo:` (config/profiles.yaml) sets three targets: `p99_ms` (the 99th percentile of
model-call latency), `error_rate` (failed model attempts / attempts) and `availability`
(logical model calls that got an answer / all of them; see `crewkit.observability.metrics`).
They are checked over the trailing `metrics.slo_window` (config/operations.yaml) on the rows
recorded under that profile; with fewer than `metrics.slo_min_calls` model calls in the window
there is no verdict (and no alert): a handful of calls says nothing about a p99.

`check` raises an alert for each breached objective once per window: windows are aligned to
the epoch (a 1h window: each UTC hour), and a row in `slo_alerts` (primary key profile, SLO,
window start) makes a second alert in the same window impossible, also across processes. The
alert is an audit record (`slo.breached`) in the same transaction, then, once committed, a
WARNING log line and the profile's alert sinks (`budgets.sinks`: the JSONL file, the webhook),
the same ones budget alerts use (`crewkit.observability.alerts`). A run checks the SLOs when
it ends (at most every `CHECK_EVERY_S` per process: the figures are three aggregate queries over
the window, ~35 ms for 12,000 calls on a busy 2-core machine); `crewkit metrics --check-slo` checks them on demand (exit 1
on a breach), e.g. from cron when runs are rare.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crewkit.governance import audit
from crewkit.observability import alerts, metrics

log = logging.getLogger(__name__)

CHECK_EVERY_S = 10.0  # the end-of-run check, at most this often per store and profile per process
_checked_at: dict[tuple[str, str], float] = {}
_checked_lock = threading.Lock()

# name, how the value compares with the target to be within the objective
OBJECTIVES: tuple[tuple[str, str], ...] = (("p99_ms", "<="), ("error_rate", "<="), ("availability", ">="))


@dataclass(frozen=True)
class SloResult:
    slo: str
    target: float
    value: float | None  # None: nothing to measure (no call ran)
    ok: bool | None  # None: no verdict (too few calls in the window)

    def as_dict(self) -> dict[str, Any]:
        return {"slo": self.slo, "target": self.target, "value": self.value, "ok": self.ok}


@dataclass(frozen=True)
class SloReport:
    profile: str
    window: str
    since: float
    until: float
    calls: int
    min_calls: int
    results: tuple[SloResult, ...]

    @property
    def enough(self) -> bool:
        return self.calls >= self.min_calls

    @property
    def breached(self) -> list[SloResult]:
        return [r for r in self.results if r.ok is False]

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "window": self.window,
            "since": self.since,
            "until": self.until,
            "calls": self.calls,
            "min_calls": self.min_calls,
            "enough_calls": self.enough,
            "results": [r.as_dict() for r in self.results],
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def evaluate(settings: Any, store: Any, now: float | None = None) -> SloReport:
    """The profile's SLOs over the trailing window ending `now`."""
    now = time.time() if now is None else now
    cfg = settings.operations.metrics
    window = metrics.parse_duration(cfg.slo_window)
    since = now - window
    total = metrics.totals(store, since, now + 1e-6, profile=settings.profile_name)
    enough = total.calls >= cfg.slo_min_calls
    slo = settings.profile.slo
    values = {"p99_ms": total.p99_ms, "error_rate": total.error_rate, "availability": total.availability}
    results = []
    for name, op in OBJECTIVES:
        target = float(getattr(slo, name))
        value = values[name]
        ok: bool | None = None  # no verdict: too few calls, or nothing measured
        if enough and value is not None:
            ok = value <= target if op == "<=" else value >= target
        results.append(SloResult(name, target, value, ok))
    return SloReport(
        settings.profile_name, cfg.slo_window, since, now, total.calls, cfg.slo_min_calls, tuple(results)
    )


def _line(event: dict[str, Any]) -> str:
    unit = {"p99_ms": " ms", "error_rate": "", "availability": ""}[event["slo"]]
    op = "above" if event["slo"] != "availability" else "below"
    return (
        f"SLO breached: {event['slo']} of profile '{event['profile']}' is {event['value']:g}{unit}, "
        f"{op} its target {event['target']:g}{unit} over the last {event['window']} ({event['calls']} calls)"
    )


def check(
    settings: Any, store: Any, now: float | None = None, run_id: str | None = None
) -> tuple[SloReport, list[dict[str, Any]]]:
    """Evaluate and alert each breach not yet alerted in this window; returns the report and the
    alerts raised now (sent to the sinks once the transaction commits)."""
    now = time.time() if now is None else now
    report = evaluate(settings, store, now)
    breached = report.breached
    if not breached:
        return report, []
    window = metrics.parse_duration(report.window)
    start = math.floor(now / window) * window
    raised: list[dict[str, Any]] = []
    with store.write() as conn:
        for r in breached:
            cur = conn.execute(
                "INSERT INTO slo_alerts (profile, slo, window_start, window_end, value, target, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (profile, slo, window_start) DO NOTHING",
                (report.profile, r.slo, start, start + window, float(r.value or 0.0), r.target, now),
            )
            if cur.rowcount != 1:
                continue  # already alerted in this window
            event = {
                "event": "slo.breached",
                "ts": _iso(now),
                "profile": report.profile,
                "slo": r.slo,
                "value": r.value,
                "target": r.target,
                "window": report.window,
                "window_start": _iso(start),
                "window_end": _iso(start + window),
                "calls": report.calls,
                "run_id": run_id,
            }
            audit.append(
                conn,
                audit.Entry("slo.breached", f"{r.slo} of profile {report.profile}", event, run_id=run_id),
                ts=now,
            )
            raised.append(event)
    if raised:
        sinks = settings.profile.budgets.sinks
        store.after_commit(
            lambda: [
                alerts.send(e, _line(e), sinks, settings.project_dir, what="SLO alert", logger=log)
                for e in raised
            ]
        )
    return report, raised


def check_quietly(settings: Any, store: Any, run_id: str | None = None) -> None:
    """`check` at the end of a run, at most once per `CHECK_EVERY_S` per store and profile in this
    process (runs ending together check once); a failure is logged, never raised."""
    key = (str(getattr(store, "path", id(store))), settings.profile_name)
    with _checked_lock:
        now = time.monotonic()
        if now - _checked_at.get(key, float("-inf")) < CHECK_EVERY_S:
            return
        _checked_at[key] = now
    try:
        check(settings, store, run_id=run_id)
    except Exception as exc:  # noqa: BLE001
        log.warning("SLO check failed: %s", exc)
