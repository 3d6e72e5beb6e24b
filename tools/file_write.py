"""A CrewAI tool that writes text files inside one folder, and can be undone by a rollback.

    from tools.file_write import FileWriteTool

    Agent(config=self.agents_config["writer"], tools=[FileWriteTool(base_dir="output/drafts")])

A path that resolves outside `base_dir` (`..`, an absolute path elsewhere, a symlink out) is
refused, and so is replacing a file that is not UTF-8 text. In a crewkit run every write is
logged in the run's undo log ("file.restore", with the file's previous content) before it
happens, so rolling the run back puts the file back as it was or deletes it; in a plain CrewAI
crew the tool just writes. Writes are atomic (temporary file, then rename).

Writing files is an external side effect: the tool is labelled `risk_tier = "medium"`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from crewai.tools import BaseTool
from pydantic import BaseModel, Field

from crewkit.runtime import undo

MAX_CHARS = 1_000_000


class FileWriteInput(BaseModel):
    path: str = Field(..., description="File path relative to the tool's folder, e.g. 'notes/summary.md'")
    content: str = Field(..., description="The full text to write; replaces the file's content")


class FileWriteTool(BaseTool):
    name: str = "write_file"
    description: str = (
        "Write a text file (UTF-8) inside the tool's folder, replacing its content. Give 'path' "
        "relative to the folder and the full 'content'. Paths outside the folder are refused."
    )
    args_schema: type[BaseModel] = FileWriteInput
    base_dir: str
    risk_tier: ClassVar[str] = "medium"

    def __init__(self, base_dir: str | Path, **kwargs: Any) -> None:
        root = Path(base_dir).expanduser().resolve()
        if not root.is_dir():
            raise NotADirectoryError(f"FileWriteTool: '{base_dir}' is not a directory ({root})")
        super().__init__(base_dir=str(root), **kwargs)

    def _target(self, path: str) -> Path | str:
        """The file to write, or a refusal for the agent."""
        root = Path(self.base_dir)
        if not path.strip():
            return "refused: give a file path relative to the folder"
        target = Path(os.path.realpath(root / path.strip()))
        if target != root and root not in target.parents:
            return f"refused: '{path}' is outside the folder this tool may write to; use a path inside it"
        if target == root or target.is_dir():
            return f"refused: '{path}' is a folder; give a file path"
        return target

    def _run(self, path: str, content: str) -> str:
        target = self._target(path)
        if isinstance(target, str):
            return target
        if len(content) > MAX_CHARS:
            return f"refused: {len(content)} characters is more than the {MAX_CHARS} this tool writes"
        previous: str | None = None
        if target.exists():
            try:
                previous = target.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError) as exc:
                return f"refused: '{path}' exists and is not a readable UTF-8 text file ({exc}); not replaced"
        # Logged before the write: a crash between the two leaves an entry that undoes to a no-op.
        undo.record(
            "file.restore",
            {"path": str(target), "previous": previous, "written_sha256": undo.sha256_text(content)},
        )
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            undo.write_text_atomic(target, content)
        except OSError as exc:
            return f"error: could not write '{path}': {exc}"
        rel = target.relative_to(Path(self.base_dir))
        return f"wrote {len(content)} characters to {rel}"
