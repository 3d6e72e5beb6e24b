"""The runs unit suite (tests/unit/test_runs.py) again, with the state in a real PostgreSQL: a
fresh schema per test (tests/fixtures/postgres.py). A test's second connection
(`sqlite3.connect(store.path)`, an attacker's or an observer's) opens one to that schema."""

from __future__ import annotations

import pytest

from tests.fixtures.postgres import keep_only, postgres_server, postgres_url, sqlite3_on_postgres  # noqa: F401
from tests.unit import test_runs as unit
from tests.unit.conftest import project  # noqa: F401 - the unit tests' project copy (subtasks in turn, no seed)
from tests.unit.test_runs import *  # noqa: F403 - the same tests, on PostgreSQL

pytestmark = pytest.mark.integration

# pause for approval, resume without paying again; roll back to a stable checkpoint, resume;
# runs list/show/rerun (the whole suite: CREWKIT_TEST_PG_FULL=1)
keep_only(
    globals(),
    {
        "test_a_sensitive_run_pauses_with_exit_75_and_resumes_without_paying_again",
        "test_a_failing_run_rolls_back_to_its_last_stable_checkpoint_and_can_be_resumed",
        "test_runs_list_show_and_rerun",
    },
)


@pytest.fixture(autouse=True)
def _on_postgres(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    if hasattr(unit, "sqlite3"):
        monkeypatch.setattr(unit, "sqlite3", sqlite3_on_postgres(postgres_url))
