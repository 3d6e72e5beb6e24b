"""The response cache's store: answers of deterministic model calls, kept in state.db.

One row of table `response_cache` per answer. Its `key` is the sha256 of everything that shapes
the answer: the model entry's name and `params:`, the messages, the tool schemas, the response
model's schema, the stop sequences and the tenant (`exact_key`), so an exact hit is the answer
the model would give again. Its `scope` is the same digest without the last user message
(`scope_key`): a semantic lookup (opt-in) compares the embedding of a new last user message
with those stored in the same model, tenant and scope only, so a close paraphrase of a question
asked in the same conversation, to the same model, with the same tools and parameters, for the
same tenant, gets its answer; nothing ever crosses tenants.

Limits (`config/operations.yaml` `cache:`): a TTL (expired rows are never served and are
removed on the next write), `max_entries` and `max_bytes` over the whole table and
`semantic.max_entries` per model and tenant, the least recently used going first. Values are
JSON text (the call journal's typed encoding, `crewkit.runtime.journal.encode`); vectors are
float32 BLOBs, normalised so the cosine is a dot product. Portable SQL only (SQLite and
PostgreSQL): `?` placeholders, times computed here as REAL unix seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from crewkit.operations import CacheConfig

EXACT = "exact"  # a row found by its key only
SEMANTIC = "semantic"  # a row with a vector: found by its key or by a close enough prompt


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def exact_key(
    model: str,
    params: dict[str, Any],
    messages: Any,
    tools: Any,
    schema: Any,
    stop: Iterable[str],
    tenant: str,
) -> str:
    """The exact key of a call: sha256 of model, params, messages, tools, schema, stop and tenant."""
    return _digest(["exact", model, params, messages, tools, schema, list(stop), tenant])


def scope_key(
    model: str,
    params: dict[str, Any],
    history: Any,
    tools: Any,
    schema: Any,
    stop: Iterable[str],
    tenant: str,
) -> str:
    """What a semantic match must share: the exact key's parts without the last user message."""
    return _digest(["scope", model, params, history, tools, schema, list(stop), tenant])


