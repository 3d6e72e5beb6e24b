"""One run of the default flow (scripted models) with its state in a real PostgreSQL: the run,
its checkpoints, usage rows and audit trail land there, and no state.db file is made."""

from __future__ import annotations

import pytest

from crewkit.governance import audit
from crewkit.runtime.store import DB_NAME, StateStore
from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: F401
from tests.unit import test_default_flow as unit
from tests.unit.conftest import project  # noqa: F401 - the unit tests' project copy (subtasks in turn, no seed)

pytestmark = pytest.mark.integration


CODE = "```python\ndef is_palindrome(s):\n    return s == s[::-1]\n```"
PLAN = {
    "subtasks": [
        {"description": "Write is_palindrome(s) in Python.", "task_type": "code", "acceptance": "Has code."}
    ]
}


def test_a_default_flow_run_keeps_its_state_in_postgresql(settings, postgres_url: str) -> None:  # noqa: F811
    fakes = unit.scripted_roles(
        reasoning=[PLAN, *unit.TRUSTED, unit.PASS],
        code=[CODE],
        manager=[unit.delegate("Code Specialist", "Write is_palindrome(s) in Python."), CODE],
    )
    outcome = unit.run(settings, fakes, task="Write a palindrome checker")
    assert outcome.status == "done", outcome.record.get("error")
    store = StateStore.open(settings.home)
    assert store.backend == "postgresql"
    [run] = store.list_runs()
    assert (run.flow, run.status) == ("default", "done")
    steps = [c.step for c in store.checkpoints(run.run_id)]
    assert steps[0] == "plan" and "execute" in steps
    calls = store.calls(run.run_id)
    assert {c["role"] for c in calls} == {"code", "manager", "reasoning"}
    assert len(calls) == sum(len(f.calls) for f in fakes.values()) == 7  # every paid call, once
    assert audit.verify(store).ok
    actions = {r[0] for r in store.read("SELECT action FROM audit WHERE run_id = ?", (run.run_id,))}
    assert {"run.started", "model.call"} <= actions
    assert not (settings.home / DB_NAME).exists()
