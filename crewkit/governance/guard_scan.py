"""`crewkit guard scan`: read JSONL items, scan each for prompt injection, yield result rows.

Input: one JSON object per line, `{"id": str | int, "text": str}` (other keys are ignored,
blank lines skipped). Every line is checked before anything is scanned, so a malformed line
stops the command with `FILE:LINE: what is wrong; how to fix` and nothing is written.
Output rows (design.md): `{"id", "verdict": "allow" | "review" | "block", "score", "reasons"}`,
in input order, the id exactly as given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from crewkit.errors import UsageError
from crewkit.governance.injection import scan

_EXAMPLE = '{"id": "1", "text": "..."}'


def read_items(lines: Iterable[str], source: str) -> list[tuple[str | int, str]]:
    """Parse JSONL {"id", "text"}; raise UsageError naming SOURCE:LINE for a malformed line."""
    items: list[tuple[str | int, str]] = []
    for lineno, line in enumerate(lines, start=1):
        if lineno == 1:
            line = line.lstrip("\ufeff")
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        try:
            value = json.loads(line)
        except ValueError as exc:
            msg = getattr(exc, "msg", str(exc))
            col = getattr(exc, "colno", None)
            at = f" at column {col}" if col else ""
            raise UsageError(
                f"{where}: not valid JSON ({msg}{at}); write one JSON object per line, like {_EXAMPLE}"
            ) from None
        if not isinstance(value, dict):
            raise UsageError(
                f"{where}: expected a JSON object, got {_kind(value)}; write one object per line, like {_EXAMPLE}"
            )
        if "id" not in value:
            raise UsageError(f'{where}: the object has no "id"; give each line an id, like {_EXAMPLE}')
        item_id = value["id"]
        if isinstance(item_id, bool) or not isinstance(item_id, str | int):
            raise UsageError(
                f'{where}: "id" must be a string or an integer, got {_kind(item_id)}; like {_EXAMPLE}'
            )
        if isinstance(item_id, str) and not item_id.strip():
            raise UsageError(f'{where}: "id" is empty; give each line a non-empty id, like {_EXAMPLE}')
        if "text" not in value:
            raise UsageError(f'{where}: the object has no "text"; add the text to scan, like {_EXAMPLE}')
        text = value["text"]
        if not isinstance(text, str):
            raise UsageError(
                f'{where}: "text" must be a string, got {_kind(text)}; quote it, like {_EXAMPLE}'
            )
        items.append((item_id, text))
    return items


def scan_items(items: Iterable[tuple[str | int, str]]) -> Iterator[dict[str, Any]]:
    """One result row per (id, text), in input order."""
    for item_id, text in items:
        result = scan(text)
        yield {
            "id": item_id,
            "verdict": result.verdict,
            "score": result.score,
            "reasons": list(result.reasons),
        }


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
