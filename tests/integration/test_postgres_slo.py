"""The slo unit suite (tests/unit/test_slo.py) again, with the state in a real PostgreSQL: a
fresh schema per test (tests/fixtures/postgres.py)."""

from __future__ import annotations

from tests.fixtures.postgres import postgres_server, postgres_url, rerun_on_postgres  # noqa: F401
from tests.unit import test_slo as unit
from tests.unit.conftest import project  # noqa: F401 - the unit tests' project copy (subtasks in turn, no seed)
from tests.unit.test_slo import *  # noqa: F403 - the same tests, on PostgreSQL

rerun_on_postgres(globals(), unit)  # every test of the suite, on PostgreSQL
