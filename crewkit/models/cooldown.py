"""Cooldowns: a model that keeps failing is skipped for a while, as LiteLLM's router does.

One registry per process (`REGISTRY`), keyed by model name (config/models.yaml), shared by every
role and run of the process. `RoleLLM.call` records each transient failure of a model (timeout,
rate limit, connection or server error; `crewkit.models.provider_errors`) and each success.
When a model has had more than `allowed_fails` failures within the last `window_s` seconds, it
cools down: `cooling(name)` says so for `cooldown_s` seconds, and `RoleLLM` skips it (the
ledger and the audit log say "cooling down"), trying the rest of the role's chain. When the
cooldown ends the model is tried again with a clean slate. If every model of a chain is cooling
down, `RoleLLM` tries them anyway, in order, rather than fail without a call.

The policy (`Cooldown`: allowed_fails, window_s, cooldown_s) is `routing.cooldown` in
config/models.yaml; the clock is injectable for tests. Thread-safe; `cooling()` is a dict read
and a comparison (it is on every model call's path).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from crewkit.models.routing import Cooldown

DEFAULT = Cooldown()


@dataclass(frozen=True, slots=True)
class State:
    """What the registry knows about one model now."""

    model: str
    failures: int  # transient failures within the window
    successes: int  # successful calls since the model was last cooled (or first seen)
    cooling_until: float | None  # clock time the cooldown ends, if cooling now
    cooldowns: int  # how many times it has cooled down in this process


class Cooldowns:
    """Per-model failure windows and cooldowns (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._fails: dict[str, deque[float]] = {}
        self._until: dict[str, float] = {}  # model -> when its cooldown ends
        self._ok: dict[str, int] = {}
        self._count: dict[str, int] = {}

    def cooling(self, model: str) -> float | None:
        """Seconds of cooldown left for `model`, or None when it may be tried."""
        until = self._until.get(model)
        if until is None:
            return None
        left = until - self.clock()
        if left > 0:
            return left
        with self._lock:  # over: a clean slate
            if self._until.get(model) == until:
                del self._until[model]
                self._fails.pop(model, None)
        return None

    def failure(self, model: str, policy: Cooldown = DEFAULT) -> bool:
        """Record a transient failure; True when it starts a cooldown."""
        now = self.clock()
        with self._lock:
            if model in self._until and self._until[model] > now:
                return False  # already cooling (it was tried because every model was)
            fails = self._fails.setdefault(model, deque())
            fails.append(now)
            while fails and fails[0] <= now - policy.window_s:
                fails.popleft()
            if len(fails) > policy.allowed_fails and policy.cooldown_s > 0:
                self._until[model] = now + policy.cooldown_s
                self._count[model] = self._count.get(model, 0) + 1
                self._ok[model] = 0
                fails.clear()
                return True
            return False

    def success(self, model: str) -> None:
        """Record a successful call (kept for `state`; a success does not forgive failures in the
        window: a model failing every other call still cools down, as in LiteLLM)."""
        self._ok[model] = self._ok.get(model, 0) + 1  # a lost increment under a race is harmless

    def state(self, model: str) -> State:
        left = self.cooling(model)
        with self._lock:
            return State(
                model,
                len(self._fails.get(model, ())),
                self._ok.get(model, 0),
                None if left is None else self.clock() + left,
                self._count.get(model, 0),
            )

    def clear(self) -> None:
        with self._lock:
            self._fails.clear()
            self._until.clear()
            self._ok.clear()
            self._count.clear()


REGISTRY = Cooldowns()


def describe(seconds_left: float, policy: Cooldown = DEFAULT) -> str:
    """ "cooling down (12 s left) after more than 3 failures in 60 s"."""
    return (
        f"cooling down ({seconds_left:.0f} s left) after more than {policy.allowed_fails} "
        f"failure(s) in {policy.window_s:g} s"
    )
