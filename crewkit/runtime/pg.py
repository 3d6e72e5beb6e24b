"""PostgreSQL under the state store's SQLite-shaped interface (psycopg 3).

`crewkit.runtime.store` speaks one dialect: `?` placeholders, the migrations' SQLite DDL, and
`sqlite3` exceptions. `PgConnection` takes that and runs it on PostgreSQL, so the engine's
modules (budgets, audit, approvals, memory, evaluation, the operations tables) keep one copy of
their SQL:

- statements are translated once and cached: `?` -> `%s` (a literal `%` -> `%%`), the
  identifiers PostgreSQL reserves (`user`, `window`) quoted, `rowid` -> `ctid` (a tie-break
  in insertion order), `INSERT OR IGNORE` -> `ON CONFLICT DO NOTHING`; in DDL `INTEGER PRIMARY
  KEY` -> an identity column, `INTEGER` -> BIGINT, `REAL` -> DOUBLE PRECISION, `BLOB` -> BYTEA;
- a write transaction (`begin_immediate`) takes one transaction-scoped advisory lock (per
  schema: two deployments in one database do not wait for each other), so writers take
  turns exactly as SQLite's `BEGIN IMMEDIATE` makes them (a read-then-write
  such as `claim` or `decide` sees every committed write and no other writer meanwhile);
- an INSERT/UPDATE/DELETE inside a transaction runs in a savepoint of its own: a failed
  statement is undone alone and the transaction goes on, as in SQLite (PostgreSQL would
  abort the whole transaction);
- errors come back as `sqlite3` exception classes (`IntegrityError`, `OperationalError`), so
  the callers' `except sqlite3.IntegrityError` work unchanged; sums of integers come back as
  `int` (not `Decimal`), booleans are stored as 0/1.

URLs are never shown with their password: `redact_url` replaces it.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

LOCK_CLASS = 0x63726B74  # "crkt": with the schema's hash, the advisory lock every write takes
CONNECT_TIMEOUT_S = 10
VERSION_TABLE = "crewkit_schema"

_RESERVED = {"user": '"user"', "window": '"window"'}  # column names PostgreSQL will not take bare
_DDL_TYPES = {"integer": "BIGINT", "real": "DOUBLE PRECISION", "blob": "BYTEA"}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DML = ("insert", "update", "delete")


class PgIntegrityError(sqlite3.IntegrityError):
    """A constraint PostgreSQL refused (unique, foreign key, not null, check)."""


class PgOperationalError(sqlite3.OperationalError):
    """PostgreSQL unreachable, gone, out of space, a lock not granted in time, or a statement it
    refused; the message is PostgreSQL's, on one line, without the URL's password. `sqlstate`:
    PostgreSQL's error code (class 08: the connection, 53: resources, 42: the statement)."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


# -- URLs ----------------------------------------------------------------------------------------


def libpq_url(url: str) -> str:
    """The URL psycopg takes: `postgresql+psycopg://` (SQLAlchemy's spelling) -> `postgresql://`."""
    scheme, rest = url.split("://", 1)
    return scheme.split("+", 1)[0] + "://" + rest


def sqlalchemy_url(url: str) -> str:
    """The same database for SQLAlchemy (APScheduler's job store) through psycopg 3."""
    return "postgresql+psycopg://" + libpq_url(url).split("://", 1)[1]


def password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def redact_url(url: str) -> str:
    """`url` with its password (and a `password=` query parameter) replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^@/]*@", "//***@", url)
    netloc = parts.netloc
    if "@" in netloc:
        auth, host = netloc.rsplit("@", 1)
        if ":" in auth:
            auth = auth.split(":", 1)[0] + ":***"
        netloc = f"{auth}@{host}"
    query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def one_line(exc: BaseException, url: str | None = None) -> str:
    """PostgreSQL's message on one line, the URL's password removed."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    secret = password(url) if url else None
    if secret:
        text = text.replace(secret, "***")
    from crewkit.redact import redact

    return redact(text)


class DatabaseName(str):
    """A PostgreSQL store's `path`: the URL without its password, for messages. Its `parent` is
    the CREWKIT_HOME the store was opened from (as a state.db path's is), so code that reopens
    a store or finds the home from `store.path.parent` works on either database."""

    parent: Path
    name: str

    def __new__(cls, text: str, home: Path) -> DatabaseName:
        self = super().__new__(cls, text)
        self.parent = home
        self.name = text
        return self


