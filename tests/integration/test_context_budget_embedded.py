"""Integration: the context budget counts with the embedded model's own tokenizer (SmolLM2 via
llama.cpp, the one shared `Llama`), and what it fits is what llama.cpp really evaluates."""

from __future__ import annotations

import dataclasses

import pytest

from crewkit.assembly import wire
from crewkit.memory import context
from crewkit.memory.config import MemoryConfig, ShortTermConfig
from crewkit.models import gguf
from crewkit.models.registry import RoleMap
from crewkit.runtime import hooks
from crewkit.runtime.context_budget import ContextBudget, summary
from crewkit.runtime.journal import CallJournal
from crewkit.runtime.store import StateStore

pytestmark = pytest.mark.integration

EN = "The bridge over the river opened in 1970 after nine years of building. "
ZH = "这座桥在一九七零年建成通车，前后一共用了九年时间。"


def _conversation(text: str, turns: int) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": "You answer questions about the town's history in one sentence."}]
    for i in range(turns):
        msgs.append({"role": "user" if i % 2 == 0 else "assistant", "content": f"{i}. " + text * 6})
    msgs.append({"role": "user", "content": "When did the bridge open? Answer with the year."})
    return msgs


def _budgeted(settings, max_tokens: int = 256, **short_term):
    """`settings` with these short-term settings, the embedded model's replies capped (fast)."""
    entry = settings.models.models["local-small"]
    entry = entry.model_copy(update={"params": {**entry.params, "max_tokens": max_tokens}})
    models = settings.models.model_copy(update={"models": {**settings.models.models, "local-small": entry}})
    memory = MemoryConfig(short_term=ShortTermConfig(**short_term))
    return dataclasses.replace(settings, models=models, memory=memory)


def test_chinese_is_counted_with_the_models_tokenizer_not_the_estimate(settings):
    settings = _budgeted(settings, budget_tokens=1700, keep_recent=2)
    subscriber = ContextBudget(settings)
    msgs = _conversation(ZH, 8)
    call = hooks.ModelCall("reasoning", "local-small", "Historian", "execute", msgs)
    with wire.bound(RoleMap(settings)):
        subscriber.before_model(call)
    counter = subscriber._counters[("local-small", False)]
    assert isinstance(counter, context.LlamaCounter) and counter.exact
    budget = 1700 - 256
    # the estimate (a token a CJK character) would send it as it is; SmolLM2 needs more tokens
    assert context.EstimateCounter().prompt(msgs) <= budget < counter.prompt(msgs)
    assert call.messages is not msgs and counter.prompt(call.messages) <= budget
    assert call.messages[0] is msgs[0] and call.messages[-2:] == msgs[-2:]
    loaded = [key for key in gguf._MODELS if key[1] == 8192]
    assert len(loaded) == 1  # the counter uses the one shared Llama


def test_a_real_call_gets_the_fitted_prompt_and_llama_cpp_evaluates_no_more(settings, tmp_path):
    settings = _budgeted(settings, max_tokens=16, budget_tokens=700, keep_recent=2)
    store = StateStore.open(tmp_path / "home")
    store.create_run("r1", "test", {}, "fp", None)
    role_map = RoleMap(settings)
    role = role_map.llm("reasoning")
    msgs = _conversation(EN, 10)
    chain = [CallJournal(store, "r1", lambda: 0), ContextBudget(settings, store, "r1")]
    with wire.bound(role_map), hooks.scope(hooks.RunHooks(chain)):
        answer = role.call(msgs)
    assert isinstance(answer, str) and answer.strip()

    found = summary(store, "r1")
    assert found is not None and found["fitted_calls"] == 1
    call = found["calls"][0]
    assert call["counted"] == "tokenizer" and call["budget"] == 700 - 16
    assert call["tokens_after"] <= call["budget"] < call["tokens_before"]
    assert call["summarised"] > 0 and call["messages_after"] <= call["messages_before"]
    (row,) = store.calls("r1")  # what llama.cpp evaluated: the count the budget used (BOS aside)
    assert abs(row["input_tokens"] - call["tokens_after"]) <= 2 and row["input_tokens"] <= call["budget"]
