"""What a run's steps get from the engine: `RunContext`, set on the flow before kickoff."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crewkit.models.registry import RoleMap
    from crewkit.runtime.checkpoints import CheckpointLog
    from crewkit.runtime.store import StateStore
    from crewkit.settings import Settings


@dataclass
class RunContext:
    """The run's id, config, role map and durable parts (store, checkpoints, approval gate)."""

    settings: Settings
    role_map: RoleMap
    run_id: str
    progress: Callable[[str], None] = lambda message: None
    store: StateStore | None = None
    checkpoints: CheckpointLog | None = None
    gate: Any = None  # crewkit.governance.approvals.ApprovalGate for a persisted run
    requester: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


DEFAULT_TENANT = "default"


def tenant_of(inputs: dict[str, Any] | None) -> str:
    """Whose budget a run spends: the inputs' `tenant`, else 'default'."""
    value = (inputs or {}).get("tenant")
    text = str(value).strip() if value is not None else ""
    return text or DEFAULT_TENANT
