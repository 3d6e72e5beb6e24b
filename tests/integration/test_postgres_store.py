"""The state store on a real PostgreSQL (tests/fixtures/postgres.py): the store's own tests,
approvals, budgets and the audit chain run again with CREWKIT_DATABASE_URL set, plus what only
PostgreSQL has (the schema version table, an unreachable server, the password kept out of
messages, reconnecting, statement atomicity inside a transaction).

The reused tests are imported from the unit suites; the SQLite-only ones (file header, WAL,
PRAGMA, file permissions, a torn file) are left out by name.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from crewkit.errors import StateStoreError
from crewkit.runtime import store as store_mod
from crewkit.runtime.store import SCHEMA_VERSION, StateStore
from tests.fixtures.postgres import (  # noqa: F401
    PASSWORD,
    PostgresServer,
    free_port,
    postgres_server,
    postgres_url,
    sqlite3_on_postgres,
)
from tests.unit import test_store as unit_store

pytestmark = pytest.mark.integration

_SQLITE_ONLY = {
    "test_new_file_is_wal_at_current_schema_with_every_table",
    "test_open_is_cached_per_path",  # one database per URL, whatever the home
    "test_migrations_apply_in_order_and_keep_data",
    "test_a_failing_migration_leaves_the_file_at_the_old_version",
    "test_newer_schema_is_refused_and_the_file_left_alone",
    "test_garbage_file_is_refused_never_reset",
    "test_truncated_file_is_refused",
    "test_unwritable_home_is_one_line",
    "test_a_read_only_file_is_one_line_naming_the_fix",
    "test_connections_of_ended_threads_are_closed",
    "test_a_writer_killed_mid_write_leaves_a_file_that_opens_whole",
    "test_secrets_are_never_written_to_state_db",
}


@pytest.fixture(autouse=True)
def _on_postgres(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Every test here keeps its state in a fresh PostgreSQL database; the reused unit tests'
    second connections (`sqlite3.connect(store.path)`) open one to that database."""

    monkeypatch.setattr(unit_store, "sqlite3", sqlite3_on_postgres(postgres_url))


store = unit_store.store
for _name in dir(unit_store):
    if _name.startswith("test_") and _name not in _SQLITE_ONLY:
        globals()[_name] = getattr(unit_store, _name)


