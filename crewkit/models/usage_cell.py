"""A per-call cell in which a model reports the tokens it used.

The metered wrapper opens a cell around each call (`open_cell`); an in-process model writes
its exact counts with `report`. Context variables keep concurrent calls apart. Any other CrewAI
`BaseLLM` counts its usage with `_track_token_usage_internal`, which is wrapped once to add the
counts to the cell of the call it belongs to (a model's own `report` replaces them): two calls on
one shared LLM object at the same time (batched subtasks) each get their own tokens, where the
difference of the object's lifetime counters would give each the other's too. A provider that
tracks its usage outside the call's context leaves no counts: the caller measures the counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_CELL: ContextVar[dict[str, Any] | None] = ContextVar("crewkit_usage_cell", default=None)


@contextmanager
def open_cell() -> Iterator[dict[str, Any]]:
    if not _tracking_installed:
        _install_tracking()
    cell: dict[str, Any] = {}
    token = _CELL.set(cell)
    try:
        yield cell
    finally:
        _CELL.reset(token)


def report(input_tokens: int, output_tokens: int) -> None:
    cell = _CELL.get()
    if cell is not None:
        if cell.pop("tracked", False):  # the model's own count replaces what its counters saw
            cell["input_tokens"] = cell["output_tokens"] = 0
        cell["reported"] = True
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


_tracking_installed = False


def _install_tracking() -> None:
    """Wrap `BaseLLM._track_token_usage_internal` (idempotent): the counts also go to the open cell."""
    global _tracking_installed
    from crewai.llms.base_llm import BaseLLM
    from crewai.types.usage_metrics import UsageMetrics

    original = BaseLLM._track_token_usage_internal
    if getattr(original, "crewkit_cell", False):
        _tracking_installed = True
        return

    def _track_token_usage_internal(self: Any, usage_data: dict[str, Any]) -> None:
        original(self, usage_data)
        cell = _CELL.get()
        if cell is None or cell.get("reported"):
            return
        metrics = UsageMetrics.from_provider_dict(usage_data)
        if metrics is None:
            return
        cell["tracked"] = True
        cell["input_tokens"] = cell.get("input_tokens", 0) + int(metrics.prompt_tokens)
        cell["output_tokens"] = cell.get("output_tokens", 0) + int(metrics.completion_tokens)

    _track_token_usage_internal.crewkit_cell = True  # type: ignore[attr-defined]
    BaseLLM._track_token_usage_internal = _track_token_usage_internal  # type: ignore[method-assign]
    _tracking_installed = True
