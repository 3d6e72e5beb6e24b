"""CrewAI entry points (`crewai run` -> `uv run kickoff`, `run_crew`, `plot`, `run_with_trigger`).

Thin calls into the `crewkit` command; each exits with its real code (0 done, 1 failed or
rejected, 2 usage/config, 75 paused waiting for a person, 130 interrupted). Note: `crewai run` itself exits 0 even when the flow fails
(crewAI issue 7693); scripts and CI should call `crewkit run` or `uv run kickoff`, which do not.
"""

from __future__ import annotations

import json
import sys

TRIGGER_KEY = "crewai_trigger_payload"


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


def trigger_inputs(payload: object) -> tuple[dict, dict]:
    """A trigger's payload -> (the flow's inputs, the payload start steps receive).

    CrewAI's templates pass the payload as `crewai_trigger_payload`; a payload given already
    wrapped that way is unwrapped. The flow's inputs are the payload's `inputs` object when it
    has one (its other keys stay in the payload), else every key of the payload, so the flow's
    `Inputs` model names any key it does not accept. No key is dropped.
    """
    if not isinstance(payload, dict):
        _usage(f"trigger payload must be a JSON object, got {type(payload).__name__}")
    if set(payload) == {TRIGGER_KEY} and isinstance(payload[TRIGGER_KEY], dict):
        payload = payload[TRIGGER_KEY]
    if "inputs" in payload:
        inputs = payload["inputs"]
        if not isinstance(inputs, dict):
            _usage(f"trigger payload: 'inputs' must be an object, got {type(inputs).__name__}")
        return inputs, payload
    return dict(payload), payload


def run_with_trigger() -> None:
    """Run a flow from a scheduler/webhook payload: `uv run run_with_trigger '<JSON>' [FLOW] [--json]`.

    The flow's start steps that take a `crewai_trigger_payload` parameter receive the whole
    payload (CrewAI's convention); the run record keeps it as `trigger_payload`.
    """
    if len(sys.argv) < 2:
        _usage('run_with_trigger needs a JSON payload argument, e.g. \'{"task": "..."}\'')
    try:
        payload = json.loads(sys.argv[1])
    except json.JSONDecodeError as exc:
        _usage(f"trigger payload: invalid JSON at column {exc.colno}: {exc.msg}")
    inputs, trigger = trigger_inputs(payload)
    _cli("run", "--inputs", json.dumps(inputs), "--trigger-payload", json.dumps(trigger), *sys.argv[2:])


if __name__ == "__main__":
    kickoff()
