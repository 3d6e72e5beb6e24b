"""Integration: the embedded model (SmolLM2 via llama.cpp) with a fixed `seed` gives the same prompt
the same answer, which is what makes it cacheable; the cache then serves that answer without
running the model again."""

from __future__ import annotations

import dataclasses
import json

import pytest

from crewkit.models.registry import RoleMap
from crewkit.runtime import hooks, response_cache
from crewkit.runtime.journal import CallJournal
from crewkit.runtime.store import StateStore

pytestmark = pytest.mark.integration

PROMPT = [
    {"role": "system", "content": "You answer in one short sentence."},
    {"role": "user", "content": "Name a colour of the sky."},
]


def _seeded(settings, **params):
    entry = settings.models.models["local-small"]
    entry = entry.model_copy(update={"params": {**entry.params, "max_tokens": 24, **params}})
    models = settings.models.model_copy(update={"models": {**settings.models.models, "local-small": entry}})
    return dataclasses.replace(settings, models=models)


def test_a_seeded_embedded_model_is_reproducible_and_its_second_call_is_a_cache_hit(settings, tmp_path):
    settings = _seeded(settings, seed=7)
    role_map = RoleMap(settings)
    llm = role_map.llm("reasoning")
    first = llm.call(PROMPT)  # no cache: the model itself, twice
    assert llm.call(PROMPT) == first

    store = StateStore.open(tmp_path / "home")
    store.create_run("r1", "default", {}, "fp", None)
    for _ in range(2):
        subscriber = response_cache.from_settings(settings, store, "acme")
        assert subscriber is not None
        path = hooks.RunHooks([CallJournal(store, "r1", lambda: len(store.calls("r1"))), subscriber])
        with hooks.scope(path):
            assert role_map.llm("reasoning").call(PROMPT) == first
    rows = store.calls("r1")
    assert [r["cached"] for r in rows] == [False, True]
    assert rows[0]["output_tokens"] > 0 and rows[1]["output_tokens"] == 0
    (detail,) = [json.loads(d) for (d,) in store.read("SELECT detail FROM audit WHERE action = 'cache.hit'")]
    assert detail["model"] == "local-small" and detail["match"] == "exact"
