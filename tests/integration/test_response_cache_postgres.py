"""The response cache's store suite (tests/unit/test_cache_store.py) again, with state.db's tables
in a real PostgreSQL (a fresh schema per test, tests/fixtures/postgres.py): keys, TTL, LRU
eviction under max_entries/max_bytes, float32 vectors as BYTEA, semantic scoping, clearing."""

from __future__ import annotations

import pytest

from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: F401
from tests.unit.test_cache_store import *  # noqa: F403 - the same tests, on PostgreSQL

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _on_postgres(postgres_url: str, tmp_path) -> None:  # noqa: F811
    """CREWKIT_DATABASE_URL is set for the test: `StateStore.open` opens the PostgreSQL schema."""
    from crewkit.runtime.store import StateStore

    assert StateStore.open(tmp_path / "home").backend == "postgresql"