# -- SQL translation -----------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def translate(sql: str, params: bool = True) -> str:
    """SQLite-dialect `sql` as PostgreSQL runs it (see the module's docstring). `params`: the
    statement is sent with parameters (so `%` must be doubled)."""
    out: list[str] = []
    i, n = 0, len(sql)
    ddl = sql.lstrip()[:12].lower().startswith(("create table", "alter table"))
    while i < n:
        c = sql[i]
        if c in "'\"":  # a string literal or a quoted identifier: copied as is
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            chunk = sql[i : j + 1]
            out.append(chunk.replace("%", "%%") if params else chunk)
            i = j + 1
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
        elif c == "?":
            out.append("%s")
            i += 1
        elif c == "%":
            out.append("%%" if params else "%")
            i += 1
        elif c.isalpha() or c == "_":
            m = _WORD.match(sql, i)
            assert m is not None
            word = m.group(0)
            low = word.lower()
            if low in _RESERVED:
                word = _RESERVED[low]
            elif low == "rowid":
                word = "ctid"
            elif ddl and low in _DDL_TYPES:
                word = _DDL_TYPES[low]
            out.append(word)
            i = m.end()
        else:
            out.append(c)
            i += 1
    text = "".join(out)
    if ddl:
        text = re.sub(
            r"(?i)\bBIGINT PRIMARY KEY\b", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", text
        )
    if params:  # SQLite's null-safe `a IS ?` / `a IS NOT ?`
        text = re.sub(r"(?i)\bIS\s+NOT\s+%s", "IS DISTINCT FROM %s", text)
        text = re.sub(r"(?i)\bIS\s+%s", "IS NOT DISTINCT FROM %s", text)
    head = re.match(r"(?is)\s*INSERT\s+OR\s+IGNORE\s+INTO\b", text)
    if head:
        text = "INSERT INTO" + text[head.end() :]
        text = _before_returning(text, " ON CONFLICT DO NOTHING")
    elif re.match(r"(?is)\s*INSERT\s+OR\s+REPLACE\b", text):
        raise PgOperationalError(
            "INSERT OR REPLACE has no PostgreSQL equivalent without its conflict target; write "
            "INSERT ... ON CONFLICT (columns) DO UPDATE SET ... (both databases run it)"
        )
    return text


def _before_returning(text: str, clause: str) -> str:
    m = re.search(r"(?i)\bRETURNING\b", text)
    return text[: m.start()].rstrip() + clause + " " + text[m.start() :] if m else text.rstrip() + clause


# -- connections ---------------------------------------------------------------------------------


def _numeric_loader() -> type:
    from psycopg.adapt import Loader

    class IntOrFloat(Loader):
        """numeric (SUM of integers, AVG, `1.0 * x`) as int when whole, else float, as SQLite gives."""

        def load(self, data: Any) -> int | float:
            text = bytes(data).decode()
            try:
                return int(text)
            except ValueError:
                return float(text)

    return IntOrFloat


_LIVE: weakref.WeakSet[PgConnection] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked child (a Celery prefork worker) must never talk on its parent's sockets: each
    inherited connection's socket is pointed at /dev/null, so closing it (or the garbage
    collector doing so) cannot end the parent's session."""
    conns = list(_LIVE)
    if not conns:
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for conn in conns:
            conn.orphan(devnull)
    finally:
        os.close(devnull)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Cursor:
    """The result of one statement, shaped like a sqlite3 cursor (fetchone/fetchall/rowcount)."""

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int, description: Any = None) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount
        self.description = description  # as sqlite3's: (name, None x 6) per column, None for no rows
        self.lastrowid = None  # PostgreSQL has none: use `INSERT ... RETURNING id`

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._next >= len(self._rows):
            return None
        row = self._rows[self._next]
        self._next += 1
        return row

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._next = self._rows[self._next :], len(self._rows)
        return rows

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        rows = self._rows[self._next : self._next + size]
        self._next += len(rows)
        return rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row


def _adapt(args: Sequence[Any] | None) -> tuple[Any, ...]:
    if not args:
        return ()
    return tuple(int(a) if isinstance(a, bool) else a for a in args)