def normalise(vector: Iterable[float]) -> np.ndarray:
    """`vector` as a unit-length float32 array (a zero vector stays zero)."""
    v = np.asarray(list(vector), dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


@dataclass(frozen=True, slots=True)
class Hit:
    """A cached answer: its row's key, the stored JSON, how it was found and how close it was."""

    key: str
    value: Any
    match: str  # "exact" | "semantic"
    similarity: float | None = None


class ResponseCache:
    """Table `response_cache` of a `StateStore`, under a `CacheConfig`."""

    def __init__(self, store: Any, config: CacheConfig, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.config = config
        self.clock = clock

    # -- lookups -------------------------------------------------------------------------------

    def get(self, key: str) -> Hit | None:
        """The unexpired answer stored under `key`, or None."""
        rows = self.store.read(
            "SELECT value FROM response_cache WHERE key = ? AND (expires IS NULL OR expires > ?)",
            (key, self.clock()),
        )
        if not rows:
            return None
        return Hit(key, json.loads(rows[0][0]), EXACT)

    def nearest(
        self, model: str, tenant: str, scope: str, vector: np.ndarray, threshold: float
    ) -> Hit | None:
        """The unexpired answer of this model, tenant and scope whose prompt vector is closest to
        `vector` (normalised), if its cosine is at least `threshold`; else None."""
        rows = self.store.read(
            "SELECT key, value, vector FROM response_cache WHERE model = ? AND tenant = ? AND scope = ? "
            "AND vector IS NOT NULL AND (expires IS NULL OR expires > ?)",
            (model, tenant, scope, self.clock()),
        )
        best: tuple[float, str, str] | None = None
        for key, value, blob in rows:
            stored = np.frombuffer(bytes(blob), dtype=np.float32)
            if stored.shape != vector.shape:  # written by another embedding model: not comparable
                continue
            similarity = float(np.dot(stored, vector))
            if similarity >= threshold and (best is None or similarity > best[0]):
                best = (similarity, key, value)
        if best is None:
            return None
        return Hit(best[1], json.loads(best[2]), SEMANTIC, round(best[0], 6))

    # -- writes --------------------------------------------------------------------------------

    def touch(self, key: str) -> None:
        """Count a hit on `key` and make it the most recently used."""
        with self.store.write() as conn:
            conn.execute(
                "UPDATE response_cache SET hits = hits + 1, last_used = ? WHERE key = ?", (self.clock(), key)
            )

    def put(
        self,
        key: str,
        *,
        model: str,
        tenant: str,
        scope: str,
        value: Any,
        vector: np.ndarray | None = None,
    ) -> bool:
        """Store an answer (JSON-able `value`); False when it alone is larger than `max_bytes`.
        Then drops expired rows and the least recently used beyond the limits."""
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        blob = None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()
        size = len(text.encode("utf-8")) + (len(blob) if blob is not None else 0)
        if size > self.config.max_bytes:
            return False
        now = self.clock()
        ttl = self.config.ttl_seconds
        expires = None if ttl is None else now + ttl
        with self.store.write() as conn:
            conn.execute(
                "INSERT INTO response_cache (key, kind, model, tenant, scope, prompt, vector, value, size, "
                "created, expires, hits, last_used) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, 0, ?) "
                "ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, vector = excluded.vector, "
                "value = excluded.value, size = excluded.size, created = excluded.created, "
                "expires = excluded.expires, last_used = excluded.last_used",
                (
                    key,
                    EXACT if blob is None else SEMANTIC,
                    model,
                    tenant,
                    scope,
                    blob,
                    text,
                    size,
                    now,
                    expires,
                    now,
                ),
            )
            self._evict(conn, now, model, tenant)
        return True

    def _evict(self, conn: Any, now: float, model: str, tenant: str) -> None:
        """Expired rows, then the least recently used beyond each limit (inside the put's transaction)."""
        conn.execute("DELETE FROM response_cache WHERE expires IS NOT NULL AND expires <= ?", (now,))
        semantic_max = self.config.semantic.max_entries
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM response_cache WHERE model = ? AND tenant = ? AND vector IS NOT NULL",
            (model, tenant),
        ).fetchone()
        if count > semantic_max:
            conn.execute(
                "DELETE FROM response_cache WHERE key IN (SELECT key FROM response_cache WHERE model = ? "
                "AND tenant = ? AND vector IS NOT NULL ORDER BY last_used, created LIMIT ?)",
                (model, tenant, count - semantic_max),
            )
        count, total = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM response_cache").fetchone()
        if count > self.config.max_entries:
            conn.execute(
                "DELETE FROM response_cache WHERE key IN "
                "(SELECT key FROM response_cache ORDER BY last_used, created LIMIT ?)",
                (count - self.config.max_entries,),
            )
            total = conn.execute("SELECT COALESCE(SUM(size), 0) FROM response_cache").fetchone()[0]
        excess = int(total) - self.config.max_bytes
        if excess > 0:
            drop: list[str] = []
            rows = conn.execute("SELECT key, size FROM response_cache ORDER BY last_used, created").fetchall()
            for key, size in rows:
                drop.append(key)
                excess -= int(size)
                if excess <= 0:
                    break
            for key in drop:
                conn.execute("DELETE FROM response_cache WHERE key = ?", (key,))

    # -- administration ------------------------------------------------------------------------

    def stats(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Per model and tenant: entries (of which semantic), bytes, hits, expired rows not yet removed."""
        where, args = ("WHERE tenant = ?", (tenant,)) if tenant is not None else ("", ())
        now = self.clock()
        rows = self.store.read(
            "SELECT model, tenant, COUNT(*), "
            "SUM(CASE WHEN vector IS NOT NULL THEN 1 ELSE 0 END), COALESCE(SUM(size), 0), "
            "COALESCE(SUM(hits), 0), SUM(CASE WHEN expires IS NOT NULL AND expires <= ? THEN 1 ELSE 0 END), "
            f"MIN(created), MAX(last_used) FROM response_cache {where} GROUP BY model, tenant "
            "ORDER BY model, tenant",
            (now, *args),
        )
        return [
            {
                "model": model,
                "tenant": ten,
                "entries": int(entries),
                "semantic": int(semantic or 0),
                "bytes": int(size),
                "hits": int(hits),
                "expired": int(expired or 0),
                "oldest": oldest,
                "last_used": last_used,
            }
            for model, ten, entries, semantic, size, hits, expired, oldest, last_used in rows
        ]

    def clear(
        self,
        tenant: str | None = None,
        model: str | None = None,
        *,
        expired_only: bool = False,
        audit_entry: Callable[[int], Any] | None = None,
    ) -> int:
        """Remove entries (of one tenant / model; only the expired ones); returns how many.
        `audit_entry(removed)` gives the audit record written in the same transaction."""
        clauses, args = [], []
        if tenant is not None:
            clauses.append("tenant = ?")
            args.append(tenant)
        if model is not None:
            clauses.append("model = ?")
            args.append(model)
        if expired_only:
            clauses.append("expires IS NOT NULL AND expires <= ?")
            args.append(self.clock())
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.store.write() as conn:
            removed = int(
                conn.execute(f"SELECT COUNT(*) FROM response_cache{where}", tuple(args)).fetchone()[0]
            )
            conn.execute(f"DELETE FROM response_cache{where}", tuple(args))
            if audit_entry is not None:
                from crewkit.governance import audit

                audit.append(conn, audit_entry(removed))
        return removed
