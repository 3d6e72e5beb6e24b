"""The memory_store unit suite (tests/unit/test_memory_store.py) again, with the state in a real PostgreSQL: a
fresh schema per test (tests/fixtures/postgres.py)."""

from __future__ import annotations

from tests.fixtures.postgres import postgres_server, postgres_url, rerun_on_postgres  # noqa: F401
from tests.unit import test_memory_store as unit
from tests.unit.conftest import project  # noqa: F401 - the unit tests' project copy (subtasks in turn, no seed)
from tests.unit.test_memory_store import *  # noqa: F403 - the same tests, on PostgreSQL

rerun_on_postgres(globals(), unit, keep=set())  # the whole suite runs with CREWKIT_TEST_PG_FULL=1 only


def test_deleted_text_is_gone_from_the_database_files(mem, crewkit_home) -> None:  # noqa: F811
    """PostgreSQL version: every version's text is gone from the tables (SQLite also zeroes the
    freed pages; PostgreSQL leaves dead rows on disk until VACUUM: docs/postgresql.md)."""
    rec = mem.add("zebra-unicorn-4711 lives at 12 Elm Street", unit.A)
    mem.update(rec.id, "zebra-unicorn-4711 moved to 9 Oak Road", unit.A)
    texts = "SELECT COUNT(*) FROM memory_versions WHERE text LIKE '%zebra-unicorn-4711%'"
    assert mem.state.read(texts) == [(2,)]
    mem.delete(rec.id, unit.A)
    assert mem.state.read(texts) == [(0,)]
    assert mem.state.backend == "postgresql" and not list(crewkit_home.glob("state.db*"))
