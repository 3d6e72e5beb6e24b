"""The vector index under long-term memory: one small interface over Qdrant's engines.

`open_index(cfg, home, dimensions)` gives a `VectorIndex` on `config/memory.yaml`'s long-term store:

- `backend: embedded, engine: edge` (the default): Qdrant Edge (`qdrant-edge-py`), Qdrant's
  in-process engine with an HNSW index, in `CREWKIT_HOME/<path>/edge/<collection>/`. Measured
  on this 2-core machine (bench/memory.py, 100k 384-d vectors, a tenant filter matching 80% of
  them): p95 2.6 ms per search, recall@10 0.996 against exact search. New points are scanned
  until 5,000 wait unindexed; the write that crosses that builds their index (seconds).
- `backend: embedded, engine: local`: qdrant-client's local mode in `CREWKIT_HOME/<path>/`,
  through langchain-qdrant's `QdrantVectorStore`. An exact scan whose payload filter runs in
  Python: p50 0.27 s per tenant-filtered search at 10k memories here (Edge: 0.9 ms), ~2 ms per
  write. For a few hundred memories, or tests.
- `backend: server`: a Qdrant server or cluster at `url` (the API key read from the environment
  variable named by `api_key_env`; `shards` and `replication` used when the collection is
  created), through `QdrantVectorStore` as well.

Every engine stores a point the way langchain-qdrant does, so the collection stays readable by
a plain `QdrantVectorStore`: the payload's `text` (if any) as `page_content`, the rest under
`metadata`. Scope filters match `metadata.tenant`, `metadata.user` and `metadata.agent`, each with
a payload index (the tenant's marked as the tenant key). Distances are cosine; point ids are
UUID strings (the memory version's id).

An embedded store is one process's at a time: a second process gets a one-line `MemoryError_`
naming the folder, not a hang or a corrupt store. `migrate(cfg, home, url, api_key)` copies the
embedded store to a server in batches (`crewkit memory migrate --to URL`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from crewkit.errors import MemoryError_

log = logging.getLogger(__name__)

SCOPE_KEYS = ("tenant", "user", "agent")
TEXT_KEY = "text"  # the payload key stored as langchain's page_content
CONTENT_KEY = "page_content"  # langchain-qdrant's QdrantVectorStore.CONTENT_KEY
METADATA_KEY = "metadata"  # langchain-qdrant's QdrantVectorStore.METADATA_KEY
LOCK_FILE = "crewkit.lock"
BATCH = 256  # points per request when copying a store
# Qdrant Edge: unindexed points (the appendable segment, searched by a plain scan) beyond which
# an upsert also builds the HNSW index for them; below it a scan costs well under a millisecond.
EDGE_INDEX_AFTER = 5000
EDGE_HNSW_EF = 64  # search beam: recall@10 0.996 at 100k in bench/memory.py (128: 0.998, twice the CPU)


@dataclass(frozen=True)
class Point:
    """One vector with its payload (scope keys tenant/user/agent, and whatever the store keeps)."""

    id: str
    vector: list[float]
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """A search result: the point's id, its cosine similarity to the query, its payload."""

    id: str
    score: float
    payload: dict[str, Any]


class VectorIndex(Protocol):
    """What long-term memory needs from a vector store."""

    dimensions: int
    where: str  # the folder or URL, for messages

    def upsert(self, points: Sequence[Point]) -> None: ...
    def delete(self, ids: Sequence[str]) -> None: ...
    def retrieve(self, ids: Sequence[str]) -> list[Point]: ...
    def search(self, vector: Sequence[float], k: int, scope: Mapping[str, str | None]) -> list[Hit]: ...
    def count(self, scope: Mapping[str, str | None] | None = None) -> int: ...
    def scroll(self, batch: int = BATCH) -> Iterator[list[Point]]: ...
    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# shared helpers


def _stored(payload: Mapping[str, Any]) -> dict[str, Any]:
    """langchain-qdrant's payload layout: {page_content: text, metadata: {...}}."""
    text = payload.get(TEXT_KEY)
    meta = {k: v for k, v in payload.items() if k != TEXT_KEY}
    return {CONTENT_KEY: text if isinstance(text, str) else "", METADATA_KEY: meta}


