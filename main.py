"""CrewAI entry points (`crewai run` -> `uv run kickoff`, `run_crew`, `plot`, `run_with_trigger`).

Thin calls into crewkit; each returns the real exit code (0 done, 1 failed, 2 usage/config).
Note: `crewai run` itself exits 0 even when the flow fails (crewAI issue 7693); scripts and CI
should call `crewkit run` or `uv run kickoff`, which do not.
"""

from __future__ import annotations

import json
import sys


def _cli(*argv: str) -> None:
    from crewkit.cli import main

    sys.exit(main(list(argv)))


def kickoff() -> None:
    """Run the default flow: `uv run kickoff [--inputs JSON]` (the example task if none)."""
    _cli("run", *sys.argv[1:])


def run_crew() -> None:
    """Run one crew: `uv run run_crew NAME [--inputs JSON]`."""
    _cli("crew", *sys.argv[1:])


def plot() -> None:
    """Write the default flow's diagram to output/flow_default.html."""
    from crewkit.cli import main

    sys.exit(main(["plot", *sys.argv[1:]]))


def run_with_trigger() -> None:
    """Run the default flow from a scheduler/webhook payload: `uv run run_with_trigger '<JSON>'`.

    The payload is a JSON object with either `inputs` (the flow's inputs) or `task`.
    """
    if len(sys.argv) < 2:
        print(
            'error: run_with_trigger needs a JSON payload argument, e.g. \'{"task": "..."}\'', file=sys.stderr
        )
        sys.exit(2)
    try:
        payload = json.loads(sys.argv[1])
    except json.JSONDecodeError as exc:
        print(f"error: trigger payload: invalid JSON at column {exc.colno}: {exc.msg}", file=sys.stderr)
        sys.exit(2)
    if not isinstance(payload, dict) or not ("inputs" in payload or "task" in payload):
        print("error: trigger payload must be an object with 'inputs' or 'task'", file=sys.stderr)
        sys.exit(2)
    inputs = (
        payload["inputs"]
        if "inputs" in payload
        else {k: v for k, v in payload.items() if k in ("task", "tenant", "user")}
    )
    _cli("run", "--inputs", json.dumps(inputs), *sys.argv[2:])


if __name__ == "__main__":
    kickoff()
