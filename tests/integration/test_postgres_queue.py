"""The queue unit suite (tests/unit/test_queue.py) again, with the state in a real PostgreSQL (a
fresh schema per test, tests/fixtures/postgres.py) and a real redis-server as the broker: the
queued row, the take-overs (this host's dead worker, another host's silent one), requeueing and
the rollback of a failed publish use the same SQL on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crewkit.runtime.store import DB_NAME
from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: F401
from tests.unit.conftest import project  # noqa: F401 - the unit tests' project copy (subtasks in turn, no seed)
from tests.unit.test_queue import (  # noqa: F401 - the same tests (those that touch the store), on PostgreSQL
    redis_server_fixture,
    test_a_publish_that_fails_after_the_check_leaves_no_run_and_no_audit,
    test_a_run_lost_more_than_max_retries_times_fails_with_a_hint,
    test_a_run_of_another_host_that_stopped_beating_is_taken_over_here,
    test_a_run_whose_worker_died_is_taken_over_and_audited,
    test_an_internal_error_after_the_claim_fails_the_run_instead_of_leaving_it_running,
    test_heartbeat_marks_the_run_alive_only_while_this_process_owns_it,
    test_queue_creates_a_queued_run_and_one_message_then_the_task_runs_it,
    test_redis_unreachable_is_one_line_naming_the_variable_and_leaves_no_run,
    test_resume_queue_hands_a_failed_run_to_a_worker_which_continues_it,
    test_resume_queue_refuses_a_finished_run_and_changes_nothing,
)

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _on_postgres(postgres_url: str, crewkit_home: Path) -> Iterator[None]:  # noqa: F811
    yield
    assert not (crewkit_home / DB_NAME).exists()  # nothing went to SQLite
