"""Delegation pins: the tool call a task's agent must make, fixed by the flow for one run.

The embedded model is too small to choose a coworker and restate a subtask reliably, so a flow
pins them per task (`pin`): the embedded LLM splices the pinned values into its tool call
instead of generating them (`crewkit.models.llamacpp`). The table lives in a context variable
the runner opens per run (`run_table`), so two runs in one process never see each other's pins.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# task id -> {"tool": key, "arguments": {arg: value}, "answer_with_tool_result": bool}
_TABLE: ContextVar[dict[str, dict[str, Any]] | None] = ContextVar("crewkit_pins", default=None)


def tool_key(name: str) -> str:
    """CrewAI sends 'Delegate work to coworker' as 'delegate_work_to_coworker'; compare both."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@contextmanager
def run_table() -> Iterator[dict[str, dict[str, Any]]]:
    """A fresh pin table for one run (contexts copied from here share it, threads included)."""
    table: dict[str, dict[str, Any]] = {}
    token = _TABLE.set(table)
    try:
        yield table
    finally:
        _TABLE.reset(token)


def _table() -> dict[str, dict[str, Any]]:
    table = _TABLE.get()
    if table is None:  # outside a run (a test, a crew built by hand): this context's own table
        table = {}
        _TABLE.set(table)
    return table


def pin(task_id: Any, tool: str, arguments: dict[str, Any], *, answer_with_tool_result: bool = False) -> None:
    """Force the tool call made while working on `task_id` to `tool`, with these argument values.

    Pinned values are spliced into the call, never generated. When they cover every required
    argument of the tool, the call is made without running the model. With
    `answer_with_tool_result`, the turn after the tool returns answers with the tool's result
    verbatim (a manager relaying its coworker's answer) instead of a paraphrase.
    """
    _table()[str(task_id)] = {
        "tool": tool_key(tool),
        "arguments": dict(arguments),
        "answer_with_tool_result": answer_with_tool_result,
    }


def unpin(task_ids: list[str]) -> None:
    table = _table()
    for task_id in task_ids:
        table.pop(str(task_id), None)


def lookup(task_id: Any) -> dict[str, Any] | None:
    table = _TABLE.get()
    return table.get(str(task_id)) if table else None


@contextmanager
def pinned(
    pins: dict[Any, tuple[str, dict[str, Any]]], *, answer_with_tool_result: bool = False
) -> Iterator[None]:
    """Pin several tasks for the duration of a block: {task_id: (tool, arguments)}."""
    for task_id, (tool, arguments) in pins.items():
        pin(task_id, tool, arguments, answer_with_tool_result=answer_with_tool_result)
    try:
        yield
    finally:
        unpin([str(t) for t in pins])