def _tables(s: StateStore) -> set[str]:
    rows = s.read("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
    return {r[0] for r in rows}


def _version(s: StateStore) -> int:
    return s.read("SELECT version FROM crewkit_schema")[0][0]


def test_a_new_database_is_at_the_current_schema_with_every_table(store: StateStore) -> None:  # noqa: F811
    assert store.backend == "postgresql"
    assert _version(store) == SCHEMA_VERSION
    expected = {"runs", "checkpoints", "journal", "calls", "approvals", "undo", "audit", "budget_totals",
                "memories", "eval_cases", "schedule_fires", "metric_events", "slo_alerts", "response_cache"}  # fmt: skip
    assert expected <= _tables(store)


def test_the_store_names_the_database_without_its_password(store: StateStore, postgres_url: str) -> None:  # noqa: F811
    assert PASSWORD in postgres_url
    assert PASSWORD not in str(store.path)
    assert str(store.path) == postgres_url.replace(PASSWORD, "***")


def test_migrations_apply_in_order_and_keep_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = StateStore.open(tmp_path)
    unit_store._run(s)
    s.close()
    v2 = (
        *store_mod.MIGRATIONS,
        ("ALTER TABLE runs ADD COLUMN shard INTEGER", "CREATE INDEX runs_t ON runs (shard)"),
    )
    monkeypatch.setattr(store_mod, "MIGRATIONS", v2)
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", len(v2))
    s = StateStore.open(tmp_path)
    assert _version(s) == len(v2)
    cols = s.read(
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'runs' AND column_name = 'shard'"
    )
    assert cols == [("bigint",)]
    assert s.require_run("r1").flow == "default"


def test_a_failing_migration_leaves_the_database_at_the_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    StateStore.open(tmp_path).close()
    bad = (*store_mod.MIGRATIONS, ("ALTER TABLE runs ADD COLUMN shard TEXT", "CREATE TABLE runs (x TEXT)"))
    with (
        monkeypatch.context() as m,
        pytest.raises(
            StateStoreError, match=rf"cannot migrate from schema {SCHEMA_VERSION} to {SCHEMA_VERSION + 1}"
        ),
    ):
        m.setattr(store_mod, "MIGRATIONS", bad)
        m.setattr(store_mod, "SCHEMA_VERSION", len(bad))
        StateStore.open(tmp_path)
    s = StateStore.open(tmp_path)
    assert _version(s) == SCHEMA_VERSION
    cols = s.read("SELECT column_name FROM information_schema.columns WHERE table_name = 'runs'")
    assert "shard" not in {c[0] for c in cols}  # the step was rolled back whole


def test_a_newer_schema_is_refused_naming_the_database_without_its_password(tmp_path: Path) -> None:
    s = StateStore.open(tmp_path)
    with s.write() as conn:
        conn.execute("UPDATE crewkit_schema SET version = 99")
    s.close()
    with pytest.raises(StateStoreError) as info:
        StateStore.open(tmp_path)
    msg = str(info.value)
    assert f"written by a newer crewkit (schema 99, this one reads up to {SCHEMA_VERSION})" in msg
    assert msg.startswith("postgresql://crewkit:***@127.0.0.1:")
    assert PASSWORD not in msg and "\n" not in msg


def test_an_unreachable_server_is_one_line_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"postgresql://crewkit:{PASSWORD}@127.0.0.1:{free_port()}/nowhere"
    monkeypatch.setenv("CREWKIT_DATABASE_URL", url)
    with pytest.raises(StateStoreError) as info:
        StateStore.open(tmp_path)
    msg = str(info.value)
    assert msg.startswith(
        f"postgresql://crewkit:***@127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}/nowhere: "
    )
    assert (
        "cannot connect to PostgreSQL" in msg
        and "check that the server is up and that CREWKIT_DATABASE_URL is right" in msg
    )
    assert PASSWORD not in msg and "\n" not in msg


def test_a_wrong_password_is_one_line_without_the_password(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_server: PostgresServer,  # noqa: F811
) -> None:
    monkeypatch.setenv("CREWKIT_DATABASE_URL", postgres_server.url("postgres", password="wrong-password-123"))
    with pytest.raises(StateStoreError) as info:
        StateStore.open(tmp_path)
    msg = str(info.value)
    assert "password authentication failed" in msg
    assert "wrong-password-123" not in msg and "\n" not in msg


def test_a_url_that_is_not_postgresql_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREWKIT_DATABASE_URL", "mysql://root:hunter2-secret@db/crewkit")
    with pytest.raises(StateStoreError) as info:
        StateStore.open(tmp_path)
    msg = str(info.value)
    assert msg.startswith("CREWKIT_DATABASE_URL: not a PostgreSQL URL (scheme 'mysql')")
    assert "hunter2" not in msg


def test_a_failed_statement_inside_a_transaction_is_undone_alone(store: StateStore) -> None:  # noqa: F811
    unit_store._run(store)
    with store.write() as conn:
        conn.execute("INSERT INTO budget_totals (scope, period, spent, updated) VALUES ('a', 'p', 1, 0)")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO budget_totals (scope, period, spent, updated) VALUES ('a', 'p', 2, 0)")
        conn.execute(
            "UPDATE budget_totals SET spent = spent + 10 WHERE scope = 'a'"
        )  # the transaction goes on
    assert store.read("SELECT spent FROM budget_totals") == [(11.0,)]


def test_writers_take_turns_so_no_increment_is_lost(store: StateStore) -> None:  # noqa: F811
    with store.write() as conn:
        conn.execute("INSERT INTO budget_totals (scope, period, spent, updated) VALUES ('s', 'p', 0, 0)")

    def bump() -> None:
        for _ in range(25):
            with store.write() as conn:  # read, then write what was read plus one
                spent = conn.execute("SELECT spent FROM budget_totals WHERE scope = 's'").fetchone()[0]
                conn.execute("UPDATE budget_totals SET spent = ? WHERE scope = 's'", (spent + 1,))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.read("SELECT spent FROM budget_totals WHERE scope = 's'") == [(100.0,)]


def test_sums_of_integers_are_ints_and_booleans_are_stored_as_numbers(store: StateStore) -> None:  # noqa: F811
    unit_store._run(store)
    store.add_call("r1", {"role": "fast", "input_tokens": 3, "output_tokens": 4, "cost_usd": 0.5})
    store.add_call("r1", {"role": "fast", "input_tokens": 5, "output_tokens": 6, "cost_usd": 0.25})
    total = store.read("SELECT SUM(input_tokens), SUM(cost_usd), AVG(output_tokens), COUNT(*) FROM calls")[0]
    assert total == (8, 0.75, 5, 2) and type(total[0]) is int
    store.add_checkpoint("r1", "s", None, {}, True)
    assert store.read("SELECT stable FROM checkpoints WHERE stable = ?", (True,)) == [(1,)]


def test_a_connection_the_server_dropped_while_idle_is_replaced_without_an_error(store: StateStore) -> None:  # noqa: F811
    unit_store._run(store)

    def kill_my_session() -> None:
        pid = store.read("SELECT pg_backend_pid()")[0][0]
        with store.snapshot() as conn:
            conn.execute("SELECT pg_terminate_backend(?)", (pid,))
        time.sleep(0.2)

    other = StateStore.open(Path("/nonexistent"))  # same URL: the same store
    assert other is store
    kill_my_session()
    assert store.get_run("r1") is not None  # a read: run again on a new connection
    kill_my_session()
    store.set_status("r1", "paused")  # a write: its transaction begins on a new connection
    assert store.require_run("r1").status == "paused"


def test_a_connection_lost_inside_a_transaction_fails_that_transaction_whole(store: StateStore) -> None:  # noqa: F811
    unit_store._run(store)
    with pytest.raises(StateStoreError), store.write() as conn:
        conn.execute("UPDATE runs SET status = 'paused'")
        with store.snapshot() as other:
            other.execute("SELECT pg_terminate_backend(?)", (conn.raw.info.backend_pid,))
        time.sleep(0.2)
        conn.execute("UPDATE runs SET error = 'x'")
    assert store.require_run("r1").status == "running"  # nothing of it was kept


@pytest.mark.parametrize(
    "argv", [("runs", "list"), ("approvals", "list"), ("run", "default", "--inputs", '{"task": "x"}')]
)
def test_the_cli_with_postgresql_unreachable_is_one_line_exit_2_and_starts_nothing(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...]
) -> None:
    from tests.sample_project import run_cli

    monkeypatch.setenv(
        "CREWKIT_DATABASE_URL", f"postgresql://crewkit:{PASSWORD}@127.0.0.1:{free_port()}/crewkit"
    )
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (out, err)
    assert err.startswith("error: postgresql://crewkit:***@127.0.0.1:") and err.count("\n") == 1
    assert "cannot connect to PostgreSQL" in err and "CREWKIT_DATABASE_URL" in err
    assert PASSWORD not in out + err
    assert not (project / "output").exists() or not list((project / "output").iterdir())


