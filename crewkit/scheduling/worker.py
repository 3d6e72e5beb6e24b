"""`crewkit worker`: a Celery worker in the foreground, working on runs queued with `crewkit run --queue`.

The settings are loaded and checked, and the broker must answer, before the worker starts (one
line, exit 2, otherwise). CrewAI is imported once in the main process, so the worker's child
processes (prefork pool, `--concurrency` of them, each working on one run at a time) start
ready; each builds its role map on its first run and keeps its models loaded.

Stopping: SIGTERM or Ctrl-C is a warm shutdown (Celery waits for the runs in flight; children
ignore SIGINT); a second one, or SIGKILL, stops at once, and the runs in flight are handed to
another worker after `queue.visibility_timeout` and resumed from their checkpoints.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from crewkit.errors import UsageError
from crewkit.scheduling import queue
from crewkit.scheduling.queue import Engine

if TYPE_CHECKING:
    from crewkit.settings import Settings

log = logging.getLogger("crewkit.worker")

LOG_LEVELS = ("debug", "info", "warning", "error")


def node_name() -> str:
    """A Celery node name unique per worker process (several workers may share a host)."""
    return f"crewkit-{os.getpid()}@{socket.gethostname()}"


def check_memory(settings: Settings, concurrency: int) -> None:
    """Refuse a pool that would share the embedded memory store: it is one process's at a time."""
    memory = settings.memory.long_term
    if concurrency > 1 and memory.enabled and memory.backend == "embedded":
        raise UsageError(
            f"--concurrency {concurrency}: long-term memory is on the embedded store, which one process "
            "holds at a time; move it to a Qdrant server (`crewkit memory migrate --to URL`, then "
            "long_term.backend: server in config/memory.yaml) or run one worker process per "
            "CREWKIT_HOME with --concurrency 1"
        )


def serve(
    engine: Engine,
    *,
    concurrency: int | None = None,
    queue_name: str | None = None,
    loglevel: str = "info",
) -> int:
    """Work on queued runs until stopped; returns the worker's exit code."""
    settings, role_map = engine()
    target = queue.check_broker(settings)
    cfg = settings.operations.queue
    concurrency = concurrency or cfg.concurrency
    queue_name = queue_name or cfg.queue
    check_memory(settings, concurrency)
    import crewai  # noqa: F401 - once here, not in every child process
    from celery import signals

    from crewkit.redact import install_log_filter

    def redact_logs(**_kwargs: Any) -> None:
        install_log_filter()

    signals.after_setup_logger.connect(redact_logs, weak=False)
    signals.after_setup_task_logger.connect(redact_logs, weak=False)

    app = queue.make_app(settings, engine=lambda: (settings, role_map))
    log.warning(
        "crewkit worker %s: queue %r on %s, concurrency %d, state in %s",
        node_name(), queue_name, target.shown, concurrency, settings.home,
    )  # fmt: skip
    worker = app.Worker(
        hostname=node_name(),
        queues=[queue_name],
        concurrency=concurrency,
        pool="prefork",
        loglevel=loglevel.upper(),
        optimization="fair",
        without_gossip=True,
        without_mingle=True,
    )
    worker.start()
    return int(worker.exitcode or 0)