def connect(url: str, lock_timeout_s: float) -> PgConnection:
    """A new connection (autocommit between transactions); PgOperationalError when unreachable."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - a dependency of crewkit; a trimmed install may lack it
        raise PgOperationalError("psycopg 3 is not installed; pip install 'psycopg[binary]'") from None

    try:
        raw = psycopg.connect(
            libpq_url(url),
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name="crewkit",
        )
    except psycopg.Error as exc:
        raise PgOperationalError(f"cannot connect to PostgreSQL: {one_line(exc, url)}") from None
    raw.adapters.register_loader("numeric", _numeric_loader())
    conn = PgConnection(raw, url)
    conn.execute(f"SET lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
    with _LIVE_LOCK:
        _LIVE.add(conn)
    return conn


class PgConnection:
    """One psycopg connection behind the subset of `sqlite3.Connection` the store uses."""

    def __init__(self, raw: Any, url: str) -> None:
        self.raw = raw
        self.url = url
        self._sp = 0
        self._trace: Any = None

    def set_trace_callback(self, fn: Any) -> None:
        """As sqlite3's: `fn(sql)` with each statement run (the SQL as the caller wrote it)."""
        self._trace = fn

    @property
    def usable(self) -> bool:
        return not (self.raw.closed or self.raw.broken)

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.usable and self.raw.info.transaction_status != TransactionStatus.IDLE

    def begin_immediate(self) -> None:
        """BEGIN and the writers' advisory lock: the next writer waits until this one ends."""
        self._run(f"BEGIN; SELECT pg_advisory_xact_lock({LOCK_CLASS}, hashtext(current_schema()))", None)

    def execute(self, sql: str, args: Sequence[Any] | None = ()) -> _Cursor:
        if self._trace is not None:
            self._trace(sql)
        head = sql.lstrip()[:6].lower()
        params = _adapt(args)
        if head in ("commit", "rollba", "begin", "savepo", "releas"):
            return self._run(sql, None)
        if head == "pragma":
            raise PgOperationalError(f"{sql.strip()}: PRAGMA is SQLite's; the state database is PostgreSQL")
        text = translate(sql, True) if params else translate(sql, False)
        if head in _DML and self.in_transaction:
            return self._guarded(text, params)
        return self._run(text, params)

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> _Cursor:
        total = 0
        for args in seq:
            total += max(self.execute(sql, args).rowcount, 0)
        return _Cursor([], total)

    def executescript(self, script: str) -> None:
        for statement in script.split(";"):
            if statement.strip():
                self.execute(statement)

    def _guarded(self, text: str, params: tuple[Any, ...]) -> _Cursor:
        """One statement in a savepoint: on failure only it is undone (SQLite's statement atomicity)."""
        self._sp += 1
        name = f"crewkit_stmt_{self._sp}"
        self._run(f"SAVEPOINT {name}", None)
        try:
            cur = self._run(text, params)
        except BaseException:
            if self.in_transaction:
                self._run(f"ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}", None)
            raise
        else:
            self._run(f"RELEASE SAVEPOINT {name}", None)
            return cur
        finally:
            self._sp -= 1

    def _run(self, text: str, params: tuple[Any, ...] | None) -> _Cursor:
        import psycopg

        try:
            with self.raw.cursor() as cur:
                cur.execute(text, params or None)
                if cur.description is None:
                    return _Cursor([], cur.rowcount)
                names = tuple((c.name, None, None, None, None, None, None) for c in cur.description)
                return _Cursor(cur.fetchall(), cur.rowcount, names)
        except psycopg.errors.IntegrityError as exc:
            raise PgIntegrityError(one_line(exc, self.url)) from None
        except psycopg.errors.LockNotAvailable as exc:
            raise PgOperationalError(
                f"database is locked ({one_line(exc, self.url)})", exc.sqlstate
            ) from None
        except psycopg.Error as exc:
            raise PgOperationalError(one_line(exc, self.url), exc.sqlstate) from None

    def close(self) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self)
        self.raw.close()

    def orphan(self, devnull: int) -> None:
        """In a forked child: forget the parent's session without a word to the server."""
        try:
            fd = self.raw.pgconn.socket
            os.dup2(devnull, fd)
        except Exception:  # noqa: BLE001,S110 - closed already: nothing to protect
            pass
