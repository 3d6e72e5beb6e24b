"""The undo log: recording side effects in a run, rolling them back newest first, reporting failures."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from crewkit.errors import UsageError
from crewkit.runtime import undo
from crewkit.runtime.store import StateStore
from tools.file_write import FileWriteTool


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore.open(tmp_path / "home")
    s.create_run("r1", "default", {}, "fp", None)
    yield s
    s.close()


@pytest.fixture
def registry() -> Iterator[None]:
    """Keep test compensators out of the process-wide registry."""
    saved = dict(undo._registry)
    yield
    undo._registry.clear()
    undo._registry.update(saved)


class Steps:
    """A run's checkpoint counter, as the runner gives `recording`."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def __call__(self) -> int:
        return len(self.store.checkpoints("r1"))

    def finish(self, step: str) -> int:
        return self.store.add_checkpoint("r1", step, None, {}, True)


def test_record_outside_a_run_does_nothing(store: StateStore) -> None:
    assert not undo.active()
    assert undo.record("file.restore", {"path": "/x", "previous": None}) is None
    assert store.undo_entries("r1", 0) == []


def test_record_in_a_run_logs_the_checkpoint_count(store: StateStore) -> None:
    steps = Steps(store)
    with undo.recording(store, "r1", steps):
        assert undo.active()
        undo.record("file.restore", {"path": "/a", "previous": None})
        steps.finish("one")
        undo.record("file.restore", {"path": "/b", "previous": "x"})
    assert not undo.active()
    entries = store.undo_entries("r1", 0)
    assert [(e.checkpoint, e.payload["path"]) for e in entries] == [(1, "/b"), (0, "/a")]


def test_recording_does_not_leak_into_other_threads(store: StateStore) -> None:
    seen: list[bool] = []
    with undo.recording(store, "r1", lambda: 0):
        t = threading.Thread(target=lambda: seen.append(undo.active()))
        t.start()
        t.join()
    assert seen == [False]


def test_roll_back_restores_files_newest_first(store: StateStore, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "kept.txt").write_text("original", encoding="utf-8")
    tool = FileWriteTool(base_dir=work)
    steps = Steps(store)
    with undo.recording(store, "r1", steps):
        tool.run(path="kept.txt", content="step 1 text")
        steps.finish("one")
        tool.run(path="kept.txt", content="step 2 text")
        tool.run(path="new/made.txt", content="first")
        tool.run(path="new/made.txt", content="second")
        steps.finish("two")
    assert (work / "kept.txt").read_text(encoding="utf-8") == "step 2 text"

    lines = undo.roll_back(store, "r1", 1)
    assert (work / "kept.txt").read_text(encoding="utf-8") == "step 1 text"
    assert not (work / "new" / "made.txt").exists()
    assert len(lines) == 3 and all(line.startswith("undone: ") for line in lines)
    assert "deleted" in lines[1] and "restored" in lines[2]
    assert [c.step for c in store.checkpoints("r1")] == ["one"]
    assert [e.checkpoint for e in store.undo_entries("r1", 0)] == [0]  # step one's write stays

    assert undo.roll_back(store, "r1", 0) == [f"undone: restored {work / 'kept.txt'} (8 characters)"]
    assert (work / "kept.txt").read_text(encoding="utf-8") == "original"
    assert store.checkpoints("r1") == []


def test_unknown_action_and_failing_compensator_are_reported_not_raised(
    store: StateStore, tmp_path: Path, registry: None
) -> None:
    done: list[int] = []

    @undo.register("test.ok")
    def _ok(payload: dict) -> str:
        done.append(payload["n"])
        return f"ok {payload['n']}"

    def _broken(payload: dict) -> str:
        raise OSError("mail server down")

    undo.register("test.broken", _broken)
    steps = Steps(store)
    steps.finish("one")
    with undo.recording(store, "r1", steps):
        undo.record("test.ok", {"n": 1})
        undo.record("test.broken", {"n": 2})
        undo.record("test.unheard_of", {"n": 3})
        undo.record("test.ok", {"n": 4})
        steps.finish("two")

    lines = undo.roll_back(store, "r1", 1)
    assert done == [4, 1]  # newest first, and past the failures
    assert lines[0] == "undone: ok 4"
    assert (
        lines[1].startswith("not undone: test.unheard_of (entry ") and "no compensator registered" in lines[1]
    )
    assert lines[2].startswith("not undone: test.broken (entry ") and "OSError: mail server down" in lines[2]
    assert lines[3] == "undone: ok 1"
    assert [c.step for c in store.checkpoints("r1")] == ["one"]  # truncated all the same
    left = store.undo_entries("r1", 0)
    assert sorted(e.action for e in left) == ["test.broken", "test.unheard_of"]  # tried again next time


def test_unknown_action_close_to_a_known_one_is_suggested(store: StateStore) -> None:
    store.add_undo("r1", 0, "file.restor", {"path": "/x", "previous": None})
    (line,) = undo.roll_back(store, "r1", 0)
    assert "(did you mean 'file.restore'?)" in line


def test_a_compensator_from_an_unimported_module_is_imported_on_rollback(
    store: StateStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: None
) -> None:
    pkg = tmp_path / "mods"
    pkg.mkdir()
    (pkg / "undo_plugin_x.py").write_text(
        "from crewkit.runtime import undo\n"
        "CALLS = []\n"
        "@undo.register('plugin.x')\n"
        "def _x(payload):\n"
        "    CALLS.append(payload)\n"
        "    return 'plugin undone'\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(pkg))
    import undo_plugin_x  # noqa: F401

    with undo.recording(store, "r1", lambda: 0):
        undo.record("plugin.x", {"n": 1})
    # a new process: the module is not imported and the action not registered
    del undo._registry["plugin.x"]
    monkeypatch.delitem(sys.modules, "undo_plugin_x")
    assert undo.roll_back(store, "r1", 0) == ["undone: plugin undone"]
    assert sys.modules["undo_plugin_x"].CALLS == [{"n": 1}]


def test_file_changed_by_someone_else_is_left_alone(store: StateStore, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    tool = FileWriteTool(base_dir=work)
    with undo.recording(store, "r1", lambda: 0):
        tool.run(path="a.txt", content="by the run")
    (work / "a.txt").write_text("edited by a person", encoding="utf-8")
    (line,) = undo.roll_back(store, "r1", 0)
    assert line.startswith("not undone: file.restore") and "changed after the run wrote it" in line
    assert (work / "a.txt").read_text(encoding="utf-8") == "edited by a person"


def test_restore_is_a_no_op_when_the_write_never_happened(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("before", encoding="utf-8")
    text = undo.restore_file({"path": str(path), "previous": "before", "written_sha256": "0" * 64})
    assert "already as it was" in text
    assert path.read_text(encoding="utf-8") == "before"
    missing = tmp_path / "gone.txt"
    assert "already as it was" in undo.restore_file({"path": str(missing), "previous": None})


def test_roll_back_to_an_unknown_checkpoint_changes_nothing(store: StateStore, tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    with undo.recording(store, "r1", lambda: 0):
        undo.record("file.restore", {"path": str(path), "previous": None})
    path.write_text("x", encoding="utf-8")
    store.add_checkpoint("r1", "one", None, {}, True)
    with pytest.raises(UsageError, match="cannot roll back to 5"):
        undo.roll_back(store, "r1", 5)
    with pytest.raises(UsageError, match="unknown run"):
        undo.roll_back(store, "nope", 0)
    assert path.exists() and len(store.undo_entries("r1", 0)) == 1 and len(store.checkpoints("r1")) == 1
