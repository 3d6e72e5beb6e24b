"""Read a YAML file and remember the line of every key, so errors can say FILE:LINE.

`load(path)` returns a `YamlDoc`: the plain data plus `line_of(loc)`, which maps a key path
(as pydantic reports it, e.g. ("roles", "reasoning", "model")) to the 1-based line where it
was written. Syntax errors become `ConfigError("FILE:LINE: ...")`. Anchors, aliases and merge keys
(`<<: *base`) mean what they mean to `yaml.safe_load` (and so to CrewAI); a merged key's line is
the line in the anchored mapping it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crewkit.errors import ConfigError


@dataclass(frozen=True)
class YamlDoc:
    path: Path
    data: Any
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)
    start: int = 1  # the line of the document's top (a part of a file starts further down)

    def line_of(self, loc: tuple[Any, ...]) -> int:
        """The line of the deepest key of `loc` that exists in the file (`start` if none)."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.start

    def where(self, loc: tuple[Any, ...]) -> str:
        return f"{display_path(self.path)}:{self.line_of(loc)}"


def display_path(path: Path) -> str:
    """A path relative to the working directory when it is inside it (shorter messages)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


MERGE_TAG = "tag:yaml.org,2002:merge"


def _build(node: yaml.Node, loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int], path: Path) -> Any:
    if isinstance(node, yaml.MappingNode):
        merged, merged_lines = _merged(node, path)
        own: dict[Any, Any] = {}
        own_lines: dict[tuple[Any, ...], int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = _scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            if key in own:
                raise ConfigError(
                    f"{display_path(path)}:{key_node.start_mark.line + 1}: duplicate key '{key}'; "
                    "remove one of the two entries"
                )
            own_lines[(key,)] = key_node.start_mark.line + 1
            own[key] = _build(value_node, (key,), own_lines, path)
        # Merged keys first (as yaml.safe_load orders them); a key written here wins over a merged one,
        # and keeps the line of the mapping it was written in (the anchor's, for a merged key).
        out = {key: value for key, value in merged.items() if key not in own} | own
        for sub, line in merged_lines.items():
            if sub[0] not in own:
                lines[loc + sub] = line
        for sub, line in own_lines.items():
            lines[loc + sub] = line
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            lines[loc + (i,)] = item.start_mark.line + 1
            items.append(_build(item, loc + (i,), lines, path))
        return items
    return _scalar(node)


def _merged(node: yaml.MappingNode, path: Path) -> tuple[dict[Any, Any], dict[tuple[Any, ...], int]]:
    """The keys a mapping's `<<:` merge keys bring in (YAML 1.1 merge; the first source wins)."""
    merged: dict[Any, Any] = {}
    merged_lines: dict[tuple[Any, ...], int] = {}
    for key_node, value_node in node.value:
        if key_node.tag != MERGE_TAG:
            continue
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise ConfigError(
                    f"{display_path(path)}:{source.start_mark.line + 1}: '<<' merges mappings only; "
                    "write '<<: *anchor' where the anchor names a mapping, or a list of them"
                )
            source_lines: dict[tuple[Any, ...], int] = {}
            data = _build(source, (), source_lines, path)
            for key, value in data.items():
                if key in merged:
                    continue
                merged[key] = value
                merged_lines.update({sub: line for sub, line in source_lines.items() if sub[0] == key})
    return merged, merged_lines


def _scalar(node: yaml.Node) -> Any:
    """Resolve one scalar the way yaml.safe_load would (ints, floats, bools, nulls, strings)."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def load(path: Path, *, required: bool = True) -> YamlDoc:
    """Parse `path`; a missing optional file is an empty mapping."""
    if not path.exists():
        if required:
            raise ConfigError(
                f"{display_path(path)}:1: file not found; create it (see README, 'Config reference')"
            )
        return YamlDoc(path, {}, {})
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{display_path(path)}:1: not UTF-8 text (byte {exc.start}); save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{display_path(path)}:1: cannot read it ({exc.strerror or exc}); make it a readable YAML file"
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(
            f"{display_path(path)}:{line}: invalid YAML: {problem}; fix the syntax there"
        ) from None
    if node is None:
        return YamlDoc(path, {}, {})
    lines: dict[tuple[Any, ...], int] = {}
    data = _build(node, (), lines, path)
    return YamlDoc(path, data, lines)
