"""The embedded model: a CrewAI `BaseLLM` running a GGUF file in process with llama.cpp.

- Loaded lazily, once per process and file (`_load`), shared by every role that maps to it.
- Safe under concurrent calls: llama.cpp contexts are not re-entrant, so generation holds a
  per-model lock.
- Honours stop words and the context window (old turns are dropped, then the longest message is
  shortened, so the prompt plus `max_tokens` always fits).
- Constrained decoding: a `response_model` (structured task output) becomes a JSON-schema
  grammar; when CrewAI passes tools, the reply is forced into one valid OpenAI-style tool call
  (one schema per tool, all arguments required), and the turn after a tool result is free text.
  Argument pins (`pin_tool_arguments`) let the caller fix values a tiny model would garble, e.g.
  the coworker a manager must delegate a subtask to.
- Reports token usage to CrewAI's counters and to crewkit's per-call usage cell.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from typing import Any

from crewai.llms.base_llm import BaseLLM, llm_call_context
from pydantic import BaseModel

from crewkit.models import usage_cell

_LOAD_LOCK = threading.Lock()
_MODELS: dict[tuple[str, int, int], tuple[Any, threading.Lock]] = {}

# task id -> {"tool": name, "arguments": {arg: value}}; set by the flow before a crew runs.
_PINS: dict[str, dict[str, Any]] = {}
_PINS_LOCK = threading.Lock()


def pin_tool_arguments(
    task_id: Any, tool: str, arguments: dict[str, Any], *, answer_with_tool_result: bool = False
) -> None:
    """Force the tool call made while working on `task_id` to `tool`, with these argument values.

    With `answer_with_tool_result`, the turn after the tool returns answers with the tool's
    result verbatim (a manager relaying its coworker's answer) instead of a paraphrase.
    """
    with _PINS_LOCK:
        _PINS[str(task_id)] = {
            "tool": _tool_key(tool),
            "arguments": dict(arguments),
            "answer_with_tool_result": answer_with_tool_result,
        }


def _tool_key(name: str) -> str:
    """CrewAI sends 'Delegate work to coworker' as 'delegate_work_to_coworker'; compare both."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def clear_pins(task_ids: list[str]) -> None:
    with _PINS_LOCK:
        for task_id in task_ids:
            _PINS.pop(str(task_id), None)


def _load(path: str, n_ctx: int, n_threads: int) -> tuple[Any, threading.Lock]:
    key = (path, n_ctx, n_threads)
    with _LOAD_LOCK:
        if key not in _MODELS:
            from llama_cpp import Llama

            llama = Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads or None, verbose=False, seed=0)
            _MODELS[key] = (llama, threading.Lock())
        return _MODELS[key]


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def _chat_messages(messages: str | list[dict[str, Any]]) -> list[dict[str, str]]:
    """CrewAI messages (with tool calls and tool results) -> plain role/content turns for the template."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    out: list[dict[str, str]] = []
    for msg in messages:
        role = msg.get("role", "user")
        if role == "tool":
            out.append({"role": "user", "content": f"Tool result:\n{_text(msg.get('content'))}"})
        elif role == "assistant" and msg.get("tool_calls"):
            calls = [
                {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                for c in msg["tool_calls"]
            ]
            out.append({"role": "assistant", "content": json.dumps(calls)})
        else:
            out.append(
                {
                    "role": role if role in ("system", "user", "assistant") else "user",
                    "content": _text(msg.get("content")),
                }
            )
    return out


def _count_tokens(llama: Any, turns: list[dict[str, str]]) -> int:
    """Prompt tokens of chat turns with the model's tokenizer (+4 per turn for the template's markers)."""
    return sum(len(llama.tokenize(t["content"].encode(), add_bos=False)) + 4 for t in turns)


def _tool_schema(tools: list[dict[str, Any]], pin: dict[str, Any] | None) -> dict[str, Any]:
    """One object schema per tool: {"name": const, "arguments": {all params required}}."""
    options = []
    for tool in tools:
        fn = tool.get("function", tool)
        name = fn["name"]
        if pin and pin["tool"] != _tool_key(name):
            continue
        params = dict(fn.get("parameters") or {"type": "object", "properties": {}})
        props: dict[str, Any] = {}
        for arg, spec in (params.get("properties") or {}).items():
            spec = {k: v for k, v in dict(spec).items() if k in ("type", "enum", "description", "items")}
            if "type" not in spec and "enum" not in spec:
                spec["type"] = "string"
            if isinstance(spec.get("type"), list):
                spec["type"] = next((t for t in spec["type"] if t != "null"), "string")
            if pin and arg in pin["arguments"]:
                spec = {"const": pin["arguments"][arg]}
            elif spec.get("type") == "string":
                spec.update(minLength=1, maxLength=240)
            props[arg] = spec
        options.append(
            {
                "type": "object",
                "properties": {
                    "name": {"const": name},
                    "arguments": {"type": "object", "properties": props, "required": list(props)},
                },
                "required": ["name", "arguments"],
            }
        )
    if not options:  # the pin names a tool this agent does not have: fall back to every tool
        return _tool_schema(tools, None)
    return options[0] if len(options) == 1 else {"oneOf": options}


class LlamaCppLLM(BaseLLM):
    """In-process llama.cpp chat model for CrewAI."""

    llm_type: str = "llamacpp"
    provider: str = "llamacpp"
    model_path: str
    n_ctx: int = 8192
    n_threads: int = 0
    temperature: float | None = 0.2
    max_tokens: int | float | None = 256
    repeat_penalty: float = 1.15
    # Constrained replies (plans, tool calls) must close their JSON: give them room to.
    constrained_max_tokens: int = 640
    tools_capable: bool = True

    def supports_function_calling(self) -> bool:
        return self.tools_capable

    def supports_stop_words(self) -> bool:
        return True

    def get_context_window_size(self) -> int:
        return self.n_ctx

    def get_input_tokens_count(self, messages: Any, tools: Any = None, response_model: Any = None) -> int:
        """Exact count with the model's own tokenizer (CrewAI uses it to manage the context)."""
        llama, _ = _load(self.model_path, self.n_ctx, self.n_threads)
        return _count_tokens(llama, _chat_messages(messages))

    def _fit(self, llama: Any, turns: list[dict[str, str]], max_tokens: int) -> list[dict[str, str]]:
        """Drop old middle turns, then shorten the longest, until prompt + reply fit the window."""
        budget = self.n_ctx - max_tokens - 64  # template tokens

        turns = list(turns)
        while _count_tokens(llama, turns) > budget and len(turns) > 2:
            del turns[1]  # keep the system prompt (0) and the latest turns
        while _count_tokens(llama, turns) > budget:
            longest = max(range(len(turns)), key=lambda i: len(turns[i]["content"]))
            content = turns[longest]["content"]
            turns[longest] = {**turns[longest], "content": content[: int(len(content) * 0.8)]}
        return turns

    def call(
        self,
        messages: str | list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Any | None = None,
        from_agent: Any | None = None,
        response_model: type[BaseModel] | None = None,
    ) -> str | Any:
        last_is_tool_result = (
            not isinstance(messages, str) and bool(messages) and messages[-1].get("role") == "tool"
        )
        pin = _PINS.get(str(getattr(from_task, "id", ""))) if from_task is not None else None
        if tools and last_is_tool_result and pin and pin.get("answer_with_tool_result"):
            relayed = _text(messages[-1].get("content")).strip()  # type: ignore[union-attr]
            if not relayed.startswith("Error executing tool"):
                usage_cell.report_relay()
                return relayed
        llama, lock = _load(self.model_path, self.n_ctx, self.n_threads)
        max_tokens = int(self.max_tokens or 256)
        turns = _chat_messages(messages)
        schema: dict[str, Any] | None = None
        mode = "text"
        if response_model is not None:
            schema, mode = response_model.model_json_schema(), "structured"
        elif tools and not last_is_tool_result:
            schema, mode = _tool_schema(tools, pin), "tool_call"
        if mode != "text":
            max_tokens = max(max_tokens, self.constrained_max_tokens)
        kwargs: dict[str, Any] = {
            "max_tokens": max_tokens,
            "temperature": self.temperature or 0.0,
            "repeat_penalty": self.repeat_penalty,
        }
        if self.top_p is not None:
            kwargs["top_p"] = self.top_p
        if self.seed is not None:
            kwargs["seed"] = self.seed
        if schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        else:
            stop = [s for s in self.stop_sequences if s]
            if stop:
                kwargs["stop"] = stop
        with llm_call_context():
            self._emit_call_started_event(
                messages=messages, tools=tools, from_task=from_task, from_agent=from_agent
            )
            with lock:
                turns = self._fit(llama, turns, max_tokens)
                out = llama.create_chat_completion(messages=turns, **kwargs)
            return self._finish(out, mode, response_model, messages, from_task, from_agent)

    def _finish(
        self,
        out: dict[str, Any],
        mode: str,
        response_model: type[BaseModel] | None,
        messages: Any,
        from_task: Any,
        from_agent: Any,
    ) -> Any:
        choice = out["choices"][0]
        text = choice["message"].get("content") or ""
        usage = out.get("usage") or {}
        usage_cell.report(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
        self._track_token_usage_internal(usage)
        result: Any = text
        if mode != "text" and choice.get("finish_reason") == "length":
            raise ValueError(
                f"{self.model}: constrained {mode} reply was cut at {usage.get('completion_tokens')} tokens; "
                "raise constrained_max_tokens in the model's params"
            )
        if mode == "structured":
            result = response_model.model_validate_json(text)  # type: ignore[union-attr]
        elif mode == "tool_call":
            call = json.loads(text)
            result = [
                {
                    "id": f"call_{uuid.uuid4().hex[:12]}",
                    "type": "function",
                    "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
                }
            ]
        from crewai.events.types.llm_events import LLMCallType

        self._emit_call_completed_event(
            response=text,
            call_type=LLMCallType.TOOL_CALL if mode == "tool_call" else LLMCallType.LLM_CALL,
            from_task=from_task,
            from_agent=from_agent,
            messages=messages,
            usage=usage,
        )
        return result
