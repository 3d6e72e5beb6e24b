"""The approval gate on the hook path: every tool call of a run is checked before it executes.

`ToolGate(gate).before_tool` asks `gate.check_tool(call)` (crewkit.governance.approvals): it
returns (the call goes ahead), raises a `CrewkitError` (refused: the agent reads the refusal as
the tool's answer) or raises `RunPaused` (a person must decide; the run is checkpointed, exit 75).
"""

from __future__ import annotations

from typing import Any

from crewkit.runtime.hooks import Replay, Subscriber, ToolCall


class ToolGate(Subscriber):
    def __init__(self, gate: Any) -> None:
        self.gate = gate

    def before_tool(self, call: ToolCall) -> Replay | None:
        self.gate.check_tool(call)
        return None
