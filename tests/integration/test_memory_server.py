"""Long-term memory against a real Qdrant server: the VectorIndex contract, the payload indexes,
an API key, and `crewkit memory migrate` from the embedded store.

No Qdrant server can be installed from the package registries this project reaches (PyPI,
Debian, npm: no package ships the server binary; qdrant-client and qdrant-edge-py are in-process
only). So these tests run when a `qdrant` binary is on PATH (started here on 127.0.0.1 with a
temporary storage folder and an API key) or when CREWKIT_TEST_QDRANT_URL names a running server
(with CREWKIT_TEST_QDRANT_KEY for its key, if any); otherwise they are skipped, saying so.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from crewkit.errors import MemoryError_
from crewkit.memory.config import LongTermConfig
from crewkit.memory.vectors import Point, migrate, open_index

pytestmark = pytest.mark.integration

DIMS = 16
KEY_ENV = "CREWKIT_TEST_QDRANT_KEY"
NO_SERVER = (
    "no Qdrant server here: none is installable from PyPI, Debian or npm; put a `qdrant` binary on "
    "PATH or set CREWKIT_TEST_QDRANT_URL to run these tests"
)


@dataclass(frozen=True)
class Server:
    url: str
    key: str | None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as reply:
                if reply.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    url = os.environ.get("CREWKIT_TEST_QDRANT_URL")
    if url:
        yield Server(url.rstrip("/"), os.environ.get(KEY_ENV) or None)
        return
    binary = shutil.which("qdrant")
    if binary is None:
        pytest.skip(NO_SERVER)
    storage = tmp_path_factory.mktemp("qdrant-server")
    http, grpc = _free_port(), _free_port()
    key = uuid.uuid4().hex
    env = dict(
        os.environ,
        QDRANT__SERVICE__HOST="127.0.0.1",
        QDRANT__SERVICE__HTTP_PORT=str(http),
        QDRANT__SERVICE__GRPC_PORT=str(grpc),
        QDRANT__SERVICE__API_KEY=key,
        QDRANT__STORAGE__STORAGE_PATH=str(storage / "storage"),
        QDRANT__STORAGE__SNAPSHOTS_PATH=str(storage / "snapshots"),
        QDRANT__TELEMETRY_DISABLED="true",
    )
    proc = subprocess.Popen([binary], cwd=storage, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{http}"
        if not _ready(url, time.monotonic() + 60):
            proc.terminate()
            pytest.fail(
                f"qdrant did not become ready: {proc.stderr.read().decode()[-500:] if proc.stderr else ''}"
            )
        yield Server(url, key)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def cfg(server: Server, monkeypatch: pytest.MonkeyPatch) -> LongTermConfig:
    if server.key:
        monkeypatch.setenv(KEY_ENV, server.key)
    return LongTermConfig(
        backend="server",
        url=server.url,
        api_key_env=KEY_ENV if server.key else None,
        collection=f"crewkit_test_{uuid.uuid4().hex[:10]}",
    )


def _points(n: int, seed: int, **payload: str) -> list[Point]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        v = rng.standard_normal(DIMS)
        out.append(Point(str(uuid.uuid4()), (v / np.linalg.norm(v)).tolist(), {"tenant": "acme", **payload}))
    return out


def test_server_index_keeps_tenants_apart_with_payload_indexes(cfg: LongTermConfig, tmp_path: Path) -> None:
    acme, globex = _points(20, 1, user="ann"), _points(20, 2, tenant="globex")
    with open_index(cfg, tmp_path, DIMS) as index:
        index.upsert(acme + globex)
        hits = index.search(globex[0].vector, 50, {"tenant": "acme"})
        assert {h.id for h in hits} == {p.id for p in acme}
        assert index.search(globex[0].vector, 1, {"tenant": "globex"})[0].id == globex[0].id
        assert index.count({"tenant": "acme", "user": "ann"}) == 20
        index.delete([acme[0].id])
        assert index.count() == 39 and index.retrieve([acme[0].id]) == []
        schema = index.client.get_collection(cfg.collection).payload_schema
        assert {"metadata.tenant", "metadata.user", "metadata.agent"} <= set(schema)
        index.client.delete_collection(cfg.collection)


def test_server_vector_size_mismatch_is_one_line(cfg: LongTermConfig, tmp_path: Path) -> None:
    with open_index(cfg, tmp_path, DIMS):
        pass
    with pytest.raises(MemoryError_) as err:
        open_index(cfg, tmp_path, 384)
    assert "\n" not in str(err.value) and "16-d" in str(err.value) and "384-d" in str(err.value)


def test_a_wrong_api_key_is_one_line(server: Server, cfg: LongTermConfig, tmp_path: Path) -> None:
    if not server.key:
        pytest.skip("this server has no API key")
    os.environ[KEY_ENV] = "not-the-key"
    with pytest.raises(MemoryError_, match="refused the API key"):
        open_index(cfg, tmp_path, DIMS)


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_migrate_moves_the_embedded_store_once(
    engine: str, server: Server, cfg: LongTermConfig, tmp_path: Path
) -> None:
    embedded = LongTermConfig(engine=engine, collection=cfg.collection)
    points = _points(600, 3) + _points(7, 4, tenant="globex")
    with open_index(embedded, tmp_path, DIMS) as local:
        local.upsert(points)
    assert migrate(embedded, tmp_path, server.url, server.key) == 607
    assert migrate(embedded, tmp_path, server.url, server.key) == 607  # again: nothing doubled
    with open_index(cfg, tmp_path, DIMS) as remote:
        assert remote.count() == 607 and remote.count({"tenant": "globex"}) == 7
        assert remote.search(points[10].vector, 1, {"tenant": "acme"})[0].id == points[10].id
        remote.client.delete_collection(cfg.collection)
    with open_index(embedded, tmp_path, DIMS) as local:  # the local store is kept
        assert local.count() == 607


def test_cli_migrate(server: Server, cfg: LongTermConfig, project: Path, crewkit_home: Path) -> None:
    (project / "config" / "memory.yaml").write_text(f"long_term:\n  collection: {cfg.collection}\n")
    with open_index(LongTermConfig(collection=cfg.collection), crewkit_home, DIMS) as local:
        local.upsert(_points(5, 5))
    args = ["memory", "migrate", "--to", server.url] + (["--api-key-env", KEY_ENV] if server.key else [])
    env = dict(os.environ, CREWKIT_PROJECT=str(project), CREWKIT_HOME=str(crewkit_home))
    done = subprocess.run(
        [sys.executable, "-m", "crewkit.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "ok: 5 vector(s) copied" in done.stdout and "long_term.backend: server" in done.stdout
