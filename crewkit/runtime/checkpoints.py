"""A run's step checkpoints: written after every finished flow step, replayed on resume.

LangGraph-style: the run's state goes through one store keyed by the run id. After each step
the flow base (`crewkit.runtime.flow`) calls `add` with the step's name, its output (a router's
label included) and the state; on resume the same flow is kicked off again and every step that
already finished is *replayed* from its checkpoint (its output handed to CrewAI's routing, its
body not run, its model calls not made), in the order it finished. The first step without a
checkpoint runs for real, on the state of the last checkpoint.

Replaying through CrewAI's own scheduler (rather than CrewAI's `_completed_methods` resume,
which re-fires a router without its label) keeps routers and loops exact: a flow that went
plan -> execute -> verify("retry") -> execute resumes into the same branch.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from crewkit.runtime.store import Checkpoint, StateStore


class CheckpointLog:
    """The checkpoints of one run segment: what to replay, and where the next one goes."""

    def __init__(
        self, store: StateStore, run_id: str, stable_steps: set[str], previous: list[Checkpoint] | None = None
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.stable_steps = stable_steps
        previous = list(previous or [])
        self._count = len(previous)
        self._replay: dict[str, deque[Checkpoint]] = {}
        for cp in previous:
            self._replay.setdefault(cp.step, deque()).append(cp)
        self._last_state: dict[str, Any] | None = previous[-1].state if previous else None
        self.replayed: list[str] = []
        self._lock = threading.Lock()

    def count(self) -> int:
        """Checkpoints written so far (journal keys and undo entries are tagged with it)."""
        return self._count

    def replay(self, step: str) -> Checkpoint | None:
        """The next finished run of `step` to replay instead of running it, if any is left."""
        with self._lock:
            queue = self._replay.get(step)
            if not queue:
                return None
            cp = queue.popleft()
            self.replayed.append(step)
            return cp

    def take_restore(self, *, final: bool = False) -> dict[str, Any] | None:
        """The state to continue from, once: before the first step that runs for real.

        Replays left over at that point (a branch the resumed run no longer takes) are dropped.
        With `final`, only when every checkpoint was replayed (the run had finished its steps).
        """
        with self._lock:
            if self._last_state is None:
                return None
            if final and any(self._replay.values()):
                return None
            state, self._last_state = self._last_state, None
            self._replay.clear()
            return state

    def add(self, step: str, output: Any, state: dict[str, Any]) -> int:
        with self._lock:
            seq = self.store.add_checkpoint(
                self.run_id, step, output, state, stable=step in self.stable_steps
            )
            self._count = seq
            return seq
