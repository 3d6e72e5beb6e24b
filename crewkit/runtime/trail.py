"""The current run's audit trail: governance decisions recorded wherever they are made.

A run's segment opens `recording(store, run_id)`; inside it (the flow's steps, CrewAI's task
guardrails, the approval gate, in any thread that carries the context) `note(...)` appends an
audit record for the run: guardrail verdicts, risk decisions and sampling draws. Outside a run
(`crewkit guard scan`, tests of a bare crew) `note` does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from crewkit.governance import audit

log = logging.getLogger(__name__)
_RUN: ContextVar[tuple[Any, str] | None] = ContextVar("crewkit_audit_trail", default=None)


@contextmanager
def recording(store: Any, run_id: str) -> Iterator[None]:
    token = _RUN.set((store, run_id))
    try:
        yield
    finally:
        _RUN.reset(token)


def active() -> bool:
    return _RUN.get() is not None


def note(action: str, subject: str, detail: dict[str, Any], actor: str = "crewkit") -> None:
    """Append an audit record for the current run (no-op outside a run)."""
    current = _RUN.get()
    if current is None:
        return
    store, run_id = current
    audit.record(store, audit.Entry(action, subject, detail, actor=actor, run_id=run_id))
