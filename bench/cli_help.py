"""Benchmark: `crewkit --help` against `crewai --help`, paired (target: wall ratio < 1/3).

The machine is shared, so absolute times drift: the two commands run in turn (A B A B ...)
after one warm-up each, and the ratio is taken pair by pair; the median ratio is the figure.
Each run is a whole process (wall seconds, and CPU seconds from the OS's child accounting).
Bytecode caching is allowed (PYTHONDONTWRITEBYTECODE is dropped), as on a user's machine.
Prints min/median/max and a verdict; writes bench/results/cli_help.json.

    .venv/bin/python bench/cli_help.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import mmm, telemetry_off, write_results

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
TARGET_RATIO = 1 / 3
telemetry_off()


def once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one whole run of `cmd`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="pairs after the warm-up (default 15)")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="crewkit-bench-")
    env = {**os.environ, "CREWKIT_HOME": home, "CREWAI_STORAGE_DIR": str(Path(home) / "crewai")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    crewkit = [str(VENV_BIN / "crewkit"), "--help"]
    crewai = [str(VENV_BIN / "crewai"), "--help"]
    samples: dict[str, list[tuple[float, float]]] = {"crewkit": [], "crewai": []}
    try:
        once(crewkit, env), once(crewai, env)  # warm-up: page cache, bytecode
        for _ in range(args.runs):
            samples["crewkit"].append(once(crewkit, env))
            samples["crewai"].append(once(crewai, env))
    finally:
        shutil.rmtree(home, ignore_errors=True)

    wall_ratios = [a[0] / b[0] for a, b in zip(samples["crewkit"], samples["crewai"], strict=True)]
    cpu_ratios = [a[1] / b[1] for a, b in zip(samples["crewkit"], samples["crewai"], strict=True) if b[1] > 0]
    figures = {
        "crewkit_help_wall_s": mmm([s[0] for s in samples["crewkit"]], 4),
        "crewai_help_wall_s": mmm([s[0] for s in samples["crewai"]], 4),
        "crewkit_help_cpu_s": mmm([s[1] for s in samples["crewkit"]], 4),
        "crewai_help_cpu_s": mmm([s[1] for s in samples["crewai"]], 4),
        "wall_ratio": mmm(wall_ratios, 4),
        "cpu_ratio": mmm(cpu_ratios, 4) if cpu_ratios else None,
    }
    ratio = figures["wall_ratio"]["median"]
    ok = ratio < TARGET_RATIO
    verdict = (
        f"{'PASS' if ok else 'FAIL'}: crewkit --help / crewai --help median wall ratio {ratio:.3f} "
        f"{'<' if ok else '>='} target {TARGET_RATIO:.3f}"
    )
    print(f"cli_help: {args.runs} alternating pairs after 1 warm-up each, cwd {ROOT}")
    for label, key in (
        ("crewkit --help wall s", "crewkit_help_wall_s"),
        ("crewai --help wall s", "crewai_help_wall_s"),
        ("crewkit --help cpu s", "crewkit_help_cpu_s"),
        ("crewai --help cpu s", "crewai_help_cpu_s"),
        ("ratio wall (pair by pair)", "wall_ratio"),
        ("ratio cpu (pair by pair)", "cpu_ratio"),
    ):
        f = figures[key]
        if f:
            print(f"  {label:28s} min {f['min']:.3f}  median {f['median']:.3f}  max {f['max']:.3f}")
    print(verdict)
    write_results(
        "cli_help",
        {
            "target": {
                "metric": "median of crewkit --help / crewai --help wall time, paired",
                "lt": TARGET_RATIO,
            },
            "runs": args.runs,
            **figures,
            "passed": ok,
            "verdict": verdict,
        },
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
