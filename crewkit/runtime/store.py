"""The state store: one SQLite file (`CREWKIT_HOME/state.db`) holding every run's durable state,
or a PostgreSQL database when `CREWKIT_DATABASE_URL` (the variable `config/operations.yaml`'s
`database.url_env` names) holds a `postgresql://` URL, for state several machines share.

Runs, their step checkpoints, the call journal (answers replayed on resume instead of paid
again), the persisted usage rows, approvals waiting for a person, and the undo log of side
effects. The file is in WAL mode so readers never block the writer, and several threads and
processes may use it at once: each thread has its own connection, every read-then-write runs in
`BEGIN IMMEDIATE`, and SQLite's busy timeout makes a second writer wait instead of failing.

The schema is versioned with `PRAGMA user_version` and an ordered list of migrations, each
applied in one transaction. A file written by a newer crewkit, a file that is not a database
and a file that fails `PRAGMA quick_check` all raise `StateStoreError` naming the file and
what to do; the store never resets or deletes a file it cannot read.

On PostgreSQL (`crewkit.runtime.pg`) the same SQL runs translated, writers take turns on one
advisory lock (as `BEGIN IMMEDIATE` makes them on SQLite), the schema version lives in table
`crewkit_schema`, and an unreachable server is a one-line StateStoreError naming the URL
without its password.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crewkit.errors import Conflict, NotFound, StateStoreError, UsageError
from crewkit.governance import audit
from crewkit.runtime.database import URL_ENV, database_url, url_env, use_url_env  # noqa: F401 - re-exported

BUSY_TIMEOUT_S = 30.0
DB_NAME = "state.db"
_HEADER = b"SQLite format 3\x00"

# Each entry is one schema version: the statements that take the file from version i to i+1.
# Append only; never edit a migration that has shipped.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE runs (
            run_id      TEXT PRIMARY KEY,
            flow        TEXT NOT NULL,
            status      TEXT NOT NULL,
            inputs      TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            requester   TEXT,
            pid         INTEGER,
            pid_start   TEXT,
            host        TEXT,
            created     REAL NOT NULL,
            updated     REAL NOT NULL,
            error       TEXT,
            record_path TEXT,
            approval_id TEXT
        )""",
        "CREATE INDEX runs_by_created ON runs (created)",
        "CREATE INDEX runs_by_status ON runs (status, created)",
        """CREATE TABLE checkpoints (
            run_id  TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            seq     INTEGER NOT NULL,
            step    TEXT NOT NULL,
            output  TEXT NOT NULL,
            state   TEXT NOT NULL,
            stable  INTEGER NOT NULL,
            created REAL NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
        """CREATE TABLE journal (
            run_id     TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            key        TEXT NOT NULL,
            kind       TEXT NOT NULL,
            checkpoint INTEGER NOT NULL,
            value      TEXT NOT NULL,
            created    REAL NOT NULL,
            PRIMARY KEY (run_id, key)
        )""",
        "CREATE INDEX journal_by_checkpoint ON journal (run_id, checkpoint)",
        """CREATE TABLE calls (
            id            INTEGER PRIMARY KEY,
            run_id        TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            role          TEXT,
            model         TEXT,
            input_tokens  INTEGER,
            output_tokens INTEGER,
            cost_usd      REAL,
            started       REAL,
            row           TEXT NOT NULL
        )""",
        "CREATE INDEX calls_by_run ON calls (run_id, id)",
        """CREATE TABLE approvals (
            id         TEXT PRIMARY KEY,
            run_id     TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            key        TEXT NOT NULL,
            step       TEXT NOT NULL,
            tier       TEXT NOT NULL,
            subject    TEXT NOT NULL,
            reason     TEXT NOT NULL,
            approvers  TEXT NOT NULL,
            status     TEXT NOT NULL,
            decided_by TEXT,
            note       TEXT,
            created    REAL NOT NULL,
            decided    REAL,
            expires_at REAL,
            on_expiry  TEXT NOT NULL,
            UNIQUE (run_id, key)
        )""",
        "CREATE INDEX approvals_by_status ON approvals (status, expires_at)",
        """CREATE TABLE undo (
            id         INTEGER PRIMARY KEY,
            run_id     TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            checkpoint INTEGER NOT NULL,
            action     TEXT NOT NULL,
            payload    TEXT NOT NULL,
            origin     TEXT,
            created    REAL NOT NULL,
            undone     REAL
        )""",
        "CREATE INDEX undo_by_run ON undo (run_id, checkpoint)",
    ),
    (  # 2: deployment profiles, the audit log, budgets
        "ALTER TABLE runs ADD COLUMN profile TEXT",
        "ALTER TABLE runs ADD COLUMN tenant TEXT",
        """CREATE TABLE audit (
            seq       INTEGER PRIMARY KEY,
            ts        REAL NOT NULL,
            actor     TEXT NOT NULL,
            action    TEXT NOT NULL,
            subject   TEXT NOT NULL,
            detail    TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash      TEXT NOT NULL,
            run_id    TEXT
        )""",
        "CREATE INDEX audit_by_ts ON audit (ts)",
        "CREATE INDEX audit_by_run ON audit (run_id, seq)",
        """CREATE TABLE audit_anchor (
            id        INTEGER PRIMARY KEY CHECK (id = 1),
            seq       INTEGER NOT NULL,
            hash      TEXT NOT NULL,
            before_ts REAL NOT NULL,
            created   REAL NOT NULL
        )""",
        """CREATE TABLE budget_totals (
            scope   TEXT NOT NULL,
            period  TEXT NOT NULL,
            spent   REAL NOT NULL,
            updated REAL NOT NULL,
            PRIMARY KEY (scope, period)
        )""",
        """CREATE TABLE budget_holds (
            reservation TEXT NOT NULL,
            scope       TEXT NOT NULL,
            period      TEXT NOT NULL,
            amount      REAL NOT NULL,
            run_id      TEXT,
            pid         INTEGER NOT NULL,
            pid_start   TEXT,
            host        TEXT,
            created     REAL NOT NULL,
            PRIMARY KEY (reservation, scope)
        )""",
        "CREATE INDEX budget_holds_by_scope ON budget_holds (scope, period)",
        """CREATE TABLE budget_alerts (
            scope     TEXT NOT NULL,
            period    TEXT NOT NULL,
            threshold REAL NOT NULL,
            fired     REAL NOT NULL,
            PRIMARY KEY (scope, period, threshold)
        )""",
        """CREATE TABLE budget_grants (
            id          INTEGER PRIMARY KEY,
            scope       TEXT NOT NULL,
            period      TEXT NOT NULL,
            amount      REAL NOT NULL,
            approval_id TEXT,
            granted_by  TEXT,
            created     REAL NOT NULL
        )""",
        "CREATE INDEX budget_grants_by_scope ON budget_grants (scope, period)",
    ),
    (  # 3: long-term memory (crewkit.memory.store): the text of every version; vectors live in Qdrant
        """CREATE TABLE memories (
            id              TEXT PRIMARY KEY,
            tenant          TEXT NOT NULL,
            user            TEXT,
            agent           TEXT,
            current_version INTEGER,
            last_version    INTEGER NOT NULL,
            deleted         REAL,
            created         REAL NOT NULL,
            updated         REAL NOT NULL
        )""",
        "CREATE INDEX memories_by_scope ON memories (tenant, user, agent)",
        """CREATE TABLE memory_versions (
            memory_id TEXT NOT NULL,
            version   INTEGER NOT NULL,
            text      TEXT NOT NULL,
            text_hash TEXT NOT NULL,
            point_id  TEXT NOT NULL UNIQUE,
            source    TEXT NOT NULL,
            created   REAL NOT NULL,
            run_id    TEXT,
            PRIMARY KEY (memory_id, version)
        )""",
    ),
    (  # 4: evaluation (crewkit.evaluation): finished comparison cases, arena battles, A/B arms
        """CREATE TABLE eval_cases (
            suite      TEXT NOT NULL,
            suite_hash TEXT NOT NULL,
            model      TEXT NOT NULL,
            model_hash TEXT NOT NULL,
            case_id    TEXT NOT NULL,
            result     TEXT NOT NULL,
            created    REAL NOT NULL,
            PRIMARY KEY (suite_hash, model_hash, case_id)
        )""",
        """CREATE TABLE arena_battles (
            id       TEXT PRIMARY KEY,
            tstamp   REAL NOT NULL,
            prompt   TEXT NOT NULL,
            model_a  TEXT NOT NULL,
            model_b  TEXT NOT NULL,
            answer_a TEXT,
            answer_b TEXT,
            winner   TEXT,
            voter    TEXT,
            voted    REAL,
            extra    TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX arena_battles_by_vote ON arena_battles (voted, tstamp)",
        """CREATE TABLE ab_assignments (
            experiment TEXT NOT NULL,
            run_id     TEXT NOT NULL,
            arm        TEXT NOT NULL,
            unit       TEXT NOT NULL,
            key_hash   TEXT NOT NULL,
            created    REAL NOT NULL,
            outcome    TEXT,
            ended      REAL,
            PRIMARY KEY (experiment, run_id)
        )""",
        "CREATE INDEX ab_assignments_by_arm ON ab_assignments (experiment, arm)",
    ),
    (  # 5: operations: scheduled fires, run metrics, SLO alerts, the response cache, queued runs
        """CREATE TABLE schedule_fires (
            job        TEXT NOT NULL,
            fire_time  REAL NOT NULL,
            run_id     TEXT,
            status     TEXT NOT NULL,
            detail     TEXT,
            created    REAL NOT NULL,
            updated    REAL NOT NULL,
            PRIMARY KEY (job, fire_time)
        )""",
        "CREATE INDEX schedule_fires_by_status ON schedule_fires (job, status)",
        """CREATE TABLE metric_events (
            id            INTEGER PRIMARY KEY,
            ts            REAL NOT NULL,
            run_id        TEXT,
            kind          TEXT NOT NULL,
            flow          TEXT,
            profile       TEXT,
            agent         TEXT,
            role          TEXT,
            model         TEXT,
            task          TEXT,
            seconds       REAL,
            input_tokens  INTEGER,
            output_tokens INTEGER,
            cost_usd      REAL,
            error         TEXT,
            outcome       TEXT,
            call_id       TEXT,
            attempt       INTEGER,
            detail        TEXT
        )""",
        "CREATE INDEX metric_events_by_ts ON metric_events (ts)",
        "CREATE INDEX metric_events_by_run ON metric_events (run_id, id)",
        """CREATE TABLE slo_alerts (
            profile       TEXT NOT NULL,
            slo           TEXT NOT NULL,
            window_start  REAL NOT NULL,
            window_end    REAL NOT NULL,
            value         REAL NOT NULL,
            target        REAL NOT NULL,
            created       REAL NOT NULL,
            PRIMARY KEY (profile, slo, window_start)
        )""",
        """CREATE TABLE response_cache (
            key       TEXT PRIMARY KEY,
            kind      TEXT NOT NULL,
            model     TEXT NOT NULL,
            tenant    TEXT NOT NULL,
            scope     TEXT NOT NULL,
            prompt    TEXT,
            vector    BLOB,
            value     TEXT NOT NULL,
            size      INTEGER NOT NULL,
            created   REAL NOT NULL,
            expires   REAL,
            hits      INTEGER NOT NULL DEFAULT 0,
            last_used REAL NOT NULL
        )""",
        "CREATE INDEX response_cache_by_scope ON response_cache (model, tenant, scope)",
        "CREATE INDEX response_cache_by_use ON response_cache (last_used)",
        "ALTER TABLE runs ADD COLUMN queue_task TEXT",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

DECISIONS = ("approved", "rejected")
_EXPIRY_ALIASES = {
    "approve": "approved",
    "approved": "approved",
    "reject": "rejected",
    "rejected": "rejected",
}
EXPIRED_BY = "policy (expired)"
OWNED = ("running", "rolling_back")  # statuses a live process holds (`claim` checks its pid)


@contextmanager
def _init_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `state.db.lock` while a process checks the file, switches it to WAL
    and migrates it: SQLite answers a WAL switch or a schema write racing another process's
    with "database is locked" without waiting, so first opens take turns. No-op where `fcntl`
    does not exist (Windows); then SQLite's own busy timeout is all there is."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # a read-only folder: nothing to set up there anyway, let SQLite say so
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# -- rows ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    run_id: str
    flow: str
    status: str
    inputs: dict[str, Any]
    fingerprint: str
    requester: str | None
    pid: int | None
    host: str | None
    created: float
    updated: float
    error: str | None
    record_path: str | None
    approval_id: str | None
    profile: str | None = None
    tenant: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    step: str
    output: Any
    state: dict[str, Any]
    stable: bool
    created: float


@dataclass(frozen=True)
class JournalEntry:
    run_id: str
    key: str
    kind: str
    checkpoint: int
    value: Any
    created: float


@dataclass(frozen=True)
class Approval:
    id: str
    run_id: str
    key: str
    step: str
    tier: str
    subject: dict[str, Any]
    reason: str
    approvers: list[str]
    status: str
    decided_by: str | None
    note: str | None
    created: float
    decided: float | None
    expires_at: float | None
    on_expiry: str = "rejected"


@dataclass(frozen=True)
class UndoEntry:
    id: int
    run_id: str
    checkpoint: int
    action: str
    payload: dict[str, Any]
    origin: str | None
    created: float
    undone: float | None


# -- helpers -------------------------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):  # pydantic models, without importing pydantic
        return obj.model_dump(mode="json")
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"state store: cannot store a {type(obj).__name__} as JSON")


