"""The call journal: answered model and tool calls kept in state.db, replayed on resume.

A resumed run re-enters the step that was in flight (after a pause, a crash or a kill) and
makes the same calls again; `CallJournal` answers each one that was answered before from the
journal instead of paying the model (or running the tool) again. A call's key is its kind, the
number of checkpoints when it was made, the sha256 of what was sent (role, messages, tools and
the response model's schema / the tool's name and canonical arguments) and the occurrence of
that hash, so identical calls replay in order and a call in a later step never takes an
earlier step's answer. Every model attempt's usage row is persisted (`store.add_call`): the run
record sums all segments of a run.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from crewkit.runtime.hooks import ModelCall, ModelResult, Replay, Subscriber, ToolCall, ToolResult
from crewkit.runtime.store import StateStore


def _digest(value: Any) -> str:
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, default=str, ensure_ascii=False).encode()
    ).hexdigest()


def _schema(model: Any) -> Any:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model.model_json_schema()
    return None if model is None else str(model)


def encode(value: Any) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        return {"type": "model", "value": value.model_dump(mode="json")}
    if isinstance(value, str):
        return {"type": "str", "value": value}
    try:
        json.dumps(value)
        return {"type": "json", "value": value}
    except (TypeError, ValueError):
        return {"type": "str", "value": str(value)}


def decode(stored: Any, response_model: Any = None) -> Any:
    if not isinstance(stored, dict) or "type" not in stored:
        return stored
    if (
        stored["type"] == "model"
        and isinstance(response_model, type)
        and issubclass(response_model, BaseModel)
    ):
        return response_model.model_validate(stored["value"])
    return stored["value"]


class CallJournal(Subscriber):
    def __init__(self, store: StateStore, run_id: str, checkpoint_count: Callable[[], int]) -> None:
        self.store = store
        self.run_id = run_id
        self.count = checkpoint_count
        self._seen: dict[str, int] = {}
        self._keys: dict[int, str] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def _key(self, base: str) -> str:
        with self._lock:
            n = self._seen.get(base, 0)
            self._seen[base] = n + 1
        return f"{base}:{n}"

    # -- model calls -----------------------------------------------------------------------------

    def before_model(self, call: ModelCall) -> Replay | None:
        if call.attempt > 0:  # a fallback of the same logical call: same key
            key = getattr(self._local, "key", None)
        else:
            digest = _digest([call.role, call.messages, call.tools, _schema(call.response_model)])
            key = self._key(f"model:{self.count()}:{digest}")
            self._local.key = key
        if key is None:
            return None
        self._keys[id(call)] = key
        entry = self.store.journal_get(self.run_id, key)
        if entry is not None:
            return Replay(decode(entry.value, call.response_model))
        return None

    def after_model(self, result: ModelResult) -> None:
        call = result.call
        key = self._keys.pop(id(call), None)
        if key is not None and result.error is None and not result.replayed:
            self.store.journal_put(self.run_id, key, "model", self.count(), encode(result.value))
        self.store.add_call(
            self.run_id,
            {
                "stage": call.stage,
                "agent": call.agent,
                "role": call.role,
                "model": call.model,
                "started": result.started,
                "seconds": result.seconds,
                "input_tokens": 0 if result.replayed else result.input_tokens,
                "output_tokens": 0 if result.replayed else result.output_tokens,
                "cost_usd": 0.0 if result.replayed else result.cost_usd,
                "error": result.error,
                "relayed": result.relayed,
                "not_run": result.not_run,
                "replayed": result.replayed,
            },
        )

    # -- tool calls ------------------------------------------------------------------------------

    def before_tool(self, call: ToolCall) -> Replay | None:
        digest = _digest([call.tool_name, call.arguments])
        key = self._key(f"tool:{self.count()}:{call.tool_name}:{digest}")
        self._keys[id(call)] = key
        entry = self.store.journal_get(self.run_id, key)
        if entry is not None:
            return Replay(decode(entry.value))
        return None

    def after_tool(self, result: ToolResult) -> None:
        key = self._keys.pop(id(result.call), None)
        if key is not None and result.error is None and not result.replayed and result.value is not None:
            self.store.journal_put(self.run_id, key, "tool", self.count(), encode(result.value))
