"""The response cache on the hook path: a deterministic model call asked again is answered from state.db.

`ResponseCacheSubscriber` is a hook-path subscriber (`crewkit.runtime.hooks`). Before a model
attempt it looks the call up in the cache (`crewkit.models.cache`): an exact hit, or with
`cache.semantic.enabled` a close enough paraphrase of the last user message, answers it with
`Replay(value, source="cache")`: no model call, 0 tokens, 0 cost, no budget reservation. After
a successful attempt the model really made, it stores the answer.

Only deterministic calls are cached, so a hit is the answer the model would have given again:
the model entry's `params:` in config/models.yaml set `temperature: 0` or a fixed `seed`. An
entry without them samples at its provider's default temperature and is never cached. The
shipped embedded model (`local-small`: temperature 0.2, no seed) samples, so it is not cached
until you add `seed: N` (reproducible sampling: llama.cpp then gives the same prompt the same
answer) or `temperature: 0` to its params.

Order on the hook path: after the call journal (a resumed run replays its own answers first;
the journal also keeps a cache-served answer, so a resume sees the same answer even if the entry
has expired since) and the context budget (the key is what is sent), before budgets (a hit costs
nothing, so it is neither reserved nor refused) and the shields (a hit is the answer to the
same shielded prompt). Each hit is audited as `cache.hit` (the key's digest, exact or semantic
and the similarity; no text) and its usage row says `cached: true`.

A failure of the cache itself (a locked or full disk on the hit count, an embedder that cannot
load) never fails the call: it is logged and the call goes to the model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from crewkit.models.cache import Hit, ResponseCache, exact_key, normalise, scope_key
from crewkit.runtime.hooks import ModelCall, ModelResult, Replay, Subscriber
from crewkit.runtime.journal import _schema, decode, encode

log = logging.getLogger(__name__)
SOURCE = "cache"  # the Replay source of a cache hit (ModelResult.replay_source)


def deterministic(params: dict[str, Any]) -> bool:
    """A model entry's params make its answers reproducible: temperature 0, or a fixed seed."""
    temperature = params.get("temperature")
    seed = params.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        return True
    return isinstance(temperature, int | float) and not isinstance(temperature, bool) and temperature == 0


def _question(messages: Any) -> tuple[Any, str] | None:
    """(the earlier turns, the last user message's text) for a semantic lookup, or None when the
    call does not end with a user's text (a tool result, an image): those are matched exactly only."""
    if isinstance(messages, str):
        return [], messages
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user" or not isinstance(last.get("content"), str):
        return None
    if not last["content"].strip():
        return None
    return messages[:-1], last["content"]


class _Open:
    """What the before hook decided about one attempt, for its after hook."""

    __slots__ = ("call", "hit", "key", "scope", "vector")

    def __init__(self, call: ModelCall, key: str, scope: str | None, vector: Any, hit: Hit | None) -> None:
        self.call, self.key, self.scope, self.vector, self.hit = call, key, scope, vector, hit


class ResponseCacheSubscriber(Subscriber):
    """Answers deterministic calls from the cache; stores the answers the model gives them."""

    def __init__(
        self,
        cache: ResponseCache,
        model_params: dict[str, dict[str, Any]],
        tenant: str | None = None,
        embed: Callable[[list[str]], list[list[float]]] | None = None,
    ) -> None:
        self.cache = cache
        self.model_params = model_params  # model entry name -> its params (config/models.yaml)
        self.tenant = tenant or ""
        self.embed = embed  # None: exact lookups only
        self.semantic = cache.config.semantic
        self._open: dict[int, _Open] = {}
        self._lock = threading.Lock()

    def cacheable(self, call: ModelCall) -> bool:
        params = self.model_params.get(call.model)
        return params is not None and deterministic(params) and call.messages is not None

    def before_model(self, call: ModelCall) -> Replay | None:
        if not self.cacheable(call):
            return None
        params = self.model_params[call.model]
        schema = _schema(call.response_model)
        key = exact_key(call.model, params, call.messages, call.tools, schema, call.stop, self.tenant)
        scope = vector = None
        try:
            hit = self.cache.get(key)
            if hit is None and self.embed is not None and self.semantic.enabled:
                question = _question(call.messages)
                if question is not None:
                    history, text = question
                    scope = scope_key(call.model, params, history, call.tools, schema, call.stop, self.tenant)
                    vector = self._vector(text)
                    if vector is not None:
                        hit = self.cache.nearest(
                            call.model, self.tenant, scope, vector, self.semantic.threshold
                        )
        except Exception:  # noqa: BLE001 - the cache is an optimisation: the model answers instead
            log.warning("response cache: lookup failed; calling the model", exc_info=True)
            return None
        value = None
        if hit is not None:
            try:
                value = decode(hit.value, call.response_model)
            except Exception:  # noqa: BLE001 - an answer that no longer fits its class: a miss
                log.debug("response cache: entry %s no longer decodes; calling the model", key, exc_info=True)
                hit = None
        with self._lock:
            self._open[id(call)] = _Open(call, key, scope, vector, hit)
        if hit is None:
            return None
        detail: dict[str, Any] = {"key": "sha256:" + hit.key, "match": hit.match}
        if hit.similarity is not None:
            detail["similarity"] = hit.similarity
        return Replay(value, source=SOURCE, detail=detail)

    def _vector(self, text: str) -> Any:
        assert self.embed is not None
        try:
            return normalise(self.embed([text])[0])
        except Exception:  # noqa: BLE001 - no embedder: exact lookups only for the rest of the segment
            log.warning("response cache: the embedding role failed; semantic lookups are off", exc_info=True)
            self.embed = None
            return None

    def after_model(self, result: ModelResult) -> None:
        with self._lock:
            opened = self._open.pop(id(result.call), None)
        if opened is None or opened.call is not result.call:
            return
        try:
            if result.replayed:
                if result.replay_source == SOURCE and opened.hit is not None:
                    self.cache.touch(opened.hit.key)
                return
            if result.error is not None or result.relayed or result.not_run is not None:
                return
            stored = encode(result.value)
            if stored is None:  # not storable faithfully (the journal's rule): asked again next time
                return
            vector = opened.vector if opened.scope is not None else None
            self.cache.put(
                opened.key,
                model=result.call.model,
                tenant=self.tenant,
                scope=opened.scope or opened.key,
                value=stored,
                vector=vector,
            )
        except Exception:  # noqa: BLE001 - the answer is already the agent's: the cache just misses it
            log.warning("response cache: could not record the answer", exc_info=True)


