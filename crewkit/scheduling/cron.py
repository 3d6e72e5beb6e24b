"""An APScheduler trigger wrapper that always moves forward in time.

APScheduler 3.11's CronTrigger, asked for the fire after one that falls in the hour a zone
repeats when its clocks go back (Europe/London 01:30 on the last Sunday of October), answers
that same fire again: `_get_run_times` then loops forever and the scheduler thread hangs.
`Forward` asks again from one second later (doubling) until the answer is after the previous
fire. Imported only where triggers are built (APScheduler is not loaded to read the config).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger


class Forward(BaseTrigger):
    __slots__ = ("inner",)

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def timezone(self) -> Any:
        inner = self.inner
        return getattr(inner, "timezone", None) or inner.triggers[0].timezone

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        t = self.inner.get_next_fire_time(previous_fire_time, now)
        if previous_fire_time is None:
            return t
        probe, step = previous_fire_time, timedelta(seconds=1)
        while t is not None and t <= previous_fire_time:
            probe += step
            step *= 2
            t = self.inner.get_next_fire_time(None, probe)
        return t

    def __getstate__(self) -> dict[str, Any]:
        return {"version": 1, "inner": self.inner}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.inner = state["inner"]

    def __str__(self) -> str:
        return str(self.inner)

    def __repr__(self) -> str:
        return f"<Forward {self.inner!r}>"
