"""Shared helpers for the bench/ scripts: telemetry off, min/median/max, results file.

The scripts run as `.venv/bin/python bench/<script>.py`, so bench/ is sys.path[0] and they
import this module as `_common`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from crewkit.settings import TELEMETRY_OFF

RESULTS = Path(__file__).resolve().parent / "results"


def telemetry_off() -> None:
    """Set crewkit's telemetry-off variables in os.environ, keeping any already set."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)


def temp_home() -> str:
    """A fresh CREWKIT_HOME (and CrewAI's storage inside it) for this process; returns its path."""
    import tempfile

    home = tempfile.mkdtemp(prefix="crewkit-bench-")
    os.environ["CREWKIT_HOME"] = home
    os.environ["CREWAI_STORAGE_DIR"] = str(Path(home) / "crewai")
    return home


def mmm(values: list[float], digits: int) -> dict[str, float]:
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


def write_results(name: str, payload: dict) -> Path:
    """Write bench/results/<name>.json: benchmark name and machine metadata first, then payload."""
    out = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        **payload,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return path
