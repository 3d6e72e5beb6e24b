"""A per-call cell in which a model reports the tokens it used.

The metered wrapper opens a cell around each call (`open_cell`); an in-process model writes
its exact counts with `report`. Context variables keep concurrent calls apart. Providers that
do not report here are measured from CrewAI's own token counters instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_CELL: ContextVar[dict[str, Any] | None] = ContextVar("crewkit_usage_cell", default=None)


@contextmanager
def open_cell() -> Iterator[dict[str, Any]]:
    cell: dict[str, Any] = {}
    token = _CELL.set(cell)
    try:
        yield cell
    finally:
        _CELL.reset(token)


def report(input_tokens: int, output_tokens: int) -> None:
    cell = _CELL.get()
    if cell is not None:
        cell["input_tokens"] = cell.get("input_tokens", 0) + int(input_tokens)
        cell["output_tokens"] = cell.get("output_tokens", 0) + int(output_tokens)


def report_not_run(reason: str) -> None:
    """The model was not run for this call (a relayed tool result, a fully pinned tool call).

    The metered wrapper records such a call with `relayed=True`: no tokens, no cost, not
    counted as a model call. `cell["not_run"]` says why.
    """
    cell = _CELL.get()
    if cell is not None:
        cell["relayed"] = 1
        cell["not_run"] = reason


def report_relay() -> None:
    """The model was not run: the reply relays a tool result verbatim (see llamacpp pins)."""
    report_not_run("relayed tool result")
