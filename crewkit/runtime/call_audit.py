"""What the audit log says about one model or tool call of a run.

Built on the hook path by `CallJournal`, which writes each record in the same transaction as
the call's usage row and journalled answer. Prompts, responses, tool arguments and results are
kept as sha256 digests by default; a profile with `audit: {text: redacted}` keeps the text with
secrets and personal data masked (`crewkit.governance.audit.scrub`).
"""

from __future__ import annotations

from typing import Any

from crewkit.governance.audit import Entry, digest
from crewkit.runtime.hooks import ModelResult, ToolResult


def _text(value: Any, mode: str) -> Any:
    if value is None:
        return None
    if mode == "redacted":
        return value if isinstance(value, str | list | dict) else str(value)
    return digest(value)


def model_call(run_id: str, result: ModelResult, mode: str = "hash") -> Entry:
    """`model.call` (answered by the model), `model.replayed`, `cache.hit` (the response cache
    answered), `model.refused`, `model.skipped` (cooling down) or `model.failed`."""
    call = result.call
    if result.replayed and result.replay_source == "cache":
        return _cache_hit(run_id, result)
    if result.replayed:
        action = "model.replayed"
    elif result.not_run == "refused":
        action = "model.refused"
    elif result.not_run == "cooling down":
        action = "model.skipped"  # crewkit.models.cooldown: no call was made
    elif result.error is not None:
        action = "model.failed"
    else:
        action = "model.call"
    detail: dict[str, Any] = {
        "role": call.role,
        "model": call.model,
        "agent": call.agent,
        "stage": call.stage,
        "attempt": call.attempt,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": round(result.cost_usd, 8),
        "latency_ms": round(result.seconds * 1000, 3),
        "prompt": _text(call.messages, mode),
    }
    if result.error is None:
        detail["response"] = _text(result.value, mode)
    else:
        detail["error"] = result.error
    if result.relayed:
        detail["relayed"] = True
    return Entry(action, f"{call.role}/{call.model}", detail, actor=call.agent or call.role, run_id=run_id)


def _cache_hit(run_id: str, result: ModelResult) -> Entry:
    """`cache.hit`: answered by the response cache (its key's digest and how it matched; no text)."""
    call = result.call
    detail: dict[str, Any] = {
        "role": call.role,
        "model": call.model,
        "agent": call.agent,
        "stage": call.stage,
        "attempt": call.attempt,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": 0.0,
        "latency_ms": round(result.seconds * 1000, 3),
        **(result.replay_detail or {}),
    }
    return Entry(
        "cache.hit", f"{call.role}/{call.model}", detail, actor=call.agent or call.role, run_id=run_id
    )


def tool_call(run_id: str, result: ToolResult, mode: str = "hash") -> Entry:
    """`tool.call`, `tool.replayed`, `tool.refused` (not run) or `tool.failed`."""
    call = result.call
    if result.replayed:
        action = "tool.replayed"
    elif result.refused:
        action = "tool.refused"
    elif result.error is not None:
        action = "tool.failed"
    else:
        action = "tool.call"
    detail: dict[str, Any] = {
        "tool": call.tool_name,
        "agent": call.agent,
        "stage": call.stage,
        "arguments": _text(call.arguments, mode),
        "latency_ms": round(result.seconds * 1000, 3),
    }
    if result.error is None:
        detail["result"] = _text(result.value, mode)
    else:
        detail["error"] = result.error
    return Entry(action, f"tool {call.tool_name}", detail, actor=call.agent or "crewkit", run_id=run_id)
