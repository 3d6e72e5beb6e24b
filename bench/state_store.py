"""Benchmark: the state store's cost per write and read, on a real state.db (WAL, synchronous=NORMAL).

Target: every write the runner makes per model call or per flow step stays well under 1 ms.

On a fresh store in a temporary CREWKIT_HOME, B batches of N operations each (after one
untimed warm-up batch), timed with perf_counter; per-op µs = batch time / N:
  checkpoint      add_checkpoint with a flow state of ~2 KB (one per finished step)
  call            journal_put (a ~1 KB model answer) + add_call (a ledger row): one model call
  journal_get     journal_get of a stored key (the replay read on resume)
  get_run         get_run
  set_status      set_status (a plain single-row update)
Then "checkpoint (contended)": the same checkpoint batches while another process writes
checkpoints and journal rows of its own run as fast as it can (two runs sharing one state.db).
Also the time to open an existing store of the resulting size in a new process's way (cache
cleared: connect, quick_check, migrations check), which `crewkit resume` pays once.
Offline; writes bench/results/state_store.json.

    .venv/bin/python bench/state_store.py [-n 1000] [-b 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import mmm, write_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crewkit.runtime.store import StateStore  # noqa: E402

TARGET_US = 1000.0
WRITES = ("checkpoint", "call", "checkpoint (contended)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--ops", type=int, default=1000, help="operations per batch")
    parser.add_argument("-b", "--batches", type=int, default=5, help="timed batches per operation")
    args = parser.parse_args()
    N, B = args.ops, args.batches
    home = Path(tempfile.mkdtemp(prefix="crewkit-bench-store-"))
    try:
        return run(home, N, B)
    finally:
        StateStore.open(home).close()
        shutil.rmtree(home, ignore_errors=True)


def run(home: Path, N: int, B: int) -> int:
    store = StateStore.open(home)
    store.create_run("bench", "default", {"task": "benchmark the store"}, "fp", None)
    state = {
        "plan": [
            {"id": str(i), "description": f"Subtask {i}: " + "x" * 120, "task_type": "code"} for i in range(5)
        ],
        "results": {str(i): "Result text " + "y" * 200 for i in range(5)},
        "status": "running",
    }
    answer = {"text": "Thought: done.\nFinal Answer: " + "z" * 1000, "tool_calls": None}
    row = {
        "stage": "execute",
        "agent": "Developer",
        "role": "code",
        "model": "local-small",
        "started": time.time(),
        "seconds": 0.5,
        "input_tokens": 812,
        "output_tokens": 140,
        "cost_usd": 0.0,
        "error": None,
        "relayed": False,
        "not_run": None,
    }
    counter = {"i": 0}

    def next_i() -> int:
        counter["i"] += 1
        return counter["i"]

    def checkpoint() -> None:
        store.add_checkpoint("bench", "execute", {"ok": True}, state, False)

    def call() -> None:
        i = next_i()
        store.journal_put("bench", f"model:{i}:0123456789abcdef", "model", i, answer)
        store.add_call("bench", row)

    def journal_get() -> None:
        store.journal_get("bench", f"model:{1 + counter['i'] % 100}:0123456789abcdef")

    def get_run() -> None:
        store.get_run("bench")

    def set_status() -> None:
        store.set_status("bench", "running")

    ops: dict[str, Callable[[], None]] = {
        "checkpoint": checkpoint,
        "call": call,
        "journal_get": journal_get,
        "get_run": get_run,
        "set_status": set_status,
    }
    per_op: dict[str, list[float]] = {}
    for name, fn in ops.items():
        for _ in range(min(N, 100)):  # warm-up
            fn()
        times = []
        for _ in range(B):
            t = time.perf_counter()
            for _ in range(N):
                fn()
            times.append((time.perf_counter() - t) / N * 1e6)
        per_op[name] = times

    per_op["checkpoint (contended)"] = contended(home, checkpoint, N, B)

    store.close()
    size_mb = (home / "state.db").stat().st_size / 1e6 + (
        (home / "state.db-wal").stat().st_size / 1e6 if (home / "state.db-wal").exists() else 0.0
    )
    opens = []
    for _ in range(5):
        t = time.perf_counter()
        StateStore.open(home).close()
        opens.append((time.perf_counter() - t) * 1000)

    worst = max(statistics.median(per_op[w]) for w in WRITES)
    ok = worst < TARGET_US
    verdict = f"{'PASS' if ok else 'FAIL'}: slowest write (median per op) {worst:.0f} µs vs target < {TARGET_US:.0f} µs"
    print(f"state store: {B} batches x {N} ops each, µs per op (state.db {size_mb:.1f} MB at the end)")
    for name, times in per_op.items():
        m = mmm(times, 1)
        print(f"  {name:22s} min {m['min']:8.1f}  median {m['median']:8.1f}  max {m['max']:8.1f}")
    om = mmm(opens, 2)
    print(f"  open (quick_check)      min {om['min']:.2f}  median {om['median']:.2f}  max {om['max']:.2f} ms")
    print(verdict)
    write_results(
        "state_store",
        {
            "loadavg": list(os.getloadavg()),
            "ops_per_batch": N,
            "batches": B,
            "us_per_op": {name: mmm(times, 1) for name, times in per_op.items()},
            "open_ms": om,
            "db_mb": round(size_mb, 2),
            "target": {
                "metric": "median µs per op of the slowest write (checkpoint, call, contended checkpoint)",
                "lt": TARGET_US,
            },
            "passed": ok,
            "verdict": verdict,
        },
    )
    return 0 if ok else 1


_HAMMER = """
import sys
from pathlib import Path
from crewkit.runtime.store import StateStore
s = StateStore.open(Path(sys.argv[1]))
s.create_run("other", "default", {}, "fp", None)
print("ready", flush=True)
i = 0
while True:
    i += 1
    s.add_checkpoint("other", "execute", {"i": i}, {"pad": "x" * 2000}, False)
    s.journal_put("other", f"k{i}", "model", i, "y" * 1000)
"""


def contended(home: Path, fn: Callable[[], None], N: int, B: int) -> list[float]:
    """Per-op µs of `fn` while another process writes to the same file without pause."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HAMMER, str(home)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        times = []
        for _ in range(B):
            t = time.perf_counter()
            for _ in range(N):
                fn()
            times.append((time.perf_counter() - t) / N * 1e6)
        return times
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())
