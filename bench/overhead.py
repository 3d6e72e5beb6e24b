"""Benchmark: crewkit's added cost per model call over a bare CrewAI crew on the same fake LLM.

Target: crewkit's full per-call path adds < 2 ms per model call over a bare CrewAI crew.

A sequential crewai Crew with 1 agent and K tasks runs on
  (a) a ScriptedLLM directly (bare CrewAI), twice per repeat: (a) and (a'), the A/A control that
      shows how far two identical kickoffs differ on this machine (the noise floor),
  (b) crewkit's RoleLLM for role "reasoning" wrapping a ScriptedLLM
      (RoleMap(load_settings(ROOT), overrides={"reasoning": scripted}).llm("reasoning")),
      outside a run: the hook path's process default, the usage ledger only, and
  (c) the same RoleLLM inside a persisted run's hook path, as the runner sets it up: a new
      run in a real state.db (StateStore in a temp CREWKIT_HOME) per kickoff,
      `hooks.scope(segment.run_hooks(...))`: the ledger, the tool gate, the journal (every model
      call journalled, its usage row and its hash-chained audit record written to state.db), the
      budget guard (each call's estimate reserved on every budget of the profile before it is
      sent and settled after: the model is PRICED here, so the reservation is really written;
      `--free` measures a free model), the injection shield (every message an agent did not
      write scanned once) and the PII shield, and whatever else `segment.subscribers` adds,
each ScriptedLLM holding exactly K short final answers (checked: called K times; for (c) also
K journal rows, K usage rows and K audit records). Each variant runs R times, in rotating order,
after one untimed warm-up each; crew.kickoff() is timed with perf_counter.

The verdict is on what the issue's target names, budgets plus audit: (d) is (c) with only the
ledger, the call journal (usage row, journalled answer and hash-chained audit record in one
commit) and the budget guard subscribed; (c), the full path, is reported beside it. For each:
- in the crew: the time each model call spends in crewkit (RoleLLM.call minus the ScriptedLLM
  call inside it), timed around every call of every kickoff, so with the crew's real prompts,
  threads and heap; per kickoff the sum over its K calls / K, then the median over repeats
  (and the p95 over single calls). This is the added cost itself, measured where it is paid;
- over the crew: the median over repeats of the paired difference x - a in ms per call (each
  repeat runs every variant back to back), with a 95% bootstrap interval. A scripted CrewAI
  call takes 25-40 ms here and repeats differ by several ms (see a' - a), so this figure cannot
  resolve 2 ms on its own: it must only not be above the target beyond doubt (the interval's
  lower end < 2 ms).
PASS: (d) in the crew < 2 ms and its crew-level interval's lower end < 2 ms.
Also microbenchmarks RoleLLM.call alone (ledger only, and with the run's hook path and
state.db) against ScriptedLLM.call alone. Offline; writes bench/results/overhead.json.

    .venv/bin/python bench/overhead.py [-k 20] [-r 12] [--micro 2000]
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from _common import mmm, telemetry_off, temp_home, write_results

ROOT = Path(__file__).resolve().parents[1]
telemetry_off()
_HOME = temp_home()
sys.path.insert(0, str(ROOT))  # for tests.fakes

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import itertools  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

TARGET_MS = 2.0
VARIANTS = ("a", "a2", "b", "d", "c")
LABELS = {
    "a": "(a) bare CrewAI + ScriptedLLM",
    "a2": "(a') the same again (A/A control)",
    "b": "(b) RoleLLM, ledger only",
    "d": "(d) RoleLLM in a run: budgets + audit only",
    "c": "(c) RoleLLM in a run: the full hook path",
}


def bootstrap_ci(values: list[float], n: int = 4000, seed: int = 7) -> tuple[float, float]:
    """95% bootstrap interval of the median: how far the crew-level figure can be trusted (a
    scripted CrewAI call takes 26-47 ms here, so repeats differ by several ms)."""
    import random

    rng = random.Random(seed)
    k = len(values)
    medians = sorted(statistics.median(rng.choices(values, k=k)) for _ in range(n))
    return medians[int(0.025 * n)], medians[int(0.975 * n) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-k", "--tasks", type=int, default=20, help="tasks per crew = model calls per kickoff"
    )
    parser.add_argument("-r", "--repeats", type=int, default=12, help="timed kickoffs per variant")
    parser.add_argument("--micro", type=int, default=2000, help="calls per microbenchmark batch")
    parser.add_argument("--micro-batches", type=int, default=7)
    parser.add_argument("--free", action="store_true", help="the model costs nothing (no budget writes)")
    args = parser.parse_args()
    K, R = args.tasks, args.repeats

    t0 = time.perf_counter()
    from crewai import Agent, Crew, Process, Task

    from crewkit.governance.approvals import ApprovalGate
    from crewkit.models.metered import RoleLLM
    from crewkit.models.registry import RoleMap
    from crewkit.observability import ledger
    from crewkit.runtime import hooks, segment
    from crewkit.runtime.budget_guard import BudgetGuard
    from crewkit.runtime.journal import CallJournal
    from crewkit.runtime.store import StateStore
    from crewkit.settings import load_settings
    from tests.fakes import ScriptedLLM

    import_s = time.perf_counter() - t0
    # Every call's time in RoleLLM.call (crewkit's wrapper, CrewAI's retry wrapper around it
    # included) and in the ScriptedLLM.call inside it: their difference is crewkit's share.
    spent: dict[str, list[float]] = {"outer": [], "inner": []}

    def timed(cls: type, key: str) -> None:
        original = cls.call

        def call(self: object, *a: object, **kw: object) -> object:
            t = time.perf_counter()
            try:
                return original(self, *a, **kw)
            finally:
                spent[key].append(time.perf_counter() - t)

        cls.call = call

    timed(RoleLLM, "outer")
    timed(ScriptedLLM, "inner")
    # CrewAI warns once per call that fake LLMs have no native token count; the warning fires in
    # every variant alike, so silence it to keep stderr quiet and the timing about orchestration.
    logging.getLogger("crewai.llms.base_llm").setLevel(logging.ERROR)
    project = Path(_HOME) / "project"
    shutil.copytree(ROOT / "config", project / "config")
    # config/schedules.yaml names the default flow, which config loading checks exists
    shutil.copytree(ROOT / "flows", project / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    # the runs repeat the same tasks: with the shipped seed the response cache would answer them
    # and no model call would be left to measure the governance path around
    (project / "config" / "operations.yaml").write_text("cache: {enabled: false}\n")
    if not args.free:  # a priced model, so every call reserves and settles its budgets
        models = project / "config" / "models.yaml"
        models.write_text(
            models.read_text().replace(
                "price: {input_per_mtok: 0.0, output_per_mtok: 0.0}",
                "price: {input_per_mtok: 0.15, output_per_mtok: 0.6}",
                1,
            )
        )
    settings = load_settings(project)
    store = StateStore.open(Path(_HOME))
    run_ids = (f"bench-{i:05d}" for i in itertools.count())

    def replies(n: int) -> list[str]:
        return [f"Answer {i}: done." for i in range(n)]

    def make_llm(variant: str, scripted: ScriptedLLM) -> object:
        if variant in ("a", "a2"):
            return scripted
        return RoleMap(settings, overrides={"reasoning": scripted}).llm("reasoning")

    def run_scope(variant: str) -> tuple[contextlib.AbstractContextManager, str | None]:
        """The hook path a persisted run has (c), its budgets and audit alone (d), or none (a, b);
        and its run id."""
        if variant not in ("c", "d"):
            return contextlib.nullcontext(), None
        run_id = next(run_ids)
        store.create_run(run_id, "bench", {}, "fp", None)
        count = lambda: 0  # noqa: E731 - one crew, no flow checkpoints: the runner passes the same
        gate = ApprovalGate(store, settings, run_id, None, checkpoints=count)
        path = segment.run_hooks(settings, store, run_id, gate, count, "default")
        if variant == "d":  # the ledger, the call journal (usage row + audit record), the budget guard
            kept = [s for s in path.subscribers if isinstance(s, CallJournal | BudgetGuard)]
            path = hooks.RunHooks(kept, transaction=store.write)
        return hooks.scope(path), run_id

    def make_crew(llm: object) -> Crew:
        agent = Agent(
            role="Worker",
            goal="Answer each task briefly.",
            backstory="A terse assistant.",
            llm=llm,
            allow_delegation=False,
            verbose=False,
            max_iter=3,
        )
        tasks = [
            Task(description=f"Task {i}: say done.", expected_output="One short sentence.", agent=agent)
            for i in range(K)
        ]
        return Crew(agents=[agent], tasks=tasks, process=Process.sequential, verbose=False)

    # (c), (d): ms crewkit added per call, per kickoff (sum over K calls / K), and per single call
    in_crew: dict[str, list[float]] = {"c": [], "d": []}
    in_crew_calls: dict[str, list[float]] = {"c": [], "d": []}

    def run(variant: str) -> float:
        scripted = ScriptedLLM(replies(K))
        crew = make_crew(make_llm(variant, scripted))
        scope, run_id = run_scope(variant)
        gc.collect()  # every kickoff starts from a collected heap
        spent["outer"].clear()
        spent["inner"].clear()
        with ledger.open_ledger() as book, scope:
            t = time.perf_counter()
            crew.kickoff()
            elapsed = time.perf_counter() - t
        if len(scripted.calls) != K:
            raise SystemExit(
                f"variant {variant}: ScriptedLLM called {len(scripted.calls)} times, expected {K}"
            )
        if variant in ("b", "c", "d") and len(book.calls) != K:
            raise SystemExit(f"variant {variant}: ledger has {len(book.calls)} calls, expected {K}")
        if run_id is not None and len(store.calls(run_id)) != K:
            raise SystemExit(f"variant {variant}: {len(store.calls(run_id))} usage rows, expected {K}")
        if run_id is not None:
            audited = store.read(
                "SELECT COUNT(*) FROM audit WHERE run_id = ? AND action = 'model.call'", (run_id,)
            )
            if audited[0][0] != K:
                raise SystemExit(f"variant {variant}: {audited[0][0]} model.call audit records, expected {K}")
            if len(spent["outer"]) != K or len(spent["inner"]) != K:
                raise SystemExit(
                    f"variant {variant}: {len(spent['outer'])} timed RoleLLM calls, expected {K}"
                )
            added = [(o - i) * 1000 for o, i in zip(spent["outer"], spent["inner"], strict=True)]
            if timing:
                in_crew[variant].append(sum(added) / K)
                in_crew_calls[variant].extend(added)
        return elapsed

    print(
        f"overhead: import crewai+crewkit {import_s:.1f} s; K={K} tasks/calls per kickoff, "
        f"R={R} rotating runs of {', '.join(VARIANTS)}"
    )
    timing = False
    for v in VARIANTS:  # warm-up (first-kickoff costs: prompts, event bus, state.db pages, ...)
        run(v)
    timing = True
    totals: dict[str, list[float]] = {v: [] for v in VARIANTS}
    n = len(VARIANTS)
    for i in range(R):
        order = VARIANTS[i % n :] + VARIANTS[: i % n]
        for v in order:
            totals[v].append(run(v))
    per_call_ms = {v: [t / K * 1000 for t in ts] for v, ts in totals.items()}
    med = {v: statistics.median(per_call_ms[v]) for v in VARIANTS}
    others = ("a2", "b", "d", "c")
    diff_ms = {v: med[v] - med["a"] for v in others}
    paired = {v: [x - a for a, x in zip(per_call_ms["a"], per_call_ms[v], strict=True)] for v in others}

    # microbenchmark: the call alone, no crew
    N, B = args.micro, args.micro_batches
    micro: dict[str, list[float]] = {"scripted": [], "rolellm": [], "rolellm_run": []}
    msgs = [{"role": "user", "content": "hello"}]
    for _ in range(B):
        for v in micro:
            scripted = ScriptedLLM(["ok"] * N)
            llm = scripted if v == "scripted" else make_llm("b", scripted)
            scope, _run_id = run_scope("c" if v == "rolellm_run" else "a")
            call = llm.call
            with ledger.open_ledger(), scope:
                t = time.perf_counter()
                for _ in range(N):
                    call(msgs)
                elapsed = time.perf_counter() - t
            if len(scripted.calls) != N:
                raise SystemExit(f"micro {v}: {len(scripted.calls)} calls, expected {N}")
            micro[v].append(elapsed / N * 1e6)
    micro_med = {v: statistics.median(x) for v, x in micro.items()}

    micro_added_ms = (micro_med["rolellm_run"] - micro_med["scripted"]) / 1000
    ci = {v: bootstrap_ci(paired[v]) for v in others}
    fig: dict[str, dict[str, float]] = {}
    for v in ("d", "c"):
        single = sorted(in_crew_calls[v])
        lo, hi = bootstrap_ci(in_crew[v])
        fig[v] = {
            "median": statistics.median(in_crew[v]),
            "ci_lo": lo,
            "ci_hi": hi,
            "single_median": statistics.median(single),
            "single_p95": single[int(0.95 * (len(single) - 1))],
            "single_max": single[-1],
            "crew_added": statistics.median(paired[v]),
        }
    # the target: what budgets plus audit add per model call (d); the full path (c) too
    ok = fig["d"]["median"] < TARGET_MS and ci["d"][0] < TARGET_MS
    full_ok = fig["c"]["median"] < TARGET_MS and ci["c"][0] < TARGET_MS

    def said(v: str) -> str:
        f = fig[v]
        return (
            f"{f['median']:.3f} ms per model call in the crew (timed around every call; 95% CI "
            f"{f['ci_lo']:.2f} to {f['ci_hi']:.2f}; p95 of single calls {f['single_p95']:.2f}); over the "
            f"whole kickoff {v} - a {f['crew_added']:+.2f} ms per call (95% CI {ci[v][0]:+.2f} to {ci[v][1]:+.2f})"
        )

    priced = "free model" if args.free else "priced model"
    verdict = (
        f"{'PASS' if ok else 'FAIL'}: budgets plus audit in a persisted run (the call journal with its usage "
        f"row and hash-chained audit record, budgets reserved and settled on a {priced}, state.db) add "
        f"{said('d')} vs target < {TARGET_MS} ms. The full hook path (also the context budget, the "
        f"injection and PII shields, tool gates): {said('c')}: {'under' if full_ok else 'NOT under'} "
        f"{TARGET_MS} ms. A/A noise floor a' - a {statistics.median(paired['a2']):+.2f} (95% CI "
        f"{ci['a2'][0]:+.2f} to {ci['a2'][1]:+.2f}); the full call alone: +{micro_added_ms:.3f} ms"
    )
    print("crew.kickoff per model call (total / K), ms:")
    for v in VARIANTS:
        m = mmm(per_call_ms[v], 3)
        print(f"  {LABELS[v]:46s} min {m['min']:.3f}  median {m['median']:.3f}  max {m['max']:.3f}")
    for v in others:
        pm = mmm(paired[v], 3)
        print(
            f"  {v} - a: {diff_ms[v]:+.3f} ms/call (medians); paired per repeat min {pm['min']:+.3f} "
            f"median {pm['median']:+.3f} (95% CI {ci[v][0]:+.2f} to {ci[v][1]:+.2f}) max {pm['max']:+.3f}; "
            f"ratio {v}/a {med[v] / med['a']:.3f}"
        )
    for v in ("d", "c"):
        f = fig[v]
        ic = mmm(in_crew[v], 3)
        print(
            f"({v}) crewkit's time per model call inside the crew (RoleLLM.call - ScriptedLLM.call), ms: "
            f"per kickoff min {ic['min']:.3f} median {ic['median']:.3f} max {ic['max']:.3f}; single calls "
            f"median {f['single_median']:.3f} p95 {f['single_p95']:.3f} max {f['single_max']:.3f}"
        )
    print(f"call() alone, µs per call ({B} batches x {N} calls):")
    micro_labels = {
        "scripted": "ScriptedLLM.call",
        "rolellm": "RoleLLM.call, ledger only",
        "rolellm_run": "RoleLLM.call in a run (hooks+journal+db)",
    }
    for v, label in micro_labels.items():
        m = mmm(micro[v], 2)
        print(f"  {label:42s} min {m['min']:.2f}  median {m['median']:.2f}  max {m['max']:.2f}")
    for v in ("rolellm", "rolellm_run"):
        print(
            f"  {micro_labels[v]} overhead: {micro_med[v] - micro_med['scripted']:+.2f} µs per call "
            f"(ratio {micro_med[v] / micro_med['scripted']:.2f})"
        )
    print(verdict)

    out = {
        "loadavg": list(os.getloadavg()),
        "priced": not args.free,
        "import_s": round(import_s, 2),
        "K": K,
        "R": R,
        "variants": LABELS,
        "target": {
            "metric": "ms budgets plus audit (d) add per model call in the crew (median over kickoffs), "
            "and the crew-level paired (d) - (a) not above the target beyond doubt (95% CI lower end)",
            "lt": TARGET_MS,
        },
        "in_crew_added_ms_per_call": {v: {k: round(x, 3) for k, x in f.items()} for v, f in fig.items()},
        "full_path_under_target": full_ok,
        "kickoff_total_s": {v: [round(t, 4) for t in ts] for v, ts in totals.items()},
        "per_call_ms": {v: mmm(x, 3) for v, x in per_call_ms.items()},
        "added_ms_per_call_medians": {v: round(d, 4) for v, d in diff_ms.items()},
        "paired_added_ms_per_call": {v: mmm(p, 3) for v, p in paired.items()},
        "paired_median_ci95_ms": {v: [round(x, 3) for x in c] for v, c in ci.items()},
        "ratio_over_bare": {v: round(med[v] / med["a"], 4) for v in others},
        "micro_us_per_call": {
            "calls_per_batch": N,
            "batches": B,
            **{v: mmm(x, 2) for v, x in micro.items()},
            "added_ms_per_call_run": round(micro_added_ms, 4),
            "overhead_us": {
                v: round(micro_med[v] - micro_med["scripted"], 2) for v in ("rolellm", "rolellm_run")
            },
        },
        "passed": ok,
        "verdict": verdict,
    }
    write_results("overhead", out)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        shutil.rmtree(_HOME, ignore_errors=True)
    sys.exit(rc)
