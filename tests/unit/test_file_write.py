"""FileWriteTool: writes inside its folder only, labels itself medium risk, logs undo entries in a run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crewkit.runtime import undo
from crewkit.runtime.store import StateStore
from tools.file_write import FileWriteTool


@pytest.fixture
def work(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


def test_writes_text_inside_its_folder_outside_a_run(work: Path) -> None:
    tool = FileWriteTool(base_dir=work)
    assert (
        tool.run(path="notes/summary.md", content="héllo 中文\n") == "wrote 9 characters to notes/summary.md"
    )
    assert (work / "notes" / "summary.md").read_text(encoding="utf-8") == "héllo 中文\n"
    assert tool.run(path="notes/summary.md", content="v2") == "wrote 2 characters to notes/summary.md"
    assert (work / "notes" / "summary.md").read_text(encoding="utf-8") == "v2"
    assert [p.name for p in (work / "notes").iterdir()] == ["summary.md"]  # no temporary files left


@pytest.mark.parametrize("path", ["../escape.txt", "a/../../escape.txt", "/tmp/escape-crewkit.txt"])
def test_refuses_paths_outside_its_folder(work: Path, path: str) -> None:
    tool = FileWriteTool(base_dir=work)
    out = tool.run(path=path, content="x")
    assert out.startswith("refused: ") and "outside the folder" in out
    assert not (work.parent / "escape.txt").exists()
    assert not Path("/tmp/escape-crewkit.txt").exists()


def test_refuses_a_symlink_that_leads_out(work: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, work / "link")
    os.symlink(outside / "target.txt", work / "file-link.txt")
    tool = FileWriteTool(base_dir=work)
    assert "outside the folder" in tool.run(path="link/x.txt", content="x")
    assert "outside the folder" in tool.run(path="file-link.txt", content="x")
    assert list(outside.iterdir()) == []


def test_refuses_folders_empty_paths_and_binary_files(work: Path) -> None:
    (work / "sub").mkdir()
    (work / "blob.bin").write_bytes(b"\xff\xfe\x00binary")
    tool = FileWriteTool(base_dir=work)
    assert "is a folder" in tool.run(path="sub", content="x")
    assert "is a folder" in tool.run(path=".", content="x")
    assert tool.run(path="  ", content="x").startswith("refused: ")
    assert "not a readable UTF-8 text file" in tool.run(path="blob.bin", content="x")
    assert (work / "blob.bin").read_bytes() == b"\xff\xfe\x00binary"


def test_base_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        FileWriteTool(base_dir=tmp_path / "missing")


def test_is_labelled_medium_risk(work: Path) -> None:
    assert FileWriteTool.risk_tier == "medium"
    assert FileWriteTool(base_dir=work).risk_tier == "medium"


def test_in_a_run_each_write_is_logged_with_the_previous_content(work: Path, tmp_path: Path) -> None:
    store = StateStore.open(tmp_path / "home")
    store.create_run("r1", "default", {}, "fp", None)
    (work / "a.txt").write_text("before", encoding="utf-8")
    tool = FileWriteTool(base_dir=work)
    with undo.recording(store, "r1", lambda: 3):
        tool.run(path="a.txt", content="after")
        tool.run(path="b.txt", content="new")
        tool.run(path="../nope.txt", content="refused, so not logged")
    entries = store.undo_entries("r1", 0)
    assert [
        (e.action, e.checkpoint, Path(e.payload["path"]).name, e.payload["previous"]) for e in entries
    ] == [
        ("file.restore", 3, "b.txt", None),
        ("file.restore", 3, "a.txt", "before"),
    ]
    assert entries[1].payload["written_sha256"] == undo.sha256_text("after")
    store.close()


def test_a_crewai_agent_writing_a_file_in_a_run_can_be_rolled_back(work: Path, tmp_path: Path) -> None:
    from crewai import Agent, Crew, Task

    from tests.fakes import ScriptedLLM, tool_call

    store = StateStore.open(tmp_path / "home")
    store.create_run("r1", "default", {}, "fp", None)
    (work / "report.md").write_text("old report", encoding="utf-8")
    llm = ScriptedLLM(
        [tool_call("write_file", path="report.md", content="new report"), "Done: report written."]
    )
    agent = Agent(
        role="Writer",
        goal="Write the report.",
        backstory="Terse.",
        llm=llm,
        tools=[FileWriteTool(base_dir=work)],
    )
    task = Task(description="Write the report file.", expected_output="One sentence.", agent=agent)
    with undo.recording(store, "r1", lambda: 0):
        Crew(agents=[agent], tasks=[task]).kickoff()
    assert (work / "report.md").read_text(encoding="utf-8") == "new report"
    assert [e.payload["previous"] for e in store.undo_entries("r1", 0)] == ["old report"]
    assert undo.roll_back(store, "r1", 0) == [f"undone: restored {work / 'report.md'} (10 characters)"]
    assert (work / "report.md").read_text(encoding="utf-8") == "old report"
    store.close()
