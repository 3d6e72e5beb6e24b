"""Batching (crewkit.runtime.batch): independent jobs run at the same time up to a limit, results
in the jobs' order, dependencies waited for, a failure or a pause stops the batch like a
sequential run."""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

import pytest

from crewkit.errors import ApprovalRequired, RunPaused
from crewkit.runtime import batch
from crewkit.runtime.batch import Job


class Tracker:
    """Counts the jobs running at once; each job sleeps a little so overlaps show."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.started: list[str] = []
        self.threads: set[int] = set()

    def job(self, key: str, value: Any = None, *, seconds: float = 0.05, fail: BaseException | None = None):
        def work(earlier: dict[str, Any]) -> Any:
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
                self.started.append(key)
                self.threads.add(threading.get_ident())
            try:
                time.sleep(seconds)
                if fail is not None:
                    raise fail
                return value if value is not None else (key, dict(earlier))
            finally:
                with self.lock:
                    self.running -= 1

        return work


def test_results_come_back_in_the_jobs_order_whatever_order_they_finish_in():
    t = Tracker()
    jobs = [Job("a", t.job("a", "A", seconds=0.15)), Job("b", t.job("b", "B", seconds=0.01))]
    out = batch.run(jobs, max_concurrency=2)
    assert [out.results[j.key] for j in jobs] == ["A", "B"]


def test_jobs_run_at_the_same_time_up_to_the_limit_and_no_more():
    t = Tracker()
    jobs = [Job(k, t.job(k)) for k in "abcde"]
    out = batch.run(jobs, max_concurrency=2)
    assert t.most == out.most_running == 2
    assert sorted(out.results) == list("abcde")


def test_the_limit_saves_wall_time_against_one_at_a_time():
    t = Tracker()
    jobs = [Job(k, t.job(k, seconds=0.2)) for k in "abcd"]
    t0 = time.perf_counter()
    batch.run(jobs, max_concurrency=4)
    together = time.perf_counter() - t0
    assert together < 0.6  # one at a time takes 0.8 s


def test_one_at_a_time_runs_in_the_calling_thread_in_the_given_order():
    t = Tracker()
    jobs = [Job(k, t.job(k, seconds=0.0)) for k in "cab"]
    out = batch.run(jobs, max_concurrency=1)
    assert t.started == ["c", "a", "b"]
    assert t.threads == {threading.get_ident()}
    assert out.most_running == 1


def test_a_dependent_job_waits_for_its_jobs_and_gets_their_results():
    t = Tracker()
    jobs = [
        Job("explain", t.job("explain", seconds=0.01), after=("code",)),
        Job("code", t.job("code", "def f(): ...", seconds=0.1)),
        Job("other", t.job("other", "O", seconds=0.01)),
    ]
    out = batch.run(jobs, max_concurrency=3)
    assert out.results["explain"] == ("explain", {"code": "def f(): ..."})
    assert t.started.index("code") < t.started.index("explain")
    # sequentially too: the dependency runs first even though it is listed later
    t1 = Tracker()
    jobs1 = [Job(j.key, t1.job(j.key, seconds=0.0), after=j.after) for j in jobs]
    batch.run(jobs1, max_concurrency=1)
    assert t1.started == ["code", "explain", "other"]


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ([Job("a", lambda r: 1, after=("b",)), Job("b", lambda r: 2, after=("a",))], "cycle"),
        ([Job("a", lambda r: 1, after=("zzz",))], "unknown job"),
        ([Job("a", lambda r: 1), Job("a", lambda r: 2)], "two jobs"),
    ],
)
def test_impossible_dependencies_are_refused_before_anything_runs(jobs, message):
    with pytest.raises(ValueError, match=message):
        batch.run(jobs, max_concurrency=2)


@pytest.mark.parametrize("limit", [1, 2])
def test_a_failure_stops_new_jobs_lets_running_ones_finish_and_raises_the_first_in_order(limit):
    t = Tracker()
    finished: list[str] = []

    def slow(earlier: dict[str, Any]) -> str:
        time.sleep(0.2)
        finished.append("a")
        return "A"

    jobs = [
        Job("a", slow),
        Job("b", t.job("b", seconds=0.01, fail=RuntimeError("b broke"))),
        Job("c", t.job("c", seconds=0.01)),
        Job("d", t.job("d", seconds=0.01)),
    ]
    with pytest.raises(RuntimeError, match="b broke") as caught:
        batch.run(jobs, max_concurrency=limit)
    outcome = caught.value.batch_outcome
    assert finished == ["a"] and outcome.results == {"a": "A"}  # the running job was not abandoned
    assert "c" not in t.started and "d" not in t.started  # nothing started after the failure
    assert set(outcome.skipped) == {"c", "d"}


def test_of_two_failures_the_one_a_sequential_run_would_meet_first_is_raised():
    jobs = [
        Job("a", Tracker().job("a", seconds=0.15, fail=ValueError("first in order"))),
        Job("b", Tracker().job("b", seconds=0.0, fail=KeyError("finished first"))),
    ]
    with pytest.raises(ValueError, match="first in order"):
        batch.run(jobs, max_concurrency=2)


def test_a_pause_in_one_job_pauses_the_batch_after_the_running_jobs_finish():
    t = Tracker()
    paused = RunPaused(ApprovalRequired("approval ap-1 is needed", "ap-1"))
    jobs = [Job("a", t.job("a", "A", seconds=0.15)), Job("b", t.job("b", fail=paused, seconds=0.0))]
    with pytest.raises(RunPaused) as caught:
        batch.run(jobs, max_concurrency=2)
    assert caught.value is paused
    assert caught.value.batch_outcome.results == {"a": "A"}


def test_a_job_whose_dependency_failed_never_starts():
    t = Tracker()
    jobs = [Job("a", t.job("a", fail=RuntimeError("no"))), Job("b", t.job("b"), after=("a",))]
    with pytest.raises(RuntimeError):
        batch.run(jobs, max_concurrency=2)
    assert t.started == ["a"]


_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("batch_test", default="unset")


def test_jobs_see_the_callers_context_and_keep_their_own_settings_to_themselves():
    seen: dict[str, str] = {}

    def job(key: str):
        def work(earlier: dict[str, Any]) -> None:
            seen[key] = _VAR.get()
            _VAR.set(key)  # a route table, say: this job's own
            time.sleep(0.05)
            assert _VAR.get() == key

        return work

    token = _VAR.set("the run's")
    try:
        batch.run([Job("a", job("a")), Job("b", job("b"))], max_concurrency=2)
        assert _VAR.get() == "the run's"
    finally:
        _VAR.reset(token)
    assert seen == {"a": "the run's", "b": "the run's"}


def test_a_batch_started_inside_a_running_event_loop_still_runs():
    import asyncio

    async def inside() -> dict[str, Any]:
        t = Tracker()
        return batch.run([Job("a", t.job("a", "A")), Job("b", t.job("b", "B"))], max_concurrency=2).results

    assert asyncio.run(inside()) == {"a": "A", "b": "B"}
