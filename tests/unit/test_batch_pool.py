"""The embedded model serves batched calls at once: a pool of llama.cpp instances per model file
(crewkit.models.gguf.Pool), one generation per instance, the cores split between them."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from crewkit.models import gguf, llamacpp
from crewkit.models.llamacpp import LlamaCppLLM
from tests.unit.test_llamacpp import FakeLlama


class MeetingLlama(FakeLlama):
    """Generates only when `meet` (a barrier) sees enough generations at the same time."""

    def __init__(self, meet: threading.Barrier, threads_seen: list[int]) -> None:
        super().__init__(["answer"] * 10)
        self.meet = meet
        self.threads_seen = threads_seen
        outer = self

        class Ctx:
            def set_n_threads(self, n: int, n_batch: int) -> None:
                assert n == n_batch
                outer.sets.append(n)

        self.sets: list[int] = []
        self._ctx = Ctx()

    def create_chat_completion(self, messages: list[dict[str, str]], **kwargs: Any) -> dict[str, Any]:
        self.meet.wait()  # BrokenBarrierError: the generations did not run at the same time
        self.meet.wait()  # both have set their threads now
        self.threads_seen.append(self._crewkit_threads)
        return super().create_chat_completion(messages, **kwargs)


@pytest.fixture
def cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gguf, "usable_cores", lambda: 2)
    monkeypatch.setattr(gguf.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(gguf, "_runnable_threads", lambda: 1)  # a quiet machine


def _together(*calls: Any) -> list[Any]:
    out: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int, fn: Any) -> None:
        try:
            out[i] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    if errors:
        raise errors[0]
    return out


def test_two_calls_at_once_generate_at_once_on_two_instances_with_a_core_each(
    cores: None, monkeypatch: pytest.MonkeyPatch
):
    meet, threads_seen = threading.Barrier(2, timeout=10), []
    first = MeetingLlama(meet, threads_seen)
    made: list[MeetingLlama] = []

    def another(self: LlamaCppLLM) -> MeetingLlama:
        made.append(MeetingLlama(meet, threads_seen))
        return made[-1]

    monkeypatch.setattr(llamacpp, "_load", lambda *a: (first, _FIRST_LOCK))
    monkeypatch.setattr(LlamaCppLLM, "_another", another)
    llm = LlamaCppLLM(model="local-small", model_path="/fake.gguf")
    assert _together(lambda: llm.call("one"), lambda: llm.call("two")) == ["answer", "answer"]
    assert len(made) == 1  # one more instance, loaded when the second call found the first busy
    assert len(first.requests) == len(made[0].requests) == 1
    assert threads_seen == [1, 1]  # 2 cores split between the two generations while both run

    # the pool is kept: later calls at once use the same two instances, nothing more is loaded
    threads_seen.clear()
    _together(lambda: llm.call("three"), lambda: llm.call("four"))
    assert len(made) == 1 and threads_seen == [1, 1]


_FIRST_LOCK = threading.Lock()


def test_parallel_1_keeps_one_instance_and_calls_take_turns(cores: None, monkeypatch: pytest.MonkeyPatch):
    first = FakeLlama(["a", "b"])
    lock = threading.Lock()
    monkeypatch.setattr(llamacpp, "_load", lambda *a: (first, lock))
    monkeypatch.setattr(
        LlamaCppLLM, "_another", lambda self: pytest.fail("no second instance with parallel: 1")
    )
    llm = LlamaCppLLM(model="local-small", model_path="/fake.gguf", parallel=1)
    assert sorted(_together(lambda: llm.call("one"), lambda: llm.call("two"))) == ["a", "b"]


def test_a_pool_never_grows_past_its_limit_and_waiters_get_the_next_free_instance(cores: None):
    lock = threading.Lock()
    pool = gguf.Pool("first", lock)
    made: list[str] = []
    inside = threading.Semaphore(0)
    release = threading.Event()
    most, running, count_lock = 0, 0, threading.Lock()

    def make() -> str:
        made.append(f"extra{len(made)}")
        return made[-1]

    def generate() -> str:
        nonlocal most, running
        with pool.generation(make, limit=2) as (instance, threads):
            with count_lock:
                running += 1
                most = max(most, running)
            inside.release()
            release.wait(10)
            with count_lock:
                running -= 1
            return instance

    threads = [threading.Thread(target=generate) for _ in range(4)]
    for t in threads:
        t.start()
    assert inside.acquire(timeout=5) and inside.acquire(timeout=5)
    assert not inside.acquire(timeout=0.3)  # the third and fourth wait for a free instance
    release.set()
    for t in threads:
        t.join(10)
    assert most == 2 and made == ["extra0"]


def test_the_limit_follows_params_and_the_cores(cores: None):
    assert gguf.instance_limit(0, 0) == 2  # one per usable core
    assert gguf.instance_limit(0, 2) == 1  # n_threads 2 on 2 cores: room for one
    assert gguf.instance_limit(3, 0) == 3  # `params.parallel` wins


def test_a_call_waiting_for_an_instance_never_waits_for_a_slow_load(cores: None):
    pool = gguf.Pool("first", threading.Lock())
    loaded = threading.Event()

    def slow_make() -> str:
        time.sleep(1.0)
        loaded.set()
        return "second"

    got: list[tuple[str, float]] = []

    def generate(hold: float) -> None:
        t0 = time.perf_counter()
        with pool.generation(slow_make, limit=2) as (instance, _):
            got.append((instance, time.perf_counter() - t0))
            time.sleep(hold)

    first = threading.Thread(target=generate, args=(0.2,))
    first.start()
    time.sleep(0.05)
    generate(0.0)  # every instance busy: a load starts, but the first instance frees sooner
    first.join()
    assert got[0][0] == "first" and got[1][0] == "first"
    assert got[1][1] < 0.8  # it took the first instance when it freed (~0.15 s), not the new one
    assert loaded.wait(5)
    deadline = time.monotonic() + 5
    while len(pool.slots) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [s.llama for s in pool.slots] == ["first", "second"]  # ready for the next burst
