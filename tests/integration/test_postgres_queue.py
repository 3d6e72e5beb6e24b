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
from tests.unit.test_queue import *  # noqa: F403 - the same tests, on PostgreSQL

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _on_postgres(postgres_url: str, crewkit_home: Path) -> Iterator[None]:  # noqa: F811
    yield
    assert not (crewkit_home / DB_NAME).exists()  # nothing went to SQLite
