"""Who may act in the console: sign-in with a token, the session cookie, CSRF, the acting name.

Reading needs no sign-in while the console listens on a loopback address (anyone who can reach
it can already read state.db); on any other address reading needs it too. Every POST that
changes state needs all of:

- a signed-in person: the session cookie (signed, HttpOnly, SameSite=Strict) holds their name,
  given at sign-in with a valid token;
- the session's CSRF token in the form (`csrf_token`), compared in constant time;
- no foreign `Origin` (a browser sends it on cross-site POSTs).

Tokens come from the environment (or `.env`), never from a file in the repository:

- `CREWKIT_CONSOLE_USERS="alice:TOKEN_A bob:TOKEN_B"`: each person has a token; the name comes
  from the token, so the audit log's `actor` is authenticated;
- `CREWKIT_CONSOLE_TOKEN=TOKEN`: one shared token; the person types their name at sign-in;
- neither: `crewkit serve` makes a random token for this start and writes it (mode 0600) to
  `CREWKIT_HOME/console.token`; the terminal names the file, never the token.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from crewkit.errors import UsageError

TOKEN_ENV = "CREWKIT_CONSOLE_TOKEN"
USERS_ENV = "CREWKIT_CONSOLE_USERS"
TOKEN_FILE = "console.token"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MAX_FAILURES = 10  # failed sign-ins per FAILURE_WINDOW_S (all clients) before sign-in pauses
FAILURE_WINDOW_S = 60.0
SESSION_MAX_AGE_S = 12 * 3600


class WebError(Exception):
    """A request the console refuses: an HTTP status and one line for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Auth:
    """The tokens this console accepts. `shared`: one token, name typed at sign-in; `users`:
    token -> name. `source` says where they came from (shown on the sign-in page)."""

    shared: str | None = None
    users: dict[str, str] = field(default_factory=dict)
    source: str = ""
    _failures: dict[str, deque[float]] = field(default_factory=dict, repr=False)  # client -> times
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_env(cls, home: Path, environ: dict[str, str] | None = None) -> Auth:
        """Tokens from CREWKIT_CONSOLE_USERS / CREWKIT_CONSOLE_TOKEN, else a new one in home/console.token."""
        env = os.environ if environ is None else environ
        users = parse_users(env.get(USERS_ENV, ""))
        shared = (env.get(TOKEN_ENV) or "").strip() or None
        if shared is not None and len(shared) < 16:
            raise UsageError(
                f"{TOKEN_ENV} is {len(shared)} characters; use at least 16 (e.g. `openssl rand -hex 24`)"
            )
        if users or shared:
            names = [USERS_ENV] if users else []
            return cls(
                shared=shared, users=users, source=" and ".join(names + ([TOKEN_ENV] if shared else []))
            )
        return cls(shared=new_token_file(home), source=str(home / TOKEN_FILE))

    def sign_in(self, name: str, token: str, client: str = "") -> str:
        """The acting name for this token (and typed name); WebError 401 otherwise, and 429 for a
        client (its address) with MAX_FAILURES failed sign-ins in the last FAILURE_WINDOW_S."""
        with self._lock:
            now = time.monotonic()
            for key in list(self._failures):  # forget old failures (and clients with none left)
                times = self._failures[key]
                while times and now - times[0] > FAILURE_WINDOW_S:
                    times.popleft()
                if not times:
                    del self._failures[key]
            if len(self._failures.get(client, ())) >= MAX_FAILURES:
                raise WebError(
                    429, "too many failed sign-ins in the last minute; wait a minute and try again"
                )
        token = (token or "").strip()
        for known, user in self.users.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return user
        if self.shared is not None and hmac.compare_digest(self.shared.encode(), token.encode()):
            name = (name or "").strip()
            if not NAME.fullmatch(name):
                raise WebError(
                    422, "give your name (letters, digits, . _ @ -, up to 64): decisions are audited under it"
                )
            return name
        with self._lock:
            self._failures.setdefault(client, deque()).append(time.monotonic())
        raise WebError(401, f"wrong token; the console accepts the token from {self.source}")

    @property
    def names_from_token(self) -> bool:
        """True when only per-person tokens are accepted (the sign-in form asks no name)."""
        return bool(self.users) and self.shared is None


def parse_users(text: str) -> dict[str, str]:
    """`alice:TOKEN bob:TOKEN` (spaces, commas or newlines between pairs) -> {token: name}."""
    users: dict[str, str] = {}
    for pair in re.split(r"[\s,]+", text.strip()):
        if not pair:
            continue
        name, sep, token = pair.partition(":")
        if not sep or not NAME.fullmatch(name) or len(token) < 16:
            raise UsageError(
                f"{USERS_ENV}: '{name}:...' is not NAME:TOKEN with a name of letters, digits, . _ @ - "
                "and a token of at least 16 characters"
            )
        if token in users:
            raise UsageError(
                f"{USERS_ENV}: {users[token]} and {name} have the same token; give each their own"
            )
        users[token] = name
    return users


