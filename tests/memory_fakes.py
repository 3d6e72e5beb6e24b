"""Fakes for long-term memory tests: a bag-of-words embedder and a vector index with injectable faults.

The integration tests (tests/integration/test_memory_qdrant.py) use the real packaged embedder
and the real Qdrant stores, and `commit_fails` for faults on the SQLite side.
"""

from __future__ import annotations

import hashlib
import math
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

DIMS = 32


@contextmanager
def commit_fails(mem: Any, monkeypatch: Any) -> Iterator[None]:
    """The SQLite side of MemoryStore `mem` fails at commit, after the vector side has changed."""
    real = mem.state.write

    @contextmanager
    def failing() -> Iterator[sqlite3.Connection]:
        with real() as conn:
            yield conn
            raise sqlite3.OperationalError("injected: disk I/O error at commit")

    monkeypatch.setattr(mem.state, "write", failing)
    yield
    monkeypatch.setattr(mem.state, "write", real)


class WordEmbedder:
    """Deterministic bag-of-words vectors: texts sharing words are near."""

    dimensions = DIMS

    def __init__(self) -> None:
        self.calls = 0

    def _vector(self, text: str) -> list[float]:
        v = [0.0] * DIMS
        for word in re.findall(r"\w+", text.lower()):
            v[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIMS] += 1.0
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / norm for x in v]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


@dataclass(frozen=True)
class P:
    id: str
    vector: list[float]
    payload: dict[str, Any]


@dataclass(frozen=True)
class H:
    id: str
    score: float
    payload: dict[str, Any]


class FakeIndex:
    """The VectorIndex protocol over a dict, with faults: `fail = {"upsert", "delete", ...}`."""

    def __init__(self, dimensions: int = DIMS) -> None:
        self.dimensions = dimensions
        self.points: dict[str, P] = {}
        self.fail: set[str] = set()

    def _maybe_fail(self, op: str) -> None:
        if op in self.fail:
            raise OSError(f"injected {op} fault")

    def upsert(self, points: Sequence[Any]) -> None:
        self._maybe_fail("upsert")
        for p in points:
            self.points[p.id] = P(p.id, list(p.vector), dict(p.payload))

    def delete(self, ids: Sequence[str]) -> None:
        self._maybe_fail("delete")
        for i in ids:
            self.points.pop(i, None)

    def retrieve(self, ids: Sequence[str]) -> list[P]:
        return [self.points[i] for i in ids if i in self.points]

    def search(self, vector: Sequence[float], k: int, scope: dict[str, str]) -> list[H]:
        self._maybe_fail("search")
        hits = [
            H(p.id, sum(a * b for a, b in zip(vector, p.vector, strict=True)), p.payload)
            for p in self.points.values()
            if all(p.payload.get(key) == value for key, value in scope.items())
        ]
        return sorted(hits, key=lambda h: -h.score)[:k]

    def scroll(self, batch: int = 256) -> Any:
        points = list(self.points.values())
        for start in range(0, len(points), batch):
            yield points[start : start + batch]

    def count(self, scope: dict[str, str] | None = None) -> int:
        return len(self.points)

    def close(self) -> None:
        pass

    def snapshot(self) -> dict[str, tuple[tuple[float, ...], tuple[tuple[str, Any], ...]]]:
        return {i: (tuple(p.vector), tuple(sorted(p.payload.items()))) for i, p in self.points.items()}
