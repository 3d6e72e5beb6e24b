"""Per-role tool allowlists: an agent calling a tool its role may not use is refused before the call.

`tool_allowlist:` in config/governance.yaml maps a role-map role (`code: [run_python]`), or one
agent by its role text (`"agent:Senior Researcher": [search_*]`), to the tool names or globs its
agents may call. A role not listed may call every tool its agent has. The refusal is the tool's
result text (the agent reads it and answers without the tool) and is audited as `tool.refused`
with the call (CallJournal records every tool call's outcome).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from crewkit.errors import CrewkitError
from crewkit.runtime.hooks import Replay, Subscriber, ToolCall

AGENT_PREFIX = "agent:"


class ToolNotAllowed(CrewkitError):
    """The agent's role may not use this tool (governance.yaml `tool_allowlist`)."""


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


class ToolAllowlist(Subscriber):
    def __init__(self, allowlist: dict[str, list[str]]) -> None:
        self.by_role = {k: v for k, v in allowlist.items() if not k.startswith(AGENT_PREFIX)}
        self.by_agent = {
            _norm(k[len(AGENT_PREFIX) :]): v for k, v in allowlist.items() if k.startswith(AGENT_PREFIX)
        }

    def rule_for(self, call: ToolCall) -> tuple[str, list[str]] | None:
        """(the key that applies, its allowed tools): the agent's own entry first, then its role's."""
        agent = _norm(call.agent)
        if agent and agent in self.by_agent:
            return f"{AGENT_PREFIX}{call.agent}", self.by_agent[agent]
        if call.role and call.role in self.by_role:
            return call.role, self.by_role[call.role]
        return None

    def before_tool(self, call: ToolCall) -> Replay | None:
        rule = self.rule_for(call)
        if rule is None:
            return None
        key, allowed = rule
        if any(fnmatchcase(call.tool_name, pattern) for pattern in allowed):
            return None
        listed = ", ".join(allowed) if allowed else "no tools"
        raise ToolNotAllowed(
            f"role '{key}' may not use this tool (config/governance.yaml tool_allowlist allows {listed}); "
            "answer without it"
        )


def from_settings(settings: Any) -> ToolAllowlist | None:
    allowlist = settings.governance.tool_allowlist
    return ToolAllowlist(allowlist) if allowlist else None
