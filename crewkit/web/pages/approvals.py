"""The approvals room: what waits for a person, why, and their decision.

`GET /approvals` lists the queue (pending by default; `?status=approved|rejected|all`), each with
what is asked, its tier, the risk reasons, who may decide, who requested the run and when it
expires. `GET /approvals/{id}` shows the content to review in full, the reasons per item and the
run's plan, with a form to approve or reject (a rejection needs a reason). The decision is taken
by `crewkit.governance.approvals.decide` under the signed-in name (it enforces the approvers,
the four-eyes rule, expiry and "decided already"), audited by the store; then the run continues
(`crewkit.web.resume.continue_run`) and the browser lands on the run's page. Expired approvals
take their default before anything is shown or decided.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from crewkit.errors import CrewkitError
from crewkit.governance import approvals
from crewkit.web import auth, resume
from crewkit.web.render import page

router = APIRouter()

STATUSES = ("pending", "approved", "rejected", "all")
MAX_NOTE_CHARS = 2000
DEFAULT_LIMIT, MAX_LIMIT = 200, 2000  # rows of the list (newest first)
WHAT_PREVIEW = 240  # characters of the content shown per row of the queue
_EXPIRY_WORDS = {"reject": "rejected", "rejected": "rejected", "approve": "approved", "approved": "approved"}


def view(a: Any) -> dict[str, Any]:
    """An approval as the templates show it: the store's row plus the subject's parts."""
    subject = a.subject if isinstance(a.subject, dict) else {}
    content = subject.get("content")
    what = subject.get("what") or a.step
    preview = content if isinstance(content, str) and content else None
    if preview and len(preview) > WHAT_PREVIEW:
        preview = preview[: WHAT_PREVIEW - 1] + "…"
    return {
        "id": a.id,
        "run_id": a.run_id,
        "step": a.step,
        "tier": a.tier,
        "status": a.status,
        "kind": subject.get("kind") or "",
        "what": what,
        "content": content if isinstance(content, str) else None,
        "preview": preview,
        "arguments": _as_text(subject.get("arguments")),
        "reasons": _reasons(subject, a.reason),
        "checks": [i for i in subject.get("items") or [] if isinstance(i, dict)],
        "who_may_decide": subject.get("who_may_decide") or (", ".join(a.approvers) or "anyone"),
        "approvers": list(a.approvers or []),
        "requester": subject.get("requester"),
        "on_expiry": _EXPIRY_WORDS.get(str(subject.get("on_expiry") or a.on_expiry), "rejected"),
        "created": a.created,
        "expires_at": a.expires_at,
        "decided": a.decided,
        "decided_by": a.decided_by,
        "note": a.note,
    }


def _as_text(value: Any) -> str | None:
    if value in (None, {}, []):
        return None
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _reasons(subject: dict[str, Any], reason: str) -> list[str]:
    why = list(dict.fromkeys(str(r) for r in subject.get("why") or [] if r))  # once each, in order
    return why or [part.strip() for part in (reason or "").split("|") if part.strip()]


def _plan(request: Request, run_id: str) -> tuple[Any, list[dict[str, Any]]]:
    """The run's row and its plan (from the run record); (None, []) when the run is gone."""
    from crewkit.runtime import runs

    run = request.app.state.store.get_run(run_id)
    if run is None:
        return None, []
    try:
        plan = runs.detail(request.app.state.settings, run_id).get("plan") or []
    except CrewkitError:
        plan = []
    return run, [p if isinstance(p, dict) else {"description": str(p)} for p in plan]


@router.get("/approvals")
def queue(request: Request, status: str = "pending", limit: int = DEFAULT_LIMIT) -> Response:
    if status not in STATUSES:
        raise auth.WebError(422, f"status must be one of {', '.join(STATUSES)}, not '{status}'")
    if not 1 <= limit <= MAX_LIMIT:
        raise auth.WebError(422, f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    store = request.app.state.store
    store.expire_due()
    rows = store.list_approvals(status=None if status == "all" else status)
    return page(
        request,
        "approvals_list.html",
        items=[view(a) for a in rows[:limit]],
        total=len(rows),
        limit=limit,
        shown=status,
        statuses=STATUSES,
    )


@router.get("/approvals/{approval_id}")
def show(request: Request, approval_id: str) -> Response:
    store = request.app.state.store
    store.expire_due()
    approval = view(store.require_approval(approval_id))
    run, plan = _plan(request, approval["run_id"])
    return page(
        request,
        "approvals_detail.html",
        a=approval,
        run=run,
        plan=plan,
        max_note=MAX_NOTE_CHARS,
        on_reject=request.app.state.settings.governance.approvals.on_reject,
    )


@router.post("/approvals/{approval_id}/approve")
def approve(request: Request, who: auth.Actor, approval_id: str) -> Response:
    return _decide(request, who, approval_id, "approve")


@router.post("/approvals/{approval_id}/reject")
def reject(request: Request, who: auth.Actor, approval_id: str) -> Response:
    return _decide(request, who, approval_id, "reject")


def _decide(request: Request, who: auth.Acting, approval_id: str, decision: str) -> Response:
    """Take the decision under the signed-in name, continue the run, land on the run's page."""
    label = "the reason" if decision == "reject" else "the note"
    note = who.text("note", label, max_chars=MAX_NOTE_CHARS, required=False)
    store = request.app.state.store
    store.expire_due()
    current = store.require_approval(approval_id)  # unknown: 404, nothing changed
    if decision == "reject" and current.status == "pending" and not note:
        raise auth.WebError(
            422,
            "a rejection needs a reason: write it in the note and press Reject again (nothing was changed)",
        )
    decided = approvals.decide(
        store, request.app.state.settings, approval_id, decision, who.name, note or None
    )
    auth.flash(request, f"approval {decided.id} {decided.status} by {decided.decided_by}")
    auth.flash(request, _continue(request, decided.run_id))
    return RedirectResponse(f"/runs/{decided.run_id}", status_code=303)


def _continue(request: Request, run_id: str) -> str:
    """Continue the run when it can go on; one line for the page either way."""
    from crewkit.runtime import runner

    store = request.app.state.store
    run = store.get_run(run_id)
    if run is None:
        return f"run {run_id} is gone; nothing to continue"
    try:
        runner.check_continuable(store, run)
    except CrewkitError as exc:  # finished already, or waiting for another approval
        return f"the run was not continued: {exc}"
    try:
        return resume.continue_run(request, run_id)
    except CrewkitError as exc:
        return f"the decision is recorded, but the run did not continue: {exc}; run `crewkit resume {run_id}`"
