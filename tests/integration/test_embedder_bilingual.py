"""Integration: the default embedding role, the real packaged model, on the bilingual set.

tests/data/memory/bilingual.jsonl holds English, simplified and traditional Chinese team and
customer memories with queries in both languages (bench/embedders.py reports the full figures).
These tests pin what the product's users need: the right memory first for plain queries in
either language and across them, and a floor on recall@5 over the whole set per language pair.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crewkit.models.registry import RoleMap
from crewkit.settings import load_settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ROWS = [
    json.loads(line)
    for line in (ROOT / "tests" / "data" / "memory" / "bilingual.jsonl")
    .read_text(encoding="utf-8")
    .splitlines()
    if line.strip()
]
DOCS = [r for r in ROWS if r["kind"] == "doc"]
QUERIES = [r for r in ROWS if r["kind"] == "query" and r["relevant"]]  # off-topic ones have none


@pytest.fixture(scope="module")
def ranked():
    """The role's embedder, and the docs' vectors (as memory stores them: embed_documents)."""
    embedder = RoleMap(load_settings(ROOT)).embedder()
    vectors = np.asarray(embedder.embed_documents([d["text"] for d in DOCS]), dtype=np.float32)
    assert vectors.shape == (len(DOCS), embedder.dimensions)

    def top(query: str, k: int = 1) -> list[str]:
        sims = vectors @ np.asarray(embedder.embed_query(query), dtype=np.float32)
        return [DOCS[i]["id"] for i in np.argsort(-sims)[:k]]

    return top


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Which region must Northwind Bank's data be hosted in?", "en03"),  # en -> en
        ("Did we change the API request limit for Globex?", "en09"),
        ("星河科技的合同什么时候到期？", "hs03"),  # zh-Hans -> zh-Hans
        ("客服錄音會保存多久？", "ht06"),  # zh-Hant -> zh-Hant
        ("鼎新医疗明年有什么推广计划？", "ht10"),  # zh-Hans -> zh-Hant
        ("Can Chinese customers' data be stored outside mainland China?", "hs05"),  # en -> zh
        ("When are we moving the frontend to Vue 3?", "hs13"),
        ("Globex 节假日期间的接口限流调到了多少？", "en09"),  # zh -> en
        ("差旅费用超过一千美元需要谁批准？", "en29"),
    ],
)
def test_the_right_memory_comes_first(ranked, query, expected):
    assert ranked(query) == [expected]


def test_recall_at_5_per_language_pair(ranked):
    """Measured 0.90-1.00 per pair with the default; all-MiniLM-L6-v2 gets 0.06 from zh to en."""
    langs = {d["id"]: "zh" if d["lang"].startswith("zh") else "en" for d in DOCS}
    hits: dict[str, list[bool]] = {}
    for q in QUERIES:
        pair = f"{'zh' if q['lang'].startswith('zh') else 'en'}->{langs[q['relevant'][0]]}"
        hits.setdefault(pair, []).append(bool(set(ranked(q["text"], 5)) & set(q["relevant"])))
    recall = {pair: sum(h) / len(h) for pair, h in hits.items()}
    assert set(recall) == {"en->en", "zh->zh", "en->zh", "zh->en"}
    assert all(r >= 0.8 for r in recall.values()), recall
