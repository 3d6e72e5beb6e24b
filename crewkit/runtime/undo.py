"""The undo log: side effects a run made, and how to compensate each one on rollback.

A tool that changes the world records what it did, right where it does it:

    from crewkit.runtime import undo

    undo.record("file.restore", {"path": str(path), "previous": old_text})

Outside a run `record` does nothing, so the same tool still works in a plain CrewAI crew. In a
run (the runner wraps it in `recording(store, run_id, checkpoint_count)`) the entry goes to the
state store with the number of checkpoints taken so far. `roll_back(store, run_id, to_seq)`
then runs the compensator of every entry made at or after checkpoint `to_seq`, newest first,
and truncates the run's state to that checkpoint.

Compensators are registered by action name, `fn(payload) -> str` saying what it undid:

    @undo.register("mail.recall")
    def _recall(payload: dict) -> str: ...

The module that registered an action is stored with each entry, so `crewkit rollback` in a new
process imports it again before looking the action up.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from crewkit.errors import UsageError
from crewkit.runtime.store import StateStore

log = logging.getLogger(__name__)

Compensator = Callable[[dict[str, Any]], str]

_registry: dict[str, tuple[Compensator, str | None]] = {}


@overload
def register(action: str, fn: Compensator) -> Compensator: ...
@overload
def register(action: str, fn: None = None) -> Callable[[Compensator], Compensator]: ...
def register(
    action: str, fn: Compensator | None = None
) -> Compensator | Callable[[Compensator], Compensator]:
    """Register `fn` as the compensator of `action`; without `fn`, a decorator."""

    def add(f: Compensator) -> Compensator:
        _registry[action] = (f, getattr(f, "__module__", None))
        return f

    return add(fn) if fn is not None else add


def registered() -> list[str]:
    return sorted(_registry)


@dataclass(frozen=True)
class _Recorder:
    store: StateStore
    run_id: str
    checkpoint_count: Callable[[], int]


_current: ContextVar[_Recorder | None] = ContextVar("crewkit_undo_recorder", default=None)


@contextmanager
def recording(store: StateStore, run_id: str, checkpoint_count: Callable[[], int]) -> Iterator[None]:
    """Within this block, `record` writes to `store` for `run_id`."""
    token = _current.set(_Recorder(store, run_id, checkpoint_count))
    try:
        yield
    finally:
        _current.reset(token)


def active() -> bool:
    """Whether a run is recording (tools may skip work needed only for the undo log)."""
    return _current.get() is not None


def record(action: str, payload: dict[str, Any]) -> int | None:
    """Log a side effect for the current run; returns the entry id, or None outside a run."""
    rec = _current.get()
    if rec is None:
        return None
    if action not in _registry:
        log.warning("undo: no compensator registered for %r; rollback will report it", action)
    origin = _registry.get(action, (None, None))[1]
    return rec.store.add_undo(rec.run_id, rec.checkpoint_count(), action, payload, origin=origin)


def _compensator(action: str, origin: str | None) -> Compensator | None:
    if action not in _registry and origin:
        try:
            importlib.import_module(origin)
        except Exception as exc:  # noqa: BLE001 - reported by the caller as "no compensator"
            log.warning("undo: importing %s for %r failed: %s", origin, action, exc)
    entry = _registry.get(action)
    return entry[0] if entry else None


def roll_back(store: StateStore, run_id: str, to_seq: int) -> list[str]:
    """Undo every side effect made at or after checkpoint `to_seq`, newest first, then truncate.

    Returns one line per entry: what was undone, or why not (unknown action, failing
    compensator). Those entries stay "not undone", so a later rollback tries them again.
    Raises only for an unknown run or checkpoint (UsageError, nothing changed).
    """
    run = store.require_run(run_id)
    last = len(store.checkpoints(run.run_id))
    if not 0 <= to_seq <= last:
        raise UsageError(f"run {run_id} has checkpoints 1..{last}; cannot roll back to {to_seq}")
    lines: list[str] = []
    for entry in store.undo_entries(run_id, to_seq):
        fn = _compensator(entry.action, entry.origin)
        if fn is None:
            from crewkit.settings import suggest  # pydantic: only when a message needs it

            lines.append(
                f"not undone: {entry.action} (entry {entry.id}): no compensator registered"
                f"{suggest(entry.action, _registry)}"
            )
            continue
        try:
            done = fn(dict(entry.payload))
        except Exception as exc:  # noqa: BLE001 - reported, never raised halfway through a rollback
            lines.append(f"not undone: {entry.action} (entry {entry.id}): {type(exc).__name__}: {exc}")
            continue
        store.mark_undone(entry.id)
        lines.append(f"undone: {done}")
    store.truncate(run_id, to_seq)
    return lines


# -- built-in compensators -----------------------------------------------------------------------


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@register("file.restore")
def restore_file(payload: dict[str, Any]) -> str:
    """Put a file back as it was: payload `path`, `previous` (text, or None: it did not exist).

    With `written_sha256` (what the run wrote), a file changed since by someone else is left
    alone and the rollback reports it.
    """
    path = Path(payload["path"])
    previous: str | None = payload.get("previous")
    current = path.read_text(encoding="utf-8") if path.is_file() else None
    if current == previous:
        return f"{path} is already as it was before the run"
    written = payload.get("written_sha256")
    if written is not None and (current is None or sha256_text(current) != written):
        raise RuntimeError(f"{path} changed after the run wrote it; left as it is")
    if previous is None:
        path.unlink()
        return f"deleted {path} (the run created it)"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, previous)
    return f"restored {path} ({len(previous)} characters)"
