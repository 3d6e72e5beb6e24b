"""What `crewkit memory ...` prints: tables for people, JSON for scripts (`--format json`).

Results go to stdout; the texts are user data, so they are printed as plain text (never rich
markup) and redacted like every other listing (`crewkit.console`).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from crewkit import console
from crewkit.memory.store import MemoryRecord, MemoryVersion, Recalled


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def record(rec: MemoryRecord, fmt: str, what: str) -> None:
    """One memory after a write: `what` says what happened ("added", "updated", ...)."""
    if fmt == "json":
        console._json_out(asdict(rec) | {"result": what})
        return
    scope = f"tenant '{rec.tenant}'" + (f", user '{rec.user}'" if rec.user else "")
    scope += f", agent '{rec.agent}'" if rec.agent else ""
    if what == "unchanged":
        console.write_result(f"memory {rec.id} unchanged at version {rec.version} (same text)\n")
    else:
        console.write_result(f"{what} memory {rec.id}: version {rec.version} ({scope})\n")


def records(rows: list[MemoryRecord], fmt: str) -> None:
    if fmt == "json":
        console._json_out([asdict(r) for r in rows])
        return
    if not rows:
        console.err.print(console._text("no memories in this scope", "dim"))
        return
    console._listing(
        ("id", "version", "updated", "user", "agent", "text"),
        [
            (r.id, str(r.version), _when(r.updated), r.user or "-", r.agent or "-", _one_line(r.text))
            for r in rows
        ],
        free="text",
    )


def recalled(rows: list[Recalled], fmt: str) -> None:
    if fmt == "json":
        console._json_out(
            [
                {
                    "id": r.id,
                    "version": r.version,
                    "score": round(r.score, 4),
                    "verdict": r.verdict,
                    "reasons": list(r.reasons),
                    "text": r.raw,
                    "shown": r.text,
                    "tenant": r.tenant,
                    "user": r.user,
                    "agent": r.agent,
                }
                for r in rows
            ]
        )
        return
    if not rows:
        console.err.print(console._text("no memory found", "dim"))
        return
    console._listing(
        ("id", "version", "score", "guard", "text"),
        [
            (
                r.id,
                str(r.version),
                f"{r.score:.3f}",
                "flagged" if r.verdict == "review" else "ok",
                _one_line(r.raw),
            )
            for r in rows
        ],
        free="text",
    )


def history(rows: list[MemoryVersion], fmt: str) -> None:
    if fmt == "json":
        console._json_out([asdict(v) for v in rows])
        return
    console._listing(
        ("version", "current", "created", "source", "run", "text"),
        [
            (
                str(v.version),
                "*" if v.current else "",
                _when(v.created),
                v.source,
                v.run_id or "-",
                _one_line(v.text),
            )
            for v in rows
        ],
        free="text",
    )


def deleted(what: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        console._json_out(what)
        return
    if "memory_id" in what:
        console.write_result(
            f"deleted memory {what['memory_id']}: {what['versions']} version(s) and its vector "
            "(the audit log keeps their digests only)\n"
        )
    else:
        console.write_result(
            f"deleted {what['memories']} memory(ies) of user '{what['user']}' in tenant '{what['tenant']}' "
            "(the audit log keeps their digests only)\n"
        )
