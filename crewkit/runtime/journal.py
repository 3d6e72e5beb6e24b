"""The call journal: answered model and tool calls kept in state.db, replayed on resume.

A resumed run re-enters the step that was in flight (after a pause, a crash or a kill) and
makes the same calls again; `CallJournal` answers each one that was answered before from the
journal instead of paying the model (or running the tool) again. A call's key is its kind, the
number of checkpoints when it was made, the sha256 of what was sent (role, messages, tools and
the response model's schema / the tool's name and canonical arguments) and the occurrence of
that hash, so identical calls replay in order and a call in a later step never takes an
earlier step's answer. Every model attempt's usage row is persisted (`store.add_call`): the run
record sums all segments of a run.

Answers are stored as JSON with their type: text, a list of tool calls (any provider's shape,
kept as OpenAI-style dicts, which CrewAI executes the same way), a pydantic instance (rebuilt
with the call's `response_model`, else its own class), or plain JSON. An answer that cannot be
stored faithfully is not journalled: the call is made again on resume rather than replayed wrong.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from crewkit.governance import audit
from crewkit.runtime import call_audit
from crewkit.runtime.hooks import ModelCall, ModelResult, Replay, Subscriber, ToolCall, ToolResult
from crewkit.runtime.store import StateStore


def _digest(value: Any) -> str:
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, default=str, ensure_ascii=False).encode()
    ).hexdigest()


def _schema(model: Any) -> Any:
    if isinstance(model, type) and issubclass(model, BaseModel):
        try:
            return model.model_json_schema()
        except Exception:  # noqa: BLE001 - a schema pydantic cannot render: the class name keys it
            return f"{model.__module__}:{model.__qualname__}"
    return None if model is None else str(model)


def _tool_calls(value: Any) -> list[dict[str, Any]] | None:
    """A model's list of tool calls as OpenAI-style dicts, or None when `value` is not one."""
    if not isinstance(value, list) or not value or isinstance(value[0], str):
        return None
    from crewai.utilities.agent_utils import extract_tool_call_info, is_tool_call_list

    if not is_tool_call_list(value):
        return None
    calls = []
    for item in value:
        info = extract_tool_call_info(item)
        if info is None:
            return None
        call_id, name, args = info
        arguments = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
    return calls


def encode(value: Any) -> dict[str, Any] | None:
    """`value` as JSON with its type, or None when it cannot be stored faithfully."""
    if isinstance(value, str):
        return {"type": "str", "value": value}
    if isinstance(value, BaseModel):
        cls = type(value)
        return {
            "type": "model",
            "class": f"{cls.__module__}:{cls.__qualname__}",
            "value": value.model_dump(mode="json"),
        }
    try:
        calls = _tool_calls(value)
    except Exception:  # noqa: BLE001 - an odd provider object: not a tool-call list we can keep
        return None
    if calls is not None:
        return {"type": "tool_calls", "value": calls}
    try:
        if json.loads(json.dumps(value)) != value:  # tuples, non-str keys: would come back changed
            return None
    except (TypeError, ValueError):
        return None
    return {"type": "json", "value": value}


def _model_class(path: str) -> type[BaseModel] | None:
    module, _, qualname = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj if isinstance(obj, type) and issubclass(obj, BaseModel) else None


def decode(stored: Any, response_model: Any = None) -> Any:
    """The answer `encode` stored; a pydantic instance is rebuilt with `response_model` if given."""
    if not isinstance(stored, dict) or "type" not in stored:
        return stored
    if stored["type"] == "model":
        cls = (
            response_model
            if isinstance(response_model, type) and issubclass(response_model, BaseModel)
            else None
        )
        cls = cls or _model_class(str(stored.get("class", "")))
        return cls.model_validate(stored["value"]) if cls is not None else stored["value"]
    return stored["value"]


