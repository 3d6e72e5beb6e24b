"""CrewAI entry points (`crewai run` -> `uv run kickoff`, `run_crew`, `plot`, `run_with_trigger`).

Thin calls into the `crewkit` command; each exits with its real code (0 done, 1 failed or
rejected, 2 usage/config, 75 paused waiting for a person, 130 interrupted). Note: `crewai run` itself exits 0 even when the flow fails
(crewAI issue 7693); scripts and CI should call `crewkit run` or `uv run kickoff`, which do not.
"""

from __future__ import annotations

import sys


def _cli(*argv: str) -> None:
    from crewkit.cli import entry

    entry(list(argv))


def kickoff() -> None:
    """Run a flow: `uv run kickoff [FLOW] [--inputs JSON] [--json]` (the example task if none)."""
    _cli("run", *sys.argv[1:])


def run_crew() -> None:
    """Run one crew: `uv run run_crew NAME [--inputs JSON] [--json]`."""
    _cli("crew", *sys.argv[1:])


def plot() -> None:
    """Write a flow's diagram: `uv run plot [FLOW]` -> output/flow_FLOW.html."""
    _cli("plot", *sys.argv[1:])


def _usage(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.exit(2)


def run_with_trigger() -> None:
    """Run a flow from a scheduler/webhook payload: `uv run run_with_trigger '<JSON>' [FLOW] [--json]`.

    The flow's inputs are the payload's `inputs` object when it has one, else its keys (a payload
    wrapped as `{"crewai_trigger_payload": {...}}` is unwrapped); start steps that take a
    `crewai_trigger_payload` parameter receive the whole payload (CrewAI's convention) and the
    run record keeps it as `trigger_payload`. A malformed payload is one line naming the field,
    exit 2, before anything is written (`crewkit.scheduling.trigger`).
    """
    if len(sys.argv) < 2:
        _usage('run_with_trigger needs a JSON payload argument, e.g. \'{"task": "..."}\'')
    _cli("run", *sys.argv[2:], f"--trigger-payload={sys.argv[1]}")


if __name__ == "__main__":
    kickoff()
