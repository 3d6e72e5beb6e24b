"""Read-only access to one folder, from crewai-tools' stock DirectoryReadTool and FileReadTool.

    from tools.folder_read import folder_read_tools

    Agent(config=self.agents_config["researcher"], tools=folder_read_tools("knowledge"))

The agent can list the files under the folder and read any of them; a path outside it is
refused by FileReadTool's sandbox (`base_dir`), and the listing tool takes no path at all.
The folder must lie under the current directory (crewai-tools' rule; crewkit runs in the project
root). Give it a data folder, not the project root itself: it would list and read `.env` there.
Both tools work offline. Importing crewai_tools adds a few seconds to a crew's start-up.
"""

from __future__ import annotations

from pathlib import Path

from crewai.tools import BaseTool
from crewai_tools import DirectoryReadTool, FileReadTool


def folder_read_tools(folder: str | Path) -> list[BaseTool]:
    """A listing tool and a reading tool, both confined to `folder` (under the current directory)."""
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"folder_read_tools: '{folder}' is not a directory ({root})")
    return [DirectoryReadTool(directory=str(root)), FileReadTool(base_dir=str(root))]
