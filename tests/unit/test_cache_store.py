"""The response cache's store (table `response_cache` of state.db): keys, TTL, limits, LRU,
semantic lookups scoped by model, tenant and conversation, stats and clearing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crewkit.governance import audit
from crewkit.models.cache import ResponseCache, exact_key, normalise, scope_key
from crewkit.operations import CacheConfig, SemanticCache
from crewkit.runtime.store import StateStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore.open(tmp_path / "home")


def _cache(store: StateStore, clock: Clock | None = None, **config: object) -> ResponseCache:
    return ResponseCache(store, CacheConfig(**config), clock or Clock())


def _put(cache: ResponseCache, key: str, text: str = "answer", **kw: object) -> bool:
    args = {"model": "m", "tenant": "", "scope": "s", **kw}
    return cache.put(key, value={"type": "str", "value": text}, **args)  # type: ignore[arg-type]


def test_every_part_of_a_call_changes_its_exact_key():
    base = dict(
        model="m",
        params={"temperature": 0},
        messages=[{"role": "user", "content": "hi"}],
        tools=None,
        schema=None,
        stop=(),
        tenant="acme",
    )
    key = exact_key(**base)  # type: ignore[arg-type]
    assert key == exact_key(**base)  # type: ignore[arg-type]
    changes = {
        "model": "other",
        "params": {"temperature": 0, "max_tokens": 9},
        "messages": [{"role": "user", "content": "hi!"}],
        "tools": [{"type": "function", "function": {"name": "t"}}],
        "schema": {"type": "object"},
        "stop": ("\nObservation:",),
        "tenant": "globex",
    }
    for field, value in changes.items():
        assert exact_key(**{**base, field: value}) != key, field  # type: ignore[arg-type]


def test_an_answer_is_found_by_its_key_only(store):
    cache = _cache(store)
    assert cache.get("k1") is None
    assert _put(cache, "k1", "one")
    hit = cache.get("k1")
    assert hit is not None and hit.value == {"type": "str", "value": "one"} and hit.match == "exact"
    assert cache.get("k2") is None


def test_an_expired_answer_is_not_served_and_goes_on_the_next_write(store):
    clock = Clock()
    cache = _cache(store, clock, ttl_seconds=60)
    _put(cache, "old")
    clock.now += 59
    assert cache.get("old") is not None
    clock.now += 2
    assert cache.get("old") is None
    _put(cache, "new")
    keys = [r[0] for r in store.read("SELECT key FROM response_cache")]
    assert keys == ["new"]


def test_no_ttl_keeps_answers(store):
    clock = Clock()
    cache = _cache(store, clock, ttl_seconds=None)
    _put(cache, "k")
    clock.now += 10 * 365 * 86400
    assert cache.get("k") is not None


def test_max_entries_drops_the_least_recently_used(store):
    clock = Clock()
    cache = _cache(store, clock, max_entries=3)
    for key in ("a", "b", "c"):
        _put(cache, key)
        clock.now += 1
    cache.touch("a")  # a is used again: b is now the least recently used
    clock.now += 1
    _put(cache, "d")
    assert sorted(r[0] for r in store.read("SELECT key FROM response_cache")) == ["a", "c", "d"]


def test_max_bytes_drops_the_least_recently_used_until_it_fits(store):
    clock = Clock()
    cache = _cache(store, clock, max_bytes=1024)
    for key in ("a", "b", "c"):
        _put(cache, key, "x" * 300)  # ~330 bytes each
        clock.now += 1
    _put(cache, "d", "y" * 300)
    rows = store.read("SELECT key, size FROM response_cache")
    assert sorted(k for k, _ in rows) == ["b", "c", "d"]
    assert sum(size for _, size in rows) <= 1024


def test_an_answer_larger_than_max_bytes_is_not_stored(store):
    cache = _cache(store, max_bytes=1024)
    assert not _put(cache, "big", "z" * 2000)
    assert cache.get("big") is None


def test_putting_the_same_key_again_replaces_the_answer(store):
    cache = _cache(store)
    _put(cache, "k", "first")
    _put(cache, "k", "second")
    assert cache.get("k").value["value"] == "second"  # type: ignore[union-attr]
    assert store.read("SELECT COUNT(*) FROM response_cache")[0][0] == 1


def _vec(*xs: float) -> np.ndarray:
    return normalise(xs)


def test_semantic_lookup_returns_the_closest_answer_over_the_threshold(store):
    cache = _cache(store)
    _put(cache, "near", "near answer", vector=_vec(1, 0.1, 0))
    _put(cache, "far", "far answer", vector=_vec(0, 1, 0))
    hit = cache.nearest("m", "", "s", _vec(1, 0.12, 0), 0.95)
    assert hit is not None and hit.key == "near" and hit.match == "semantic"
    assert hit.similarity is not None and hit.similarity > 0.99
    assert cache.nearest("m", "", "s", _vec(1, 1, 0), 0.95) is None  # cosine ~0.78 for both


def test_semantic_lookup_never_crosses_tenant_model_or_scope(store):
    cache = _cache(store)
    _put(cache, "k", "acme's answer", tenant="acme", vector=_vec(1, 0, 0))
    assert cache.nearest("m", "acme", "s", _vec(1, 0, 0), 0.9) is not None
    assert cache.nearest("m", "globex", "s", _vec(1, 0, 0), 0.9) is None
    assert cache.nearest("m", "", "s", _vec(1, 0, 0), 0.9) is None
    assert cache.nearest("other-model", "acme", "s", _vec(1, 0, 0), 0.9) is None
    assert cache.nearest("m", "acme", "other-scope", _vec(1, 0, 0), 0.9) is None


def test_semantic_lookup_skips_vectors_of_another_size(store):
    cache = _cache(store)
    _put(cache, "k", vector=_vec(1, 0, 0, 0))
    assert cache.nearest("m", "", "s", _vec(1, 0, 0), 0.5) is None


def test_semantic_entries_are_capped_per_model_and_tenant(store):
    clock = Clock()
    cache = _cache(store, clock, semantic=SemanticCache(enabled=True, max_entries=2))
    for i, key in enumerate(("a", "b", "c")):
        _put(cache, key, tenant="acme", vector=_vec(1, i, 0))
        clock.now += 1
    _put(cache, "other", tenant="globex", vector=_vec(1, 0, 0))
    rows = store.read("SELECT key, tenant FROM response_cache ORDER BY key")
    assert rows == [("b", "acme"), ("c", "acme"), ("other", "globex")]


def test_scope_key_ignores_only_the_last_user_message():
    a = scope_key("m", {}, [{"role": "system", "content": "S"}], None, None, (), "t")
    assert a == scope_key("m", {}, [{"role": "system", "content": "S"}], None, None, (), "t")
    assert a != scope_key("m", {}, [{"role": "system", "content": "S2"}], None, None, (), "t")
    assert a != scope_key("m", {}, [{"role": "system", "content": "S"}], None, None, (), "u")


def test_stats_per_model_and_tenant(store):
    clock = Clock()
    cache = _cache(store, clock, ttl_seconds=100)
    _put(cache, "a", tenant="acme")
    _put(cache, "b", tenant="acme", vector=_vec(1, 0))
    _put(cache, "c", tenant="globex", model="m2")
    cache.touch("a")
    cache.touch("a")
    rows = {(r["model"], r["tenant"]): r for r in cache.stats()}
    assert rows[("m", "acme")]["entries"] == 2 and rows[("m", "acme")]["semantic"] == 1
    assert rows[("m", "acme")]["hits"] == 2
    assert rows[("m2", "globex")]["entries"] == 1
    assert [r["tenant"] for r in cache.stats("globex")] == ["globex"]
    clock.now += 101
    assert all(r["expired"] == r["entries"] for r in cache.stats())


def test_clear_by_tenant_model_or_expired_and_audited(store):
    clock = Clock()
    cache = _cache(store, clock, ttl_seconds=100)
    _put(cache, "a", tenant="acme")
    _put(cache, "b", tenant="globex")
    _put(cache, "c", tenant="globex", model="m2")
    made: list[int] = []

    def entry(removed: int) -> audit.Entry:
        made.append(removed)
        return audit.Entry("cache.cleared", "response cache", {"removed": removed}, actor="tester")

    assert cache.clear(tenant="globex", model="m2", audit_entry=entry) == 1
    assert cache.clear(expired_only=True) == 0
    clock.now += 101
    _put(cache, "fresh", tenant="acme")  # the put's eviction removes expired a and b already
    assert cache.clear(tenant="acme") == 1
    assert cache.get("fresh") is None
    assert made == [1]
    records = store.read("SELECT action, detail FROM audit")
    assert [r[0] for r in records] == ["cache.cleared"]
    assert audit.verify(store).ok
