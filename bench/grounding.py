"""Benchmark: the share of unsupported claims in final answers, with and without grounding.

Data: tests/data/grounding/, questions with the source passages a run's tools returned (prose,
JSON tool output, config files) and an answer made of hand-labelled claims (`supported`: the
sources say it, often in other words; `unsupported`: planted, a wrong number or name, a
negation flip, a fact of another entity, or a fact the sources do not give; `generic`: not a
claim). qa.jsonl (20 items, 10 English and 10 Chinese) is the set the checker was tuned on;
heldout.jsonl (8 items, 4 and 4) was written after tuning and the checker was not changed
after it was first measured. Figures are given for both together and per split.

1. Scripted answers (gold labels). Each item gives two answers: the planted one (all its
   claims) and a faithful one (its supported and generic claims only), as a scripted model
   would return them. Without grounding every answer is released as it is. With grounding:
   - strip:  the verifier removes the claims it finds unsupported (`strip_unsupported`);
   - reject: an answer with any unsupported claim is not released (the run fails or goes
             back for another round, as `grounding.require` does in the flow).
   Reported: the share of unsupported claims among the claims released (gold labels), the
   detector's precision and recall, and what grounding costs (supported claims stripped,
   faithful answers rejected); lexical layer alone and with the packaged embedder.
2. The embedded model (SmolLM2-135M, a few items: it is slow). It answers from the sources;
   there are no gold labels for its claims, so the shares are the checker's own verdicts
   (flagged = unsupported by the deterministic layer): without grounding (first answer), with
   grounding (one regeneration with the verifier's feedback, then the still-unsupported claims
   stripped). This shows what the loop does on a real small model, not how right the checker is.

    .venv/bin/python bench/grounding.py [--model-items 4] [--no-model] [--show]

Writes bench/results/grounding.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from _common import telemetry_off, write_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crewkit.governance import grounding  # noqa: E402

DATA = ROOT / "tests" / "data" / "grounding"
FILES = ("qa.jsonl", "heldout.jsonl")


def load() -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for name in FILES
        for line in (DATA / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def answer_text(item: dict[str, Any], labels: tuple[str, ...]) -> str:
    claims = [c["text"] for c in item["claims"] if c["label"] in labels]
    if item.get("format") == "bullets":
        return "\n".join(f"- {c}" for c in claims)
    return ("" if item["lang"] == "zh" else " ").join(claims)


def _norm(text: str) -> str:
    return "".join(text.split()).rstrip("。.!！?？")


def gold_of(item: dict[str, Any], text: str) -> list[str]:
    """Gold labels of the claims still in `text` (each labelled claim found in it)."""
    flat = _norm(text)
    return [c["label"] for c in item["claims"] if _norm(c["text"]) in flat]


def share(labels: list[str]) -> float | None:
    counted = [x for x in labels if x != "generic"]
    return round(counted.count("unsupported") / len(counted), 3) if counted else None


def scripted(items: list[dict[str, Any]], embedder: Any, show: bool) -> dict[str, Any]:
    """Detector and end-to-end figures over the labelled answers."""
    tp = fp = fn = tn = skipped_claims = generic_counted = 0
    released_without: list[str] = []
    released_strip: list[str] = []
    released_reject: list[str] = []
    answers = rejected_planted = rejected_faithful = faithful = 0
    stripped_supported = 0
    per_lang: dict[str, dict[str, int]] = {}
    per_split: dict[str, dict[str, int]] = {}
    seconds = 0.0
    for item in items:
        for variant, labels in (
            ("planted", ("supported", "unsupported", "generic")),
            ("faithful", ("supported", "generic")),
        ):
            text = answer_text(item, labels)
            t0 = time.perf_counter()
            result = grounding.check(text, item["sources"], task=item["question"], embedder=embedder)
            seconds += time.perf_counter() - t0
            gold = {_norm(c["text"]): c["label"] for c in item["claims"]}
            flagged = {_norm(c.claim) for c in result.unsupported}
            checked = {_norm(c.claim) for c in result.checks}
            for key, label in gold.items():
                if label not in labels:
                    continue
                if label == "generic":
                    generic_counted += key in checked
                    continue
                if key not in checked:
                    skipped_claims += 1  # counted as released unflagged
                hit = key in flagged
                for bucket in (
                    per_lang.setdefault(item["lang"], {"tp": 0, "fp": 0, "fn": 0, "tn": 0}),
                    per_split.setdefault(item["split"], {"tp": 0, "fp": 0, "fn": 0, "tn": 0}),
                ):
                    bucket[
                        {(True, True): "tp", (False, True): "fp", (True, False): "fn", (False, False): "tn"}[
                            (label == "unsupported", hit)
                        ]
                    ] += 1
                if label == "unsupported":
                    tp, fn = tp + hit, fn + (not hit)
                else:
                    fp, tn = fp + hit, tn + (not hit)
                if show and (hit != (label == "unsupported")):
                    why = next((c.reason for c in result.checks if _norm(c.claim) == key), "not checked")
                    print(f"  miss {item['id']} {variant} gold={label}: {key} [{why}]")
            answers += 1
            released_without += gold_of(item, text)
            kept = grounding.strip_unsupported(text, result)
            after = gold_of(item, kept)
            released_strip += after
            stripped_supported += gold_of(item, text).count("supported") - after.count("supported")
            if result.unsupported:
                rejected_planted += variant == "planted"
                rejected_faithful += variant == "faithful"
            else:
                released_reject += gold_of(item, text)
            faithful += variant == "faithful"

    def pr(b: dict[str, int]) -> dict[str, float | None]:
        return {
            "precision": round(b["tp"] / (b["tp"] + b["fp"]), 3) if b["tp"] + b["fp"] else None,
            "recall": round(b["tp"] / (b["tp"] + b["fn"]), 3) if b["tp"] + b["fn"] else None,
        }

    without = share(released_without)
    strip = share(released_strip)
    reject = share(released_reject)
    supported_total = released_without.count("supported")
    return {
        "answers": answers,
        "claims_labelled": len([x for x in released_without if x != "generic"]),
        "unsupported_share": {
            "without_grounding": without,
            "with_grounding_strip": strip,
            "with_grounding_reject": reject,
        },
        "relative_cut": {
            "strip": round(1 - strip / without, 3) if without and strip is not None else None,
            "reject": round(1 - reject / without, 3) if without and reject is not None else None,
        },
        "detector": {
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "recall": round(tp / (tp + fn), 3) if tp + fn else None,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
            "by_language": {k: pr(v) for k, v in per_lang.items()},
            "by_split": {k: pr(v) for k, v in per_split.items()},
        },
        "cost": {
            "supported_claims_stripped": stripped_supported,
            "supported_claims_released": supported_total,
            "faithful_answers_rejected": rejected_faithful,
            "faithful_answers": faithful,
            "planted_answers_rejected": rejected_planted,
        },
        "generic_sentences_counted_as_claims": generic_counted,
        "check_ms_per_answer": round(1000 * seconds / answers, 2),
    }


PROMPT = {
    "en": "Answer the question using only the sources. Write 2 to 4 short sentences.\n\nSources:\n{sources}\n\nQuestion: {question}",
    "zh": "只根据资料回答问题，写2到4句短句。\n\n资料：\n{sources}\n\n问题：{question}",
}
RETRY = {
    "en": "\n\nYour previous answer had claims the sources do not support:\n{issues}\nAnswer again, using only the sources.",
    "zh": "\n\n你上一次的回答里有资料不支持的说法：\n{issues}\n请只根据资料重新回答。",
}


def embedded(items: list[dict[str, Any]], show: bool) -> dict[str, Any]:
    """The embedded model answers from the sources; the checker's verdicts before and after."""
    from crewkit.models.registry import RoleMap
    from crewkit.settings import load_settings

    settings = load_settings(ROOT)
    role_map = RoleMap(settings)
    llm = role_map.llm("reasoning")
    rows = []
    t0 = time.perf_counter()
    for item in items:
        sources = "\n".join(f"[{i}] {s}" for i, s in enumerate(item["sources"], start=1))
        prompt = PROMPT[item["lang"]].format(sources=sources, question=item["question"])
        first = str(llm.call([{"role": "user", "content": prompt}]))
        g1 = grounding.check(first, item["sources"], task=item["question"])
        final, g2 = first, g1
        if g1.unsupported:
            issues = "\n".join(f"- {c.claim}" for c in g1.unsupported[:3])
            final = str(
                llm.call([{"role": "user", "content": prompt + RETRY[item["lang"]].format(issues=issues)}])
            )
            g2 = grounding.check(final, item["sources"], task=item["question"])
        stripped = grounding.strip_unsupported(final, g2)
        g3 = grounding.check(stripped, item["sources"], task=item["question"])
        rows.append(
            {
                "id": item["id"],
                "first": {"claims": len(g1.checks), "unsupported": len(g1.unsupported)},
                "regenerated": {"claims": len(g2.checks), "unsupported": len(g2.unsupported)}
                if g2 is not g1
                else None,
                "stripped": {"claims": len(g3.checks), "unsupported": len(g3.unsupported)},
                "first_answer": first,
                "regenerated_answer": final if g2 is not g1 else None,
                "final_answer": stripped,
                "first_verdicts": [
                    {"claim": c.claim, "supported": c.supported, "reason": c.reason} for c in g1.checks
                ],
            }
        )
        if show:
            print(f"--- {item['id']}\n{first}\n=> flagged: {[c.claim for c in g1.unsupported]}")

    def pooled(key: str) -> float | None:
        claims = sum((r[key] or r["first"])["claims"] for r in rows)
        bad = sum((r[key] or r["first"])["unsupported"] for r in rows)
        return round(bad / claims, 3) if claims else None

    return {
        "model": settings.role("reasoning").model,
        "items": [r["id"] for r in rows],
        "flagged_share": {
            "without_grounding": pooled("first"),
            "after_regeneration": pooled("regenerated"),
            "with_grounding_regenerate_then_strip": pooled("stripped"),
        },
        "claims_released": {
            "without_grounding": sum(r["first"]["claims"] for r in rows),
            "with_grounding": sum(r["stripped"]["claims"] for r in rows),
        },
        "seconds": round(time.perf_counter() - t0, 1),
        "answers": rows,
        "note": "no gold labels: the shares are the deterministic checker's verdicts on the model's own answers",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model-items", type=int, default=4, help="items the embedded model answers (0: none)"
    )
    parser.add_argument("--no-model", action="store_true", help="skip the embedded model")
    parser.add_argument(
        "--show", action="store_true", help="print the detector's misses and the model's answers"
    )
    args = parser.parse_args()
    telemetry_off()
    items = load()
    payload: dict[str, Any] = {"data": str(DATA.relative_to(ROOT)), "items": len(items)}
    payload["scripted_lexical"] = scripted(items, None, args.show)
    try:
        from crewkit.models.registry import RoleMap
        from crewkit.settings import load_settings

        embedder = RoleMap(load_settings(ROOT)).embedder()
        payload["scripted_lexical_plus_embedder"] = {
            "embedder": getattr(embedder, "model_name", type(embedder).__name__),
            **scripted(items, embedder, args.show),
        }
    except Exception as exc:  # noqa: BLE001 - the embedder is optional here; say why it is missing
        payload["scripted_lexical_plus_embedder"] = {"skipped": str(exc)}
    if not args.no_model and args.model_items > 0:
        picks = [i for i in items if i["lang"] == "en"][: (args.model_items + 1) // 2]
        picks += [i for i in items if i["lang"] == "zh"][: args.model_items // 2]
        payload["embedded_model"] = embedded(picks, args.show)
    write_results("grounding", payload)
    s = payload["scripted_lexical"]
    print(
        f"scripted (lexical): unsupported share {s['unsupported_share']['without_grounding']} without, "
        f"{s['unsupported_share']['with_grounding_strip']} strip, {s['unsupported_share']['with_grounding_reject']} "
        f"reject; detector P={s['detector']['precision']} R={s['detector']['recall']}"
    )
    if "embedded_model" in payload:
        print(f"embedded model (checker's verdicts): {payload['embedded_model']['flagged_share']}")


if __name__ == "__main__":
    main()
