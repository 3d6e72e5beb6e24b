"""Helpers for the console's tests: build the app on a project, sign in, run it on a real port.

    app = make_app(project)                    # crewkit.web.app.create_app on the project's settings
    client = signed_in(app, "bob")             # a TestClient with bob's session and CSRF token
    client.post("/approvals/ap-1/approve", data=client.form(note="ok"))
    with live(app) as url: ...                 # uvicorn in a thread on 127.0.0.1:<free port>

TOKEN is the shared token every test console accepts (CREWKIT_CONSOLE_TOKEN semantics).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TOKEN = "test-console-token-0123456789"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_app(project: Path, *, resumer: Callable[[str], Any] | None = None, host: str = "127.0.0.1") -> Any:
    from crewkit.settings import load_settings
    from crewkit.web.app import create_app
    from crewkit.web.auth import Auth

    settings = load_settings(project)
    return create_app(
        settings, Auth(shared=TOKEN, source="the test's CREWKIT_CONSOLE_TOKEN"), host=host, resumer=resumer
    )


class Client:
    """A TestClient that knows its session's CSRF token: `form(**fields)` adds it."""

    def __init__(self, app: Any) -> None:
        from fastapi.testclient import TestClient

        self.http = TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)
        self.csrf = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.http, name)

    def refresh_csrf(self, path: str = "/signin") -> str:
        found = CSRF.search(self.http.get(path).text)
        assert found, f"no csrf_token field on {path}"
        self.csrf = found.group(1)
        return self.csrf

    def form(self, **fields: Any) -> dict[str, Any]:
        return {"csrf_token": self.csrf, **fields}


def anonymous(app: Any) -> Client:
    client = Client(app)
    client.refresh_csrf()
    return client


def signed_in(app: Any, name: str = "bob", page: str = "/runs") -> Client:
    """A client signed in as `name`, its CSRF token read from `page` (a room's own page)."""
    client = anonymous(app)
    answer = client.post("/signin", data=client.form(name=name, token=TOKEN, next=page))
    assert answer.status_code == 303, answer.text[-2000:]
    client.refresh_csrf(page)
    return client


class Resumer:
    """A console resumer that records the run ids it was asked to continue (`.started`)."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def __call__(self, run_id: str) -> str:
        self.started.append(run_id)
        return f"resuming run {run_id} (test)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def live(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on a free loopback port; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name=f"console-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the console did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
