"""The CrewAI event listener behind run metrics: tasks, agent and tool errors, guardrails, retries.

CrewAI announces what its crews do on its event bus (`crewai.events`); `MetricsListener`
turns the events a person running this in production asks about into `metric_events` rows:

| CrewAI event                          | row kind         | what it keeps                        |
|---------------------------------------|------------------|--------------------------------------|
| TaskStartedEvent                      | (none)           | which task each agent works on now   |
| TaskCompletedEvent / TaskFailedEvent  | `task_completed` / `task_failed` | task latency, error  |
| AgentExecutionErrorEvent              | `agent_error`    | agent, task, error                   |
| ToolUsageErrorEvent, a failed ToolUsageFinishedEvent | `tool_error` | tool, agent, task, error   |
| LLMCallFailedEvent                    | `llm_failed`     | model, agent, error                  |
| LLMGuardrailStartedEvent (retry > 0)  | `retry`          | the task guardrail's retry           |
| LLMGuardrailCompletedEvent            | `guardrail`      | `passed` / `failed`, guardrail name  |

Model calls themselves (tokens, cost, latency, errors, fallbacks, cache hits) are recorded on
the hook path by `MetricsSubscriber`, which sees every call whichever agent makes it.

One listener serves every run of the process (`install()`, idempotent). CrewAI runs handlers
in a thread pool with a copy of the emitting thread's context, so a handler finds the run an
event belongs to through the hook scope (`crewkit.runtime.hooks.current()`): the run's
`MetricsSubscriber`. Events emitted outside a run are ignored. Error texts are redacted and cut
to 500 characters; a handler never raises.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from crewai.events.base_event_listener import BaseEventListener

from crewkit.observability.metrics import MetricsSubscriber

log = logging.getLogger(__name__)

MAX_ERROR = 500
_listeners: list[MetricsListener] = []  # every listener made in this process (normally one)
_install_lock = threading.Lock()


def _recorder() -> MetricsSubscriber | None:
    from crewkit.runtime import hooks

    found = hooks.current().find(MetricsSubscriber)
    return found if isinstance(found, MetricsSubscriber) else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    from crewkit.redact import redact

    text = redact(str(value))
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def _agent_bits(agent: Any) -> tuple[str | None, str | None, str | None]:
    """An agent's name (its CrewAI role), its role-map role and its primary model, when known."""
    if agent is None:
        return None, None, None
    name = str(getattr(agent, "role", "") or "").strip() or None
    llm = getattr(agent, "llm", None)
    role = getattr(llm, "role", None)
    primary = getattr(llm, "primary", None)
    model = getattr(primary, "name", None) if primary is not None else getattr(llm, "model", None)
    return name, role if isinstance(role, str) else None, model if isinstance(model, str) else None


def _task_name(task: Any) -> str | None:
    if task is None:
        return None
    name = getattr(task, "name", None) or getattr(task, "description", None)
    if not name:
        return None
    name = " ".join(str(name).split())
    return name if len(name) <= 120 else name[:119] + "…"


def _when(event: Any) -> float:
    """The event's wall-clock time (set where it was emitted, not where it is handled)."""
    ts = getattr(event, "timestamp", None)
    return ts.timestamp() if ts is not None else time.time()


def _task_key(task: Any) -> str:
    return str(getattr(task, "id", None) or id(task))


