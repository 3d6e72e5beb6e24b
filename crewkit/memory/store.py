"""Long-term memory: scoped, versioned texts in state.db, their vectors in Qdrant, written atomically.

A memory belongs to a tenant (required, default 'default'), and optionally to a user and an agent
(`Scope`). SQLite (`memories`, `memory_versions`) is the authority: it holds every version's text;
Qdrant (`crewkit.memory.vectors`) holds one point per memory, id = the memory's UUID, with the
current version's vector and the scope (tenant, user, agent, version) as payload, never the text.
Every write (`add`, `update`, `rollback`, `delete`, `delete_user`) is one SQLite transaction with
one Qdrant call made inside it, last (an upsert, or a delete): if that call fails the transaction
rolls back, and if the commit fails after Qdrant changed, the points are put back as they were
(read before the write). Either way both sides are left as they were and the caller gets the
error; if putting back fails too, `MemoryInconsistent` says so and `repair()` (`crewkit memory
repair`) makes Qdrant agree with state.db again. A write made inside another write transaction
of the same thread commits with that outer transaction: do not call the store from one.

Every write is audited (`memory.add|update|rollback|delete|forget_user`; texts and user ids as
sha256 digests only). A delete zeroes the freed pages and empties the WAL, so the
text is gone from state.db's files, not only from its tables. Inside a run (`crewkit.runtime.undo.recording`) a write first registers its
compensation (`memory.add`, `memory.update`, ...); `crewkit rollback` then removes the versions the
run wrote and audits `memory.undone`. A deleted memory keeps no text anywhere, so undoing a run
that deleted one reports that it stays deleted.

`search` embeds the query, asks Qdrant for the nearest points filtered by scope (payload indexes),
keeps only points SQLite knows as the current version in the same scope (so a stale point can
never surface, nor another tenant's memory), and passes each text through the injection scanner:
`block` is dropped (and audited), `review` is fenced as data.

Known tenants (for `require_tenant`, which the CLI calls before anything but `add --new-tenant`):
'default', the tenants named in any profile's budgets, and every tenant state.db has seen (runs and
memories, deleted ones included).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from crewkit.errors import CrewkitError, MemoryError_
from crewkit.governance import audit
from crewkit.memory.vectors import Point, VectorIndex
from crewkit.runtime import undo
from crewkit.runtime.store import StateStore

if TYPE_CHECKING:
    import sqlite3

    from crewkit.memory.config import LongTermConfig
    from crewkit.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_TENANT = "default"
MAX_NAME_CHARS = 128
_NAME_BAD = re.compile(r"[\x00-\x1f\x7f]")


class MemoryStoreError(MemoryError_):
    """A memory operation refused as asked (bad text, unknown id, version or tenant); nothing changed."""

    http_status = 422


class MemoryNotFound(MemoryStoreError):
    """An unknown (or out-of-scope, or deleted) memory id."""

    http_status = 404


class MemoryInconsistent(CrewkitError):
    """A write failed and putting the vectors back failed too: SQLite is right, Qdrant may differ."""

    exit_code = 1


# -- values ------------------------------------------------------------------------------------------


def _name(kind: str, value: str | None, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise MemoryStoreError(f"a memory needs a {kind}; pass --{kind} NAME")
        return None
    text = str(value).strip()
    if not text:
        raise MemoryStoreError(f"the {kind} is empty; pass --{kind} NAME (or leave it out)")
    if len(text) > MAX_NAME_CHARS or _NAME_BAD.search(text):
        raise MemoryStoreError(
            f"{kind} {text[:40]!r} is not a usable name; use at most {MAX_NAME_CHARS} characters, "
            "no control characters"
        )
    return text


@dataclass(frozen=True)
class Scope:
    """Whose memory: a tenant (required), and optionally a user and an agent."""

    tenant: str = DEFAULT_TENANT
    user: str | None = None
    agent: str | None = None

    def checked(self) -> Scope:
        return Scope(
            _name("tenant", self.tenant, required=True) or DEFAULT_TENANT,
            _name("user", self.user, required=False),
            _name("agent", self.agent, required=False),
        )

    def filter(self) -> dict[str, str]:
        """The payload keys a search must match (only those given)."""
        return {k: v for k, v in (("tenant", self.tenant), ("user", self.user), ("agent", self.agent)) if v}

    def describe(self) -> str:
        return ", ".join(f"{k} '{v}'" for k, v in self.filter().items())


@dataclass(frozen=True)
class MemoryRecord:
    """A memory as it is now (its current version)."""

    id: str
    version: int
    text: str
    tenant: str
    user: str | None
    agent: str | None
    created: float
    updated: float
    changed: bool = True  # False: an update with the same text wrote nothing


@dataclass(frozen=True)
class MemoryVersion:
    memory_id: str
    version: int
    text: str
    text_hash: str
    source: str
    created: float
    run_id: str | None
    current: bool


@dataclass(frozen=True)
class Recalled:
    """A memory found by `search`: `text` is what an agent may see (fenced when flagged)."""

    id: str
    version: int
    text: str
    score: float
    tenant: str
    user: str | None
    agent: str | None
    verdict: Literal["allow", "review"]
    reasons: tuple[str, ...] = ()
    raw: str = field(default="", repr=False)  # the stored text, unfenced


# -- the store ---------------------------------------------------------------------------------------

_OPEN: dict[tuple[str, ...], MemoryStore] = {}  # shared stores, by Qdrant location
_LIVE: dict[str, MemoryStore] = {}  # the last store opened per CREWKIT_HOME (for compensators)
_OPEN_LOCK = threading.Lock()


def _index_key(cfg: LongTermConfig, home: Path) -> tuple[str, ...]:
    where = (cfg.url or "") if cfg.backend == "server" else str((home / cfg.path).resolve())
    return (cfg.backend, cfg.engine, where, cfg.collection)


def _dimensions(embedder: Any) -> int:
    dims = getattr(embedder, "dimensions", None)
    if isinstance(dims, int) and dims > 0:
        return dims
    return len(embedder.embed_query("dimensions"))


class MemoryStore:
    """Long-term memory of one CREWKIT_HOME: SQLite for texts and versions, Qdrant for vectors."""

    def __init__(
        self, settings: Settings, home: Path, state: StateStore, embedder: Any, index: VectorIndex | None
    ) -> None:
        self.settings = settings
        self.home = home
        self.cfg = settings.memory.long_term
        self.state = state
        self.embedder = embedder
        self._index = index
        self._lock = threading.RLock()
        self._key: tuple[str, ...] | None = None

    @classmethod
    def open(
        cls, settings: Settings, home: Path | None = None, *, embedder: Any = None, index: Any = None
    ) -> MemoryStore:
        """The memory store of `home` (default: the settings' CREWKIT_HOME).

        Without `index`, one store per Qdrant location per process (an embedded store can be opened
        by one client only), and the vector store is opened on first use: listing and history read
        state.db alone, even while a run holds the embedded store. The embedder defaults to the role
        map's embedding role.
        """
        home = Path(home or settings.home).resolve()
        cfg = settings.memory.long_term
        key = (str(home), *_index_key(cfg, home))
        if index is None:
            with _OPEN_LOCK:
                cached = _OPEN.get(key)
            if cached is not None:
                return cached
        state = StateStore.open(home)
        if embedder is None:
            from crewkit.models.registry import RoleMap

            embedder = RoleMap(settings).embedder()
        if index is not None and getattr(index, "dimensions", None) != _dimensions(embedder):
            raise MemoryStoreError(
                f"collection '{cfg.collection}' has {index.dimensions}-d vectors, the embedding role gives "
                f"{_dimensions(embedder)}-d; map the embedding role back to the model the collection was "
                "built with, or use another collection (long_term.collection in config/memory.yaml)"
            )
        store = cls(settings, home, state, embedder, index)
        with _OPEN_LOCK:
            if index is None:
                store._key = key
                store = _OPEN.setdefault(key, store)
            _LIVE[str(home)] = store
        return store

    @property
    def index(self) -> VectorIndex:
        """The vector store, opened on first use (its vector size checked against the embedder)."""
        if self._index is None:
            with self._lock:
                if self._index is None:
                    from crewkit.memory import vectors

                    self._index = vectors.open_index(self.cfg, self.home, _dimensions(self.embedder))
        return self._index

    def close(self) -> None:
        with _OPEN_LOCK:
            if self._key is not None and _OPEN.get(self._key) is self:
                del _OPEN[self._key]
            if _LIVE.get(str(self.home)) is self:
                del _LIVE[str(self.home)]
        index, self._index = self._index, None
        if index is not None:
            index.close()

    # -- checks --------------------------------------------------------------------------------------

    def _text(self, text: str) -> str:
        if not isinstance(text, str) or not text.strip():
            raise MemoryStoreError("the memory text is empty; give the text to remember")
        limit = self.cfg.max_chars
        if len(text) > limit:
            raise MemoryStoreError(
                f"the memory text is {len(text)} characters, above the limit of {limit}; shorten it "
                "or raise long_term.max_chars in config/memory.yaml"
            )
        return text

    def known_tenants(self) -> list[str]:
        found = {DEFAULT_TENANT}
        for profile in self.settings.profiles.profiles.values():
            found.update(profile.budgets.tenants)
        found.update(r[0] for r in self.state.read("SELECT DISTINCT tenant FROM memories"))
        found.update(
            r[0] for r in self.state.read("SELECT DISTINCT tenant FROM runs WHERE tenant IS NOT NULL")
        )
        return sorted(found)

    def require_tenant(self, tenant: str) -> None:
        """Refuse a tenant crewkit has never seen (a typo would otherwise find nothing, or write
        memories no run of the real tenant ever recalls)."""
        tenants = self.known_tenants()
        if tenant not in tenants:
            from crewkit.settings import suggest

            shown = ", ".join(tenants[:10]) + (" ..." if len(tenants) > 10 else "")
            raise MemoryStoreError(
                f"unknown tenant '{tenant}'{suggest(tenant, tenants)}; known tenants: {shown} "
                "(to start a new tenant's memory: crewkit memory add --new-tenant)"
            )

    def _row(self, memory_id: str, scope: Scope) -> tuple[Any, ...]:
        """The memory's row, if it is in `scope`; else one line naming what to do."""
        rows = self.state.read(
            "SELECT id, tenant, user, agent, current_version, last_version, deleted, created, updated "
            "FROM memories WHERE id = ?",
            (str(memory_id),),
        )
        row = rows[0] if rows else None
        if row is None or not self._in_scope(row, scope):  # another tenant's id is "unknown" too
            raise MemoryNotFound(
                f"unknown memory id '{memory_id}' for {scope.describe()}; find ids with "
                "crewkit memory list (or search) and the same --tenant/--user/--agent"
            )
        if row[6] is not None:
            raise MemoryNotFound(
                f"memory '{memory_id}' was deleted (every version removed); it cannot be read or changed"
            )
        return row

    @staticmethod
    def _in_scope(row: tuple[Any, ...], scope: Scope) -> bool:
        return (
            row[1] == scope.tenant
            and (scope.user is None or row[2] == scope.user)
            and (scope.agent is None or row[3] == scope.agent)
        )

    def _version_text(self, memory_id: str, version: int) -> tuple[str, str] | None:
        rows = self.state.read(
            "SELECT text, point_id FROM memory_versions WHERE memory_id = ? AND version = ?",
            (memory_id, int(version)),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    # -- the atomic write ----------------------------------------------------------------------------

    def _atomic(
        self,
        sql: Callable[[sqlite3.Connection], Any],
        upserts: Sequence[Any] = (),
        deletes: Sequence[str] = (),
    ) -> Any:
        """`sql(conn)` in one SQLite transaction and, inside it, last, one Qdrant call (upsert or
        delete). On any failure both sides are left as they were: SQLite rolls back, and if Qdrant
        changed (the commit failed after it), the points it held before are put back."""
        touched = [p.id for p in upserts] + list(deletes)
        before = self.index.retrieve(touched) if touched else []
        tried = False
        try:
            with self._lock, self.state.write() as conn:
                result = sql(conn)
                tried = True
                if upserts:
                    self.index.upsert(list(upserts))
                if deletes:
                    self.index.delete(list(deletes))
            return result
        except BaseException as exc:
            if tried:
                self._put_back(touched, before, exc)
            raise

    @staticmethod
    def _state(points: Sequence[Any]) -> dict[str, Any]:
        return {p.id: (p.payload.get("version"), p.payload.get("tenant")) for p in points}

    def _put_back(self, touched: list[str], before: list[Any], cause: BaseException) -> None:
        """Make the `touched` points what they were (`before`); a Qdrant call that failed changed
        nothing, and then there is nothing to do."""
        try:
            if self._state(self.index.retrieve(touched)) == self._state(before):
                return
            added = [i for i in touched if i not in {p.id for p in before}]
            if added:
                self.index.delete(added)
            if before:
                self.index.upsert(list(before))
        except Exception as exc:  # noqa: BLE001 - reported as one error naming both failures
            raise MemoryInconsistent(
                f"a memory write failed ({type(cause).__name__}: {cause}) and its vectors could not be put "
                f"back ({type(exc).__name__}: {exc}); state.db is unchanged and authoritative (search "
                "shows its texts only); run crewkit memory repair"
            ) from cause

    def _payload(
        self, memory_id: str, version: int, tenant: str, user: str | None, agent: str | None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"tenant": tenant, "memory_id": memory_id, "version": version}
        if user:
            payload["user"] = user
        if agent:
            payload["agent"] = agent
        return payload

    def _embed(self, text: str) -> list[float]:
        vector = list(self.embedder.embed_documents([text])[0])
        if len(vector) != self.index.dimensions:
            raise MemoryStoreError(
                f"the embedding role gives {len(vector)}-d vectors, collection '{self.cfg.collection}' holds "
                f"{self.index.dimensions}-d; map the embedding role back, or use another collection"
            )
        return vector

    @staticmethod
    def _run_id(run_id: str | None) -> str | None:
        if run_id is not None:
            return run_id
        recorder = undo._current.get()  # noqa: SLF001 - the run a write happens in, if any
        return recorder.run_id if recorder is not None else None

    def _audit(
        self,
        conn: sqlite3.Connection,
        action: str,
        memory_id: str,
        detail: dict[str, Any],
        actor: str,
        run_id: str | None,
    ) -> None:
        audit.append(conn, audit.Entry(action, f"memory:{memory_id}", detail, actor=actor, run_id=run_id))

    def _scope_detail(self, tenant: str, user: str | None, agent: str | None) -> dict[str, Any]:
        return {"tenant": tenant, "user": audit.digest(user) if user else None, "agent": agent}

    # -- writes ----------------------------------------------------------------------------------------

    def add(
        self,
        text: str,
        scope: Scope,
        *,
        source: str = "cli",
        run_id: str | None = None,
        actor: str = "crewkit",
    ) -> MemoryRecord:
        """Remember `text` for `scope`: a new memory at version 1."""
        scope, text = scope.checked(), self._text(text)
        vector = self._embed(text)
        memory_id, version_id, now = str(uuid.uuid4()), str(uuid.uuid4()), time.time()
        run_id = self._run_id(run_id)
        digest = audit.digest(text)
        payload = self._payload(memory_id, 1, scope.tenant, scope.user, scope.agent)
        self._register_undo("memory.add", memory_id, [1], run_id)

        def sql(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO memories (id, tenant, user, agent, current_version, last_version, deleted, "
                "created, updated) VALUES (?, ?, ?, ?, 1, 1, NULL, ?, ?)",
                (memory_id, scope.tenant, scope.user, scope.agent, now, now),
            )
            self._insert_version(conn, memory_id, 1, text, digest, version_id, source, now, run_id)
            self._audit(
                conn,
                "memory.add",
                memory_id,
                {"version": 1, "text": digest, "chars": len(text), "source": source}
                | self._scope_detail(scope.tenant, scope.user, scope.agent),
                actor,
                run_id,
            )

        self._atomic(sql, upserts=[Point(memory_id, vector, payload)])
        return MemoryRecord(memory_id, 1, text, scope.tenant, scope.user, scope.agent, now, now)

    @staticmethod
    def _insert_version(
        conn: sqlite3.Connection, memory_id: str, version: int, text: str, digest: str, version_id: str,
        source: str, now: float, run_id: str | None,
    ) -> None:  # fmt: skip
        conn.execute(
            "INSERT INTO memory_versions (memory_id, version, text, text_hash, point_id, source, created, "
            "run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (memory_id, version, text, digest, version_id, source, now, run_id),
        )

    def update(
        self, memory_id: str, text: str, scope: Scope, *, source: str = "cli", run_id: str | None = None,
        actor: str = "crewkit",
    ) -> MemoryRecord:  # fmt: skip
        """A new version of `memory_id` with `text` (the same text as now: nothing written)."""
        scope, text = scope.checked(), self._text(text)
        return self._new_version(memory_id, text, scope, "memory.update", source, run_id, actor, {})

    def rollback(
        self, memory_id: str, version: int, scope: Scope, *, run_id: str | None = None, actor: str = "crewkit"
    ) -> MemoryRecord:
        """A new version of `memory_id` whose text is that of `version` (history keeps everything)."""
        scope = scope.checked()
        row = self._row(memory_id, scope)
        if isinstance(version, bool) or not isinstance(version, int):
            raise MemoryStoreError(f"version must be a whole number, got {version!r}")
        old = self._version_text(memory_id, version)
        if old is None:
            versions = [str(v.version) for v in self.history(memory_id, scope)]
            raise MemoryStoreError(
                f"memory '{memory_id}' has no version {version}; its versions are {', '.join(versions)} "
                "(crewkit memory history ID)"
            )
        if version == row[4]:
            raise MemoryStoreError(
                f"version {version} is already the current version of memory '{memory_id}'"
            )
        return self._new_version(
            memory_id, old[0], scope, "memory.rollback", "rollback", run_id, actor, {"to_version": version}
        )

    def _new_version(
        self, memory_id: str, text: str, scope: Scope, action: str, source: str, run_id: str | None,
        actor: str, extra: dict[str, Any],
    ) -> MemoryRecord:  # fmt: skip
        row = self._row(memory_id, scope)
        tenant, user, agent, current, last, created = row[1], row[2], row[3], row[4], row[5], row[7]
        now_text = (self._version_text(memory_id, current) or ("", ""))[0]
        if now_text == text and action == "memory.update":
            return MemoryRecord(memory_id, current, text, tenant, user, agent, created, row[8], changed=False)
        vector = self._embed(text)
        version, version_id, now = last + 1, str(uuid.uuid4()), time.time()
        run_id = self._run_id(run_id)
        digest = audit.digest(text)
        self._register_undo(action, memory_id, [version], run_id, previous=current)

        def sql(conn: sqlite3.Connection) -> None:
            changed = conn.execute(
                "UPDATE memories SET current_version = ?, last_version = ?, updated = ? "
                "WHERE id = ? AND current_version = ? AND last_version = ? AND deleted IS NULL",
                (version, version, now, memory_id, current, last),
            ).rowcount
            if changed != 1:  # another writer got there first: nothing written, try again
                raise MemoryStoreError(
                    f"memory '{memory_id}' changed while this write was prepared; try again"
                )
            self._insert_version(conn, memory_id, version, text, digest, version_id, source, now, run_id)
            self._audit(
                conn,
                action,
                memory_id,
                {
                    "version": version,
                    "previous": current,
                    "text": digest,
                    "chars": len(text),
                    "source": source,
                }
                | extra
                | self._scope_detail(tenant, user, agent),
                actor,
                run_id,
            )

        payload = self._payload(memory_id, version, tenant, user, agent)
        self._atomic(sql, upserts=[Point(memory_id, vector, payload)])
        return MemoryRecord(memory_id, version, text, tenant, user, agent, created, now)

    def delete(
        self, memory_id: str, scope: Scope, *, run_id: str | None = None, actor: str = "crewkit"
    ) -> int:
        """Remove every version and the vector of `memory_id`; returns the versions removed. The
        audit log keeps the versions' digests only."""
        scope = scope.checked()
        row = self._row(memory_id, scope)
        return self._forget([row], "memory.delete", memory_id, scope, run_id, actor)

    def delete_user(self, scope: Scope, *, run_id: str | None = None, actor: str = "crewkit") -> int:
        """Remove every memory of `scope.user` in `scope.tenant` (and `scope.agent`, if given);
        returns how many memories were removed (0: the user had none)."""
        scope = scope.checked()
        if scope.user is None:
            raise MemoryStoreError("delete --user needs the user whose memories to remove")
        rows = self.state.read(
            "SELECT id, tenant, user, agent, current_version, last_version, deleted, created, updated "
            "FROM memories WHERE tenant = ? AND user = ? AND deleted IS NULL",
            (scope.tenant, scope.user),
        )
        rows = [r for r in rows if self._in_scope(r, scope)]
        if not rows:
            return 0
        self._forget(rows, "memory.forget_user", audit.digest(scope.user), scope, run_id, actor)
        return len(rows)

    def _forget(
        self,
        rows: list[tuple[Any, ...]],
        action: str,
        subject: str,
        scope: Scope,
        run_id: str | None,
        actor: str,
    ) -> int:
        ids = [r[0] for r in rows]
        marks = ",".join("?" * len(ids))
        run_id = self._run_id(run_id)
        removed: list[int] = []
        now = time.time()
        if undo.active():
            for memory_id in ids:
                self._register_undo(action, memory_id, [], run_id)

        def sql(conn: sqlite3.Connection) -> None:
            versions = conn.execute(  # read in the transaction: a version written meanwhile goes too
                f"SELECT memory_id, version, text_hash FROM memory_versions WHERE memory_id IN ({marks}) "
                "ORDER BY memory_id, version",
                tuple(ids),
            ).fetchall()
            removed.append(len(versions))
            marked = conn.execute(
                f"UPDATE memories SET deleted = ?, current_version = NULL, updated = ? "
                f"WHERE id IN ({marks}) AND deleted IS NULL",
                (now, now, *ids),
            ).rowcount
            if marked != len(ids):  # another process deleted one since it was read: nothing written
                raise MemoryStoreError("a memory to delete was deleted meanwhile by someone else; try again")
            conn.execute(f"DELETE FROM memory_versions WHERE memory_id IN ({marks})", tuple(ids))
            hashes: dict[str, list[str]] = {}
            for v in versions:
                hashes.setdefault(v[0], []).append(v[2])
            detail: dict[str, Any] = self._scope_detail(scope.tenant, scope.user, scope.agent)
            if action == "memory.delete":
                detail |= {"versions": len(versions), "texts": hashes.get(ids[0], [])}
            else:
                detail |= {"memories": len(ids), "versions": len(versions), "texts": hashes}
            audit.append(
                conn,
                audit.Entry(
                    action, f"memory:{subject}" if action == "memory.delete" else f"user:{subject}",
                    detail, actor=actor, run_id=run_id,
                ),
            )  # fmt: skip

        # PostgreSQL has no page zeroing: the rows are gone, their bytes wait for VACUUM (docs/postgresql.md)
        if getattr(self.state, "backend", "sqlite") != "sqlite":
            self._atomic(sql, deletes=ids)
            return removed[0]
        self.state.read("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left readable
        try:
            self._atomic(sql, deletes=ids)
        finally:
            self.state.read("PRAGMA secure_delete = OFF")
        self._flush_wal()
        return removed[0]

    def _flush_wal(self) -> None:
        """Copy the WAL into the database and empty it, so the deleted texts' old page images do
        not linger there (best effort: a reader in another process can keep some until it ends)."""
        try:
            self.state.read("PRAGMA wal_checkpoint(TRUNCATE)")
        except CrewkitError as exc:
            log.warning("memory: could not checkpoint state.db after a delete: %s", exc)

    # -- reads -----------------------------------------------------------------------------------------

    def get(self, memory_id: str, scope: Scope) -> MemoryRecord:
        scope = scope.checked()
        row = self._row(memory_id, scope)
        text = (self._version_text(memory_id, row[4]) or ("", ""))[0]
        return MemoryRecord(row[0], row[4], text, row[1], row[2], row[3], row[7], row[8])

    def history(self, memory_id: str, scope: Scope) -> list[MemoryVersion]:
        """Every version of `memory_id`, oldest first."""
        scope = scope.checked()
        row = self._row(memory_id, scope)
        rows = self.state.read(
            "SELECT memory_id, version, text, text_hash, source, created, run_id FROM memory_versions "
            "WHERE memory_id = ? ORDER BY version",
            (memory_id,),
        )
        return [MemoryVersion(*r, current=r[1] == row[4]) for r in rows]

    def list_memories(self, scope: Scope, limit: int | None = None) -> list[MemoryRecord]:
        """The live memories in `scope`, newest change first."""
        scope = scope.checked()
        where, args = ["m.tenant = ?", "m.deleted IS NULL"], [scope.tenant]
        for column, value in (("user", scope.user), ("agent", scope.agent)):
            if value is not None:
                where.append(f"m.{column} = ?")
                args.append(value)
        sql = (
            "SELECT m.id, m.current_version, v.text, m.tenant, m.user, m.agent, m.created, m.updated "
            "FROM memories m JOIN memory_versions v ON v.memory_id = m.id AND v.version = m.current_version "
            f"WHERE {' AND '.join(where)} ORDER BY m.updated DESC, m.id"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [MemoryRecord(*r) for r in self.state.read(sql, tuple(args))]

    def search(
        self, query: str, scope: Scope, k: int = 5, *, min_score: float | None = None
    ) -> list[Recalled]:
        """The `k` memories nearest to `query` in `scope` (never another tenant's), injection-scanned:
        blocked ones are dropped (and audited), flagged ones fenced."""
        scope = scope.checked()
        if not isinstance(query, str) or not query.strip():
            raise MemoryStoreError("the search query is empty; give the text to look for")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
            raise MemoryStoreError(f"k must be a whole number from 1 to 1000, got {k!r}")
        vector = list(self.embedder.embed_query(query))
        with self._lock:
            hits = self.index.search(vector, k, scope.filter())
        if min_score is not None:
            hits = [h for h in hits if h.score >= min_score]
        if not hits:
            return []
        by_id = {str(h.id): h for h in hits}
        marks = ",".join("?" * len(by_id))
        rows = self.state.read(
            "SELECT m.id, m.current_version, v.text, m.tenant, m.user, m.agent FROM memories m "
            "JOIN memory_versions v ON v.memory_id = m.id AND v.version = m.current_version "
            f"WHERE m.deleted IS NULL AND m.id IN ({marks})",
            tuple(by_id),
        )
        from crewkit.governance.injection import scan
        from crewkit.runtime.injection_shield import fenced_text

        found: list[Recalled] = []
        withheld: list[tuple[str, int, str, float]] = []
        for memory_id, version, text, tenant, user, agent in rows:
            if not self._in_scope((memory_id, tenant, user, agent), scope):
                continue  # a payload that disagrees with state.db never leaks
            verdict = scan(text)
            if verdict.verdict == "block":
                withheld.append((memory_id, version, text, verdict.score))
                continue
            shown = fenced_text(text, verdict.reasons) if verdict.verdict == "review" else text
            found.append(
                Recalled(
                    memory_id, version, shown, float(by_id[memory_id].score), tenant, user, agent,
                    verdict.verdict, verdict.reasons, raw=text,
                )
            )  # fmt: skip
        if withheld:
            self._audit_withheld(withheld)
        found.sort(key=lambda r: (-r.score, r.id))
        return found

    def recall(self, query: str, scope: Scope) -> list[Recalled]:
        """What a flow step gets: `search` with config/memory.yaml's `recall` k and min_score
        (nothing when long-term memory is off, or the query is empty)."""
        if not self.cfg.enabled or not query.strip():
            return []
        return self.search(query, scope, self.cfg.recall.k, min_score=self.cfg.recall.min_score)

    def learn(self, text: str, scope: Scope, *, run_id: str | None = None) -> MemoryRecord | None:
        """Store what a finished run learned (source 'run'), when `long_term.learn` is on; text over
        the limit is cut at `max_chars` rather than refused (a run's summary is not user input)."""
        if not (self.cfg.enabled and self.cfg.learn) or not text.strip():
            return None
        return self.add(text[: self.cfg.max_chars], scope, source="run", run_id=run_id)

    def _audit_withheld(self, withheld: list[tuple[str, int, str, float]]) -> None:
        """One `memory.withheld` record per blocked memory: its digest and score (the scanner's
        reasons quote the text, so they stay out of the log)."""
        log.warning("memory: %d recalled memory(ies) withheld as prompt injection", len(withheld))
        run_id = self._run_id(None)
        with self.state.write() as conn:
            for memory_id, version, text, score in withheld:
                self._audit(
                    conn,
                    "memory.withheld",
                    memory_id,
                    {"version": version, "text": audit.digest(text), "score": round(score, 3)},
                    "crewkit",
                    run_id,
                )

    def changes(self, tenant: str, memory_id: str | None = None, limit: int = 50) -> list[audit.Record]:
        """The audit records of memory writes in `tenant` (of `memory_id` only, if given), newest
        first: who changed or deleted what, when and why (deleted memories included)."""
        where, args = "action LIKE 'memory.%'", ()
        if memory_id is not None:
            where, args = f"{where} AND subject = ?", (f"memory:{memory_id}",)
        rows = self.state.read(f"SELECT {audit.COLUMNS} FROM audit WHERE {where} ORDER BY seq DESC", args)
        found: list[audit.Record] = []
        for row in rows:
            record = audit.row_record(row)  # None: a tampered record, `crewkit audit verify` names it
            if (
                record is not None
                and isinstance(record.detail, dict)
                and record.detail.get("tenant") == tenant
            ):
                found.append(record)
                if len(found) >= limit:
                    break
        return found

    def tenant_counts(self) -> dict[str, int]:
        """Live memories per tenant (tenants without any are absent), from state.db."""
        rows = self.state.read("SELECT tenant, COUNT(*) FROM memories WHERE deleted IS NULL GROUP BY tenant")
        return {str(tenant): int(count) for tenant, count in rows}

    def count(self, scope: Scope | None = None) -> int:
        """Live memories in `scope` (all, without one), from state.db."""
        if scope is None:
            return int(self.state.read("SELECT COUNT(*) FROM memories WHERE deleted IS NULL")[0][0])
        return len(self.list_memories(scope))

    # -- repair ------------------------------------------------------------------------------------------

    def repair(self) -> tuple[int, int]:
        """Make Qdrant agree with state.db after a failure that could not be reversed: every live
        memory whose point is missing or holds another version gets its current vector again, and
        points state.db does not know as a live memory go. Returns (points written, points removed)."""
        rows = self.state.read(
            "SELECT m.id, m.current_version, v.text, m.tenant, m.user, m.agent FROM memories m "
            "JOIN memory_versions v ON v.memory_id = m.id AND v.version = m.current_version "
            "WHERE m.deleted IS NULL"
        )
        live = {r[0]: r for r in rows}
        have = {str(p.id): p.payload.get("version") for p in self.index.retrieve(list(live))} if live else {}
        wrong = [r for mid, r in live.items() if have.get(mid) != r[1]]
        written = 0
        for start in range(0, len(wrong), 64):
            batch = wrong[start : start + 64]
            vectors = self.embedder.embed_documents([r[2] for r in batch])
            self.index.upsert(
                [
                    Point(r[0], list(v), self._payload(r[0], r[1], r[3], r[4], r[5]))
                    for r, v in zip(batch, vectors, strict=True)
                ]
            )
            written += len(batch)
        scroll = getattr(self.index, "scroll", None)
        if callable(scroll):  # every point state.db does not know as a live memory
            stale = [str(p.id) for batch in scroll() for p in batch if str(p.id) not in live]
        else:
            gone = [r[0] for r in self.state.read("SELECT id FROM memories WHERE deleted IS NOT NULL")]
            stale = [str(p.id) for p in self.index.retrieve(gone)] if gone else []
        if stale:
            self.index.delete(stale)
        return written, len(stale)

    # -- undo ----------------------------------------------------------------------------------------

    def _register_undo(
        self,
        action: str,
        memory_id: str,
        versions: list[int],
        run_id: str | None,
        previous: int | None = None,
    ) -> None:
        """Write-ahead: the compensation is logged before the write (a compensator finds nothing to
        undo when the write then failed)."""
        if not undo.active():
            return
        undo.record(
            action,
            {
                "memory_id": memory_id,
                "versions": versions,
                "previous": previous,
                "home": str(self.home),
                "project": str(self.settings.project_dir),
                "run_id": run_id,
            },
        )

    def undo_versions(
        self, memory_id: str, versions: list[int], previous: int | None, run_id: str | None
    ) -> str:
        """Remove `versions` of `memory_id` that a rolled-back run wrote; the memory goes back to
        `previous` (None: the run created it, and it goes). Versions written after them by someone
        else keep the memory as it is (reported, not undone)."""
        rows = self.state.read(
            "SELECT id, tenant, user, agent, current_version, last_version, deleted FROM memories WHERE id = ?",
            (memory_id,),
        )
        if not rows or rows[0][6] is not None:
            return f"memory {memory_id}: nothing to undo (it is not there, or was deleted since)"
        memory = rows[0]
        present = {
            r[0]: r for r in self.state.read(
                "SELECT version, text FROM memory_versions WHERE memory_id = ?", (memory_id,)
            )
        }  # fmt: skip
        mine = [v for v in versions if v in present]
        if not mine:
            return f"memory {memory_id}: nothing to undo (the run's write did not happen)"
        if memory[4] not in mine:
            raise MemoryStoreError(
                f"memory {memory_id} has a newer version {memory[4]} written after the run; left as it is"
            )
        keep = [v for v in present if v not in mine]
        back_to = previous if previous in present and previous not in mine else (max(keep) if keep else None)
        audit_detail = {"undone_versions": mine, "back_to": back_to, "tenant": memory[1]}
        if back_to is None:  # the run created it: remove it entirely

            def sql(conn: sqlite3.Connection) -> None:
                conn.execute("DELETE FROM memory_versions WHERE memory_id = ?", (memory_id,))
                conn.execute("DELETE FROM memories WHERE id = ?", (memory_id,))
                self._audit(conn, "memory.undone", memory_id, audit_detail, "crewkit", run_id)

            self._atomic(sql, deletes=[memory_id])
            return f"removed memory {memory_id} (the run added it)"
        vector = self._embed(present[back_to][1])

        def sql_back(conn: sqlite3.Connection) -> None:
            marks = ",".join("?" * len(mine))
            conn.execute(
                f"DELETE FROM memory_versions WHERE memory_id = ? AND version IN ({marks})",
                (memory_id, *mine),
            )
            conn.execute(
                "UPDATE memories SET current_version = ?, updated = ? WHERE id = ?",
                (back_to, time.time(), memory_id),
            )
            self._audit(conn, "memory.undone", memory_id, audit_detail, "crewkit", run_id)

        payload = self._payload(memory_id, back_to, memory[1], memory[2], memory[3])
        self._atomic(sql_back, upserts=[Point(memory_id, vector, payload)])
        undone = ", ".join(map(str, mine))
        return f"memory {memory_id} is back at version {back_to} (the run's version {undone} removed)"


@contextmanager
def opened(settings: Settings, home: Path | None = None) -> Iterator[MemoryStore]:
    """The memory store for one request or command, closed after it (the embedded vector store
    takes one client at a time), unless this process had it open already (a run keeps its own)."""
    where = Path(home or settings.home).resolve()
    key = (str(where), *_index_key(settings.memory.long_term, where))
    with _OPEN_LOCK:
        was_open = key in _OPEN
    store = MemoryStore.open(settings, home)
    try:
        yield store
    finally:
        if not was_open:
            store.close()


@contextmanager
def _store_for(payload: dict[str, Any]) -> Iterator[MemoryStore]:
    """The memory store a compensation needs: the open one of this process, else opened from the
    project named in the payload (and closed after)."""
    home = Path(payload["home"]).resolve()
    with _OPEN_LOCK:
        found = _LIVE.get(str(home))
    if found is not None:
        yield found
        return
    from crewkit.settings import load_settings

    settings = load_settings(Path(payload["project"]))
    store = MemoryStore.open(settings, home)
    try:
        yield store
    finally:
        store.close()


def _undo_write(payload: dict[str, Any]) -> str:
    with _store_for(payload) as store:
        return store.undo_versions(
            payload["memory_id"],
            list(payload.get("versions") or []),
            payload.get("previous"),
            payload.get("run_id"),
        )


undo.register("memory.add", _undo_write)
undo.register("memory.update", _undo_write)
undo.register("memory.rollback", _undo_write)


@undo.register("memory.delete")
def _undo_delete(payload: dict[str, Any]) -> str:
    """A deletion is not undone: the memory's texts are gone everywhere, by design. The audit says
    that the rollback left it deleted."""
    memory_id = payload["memory_id"]
    entry = audit.Entry(
        "memory.undone", f"memory:{memory_id}", {"op": "delete", "result": "stays deleted"},
        run_id=payload.get("run_id"),
    )  # fmt: skip
    audit.record(StateStore.open(Path(payload["home"])), entry)
    return f"memory {memory_id} stays deleted (a deleted memory keeps no text to restore)"


undo.register("memory.forget_user", _undo_delete)