def _dumps(value: Any) -> str:
    """JSON for a column, secrets redacted: nothing secret is ever written to state.db (inputs,
    states, journalled answers, approvals). MARK has no quote or backslash, so the JSON stays valid."""
    from crewkit.redact import redact

    return redact(json.dumps(value, ensure_ascii=False, default=_json_default, separators=(",", ":")))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def when(ts: float | None) -> str:
    """A stored timestamp as ISO 8601 UTC to the second, for messages."""
    if ts is None:
        return "?"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _proc_start(pid: int) -> str | None:
    """The process's start time (Linux /proc), so a recycled pid is not taken for the old process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    # fields[0] is the state (field 3); start time is field 22
    return fields[19] if len(fields) > 19 else None


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


def pid_alive(pid: int, start: str | None = None) -> bool:
    """Whether process `pid` (on this host) still runs; a zombie or a recycled pid counts as dead."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, belongs to another user
    if _proc_state(pid) in ("Z", "X"):
        return False
    if start is not None:
        now_start = _proc_start(pid)
        if now_start is not None and now_start != start:
            return False
    return True


_HOST = socket.gethostname()


# -- the store -----------------------------------------------------------------------------------


class StateStore:
    """One state.db (or PostgreSQL database). Get it with `StateStore.open(home)`; safe to share
    across threads. `backend` is "sqlite" or "postgresql"; `path` names the store in messages
    (the file, or the URL without its password)."""

    _cache: dict[Path | str, StateStore] = {}
    _cache_lock = threading.Lock()

    def __init__(self, path: Path, url: str | None = None) -> None:
        from crewkit.runtime import pg

        self.url = url
        self.backend = "postgresql" if url else "sqlite"
        self.path: Any = pg.DatabaseName(pg.redact_url(url), path.parent) if url else path
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._local = threading.local()
        # every connection with the thread it belongs to: close() closes them all, and a thread
        # that has ended leaves its connection to be closed when the next thread connects
        self._conns: list[tuple[threading.Thread, Any]] = []
        self._prepare()

    @classmethod
    def open(cls, home: Path) -> StateStore:
        """The store at `home / "state.db"` (created and migrated on first use), one per path per
        process; the PostgreSQL database of `database_url()` instead when that is set."""
        url = database_url()
        key: Path | str = url if url else (Path(home).expanduser() / DB_NAME).resolve()
        with cls._cache_lock:
            store = cls._cache.get(key)
            if store is None or store._pid != os.getpid():
                home_db = (Path(home).expanduser() / DB_NAME).resolve()
                store = cls(home_db, url)
                cls._cache[key] = store
            return store

    @classmethod
    def close_all(cls) -> None:
        """Close every store this process opened (tests; a worker shutting down)."""
        with cls._cache_lock:
            stores = list(cls._cache.values())
        for store in stores:
            store.close()

    def close(self) -> None:
        """Close every connection this store opened in this process; the next call reopens."""
        with self._lock:
            conns, self._conns = self._conns, []
            self._local = threading.local()
        if self._pid == os.getpid():
            for _, conn in conns:
                conn.close()
        with self._cache_lock:
            for key in [k for k, v in self._cache.items() if v is self]:
                del self._cache[key]

    # -- connections and transactions -------------------------------------------------------------

    def _fail(self, what: str) -> StateStoreError:
        return StateStoreError(f"{self.path}: {what}")

    def _connect(self) -> Any:
        if self.url:
            from crewkit.runtime import pg

            try:
                return pg.connect(self.url, BUSY_TIMEOUT_S)
            except sqlite3.OperationalError as exc:
                raise self._fail(
                    f"{exc}; check that the server is up and that {url_env()} is right"
                ) from None
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._fail(
                f"cannot open the state database ({exc}); check that CREWKIT_HOME is a writable folder"
            ) from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise self._unreadable(exc) from None
        return conn

    def _unreadable(self, exc: BaseException) -> StateStoreError:
        return self._fail(
            f"not a readable crewkit state database ({exc}); move it aside "
            f"(for example to {self.path.name}.broken) and crewkit starts a new one"
        )

    def _conn(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # forked: never use the parent's connections
            self._pid = os.getpid()
            self._local = threading.local()
            self._conns = []
        conn = getattr(self._local, "conn", None)
        if conn is not None and self.url and not conn.usable:  # the server went away: reconnect
            with self._lock:
                self._conns = [(t, c) for t, c in self._conns if c is not conn]
            conn.close()
            conn = self._local.conn = None
        if conn is None:
            # A thread that has ended hands its connection on: CrewAI runs calls in short-lived
            # threads, and opening a connection per call cost more than the call's writes.
            with self._lock:
                ended = [c for t, c in self._conns if not t.is_alive() and (not self.url or c.usable)]
                for old in [c for t, c in self._conns if not t.is_alive() and c not in ended]:
                    old.close()
                self._conns = [(t, c) for t, c in self._conns if t.is_alive()]
                conn = ended.pop() if ended else None
                if conn is not None:
                    self._conns.append((threading.current_thread(), conn))
            for old in ended:
                old.close()
            if conn is not None and conn.in_transaction:  # cannot happen: _write always ends its own
                conn.execute("ROLLBACK")
            if conn is None:
                conn = self._connect()
                with self._lock:
                    self._conns.append((threading.current_thread(), conn))
            self._local.conn = conn
        return conn

    def write(self) -> Any:
        """A write transaction (BEGIN IMMEDIATE) for the engine's other tables (budgets, audit):
        `with store.write() as conn:`; committed at the end of the block, rolled back on error."""
        return self._write()

    def after_commit(self, fn: Callable[[], Any]) -> None:
        """Run `fn` once this thread's open write transaction commits (now, when none is open);
        dropped if it rolls back. For what leaves the process (alert sinks, webhooks): never while
        the write lock is held, never for a change that did not happen."""
        if getattr(self._local, "depth", 0):
            self._local.pending.append(fn)
        else:
            fn()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken with BEGIN IMMEDIATE: the lock is held from the first read.

        Inside another write block of the same thread it is a savepoint of that transaction:
        its changes are undone alone if it fails, and committed with the outer block (so the
        hook path writes all of a call's records with one commit: `RunHooks(transaction=...)`)."""
        conn = self._conn()
        local = self._local
        depth = getattr(local, "depth", 0)
        if depth:
            yield from self._savepoint(conn, depth)
            return
        try:
            if self.url:
                try:
                    conn.begin_immediate()
                except sqlite3.OperationalError:
                    if not self._lost(conn):
                        raise
                    conn = self._conn()  # the server dropped it while idle: nothing was written yet
                    conn.begin_immediate()
            else:
                conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._environment(exc) from None
        local.depth, local.pending = 1, []
        try:
            yield conn
        except sqlite3.IntegrityError:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        except sqlite3.DatabaseError as exc:  # the disk, not the code: full, read-only, locked, corrupt
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._database_error(exc) from None
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise self._environment(exc) from None
            pending, local.pending = local.pending, []
            local.depth = 0
            for fn in pending:
                fn()
        finally:
            local.depth = 0
            local.pending = []

    def _savepoint(self, conn: sqlite3.Connection, depth: int) -> Iterator[sqlite3.Connection]:
        local = self._local
        name = f"crewkit_{depth}"
        conn.execute(f"SAVEPOINT {name}")
        local.depth = depth + 1
        queued = len(local.pending)
        try:
            yield conn
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            del local.pending[queued:]
            raise
        else:
            conn.execute(f"RELEASE {name}")
        finally:
            local.depth = depth

    def _database_error(self, exc: sqlite3.DatabaseError) -> StateStoreError:
        if isinstance(exc, sqlite3.OperationalError):
            return self._environment(exc)
        return self._unreadable(exc)

    def _environment(self, exc: sqlite3.OperationalError) -> StateStoreError:
        text = str(exc)
        state = str(getattr(exc, "sqlstate", None) or "")
        if self.url and state[:2] in ("42", "22", "0A"):  # the statement, not the server
            hint = "this statement does not run on PostgreSQL; report it with this message"
        elif self.url and state[:2] == "53":
            hint = "the PostgreSQL server is out of disk, memory or connections; free some and try again"
        elif self.url and not ("locked" in text or "full" in text):
            hint = f"check that the PostgreSQL server is up and that {url_env()} is right, then try again"
        elif "readonly" in text or "read-only" in text:
            hint = "make the file and its folder writable, or point CREWKIT_HOME elsewhere"
        elif "full" in text:
            hint = "free some disk space and try again"
        elif "locked" in text or "busy" in text:
            hint = f"another process held the write lock for {BUSY_TIMEOUT_S:.0f} s; try again"
        else:
            hint = "check the disk and the folder's permissions, then try again"
        return self._fail(f"{text}; {hint}")

    def read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on this thread's connection (errors as StateStoreError)."""
        return self._read(sql, args)

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            conn = self._conn()
            try:
                return conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError:
                if not self._lost(conn):
                    raise
                return self._conn().execute(sql, args).fetchall()  # once, on a new connection
        except sqlite3.DatabaseError as exc:
            raise self._database_error(exc) from None

    def _lost(self, conn: Any) -> bool:
        """PostgreSQL: whether `conn` was dropped by the server (a restart, a failover, an idle
        timeout) outside a transaction, so the statement may run again on a new connection."""
        return bool(self.url) and not conn.usable and not getattr(self._local, "depth", 0)

    def _prepare(self) -> None:
        """Check the file and bring its schema up to date (once per store per process)."""
        if self.url:
            self._prepare_pg()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            header = _HEADER
            if self.path.exists() and self.path.stat().st_size > 0:
                with self.path.open("rb") as fh:
                    header = fh.read(len(_HEADER))
        except OSError as exc:
            raise self._fail(
                f"cannot use this path ({exc.strerror or exc}); point CREWKIT_HOME at a writable folder"
            ) from None
        if header != _HEADER:
            raise self._unreadable("not an SQLite file")
        with _init_lock(self.path):  # processes opening a new file at once: one sets it up
            self._prepare_locked()

    def _prepare_locked(self) -> None:
        conn = self._conn()
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise self._newer(version)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise self._fail(
                    f"cannot switch to WAL mode (journal_mode is {mode}); check the folder's file system"
                )
            check = conn.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "malformed" not in str(exc):
                raise self._environment(exc) from None
            raise self._unreadable(exc) from None
        if [tuple(r) for r in check] != [("ok",)]:
            raise self._unreadable(f"quick_check: {check[0][0]}")
        if version < SCHEMA_VERSION:
            self._migrate(conn)

    def _prepare_pg(self) -> None:
        """The PostgreSQL schema up to date: each migration in one transaction under the writers'
        lock, so processes starting at once take turns and exactly one applies each step."""
        from crewkit.runtime import pg

        conn = self._conn()
        version = -1
        while version != SCHEMA_VERSION:
            with self._write():
                conn.execute(f"CREATE TABLE IF NOT EXISTS {pg.VERSION_TABLE} (version INTEGER NOT NULL)")
                row = conn.execute(f"SELECT version FROM {pg.VERSION_TABLE}").fetchone()
                if row is None:
                    conn.execute(f"INSERT INTO {pg.VERSION_TABLE} (version) VALUES (0)")
                version = int(row[0]) if row else 0
                if version > SCHEMA_VERSION:
                    raise self._newer(version)
                if version == SCHEMA_VERSION:
                    return
                try:
                    for statement in MIGRATIONS[version]:
                        conn.execute(statement)
                except sqlite3.OperationalError as exc:
                    raise self._fail(
                        f"cannot migrate from schema {version} to {version + 1} ({exc}); "
                        "nothing was changed; check the role's rights on the database"
                    ) from None
                conn.execute(f"UPDATE {pg.VERSION_TABLE} SET version = ?", (version + 1,))
                version += 1

    @contextmanager
    def snapshot(self) -> Iterator[Any]:
        """A read-only transaction on a connection of its own: one consistent view of the tables
        while other processes keep writing, and no write lock held (audit verification)."""
        if self.url:
            conn = self._connect()
            try:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield conn
            finally:
                conn.close()
            return
        raw: sqlite3.Connection | None = None
        try:
            raw = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            raw.execute("BEGIN")
            yield raw
        finally:
            if raw is not None:
                raw.close()

    def _newer(self, version: int) -> StateStoreError:
        return self._fail(
            f"written by a newer crewkit (schema {version}, this one reads up to {SCHEMA_VERSION}); "
            "upgrade crewkit, or point CREWKIT_HOME elsewhere"
        )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        while True:
            with self._write():
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise self._newer(version)
                if version == SCHEMA_VERSION:
                    return
                try:
                    for statement in MIGRATIONS[version]:
                        conn.execute(statement)
                except sqlite3.OperationalError as exc:
                    raise self._fail(
                        f"cannot migrate from schema {version} to {version + 1} ({exc}); "
                        "move the file aside and crewkit starts a new one"
                    ) from None
                conn.execute(f"PRAGMA user_version = {version + 1}")

    # -- runs ------------------------------------------------------------------------------------

    _RUN_COLS = (
        "run_id, flow, status, inputs, fingerprint, requester, pid, host, created, updated, "
        "error, record_path, approval_id, profile, tenant"
    )

    @staticmethod
    def _run(row: tuple[Any, ...]) -> RunRow:
        r = list(row)
        r[3] = _loads(r[3])
        return RunRow(*r)

    def create_run(
        self,
        run_id: str,
        flow: str,
        inputs: dict[str, Any],
        fingerprint: str,
        requester: str | None,
        *,
        profile: str | None = None,
        tenant: str | None = None,
    ) -> RunRow:
        """A new run, status "running", owned by this process (audited as `run.started`)."""
        now = time.time()
        pid = os.getpid()
        with self._write() as conn:
            try:
                conn.execute(
                    "INSERT INTO runs (run_id, flow, status, inputs, fingerprint, requester, pid, "
                    "pid_start, host, created, updated, profile, tenant) "
                    "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        flow,
                        _dumps(inputs),
                        fingerprint,
                        requester,
                        pid,
                        _proc_start(pid),
                        _HOST,
                        now,
                        now,
                        profile,
                        tenant,
                    ),
                )
            except sqlite3.IntegrityError:
                raise UsageError(f"run '{run_id}' already exists; pick another run id") from None
            audit.append(
                conn,
                audit.Entry(
                    "run.started",
                    f"run {run_id}",
                    {"flow": flow, "profile": profile, "tenant": tenant, "inputs": audit.digest(inputs)},
                    actor=requester or "crewkit",
                    run_id=run_id,
                ),
            )
        return RunRow(
            run_id, flow, "running", inputs, fingerprint, requester, pid, _HOST, now, now, None, None, None,
            profile, tenant,
        )  # fmt: skip

    def get_run(self, run_id: str) -> RunRow | None:
        rows = self._read(f"SELECT {self._RUN_COLS} FROM runs WHERE run_id = ?", (run_id,))
        return self._run(rows[0]) if rows else None

    def require_run(self, run_id: str) -> RunRow:
        run = self.get_run(run_id)
        if run is None:
            raise self._unknown_run(run_id)
        return run

    def _unknown_run(self, run_id: str) -> NotFound:
        from crewkit.settings import suggest  # pydantic: only when a message needs it

        ids = [r[0] for r in self._read("SELECT run_id FROM runs ORDER BY created DESC LIMIT 5000")]
        return NotFound(f"unknown run '{run_id}'{suggest(run_id, ids)}; `crewkit runs list` shows the runs")

    def list_runs(self, status: str | None = None, limit: int | None = None, offset: int = 0) -> list[RunRow]:
        """Runs newest first, optionally only those with `status`; `offset` skips the newest (with a limit)."""
        sql = f"SELECT {self._RUN_COLS} FROM runs"
        args: list[Any] = []
        if status is not None:
            sql += " WHERE status = ?"
            args.append(status)
        sql += " ORDER BY created DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
            if offset:
                sql += " OFFSET ?"
                args.append(int(offset))
        return [self._run(r) for r in self._read(sql, tuple(args))]

    def set_status(
        self,
        run_id: str,
        status: str,
        *,
        error: str | None = None,
        record_path: str | None = None,
        approval_id: str | None = None,
    ) -> None:
        """Set a run's status; `error`, `record_path`, `approval_id` are written when given.

        None leaves the field as it is; "" clears it.
        """
        sets = ["status = ?", "updated = ?"]
        args: list[Any] = [status, time.time()]
        for col, value in (("error", error), ("record_path", record_path), ("approval_id", approval_id)):
            if value is not None:
                sets.append(f"{col} = ?")
                args.append(value or None)
        with self._write() as conn:
            cur = conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE run_id = ?", (*args, run_id))
            if cur.rowcount == 0:
                raise self._unknown_run(run_id)
            detail = {"status": status, "error": error or None, "approval_id": approval_id or None}
            audit.append(
                conn,
                audit.Entry(
                    "run.status", f"run {run_id}", {k: v for k, v in detail.items() if v}, run_id=run_id
                ),
            )

    def process_gone(self, run: RunRow) -> bool:
        """A run a process holds (running, rolling back) whose process died on this host."""
        if run.status not in OWNED or run.pid is None or run.host not in (None, _HOST):
            return False
        rows = self._read("SELECT pid_start FROM runs WHERE run_id = ?", (run.run_id,))
        return not pid_alive(run.pid, rows[0][0] if rows else None)

    @staticmethod
    def _claim_refusal(run: RunRow, pid_start: Any, resumable: Collection[str]) -> str | None:
        """Why a process may not take `run` now (one line), or None when it may."""
        owned = run.status in OWNED  # a process works on it: taken over only when that process is gone
        if run.status in resumable and not owned:
            return None
        if not owned:
            return f"run {run.run_id} is {run.status}; nothing to resume"
        doing = "running" if run.status == "running" else "being rolled back"
        if run.host not in (None, _HOST):
            return f"run {run.run_id} is {doing} in process {run.pid} on host {run.host}; stop it there first"
        if run.pid is not None and pid_alive(run.pid, pid_start):
            return f"run {run.run_id} is {doing} in process {run.pid}; wait for it or stop it"
        return None

    def claim_refusal(self, run_id: str, resumable: Collection[str]) -> str | None:
        """What `claim` would refuse now (None: it would take the run), without taking it."""
        rows = self._read(f"SELECT {self._RUN_COLS}, pid_start FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise self._unknown_run(run_id)
        return self._claim_refusal(self._run(rows[0][:-1]), rows[0][-1], resumable)

    def claim(self, run_id: str, resumable: Collection[str]) -> RunRow:
        """Take a run for this process: its status is in `resumable`, or it is "running" in a dead process.

        Atomic across processes (BEGIN IMMEDIATE): of two processes claiming at once one wins and
        the other gets a UsageError naming the process that runs it.
        """
        pid = os.getpid()
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT {self._RUN_COLS}, pid_start FROM runs WHERE run_id = ?", (run_id,)
            ).fetchall()
            if not rows:
                raise self._unknown_run(run_id)
            run = self._run(rows[0][:-1])
            refusal = self._claim_refusal(run, rows[0][-1], resumable)
            if refusal:
                raise UsageError(refusal)
            now = time.time()
            conn.execute(
                "UPDATE runs SET status = 'running', pid = ?, pid_start = ?, host = ?, updated = ? "
                "WHERE run_id = ?",
                (pid, _proc_start(pid), _HOST, now, run_id),
            )
        return RunRow(**{**asdict(run), "status": "running", "pid": pid, "host": _HOST, "updated": now})

    # -- checkpoints -----------------------------------------------------------------------------

    def add_checkpoint(self, run_id: str, step: str, output: Any, state: dict[str, Any], stable: bool) -> int:
        """Record a finished step; returns its seq (1, 2, ... per run)."""
        out, st = _dumps(output), _dumps(state)
        with self._write() as conn:
            seq = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM checkpoints WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            try:
                conn.execute(
                    "INSERT INTO checkpoints (run_id, seq, step, output, state, stable, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (run_id, seq, step, out, st, int(bool(stable)), time.time()),
                )
            except sqlite3.IntegrityError:
                raise self._unknown_run(run_id) from None
        return int(seq)

    def checkpoints(self, run_id: str) -> list[Checkpoint]:
        rows = self._read(
            "SELECT seq, step, output, state, stable, created FROM checkpoints WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        return [Checkpoint(r[0], r[1], _loads(r[2]), _loads(r[3]), bool(r[4]), r[5]) for r in rows]

    # -- call journal ----------------------------------------------------------------------------

    def journal_get(self, run_id: str, key: str) -> JournalEntry | None:
        rows = self._read(
            "SELECT kind, checkpoint, value, created FROM journal WHERE run_id = ? AND key = ?", (run_id, key)
        )
        if not rows:
            return None
        kind, checkpoint, value, created = rows[0]
        return JournalEntry(run_id, key, kind, checkpoint, _loads(value), created)

    def journal_put(
        self, run_id: str, key: str, kind: str, checkpoint: int, value: Any, audit_entry: Any = None
    ) -> None:
        """Store a call's answer under `key` (replacing one already there), with its audit record."""
        with self._write() as conn:
            self._journal_put(conn, run_id, key, kind, checkpoint, value)
            if audit_entry is not None:
                audit.append(conn, audit_entry)

    def _journal_put(
        self, conn: sqlite3.Connection, run_id: str, key: str, kind: str, checkpoint: int, value: Any
    ) -> None:
        try:
            conn.execute(
                "INSERT INTO journal (run_id, key, kind, checkpoint, value, created) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, key) DO UPDATE SET kind = excluded.kind, "
                "checkpoint = excluded.checkpoint, value = excluded.value, created = excluded.created",
                (run_id, key, kind, int(checkpoint), _dumps(value), time.time()),
            )
        except sqlite3.IntegrityError:
            raise self._unknown_run(run_id) from None

    # -- calls (the persisted ledger) ------------------------------------------------------------

    def add_call(
        self,
        run_id: str,
        row: dict[str, Any],
        audit_entry: Any = None,
        journal: tuple[str, str, int, Any] | None = None,
    ) -> None:
        """One model call's usage row (ledger.CallRecord fields as a dict), in one transaction with
        its audit record (`crewkit.governance.audit.Entry`) and its journalled answer
        (`journal`: key, kind, checkpoint count, value) when given."""
        text = _dumps(row)
        with self._write() as conn:
            if journal is not None:
                self._journal_put(conn, run_id, *journal)
            if audit_entry is not None:
                audit.append(conn, audit_entry)
            try:
                conn.execute(
                    "INSERT INTO calls (run_id, role, model, input_tokens, output_tokens, cost_usd, started, row) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        row.get("role"),
                        row.get("model"),
                        row.get("input_tokens"),
                        row.get("output_tokens"),
                        row.get("cost_usd"),
                        row.get("started"),
                        text,
                    ),
                )
            except sqlite3.IntegrityError:
                raise self._unknown_run(run_id) from None

    def calls(self, run_id: str) -> list[dict[str, Any]]:
        """Every usage row of the run, across all its segments (resumes), in the order recorded."""
        return [
            _loads(r[0]) for r in self._read("SELECT row FROM calls WHERE run_id = ? ORDER BY id", (run_id,))
        ]

    # -- approvals -------------------------------------------------------------------------------

    _AP_COLS = (
        "id, run_id, key, step, tier, subject, reason, approvers, status, decided_by, note, "
        "created, decided, expires_at, on_expiry"
    )

    @staticmethod
    def _approval(row: tuple[Any, ...]) -> Approval:
        r = list(row)
        r[5] = _loads(r[5])
        r[7] = _loads(r[7])
        return Approval(*r)

    def request_approval(
        self,
        run_id: str,
        key: str,
        step: str,
        tier: str,
        subject: dict[str, Any],
        reason: str,
        approvers: list[str],
        expires_at: float,
        on_expiry: str,
    ) -> Approval:
        """A pending approval for (run_id, key); the existing one (any status) when there is one."""
        expiry = _EXPIRY_ALIASES.get(on_expiry)
        if expiry is None:
            raise ValueError(f"on_expiry must be one of {sorted(_EXPIRY_ALIASES)}, got {on_expiry!r}")
        subject_text, approvers_text = _dumps(subject), _dumps(list(approvers))
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT {self._AP_COLS} FROM approvals WHERE run_id = ? AND key = ?", (run_id, key)
            ).fetchall()
            if rows:
                return self._approval(rows[0])
            now = time.time()
            while True:
                approval_id = "ap-" + secrets.token_hex(5)
                if not conn.execute("SELECT 1 FROM approvals WHERE id = ?", (approval_id,)).fetchone():
                    break
            try:
                conn.execute(
                    f"INSERT INTO approvals ({self._AP_COLS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', NULL, NULL, ?, NULL, ?, ?)",
                    (
                        approval_id,
                        run_id,
                        key,
                        step,
                        tier,
                        subject_text,
                        reason,
                        approvers_text,
                        now,
                        expires_at,
                        expiry,
                    ),
                )
            except sqlite3.IntegrityError:
                raise self._unknown_run(run_id) from None
            audit.append(
                conn,
                audit.Entry(
                    "approval.requested",
                    f"approval {approval_id}",
                    {"step": step, "tier": tier, "reason": reason, "approvers": list(approvers), "key": key},
                    run_id=run_id,
                ),
            )
        return Approval(
            approval_id, run_id, key, step, tier, _loads(subject_text), reason, list(approvers),
            "pending", None, None, now, None, expires_at, expiry,
        )  # fmt: skip

    def get_approval(self, approval_id: str) -> Approval | None:
        rows = self._read(f"SELECT {self._AP_COLS} FROM approvals WHERE id = ?", (approval_id,))
        return self._approval(rows[0]) if rows else None

    def require_approval(self, approval_id: str) -> Approval:
        approval = self.get_approval(approval_id)
        if approval is None:
            raise self._unknown_approval(approval_id)
        return approval

    def _unknown_approval(self, approval_id: str) -> NotFound:
        from crewkit.settings import suggest

        ids = [r[0] for r in self._read("SELECT id FROM approvals ORDER BY created DESC LIMIT 5000")]
        return NotFound(
            f"unknown approval '{approval_id}'{suggest(approval_id, ids)}; "
            "`crewkit approvals list` shows the approvals"
        )

    def find_approval(self, run_id: str, key: str) -> Approval | None:
        rows = self._read(
            f"SELECT {self._AP_COLS} FROM approvals WHERE run_id = ? AND key = ?", (run_id, key)
        )
        return self._approval(rows[0]) if rows else None

    def list_approvals(self, status: str | None = None, run_id: str | None = None) -> list[Approval]:
        """Approvals newest first, optionally filtered by status and run."""
        where, args = [], []
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if run_id is not None:
            where.append("run_id = ?")
            args.append(run_id)
        sql = f"SELECT {self._AP_COLS} FROM approvals"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, rowid DESC"
        return [self._approval(r) for r in self._read(sql, tuple(args))]

    def decide(self, approval_id: str, decision: str, by: str, note: str | None) -> Approval:
        """Approve or reject a pending approval. Exactly one of several concurrent deciders wins.

        Not pending (decided already, or expired) or unknown: UsageError, nothing changed.
        """
        if decision not in DECISIONS:
            raise UsageError(f"decision must be 'approved' or 'rejected', not '{decision}'")
        now = time.time()
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE approvals SET status = ?, decided_by = ?, note = ?, decided = ? "
                "WHERE id = ? AND status = 'pending' AND (expires_at IS NULL OR expires_at > ?)",
                (decision, by, note, now, approval_id, now),
            )
            won = cur.rowcount == 1
            if won:
                run = conn.execute("SELECT run_id FROM approvals WHERE id = ?", (approval_id,)).fetchone()
                audit.append(
                    conn,
                    audit.Entry(
                        f"approval.{decision}",
                        f"approval {approval_id}",
                        {"note": note} if note else {},
                        actor=by,
                        run_id=run[0] if run else None,
                    ),
                )
        current = self.get_approval(approval_id)
        if current is None:
            raise self._unknown_approval(approval_id)
        if won:
            return current
        if current.status == "pending":  # past its expiry: it takes its default now
            expired = [a for a in self.expire_due(now) if a.id == approval_id]
            current = expired[0] if expired else self.require_approval(approval_id)
            raise Conflict(
                f"approval {approval_id} expired at {when(current.expires_at)} and was "
                f"{current.status} by {current.decided_by}"
            )
        raise Conflict(
            f"approval {approval_id} was already {current.status} by {current.decided_by} at {when(current.decided)}"
        )

    def expire_due(self, now: float | None = None) -> list[Approval]:
        """Pending approvals past `expires_at` take their `on_expiry` decision, by "policy (expired)"."""
        now = time.time() if now is None else now
        due = (
            "SELECT 1 FROM approvals WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= ?"
        )
        if not self._read(due + " LIMIT 1", (now,)):
            return []  # the common case, without taking the write lock
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT {self._AP_COLS} FROM approvals WHERE status = 'pending' "
                "AND expires_at IS NOT NULL AND expires_at <= ?",
                (now,),
            ).fetchall()
            for row in rows:
                conn.execute(
                    "UPDATE approvals SET status = on_expiry, decided_by = ?, decided = ? WHERE id = ?",
                    (EXPIRED_BY, now, row[0]),
                )
                expired = self._approval(row)
                audit.append(
                    conn,
                    audit.Entry(
                        f"approval.{expired.on_expiry}",
                        f"approval {expired.id}",
                        {"expired": True, "expires_at": expired.expires_at},
                        actor=EXPIRED_BY,
                        run_id=expired.run_id,
                    ),
                )
        out = []
        for row in rows:
            a = self._approval(row)
            out.append(
                Approval(**{**asdict(a), "status": a.on_expiry, "decided_by": EXPIRED_BY, "decided": now})
            )
        return out

    # -- undo log --------------------------------------------------------------------------------

    def add_undo(
        self, run_id: str, checkpoint: int, action: str, payload: dict[str, Any], origin: str | None = None
    ) -> int:
        """Log a side effect to compensate on rollback; `origin` names the module that registers `action`."""
        text = _dumps(payload)
        with self._write() as conn:
            try:
                row = conn.execute(
                    "INSERT INTO undo (run_id, checkpoint, action, payload, origin, created) "
                    "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    (run_id, int(checkpoint), action, text, origin, time.time()),
                ).fetchone()
            except sqlite3.IntegrityError:
                raise self._unknown_run(run_id) from None
            return int(row[0])

    def undo_entries(self, run_id: str, after: int) -> list[UndoEntry]:
        """Entries made at or after checkpoint `after` and not undone yet, newest first."""
        rows = self._read(
            "SELECT id, run_id, checkpoint, action, payload, origin, created, undone FROM undo "
            "WHERE run_id = ? AND checkpoint >= ? AND undone IS NULL ORDER BY id DESC",
            (run_id, int(after)),
        )
        return [UndoEntry(r[0], r[1], r[2], r[3], _loads(r[4]), r[5], r[6], r[7]) for r in rows]

    def mark_undone(self, entry_id: int) -> None:
        with self._write() as conn:
            conn.execute("UPDATE undo SET undone = ? WHERE id = ?", (time.time(), entry_id))

    # -- rollback --------------------------------------------------------------------------------

    def truncate(self, run_id: str, seq: int) -> None:
        """Roll the run's state back to checkpoint `seq` (0 = before the first step).

        Drops the checkpoints after `seq` and the journal rows made after it (checkpoint count
        >= seq), in one transaction, so the steps after it run again and pay again on resume.
        Usage rows (money spent) and the undo log (history) stay.
        """
        with self._write() as conn:
            if not conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                raise self._unknown_run(run_id)
            last = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM checkpoints WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            if not 0 <= seq <= last:
                raise UsageError(f"run {run_id} has checkpoints 1..{last}; cannot roll back to {seq}")
            conn.execute("DELETE FROM checkpoints WHERE run_id = ? AND seq > ?", (run_id, seq))
            conn.execute("DELETE FROM journal WHERE run_id = ? AND checkpoint >= ?", (run_id, seq))
            conn.execute("UPDATE runs SET updated = ? WHERE run_id = ?", (time.time(), run_id))
            audit.append(
                conn,
                audit.Entry(
                    "run.rolled_back", f"run {run_id}", {"to_checkpoint": seq, "from": last}, run_id=run_id
                ),
            )
