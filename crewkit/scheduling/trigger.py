"""A trigger's payload (a scheduler's, a webhook's, CrewAI's `run_with_trigger`) checked at the edge.

`parse_object(text, source)` reads one JSON object strictly: invalid JSON, a non-object, NaN or
Infinity (not JSON), a key given twice, nesting deeper than `MAX_DEPTH`, or text that is not
valid Unicode (a lone surrogate such as "\\ud800", which no file or database can store) is a
one-line `UsageError` naming `source` and the field. `split(payload)` turns a payload into the
flow's inputs and the payload start steps receive (CrewAI passes it as `crewai_trigger_payload`).
Both run before a run row, a record or a log line exists: nothing is half-started.
"""

from __future__ import annotations

import json
from typing import Any

from crewkit.errors import UsageError

TRIGGER_KEY = "crewai_trigger_payload"  # the name CrewAI's templates pass a trigger's payload under
MAX_DEPTH = 64
SOURCE = "trigger payload"


def _path(parts: list[Any]) -> str:
    """`inputs.items[2]`; a key that is not valid Unicode is shown escaped (`\\ud800`)."""
    out = ""
    for part in parts:
        name = str(part).encode("utf-8", "backslashreplace").decode("utf-8")
        out += f"[{part}]" if isinstance(part, int) else (f".{name}" if out else name)
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key '{key}' is given twice")
        out[key] = value
    return out


def _check(value: Any, source: str) -> None:
    """Depth and Unicode, iteratively (a hostile payload must not exhaust the stack)."""
    stack: list[tuple[Any, list[Any]]] = [(value, [])]
    while stack:
        item, where = stack.pop()
        if len(where) > MAX_DEPTH:
            raise UsageError(
                f"{source}: field '{_path(where[:3])}...' is nested deeper than {MAX_DEPTH} levels"
            )
        if isinstance(item, dict):
            for key, sub in item.items():
                _text(key, where + [key], source, "key")
                stack.append((sub, where + [key]))
        elif isinstance(item, list):
            stack.extend((sub, where + [i]) for i, sub in enumerate(item))
        elif isinstance(item, str):
            _text(item, where, source, "value")


def _text(text: str, where: list[Any], source: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        field = _path(where) or "(top level)"
        raise UsageError(
            f"{source}: field '{field}': the {what} is not valid Unicode (a lone surrogate "
            f"\\u{ord(text[exc.start]):04x} at character {exc.start + 1}); send UTF-8 text"
        ) from None


def parse_object(text: str, source: str = SOURCE, example: str = '{"task": "..."}') -> dict[str, Any]:
    """One strict JSON object from `text`, or a one-line UsageError naming `source`."""
    try:
        value = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; "
            f"pass an object such as '{example}'"
        ) from None
    except ValueError as exc:  # NaN/Infinity, a duplicate key
        raise UsageError(f"{source}: {exc}; pass plain JSON (each key once, numbers finite)") from None
    except RecursionError:
        raise UsageError(
            f"{source}: nested deeper than Python can read; keep it under {MAX_DEPTH} levels"
        ) from None
    if not isinstance(value, dict):
        raise UsageError(f"{source}: expected a JSON object such as '{example}', got {_kind(value)}")
    _check(value, source)
    return value


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def split(payload: dict[str, Any], source: str = SOURCE) -> tuple[dict[str, Any], dict[str, Any]]:
    """A payload -> (the flow's inputs, the payload start steps receive).

    A payload wrapped as `{"crewai_trigger_payload": {...}}` is unwrapped. The inputs are its
    `inputs` object when it has one (its other keys stay in the payload), else every key of the
    payload, so the flow's `Inputs` model names any key it does not accept. No key is dropped."""
    if TRIGGER_KEY in payload:
        inner = payload[TRIGGER_KEY]
        if len(payload) > 1:
            others = ", ".join(sorted(k for k in payload if k != TRIGGER_KEY))
            raise UsageError(
                f"{source}: field '{TRIGGER_KEY}' wraps the whole payload, but '{others}' is beside it; "
                f"put every key inside '{TRIGGER_KEY}', or drop the wrapper"
            )
        if not isinstance(inner, dict):
            raise UsageError(f"{source}: field '{TRIGGER_KEY}' must be an object, got {_kind(inner)}")
        payload = inner
    if "inputs" in payload:
        inputs = payload["inputs"]
        if not isinstance(inputs, dict):
            raise UsageError(
                f'{source}: field \'inputs\' must be an object such as {{"task": "..."}}, got {_kind(inputs)}'
            )
        where = "inputs."
    else:
        inputs, where = payload, ""
    if TRIGGER_KEY in inputs:
        raise UsageError(
            f"{source}: field '{where}{TRIGGER_KEY}' is reserved for the payload itself; rename it"
        )
    return dict(inputs), payload


def check_inputs(flow_cls: type, inputs: dict[str, Any], nested: bool, source: str = SOURCE) -> None:
    """The flow's `Inputs` model against inputs that came from a payload: its errors name the
    payload's field (`inputs.task`, or `task` when the payload is the inputs), not `--inputs`."""
    from crewkit.runtime.preflight import validate_inputs

    try:
        validate_inputs(flow_cls, inputs)
    except UsageError as exc:
        text = str(exc).removeprefix("--inputs: ").split(" (e.g. --inputs", 1)[0]
        if nested:
            text = text.replace("field '", "field 'inputs.", 1)
        raise UsageError(f"{source}: {text}") from None
