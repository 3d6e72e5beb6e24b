"""crewkit.memory.vectors on the real embedded engines (Qdrant Edge and qdrant-client local mode)
in tmp_path: scoped search, versions' points replaced or deleted, the vector-size check, a store
held by another process, copying a store to another (what migrate does)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

from crewkit.errors import MemoryError_
from crewkit.memory.config import LongTermConfig
from crewkit.memory.vectors import ClientIndex, EdgeIndex, Point, copy, migrate, open_index

DIMS = 16
ENGINES = ["edge", "local"]


def _unit(rng: np.random.Generator) -> list[float]:
    v = rng.standard_normal(DIMS)
    return (v / np.linalg.norm(v)).tolist()


def _points(n: int, seed: int = 0, **scope: str) -> list[Point]:
    rng = np.random.default_rng(seed)
    payload = {"tenant": "acme", **scope}
    return [Point(str(uuid.uuid4()), _unit(rng), {**payload, "text": f"memory {i}"}) for i in range(n)]


@pytest.fixture(params=ENGINES)
def cfg(request: pytest.FixtureRequest) -> LongTermConfig:
    return LongTermConfig(engine=request.param)


def test_search_never_returns_another_tenants_points(cfg: LongTermConfig, tmp_path: Path) -> None:
    acme, globex = _points(12, seed=1), _points(12, seed=2, tenant="globex")
    with open_index(cfg, tmp_path, DIMS) as index:
        index.upsert(acme + globex)
        # the query is exactly a globex point: still only acme's points come back for acme
        hits = index.search(globex[0].vector, 50, {"tenant": "acme"})
        assert {h.id for h in hits} == {p.id for p in acme}
        assert all(h.payload["tenant"] == "acme" for h in hits)
        top = index.search(globex[0].vector, 1, {"tenant": "globex"})
        assert top[0].id == globex[0].id and top[0].score == pytest.approx(1.0, abs=1e-5)
        assert index.count() == 24 and index.count({"tenant": "globex"}) == 12


def test_scope_filters_only_on_the_keys_given(cfg: LongTermConfig, tmp_path: Path) -> None:
    ann = _points(3, seed=1, user="ann", agent="planner")
    bob = _points(4, seed=2, user="bob", agent="planner")
    with open_index(cfg, tmp_path, DIMS) as index:
        index.upsert(ann + bob)
        assert index.count({"tenant": "acme", "user": "bob"}) == 4
        assert index.count({"tenant": "acme", "agent": "planner"}) == 7
        assert index.count({"tenant": "acme", "user": None, "agent": None}) == 7
        hits = index.search(ann[0].vector, 10, {"tenant": "acme", "user": "bob"})
        assert {h.id for h in hits} == {p.id for p in bob}
        with pytest.raises(ValueError, match="unknown scope key 'team'"):
            index.search(ann[0].vector, 1, {"team": "x"})


def test_upsert_of_an_existing_id_replaces_it(cfg: LongTermConfig, tmp_path: Path) -> None:
    (first,) = _points(1, seed=1)
    with open_index(cfg, tmp_path, DIMS) as index:
        index.upsert([first])
        index.upsert([Point(first.id, _unit(np.random.default_rng(9)), {"tenant": "acme", "text": "new"})])
        assert index.count() == 1
        (back,) = index.retrieve([first.id])
        assert back.payload == {"tenant": "acme", "text": "new"}


def test_delete_and_retrieve(cfg: LongTermConfig, tmp_path: Path) -> None:
    points = _points(5)
    with open_index(cfg, tmp_path, DIMS) as index:
        index.upsert(points)
        index.delete([points[0].id, points[1].id])
        assert index.count() == 3
        assert index.retrieve([points[0].id]) == []
        (kept,) = index.retrieve([points[2].id, str(uuid.uuid4())])
        assert kept.id == points[2].id and kept.payload == points[2].payload
        assert np.allclose(kept.vector, points[2].vector, atol=1e-5)
        assert points[0].id not in {h.id for h in index.search(points[0].vector, 10, {"tenant": "acme"})}
        index.delete([])  # nothing to do, no error


def test_points_persist_across_reopen(cfg: LongTermConfig, tmp_path: Path) -> None:
    points = _points(7)
    with open_index(cfg, tmp_path, DIMS) as index:
        index.upsert(points)
    with open_index(cfg, tmp_path, DIMS) as index:
        assert index.count() == 7
        assert index.search(points[3].vector, 1, {"tenant": "acme"})[0].id == points[3].id


def test_vector_size_mismatch_is_one_line_naming_collection_sizes_and_fix(
    cfg: LongTermConfig, tmp_path: Path
) -> None:
    with open_index(cfg, tmp_path, DIMS) as index:
        index.upsert(_points(2))
    with pytest.raises(MemoryError_) as err:
        open_index(cfg, tmp_path, 384)
    message = str(err.value)
    assert "\n" not in message
    assert "'crewkit_memory'" in message and "16-d" in message and "384-d" in message
    assert "long_term.collection" in message
    with open_index(cfg, tmp_path, DIMS) as index:  # nothing was changed by the refusal
        assert index.count() == 2


def test_a_collection_with_another_distance_is_refused(tmp_path: Path) -> None:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(tmp_path / "qdrant"))
    client.create_collection(
        "crewkit_memory", vectors_config=models.VectorParams(size=DIMS, distance=models.Distance.DOT)
    )
    client.close()
    with pytest.raises(MemoryError_, match="uses Dot distance, crewkit's memory needs Cosine"):
        open_index(LongTermConfig(engine="local"), tmp_path, DIMS)


def test_a_vector_of_the_wrong_size_is_refused(cfg: LongTermConfig, tmp_path: Path) -> None:
    with open_index(cfg, tmp_path, DIMS) as index:
        with pytest.raises(MemoryError_, match="a 3-d vector"):
            index.upsert([Point(str(uuid.uuid4()), [1.0, 0.0, 0.0], {"tenant": "acme"})])
        with pytest.raises(MemoryError_, match="a 3-d vector"):
            index.search([1.0, 0.0, 0.0], 1, {"tenant": "acme"})
        assert index.count() == 0


def test_point_ids_must_be_uuids(cfg: LongTermConfig, tmp_path: Path) -> None:
    with open_index(cfg, tmp_path, DIMS) as index, pytest.raises(ValueError, match="not a UUID"):
        index.upsert([Point("mem-1", [0.0] * DIMS, {})])


HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from crewkit.memory.config import LongTermConfig
    from crewkit.memory.vectors import open_index
    index = open_index(LongTermConfig(engine=sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
    print("open", flush=True)
    sys.stdin.read()  # hold the store until the test closes our stdin
    index.close()
    """
)


