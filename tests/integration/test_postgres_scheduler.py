"""The scheduler unit suite (tests/unit/test_scheduler.py) again, with the state in a real PostgreSQL: a
fresh schema per test (tests/fixtures/postgres.py)."""

from __future__ import annotations

from tests.fixtures.postgres import postgres_server, postgres_url, rerun_on_postgres  # noqa: F401
from tests.unit import test_scheduler as unit
from tests.unit.conftest import project  # noqa: F401 - the unit tests' project copy (subtasks in turn, no seed)
from tests.unit.test_scheduler import *  # noqa: F403 - the same tests, on PostgreSQL

# by default only the job store + schedule_fires test below (the whole suite: CREWKIT_TEST_PG_FULL=1)
rerun_on_postgres(globals(), unit, keep=set())


def test_apscheduler_fires_each_second_once_with_a_persistent_job_store(project):  # noqa: F811
    """PostgreSQL version: the job store is a table in the state database, not schedules.db."""
    from crewkit.runtime.store import StateStore
    from crewkit.scheduling import scheduler as sched

    settings = unit.project_with(project, "  - {name: fast, cron: '* * * * * *', misfire: run_all}\n")
    launcher = unit.FakeLauncher()
    sched.run(settings, seconds=2.5, launcher=launcher)
    first = [t for _, t in launcher.calls]
    assert len(first) >= 2 and len(set(first)) == len(first)
    assert not (settings.home / "schedules.db").exists()
    store = StateStore.open(settings.home)
    assert store.read(f"SELECT COUNT(*) FROM {sched.JOB_TABLE}")[0][0] >= 1
    again = unit.FakeLauncher()
    sched.run(settings, seconds=1.5, launcher=again)  # restarted: catches up the gap, repeats nothing
    second = [t for _, t in again.calls]
    assert not set(first) & set(second)
    recorded = [t for t, _, _ in unit.fires(settings, "fast")]
    assert sorted(recorded) == sorted(first + second)