class MetricsListener(BaseEventListener):
    """Writes task, agent, tool, LLM-failure and guardrail events into the run's metrics."""

    def setup_listeners(self, crewai_event_bus: Any) -> None:
        from crewai.events.types.agent_events import AgentExecutionErrorEvent
        from crewai.events.types.llm_events import LLMCallFailedEvent
        from crewai.events.types.llm_guardrail_events import (
            LLMGuardrailCompletedEvent,
            LLMGuardrailStartedEvent,
        )
        from crewai.events.types.task_events import TaskCompletedEvent, TaskFailedEvent, TaskStartedEvent
        from crewai.events.types.tool_usage_events import ToolUsageErrorEvent, ToolUsageFinishedEvent

        handlers = {
            TaskStartedEvent: self.on_task_started,
            TaskCompletedEvent: self.on_task_completed,
            TaskFailedEvent: self.on_task_failed,
            AgentExecutionErrorEvent: self.on_agent_error,
            ToolUsageErrorEvent: self.on_tool_error,
            ToolUsageFinishedEvent: self.on_tool_finished,
            LLMCallFailedEvent: self.on_llm_failed,
            LLMGuardrailStartedEvent: self.on_guardrail_started,
            LLMGuardrailCompletedEvent: self.on_guardrail_completed,
        }
        self.registered: list[tuple[type, Any]] = []
        for event_type, handler in handlers.items():
            wrapped = _safe(handler)
            crewai_event_bus.on(event_type)(wrapped)
            self.registered.append((event_type, wrapped))

    def attached(self) -> bool:
        """Whether the handlers are still on the bus (`crewai_event_bus.scoped_handlers()` drops
        what was registered inside it when it exits)."""
        from crewai.events.event_bus import crewai_event_bus

        handlers = getattr(crewai_event_bus, "_sync_handlers", None)
        if not isinstance(handlers, dict) or not self.registered:
            return True  # cannot tell: assume so
        event_type, wrapped = self.registered[0]
        return wrapped in handlers.get(event_type, ())

    # -- tasks -------------------------------------------------------------------------------

    def on_task_started(self, _source: Any, event: Any) -> None:
        rec = _recorder()
        if rec is None:
            return
        task = getattr(event, "task", None)
        name, role, model = _agent_bits(getattr(task, "agent", None))
        rec.task_begins(_task_key(task), name, _task_name(task) or "", _when(event), role, model)

    def _task_end(self, event: Any, kind: str, error: Any = None) -> None:
        rec = _recorder()
        if rec is None:
            return
        task = getattr(event, "task", None)
        name, role, model = _agent_bits(getattr(task, "agent", None))
        task_name = _task_name(task) or getattr(event, "task_name", None)
        seconds = rec.task_ends(_task_key(task), name, task_name, _when(event))
        rec.record(
            kind,
            agent=name,
            role=role,
            model=model,
            task=task_name,
            seconds=seconds,
            ts=_when(event),
            error=_text(error),
            outcome="ok" if error is None else "error",
        )

    def on_task_completed(self, _source: Any, event: Any) -> None:
        self._task_end(event, "task_completed")

    def on_task_failed(self, _source: Any, event: Any) -> None:
        self._task_end(event, "task_failed", getattr(event, "error", None) or "failed")

    # -- errors ------------------------------------------------------------------------------

    def on_agent_error(self, _source: Any, event: Any) -> None:
        rec = _recorder()
        if rec is None:
            return
        name, role, model = _agent_bits(getattr(event, "agent", None))
        rec.record(
            "agent_error",
            agent=name,
            role=role,
            model=model,
            task=_task_name(getattr(event, "task", None)),
            error=_text(getattr(event, "error", None)),
            outcome="error",
        )

    def _tool_error(self, event: Any, error: Any) -> None:
        rec = _recorder()
        if rec is None:
            return
        agent = getattr(event, "agent", None)
        name, role, model = _agent_bits(agent)
        rec.record(
            "tool_error",
            agent=name or getattr(event, "agent_role", None),
            role=role,
            model=model,
            task=getattr(event, "task_name", None),
            error=_text(error),
            outcome="error",
            detail=str(getattr(event, "tool_name", "") or "") or None,
        )

    def on_tool_error(self, _source: Any, event: Any) -> None:
        self._tool_error(event, getattr(event, "error", None) or "tool error")

    def on_tool_finished(self, _source: Any, event: Any) -> None:
        failure = getattr(event, "failure", None)
        if failure is not None:
            self._tool_error(event, getattr(failure, "message", None) or failure)

    def on_llm_failed(self, _source: Any, event: Any) -> None:
        rec = _recorder()
        if rec is None:
            return
        name, role, _ = _agent_bits(getattr(event, "from_agent", None))
        rec.record(
            "llm_failed",
            agent=name,
            role=role,
            model=getattr(event, "model", None),
            task=_task_name(getattr(event, "from_task", None)),
            error=_text(getattr(event, "error", None)),
            outcome="error",
        )

    # -- guardrails --------------------------------------------------------------------------

    def on_guardrail_started(self, _source: Any, event: Any) -> None:
        if not getattr(event, "retry_count", 0):
            return
        rec = _recorder()
        if rec is None:
            return
        agent = getattr(event, "agent_role", None)
        role, model = rec.agents.get(agent or "", (None, None))
        rec.record(
            "retry",
            agent=agent,
            role=role,
            model=model,
            task=getattr(event, "task_name", None),
            outcome="guardrail",
            detail=getattr(event, "guardrail_name", None) or str(getattr(event, "guardrail", "") or "")[:120],
        )

    def on_guardrail_completed(self, _source: Any, event: Any) -> None:
        rec = _recorder()
        if rec is None:
            return
        ok = bool(getattr(event, "success", False))
        agent = getattr(event, "agent_role", None)
        role, model = rec.agents.get(agent or "", (None, None))
        rec.record(
            "guardrail",
            agent=agent,
            role=role,
            model=model,
            task=getattr(event, "task_name", None),
            outcome="passed" if ok else "failed",
            error=None if ok else _text(getattr(event, "error", None) or "failed"),
            detail=getattr(event, "guardrail_name", None),
        )


def _safe(handler: Any) -> Any:
    def run(source: Any, event: Any) -> None:
        try:
            handler(source, event)
        except Exception as exc:  # noqa: BLE001 - a metrics handler never breaks CrewAI
            log.warning("metrics listener: %s not recorded: %s", type(event).__name__, exc)

    run.__name__ = getattr(handler, "__name__", "handler")
    return run


def install() -> MetricsListener:
    """The process's listener (registered on CrewAI's event bus once)."""
    with _install_lock:
        # one that scoped_handlers() detached may be back on the bus once that scope has exited
        found = next((x for x in _listeners if x.attached()), None)
        if found is None:
            found = MetricsListener()
            _listeners.append(found)
        return found


def flush(timeout: float = 5.0) -> None:
    """Wait (up to `timeout` seconds) for event handlers still running, so a run's last rows are in."""
    from crewai.events.event_bus import crewai_event_bus

    try:
        crewai_event_bus.flush(timeout=timeout)
    except Exception as exc:  # noqa: BLE001
        log.debug("event bus flush failed: %s", exc)
