"""`crewkit schedule run` for real: APScheduler fires a job every second, each fire a real
`crewkit run FLOW --json` child; overlapping fires are skipped, the run's id and status land in
schedule_fires, runs and the audit log, and a restart repeats nothing. The flow makes no model
call (tests/sample_project.py `fixed`), so the test pays for CrewAI's import, not a model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from crewkit.runtime.store import StateStore
from tests.sample_project import add_flow

pytestmark = pytest.mark.integration


def crewkit(project, home, *argv: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CREWKIT_PROJECT": str(project), "CREWKIT_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "crewkit.cli", *argv],
        cwd=project, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_a_scheduled_job_runs_once_per_fire_without_overlap_and_restarts_cleanly(project, crewkit_home):
    add_flow(project, "fixed")
    (project / "config" / "schedules.yaml").write_text(
        "jobs:\n  - {name: every-second, cron: '* * * * * *', flow: fixed, inputs: {task: t}, misfire: skip}\n"
    )
    first = crewkit(project, crewkit_home, "schedule", "run", "--for", "2.5")
    assert first.returncode == 0, first.stderr
    store = StateStore.open(crewkit_home)
    fires = store.read("SELECT fire_time, status, run_id FROM schedule_fires ORDER BY fire_time")
    done = [f for f in fires if f[1] == "done"]
    assert len(done) >= 1 and all(f[1] in ("done", "skipped") for f in fires), fires
    assert any(f[1] == "skipped" for f in fires)  # a run takes longer than a second: no overlap
    run_ids = [f[2] for f in done]
    runs = dict(store.read("SELECT run_id, status FROM runs"))
    assert runs == dict.fromkeys(run_ids, "done")
    for run_id in run_ids:
        record = json.loads((project / "output" / f"{run_id}.json").read_text())
        assert record["flow"] == "fixed" and record["status"] == "done"
    audit = store.read("SELECT actor, action, run_id FROM audit WHERE action LIKE 'schedule.%' ORDER BY seq")
    assert {("scheduler", "schedule.finished", r) for r in run_ids} <= set(audit)
    assert sum(1 for _, action, _ in audit if action == "schedule.fired") == len(done)

    listing = crewkit(project, crewkit_home, "schedule", "list", "--format", "json")
    (job,) = json.loads(listing.stdout)
    assert job["job"] == "every-second" and len(job["next_fires"]) == 1 and job["running"] == 0

    again = crewkit(project, crewkit_home, "schedule", "run", "--once")  # missed fires: policy skip
    assert again.returncode == 0, again.stderr
    assert dict(store.read("SELECT run_id, status FROM runs")) == runs  # nothing ran twice, nothing new
    after = store.read("SELECT fire_time, status FROM schedule_fires ORDER BY fire_time")
    assert after[: len(fires)] == [(t, s) for t, s, _ in fires] and after[-1][1] == "skipped"


# --- the same guarantees with the state (and APScheduler's job store) in PostgreSQL ----------------

from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: E402, F401
from tests.unit.test_scheduler import JOB, FakeLauncher, fires, make, minute, project_with, run  # noqa: E402


def test_two_schedulers_on_one_postgresql_launch_each_fire_once(project, postgres_url):  # noqa: F811
    from crewkit.scheduling import scheduler as sched

    settings = project_with(project, JOB)
    a, b = FakeLauncher(), FakeLauncher()
    first, second = make(settings, minute(0) + 30, a), make(settings, minute(0) + 30, b)
    run(first, minute(1))
    run(second, minute(1) + 0.5)
    assert a.calls + b.calls == [("tick", minute(1))]
    assert fires(settings) == [(minute(1), "done", "run-1")]
    assert sched.job_store_url(settings).startswith("postgresql+psycopg://")
    fast = project_with(project, "  - {name: fast, cron: '* * * * * *', misfire: run_all}\n")
    launcher = FakeLauncher()
    sched.run(fast, seconds=2.2, launcher=launcher)
    times = [t for _, t in launcher.calls]
    assert len(times) >= 2 and len(set(times)) == len(times)
    audit = StateStore.open(settings.home).read("SELECT COUNT(*) FROM audit WHERE action = 'schedule.fired'")
    assert audit[0][0] == 1 + len(times)
