"""A scripted fake LLM for unit tests: queued replies, every call recorded, surprises fail loudly.

    llm = ScriptedLLM(["Plan: ...", tool_call("delegate_work_to_coworker", coworker="Code Specialist",
                                                task="...", context="..."), "final"])

A reply may be a string, a pydantic instance or dict (returned for a `response_model` call),
a list of tool calls (see `tool_call`), an exception instance (raised), or a callable taking
the `Call` and returning any of these. A call with no reply left raises `UnexpectedCall`
carrying the prompt it got, so a test never passes on an unplanned model call.

The other way round too: every ScriptedLLM registers itself, and the autouse fixture in
tests/conftest.py fails a test that leaves scripted replies unused (a model call the test
expected never happened), listing them. Create it with `allow_unused=True` where a reply is
legitimately optional.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crewai.llms.base_llm import BaseLLM
from pydantic import BaseModel, PrivateAttr


class UnexpectedCall(AssertionError):
    pass


@dataclass
class Call:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    agent: str | None
    task: Any
    response_model: type[BaseModel] | None

    @property
    def prompt(self) -> str:
        return "\n".join(str(m.get("content") or "") for m in self.messages)

    @property
    def last(self) -> str:
        return str(self.messages[-1].get("content") or "") if self.messages else ""

    @property
    def tool_names(self) -> list[str]:
        return [t.get("function", t).get("name") for t in self.tools or []]


def tool_call(name: str, **arguments: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{uuid.uuid4().hex[:8]}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)},
        }
    ]


_created: list[ScriptedLLM] = []  # every instance since the last `unused_replies()`
_scripts: list[dict[str, list[Any]]] = []  # every `by_agent` script, likewise


class ScriptedLLM(BaseLLM):
    model: str = "scripted"
    provider: str = "scripted"
    function_calling: bool = True
    replies: list[Any] = []
    usage_per_call: tuple[int, int] = (10, 5)
    allow_unused: bool = False

    _calls: list[Call] = PrivateAttr(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, replies: list[Any] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("model", "scripted")
        super().__init__(replies=list(replies or []), **kwargs)
        _created.append(self)

    @property
    def calls(self) -> list[Call]:
        return self._calls

    def supports_function_calling(self) -> bool:
        return self.function_calling

    def get_context_window_size(self) -> int:
        return 8192

    def add(self, *replies: Any) -> ScriptedLLM:
        self.replies.extend(replies)
        return self

    def call(
        self,
        messages: str | list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Any | None = None,
        from_agent: Any | None = None,
        response_model: type[BaseModel] | None = None,
    ) -> Any:
        msgs = [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
        call = Call(msgs, tools, getattr(from_agent, "role", None), from_task, response_model)
        with self._lock:
            self._calls.append(call)
            if not self.replies:
                raise UnexpectedCall(
                    f"unexpected model call #{len(self._calls)} (agent={call.agent!r}) with prompt:\n{call.prompt[-1500:]}"
                )
            reply = self.replies.pop(0)
        if callable(reply) and not isinstance(reply, BaseModel):
            reply = reply(call)
        if isinstance(reply, BaseException):
            raise reply
        self._track_token_usage_internal(
            {"prompt_tokens": self.usage_per_call[0], "completion_tokens": self.usage_per_call[1]}
        )
        if response_model is not None:
            if isinstance(reply, dict):
                return response_model.model_validate(reply)
            if isinstance(reply, str):
                return response_model.model_validate_json(reply)
        return reply


def _show(reply: Any) -> str:
    if isinstance(reply, list) and reply and isinstance(reply[0], dict) and "function" in reply[0]:
        reply = [f"tool_call({c['function']['name']}, {c['function']['arguments']})" for c in reply]
    text = repr(reply)
    return text if len(text) <= 200 else text[:197] + "..."


def unused_replies() -> list[str]:
    """One line per scripted reply left unused since the last check, and start afresh.

    Instances created with `allow_unused=True` are skipped. Called at every test's teardown by
    the autouse fixture in tests/conftest.py.
    """
    created, scripts = list(_created), list(_scripts)
    _created.clear()
    _scripts.clear()
    problems = []
    for llm in created:
        if llm.replies and not llm.allow_unused:
            shown = "".join(f"\n    {_show(r)}" for r in llm.replies)
            problems.append(
                f"ScriptedLLM(model={llm.model!r}) was called {len(llm.calls)} time(s) and left "
                f"{len(llm.replies)} scripted repl{'y' if len(llm.replies) == 1 else 'ies'} unused:{shown}"
            )
    for script in scripts:
        for agent, queue in script.items():
            if queue:
                shown = "".join(f"\n    {_show(r)}" for r in queue)
                problems.append(f"by_agent script for {agent!r} left {len(queue)} unused:{shown}")
    return problems


def by_agent(script: dict[str, list[Any]]) -> Callable[[Call], Any]:
    """A reply that picks from per-agent queues (for crews whose call order interleaves).

    Items left in a queue at the end of the test fail it, like unused ScriptedLLM replies.
    """
    _scripts.append(script)

    def reply(call: Call) -> Any:
        queue = script.get(call.agent or "")
        if not queue:
            raise UnexpectedCall(
                f"no scripted reply left for agent {call.agent!r}; prompt:\n{call.prompt[-1500:]}"
            )
        item = queue.pop(0)
        return item(call) if callable(item) else item

    return reply
