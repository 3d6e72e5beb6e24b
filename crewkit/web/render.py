"""Pages: one Jinja2 environment (autoescaped), `page()` and the filters every template uses.

Every value a template shows goes through autoescaping; model and user text is redacted by the
engine before it is stored, and `page()` adds nothing unescaped. Templates extend `base.html`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from crewkit.web import auth

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"

# (path, label): the navigation bar, in order; a router's pages live under its path
NAV = [
    ("/runs", "Runs"),
    ("/approvals", "Approvals"),
    ("/arena", "Arena"),
    ("/leaderboard", "Leaderboard"),
    ("/metrics", "Metrics"),
    ("/schedules", "Schedules"),
    ("/memory", "Memory"),
]


def when(ts: float | None) -> str:
    """A UNIX time as `2026-11-27 10:15:03 UTC`; `-` for none."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(ts: float | None, now: float | None = None) -> str:
    """`3 min ago`, `in 2 h` and the like; `-` for none."""
    if ts is None:
        return "-"
    delta = (time.time() if now is None else now) - float(ts)
    span = abs(delta)
    if span < 60:
        text = f"{span:.0f} s"
    elif span < 3600:
        text = f"{span / 60:.0f} min"
    elif span < 86400:
        text = f"{span / 3600:.1f} h"
    else:
        text = f"{span / 86400:.1f} d"
    return f"{text} ago" if delta >= 0 else f"in {text}"


def usd(amount: float | None) -> str:
    """`$0.0123`; `-` for none (unpriced)."""
    if amount is None:
        return "-"
    amount = float(amount)
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


def seconds(value: float | None) -> str:
    """`1.23 s`, `250 ms`; `-` for none."""
    if value is None:
        return "-"
    value = float(value)
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:,.2f} s"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"


ENV = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"], default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(when=when, ago=ago, usd=usd, seconds=seconds, percent=percent)


def wants_json(request: Request) -> bool:
    """The client asked for JSON rather than a page (`Accept: application/json`, no text/html)."""
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def pending_approvals(request: Request) -> int | None:
    """How many approvals wait for a person (shown in the navigation bar)."""
    try:
        rows = request.app.state.store.read("SELECT COUNT(*) FROM approvals WHERE status = 'pending'")
    except Exception:  # a page must render even when state.db is busy or broken
        return None
    return int(rows[0][0]) if rows else 0


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render `template` with the console's common context (who is signed in, CSRF, navigation)."""
    common = {
        "request": request,
        "path": request.url.path,
        "user": auth.user(request),
        "csrf": auth.csrf_token(request),
        "nav": NAV,
        # on a non-loopback console the anonymous see nothing of the state, not even this count
        "pending_count": None
        if auth.user(request) is None and auth.reads_private(request)
        else pending_approvals(request),
        "flashes": auth.take_flashes(request),
        "project": request.app.state.settings.project_dir.name,
    }
    html = ENV.get_template(template).render(**common, **context)
    return HTMLResponse(html, status_code=status)