def test_operations_yaml_names_the_variable_holding_the_url(
    project: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    postgres_url: str,  # noqa: F811
) -> None:
    from tests.sample_project import run_cli

    ops = project / "config" / "operations.yaml"
    ops.write_text(ops.read_text().replace("url_env: CREWKIT_DATABASE_URL", "url_env: STATE_DB_URL"))
    monkeypatch.delenv("CREWKIT_DATABASE_URL")
    monkeypatch.setenv("STATE_DB_URL", postgres_url)
    try:
        code, out, err = run_cli(capsys, "runs", "list")
        assert code == 0, err
        assert StateStore.open(project).backend == "postgresql"
        from crewkit.settings import load_settings

        assert not (load_settings(project).home / "state.db").exists()
        monkeypatch.setenv("STATE_DB_URL", "sqlite:///x.db")
        code, out, err = run_cli(capsys, "runs", "list")
        assert code == 2 and err.startswith("error: STATE_DB_URL: not a PostgreSQL URL")
    finally:
        store_mod.use_url_env(store_mod.URL_ENV)


def test_a_forked_child_letting_go_of_inherited_connections_leaves_the_parents_session_alive(
    store: StateStore,  # noqa: F811
) -> None:
    """A Celery prefork child inherits the parent's connections; closing them there must not
    end the parent's sessions (libpq would say goodbye to the server on the shared socket)."""
    import gc

    unit_store._run(store)
    session = store.read("SELECT pg_backend_pid()")[0][0]
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's exit code is the assertion
        code = 1
        try:
            mine = StateStore.open(store.path.parent)  # a new store and connection of its own
            mine.add_checkpoint("r1", "child", None, {}, True)
            for _, inherited in list(store._conns):
                inherited.close()  # as a worker_process_init hook closing "its" connections would
            store.close()
            gc.collect()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.read("SELECT pg_backend_pid()")[0][0] == session  # the same session, still alive
    assert [c.step for c in store.checkpoints("r1")] == ["child"]


def test_a_cursor_names_its_columns_as_sqlite3_does(store: StateStore) -> None:  # noqa: F811
    unit_store._run(store)
    with store.write() as conn:
        cur = conn.execute("SELECT run_id, flow AS kind FROM runs")
        assert [d[0] for d in cur.description] == ["run_id", "kind"]
        assert list(cur) == [("r1", "default")]
        assert conn.execute("UPDATE runs SET error = NULL").description is None
