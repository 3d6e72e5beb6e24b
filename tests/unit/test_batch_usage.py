"""Two calls at once on one shared model object (batched subtasks of one role) each get their own
tokens: the budget, the ledger and the usage rows count nothing twice."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

from crewkit.models.registry import RoleMap
from crewkit.runtime import hooks
from tests.fakes import Call, ScriptedLLM


class Recorder(hooks.Subscriber):
    def __init__(self) -> None:
        self.results: list[hooks.ModelResult] = []
        self.lock = threading.Lock()

    def after_model(self, result: hooks.ModelResult) -> None:
        with self.lock:
            self.results.append(result)


def test_concurrent_calls_on_one_shared_llm_are_each_counted_once(settings):
    meet = threading.Barrier(2, timeout=10)
    slow_done = threading.Event()

    def slow(call: Call) -> str:  # starts first, ends last: spans the other call entirely
        meet.wait()
        slow_done.wait(5)
        return "slow"

    def quick(call: Call) -> str:
        meet.wait()
        return "quick"

    fake = ScriptedLLM([lambda c: slow(c) if "slow" in c.prompt else quick(c)] * 2, usage_per_call=(100, 7))
    role_map = RoleMap(settings, overrides={"reasoning": fake})
    llm = role_map.llm("reasoning")
    recorder = Recorder()
    answers: dict[str, Any] = {}

    def ask(prompt: str) -> None:
        answers[prompt] = llm.call(prompt)
        if prompt == "quick one":
            slow_done.set()

    with hooks.scope(hooks.RunHooks([recorder], with_ledger=False)):
        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(ask, p))
            for p in ("slow one", "quick one")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert answers == {"slow one": "slow", "quick one": "quick"}
    assert sorted((r.input_tokens, r.output_tokens) for r in recorder.results) == [(100, 7), (100, 7)]
    # CrewAI's own counters on the role still add up to both calls
    assert llm.get_token_usage_summary().prompt_tokens == 200