def test_a_store_held_by_another_process_is_a_one_line_error(cfg: LongTermConfig, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, cfg.engine, str(tmp_path), str(DIMS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(MemoryError_) as err:
            open_index(cfg, tmp_path, DIMS)
        message = str(err.value)
        assert "\n" not in message
        assert str(tmp_path / "qdrant") in message and f"pid {holder.pid}" in message
        assert "in use by another process" in message
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0
    with open_index(cfg, tmp_path, DIMS) as index:  # free again once the other process let go
        assert index.count() == 0


def test_opening_the_same_store_twice_in_one_process_is_refused(cfg: LongTermConfig, tmp_path: Path) -> None:
    with open_index(cfg, tmp_path, DIMS), pytest.raises(MemoryError_, match="already open in this process"):
        open_index(cfg, tmp_path, DIMS)


def test_an_unwritable_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a folder")
    cfg = LongTermConfig(path=str(tmp_path / "blocker" / "qdrant"))
    with pytest.raises(MemoryError_, match="cannot use the memory folder .*long_term.path"):
        open_index(cfg, tmp_path, DIMS)


def test_stored_layout_is_langchain_qdrants(tmp_path: Path) -> None:
    """A plain langchain QdrantVectorStore reads crewkit's memories as Documents."""
    from langchain_qdrant import QdrantVectorStore

    cfg = LongTermConfig(engine="local")
    (point,) = _points(1, user="ann")
    with open_index(cfg, tmp_path, DIMS) as index:
        assert isinstance(index, ClientIndex)
        index.upsert([point])
        store = QdrantVectorStore(
            index.client, cfg.collection, validate_embeddings=False, validate_collection_config=False
        )
        (doc,) = store.get_by_ids([point.id])
        assert doc.page_content == "memory 0"
        assert doc.metadata["tenant"] == "acme" and doc.metadata["user"] == "ann"


def test_edge_builds_its_hnsw_index_once_enough_points_wait(tmp_path: Path) -> None:
    points = _points(300)
    with EdgeIndex(tmp_path / "qdrant", "crewkit_memory", DIMS, index_after=200) as index:
        index.upsert(points[:150])
        assert index._shard.info().indexed_vectors_count == 0  # a plain scan under the threshold
        index.upsert(points[150:])  # crosses it: this upsert builds the index
        assert index._shard.info().indexed_vectors_count == 300
        assert index.index_if_due() is False
        assert index.search(points[5].vector, 1, {"tenant": "acme"})[0].id == points[5].id
    with open_index(LongTermConfig(engine="edge"), tmp_path, DIMS) as index:
        assert index.count() == 300 and index.search(points[7].vector, 1, {})[0].id == points[7].id


@pytest.mark.parametrize(("src", "dst"), [("edge", "local"), ("local", "edge")])
def test_copy_moves_every_point_once_and_can_run_again(src: str, dst: str, tmp_path: Path) -> None:
    points = _points(600, seed=3) + _points(5, seed=4, tenant="globex")
    with open_index(LongTermConfig(engine=src), tmp_path / "a", DIMS) as source:
        source.upsert(points)
        with open_index(LongTermConfig(engine=dst), tmp_path / "b", DIMS) as target:
            assert copy(source, target, batch=256) == 605
            assert copy(source, target, batch=256) == 605  # again: upserts, no duplicates
            assert target.count() == 605 and target.count({"tenant": "globex"}) == 5
            (back,) = target.retrieve([points[-1].id])
            assert back.payload == points[-1].payload


def test_migrate_with_no_local_store_says_so(tmp_path: Path) -> None:
    with pytest.raises(MemoryError_, match="nothing to migrate"):
        migrate(LongTermConfig(engine="edge"), tmp_path, "http://127.0.0.1:9", None)


def test_migrate_to_an_unreachable_server_is_one_line_and_leaves_the_store(tmp_path: Path) -> None:
    cfg = LongTermConfig(engine="edge")
    with open_index(cfg, tmp_path, DIMS) as index:
        index.upsert(_points(3))
    with pytest.raises(MemoryError_) as err:
        migrate(cfg, tmp_path, "http://127.0.0.1:9", None)  # port 9 (discard): nothing listens
    assert "\n" not in str(err.value) and "http://127.0.0.1:9" in str(err.value)
    with open_index(cfg, tmp_path, DIMS) as index:
        assert index.count() == 3


def test_server_api_key_variable_must_be_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREWKIT_TEST_QDRANT_KEY", raising=False)
    cfg = LongTermConfig(backend="server", url="http://127.0.0.1:9", api_key_env="CREWKIT_TEST_QDRANT_KEY")
    with pytest.raises(MemoryError_, match="CREWKIT_TEST_QDRANT_KEY is not set"):
        open_index(cfg, tmp_path, DIMS)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from crewkit.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_migrate_copies_the_store_and_says_what_to_set(
    project: Path,
    crewkit_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The command's wiring, with the server stood in for by a local-mode store."""
    from crewkit.memory import vectors

    points = _points(300, seed=6)
    with open_index(LongTermConfig(), crewkit_home, DIMS) as index:
        index.upsert(points)
    seen: dict[str, object] = {}

    def fake_connect(url: str, key: str | None, cfg: LongTermConfig, dims: int | None) -> ClientIndex:
        seen.update(url=url, key=key, dims=dims)
        return vectors._local(LongTermConfig(engine="local", path=str(tmp_path / "server")), tmp_path, dims)

    monkeypatch.setattr(vectors, "connect", fake_connect)
    monkeypatch.setenv("MY_QDRANT_KEY", "s3cret")
    code, out, err = _cli(
        capsys, "memory", "migrate", "--to", "http://qdrant.internal:6333", "--api-key-env", "MY_QDRANT_KEY"
    )
    assert code == 0, err
    assert seen == {"url": "http://qdrant.internal:6333", "key": "s3cret", "dims": DIMS}
    assert "ok: 300 vector(s) copied" in out and "api_key_env: MY_QDRANT_KEY" in out
    with open_index(LongTermConfig(engine="local", path=str(tmp_path / "server")), tmp_path, DIMS) as target:
        assert target.count() == 300


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--to", "qdrant:6333"], "--to 'qdrant:6333' is not an http(s) URL"),
        (["--to", "http://127.0.0.1:9", "--api-key-env", "NO_SUCH_KEY_VAR"], "NO_SUCH_KEY_VAR is not set"),
        (["--to", "http://127.0.0.1:9"], "http://127.0.0.1:9"),  # nothing listens on port 9
    ],
)
def test_cli_migrate_bad_input_is_one_line_exit_2(
    project: Path, crewkit_home: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    with open_index(LongTermConfig(), crewkit_home, DIMS) as index:
        index.upsert(_points(2))
    code, out, err = _cli(capsys, "memory", "migrate", *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and expected in err
