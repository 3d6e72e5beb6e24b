"""The hook path: one place around every model call and every tool call of a run.

A run opens `scope(RunHooks(...))`; inside it every model call (`RoleLLM.call`, once per
attempt: the primary and each fallback) and every tool call (CrewAI's own PRE/POST_TOOL_CALL
interception points, registered for the scope only) goes through the scope's subscribers:

- `before_model(call)` / `before_tool(call)` run in the order the subscribers were added. A
  subscriber may replace `call.messages` with a new list (never edit the one CrewAI passed): the
  model is sent what the last one left (PII masked for a hosted model, injected text withheld). A
  subscriber may answer with a `Replay` (no model call is made / the tool is not executed, the
  replayed value is returned as if it had answered; later `before_*` hooks are skipped), raise
  a `CrewkitError` to refuse the call (a model refusal propagates out of `RoleLLM.call`; a tool
  refusal becomes the tool's result text, which the agent reads), or raise `RunPaused` to pause
  the run (a BaseException: CrewAI's `except Exception` does not swallow it).
- `after_model(result)` / `after_tool(result)` see every attempt that was made or answered
  (role, model, agent, stage, tokens, cost, latency, error, replayed), all subscribers in order.

Outside a scope, `current()` is a process default holding only the usage ledger, so
`crewkit crew` and tests keep their ledger rows. Budgets, audit, metrics and tool gating are
subscribers: adding one never edits `RoleLLM` or a flow. With only the ledger subscribed the
path costs a few microseconds per call (the dispatch lists are built when a subscriber is added).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from crewkit.errors import CrewkitError, RunPaused
from crewkit.observability import ledger


@dataclass(slots=True)
class ModelCall:
    """One attempt at a model call: the role's candidate `model`, `attempt` 0 for the primary."""

    role: str
    model: str
    agent: str
    stage: str
    messages: Any  # str | list[dict]: what CrewAI passed to the role's model
    tools: list[dict[str, Any]] | None = None
    response_model: type | None = None  # a pydantic model class, for a structured answer
    attempt: int = 0
    stop: tuple[str, ...] = ()  # the stop sequences the model is called with (they shape the answer)


@dataclass(slots=True)
class ModelResult:
    """What one attempt gave: its value (None on error), usage, latency, and how it was answered."""

    call: ModelCall
    value: Any
    input_tokens: int
    output_tokens: int
    cost_usd: float
    started: float  # wall clock (time.time()) when the attempt began
    seconds: float
    error: str | None = None
    relayed: bool = False  # the model did not run: a relayed tool result or a pinned tool call
    not_run: str | None = None  # why no model ran (relayed, refused)
    replayed: bool = False  # answered by a subscriber's Replay (a journalled answer), not the model
    replay_source: str | None = None  # the Replay's source: "journal" (resume) or "cache" (response cache)
    replay_detail: dict[str, Any] | None = None  # what the replaying subscriber says about it (no text)


@dataclass(slots=True)
class ToolCall:
    """A tool call an agent is about to make. `arguments` is CrewAI's own dict (edits reach the tool)."""

    tool_name: str
    arguments: dict[str, Any]
    agent: str
    stage: str
    tool: Any = None  # the BaseTool (CrewAI's original tool object) or None
    role: str | None = None  # the role-map role of the agent's model, when it runs on one


@dataclass(slots=True)
class ToolResult:
    """What a tool call gave the agent: its text, or the refusal, and whether it ran at all."""

    call: ToolCall
    value: str | None
    seconds: float
    error: str | None = None
    replayed: bool = False
    refused: bool = False  # a before hook refused it: the tool did not run


@dataclass(frozen=True, slots=True)
class Replay:
    """A before hook's answer in place of the call: `value` is returned as the model's/tool's."""

    value: Any
    source: str = "journal"  # who answered: "journal" (the run's own answer, on resume) or "cache"
    detail: dict[str, Any] | None = None  # audited with the call (e.g. the cache key's digest; no text)


class Subscriber:
    """Base class of a hook-path subscriber: override what you need (the rest cost nothing)."""

    def before_model(self, call: ModelCall) -> Replay | None:
        return None

    def after_model(self, result: ModelResult) -> None:
        return None

    def before_tool(self, call: ToolCall) -> Replay | None:
        return None

    def after_tool(self, result: ToolResult) -> None:
        return None


_METHODS = ("before_model", "after_model", "before_tool", "after_tool")


