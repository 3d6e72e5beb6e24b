"""Long-term memory on the real stores: the packaged embedder, Qdrant (Edge and qdrant-client's
local mode) under CREWKIT_HOME, state.db. Scopes, versions, atomicity, undo through `crewkit rollback`,
a locked store and a wrong-dimension embedder, across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crewkit.errors import MemoryError_, StateStoreError
from crewkit.memory.store import MemoryStore, Scope
from crewkit.runtime import undo
from crewkit.settings import load_settings
from tests.memory_fakes import WordEmbedder, commit_fails

pytestmark = pytest.mark.integration

ACME, GLOBEX = Scope("acme"), Scope("globex")


@pytest.fixture(params=["edge", "local"])
def engine(request: pytest.FixtureRequest, project: Path) -> str:
    (project / "config" / "memory.yaml").write_text(f"long_term:\n  engine: {request.param}\n")
    return str(request.param)


@pytest.fixture
def default_engine(project: Path) -> str:
    """The shipped engine only (the cross-process tests are slow; the engines share that code)."""
    return load_settings(project).memory.long_term.engine


@pytest.fixture
def mem(engine: str, project: Path, crewkit_home: Path) -> Iterator[MemoryStore]:
    store = MemoryStore.open(load_settings(project), crewkit_home)
    yield store
    store.close()


def _cli(project: Path, home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CREWKIT_PROJECT=str(project), CREWKIT_HOME=str(home))
    return subprocess.run(
        [sys.executable, "-m", "crewkit.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
        input=stdin,
        timeout=120,
    )


def test_english_and_chinese_memories_are_found_in_their_tenant_only(mem: MemoryStore) -> None:
    euro = mem.add("Acme pays its invoices in euros, always by bank transfer.", ACME)
    tea = mem.add("Acme 的采购经理只喝绿茶。", ACME)  # Acme's purchasing manager only drinks green tea
    mem.add("Globex pays its invoices in dollars by credit card.", GLOBEX)
    hits = mem.search("Which currency does Acme use for invoices?", ACME, k=5)
    assert hits[0].id == euro.id and {h.tenant for h in hits} == {"acme"}
    assert mem.search("采购经理喝什么茶？", ACME, k=1)[0].id == tea.id
    for k in (1, 3, 50):
        assert {h.tenant for h in mem.search("invoices in euros", GLOBEX, k=k)} == {"globex"}
    assert mem.index.count({"tenant": "acme"}) == 2


def test_versions_history_rollback_and_delete_on_the_real_store(mem: MemoryStore) -> None:
    rec = mem.add("The release train leaves on Tuesdays.", ACME)
    mem.update(rec.id, "The release train leaves on Thursdays.", ACME)
    assert mem.search("when does the release train leave", ACME)[0].raw.endswith("Thursdays.")
    mem.rollback(rec.id, 1, ACME)
    assert [v.version for v in mem.history(rec.id, ACME)] == [1, 2, 3]
    assert mem.search("when does the release train leave", ACME)[0].raw.endswith("Tuesdays.")
    assert mem.index.count() == 1  # one point: the current version's
    assert mem.delete(rec.id, ACME) == 3
    assert mem.index.count() == 0 and mem.index.retrieve([rec.id]) == []


def test_a_failed_commit_leaves_the_real_qdrant_store_as_it_was(
    mem: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = mem.add("Keep the invoices for ten years.", ACME)

    def stored() -> list[tuple[Any, ...]]:
        # local mode normalises a cosine vector again when it is put back: equal to float noise
        return [(p.id, p.payload, [round(x, 5) for x in p.vector]) for p in mem.index.retrieve([rec.id])]

    before = stored()
    for write in (
        lambda: mem.add("a new memory", ACME),
        lambda: mem.update(rec.id, "Keep the invoices for five years.", ACME),
        lambda: mem.delete(rec.id, ACME),
    ):
        with commit_fails(mem, monkeypatch), pytest.raises(StateStoreError, match="injected"):
            write()
        assert stored() == before
        assert mem.index.count() == 1 and [m.id for m in mem.list_memories(ACME)] == [rec.id]
    real_upsert = mem.index.upsert

    def broken(points: Any) -> None:
        raise OSError("injected: qdrant write failed")

    monkeypatch.setattr(mem.index, "upsert", broken)
    with pytest.raises(OSError, match="injected"):
        mem.update(rec.id, "Keep the invoices for five years.", ACME)
    monkeypatch.setattr(mem.index, "upsert", real_upsert)
    assert [v.version for v in mem.history(rec.id, ACME)] == [1]


def test_crewkit_rollback_undoes_a_runs_memory_writes_in_a_new_process(
    default_engine: str, project: Path, crewkit_home: Path
) -> None:
    mem = MemoryStore.open(load_settings(project), crewkit_home)
    state = mem.state
    kept = mem.add("Written by a person before the run.", ACME)
    state.create_run("r-mem", "default", {"tenant": "acme"}, "fp", None)
    with undo.recording(state, "r-mem", lambda: 0):
        learned = mem.add("Learned by the run: Acme wants weekly reports.", ACME)
        mem.update(kept.id, "Changed by the run.", ACME)
    state.set_status("r-mem", "done")
    mem.close()  # the embedded store is one process's at a time
    proc = _cli(project, crewkit_home, "rollback", "r-mem", "--to", "start")
    assert proc.returncode == 0, proc.stderr
    reopened = MemoryStore.open(load_settings(project), crewkit_home)
    try:
        assert [(m.id, m.text) for m in reopened.list_memories(ACME)] == [
            (kept.id, "Written by a person before the run.")
        ]
        assert reopened.index.count() == 1 and reopened.index.retrieve([learned.id]) == []
        assert reopened.search("weekly reports", ACME)[0].id == kept.id
        undone = state.read("SELECT subject FROM audit WHERE action = 'memory.undone' AND run_id = 'r-mem'")
        assert sorted(s for (s,) in undone) == sorted([f"memory:{learned.id}", f"memory:{kept.id}"])
    finally:
        reopened.close()


def test_a_second_process_recalls_what_the_first_stored(
    default_engine: str, project: Path, crewkit_home: Path
) -> None:
    added = _cli(project, crewkit_home, "memory", "add", "-", "--tenant", "acme", "--new-tenant", "--format",
                 "json", stdin="Acme's fiscal year ends in March.")  # fmt: skip
    assert added.returncode == 0, added.stderr
    found = _cli(project, crewkit_home, "memory", "search", "when does the fiscal year end", "--tenant", "acme",
                 "--format", "json")  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert [h["id"] for h in json.loads(found.stdout)] == [json.loads(added.stdout)["id"]]
    other = _cli(
        project, crewkit_home, "memory", "search", "fiscal year", "--tenant", "default", "--format", "json"
    )
    assert other.returncode == 0 and json.loads(other.stdout) == []


HOLDER = """
import sys, time
from pathlib import Path
from crewkit.settings import load_settings
from crewkit.memory.store import MemoryStore
store = MemoryStore.open(load_settings(Path(sys.argv[1])), Path(sys.argv[2]))
store.index  # opened: the folder is locked
print("held", flush=True)
time.sleep(60)
"""


def test_a_store_locked_by_another_process_is_one_line_exit_2(
    engine: str, project: Path, crewkit_home: Path
) -> None:
    env = dict(os.environ, CREWKIT_PROJECT=str(project), CREWKIT_HOME=str(crewkit_home))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(project), str(crewkit_home)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        proc = _cli(project, crewkit_home, "memory", "add", "while locked")
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.startswith("error: the memory store") and proc.stderr.count("\n") == 1
        assert "in use by another process" in proc.stderr
        listed = _cli(project, crewkit_home, "memory", "list", "--format", "json")
        assert listed.returncode == 0 and json.loads(listed.stdout) == []  # nothing was written
    finally:
        holder.kill()
        holder.wait()


def test_a_wrong_dimension_embedder_is_refused_with_one_line(
    mem: MemoryStore, project: Path, crewkit_home: Path
) -> None:
    mem.add("built with the packaged embedder", ACME)
    dims = mem.index.dimensions
    mem.close()
    other = MemoryStore.open(load_settings(project), crewkit_home, embedder=WordEmbedder())
    try:
        with pytest.raises(MemoryError_) as err:
            other.add("a 32-d vector", ACME)
        assert f"{dims}-d vectors, the embedding role gives 32-d" in str(err.value) and "\n" not in str(
            err.value
        )
    finally:
        other.close()
    again = MemoryStore.open(load_settings(project), crewkit_home)
    try:
        assert [m.text for m in again.list_memories(ACME)] == ["built with the packaged embedder"]
    finally:
        again.close()
