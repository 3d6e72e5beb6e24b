"""`crewkit memory ...`: the commands, their formats, and one-line errors (exit 2) that change nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crewkit import cli
from crewkit.errors import MemoryError_
from crewkit.memory import store as store_mod
from tests.memory_fakes import FakeIndex, WordEmbedder


@pytest.fixture
def index(project: Path, monkeypatch: pytest.MonkeyPatch) -> FakeIndex:
    """Every `crewkit memory` call in the test gets the fake embedder and this one index."""
    fake = FakeIndex()
    real_open = store_mod.MemoryStore.open.__func__  # type: ignore[attr-defined]

    def fake_open(cls: Any, settings: Any, home: Path | None = None, **_: Any) -> Any:
        return real_open(cls, settings, home, embedder=WordEmbedder(), index=fake)

    monkeypatch.setattr(store_mod.MemoryStore, "open", classmethod(fake_open))
    return fake


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["memory", *args])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = run(capsys, *args, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def _state(capsys: pytest.CaptureFixture[str], index: FakeIndex, tenant: str = "default") -> Any:
    return run_json(capsys, "list", "--tenant", tenant), sorted(index.points)


def test_add_search_update_history_rollback_delete(index: FakeIndex, capsys) -> None:
    added = run_json(capsys, "add", "Acme pays invoices in euros")
    assert added["version"] == 1 and added["tenant"] == "default" and added["result"] == "added"
    code, out, _ = run(capsys, "search", "invoices euros")
    assert code == 0 and added["id"] in out and "Acme pays invoices in euros" in " ".join(out.split())
    hits = run_json(capsys, "search", "invoices euros", "--k", "3")
    assert [(h["id"], h["verdict"]) for h in hits] == [(added["id"], "allow")]
    updated = run_json(capsys, "update", added["id"], "Acme pays invoices in dollars")
    assert updated["version"] == 2
    back = run_json(capsys, "rollback", added["id"], "1")
    assert (back["version"], back["text"]) == (3, "Acme pays invoices in euros")
    history = run_json(capsys, "history", added["id"])
    assert [(v["version"], v["current"]) for v in history] == [(1, False), (2, False), (3, True)]
    code, out, _ = run(capsys, "history", added["id"])
    assert code == 0 and "dollars" in out
    deleted = run_json(capsys, "delete", added["id"])
    assert deleted == {"memory_id": added["id"], "versions": 3}
    assert index.points == {} and run_json(capsys, "list") == []


def test_text_from_stdin(index: FakeIndex, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("remembered from stdin\n"))
    assert run_json(capsys, "add", "-")["text"] == "remembered from stdin\n"


def test_scopes_on_the_command_line(index: FakeIndex, capsys) -> None:
    run_json(capsys, "add", "the launch code is 1234", "--tenant", "acme", "--new-tenant", "--user", "ann")
    run_json(capsys, "add", "the launch code is 9999", "--tenant", "globex", "--new-tenant", "--user", "ann")
    hits = run_json(capsys, "search", "launch code", "--tenant", "acme", "--k", "10")
    assert [h["tenant"] for h in hits] == ["acme"]
    assert run_json(capsys, "search", "launch code", "--tenant", "acme", "--user", "bob") == []
    gone = run_json(capsys, "delete", "--user", "ann", "--tenant", "acme")
    assert gone == {"tenant": "acme", "user": "ann", "memories": 1}
    assert [m["tenant"] for m in run_json(capsys, "list", "--tenant", "globex")] == ["globex"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("add", ""), "the memory text is empty"),
        (("add", "x" * 8001), "8001 characters, above the limit of 8000"),
        (("add", "x", "--tenant", "acme"), "unknown tenant 'acme'"),
        (("search", "x", "--tenant", "acme"), "unknown tenant 'acme'"),
        (("update", "0000", "new text"), "unknown memory id '0000'"),
        (("rollback", "{id}", "7"), "has no version 7; its versions are 1"),
        (("rollback", "{id}", "one"), "'one' is not a valid integer"),
        (("history", "{id}", "--tenant", "globex"), "unknown memory id"),
        (("delete", "{id}", "--tenant", "globex"), "unknown memory id"),
        (("delete",), "give a memory ID, or --user USER"),
        (("search", "x", "--k", "0"), "0 is not in the range"),
        (("add", "x", "--user", ""), "the user is empty"),
        (("add", "x", "--format", "yaml"), "'yaml' is not one of"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(index: FakeIndex, capsys, args, needle) -> None:
    existing = run_json(capsys, "add", "already here")
    run_json(capsys, "add", "elsewhere", "--tenant", "globex", "--new-tenant")
    before = _state(capsys, index)
    code, out, err = run(capsys, *(a.replace("{id}", existing["id"]) for a in args))
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert _state(capsys, index) == before


def test_a_wrong_dimension_embedder_is_one_line(project: Path, capsys, monkeypatch) -> None:
    real_open = store_mod.MemoryStore.open.__func__  # type: ignore[attr-defined]

    def fake_open(cls: Any, settings: Any, home: Path | None = None, **_: Any) -> Any:
        return real_open(cls, settings, home, embedder=WordEmbedder(), index=FakeIndex(8))

    monkeypatch.setattr(store_mod.MemoryStore, "open", classmethod(fake_open))
    code, out, err = run(capsys, "add", "x")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "has 8-d vectors, the embedding role gives 32-d" in err


def test_a_store_held_by_another_process_is_one_line(project: Path, capsys, monkeypatch) -> None:
    """vectors.open_index's refusal reaches the user as one line, exit 2, on the first use."""
    from crewkit.memory import vectors

    def held(*_a: Any, **_k: Any) -> Any:
        raise MemoryError_("the memory store /x/qdrant is in use by another process (pid 1); wait")

    monkeypatch.setattr(vectors, "open_index", held)
    monkeypatch.setattr(store_mod, "_OPEN", {})  # the store this test opens is not kept
    monkeypatch.setattr(store_mod, "_LIVE", {})
    monkeypatch.setattr(store_mod, "_dimensions", lambda _e: 384)
    monkeypatch.setattr("crewkit.models.registry.RoleMap.embedder", lambda self: WordEmbedder())
    code, out, err = run(capsys, "add", "x")
    assert (code, out) == (
        2,
        "",
    ) and err == "error: the memory store /x/qdrant is in use by another process (pid 1); wait\n"
    assert run(capsys, "list")[0] == 0  # listing reads state.db only


def test_memory_commands_keep_crewkit_help_light() -> None:
    code = (
        "import sys, crewkit.cli as c; c.main(['memory', '--help']);"
        "heavy = [m for m in ('crewkit.memory.store', 'qdrant_client', 'qdrant_edge', 'crewkit.memory.vectors') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
