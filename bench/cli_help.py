"""Benchmark: wall time of `crewkit --help` (target: median < 0.5 s), plus `import crewkit.cli`.

Runs each command as a subprocess from the project root: 1 warm-up, then N timed runs
(default 10). Prints min/median/max and a verdict; writes bench/results/cli_help.json.

    .venv/bin/python bench/cli_help.py [--runs 10]
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
from pathlib import Path

from _common import telemetry_off, write_results

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
TARGET_S = 0.5
telemetry_off()


def time_command(cmd: list[str], runs: int, env: dict[str, str]) -> dict:
    def once() -> float:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
        return elapsed

    once()  # warm-up (page cache, .pyc files)
    samples = [once() for _ in range(runs)]
    return {
        "command": cmd,
        "runs": runs,
        "samples_s": [round(s, 4) for s in samples],
        "min_s": round(min(samples), 4),
        "median_s": round(statistics.median(samples), 4),
        "max_s": round(max(samples), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="crewkit-bench-")
    env = {**os.environ, "CREWKIT_HOME": home, "CREWAI_STORAGE_DIR": str(Path(home) / "crewai")}
    try:
        help_ = time_command([str(VENV_BIN / "crewkit"), "--help"], args.runs, env)
        imp = time_command([str(VENV_BIN / "python"), "-c", "import crewkit.cli"], args.runs, env)
        base = time_command([str(VENV_BIN / "python"), "-c", "pass"], args.runs, env)
    finally:
        shutil.rmtree(home, ignore_errors=True)

    ok = help_["median_s"] < TARGET_S
    verdict = (
        f"{'PASS' if ok else 'FAIL'}: crewkit --help median {help_['median_s']:.3f} s "
        f"{'<' if ok else '>='} target {TARGET_S} s"
    )
    print(f"cli_help: {args.runs} runs after 1 warm-up, cwd {ROOT}")
    for label, r in (
        ("crewkit --help", help_),
        ("python -c 'import crewkit.cli'", imp),
        ("python -c pass (baseline)", base),
    ):
        print(f"  {label:34s} min {r['min_s']:.3f} s  median {r['median_s']:.3f} s  max {r['max_s']:.3f} s")
    print(verdict)

    out = {
        "target": {"metric": "crewkit --help median wall seconds", "lt": TARGET_S},
        "crewkit_help": help_,
        "import_crewkit_cli": imp,
        "python_startup": base,
        "passed": ok,
        "verdict": verdict,
    }
    write_results("cli_help", out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
