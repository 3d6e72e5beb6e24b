"""The audit log: append-only, hash-chained records in state.db.

Each record is `{seq, ts, actor, action, subject, detail, prev_hash, hash}` with
`hash = sha256(prev_hash + canonical JSON of {seq, ts, actor, action, subject, detail})`
(canonical: keys sorted, no spaces, UTF-8). The first record's `prev_hash` is the anchor's hash
(after a purge) or 64 zeros. `append(conn, entry)` writes one record inside the caller's write
transaction, so a record and the state change it describes commit together or not at all;
BEGIN IMMEDIATE serialises writers across processes, so the chain stays linear.

Details are scrubbed before they are hashed: secrets (`crewkit.redact`) and personal data
(`crewkit.governance.pii`) never reach the log.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Entry:
    """What happened: `action` ("model.call", "approval.decided", ...), on what (`subject`)."""

    action: str
    subject: str
    detail: dict[str, Any] = field(default_factory=dict)
    actor: str = "crewkit"
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    ts: float
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str
    run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ts": self.ts,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record_hash(
    prev_hash: str, seq: int, ts: float, actor: str, action: str, subject: str, detail: Any
) -> str:
    body = canonical(
        {"seq": seq, "ts": ts, "actor": actor, "action": action, "subject": subject, "detail": detail}
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def digest(text: Any) -> str:
    """sha256 of a prompt or a response (what the log keeps instead of the text by default)."""
    data = text if isinstance(text, str) else canonical(text)
    return "sha256:" + hashlib.sha256(data.encode("utf-8")).hexdigest()


def scrub(value: Any) -> Any:
    """A detail as it may be stored: secrets and personal data masked, JSON-safe."""
    from crewkit.redact import redact_obj

    cleaned = redact_obj(json.loads(canonical(value)))
    try:
        from crewkit.governance import pii
    except ImportError:  # pragma: no cover - pii lands with the same issue
        return cleaned
    return pii.redact_obj(cleaned)


def head(conn: sqlite3.Connection) -> tuple[int, str]:
    """The last record's (seq, hash), else the anchor's, else (0, GENESIS)."""
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        row = conn.execute("SELECT seq, hash FROM audit_anchor WHERE id = 1").fetchone()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


def append(conn: sqlite3.Connection, entry: Entry, ts: float | None = None) -> Record:
    """Append `entry` inside the caller's open write transaction (BEGIN IMMEDIATE)."""
    seq, prev = head(conn)
    seq += 1
    ts = time.time() if ts is None else ts
    actor = str(scrub(entry.actor))
    subject = str(scrub(entry.subject))
    detail = scrub(entry.detail)
    if entry.run_id is not None:
        detail.setdefault("run_id", entry.run_id)
    digest_ = record_hash(prev, seq, ts, actor, entry.action, subject, detail)
    conn.execute(
        "INSERT INTO audit (seq, ts, actor, action, subject, detail, prev_hash, hash, run_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, ts, actor, entry.action, subject, canonical(detail), prev, digest_, entry.run_id),
    )
    return Record(seq, ts, actor, entry.action, subject, detail, prev, digest_, entry.run_id)


def record(store: Any, entry: Entry) -> Record:
    """Append `entry` in a transaction of its own (an event with no other state change)."""
    with store.write() as conn:
        return append(conn, entry)