class RunHooks:
    """A run's subscribers, in order. `RunHooks()` starts with the usage ledger's subscriber.

    `RunHooks(with_ledger=False)` starts empty (a run that keeps no ledger, or tests).
    `transaction` (a persisted run: `StateStore.write`) wraps the after-model hooks, so the
    records they write about one call (usage row, journal, audit, budget settlement) share one
    commit; each subscriber's own write block becomes a savepoint inside it.
    """

    def __init__(
        self,
        subscribers: list[Any] | None = None,
        *,
        with_ledger: bool = True,
        transaction: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.subscribers: list[Any] = []
        self.transaction = transaction
        self._lists: dict[str, list[Callable[[Any], Any]]] = {m: [] for m in _METHODS}
        if with_ledger:
            self.add(ledger.LedgerSubscriber())
        for s in subscribers or ():
            self.add(s)

    def add(self, subscriber: Any) -> Any:
        """Subscribe (after those already there); returns the subscriber."""
        self.subscribers.append(subscriber)
        for name in _METHODS:
            fn = getattr(subscriber, name, None)
            if fn is not None and getattr(type(subscriber), name, None) is not getattr(Subscriber, name):
                self._lists[name].append(fn)
        return subscriber

    def find(self, kind: type) -> Any:
        """The first subscriber of this type, or None."""
        return next((s for s in self.subscribers if isinstance(s, kind)), None)

    @property
    def watches_tools(self) -> bool:
        return bool(self._lists["before_tool"] or self._lists["after_tool"])

    def before_model(self, call: ModelCall) -> Replay | None:
        for fn in self._lists["before_model"]:
            replay = fn(call)
            if replay is not None:
                return replay
        return None

    def after_model(self, result: ModelResult) -> None:
        # what the after hooks write about one call, in one commit
        with self.transaction() if self.transaction is not None else nullcontext():
            for fn in self._lists["after_model"]:
                fn(result)

    def before_tool(self, call: ToolCall) -> Replay | None:
        for fn in self._lists["before_tool"]:
            replay = fn(call)
            if replay is not None:
                return replay
        return None

    def after_tool(self, result: ToolResult) -> None:
        for fn in self._lists["after_tool"]:
            fn(result)


_PROCESS_HOOKS = RunHooks()
_HOOKS: ContextVar[RunHooks | None] = ContextVar("crewkit_run_hooks", default=None)


def current() -> RunHooks:
    """The run's hooks (the innermost `scope`), else the process default (the ledger only)."""
    return _HOOKS.get() or _PROCESS_HOOKS


@contextmanager
def scope(hooks: RunHooks) -> Iterator[RunHooks]:
    """Route the model and tool calls made inside the block through `hooks`.

    Sets the context variable `RoleLLM` reads and enters CrewAI's `scoped_hooks()` with this
    module's PRE/POST_TOOL_CALL adapters, so they exist only for the run (hooks other code
    registered in an enclosing CrewAI scope are carried in). Nested scopes: the innermost wins.
    """
    from crewai.hooks.dispatch import InterceptionPoint, get_scoped_hooks, register_scoped, scoped_hooks

    carried = {
        point: hooks_
        for point in (InterceptionPoint.PRE_TOOL_CALL, InterceptionPoint.POST_TOOL_CALL)
        if (hooks_ := get_scoped_hooks(point))
    }
    install()
    token = _HOOKS.set(hooks)
    try:
        with scoped_hooks(carried):
            if _pre_tool not in carried.get(InterceptionPoint.PRE_TOOL_CALL, ()):
                register_scoped(InterceptionPoint.PRE_TOOL_CALL, _pre_tool)
                register_scoped(InterceptionPoint.POST_TOOL_CALL, _post_tool)
            yield hooks
    finally:
        _HOOKS.reset(token)


def install() -> None:
    """Let `RunPaused` out of the one CrewAI seam that would lose it (idempotent).

    `Task.execute_async` (a task with `async_execution=True`) runs the task in a thread whose
    body catches `Exception` into the future the crew waits on; a pause raised there killed the
    thread and the crew waited on that future for ever. It now reaches the future and comes out
    of `crew.kickoff()` like a pause anywhere else. The other CrewAI paths that run agents, tools
    or flow steps in another thread go through `concurrent.futures` or asyncio, which keep any
    BaseException (checked: parallel native tool calls, `max_execution_time`, flow steps). Not
    covered: streaming kickoffs (`stream=True`), whose thread ends the stream on a BaseException;
    crewkit does not stream.
    """
    from crewai.task import Task

    original = Task._execute_task_async
    if getattr(original, "crewkit_pause", False):
        return

    def _execute_task_async(self: Task, agent: Any, context: Any, tools: Any, future: Any) -> None:
        try:
            original(self, agent, context, tools, future)
        except RunPaused as paused:
            future.set_exception(paused)

    _execute_task_async.crewkit_pause = True  # type: ignore[attr-defined]
    Task._execute_task_async = _execute_task_async  # type: ignore[method-assign]


# --- CrewAI tool-call adapters ---------------------------------------------------------------
# CrewAI builds one ToolCallHookContext before the tool and another after it (also after a
# blocked call), both holding the same `tool_input` dict: the pending call is keyed by that
# dict's id (the dict is kept alive in the entry, so the id cannot be reused meanwhile).


@dataclass(slots=True)
class _Pending:
    call: ToolCall
    arguments: Any  # CrewAI's tool_input object, held so its id is not reused meanwhile
    t0: float
    replay: Replay | None = None
    refused: str | None = None


_PENDING: dict[int, _Pending] = {}
# What CrewAI puts in place of a tool's result when the tool raised or was missing (native tool
# calls; text tool calls), with the raw result set to the same text.
_TOOL_ERROR_PREFIXES = (
    "Error executing tool",
    "Tool not found",
    "I encountered an error while trying to use the tool",
)


def _agent_name(agent: Any) -> str:
    return str(getattr(agent, "role", "") or "").strip()


def _base_tool(tool: Any) -> Any:
    original = getattr(tool, "_original_tool", None)
    return original if original is not None else tool


def refusal_text(tool_name: str, reason: str) -> str:
    """What the agent reads in place of a refused tool's result."""
    return f"Tool '{tool_name}' was not run: {reason}"


def _pre_tool(ctx: Any) -> None:
    hooks = _HOOKS.get()
    if hooks is None or not hooks.watches_tools:
        return None
    from crewai.hooks.dispatch import HookAborted

    raw = ctx.tool_input  # the object CrewAI hands the after hook too: the pending call's key
    args = raw if isinstance(raw, dict) else {}
    role = getattr(getattr(ctx.agent, "llm", None), "role", None)
    call = ToolCall(
        ctx.tool_name,
        args,
        _agent_name(ctx.agent),
        ledger.current_stage(),
        _base_tool(ctx.tool),
        role if isinstance(role, str) else None,
    )
    pending = _Pending(call, raw, time.perf_counter())
    try:
        pending.replay = hooks.before_tool(call)  # RunPaused passes through CrewAI (BaseException)
    except CrewkitError as exc:
        pending.refused = str(exc)
    _PENDING[id(raw)] = pending
    if pending.refused is not None:
        raise HookAborted(pending.refused, source="crewkit")
    if pending.replay is not None:
        raise HookAborted("answered from the run's journal", source="crewkit")
    return None


def _post_tool(ctx: Any) -> str | None:
    args = ctx.tool_input
    pending = _PENDING.pop(id(args), None)
    if pending is None:
        return None
    if pending.arguments is not args:  # not ours after all (cannot happen while we hold it)
        _PENDING[id(pending.arguments)] = pending
        return None
    hooks = _HOOKS.get() or _PROCESS_HOOKS
    seconds = time.perf_counter() - pending.t0
    name = pending.call.tool_name
    if pending.refused is not None:
        text = refusal_text(name, pending.refused)
        hooks.after_tool(ToolResult(pending.call, text, seconds, error=pending.refused, refused=True))
        return text
    if pending.replay is not None:
        value = pending.replay.value
        text = value if isinstance(value, str) else str(value)
        hooks.after_tool(ToolResult(pending.call, text, seconds, replayed=True))
        return text
    value = ctx.tool_result
    hooks.after_tool(ToolResult(pending.call, value, seconds, error=_tool_error(value, ctx.raw_tool_result)))
    return None


def _tool_error(value: Any, raw: Any) -> str | None:
    """The error a finished tool call ended in, or None when the tool answered."""
    if type(raw).__name__ == "ToolFailure":  # a tool that declared its own failure
        return str(getattr(raw, "message", "") or value)
    if isinstance(value, str) and raw == value:
        text = value.strip()
        if text.startswith(_TOOL_ERROR_PREFIXES):
            return text
    return None
