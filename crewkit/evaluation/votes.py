"""Arena votes as JSONL, compatible with FastChat's battle dumps.

One battle per line: `{"model_a": str, "model_b": str, "winner": "model_a" | "model_b" | "tie" |
"tie (bothbad)", "tstamp": float, ...}`. Every other key ("anony", "language", "turn", "judge",
"question_id", "conversation_a", ...) is kept in `Battle.extra` and written back on export.

`read_jsonl(path, on_bad="fail")` stops at the first malformed line with a one-line
`UsageError` (`FILE:LINE: what is wrong; fix ...`); `on_bad="skip"` keeps going and lists every
skipped line with its reason in `VotesFile.skipped`, so the caller can report them (never silently).
`write_jsonl(battles, out)` writes the same format back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from crewkit.errors import UsageError

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
TIES = ("tie", "tie (bothbad)")
_FIX = "fix the line (or pass --on-bad-line skip to leave it out)"


@dataclass(frozen=True, slots=True)
class Battle:
    """One voted battle; `extra` holds the line's other keys, kept as they were."""

    model_a: str
    model_b: str
    winner: str  # "model_a" | "model_b" | "tie" | "tie (bothbad)"
    tstamp: float
    extra: dict[str, Any] = field(default_factory=dict)
    line: int = 0  # the line it came from (0: not from a file)
    source: str = ""  # the file it came from

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source

    def as_dict(self) -> dict[str, Any]:
        """The FastChat line: the four known keys first, then the extra ones."""
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "winner": self.winner,
            "tstamp": self.tstamp,
            **{k: v for k, v in self.extra.items() if k not in _KNOWN},
        }


_KNOWN = ("model_a", "model_b", "winner", "tstamp")


@dataclass(frozen=True)
class VotesFile:
    path: Path
    battles: list[Battle]
    skipped: list[tuple[int, str]]  # (line number, what was wrong)

    def skipped_summary(self) -> str:
        """`FILE: skipped N malformed line(s): 3, 7, 12 (first: 3: reason)` or ''."""
        if not self.skipped:
            return ""
        shown = ", ".join(str(n) for n, _ in self.skipped[:20])
        more = f" and {len(self.skipped) - 20} more" if len(self.skipped) > 20 else ""
        first_line, first = self.skipped[0]
        return (
            f"{self.path}: skipped {len(self.skipped)} malformed line(s): {shown}{more} "
            f"(line {first_line}: {first})"
        )


try:  # orjson (a dependency) parses a line about three times as fast as json
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - the standard library does the same, slower
    _loads = json.loads
_WINNER_SET = frozenset(WINNERS)
_NUMBER = (int, float)


def parse_line(text: str, line: int = 0, source: str = "") -> Battle:
    """One JSONL line -> a Battle; ValueError says what is wrong (no file or line in it).

    The common case (a well-formed line) takes a fast path: a million-line dump reads in seconds."""
    try:
        doc = _loads(text)
    except ValueError:  # orjson's and json's decode errors are ValueErrors
        return _slow(text, line, source)
    if type(doc) is not dict:
        return _slow(text, line, source)
    model_a = doc.pop("model_a", None)
    model_b = doc.pop("model_b", None)
    winner = doc.pop("winner", None)
    tstamp = doc.pop("tstamp", 0.0)
    if (
        type(model_a) is str
        and type(model_b) is str
        and model_a != model_b
        and type(winner) is str
        and winner in _WINNER_SET
        and type(tstamp) in _NUMBER
        and model_a.strip()
        and model_b.strip()
        and math.isfinite(tstamp)
    ):
        return Battle(model_a, model_b, winner, float(tstamp), doc, line, source)
    return _slow(text, line, source)


def _slow(text: str, line: int, source: str) -> Battle:
    """The careful path: says exactly what is wrong with the line."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON at column {exc.colno}: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
    names = []
    for key in ("model_a", "model_b"):
        value = doc.get(key)
        if key not in doc:
            raise ValueError(f"missing '{key}'")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"'{key}' must be a non-empty string, got {json.dumps(value)}")
        names.append(value)
    if names[0] == names[1]:
        raise ValueError(f"model_a and model_b are the same model '{names[0]}'")
    if "winner" not in doc:
        raise ValueError("missing 'winner'")
    winner = doc["winner"]
    if not isinstance(winner, str) or winner not in _WINNER_SET:
        raise ValueError(
            f"'winner' is {json.dumps(winner)}; expected one of " + ", ".join(f'"{w}"' for w in WINNERS)
        )
    tstamp = doc.get("tstamp", 0.0)
    if isinstance(tstamp, bool) or not isinstance(tstamp, int | float) or not math.isfinite(tstamp):
        raise ValueError(f"'tstamp' must be a number (seconds since the epoch), got {json.dumps(tstamp)}")
    extra = {k: v for k, v in doc.items() if k not in _KNOWN}
    return Battle(names[0], names[1], winner, float(tstamp), extra, line, source)


def read_jsonl(path: Path, *, on_bad: Literal["fail", "skip"] = "fail") -> VotesFile:
    """Read a votes file. Blank lines are ignored; a malformed line fails (one line naming it) or,
    with `on_bad="skip"`, is left out and listed in `.skipped`."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8-sig")  # a BOM (Windows editors) is not part of line 1
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}; give a votes JSONL file") from None
    battles: list[Battle] = []
    skipped: list[tuple[int, str]] = []
    source = str(path)
    with handle:
        number = 0
        try:
            for number, text in enumerate(handle, 1):  # noqa: B007 - used after the loop on decode errors
                if not text.strip():
                    continue
                try:
                    battles.append(parse_line(text, number, source))
                except ValueError as exc:
                    if on_bad == "fail":
                        raise UsageError(f"{path}:{number}: {exc}; {_FIX}") from None
                    skipped.append((number, str(exc)))
        except UnicodeDecodeError:
            raise UsageError(f"{path}:{number + 1}: not UTF-8 text; save the votes file as UTF-8") from None
    return VotesFile(path, battles, skipped)


def write_jsonl(battles: Iterable[Battle], out: IO[str]) -> int:
    """Write battles as FastChat JSONL lines; returns how many."""
    count = 0
    for b in battles:
        out.write(json.dumps(b.as_dict(), ensure_ascii=False) + "\n")
        count += 1
    return count
