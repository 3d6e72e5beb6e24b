"""The runs room: every run with its status, cost and duration; one run in full; resume.

`GET /runs` lists runs newest first (`?status=`, `?limit=`, `?offset=` pages), `GET /runs/{id}`
shows what `crewkit runs show` shows (crewkit.runtime.runs.detail: plan with task types and risk
tiers, steps with agent/role/model, seconds, tokens and cost, routing, guardrail verdicts,
verification, approvals, result, error) and the run's audit trail; the page reloads itself every
3 s while the run is queued or running. `POST /runs/{id}/resume` continues a paused (decided),
failed, interrupted or rolled-back run (`runs.resumable` says why not: 409), audited as
`run.resume_requested` under the signed-in name.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from crewkit.errors import Conflict
from crewkit.governance import audit
from crewkit.runtime import runs
from crewkit.runtime.store import RunRow
from crewkit.web import auth
from crewkit.web.render import page
from crewkit.web.resume import continue_run

router = APIRouter()

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_OFFSET = 1_000_000
LIVE = ("queued", "running")  # the run page reloads itself while the run is in one of these
# ... and for a while after a person asked it to go on, until its process has taken it
CONTINUING = ("run.resume_requested", "approval.approved", "approval.rejected")
CONTINUING_FOR_S = 120.0
AUDIT_SHOWN = 1000


def _page_args(status: str | None, limit: int, offset: int) -> str | None:
    """The listing's query, checked: the status filter (None: all); WebError 422 otherwise."""
    if not 1 <= limit <= MAX_LIMIT:
        raise auth.WebError(422, f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    if not 0 <= offset <= MAX_OFFSET:
        raise auth.WebError(422, f"offset must be between 0 and {MAX_OFFSET:,}, not {offset}")
    status = (status or "").strip() or None
    if status not in (None, "all", *runs.STATUSES):
        raise auth.WebError(422, f"unknown status '{status}'; use one of: all, {', '.join(runs.STATUSES)}")
    return None if status == "all" else status


def duration(row: RunRow, now: float | None = None) -> float:
    """Seconds from the start to the last change (to now while it is queued or running)."""
    end = (time.time() if now is None else now) if row.status in LIVE else row.updated
    return max(0.0, end - row.created)


def _listed(store: Any, row: RunRow) -> dict[str, Any]:
    return {
        "row": row,
        "paid": runs.paid(store, row.run_id),
        "duration": duration(row),
        "gone": store.process_gone(row),
    }


@router.get("/runs")
def list_runs(
    request: Request, status: str | None = None, limit: int = DEFAULT_LIMIT, offset: int = 0
) -> Response:
    wanted = _page_args(status, limit, offset)
    store = request.app.state.store
    rows = store.list_runs(status=wanted, limit=limit + 1, offset=offset)
    more = len(rows) > limit
    counts = runs.status_counts(store)
    return page(
        request,
        "runs_list.html",
        runs=[_listed(store, r) for r in rows[:limit]],
        shown_status=wanted,
        limit=limit,
        offset=offset,
        more=more,
        counts=counts,
        total=sum(counts.values()),
        statuses=[s for s in runs.STATUSES if counts.get(s)],
    )


def _compact(detail: dict[str, Any]) -> str:
    shown = {k: v for k, v in detail.items() if k != "run_id"}
    return json.dumps(shown, ensure_ascii=False, sort_keys=True) if shown else ""


def _trail(store: Any, run_id: str) -> list[dict[str, Any]]:
    return [
        {"seq": r.seq, "ts": r.ts, "actor": r.actor, "action": r.action, "subject": r.subject,
         "detail": _compact(r.detail if isinstance(r.detail, dict) else {"text": r.detail})}
        for r in audit.records(store, run_id, limit=AUDIT_SHOWN)
    ]  # fmt: skip


def _guard(steps: list[dict[str, Any]], blocked: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every guardrail verdict of the run: the guard steps', else the blocked result's."""
    verdicts = [v for s in steps for v in (s.get("verdicts") or [])]
    return verdicts or list((blocked or {}).get("verdicts") or [])


def _resume_refusal(store: Any, run_id: str) -> str | None:
    try:
        runs.resumable(store, run_id)
    except Conflict as exc:
        return str(exc)
    return None


def continuing(trail: list[dict[str, Any]], refusal: str | None, now: float | None = None) -> bool:
    """A person just decided or asked for a resume and the run's process has not taken it yet."""
    if refusal is not None or not trail or trail[-1]["action"] not in CONTINUING:
        return False
    return (time.time() if now is None else now) - trail[-1]["ts"] < CONTINUING_FOR_S


def _dicts(items: Any, key: str = "description") -> list[dict[str, Any]]:
    """A record's list as dicts: any flow may write its own shapes (a plain-text plan item, say)."""
    if not isinstance(items, list):
        return []
    return [item if isinstance(item, dict) else {key: str(item)} for item in items]


def _dict_or_none(value: Any, key: str = "summary") -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    return {key: str(value)}


def shaped(detail: dict[str, Any]) -> dict[str, Any]:
    """`runs.detail` with the record's parts in the shapes the page shows (see `_dicts`)."""
    result = detail.get("result")
    usage = detail.get("usage") if isinstance(detail.get("usage"), dict) else {}
    return {
        **detail,
        "plan": _dicts(detail.get("plan")),
        "steps": _dicts(detail.get("steps"), "step"),
        "routing": _dicts(detail.get("routing"), "reason"),
        "gates": _dicts(detail.get("gates"), "outcome"),
        "verification": _dict_or_none(detail.get("verification")),
        "blocked": _dict_or_none(detail.get("blocked"), "sha256"),
        "rollback": _dict_or_none(detail.get("rollback"), "to_step"),
        "limitations": [str(x) for x in detail.get("limitations") or [] if x],
        "usage": {str(k): v for k, v in usage.items() if isinstance(v, dict)},
        "result": result
        if result is None or isinstance(result, str)
        else json.dumps(result, ensure_ascii=False, indent=2),
    }


@router.get("/runs/{run_id}")
def show_run(request: Request, run_id: str) -> Response:
    store = request.app.state.store
    row = store.require_run(run_id)  # unknown: 404
    detail = shaped(runs.detail(request.app.state.settings, run_id))
    model_steps = [s for s in detail["steps"] if s.get("role") is not None]
    trail = _trail(store, run_id)
    refusal = _resume_refusal(store, run_id)
    return page(
        request,
        "runs_detail.html",
        run=detail,
        row=row,
        live=row.status in LIVE,
        continuing=row.status not in LIVE and continuing(trail, refusal),
        duration=duration(row),
        paid=runs.paid(store, run_id),
        inputs=json.dumps(detail["inputs"], ensure_ascii=False, indent=2),
        model_steps=model_steps,
        guard=_guard(detail["steps"], detail.get("blocked")),
        trail=trail,
        trail_cut=len(trail) >= AUDIT_SHOWN,
        refusal=refusal,
        gone=store.process_gone(row),
    )


@router.post("/runs/{run_id}/resume")
def resume_run(request: Request, run_id: str, who: auth.Actor) -> Response:
    store = request.app.state.store
    runs.resumable(store, run_id)  # unknown: 404; finished, running, waiting for a person: 409
    said = continue_run(request, run_id)  # it cannot start: its error page, nothing audited
    audit.record(
        store, audit.Entry("run.resume_requested", f"run {run_id}", {}, actor=who.name, run_id=run_id)
    )
    auth.flash(request, said)
    return RedirectResponse(f"/runs/{quote(run_id, safe='')}", status_code=303)
