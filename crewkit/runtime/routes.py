"""Routes of one run's subtasks: which model of its role answers each crew task first.

The flow decides a `crewkit.models.routing.Route` per subtask and opens `routed({task_id:
route})` around the crew's kickoff. `RoleLLM` asks `for_call(from_task, role)` and, when the call
belongs to a routed subtask of its role, tries the route's model first, then the rest of the
chain in order.

Which subtask a call belongs to: a call made for a crew task carries it (`from_task`), e.g. the
hierarchical manager's. A specialist's call carries the Task the delegation tool made, not the
crew task; so the table remembers the crew task whose call came last (`active`) and a call for
an unknown task belongs to it. A crew runs its tasks one after another, and the manager calls
before it delegates, so the active task is the one being worked on. The table is shared by the
threads and copied contexts CrewAI runs agents and tools in (CrewAI's own executor is a Flow
whose steps may run in copies of the context, so a context variable set by one call would not
reach the next): it is one object per `routed` block, in a context variable, like the pins of
`crewkit.runtime.pins`.

Each entry also notes which models answered calls for it (`Entry.answered`), so the run record
can show the model that really answered beside the one the route chose.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from crewkit.models.routing import Route


@dataclass
class Entry:
    route: Route
    answered: list[str] = field(default_factory=list)  # model of each successful call, in order
    skipped: list[str] = field(default_factory=list)  # models skipped while cooling down


class Table:
    def __init__(self, routes: dict[str, Route]) -> None:
        self.entries = {task_id: Entry(route) for task_id, route in routes.items()}
        self.active: str | None = None
        self.lock = threading.Lock()

    def entry(self, task: Any) -> Entry | None:
        task_id = getattr(task, "id", None)
        if task_id is not None:
            key = str(task_id)
            found = self.entries.get(key)
            if found is not None:
                if self.active != key:
                    self.active = key
                return found
        return self.entries.get(self.active) if self.active is not None else None

    def records(self, **extra: Any) -> list[dict[str, Any]]:
        """The run record's `routing` entries: each route, the models that answered its calls
        (`answered_by`, in order; a fallback shows here) and those skipped while cooling down."""
        with _lock:
            return [
                {**e.route.as_record(), **extra, "answered_by": list(e.answered), "skipped": list(e.skipped)}
                for e in self.entries.values()
            ]


_TABLE: ContextVar[Table | None] = ContextVar("crewkit_routes", default=None)


@contextmanager
def routed(routes: dict[Any, Route]) -> Iterator[Table]:
    """Route the calls made for these crew tasks ({task id: Route}) inside the block."""
    table = Table({str(k): v for k, v in routes.items()})
    token = _TABLE.set(table)
    try:
        yield table
    finally:
        _TABLE.reset(token)


def for_call(task: Any, role: str) -> Entry | None:
    """The route entry a call of `role` made for `task` follows, if any (cheap when none)."""
    table = _TABLE.get()
    if table is None:
        return None
    entry = table.entry(task)
    if entry is None or entry.route.role != role:
        return None
    return entry


def note(entry: Entry, model: str, *, skipped: bool = False) -> None:
    with _lock:
        (entry.skipped if skipped else entry.answered).append(model)


_lock = threading.Lock()
