"""The run ledger: every model call of a run, with role, model, agent, tokens, cost and latency.

The ledger is the first subscriber of the hook path (`crewkit.runtime.hooks`): its
`LedgerSubscriber.after_model` records each attempt `RoleLLM` makes. The runner opens a ledger
for the run (`open_ledger`) and reads it into the run record (`steps`, `usage` per role).
Outside a run the calls go to a process-wide ledger, so `crewkit crew` and tests can read them
too. A call answered from the run's journal on resume (`replayed`) is a step with 0 tokens and
0 cost and is not counted as a model call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crewkit.runtime.hooks import ModelResult


@dataclass(slots=True)  # not changed once added; not frozen: that costs ~5 µs more per model call
class CallRecord:
    stage: str
    agent: str
    role: str
    model: str
    started: float
    seconds: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    error: str | None = None
    relayed: bool = False  # no model ran: a relayed tool result or a fully pinned tool call
    not_run: str | None = None  # why no model ran
    replayed: bool = False  # answered from the run's journal (resume): no model ran, nothing paid


@dataclass
class Ledger:
    calls: list[CallRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, record: CallRecord) -> None:
        with self._lock:
            self.calls.append(record)

    def usage(self) -> dict[str, dict[str, Any]]:
        """Per role: model calls, input/output tokens, cost and seconds (failed calls count; relays,
        refusals and replays don't)."""
        out: dict[str, dict[str, Any]] = {}
        for c in list(self.calls):
            if c.relayed or c.replayed or c.not_run:
                continue
            u = out.setdefault(
                c.role, {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "seconds": 0.0}
            )
            u["calls"] += 1
            u["input_tokens"] += c.input_tokens
            u["output_tokens"] += c.output_tokens
            u["cost_usd"] = round(u["cost_usd"] + c.cost_usd, 8)
            u["seconds"] = round(u["seconds"] + c.seconds, 4)
        return out

    def totals(self) -> dict[str, int]:
        """Tokens over every call, named as CrewAI's `UsageMetrics` names them (`token_usage`)."""
        answered = [c for c in list(self.calls) if not (c.relayed or c.replayed or c.not_run or c.error)]
        prompt = sum(c.input_tokens for c in answered)
        completion = sum(c.output_tokens for c in answered)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "successful_requests": len(answered),
        }

    def steps(self) -> list[dict[str, Any]]:
        rows = []
        for c in list(self.calls):
            row = {
                "step": c.stage,
                "agent": c.agent,
                "role": c.role,
                "model": c.model,
                "started": c.started,
                "seconds": round(c.seconds, 4),
                "input_tokens": c.input_tokens,
                "output_tokens": c.output_tokens,
                "cost_usd": round(c.cost_usd, 8),
            }
            if c.error:
                row["error"] = c.error
            if c.relayed:
                row["relayed"] = True
            if c.replayed:
                row["replayed"] = True
            if c.not_run:
                row["not_run"] = c.not_run
            rows.append(row)
        return rows

    def calls_by_agent(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in list(self.calls):
            counts[c.agent] = counts.get(c.agent, 0) + 1
        return counts

    def as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(c) for c in list(self.calls)]


_PROCESS_LEDGER = Ledger()
_LEDGER: ContextVar[Ledger | None] = ContextVar("crewkit_ledger", default=None)
_STAGE: ContextVar[str] = ContextVar("crewkit_stage", default="")


def current() -> Ledger:
    return _LEDGER.get() or _PROCESS_LEDGER


def current_stage() -> str:
    """The flow step the calls made now belong to ("" outside a step)."""
    return _STAGE.get()


@contextmanager
def open_ledger(ledger: Ledger | None = None) -> Iterator[Ledger]:
    ledger = ledger or Ledger()
    token = _LEDGER.set(ledger)
    try:
        yield ledger
    finally:
        _LEDGER.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Label the model calls made inside the block with a flow step name."""
    token = _STAGE.set(name)
    try:
        yield
    finally:
        _STAGE.reset(token)


def record_call(
    role: str,
    model: str,
    agent: str,
    started: float,
    seconds: float,
    input_tokens: int,
    output_tokens: int,
    cost_usd: float,
    error: str | None = None,
    relayed: bool = False,
    not_run: str | None = None,
    replayed: bool = False,
    stage: str | None = None,
) -> None:
    current().add(
        CallRecord(
            stage=_STAGE.get() if stage is None else stage,
            agent=agent,
            role=role,
            model=model,
            started=started,
            seconds=seconds,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
            error=error,
            relayed=relayed,
            not_run=not_run,
            replayed=replayed,
        )
    )


class LedgerSubscriber:
    """The hook path's first subscriber: every model attempt into the current ledger.

    A `crewkit.runtime.hooks.Subscriber` by shape (this module does not import the hook path).
    """

    def after_model(self, result: ModelResult) -> None:
        call = result.call
        if result.replayed:
            tokens_in, tokens_out, cost = 0, 0, 0.0
        else:
            tokens_in, tokens_out, cost = result.input_tokens, result.output_tokens, result.cost_usd
        current().add(
            CallRecord(
                call.stage,
                call.agent,
                call.role,
                call.model,
                result.started,
                result.seconds,
                tokens_in,
                tokens_out,
                cost,
                result.error,
                result.relayed,
                result.not_run,
                result.replayed,
            )
        )
