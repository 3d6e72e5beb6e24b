"""The embedded model: a CrewAI `BaseLLM` running a GGUF file in process with llama.cpp.

- Loaded lazily, once per process and file (`_load`), shared by every role that maps to it. A
  file llama.cpp cannot load is a `ModelUnavailable` naming entry and file. Each call runs on
  every usable core that other processes leave free (`free_cores`; `params.n_threads` fixes it).
- Safe under concurrent calls and serves them at once: llama.cpp contexts are not re-entrant, so
  each generation holds one instance of the model's pool (`gguf.Pool`); calls that arrive
  together (batched subtasks) get an instance each, up to `params.parallel` (default: the usable
  cores; 1 keeps one instance), the cores split between them. llama.cpp reuses the KV cache of the longest prefix shared with the previous
  prompt; a RAM prompt cache keeps earlier prompts' states too (an agent's next turn, a retry).
- Honours stop words and the context window. Tokens are counted on the prompt exactly as
  llama.cpp renders it with the model's chat template; to fit, old middle turns are dropped
  (never the system prompt, the task's prompt or the latest turn), then the longest text is cut
  in its middle. `_fit` always ends; a config whose context leaves no room for a prompt is
  refused at load (`check_context`).
- Constrained decoding: a `response_model` (structured task output) becomes a JSON-schema
  grammar; when CrewAI passes tools, the reply is forced into one valid OpenAI-style tool call
  (one schema per tool, all arguments required), and the turn after a tool result is free text.
  Argument pins (`crewkit.runtime.pins`) fix values a tiny model would garble, e.g. the coworker
  and the subtask a manager must delegate. Pinned values are never generated: they are spliced
  into the call afterwards, and when every required argument is pinned the call is built with
  no model call at all (reported as not run, like a relayed answer).
- Reports token usage to CrewAI's counters and to crewkit's per-call usage cell.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from typing import Any

from crewai.llms.base_llm import BaseLLM, llm_call_context
from pydantic import BaseModel

from crewkit.models import gguf, usage_cell
from crewkit.models.context_fit import DEFAULT_CONSTRAINED_MAX_TOKENS, DEFAULT_MAX_TOKENS
from crewkit.models.gguf import load as _load
from crewkit.runtime import pins

_CUT = "\n[... cut to fit the model's context ...]\n"


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


def _formatter(llama: Any) -> Any:
    """The chat formatter `llama.create_chat_completion` uses for this model, or None if unknown.

    Mirrors llama_cpp's choice: an explicit chat handler cannot be rendered ahead; a template
    from the GGUF metadata (`tokenizer.chat_template`) is a Jinja2 formatter; a named format
    guessed from that template (chatml, llama-2, ...) is llama_cpp's formatter function.
    """
    cached = getattr(llama, "_crewkit_formatter", False)
    if cached is not False:
        return cached
    formatter = None
    chat_format = getattr(llama, "chat_format", None)
    metadata = getattr(llama, "metadata", None) or {}
    if getattr(llama, "chat_handler", None) is None and chat_format:
        from llama_cpp import llama_chat_format as lcf

        if chat_format.startswith("chat_template."):
            template = metadata.get("tokenizer." + chat_format.replace(".default", ""))
            if template:
                eos_id, bos_id = llama.token_eos(), llama.token_bos()
                formatter = lcf.Jinja2ChatFormatter(
                    template=template,
                    eos_token=llama._model.token_get_text(eos_id) if eos_id != -1 else "",
                    bos_token=llama._model.token_get_text(bos_id) if bos_id != -1 else "",
                    stop_token_ids=[eos_id],
                )
        else:
            named = {
                "chatml": "format_chatml",
                "llama-2": "format_llama2",
                "llama-3": "format_llama3",
                "mistral-instruct": "format_mistral_instruct",
            }.get(chat_format)
            formatter = getattr(lcf, named, None) if named else None
    with contextlib.suppress(AttributeError):  # cache it on the model object
        llama._crewkit_formatter = formatter
    return formatter


def _count_tokens(llama: Any, turns: list[dict[str, str]]) -> int:
    """Prompt tokens of chat turns as llama.cpp will send them: rendered with the chat template."""
    formatter = _formatter(llama)
    if formatter is not None:
        rendered = formatter(messages=turns)
        return len(
            llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)
        )
    # no renderable template (an explicit chat handler): content plus a few marker tokens per turn
    return sum(len(llama.tokenize(t["content"].encode(), add_bos=False)) + 8 for t in turns) + 8


def _cut_middle(llama: Any, content: str, drop: int) -> str:
    """`content` with about `drop` tokens (plus the marker's) removed from its middle; always shorter."""
    tokens = llama.tokenize(content.encode("utf-8"), add_bos=False)
    marker = len(llama.tokenize(_CUT.encode("utf-8"), add_bos=False))
    keep = len(tokens) - drop - marker
    if keep <= 0:
        return ""
    head, tail = tokens[: keep - keep // 3], tokens[len(tokens) - keep // 3 :] if keep // 3 else []
    text = (
        llama.detokenize(head).decode("utf-8", errors="ignore")
        + _CUT
        + llama.detokenize(tail).decode("utf-8", errors="ignore")
    )
    if len(text) >= len(content):  # token round trips may not shrink it: cut characters instead
        text = content[: len(content) * 3 // 4]
    return text


def _task_turn(turns: list[dict[str, str]]) -> int | None:
    """The turn that carries the task: the first user turn that is not a tool result."""
    for i, turn in enumerate(turns):
        if turn["role"] == "user" and not turn["content"].startswith("Tool result:"):
            return i
    return None


def _schema_hint(schema: dict[str, Any]) -> str:
    """A schema as one compact JSON line without titles (the grammar enforces it; this informs)."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in ("title", "additionalProperties")}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return json.dumps(strip(schema), separators=(",", ":"), ensure_ascii=False)


def _describes_fields(node: Any) -> bool:
    """Whether a JSON schema carries `description` texts (not a property named "description")."""
    if isinstance(node, dict):
        if isinstance(node.get("description"), str):
            return True
        return any(_describes_fields(v) for v in node.values())
    if isinstance(node, list):
        return any(_describes_fields(v) for v in node)
    return False


def _format_instructions() -> tuple[str, str]:
    """CrewAI's output-format instructions around the schema it embeds: (before, after)."""
    from crewai.utilities.i18n import I18N_DEFAULT

    text = I18N_DEFAULT.slice("formatted_task_instructions")
    before, _, after = text.partition("{output_format}")
    return before, after


def _compact_format_instructions(turns: list[dict[str, str]], schema: dict[str, Any]) -> list[dict[str, str]]:
    """Replace CrewAI's pretty-printed OpenAPI schema block with one short line.

    A structured reply is forced by a grammar, so the ~200-400 tokens of indented schema and
    "preserve the content" advice only slow the prompt down (prompt evaluation is most of a
    call's time on the embedded model). The schema stays, compact, when it describes fields.
    """
    before, after = _format_instructions()
    if not before:
        return turns
    out = []
    for turn in turns:
        content = turn["content"]
        start = content.find(before)
        end = content.find(after, start + len(before)) if start >= 0 and after else -1
        if start >= 0 and end >= 0:
            # the grammar forces keys, types and enums; only field descriptions add anything
            hint = "Answer with JSON."
            if _describes_fields(schema):
                hint = "Answer with JSON matching this schema: " + _schema_hint(schema)
            content = content[:start] + hint + content[end + len(after) :]
            turn = {**turn, "content": content}
        out.append(turn)
    return out


def _tool_schema(tools: list[dict[str, Any]], pin: dict[str, Any] | None) -> dict[str, Any]:
    """One object schema per tool: {"name": const, "arguments": {all unpinned params required}}.

    Pinned arguments are left out: the caller splices their values in after generation.
    """
    options = []
    for tool in tools:
        fn = tool.get("function", tool)
        name = fn["name"]
        if pin and pin["tool"] != pins.tool_key(name):
            continue
        params = dict(fn.get("parameters") or {"type": "object", "properties": {}})
        props: dict[str, Any] = {}
        for arg, spec in (params.get("properties") or {}).items():
            if pin and arg in pin["arguments"]:
                continue
            spec = {k: v for k, v in dict(spec).items() if k in ("type", "enum", "description", "items")}
            if "type" not in spec and "enum" not in spec:
                spec["type"] = "string"
            if isinstance(spec.get("type"), list):
                spec["type"] = next((t for t in spec["type"] if t != "null"), "string")
            if spec.get("type") == "string":
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


def _pinned_tool(tools: list[dict[str, Any]], pin: dict[str, Any] | None) -> dict[str, Any] | None:
    """The function spec of the tool a pin names, if this agent has it."""
    if not pin:
        return None
    for tool in tools:
        fn = tool.get("function", tool)
        if pins.tool_key(fn["name"]) == pin["tool"]:
            return fn
    return None


def _tool_call(fn: dict[str, Any], arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """One OpenAI-style tool call, arguments in the order the tool declares them."""
    order = list((fn.get("parameters") or {}).get("properties") or {})
    ordered = {k: arguments[k] for k in order if k in arguments}
    ordered.update({k: v for k, v in arguments.items() if k not in ordered})
    return [
        {
            "id": f"call_{uuid.uuid4().hex[:12]}",
            "type": "function",
            "function": {"name": fn["name"], "arguments": json.dumps(ordered)},
        }
    ]


def _fully_pinned(fn: dict[str, Any], pin: dict[str, Any]) -> bool:
    """Every required argument of the tool (all of them when it lists none) is pinned."""
    params = fn.get("parameters") or {}
    required = params.get("required")
    if required is None:
        required = list(params.get("properties") or {})
    return all(arg in pin["arguments"] for arg in required)


class LlamaCppLLM(BaseLLM):
    """In-process llama.cpp chat model for CrewAI."""

    llm_type: str = "llamacpp"
    provider: str = "llamacpp"
    model_path: str
    n_ctx: int = 8192
    n_threads: int = 0  # 0: every usable core that is free at each call (see free_cores)
    temperature: float | None = 0.2
    max_tokens: int | float | None = DEFAULT_MAX_TOKENS
    repeat_penalty: float = 1.15
    # Constrained replies (plans, tool calls) must close their JSON: give them room to.
    constrained_max_tokens: int = DEFAULT_CONSTRAINED_MAX_TOKENS
    tools_capable: bool = True
    parallel: int = 0  # instances generating at once; 0: as many as the usable cores hold

    def supports_function_calling(self) -> bool:
        return self.tools_capable

    def supports_stop_words(self) -> bool:
        return True

    def get_context_window_size(self) -> int:
        return self.n_ctx

    def _set_threads(self, llama: Any, threads: int | None = None) -> None:
        """Run this instance's next generation on `threads` threads; by default the explicit
        `n_threads` param, else the usable cores that are free now (pooled calls: `gguf.Pool`)."""
        gguf.apply_threads(llama, threads or self.n_threads or gguf.free_cores())

    def _model(self) -> tuple[Any, threading.Lock]:
        return _load(self.model, self.model_path, self.n_ctx, self.n_threads)

    def _another(self) -> Any:
        """One more instance of this model for calls made at the same time (`gguf.Pool`)."""
        return gguf.new_instance(self.model, self.model_path, self.n_ctx, self.n_threads)

    def get_input_tokens_count(self, messages: Any, tools: Any = None, response_model: Any = None) -> int:
        """Exact count with the model's tokenizer and chat template (CrewAI uses it to manage the context)."""
        llama, _ = self._model()  # tokenizing reads the vocabulary only: no generation lock
        return _count_tokens(llama, _chat_messages(messages))

    def count_text_tokens(self, text: str) -> int:
        """Tokens of a plain text with this model's tokenizer."""
        llama, _ = self._model()
        return len(llama.tokenize(text.encode("utf-8"), add_bos=False))

    def _fit(self, llama: Any, turns: list[dict[str, str]], max_tokens: int) -> list[dict[str, str]]:
        """Make the prompt plus a `max_tokens` reply fit the window; always ends.

        Old middle turns go first (never the system prompt, the task's turn or the latest turn),
        then the longest text is cut in its middle, the task's own turn and the system prompt
        last. Raises ValueError only if even empty turns cannot fit (a context too small for
        the template, which the config check refuses).
        """
        budget = self.n_ctx - max_tokens
        turns = list(turns)
        count = _count_tokens(llama, turns)
        if count <= budget:
            return turns

        def keep(ts: list[dict[str, str]]) -> set[int]:
            task = _task_turn(ts)
            kept = {i for i, t in enumerate(ts) if t["role"] == "system"} | {len(ts) - 1}
            return kept | ({task} if task is not None else set())

        droppable = [i for i in range(len(turns)) if i not in keep(turns)]
        while droppable and count > budget:
            del turns[droppable[0]]
            count = _count_tokens(llama, turns)
            droppable = [i for i in range(len(turns)) if i not in keep(turns)]
        # Each pass strictly shortens one text, so this loop ends; the bound is a safety net.
        for _ in range(64):
            if count <= budget:
                return turns
            protected = keep(turns) - {len(turns) - 1}
            candidates = [i for i in range(len(turns)) if turns[i]["content"] and i not in protected]
            candidates = candidates or [i for i in range(len(turns)) if turns[i]["content"]]
            if not candidates:
                break
            longest = max(candidates, key=lambda i: len(turns[i]["content"]))
            excess = count - budget
            turns[longest] = {
                **turns[longest],
                "content": _cut_middle(llama, turns[longest]["content"], excess + 8),
            }
            count = _count_tokens(llama, turns)
        if count <= budget:
            return turns
        raise ValueError(
            f"{self.model}: a {count}-token prompt cannot fit the {self.n_ctx}-token context with "
            f"{max_tokens} tokens left for the reply; raise 'context:' in config/models.yaml"
        )

    def sampling(self, max_tokens: int) -> dict[str, Any]:
        """llama.cpp's sampling arguments for one call (the evaluation's streamed calls use them too)."""
        kwargs: dict[str, Any] = {
            "max_tokens": max_tokens,
            "temperature": self.temperature or 0.0,
            "repeat_penalty": self.repeat_penalty,
        }
        if self.top_p is not None:
            kwargs["top_p"] = self.top_p
        if self.seed is not None:
            kwargs["seed"] = self.seed
        return kwargs

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
        pin = pins.lookup(getattr(from_task, "id", "")) if from_task is not None else None
        if tools and last_is_tool_result and pin and pin.get("answer_with_tool_result"):
            relayed = _text(messages[-1].get("content")).strip()  # type: ignore[union-attr]
            if not relayed.startswith("Error executing tool"):
                usage_cell.report_relay()
                return relayed
        pinned_fn = _pinned_tool(tools or [], pin) if response_model is None else None
        if tools and not last_is_tool_result and pinned_fn is not None and _fully_pinned(pinned_fn, pin):  # type: ignore[arg-type]
            usage_cell.report_not_run("pinned tool call")
            return _tool_call(pinned_fn, dict(pin["arguments"]))  # type: ignore[index]
        llama, lock = self._model()
        max_tokens = int(self.max_tokens or DEFAULT_MAX_TOKENS)
        turns = _chat_messages(messages)
        schema: dict[str, Any] | None = None
        mode = "text"
        if response_model is not None:
            schema, mode = response_model.model_json_schema(), "structured"
            turns = _compact_format_instructions(turns, schema)
        elif tools and not last_is_tool_result:
            schema, mode = _tool_schema(tools, pin), "tool_call"
        if mode != "text":
            max_tokens = max(max_tokens, self.constrained_max_tokens)
        kwargs = self.sampling(max_tokens)
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
            slots = gguf.pool(llama, lock)
            limit = gguf.instance_limit(self.parallel, self.n_threads)
            with slots.generation(self._another, limit=limit, n_threads=self.n_threads) as (
                instance,
                threads,
            ):
                turns = self._fit(instance, turns, max_tokens)
                out = instance.create_chat_completion(messages=turns, **kwargs)
            splice = (pinned_fn, pin) if pinned_fn is not None and mode == "tool_call" else None
            return self._finish(out, mode, response_model, messages, from_task, from_agent, splice)

    def _finish(
        self,
        out: dict[str, Any],
        mode: str,
        response_model: type[BaseModel] | None,
        messages: Any,
        from_task: Any,
        from_agent: Any,
        splice: tuple[dict[str, Any], dict[str, Any]] | None = None,
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
            try:  # the grammar lets raw tabs and newlines into strings, which strict JSON refuses
                data = json.loads(text, strict=False)
            except json.JSONDecodeError:
                result = response_model.model_validate_json(text)  # type: ignore[union-attr]  # its own error
            else:
                result = response_model.model_validate(data)  # type: ignore[union-attr]
        elif mode == "tool_call":
            call = json.loads(text, strict=False)  # the grammar lets raw tabs and newlines into strings
            arguments = dict(call.get("arguments") or {})
            fn: dict[str, Any] = {"name": call["name"]}
            if splice is not None:
                fn, pin = splice
                arguments.update(pin["arguments"])  # pinned values are spliced in, never generated
            result = _tool_call(fn, arguments)
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