def _embedder(settings: Any) -> Callable[[list[str]], list[list[float]]] | None:
    """The embedding role's `embed`, built on first use (None: the role map has no embedding role)."""
    entry = settings.models.roles.get("embedding")
    if entry is None:
        return None
    built: list[Any] = []

    def embed(texts: list[str]) -> list[list[float]]:
        if not built:
            from crewkit.models.embedder import build_embedder

            built.append(build_embedder(entry.model, settings.models.models[entry.model]))
        return built[0].embed(texts)

    return embed


def from_settings(
    settings: Any,
    store: Any,
    tenant: str | None,
    embed: Callable[[list[str]], list[list[float]]] | None = None,
) -> ResponseCacheSubscriber | None:
    """The run's cache subscriber under `settings.operations.cache`; None when the cache is off
    (`cache.enabled: false`) or no model entry is deterministic (nothing could be cached)."""
    config = settings.operations.cache
    if not config.enabled:
        return None
    params = {name: dict(entry.params) for name, entry in settings.models.models.items()}
    if not any(deterministic(p) for p in params.values()):
        return None
    if config.semantic.enabled and embed is None:
        embed = _embedder(settings)
    return ResponseCacheSubscriber(ResponseCache(store, config), params, tenant, embed)


# -- `crewkit cache stats | clear` ------------------------------------------------------------------


def stats(settings: Any, store: Any, tenant: str | None = None) -> dict[str, Any]:
    """What the cache holds per model and tenant, its totals and its limits (`crewkit cache stats`)."""
    config = settings.operations.cache
    rows = ResponseCache(store, config).stats(tenant)
    return {
        "enabled": config.enabled,
        "semantic": config.semantic.enabled,
        "cached_models": sorted(
            name for name, entry in settings.models.models.items() if deterministic(dict(entry.params))
        ),
        "limits": {
            "ttl_seconds": config.ttl_seconds,
            "max_entries": config.max_entries,
            "max_bytes": config.max_bytes,
            "semantic_max_entries": config.semantic.max_entries,
            "semantic_threshold": config.semantic.threshold,
        },
        "totals": {
            "entries": sum(r["entries"] for r in rows),
            "bytes": sum(r["bytes"] for r in rows),
            "hits": sum(r["hits"] for r in rows),
        },
        "by_model": rows,
    }


def clear(
    settings: Any,
    store: Any,
    *,
    tenant: str | None = None,
    model: str | None = None,
    expired_only: bool = False,
) -> int:
    """Remove cached answers (all, or those of one tenant / model / past their TTL); the removal
    is audited as `cache.cleared` (who, what was asked, how many) in the same transaction."""
    from crewkit.governance import audit
    from crewkit.governance.approvals import current_user

    user = current_user()

    def entry(removed: int) -> audit.Entry:
        detail = {"tenant": tenant, "model": model, "expired_only": expired_only, "removed": removed}
        return audit.Entry("cache.cleared", "response cache", detail, actor=user)

    return ResponseCache(store, settings.operations.cache).clear(
        tenant, model, expired_only=expired_only, audit_entry=entry
    )
