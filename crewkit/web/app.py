"""The console's ASGI app: the routers of `pages/`, sign-in, error pages, limits and headers.

`create_app(settings, auth_, host=...)` builds one app on one project's state; `crewkit serve`
runs it under uvicorn and the tests run it in-process or in a browser. Errors become a page
with the message and the right status: a `CrewkitError` answers with its `http_status` (404
unknown, 409 decided already, 403 not allowed, 422 bad input), a `WebError` with its own; a
body over MAX_BODY_BYTES gets 413 before any of it is read into a form.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crewkit.errors import CrewkitError
from crewkit.redact import redact
from crewkit.web import auth
from crewkit.web.render import STATIC, page, wants_json

MAX_BODY_BYTES = 64 * 1024
PAGES = ("runs", "approvals", "arena", "metrics", "memory")  # crewkit.web.pages.<name>.router
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
log = logging.getLogger("crewkit.web")


class BodyLimit:
    """413 for a request body over `limit` bytes: by Content-Length at once, else once that many arrive."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, send)
            return
        # read the body (at most `limit` bytes) before the app sees it: a 413 raised from
        # inside the app's receive() would pass through the middleware's task group as a 500
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.limit:
                await self._too_large(scope, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    def message(self) -> str:
        return f"the request is larger than {self.limit // 1024} KiB; shorten the text (nothing was changed)"

    async def _too_large(self, scope: Scope, send: Send) -> None:
        # drained by nobody: the server closes the connection after this answer
        response = HTMLResponse(
            f"<!doctype html><title>413 Request too large</title><h1>Request too large</h1><p>{self.message()}</p>",
            status_code=413,
            headers={"connection": "close", **SECURITY_HEADERS},
        )
        await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def security_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def add_headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response


def error_response(request: Request, status: int, message: str) -> Response:
    message = redact(message)
    if wants_json(request):
        return JSONResponse({"error": message, "status": status}, status_code=status)
    try:
        return page(request, "error.html", status=status, status_code=status, message=message,
                    back=back_to(request))  # fmt: skip
    except Exception:  # never fail while reporting a failure
        log.exception("error page failed")
        return HTMLResponse(f"<h1>{status}</h1><p>{message}</p>", status_code=status)


def back_to(request: Request) -> str:
    """Where a sign-in from an error page leads: this page for a GET; for a refused form, the
    page the form was on (its same-origin Referer), never the POST's own path."""
    if request.method in ("GET", "HEAD"):
        query = request.url.query
        return safe_next(request.url.path + (f"?{query}" if query else ""))
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc == request.headers.get("host", ""):
        return safe_next(referer.path or "/")
    return "/"


def error_handlers(app: FastAPI) -> None:
    @app.exception_handler(auth.WebError)
    async def web_error(request: Request, exc: auth.WebError) -> Response:
        return error_response(request, exc.status, exc.message)

    @app.exception_handler(CrewkitError)
    async def crewkit_error(request: Request, exc: CrewkitError) -> Response:
        status = getattr(exc, "http_status", 500)
        return error_response(request, status, str(exc))

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> Response:
        # a bug: the traceback goes to crewkit serve's stderr (Starlette re-raises it after this)
        answer = error_response(
            request, 500, "something broke in the console; the details are in crewkit serve's output"
        )
        answer.headers.update(SECURITY_HEADERS)  # this answer bypasses the header middleware
        return answer

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return error_response(request, 422, f"{where or 'the request'}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = (
            "no such page; the links at the top lead to every room"
            if exc.status_code == 404
            else str(exc.detail)
        )
        return error_response(request, exc.status_code, message)


def auth_routes() -> APIRouter:
    router = APIRouter()

    @router.get("/signin")
    def signin_form(request: Request, next: str = "/") -> Response:  # noqa: A002 - the query name
        return page(request, "signin.html", next=safe_next(next), names_from_token=request.app.state.auth.names_from_token,
                    source=request.app.state.auth.source)  # fmt: skip

    @router.post("/signin")
    async def signin(request: Request) -> Response:
        auth.check_origin(request)
        form = await auth.read_form(request, max_fields=10)
        auth.check_csrf(request, form, "the sign-in form is stale; reload the page and sign in again")
        name = request.app.state.auth.sign_in(
            str(form.get("name") or ""), str(form.get("token") or ""), client=auth.client_name(request)
        )
        auth.start_session(request, name)
        auth.flash(request, f"signed in as {name}")
        return RedirectResponse(safe_next(str(form.get("next") or "/")), status_code=303)

    @router.post("/signout")
    async def signout(request: Request, who: auth.Actor) -> Response:
        request.session.clear()
        return RedirectResponse("/", status_code=303)

    @router.get("/", dependencies=[Depends(auth.viewer)])
    def home(request: Request) -> Response:
        return RedirectResponse("/runs", status_code=303)

    return router


def safe_next(target: str) -> str:
    """Only a path on this console (no //host, no scheme) may follow a sign-in."""
    # browsers drop tabs and newlines from a URL ("/\t/evil" -> "//evil"): none allowed
    control = any(ord(c) < 32 or ord(c) == 127 for c in target)
    plain = target.startswith("/") and not target.startswith("//") and "\\" not in target
    back_to_signin = target.split("?", 1)[0] == "/signin"  # e.g. from a wrong token's page
    return target if plain and not control and not back_to_signin else "/"


def create_app(settings: Any, auth_: auth.Auth, *, host: str = "127.0.0.1", resumer: Any = None) -> FastAPI:
    """The console for `settings`' project. `resumer(run_id)`: how a decided run is continued
    (default: `crewkit.web.resume.start`, a `crewkit resume` process); tests pass their own."""
    import secrets

    from crewkit.runtime.store import StateStore

    app = FastAPI(title="crewkit console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.store = StateStore.open(settings.home)
    app.state.auth = auth_
    app.state.private_reads = not auth.is_loopback(host)
    app.state.resumer = resumer
    app.state.arena_llms = None  # model name -> LLM for arena battles (tests inject fakes)
    error_handlers(app)
    security_headers(app)
    app.add_middleware(
        SessionMiddleware,
        secret_key=secrets.token_urlsafe(32),  # sessions end when the console restarts
        session_cookie="crewkit_console",
        max_age=auth.SESSION_MAX_AGE_S,
        same_site="strict",
        https_only=False,
    )
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(auth_routes())
    for name in PAGES:
        module = importlib.import_module(f"crewkit.web.pages.{name}")
        app.include_router(module.router, dependencies=[Depends(auth.viewer)])
    return app
