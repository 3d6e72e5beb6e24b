"""How the console continues a run after a decision (or a press of Resume).

A run that came through the queue (`crewkit run --queue`) goes back to it (`queue.requeue`):
a worker continues it. Any other run is continued by a `crewkit resume RUN_ID` process of its
own, started detached from the console (its own session, stdin closed), writing its output
to `CREWKIT_HOME/logs/resume-RUN_ID.log`; the web server never runs a flow in its own process.
The run's status in state.db (running, then done / paused / failed / rejected) is what the run
page shows while it works.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from starlette.requests import Request

from crewkit.errors import UsageError


def start(settings: Any, run_id: str) -> str:
    """Start continuing `run_id`; returns one line saying where (for the page's message)."""
    from crewkit.runtime.store import StateStore

    store = StateStore.open(settings.home)
    row = store.require_run(run_id)
    if getattr(row, "queue_task", None):
        from crewkit.scheduling import queue

        queue.requeue(settings, run_id)
        return f"run {run_id} is back on the queue; a worker continues it"
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"resume-{run_id}.log"
    env = {**os.environ, "CREWKIT_PROJECT": str(settings.project_dir), "CREWKIT_HOME": str(settings.home)}
    with log.open("ab") as out:
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "crewkit", "resume", run_id],
                cwd=settings.project_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise UsageError(f"cannot start `crewkit resume {run_id}`: {exc.strerror or exc}") from None
    return f"resuming run {run_id} (process {process.pid}; its output: {log})"


def continue_run(request: Request, run_id: str) -> str:
    """Continue `run_id` with the app's resumer (tests pass one) or `start`; the page's message."""
    resumer = request.app.state.resumer
    if resumer is None:
        return start(request.app.state.settings, run_id)
    said = resumer(run_id)
    return said if isinstance(said, str) else f"resuming run {run_id}"