class CallJournal(Subscriber):
    """Replays journalled answers on resume; journals new answers and every model usage row."""

    def __init__(
        self, store: StateStore, run_id: str, checkpoint_count: Callable[[], int], audit_text: str = "hash"
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.count = checkpoint_count
        self.audit_text = audit_text  # "hash" | "redacted": prompts and answers in the audit log
        self._seen: dict[str, int] = {}  # occurrences of each (kind, checkpoint count, hash) so far
        # Whether the run had journalled calls when this segment began (looked up at its first
        # call). A run that had none can replay nothing: every key this segment makes is new.
        self._replayable: bool | None = None
        self._open: dict[int, tuple[Any, str, int]] = {}  # id(call) -> (call, key, checkpoint count)
        self._lock = threading.Lock()
        self._local = threading.local()  # the key of this thread's current logical model call

    def _key(self, base: str) -> str:
        with self._lock:
            n = self._seen.get(base, 0)
            self._seen[base] = n + 1
        return f"{base}:{n}"

    def _lookup(self, key: str) -> Any:
        if self._replayable is None:
            self._replayable = bool(
                self.store.read("SELECT 1 FROM journal WHERE run_id = ? LIMIT 1", (self.run_id,))
            )
        return self.store.journal_get(self.run_id, key) if self._replayable else None

    def _take(self, call: Any) -> tuple[str, int] | None:
        entry = self._open.pop(id(call), None)
        if entry is None or entry[0] is not call:  # a stale entry of a call that never finished
            return None
        return entry[1], entry[2]

    # -- model calls -----------------------------------------------------------------------------

    def before_model(self, call: ModelCall) -> Replay | None:
        count = self.count()
        last = getattr(self._local, "last", None)
        if call.attempt > 0 and last is not None and last[0] is call.messages:
            key = last[1]  # a fallback of the same logical call: the same key
        else:
            digest = _digest([call.role, call.messages, call.tools, _schema(call.response_model)])
            key = self._key(f"model:{count}:{digest}")
            self._local.last = (call.messages, key)
        self._open[id(call)] = (call, key, count)
        entry = self._lookup(key)
        if entry is not None:
            return Replay(decode(entry.value, call.response_model))
        return None

    def after_model(self, result: ModelResult) -> None:
        call = result.call
        opened = self._take(call)
        journal = None
        cached = result.replay_source == "cache"
        # a cache-served answer is journalled too: a resumed run replays its own answers first
        if opened is not None and result.error is None and (not result.replayed or cached):
            stored = encode(result.value)
            if stored is not None:
                journal = (opened[0], "model", opened[1], stored)
        replayed = result.replayed
        self.store.add_call(
            self.run_id,
            {
                "stage": call.stage,
                "agent": call.agent,
                "role": call.role,
                "model": call.model,
                "started": result.started,
                "seconds": result.seconds,
                "input_tokens": 0 if replayed else result.input_tokens,
                "output_tokens": 0 if replayed else result.output_tokens,
                "cost_usd": 0.0 if replayed else result.cost_usd,
                "error": result.error,
                "relayed": result.relayed,
                "not_run": result.not_run,
                "replayed": replayed,
                "cached": cached,  # answered by the response cache: 0 tokens, 0 cost
            },
            audit_entry=call_audit.model_call(self.run_id, result, self.audit_text),
            journal=journal,
        )

    # -- tool calls ------------------------------------------------------------------------------

    def before_tool(self, call: ToolCall) -> Replay | None:
        count = self.count()
        digest = _digest([call.tool_name, call.arguments])
        key = self._key(f"tool:{count}:{call.tool_name}:{digest}")
        self._open[id(call)] = (call, key, count)
        entry = self._lookup(key)
        if entry is not None:
            return Replay(decode(entry.value))
        return None

    def after_tool(self, result: ToolResult) -> None:
        opened = self._take(result.call)
        entry = call_audit.tool_call(self.run_id, result, self.audit_text)
        stored = None
        if opened is not None and result.error is None and not result.replayed and result.value is not None:
            stored = encode(result.value)
        if opened is not None and stored is not None:
            self.store.journal_put(self.run_id, opened[0], "tool", opened[1], stored, audit_entry=entry)
        else:
            audit.record(self.store, entry)
