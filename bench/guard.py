"""Benchmark: the prompt-injection scanner's accuracy and latency on the labelled guard sets.

Targets (deterministic layer): recall >= 0.95 at a false-positive rate <= 0.03, p95 latency
under 5 ms per item. A verdict other than "allow" counts as flagged (it fails the
no_prompt_injection guardrail and `guard scan` reports it).

For each file in tests/data/guard/ (labelled.jsonl: the set the scanner was tuned on;
heldout.jsonl: written before tuning and never tuned on): precision, recall, false-positive
rate, verdict counts, recall per obfuscation and per language; latency per item from R
timed passes over the file after one warm-up pass (p50/p95 of every item's median time).
Also one 100 KB text, to show the scan stays linear. Offline; writes bench/results/guard.json.

    .venv/bin/python bench/guard.py [-r 5] [--misses]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from _common import write_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crewkit.governance.injection import scan  # noqa: E402

DATA = ROOT / "tests" / "data" / "guard"
FILES = ("labelled.jsonl", "heldout.jsonl")
TARGET_RECALL = 0.95
TARGET_FPR = 0.03
TARGET_P95_MS = 5.0


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def evaluate(items: list[dict], runs: int, show_misses: bool) -> dict:
    for item in items:  # warm-up (regex compilation is at import; this warms caches)
        scan(item["text"])
    times: dict[str, list[float]] = defaultdict(list)
    verdicts: dict[str, str] = {}
    for _ in range(runs):
        for item in items:
            t0 = time.perf_counter()
            result = scan(item["text"])
            times[item["id"]].append((time.perf_counter() - t0) * 1000)
            verdicts[item["id"]] = result.verdict
    tp = fp = fn = tn = 0
    per_obf: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    per_lang: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # tp, fn, fp, tn
    counts: dict[str, int] = defaultdict(int)
    misses = []
    for item in items:
        flagged = verdicts[item["id"]] != "allow"
        counts[verdicts[item["id"]]] += 1
        injection = item["label"] == "injection"
        lang = per_lang[item.get("lang", "?")]
        if injection:
            per_obf[item.get("obfuscation", "none")][0 if flagged else 1] += 1
            tp, fn = tp + flagged, fn + (not flagged)
            lang[0 if flagged else 1] += 1
        else:
            fp, tn = fp + flagged, tn + (not flagged)
            lang[2 if flagged else 3] += 1
        if flagged != injection:
            misses.append((item["id"], item["label"], verdicts[item["id"]], item["text"][:110]))
    per_item = [statistics.median(v) for v in times.values()]
    result = {
        "items": len(items),
        "injections": tp + fn,
        "benign": fp + tn,
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
        "fpr": round(fp / (fp + tn), 4) if fp + tn else 0.0,
        "verdicts": dict(counts),
        "recall_by_obfuscation": {k: round(v[0] / (v[0] + v[1]), 3) for k, v in sorted(per_obf.items())},
        "by_language": {
            k: {
                "recall": round(v[0] / (v[0] + v[1]), 3) if v[0] + v[1] else None,
                "fpr": round(v[2] / (v[2] + v[3]), 3) if v[2] + v[3] else None,
            }
            for k, v in sorted(per_lang.items())
        },
        "latency_ms": {
            "p50": round(percentile(per_item, 0.5), 3),
            "p95": round(percentile(per_item, 0.95), 3),
            "max": round(max(per_item), 3),
        },
        "errors": [{"id": i, "label": lab, "verdict": v} for i, lab, v, _ in misses],
    }
    result["targets_met"] = (
        result["recall"] >= TARGET_RECALL
        and result["fpr"] <= TARGET_FPR
        and result["latency_ms"]["p95"] < TARGET_P95_MS
    )
    if show_misses:
        for i, lab, v, text in misses:
            print(f"  miss {i} ({lab} -> {v}): {text!r}")
    return result


def long_text_ms() -> float:
    text = ("The quarterly report covers revenue, costs and the outlook. " * 1700)[:100_000]
    t0 = time.perf_counter()
    scan(text)
    return round((time.perf_counter() - t0) * 1000, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--runs", type=int, default=5, help="timed passes over each file")
    parser.add_argument("--misses", action="store_true", help="print the misclassified items")
    args = parser.parse_args()
    results: dict[str, dict] = {}
    ok = True
    for name in FILES:
        r = evaluate(load(DATA / name), args.runs, args.misses)
        results[name] = r
        ok = ok and r["targets_met"]
        lat = r["latency_ms"]
        print(
            f"{name:15} items {r['items']:4}  precision {r['precision']:.3f}  recall {r['recall']:.3f}  "
            f"FPR {r['fpr']:.3f}  p50 {lat['p50']:.2f} ms  p95 {lat['p95']:.2f} ms  "
            f"targets {'met' if r['targets_met'] else 'NOT met'}"
        )
        print(f"{'':15} recall by obfuscation: {r['recall_by_obfuscation']}")
    long_ms = long_text_ms()
    print(f"100 KB text: {long_ms} ms")
    print(
        f"{'PASS' if ok else 'FAIL'}: recall >= {TARGET_RECALL} at FPR <= {TARGET_FPR}, "
        f"p95 < {TARGET_P95_MS} ms per item, on every file"
    )
    write_results(
        "guard",
        {
            "targets": {"recall": TARGET_RECALL, "fpr": TARGET_FPR, "p95_ms": TARGET_P95_MS},
            "runs": args.runs,
            "files": results,
            "long_text_100kb_ms": long_ms,
            "pass": ok,
        },
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
