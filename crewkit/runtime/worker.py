"""Kickoff in a worker thread, so Ctrl-C stops a run at once.

CrewAI runs sync flow steps in worker threads of its own, so the main thread would otherwise
wait for the step in flight (a whole crew) before it saw the interrupt. The record is then
written with status "interrupted" and the caller exits 130 without waiting for the model call
in flight.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crewkit.errors import CrewkitError
from crewkit.observability import ledger


@dataclass
class Ended:
    value: Any = None
    error: BaseException | None = None
    interrupted: bool = False


def kickoff_in_worker(call: Callable[[], Any], run_ledger: ledger.Ledger) -> Ended:
    """Run `call` in a worker thread; Ctrl-C in the main thread returns at once (interrupted).

    CrewAI runs sync flow steps in worker threads of its own, so the main thread would
    otherwise wait for the step in flight (a whole crew) before it saw the interrupt.
    A user error before the first model call (a missing template variable) is raised as is.
    """
    ended = Ended()

    def target() -> None:
        try:
            ended.value = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            ended.error = exc

    worker = threading.Thread(
        target=contextvars.copy_context().run, args=(target,), name="crewkit-run", daemon=True
    )
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        ended.interrupted = True
        return ended
    exc = ended.error
    if isinstance(exc, CrewkitError) and exc.exit_code == 2 and not run_ledger.calls:
        raise exc  # nothing was paid for yet: a user error, one line, no record
    if isinstance(exc, KeyboardInterrupt):
        ended.interrupted, ended.error = True, None
    return ended


def error_text(exc: BaseException) -> str:
    if isinstance(exc, CrewkitError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