def _flat(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    stored = stored or {}
    out = {k: v for k, v in dict(stored.get(METADATA_KEY) or {}).items() if not k.startswith("_")}
    text = stored.get(CONTENT_KEY)
    if text:
        out[TEXT_KEY] = text
    return out


def _conditions(scope: Mapping[str, str | None] | None) -> list[tuple[str, str]]:
    """The scope as (payload key, value) pairs; None values are left out ("any")."""
    pairs = []
    for key, value in (scope or {}).items():
        if key not in SCOPE_KEYS:
            raise ValueError(f"unknown scope key {key!r}; expected one of {', '.join(SCOPE_KEYS)}")
        if value is not None:
            pairs.append((f"{METADATA_KEY}.{key}", str(value)))
    return pairs


def _check_id(point_id: str) -> str:
    try:
        return str(uuid.UUID(str(point_id)))
    except ValueError:
        raise ValueError(f"point id {point_id!r} is not a UUID string") from None


def _mismatch(collection: str, where: str, stored: int, wanted: int) -> MemoryError_:
    return MemoryError_(
        f"memory collection '{collection}' ({where}) has {stored}-d vectors, the embedding role gives "
        f"{wanted}-d; use the embedder the store was built with, or set long_term.collection in "
        "config/memory.yaml to a new collection (memories are then stored afresh)"
    )


def _check_vector(vector: Sequence[float], dims: int, where: str) -> list[float]:
    if len(vector) != dims:
        raise MemoryError_(
            f"a {len(vector)}-d vector was given to the memory store at {where}, which holds {dims}-d "
            "vectors; the embedder changed since the store was opened"
        )
    return [float(x) for x in vector]


class _FolderLock:
    """An exclusive, non-blocking lock on an embedded store's folder (released on close or exit)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._file = open(folder / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - held open
        except OSError as exc:
            raise MemoryError_(
                f"cannot use the memory folder {folder} ({exc.strerror or exc}); make it writable, "
                "or set long_term.path in config/memory.yaml"
            ) from None
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.seek(0)
            holder = self._file.read().strip()
            self._file.close()
            if holder == str(os.getpid()):
                raise MemoryError_(
                    f"the memory store {folder} is already open in this process; close the open "
                    "index (or MemoryStore) before opening it again"
                ) from None
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise MemoryError_(
                f"the memory store {folder} is in use by another process{who}; wait for that run or "
                "command to end, or use a Qdrant server (long_term.backend: server) to share one store"
            ) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(str(os.getpid()))
        self._file.flush()

    def release(self) -> None:
        if not self._file.closed:
            with contextlib.suppress(OSError):
                self._file.seek(0)
                self._file.truncate()
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()


# ---------------------------------------------------------------------------------------------
# Qdrant Edge (embedded, HNSW)


class EdgeIndex:
    """A Qdrant Edge shard in `folder/edge/<collection>/`."""

    def __init__(
        self, folder: Path, collection: str, dimensions: int | None, *, index_after: int = EDGE_INDEX_AFTER
    ) -> None:
        import qdrant_edge as qe

        self._qe = qe
        self.index_after = index_after
        self.collection = collection
        self.shard_dir = folder / "edge" / collection
        self.where = str(self.shard_dir)
        self._lock = _FolderLock(folder)
        try:
            config_file = self.shard_dir / "edge_config.json"
            if config_file.exists():
                stored = int(json.loads(config_file.read_text(encoding="utf-8"))["vectors"][""]["size"])
                if dimensions is not None and stored != dimensions:
                    raise _mismatch(collection, self.where, stored, dimensions)
                self.dimensions = stored
                self._shard = qe.EdgeShard.load(str(self.shard_dir))
            elif dimensions is None:
                raise MemoryError_(f"no memory collection '{collection}' at {self.where}")
            else:
                self.dimensions = dimensions
                self._shard = self._create(qe, dimensions)
        except BaseException:
            self._lock.release()
            raise

    def _create(self, qe: Any, dimensions: int) -> Any:
        # Qdrant's optimizer indexes a segment once it holds more than indexing_threshold KB of
        # vectors: set so that it is `index_after` points
        threshold_kb = max(1, -(-self.index_after * dimensions * 4 // 1024))
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dimensions, distance=qe.Distance.Cosine),
            hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10000, payload_m=16),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=threshold_kb),
        )
        shard = qe.EdgeShard.create(str(self.shard_dir), config)
        for key in SCOPE_KEYS:
            params = qe.KeywordIndexParams(is_tenant=True) if key == "tenant" else qe.KeywordIndexParams()
            shard.update(qe.UpdateOperation.create_field_index(f"{METADATA_KEY}.{key}", params))
        shard.flush()
        return shard

    def _filter(self, scope: Mapping[str, str | None] | None) -> Any:
        qe = self._qe
        pairs = _conditions(scope)
        if not pairs:
            return None
        return qe.Filter(must=[qe.FieldCondition(key=k, match=qe.MatchValue(value=v)) for k, v in pairs])

    def upsert(self, points: Sequence[Point]) -> None:
        if not points:
            return
        qe = self._qe
        batch = [
            qe.Point(
                _check_id(p.id), _check_vector(p.vector, self.dimensions, self.where), _stored(p.payload)
            )
            for p in points
        ]
        self._shard.update(qe.UpdateOperation.upsert_points(batch))
        self.index_if_due()

    def index_if_due(self) -> bool:
        """Build the HNSW index for new points once `index_after` of them wait unindexed (a write
        that crosses it takes a few seconds longer; searches stay fast either way)."""
        info = self._shard.info()
        if info.points_count - info.indexed_vectors_count < self.index_after:
            return False
        return bool(self._shard.optimize())

    def optimize(self) -> bool:
        """Index everything now (what the benchmark calls after a bulk load)."""
        return bool(self._shard.optimize())

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._shard.update(self._qe.UpdateOperation.delete_points([_check_id(i) for i in ids]))

    def retrieve(self, ids: Sequence[str]) -> list[Point]:
        if not ids:
            return []
        records = self._shard.retrieve(
            point_ids=[_check_id(i) for i in ids], with_payload=True, with_vector=True
        )
        return [Point(str(r.id), list(r.vector), _flat(r.payload)) for r in records]

    def search(self, vector: Sequence[float], k: int, scope: Mapping[str, str | None]) -> list[Hit]:
        qe = self._qe
        request = qe.QueryRequest(
            query=qe.Query.Nearest(_check_vector(vector, self.dimensions, self.where)),
            filter=self._filter(scope),
            limit=k,
            with_payload=True,
            params=qe.SearchParams(hnsw_ef=max(EDGE_HNSW_EF, k)),
        )
        return [Hit(str(p.id), float(p.score), _flat(p.payload)) for p in self._shard.query(request)]

    def count(self, scope: Mapping[str, str | None] | None = None) -> int:
        return int(self._shard.count(self._qe.CountRequest(exact=True, filter=self._filter(scope))))

    def scroll(self, batch: int = BATCH) -> Iterator[list[Point]]:
        offset = None
        while True:
            request = self._qe.ScrollRequest(offset=offset, limit=batch, with_payload=True, with_vector=True)
            records, offset = self._shard.scroll(request)
            if records:
                yield [Point(str(r.id), list(r.vector), _flat(r.payload)) for r in records]
            if offset is None:
                return

    def close(self) -> None:
        if getattr(self, "_shard", None) is not None:
            try:
                self._shard.flush()
                self._shard.close()
            finally:
                self._shard = None
                self._lock.release()

    def __enter__(self) -> EdgeIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# qdrant-client: local mode (embedded) or a server, through langchain-qdrant


@contextlib.contextmanager
def _server_errors(where: str) -> Iterator[None]:
    """A server's failures as one line (local mode has no such failures to translate)."""
    try:
        yield
    except MemoryError_:
        raise
    except Exception as exc:
        status = getattr(exc, "status_code", None)
        if status in (401, 403):
            raise MemoryError_(
                f"the Qdrant server at {where} refused the API key ({status}); set the variable named "
                "by long_term.api_key_env (or --api-key-env) to a valid key"
            ) from None
        if type(exc).__module__.startswith(("qdrant_client", "httpx", "httpcore", "grpc")):
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise MemoryError_(
                f"the Qdrant server at {where} failed: {reason[:200]}; check that it is running and "
                "that long_term.url is right"
            ) from None
        raise


class ClientIndex:
    """A collection through qdrant-client and langchain-qdrant's `QdrantVectorStore`."""

    def __init__(
        self,
        client: Any,
        collection: str,
        dimensions: int | None,
        *,
        where: str,
        server: bool,
        shards: int = 1,
        replication: int = 1,
        lock: _FolderLock | None = None,
    ) -> None:
        from langchain_qdrant import QdrantVectorStore
        from qdrant_client import models

        self._models = models
        self.client = client
        self.collection = collection
        self.where = where
        self.server = server
        self._lock = lock
        try:
            with self._errors():
                self.dimensions = self._ensure_collection(dimensions, shards, replication)
            self.store = QdrantVectorStore(
                client=client,
                collection_name=collection,
                embedding=None,
                validate_embeddings=False,
                validate_collection_config=False,
            )
        except BaseException:
            self.close()
            raise

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return _server_errors(self.where) if self.server else contextlib.nullcontext()

    def _ensure_collection(self, dimensions: int | None, shards: int, replication: int) -> int:
        models = self._models
        if self.client.collection_exists(self.collection):
            vectors = self.client.get_collection(self.collection).config.params.vectors
            if isinstance(vectors, dict):
                if "" not in vectors:
                    raise MemoryError_(
                        f"memory collection '{self.collection}' ({self.where}) has only named vectors "
                        f"({', '.join(vectors)}); set long_term.collection to a collection of crewkit's"
                    )
                vectors = vectors[""]
            stored = int(vectors.size)
            if dimensions is not None and stored != dimensions:
                raise _mismatch(self.collection, self.where, stored, dimensions)
            if vectors.distance != models.Distance.COSINE:
                raise MemoryError_(
                    f"memory collection '{self.collection}' ({self.where}) uses {vectors.distance.value} "
                    "distance, crewkit's memory needs Cosine; set long_term.collection to a new collection"
                )
            return stored
        if dimensions is None:
            raise MemoryError_(f"no memory collection '{self.collection}' at {self.where}")
        extra = {"shard_number": shards, "replication_factor": replication} if self.server else {}
        self.client.create_collection(
            self.collection,
            vectors_config=models.VectorParams(size=dimensions, distance=models.Distance.COSINE),
            **extra,
        )
        if self.server:  # local mode has no payload indexes (it scans)
            for key in SCOPE_KEYS:
                schema = models.KeywordIndexParams(
                    type=models.KeywordIndexType.KEYWORD, is_tenant=key == "tenant"
                )
                self.client.create_payload_index(self.collection, f"{METADATA_KEY}.{key}", schema, wait=True)
        return dimensions

    def _filter(self, scope: Mapping[str, str | None] | None) -> Any:
        models = self._models
        pairs = _conditions(scope)
        if not pairs:
            return None
        return models.Filter(
            must=[models.FieldCondition(key=k, match=models.MatchValue(value=v)) for k, v in pairs]
        )

    def upsert(self, points: Sequence[Point]) -> None:
        if not points:
            return
        structs = [
            self._models.PointStruct(
                id=_check_id(p.id),
                vector=_check_vector(p.vector, self.dimensions, self.where),
                payload=_stored(p.payload),
            )
            for p in points
        ]
        with self._errors():
            self.client.upsert(self.collection, points=structs, wait=True)

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            with self._errors():
                self.store.delete(ids=[_check_id(i) for i in ids])

    def retrieve(self, ids: Sequence[str]) -> list[Point]:
        if not ids:
            return []
        with self._errors():
            records = self.client.retrieve(
                self.collection, [_check_id(i) for i in ids], with_payload=True, with_vectors=True
            )
        return [Point(str(r.id), list(r.vector), _flat(r.payload)) for r in records]

    def search(self, vector: Sequence[float], k: int, scope: Mapping[str, str | None]) -> list[Hit]:
        with self._errors():
            pairs = self.store.similarity_search_with_score_by_vector(
                _check_vector(vector, self.dimensions, self.where), k=k, filter=self._filter(scope)
            )
        hits = []
        for doc, score in pairs:
            point_id = str(doc.metadata.get("_id"))
            hits.append(
                Hit(
                    point_id, float(score), _flat({CONTENT_KEY: doc.page_content, METADATA_KEY: doc.metadata})
                )
            )
        return hits

    def count(self, scope: Mapping[str, str | None] | None = None) -> int:
        with self._errors():
            return int(self.client.count(self.collection, count_filter=self._filter(scope), exact=True).count)

    def scroll(self, batch: int = BATCH) -> Iterator[list[Point]]:
        offset = None
        while True:
            with self._errors():
                records, offset = self.client.scroll(
                    self.collection, limit=batch, offset=offset, with_payload=True, with_vectors=True
                )
            if records:
                yield [Point(str(r.id), list(r.vector), _flat(r.payload)) for r in records]
            if offset is None:
                return

    def close(self) -> None:
        client, self.client = getattr(self, "client", None), None
        try:
            if client is not None:
                client.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> ClientIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# opening


def folder(cfg: Any, home: Path) -> Path:
    """The embedded store's folder: long_term.path, relative to CREWKIT_HOME unless absolute."""
    path = Path(cfg.path).expanduser()
    return path if path.is_absolute() else Path(home) / path


def _local(cfg: Any, home: Path, dimensions: int | None) -> ClientIndex:
    from qdrant_client import QdrantClient

    where = folder(cfg, home)
    lock = _FolderLock(where)
    try:
        client = QdrantClient(path=str(where))
    except RuntimeError as exc:  # its own lock: another client in this process
        lock.release()
        raise MemoryError_(
            f"the memory store {where} is already open ({str(exc).splitlines()[0][:120]}); close it first"
        ) from None
    except BaseException:
        lock.release()
        raise
    return ClientIndex(client, cfg.collection, dimensions, where=str(where), server=False, lock=lock)


def connect(url: str, api_key: str | None, cfg: Any, dimensions: int | None) -> ClientIndex:
    """The collection `cfg.collection` on the Qdrant server at `url` (created with cfg's shards and
    replication when missing)."""
    from qdrant_client import QdrantClient

    with _server_errors(url):
        client = QdrantClient(url=url, api_key=api_key, timeout=30, check_compatibility=False)
    return ClientIndex(
        client,
        cfg.collection,
        dimensions,
        where=url,
        server=True,
        shards=cfg.shards,
        replication=cfg.replication,
    )


def api_key(env_name: str | None) -> str | None:
    """The API key from the environment variable `env_name` (None: no key)."""
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise MemoryError_(
            f"the Qdrant API key variable {env_name} is not set; export it (or put it in .env), or "
            "drop long_term.api_key_env for a server without a key"
        )
    return value


def open_index(cfg: Any, home: Path, dimensions: int | None) -> VectorIndex:
    """The long-term store of `cfg` (a `LongTermConfig`), holding `dimensions`-d vectors.

    Creates the collection (cosine, payload indexes on tenant, user, agent) or checks its vector
    size: a mismatch, a folder another process holds, or a server that cannot be reached is a
    one-line `MemoryError_`. `dimensions=None` opens an existing store as it is (for migrate).
    """
    if cfg.backend == "server":
        return connect(cfg.url, api_key(cfg.api_key_env), cfg, dimensions)
    if cfg.engine == "edge":
        return EdgeIndex(folder(cfg, home), cfg.collection, dimensions)
    return _local(cfg, home, dimensions)


def copy(source: VectorIndex, target: VectorIndex, batch: int = BATCH) -> int:
    """Copy every point of `source` into `target`, checking each batch arrived; returns the count.

    Upserts by id, so running it again after a failure moves nothing twice.
    """
    moved = 0
    for points in source.scroll(batch):
        target.upsert(points)
        arrived = {p.id for p in target.retrieve([p.id for p in points])}
        lost = [p.id for p in points if p.id not in arrived]
        if lost:
            raise MemoryError_(
                f"{len(lost)} memories (first {lost[0]}) did not arrive at {target.where} after "
                f"{moved} had; run the same command again (it resumes without duplicates)"
            )
        moved += len(points)
    return moved


def migrate(cfg: Any, home: Path, url: str, api_key: str | None) -> int:
    """Copy the embedded store of `cfg` to the Qdrant server at `url`; returns the points moved.

    The server's collection (`cfg.collection`) is created with the store's vector size, cosine
    distance, cfg's shards and replication and the scope payload indexes, or must hold vectors of
    the same size. The local store is left as it was. Afterwards the server must hold every id.
    """
    embedded = cfg.model_copy(update={"backend": "embedded"}) if hasattr(cfg, "model_copy") else cfg
    try:
        source = open_index(embedded, home, None)
    except MemoryError_ as exc:
        if not str(exc).startswith("no memory collection"):
            raise
        raise MemoryError_(f"{exc}: nothing to migrate (check CREWKIT_HOME and long_term.path)") from None
    try:
        target = connect(url, api_key, cfg, source.dimensions)
        try:
            moved = copy(source, target)
        finally:
            target.close()
    finally:
        source.close()
    log.info("moved %d points from %s to %s", moved, source.where, url)
    return moved
