"""A crew's kickoff inputs, checked before CrewAI interpolates them (no model call yet).

`check(crew, inputs, settings)` runs at CrewAI's `INPUT` interception point for every kickoff
while a role map is bound (see `crewkit.assembly.wire`), and so for stock code too:

- every `{variable}` the crew's tasks and agents use must have a value: a missing one is one
  line naming the variable, where it is used and how to pass it (`--inputs '{...}'` for
  `crewkit crew`, the crew's `kickoff(inputs=...)` in a flow's code), exit 2,
  instead of CrewAI's traceback after the run has started. Like CrewAI, a kickoff with no inputs
  at all leaves the text as written (crewkit's own flow passes pre-filled tasks that way);
  `crewkit crew NAME` always checks (`strict=True`): its inputs only come from `--inputs`.
- a task's relative `output_file` (the `crewai create crew` template writes `report.md`) is put
  under the project's `output/` folder instead of the working directory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from crewai.hooks.dispatch import HookAborted

from crewkit import yamlfile
from crewkit.errors import UsageError
from crewkit.settings import Settings

VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_\-]*)}")  # CrewAI's own pattern (interpolate_only)


class MissingInput(UsageError, HookAborted):
    """A template variable without a value; aborts the kickoff through CrewAI's hook path."""

    def __init__(self, message: str) -> None:
        HookAborted.__init__(self, message, source="crewkit")


def _original(obj: Any, field: str) -> str:
    value = getattr(obj, f"_original_{field}", None)
    if value is None:
        value = getattr(obj, field, None)
    return value if isinstance(value, str) else ""


def _uses(crew: Any) -> list[tuple[str, str, str]]:
    """(variable, what uses it, the text it is in) for every task and agent text of the crew."""
    found: list[tuple[str, str, str]] = []
    for task in crew.tasks:
        label = f"task '{task.name or str(task.description)[:40].strip()}'"
        for field in ("description", "expected_output", "output_file"):
            text = _original(task, field)
            found += [(var, f"{label} ({field})", text) for var in VARIABLE.findall(text)]
    agents = list(crew.agents) + [t.agent for t in crew.tasks if t.agent is not None]
    seen: set[int] = set()
    for agent in agents:
        if id(agent) in seen:
            continue
        seen.add(id(agent))
        for field in ("role", "goal", "backstory"):
            text = _original(agent, field)
            label = f"agent '{_original(agent, 'role').strip()}' ({field})"
            found += [(var, label, text) for var in VARIABLE.findall(text)]
    return found


def _yaml_line(settings: Settings, text: str, variable: str) -> str | None:
    """FILE:LINE where `{variable}` is written in the crews/*/config YAML entry whose value is `text`."""
    wanted = text.strip()
    root = settings.crews_dir
    for path in sorted(root.glob("*/config/*.yaml")) if root.is_dir() else []:
        try:
            doc = yamlfile.load(path)
        except Exception:  # noqa: BLE001 - a broken file is reported by config check, not here
            continue
        for key, info in (doc.data or {}).items() if isinstance(doc.data, dict) else []:
            if not isinstance(info, dict):
                continue
            for field, value in info.items():
                if isinstance(value, str) and value.strip() == wanted:
                    start = doc.line_of((key, field))
                    lines = path.read_text(encoding="utf-8").splitlines()
                    line = next(
                        (n for n in range(start, len(lines) + 1) if "{" + variable + "}" in lines[n - 1]),
                        start,
                    )
                    return f"{yamlfile.display_path(path)}:{line}"
    return None


def check_variables(crew: Any, inputs: dict[str, Any] | None, settings: Settings, *, strict: bool) -> None:
    if not inputs and not strict:
        return  # CrewAI interpolates nothing without inputs
    given = dict(inputs or {})
    uses = _uses(crew)
    missing = [(var, label, text) for var, label, text in uses if var not in given]
    if not missing:
        return
    names = list(dict.fromkeys(var for var, _, _ in missing))
    var, label, text = missing[0]
    where = _yaml_line(settings, text, var)
    needed = list(dict.fromkeys([*given, *(v for v, _, _ in uses)]))
    example = json.dumps({name: given.get(name, "...") for name in needed}, ensure_ascii=False)
    variables = ", ".join("{" + n + "}" for n in names)
    it = "it" if len(names) == 1 else "them"
    fix = (
        f"pass {it}: --inputs '{example}'" if strict else f"give {it} in the crew's kickoff(inputs={example})"
    )
    raise MissingInput(
        f"{where + ': ' if where else ''}{label} uses {variables}, which the inputs do not give; {fix}"
    )


def place_output_files(crew: Any, settings: Settings) -> None:
    """A task's relative `output_file` goes under <project>/output/ (CrewAI: the working dir)."""
    for task in crew.tasks:
        path = getattr(task, "_original_output_file", None) or task.output_file
        if not path or Path(path).is_absolute():
            continue
        parts = Path(path).parts
        relative = Path(*parts[1:]) if parts and parts[0] == "output" and len(parts) > 1 else Path(path)
        placed = str(settings.output_dir / relative)
        task.output_file = placed
        if getattr(task, "_original_output_file", None):
            task._original_output_file = placed
        if task.create_directory is None:
            task.create_directory = True


_STRICT: ContextVar[bool] = ContextVar("crewkit_strict_inputs", default=False)


@contextmanager
def strict() -> Iterator[None]:
    """Kickoffs inside the block are checked as `crewkit crew` checks (`strict=True`), at the
    INPUT hook: after the crew's @before_kickoff methods, which may fill some inputs in."""
    token = _STRICT.set(True)
    try:
        yield
    finally:
        _STRICT.reset(token)


def check(crew: Any, inputs: dict[str, Any] | None, settings: Settings, *, strict: bool = False) -> None:
    """Both checks above; raises `MissingInput` (exit 2) before any model call."""
    check_variables(crew, inputs, settings, strict=strict or _STRICT.get())
    place_output_files(crew, settings)
