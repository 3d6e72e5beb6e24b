"""A worker SIGKILLed mid-run with the state in a real PostgreSQL: the second worker finds the run,
its checkpoints and its call journal there, and pays no call twice (tests/integration/test_queue_worker.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crewkit.runtime.store import DB_NAME
from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: F401
from tests.integration import test_queue_worker as queue_worker
from tests.integration.test_queue_worker import workers  # noqa: F401 - a fixture
from tests.redis_server import redis_server_fixture  # noqa: F401 - the fixture `redis_server`

pytestmark = pytest.mark.integration


def test_a_killed_worker_s_run_is_finished_by_another_with_the_state_in_postgresql(
    postgres_url: str,  # noqa: F811 - set before the workers start
    workers,  # noqa: F811
    project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    crewkit_home: Path,
) -> None:
    queue_worker.test_a_worker_killed_mid_run_is_replaced_and_nothing_is_paid_twice(
        workers, project, tmp_path, capsys
    )
    assert not (crewkit_home / DB_NAME).exists()
