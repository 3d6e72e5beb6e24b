"""The memory room of the console: a tenant's long-term memories, each memory's versions, deleting one.

`GET /memory?tenant=T[&user=U&agent=A]` lists the scope's live memories (the tenant picker offers
every tenant `MemoryStore.known_tenants()` knows) and the tenant's recent memory changes from the
audit log; `GET /memory/{id}?tenant=T...` shows every version with its text and who wrote it, when
and why; `POST /memory/{id}/delete` removes every version and the vector (`MemoryStore.delete`,
audited as `memory.delete` with the signed-in person as actor). An id of another tenant (or user,
or agent) is unknown: 404, and nothing changes.

The store is opened per request and closed after it: the embedded Qdrant folder takes one client
at a time, so the console must not hold it while a run (another process) needs it. Listing and
history read state.db only; only a delete opens the vector store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from crewkit.errors import MemoryError_
from crewkit.memory import store as store_mod
from crewkit.memory.store import MAX_NAME_CHARS, MemoryStore, MemoryStoreError, Scope
from crewkit.web import auth
from crewkit.web.render import page

router = APIRouter()

# one store user at a time in this process: a request closes the store it opened, and the
# embedded vector folder allows one client
_STORE_LOCK = threading.Lock()

Name = Annotated[str | None, Query(max_length=MAX_NAME_CHARS)]


@contextmanager
def opened(request: Request) -> Iterator[MemoryStore]:
    """The project's memory store for one request, closed after it (vector store included)."""
    with _STORE_LOCK, store_mod.opened(request.app.state.settings) as store:
        yield store


def scope_of(tenant: str | None, user: str | None, agent: str | None) -> Scope:
    """The scope a page or form names; empty fields mean "any" (the tenant defaults to 'default')."""
    return Scope(
        (tenant or "").strip() or "default", (user or "").strip() or None, (agent or "").strip() or None
    ).checked()


def scope_query(scope: Scope) -> str:
    """`tenant=T&user=U&agent=A` (the parts given) for links back to the same scope."""
    return urlencode(scope.filter())


@router.get("/memory")
def memories(request: Request, tenant: Name = None, user: Name = None, agent: Name = None,
             limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> Response:  # fmt: skip
    scope = scope_of(tenant, user, agent)
    with opened(request) as store:
        store.require_tenant(scope.tenant)
        counts = store.tenant_counts()
        tenants = [(name, counts.get(name, 0)) for name in store.known_tenants()]
        rows = store.list_memories(scope, limit=limit + 1)
        changes = store.changes(scope.tenant, limit=20)
    return page(
        request,
        "memory_list.html",
        scope=scope,
        query=scope_query(scope),
        tenants=tenants,
        memories=rows[:limit],
        more=len(rows) > limit,
        limit=limit,
        changes=changes,
    )


@router.get("/memory/{memory_id}")
def memory(
    request: Request, memory_id: str, tenant: Name = None, user: Name = None, agent: Name = None
) -> Response:
    scope = scope_of(tenant, user, agent)
    with opened(request) as store:
        current = store.get(memory_id, scope)  # 404: unknown, deleted, or not in this scope
        versions = store.history(memory_id, scope)
        changes = store.changes(current.tenant, memory_id, limit=1000)
    return page(
        request,
        "memory_detail.html",
        scope=scope,
        query=scope_query(scope),
        memory=current,
        versions=[(v, why(v, changes)) for v in reversed(versions)],
        changes=changes,
    )


def why(version: Any, changes: list[Any]) -> dict[str, Any]:
    """Who wrote `version` and why: the audit record that made it (its actor, action, detail)."""
    for record in changes:
        if record.action in ("memory.add", "memory.update", "memory.rollback") and (
            record.detail.get("version") == version.version
        ):
            reason = {"memory.add": "added", "memory.update": "updated", "memory.rollback": "rolled back"}
            text = reason[record.action]
            if record.action == "memory.rollback":
                text += f" to the text of version {record.detail.get('to_version')}"
            return {"who": record.actor, "what": text, "seq": record.seq}
    return {"who": None, "what": None, "seq": None}


@router.post("/memory/{memory_id}/delete")
def delete(request: Request, memory_id: str, who: auth.Actor) -> Response:
    scope = scope_of(
        who.text("tenant", "the tenant", max_chars=MAX_NAME_CHARS),
        who.text("user", "the user", max_chars=MAX_NAME_CHARS, required=False),
        who.text("agent", "the agent", max_chars=MAX_NAME_CHARS, required=False),
    )
    with opened(request) as store:
        try:
            versions = store.delete(memory_id, scope, actor=who.name)
        except MemoryStoreError:
            raise  # unknown id (404) or a refused write (422): nothing changed
        except MemoryError_ as exc:  # the vector store is locked or unreachable: nothing changed
            raise auth.WebError(503, f"{exc} (nothing was changed)") from None
    auth.flash(
        request,
        f"deleted memory {memory_id}: {versions} version(s) and its vector removed "
        f"(audited as memory.delete by {who.name})",
    )
    return RedirectResponse(f"/memory?{scope_query(scope)}", status_code=303)
