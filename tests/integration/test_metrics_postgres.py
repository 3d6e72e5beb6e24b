"""The run-metrics and SLO suites (tests/unit/test_metrics.py, tests/unit/test_slo.py) again, with
state.db's tables in a real PostgreSQL (a fresh schema per test, tests/fixtures/postgres.py): the
buffered rows, the aggregates in SQL (counts, nearest-rank p99 by OFFSET, availability per call id),
the once-per-window alert (ON CONFLICT DO NOTHING on slo_alerts) and its audit record."""

from __future__ import annotations

import pytest

from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: F401
from tests.unit.test_metrics import *  # noqa: F403 - the same tests, on PostgreSQL
from tests.unit.test_slo import *  # noqa: F403

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _on_postgres(postgres_url: str, tmp_path) -> None:  # noqa: F811
    """CREWKIT_DATABASE_URL is set for the test: `StateStore.open` opens the PostgreSQL schema."""
    from crewkit.runtime.store import StateStore

    assert StateStore.open(tmp_path / "home").backend == "postgresql"
