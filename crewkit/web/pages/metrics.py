"""The metrics and schedules rooms of the console: read-only views of the engine's figures.

`GET /metrics` shows what `crewkit metrics` prints (latency percentiles, error rate, calls,
tokens and cost per group over a window, `crewkit.observability.metrics.summarize`), each
profile's SLOs (`crewkit.observability.slo.evaluate`) and budgets (`crewkit budgets show`,
`Budgets.show`), and an inline-SVG bar chart of one figure per group. `GET /schedules` and
`GET /schedules/{job}` show the jobs of config/schedules.yaml with their next fire times and
their recorded fires (`crewkit schedule list|fires`: `scheduler.listing`, `scheduler.history`),
each fire linking to its run. Bad query values answer 422 with one line; nothing here writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from crewkit.errors import CrewkitError, NotFound, UsageError
from crewkit.observability import metrics, slo
from crewkit.web import auth
from crewkit.web.render import page, percent, seconds, usd

router = APIRouter()

DEFAULT_SINCE = "24h"
DEFAULT_BY = "role,model"
WINDOWS = ("1h", "24h", "7d", "30d")  # the quick links above the form
MAX_BY_TEXT = 200
MAX_SINCE_TEXT = 64
MAX_BARS = 20
CHART_WIDTH = 720
LABEL_WIDTH = 240
BAR_HEIGHT = 20
BAR_GAP = 6


@dataclass(frozen=True)
class ChartKind:
    label: str
    field: str
    unit: str  # how a value is shown: ms, usd, count, percent


CHARTS: dict[str, ChartKind] = {
    "p95": ChartKind("p95 latency", "p95_ms", "ms"),
    "p50": ChartKind("p50 latency", "p50_ms", "ms"),
    "p99": ChartKind("p99 latency", "p99_ms", "ms"),
    "calls": ChartKind("model calls", "calls", "count"),
    "errors": ChartKind("error rate", "error_rate", "percent"),
    "tokens": ChartKind("tokens (in + out)", "tokens", "count"),
    "cost": ChartKind("cost", "cost_usd", "usd"),
}


# -- /metrics --------------------------------------------------------------------------------------


def window_start(since: str, now: float) -> float:
    """`since` (an age like 24h / 7d or an ISO date/time) as unix seconds; 422 when it is not one."""
    text = since.strip()
    if not text:
        raise auth.WebError(422, "since is empty; use an age (1h, 24h, 7d) or an ISO date (2026-11-01)")
    if len(text) > MAX_SINCE_TEXT:
        raise auth.WebError(
            422, f"since is longer than {MAX_SINCE_TEXT} characters; use an age (24h) or an ISO date"
        )
    try:
        start = metrics.parse_since(text, now)
    except UsageError as exc:
        raise auth.WebError(422, str(exc).replace("--since", "since")) from None
    if start > now:
        raise auth.WebError(422, f"since {since!r} is in the future; give an age (24h) or a past date")
    return start


def group_keys(by: str) -> tuple[str, ...]:
    """`by` (comma-separated dimensions; `?by=role&by=model` arrives joined) as a tuple without
    repeats; 422 for an unknown one."""
    if len(by) > MAX_BY_TEXT:
        raise auth.WebError(422, f"by is longer than {MAX_BY_TEXT} characters")
    keys = tuple(dict.fromkeys(k.strip() for k in by.split(",") if k.strip()))
    if not keys:
        raise auth.WebError(422, f"by is empty; group by one or more of: {', '.join(metrics.GROUP_KEYS)}")
    unknown = [k for k in keys if k not in metrics.GROUP_KEYS]
    if unknown:
        raise auth.WebError(
            422, f"by {unknown[0]!r} is not a metric dimension; use one of: {', '.join(metrics.GROUP_KEYS)}"
        )
    return keys


def chart_kind(chart: str) -> ChartKind:
    kind = CHARTS.get(chart.strip())
    if kind is None:
        raise auth.WebError(422, f"chart {chart!r} is not a figure to chart; use one of: {', '.join(CHARTS)}")
    return kind


def profile_name(settings: Any, profile: str) -> str | None:
    """The `profile` filter (None: every profile); 422 for a profile profiles.yaml does not name."""
    name = profile.strip()
    if not name:
        return None
    known = list(settings.profiles.profiles)
    if name not in known:
        raise auth.WebError(
            422, f"profile {name!r} is not in config/profiles.yaml; the profiles are {', '.join(known)}"
        )
    return name


def show_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return seconds(value / 1000.0)
    if unit == "usd":
        return usd(value)
    if unit == "percent":
        return percent(value)
    if unit == "fine percent":  # SLO figures: 99.99% must not read as 100.0%
        return f"{100 * value:.4g}%"
    return f"{value:,.0f}"


def figure(stats: metrics.Stats, kind: ChartKind) -> float | None:
    if kind.field == "tokens":
        return float(stats.input_tokens + stats.output_tokens)
    value = getattr(stats, kind.field)
    return None if value is None else float(value)


def group_label(group: dict[str, str | None]) -> str:
    return " · ".join("-" if v is None else str(v) for v in group.values()) or "all"


def bar_chart(rows: list[metrics.Stats], kind: ChartKind) -> dict[str, Any]:
    """The bars of one figure per group (largest first, at most MAX_BARS), laid out for an SVG."""
    values = [(group_label(s.group), figure(s, kind)) for s in rows]
    measured = sorted(((g, v) for g, v in values if v is not None), key=lambda gv: -gv[1])
    shown = measured[:MAX_BARS]
    top = max((v for _, v in shown), default=0.0)
    span = CHART_WIDTH - LABEL_WIDTH - 90  # room for the value text after the bar
    bars = []
    for i, (label, value) in enumerate(shown):
        width = 0.0 if top <= 0 else max(1.0, span * value / top)
        bars.append(
            {
                "label": label if len(label) <= 34 else label[:33] + "…",
                "full": label,
                "text": show_value(value, kind.unit),
                "y": i * (BAR_HEIGHT + BAR_GAP),
                "width": round(width, 1),
            }
        )
    return {
        "kind": kind,
        "bars": bars,
        "height": max(1, len(bars)) * (BAR_HEIGHT + BAR_GAP),
        "width": CHART_WIDTH,
        "label_width": LABEL_WIDTH,
        "bar_height": BAR_HEIGHT,
        "left_out": len(measured) - len(shown),
        "unmeasured": len(values) - len(measured),
    }


def budget_state(row: dict[str, Any]) -> str:
    used = row.get("used")
    if used is None:
        return "no limit" if row.get("limit") is None else "ok"
    return "exceeded" if used >= 1.0 else "near" if used >= 0.8 else "ok"


def profile_status(settings: Any, store: Any, name: str, now: float) -> dict[str, Any]:
    """One profile's SLO report and budgets (what `crewkit metrics` and `crewkit budgets show`
    print under `--profile name`); a profile that cannot be read carries its error instead."""
    from crewkit.governance.budget import Budgets

    try:
        chosen = settings.with_profile(name)
        report = slo.evaluate(chosen, store, now)
        budgets = Budgets(store, chosen).show(now)
    except CrewkitError as exc:
        return {"name": name, "error": str(exc), "report": None, "budgets": []}
    slos = []
    for r in report.results:
        unit = "ms" if r.slo == "p99_ms" else "fine percent"
        verdict = "not enough data" if r.ok is None else "ok" if r.ok else "breached"
        op = ">=" if r.slo == "availability" else "<="
        slos.append(
            {
                "slo": r.slo,
                "value": show_value(r.value, unit),
                "target": f"{op} {show_value(r.target, unit)}",
                "verdict": verdict,
                "css": {"ok": "ok", "breached": "breached"}.get(verdict, "nodata"),
            }
        )
    for row in budgets:
        row["state"] = budget_state(row)
    return {
        "name": name,
        "error": None,
        "report": report,
        "slos": slos,
        "budgets": budgets,
        "current": name == settings.profile_name,
    }


@router.get("/metrics")
def metrics_page(
    request: Request,
    since: str = DEFAULT_SINCE,
    by: Annotated[list[str] | None, Query()] = None,
    chart: str = "p95",
    profile: str = "",
) -> Response:
    settings = request.app.state.settings
    store = request.app.state.store
    now = time.time()
    start = window_start(since, now)
    keys = group_keys(DEFAULT_BY if by is None else ",".join(by))
    kind = chart_kind(chart)
    only = profile_name(settings, profile)
    summary = metrics.summarize(store, start, now + 1e-6, keys, profile=only)
    profiles = [profile_status(settings, store, name, now) for name in settings.profiles.profiles]
    return page(
        request,
        "metrics_index.html",
        since=since.strip(),
        by=",".join(keys),
        chart=chart.strip(),
        profile=only or "",
        summary=summary,
        keys=keys,
        windows=WINDOWS,
        charts=CHARTS,
        dimensions=metrics.GROUP_KEYS,
        graph=bar_chart(summary.rows, kind),
        profiles=profiles,
        profile_names=list(settings.profiles.profiles),
        recording=settings.operations.metrics.enabled,
        ms=lambda value: show_value(value, "ms"),
    )


# -- /schedules ------------------------------------------------------------------------------------


def stamp(iso: str | None) -> float | None:
    """An ISO time of the scheduler's listings as unix seconds (for `ago`); None when absent."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def fire_rows(fires: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`scheduler.history` rows with the fire's time as unix seconds and a one-line note."""
    out = []
    for fire in fires:
        detail = fire.get("detail") or {}
        note = detail.get("reason") or detail.get("error") or ""
        if detail.get("coalesced"):
            note = (
                note + "; " if note else ""
            ) + f"{detail['coalesced']} missed fire(s) folded into this one"
        out.append({**fire, "ts": stamp(fire["fire_time"]), "note": str(note)})
    return out


def job_rows(settings: Any, now: float, count: int) -> list[dict[str, Any]]:
    from crewkit.scheduling import scheduler

    rows = []
    for job in scheduler.listing(settings, now, count):
        job["next"] = [(t, stamp(t)) for t in job["next_fires"]]
        last = job["last_fire"]
        job["last"] = None if last is None else {**last, "ts": stamp(last["fire_time"])}
        rows.append(job)
    return rows


@router.get("/schedules")
def schedules_page(
    request: Request,
    count: int = Query(3, ge=1, le=20, description="next fire times per job"),
    limit: int = Query(20, ge=1, le=500, description="recent fires shown"),
) -> Response:
    from crewkit.scheduling import scheduler

    settings = request.app.state.settings
    now = time.time()
    return page(
        request,
        "schedules_index.html",
        jobs=job_rows(settings, now, count),
        fires=fire_rows(scheduler.history(settings, None, limit)),
        count=count,
        limit=limit,
        now=now,
    )


@router.get("/schedules/{job}")
def schedule_page(
    request: Request,
    job: str,
    count: int = Query(5, ge=1, le=20, description="next fire times"),
    limit: int = Query(50, ge=1, le=500, description="fires shown"),
) -> Response:
    from crewkit.scheduling import scheduler
    from crewkit.settings import suggest

    settings = request.app.state.settings
    config = settings.schedules.job(job)
    fires = fire_rows(scheduler.history(settings, job, limit))
    if config is None and not fires:
        names = [j.name for j in settings.schedules.jobs]
        raise NotFound(
            f"no job '{job}' in config/schedules.yaml{suggest(job, names)}; jobs: {', '.join(names) or 'none'}"
        )
    now = time.time()
    # a job taken out of config/schedules.yaml keeps its recorded fires: shown without its settings
    listed = next((j for j in job_rows(settings, now, count) if j["job"] == job), None)
    return page(
        request,
        "schedules_job.html",
        name=job,
        job=listed,
        config=config,
        fires=fires,
        count=count,
        limit=limit,
        now=now,
    )
