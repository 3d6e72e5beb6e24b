"""Batching: independent pieces of work of one step run at the same time, up to a limit.

A flow step hands `run(jobs, max_concurrency=n)` one `Job` per piece (the default flow: one per
subtask of its plan, each a crew of its own). Jobs start in the order given as soon as a slot is
free and the jobs they depend on (`after`) have finished; a job's work gets the results of those
jobs. Each job runs in a thread of its own through asyncio (`asyncio.to_thread`, as CrewAI's
`Crew.kickoff_async` does), in a copy of the step's context: the run's hooks, pins, ledger stage
and routes reach it, and a context variable the job sets stays its own.

Results come back in the jobs' order, whatever order they finished in, so a step builds the
same record as a sequential run. With `max_concurrency=1` the jobs run one after another in the
calling thread, in the order given (dependencies first): exactly the sequential run.

A job that fails or pauses the run (`RunPaused`, a BaseException) stops the batch like it stops
a sequential run: no job starts after it, the jobs already running finish (their model calls are
journalled, so a resumed run replays them instead of paying again), then the failure of the
first job in the given order is raised, as the sequential run would have raised it first.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Job(Generic[T]):
    """One piece of work: `work(results)` gets {key: result} of the jobs named in `after`."""

    key: str
    work: Callable[[dict[str, Any]], T]
    after: tuple[str, ...] = field(default=())


@dataclass
class Outcome:
    """What a batch did: each finished job's result and each failure, keyed by job."""

    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # not started: an earlier job failed first
    most_running: int = 0  # the most jobs that ran at the same time


def order(jobs: Sequence[Job[Any]]) -> list[Job[Any]]:
    """The jobs in the given order, each after the jobs it depends on (a stable topological sort).

    Raises ValueError for a duplicate key, an unknown dependency or a cycle.
    """
    by_key: dict[str, Job[Any]] = {}
    for job in jobs:
        if job.key in by_key:
            raise ValueError(f"batch: two jobs are keyed {job.key!r}")
        by_key[job.key] = job
    for job in jobs:
        unknown = [k for k in job.after if k not in by_key]
        if unknown:
            raise ValueError(
                f"batch: job {job.key!r} depends on unknown job(s) {', '.join(map(repr, unknown))}"
            )
    placed: list[Job[Any]] = []
    done: set[str] = set()
    pending = list(jobs)
    while pending:
        ready = next((j for j in pending if all(k in done for k in j.after)), None)
        if ready is None:
            raise ValueError(
                f"batch: jobs {', '.join(repr(j.key) for j in pending)} depend on each other (a cycle)"
            )
        pending.remove(ready)
        placed.append(ready)
        done.add(ready.key)
    return placed


def run(jobs: Sequence[Job[Any]], *, max_concurrency: int = 1) -> Outcome:
    """Run the jobs (see the module doc) and return their outcome; raises the first failure.

    The first failure in the jobs' order is raised after the running jobs finished; the
    `Outcome` is attached to it as `exc.batch_outcome` so the caller can still record what the
    other jobs did.
    """
    placed = order(jobs)
    if max_concurrency < 1:
        raise ValueError("batch: max_concurrency must be at least 1")
    if max_concurrency == 1 or len(placed) <= 1:
        outcome = _sequential(placed)
    else:
        outcome = _in_loop(_concurrent(placed, max_concurrency))
    if outcome.errors:
        first = next(j.key for j in jobs if j.key in outcome.errors)
        exc = outcome.errors[first]
        with contextlib.suppress(AttributeError):  # an exception type without a __dict__
            exc.batch_outcome = outcome  # type: ignore[attr-defined]
        raise exc
    return outcome


def _sequential(jobs: list[Job[Any]]) -> Outcome:
    outcome = Outcome()
    for i, job in enumerate(jobs):
        outcome.most_running = 1
        try:
            outcome.results[job.key] = job.work({k: outcome.results[k] for k in job.after})
        except BaseException as exc:  # noqa: BLE001 - a pause too: re-raised by run()
            outcome.errors[job.key] = exc
            outcome.skipped = [j.key for j in jobs[i + 1 :]]
            break
    return outcome


async def _concurrent(jobs: list[Job[Any]], limit: int) -> Outcome:
    outcome = Outcome()
    slots = asyncio.Semaphore(limit)
    finished = {job.key: asyncio.Event() for job in jobs}
    running = 0

    async def one(job: Job[Any]) -> None:
        nonlocal running
        try:
            for key in job.after:
                await finished[key].wait()
            async with slots:
                if outcome.errors:  # stop like a sequential run: nothing new after a failure
                    outcome.skipped.append(job.key)
                    return
                running += 1
                outcome.most_running = max(outcome.most_running, running)
                try:
                    inputs = {k: outcome.results[k] for k in job.after}
                    outcome.results[job.key] = await asyncio.to_thread(job.work, inputs)
                except BaseException as exc:  # noqa: BLE001 - a pause too: re-raised by run()
                    outcome.errors[job.key] = exc
                finally:
                    running -= 1
        finally:
            finished[job.key].set()

    # tasks are created in order, so they queue for the slots in order
    await asyncio.gather(*(one(job) for job in jobs))
    return outcome


def _in_loop(coroutine: Any) -> Outcome:
    """Run the batch's event loop in this thread (a flow step's worker thread has none), or in a
    new thread when this one already runs a loop; the caller's context goes along either way."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(context.run, asyncio.run, coroutine).result()
