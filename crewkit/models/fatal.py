"""A fatal model error stops a CrewAI run at once, in one line.

`FatalModelError` (a model file that cannot load, a refused key, a refused request) fails the
same way however often it is tried, and so does a model call a hook-path subscriber refused
(an exhausted budget, a policy: `RoleLLM` marks it `crewkit_refused`), so `install()` adjusts
three places in CrewAI:
- the agent's retry loop: `Agent.execute_task` sends any exception to
  `Agent._check_execution_error` (crewai/agent/core.py), which re-runs the whole task up to
  `max_retry_limit` times. A fatal error (also when CrewAI wrapped it, e.g. in the
  `RuntimeError` of `max_execution_time`) now leaves at the first attempt, after the
  `AgentExecutionErrorEvent` CrewAI emits for every failed attempt (which closes its event scope;
  CrewAI's own passthrough list skips it and the bus then warns of mismatched events).
- the flow runtime's "Error executing listener ..." log line (the agent loop is a CrewAI flow,
  so every failed attempt printed one, even "every model failed" for a call a retry then
  recovered): CrewAI skips it for an error marked `_flow_listener_logged`, which every
  `CrewkitError` now is; the ledger records each failed call, the CLI prints the final error.
- what CrewAI's LLM classes log about the failed call (`logging.error("OpenAI API call failed:
  ...")`, printed on stderr by Python's last-resort handler) is kept at DEBUG level while
  `RoleLLM` makes the call: the ledger holds the (redacted) error; a call that a fallback
  recovers prints nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from crewkit.errors import CrewkitError, FatalModelError
from crewkit.models.provider_errors import chain

_CREWAI_DIR = f"{os.sep}crewai{os.sep}"
_IN_CALL: ContextVar[bool] = ContextVar("crewkit_in_model_call", default=False)


class _ProviderLogsToDebug(logging.Filter):
    """Demote what CrewAI's LLM classes log during a metered call to DEBUG (`--verbose` shows it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _IN_CALL.get() and record.levelno > logging.DEBUG and _CREWAI_DIR in record.pathname:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


_FILTER = _ProviderLogsToDebug()


@contextmanager
def provider_logs_quiet() -> Iterator[None]:
    token = _IN_CALL.set(True)
    try:
        yield
    finally:
        _IN_CALL.reset(token)


def find_fatal(exc: BaseException) -> CrewkitError | None:
    """The fatal model error or refused model call in `exc`'s chain (CrewAI may wrap it), or None."""
    return next(
        (
            e
            for e in chain(exc)
            if isinstance(e, FatalModelError)
            or (isinstance(e, CrewkitError) and getattr(e, "crewkit_refused", False))
        ),
        None,
    )


def install() -> None:
    """Stop CrewAI from retrying or re-reporting fatal model errors; quiet provider logs (idempotent)."""
    from crewai.agent.core import Agent
    from crewai.events.event_bus import crewai_event_bus
    from crewai.events.types.agent_events import AgentExecutionErrorEvent

    CrewkitError._flow_listener_logged = True  # type: ignore[attr-defined]
    original = Agent._check_execution_error
    if not getattr(original, "crewkit_fatal", False):

        def _check_execution_error(self: Agent, e: Exception, task: Any) -> None:
            fatal = find_fatal(e)
            if fatal is None:
                return original(self, e, task)
            crewai_event_bus.emit(
                self, event=AgentExecutionErrorEvent(agent=self, task=task, error=str(fatal))
            )
            raise fatal

        _check_execution_error.crewkit_fatal = True  # type: ignore[attr-defined]
        Agent._check_execution_error = _check_execution_error  # type: ignore[method-assign]
    # CrewAI's LLM classes log with the root logger (`logging.error(...)`), a few with their own.
    for name in ("", "crewai.llm", "crewai.llms.base_llm"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
