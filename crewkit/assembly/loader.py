"""Importing user code: `crews/*/crew.py` and `flows/*.py` from this project, errors at the user's line.

An error raised while importing a user's file (a syntax error, a failed import, a CrewAI
validation error at class creation) becomes a one-line `ConfigError` at that file and line.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import traceback
from pathlib import Path
from typing import Any

from crewkit import yamlfile
from crewkit.assembly.spec import CrewSpec, crew_module_file
from crewkit.errors import ConfigError


def import_project_module(project_dir: Path, dotted: str) -> Any:
    """Import `crews.x.crew` / `flows.x` from *this* project's folders (they win over installed copies).

    An error raised while importing the user's file becomes a one-line `ConfigError` at its line.
    """
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    # crews/, flows/ and tools/ are packages user code imports from each other
    # (`from crews.research.crew import ResearchCrew` in a flow): this project's folders first.
    for top in dict.fromkeys([dotted.split(".", 1)[0], "crews", "flows", "tools"]):
        folder = project_dir / top
        if not (folder / "__init__.py").is_file():
            continue
        package = importlib.import_module(top)
        if str(folder) not in list(package.__path__):
            package.__path__.insert(0, str(folder))
    try:
        return importlib.import_module(dotted)
    except SyntaxError as exc:
        where = f"{yamlfile.display_path(Path(exc.filename or dotted))}:{exc.lineno or 1}"
        raise ConfigError(f"{where}: syntax error: {exc.msg}") from None
    except Exception as exc:
        raise ConfigError(
            f"{user_frame(exc, project_dir)}: cannot import {dotted}: {type(exc).__name__}: {exc}"
        ) from None


def user_frame(exc: BaseException, project_dir: Path) -> str:
    """FILE:LINE of the deepest traceback frame inside the project (the user's code), else the project."""
    where = yamlfile.display_path(project_dir)
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        if path.is_relative_to(project_dir) and ".venv" not in path.parts:
            where = f"{yamlfile.display_path(path)}:{frame.lineno}"
    return where


def load_crew_class(spec: CrewSpec, project_dir: Path) -> type:
    path = crew_module_file(spec.directory) or spec.directory / "crew.py"
    module = import_project_module(project_dir, f"crews.{spec.name}.{path.stem}")
    classes = [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if getattr(obj, "is_crew_class", False) and obj.__module__ == module.__name__
    ]
    if not classes:
        raise ConfigError(
            f"{yamlfile.display_path(path)}:1: no @CrewBase class found; decorate your crew class"
        )
    return classes[0]
