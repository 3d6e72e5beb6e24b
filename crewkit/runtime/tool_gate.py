"""The approval gate on the hook path: every tool call of a run is checked before it executes.

`ToolGate(gate).before_tool` asks `gate.check_tool(call)` (crewkit.governance.approvals): it
returns (the call goes ahead), raises a `CrewkitError` (refused: the agent reads the refusal as
the tool's answer) or raises `RunPaused` (a person must decide; the run is checkpointed, exit 75).

CrewAI's own delegation tools (a manager handing work to a coworker, or asking one) are not
gated: they move text inside the crew and touch nothing outside it, and the work they carry is
gated where its result is released (the flow's release gate) and where its tools act.
"""

from __future__ import annotations

from typing import Any

from crewkit.runtime.hooks import Replay, Subscriber, ToolCall


class ToolGate(Subscriber):
    def __init__(self, gate: Any) -> None:
        self.gate = gate

    def before_tool(self, call: ToolCall) -> Replay | None:
        if not _is_delegation(call.tool):
            self.gate.check_tool(call)
        return None


def _is_delegation(tool: Any) -> bool:
    from crewai.tools.agent_tools.base_agent_tools import BaseAgentTool

    return isinstance(tool, BaseAgentTool)
