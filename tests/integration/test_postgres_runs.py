"""The runs unit suite (tests/unit/test_runs.py) again, with the state in a real PostgreSQL: a
fresh schema per test (tests/fixtures/postgres.py). A test's second connection
(`sqlite3.connect(store.path)`, an attacker's or an observer's) opens one to that schema."""

from __future__ import annotations

from tests.fixtures.postgres import postgres_server, postgres_url, rerun_on_postgres  # noqa: F401
from tests.unit import test_runs as unit
from tests.unit.conftest import project  # noqa: F401 - the unit tests' project copy (subtasks in turn, no seed)
from tests.unit.test_runs import *  # noqa: F403 - the same tests, on PostgreSQL

# pause for approval, resume without paying again; roll back to a stable checkpoint, resume;
# runs list/show/rerun (the whole suite: CREWKIT_TEST_PG_FULL=1)
rerun_on_postgres(
    globals(),
    unit,
    keep={
        "test_a_sensitive_run_pauses_with_exit_75_and_resumes_without_paying_again",
        "test_a_failing_run_rolls_back_to_its_last_stable_checkpoint_and_can_be_resumed",
        "test_runs_list_show_and_rerun",
    },
)