def new_token_file(home: Path) -> str:
    """A fresh random token in home/console.token (0600), replacing the last start's."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / TOKEN_FILE
    token = secrets.token_urlsafe(24)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    os.replace(tmp, path)
    return token


# --- the session: who is signed in, the CSRF token, one-shot messages ---------------------------


def user(request: Request) -> str | None:
    """The signed-in name, or None."""
    return request.session.get("user")


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use; forms carry it as `csrf_token`)."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return token


def start_session(request: Request, name: str) -> None:
    request.session.clear()  # a new CSRF token too: no token from before sign-in stays valid
    request.session["user"] = name
    request.session["since"] = time.time()
    csrf_token(request)


def flash(request: Request, message: str) -> None:
    """A one-line message shown on the next page (after a POST's redirect)."""
    # assigned, not appended in place: the session saves only what it sees set
    request.session["flash"] = [*(request.session.get("flash") or []), message]


def take_flashes(request: Request) -> list[str]:
    return list(request.session.pop("flash", []) or [])


# --- dependencies: reading and acting -----------------------------------------------------------


def reads_private(request: Request) -> bool:
    """True when reading needs a sign-in: the console listens on a non-loopback address, or the
    request names another host than a loopback one (a reverse proxy passing its Host on, or a
    web page whose DNS name was rebound to 127.0.0.1 to read the console from a browser)."""
    if request.app.state.private_reads:
        return True
    named = urlsplit("//" + request.headers.get("host", "")).hostname or ""
    return not is_loopback(named)


def viewer(request: Request) -> str | None:
    """A page's reader: anyone on a loopback console reached by a loopback name, else the signed-in."""
    name = user(request)
    if name is None and reads_private(request):
        raise WebError(
            401, "sign in to read this console: it is reached by another address than this machine's loopback"
        )
    return name


@dataclass(frozen=True)
class Acting:
    """A checked state-changing request: who acts and the form they sent."""

    name: str
    form: FormData

    def text(self, field_name: str, label: str, max_chars: int, *, required: bool = True) -> str:
        """A form field, stripped; WebError 422 when missing (and required) or longer than max_chars."""
        value = self.form.get(field_name)
        if value is not None and not isinstance(value, str):
            raise WebError(422, f"{label} must be text, not a file")
        value = (value or "").strip()
        if required and not value:
            raise WebError(422, f"{label} is empty; fill it in and send the form again")
        if len(value) > max_chars:
            raise WebError(
                413,
                f"{label} is {len(value):,} characters; at most {max_chars:,} are accepted, nothing was changed",
            )
        return value


async def acting(request: Request) -> Acting:
    """Dependency of every POST that changes state: signed in, same origin, valid CSRF token."""
    check_origin(request)
    form = await read_form(request, max_fields=50)
    name = user(request)
    if name is None:
        raise WebError(401, "sign in first: changing anything needs a signed-in person (nothing was changed)")
    check_csrf(
        request,
        form,
        "the form's security token is missing or stale; reload the page and send it again (nothing was changed)",
    )
    return Acting(name=name, form=form)


def check_csrf(request: Request, form: FormData, stale: str) -> None:
    """WebError 403 (`stale`) unless the form carries the session's CSRF token (constant-time compare)."""
    sent = form.get("csrf_token")
    expected = request.session.get("csrf")
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise WebError(403, stale)


async def read_form(request: Request, max_fields: int) -> FormData:
    """The request's form fields; WebError 422 for a file, too many fields or a malformed body."""
    try:
        return await request.form(max_files=0, max_fields=max_fields)
    except HTTPException as exc:  # Starlette's answer to a multipart body it refuses
        raise WebError(
            422, f"the form cannot be used ({exc.detail}); send the page's own form (nothing was changed)"
        ) from None


def check_origin(request: Request) -> None:
    """Refuse a POST whose Origin (or, without one, Referer) is another site."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return  # no browser header to judge by: the CSRF token decides
    parts = urlsplit(origin)
    if parts.netloc != request.headers.get("host", ""):
        raise WebError(403, f"a form from {parts.scheme}://{parts.netloc} may not act on this console")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback IP addresses (127.0.0.0/8, ::1); any other name is not."""
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a host name such as 127.example.com: reads need a sign-in
        return False


def client_name(request: Request) -> str:
    """The client's address ("" when the server does not know it)."""
    return request.client.host if request.client else ""


# the parameter type of every state-changing endpoint: `def approve(..., who: Actor)`
Actor = Annotated[Acting, Depends(acting)]
