"""The audit log: append-only, hash-chained records in state.db.

Each record is `{seq, ts, actor, action, subject, detail, prev_hash, hash}` with
`hash = sha256(prev_hash + canonical JSON of {seq, ts, actor, action, subject, detail})`
(canonical: keys sorted, no spaces, UTF-8). The first record's `prev_hash` is the anchor's hash
(after a purge) or 64 zeros. `append(conn, entry)` writes one record inside the caller's write
transaction, so a record and the state change it describes commit together or not at all;
BEGIN IMMEDIATE serialises writers across processes, so the chain stays linear.

Details are scrubbed before they are hashed: secrets (`crewkit.redact`) and personal data
(`crewkit.governance.pii`) never reach the log.

`verify(store)` walks the chain and names the first record that was edited (its hash does not
match its content), removed (a gap in seq, or a prev_hash that names another record) or
reordered. `purge(store, days)` removes the oldest records from the start of the chain only,
keeps the last removed record's (seq, hash) as the anchor the rest chains from, and logs
itself as an `audit.purged` record, all in one transaction. `export` writes JSONL.

What a hash chain cannot show by itself: removal of the newest records (the tail) leaves a
shorter chain that is still valid, and whoever can write the file can rewrite and re-hash the
whole chain. `verify` returns the head (seq, hash): an operator who keeps it elsewhere (a
ticket, a log shipper, a WORM bucket) detects both by comparing it with a later verify.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from crewkit.errors import StateStoreError, UsageError

GENESIS = "0" * 64
PURGED = "audit.purged"
COLUMNS = "seq, ts, actor, action, subject, detail, prev_hash, hash, run_id"  # a row, in Record's order


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
    prev_hash: str,
    seq: int,
    ts: float,
    actor: str,
    action: str,
    subject: str,
    detail: Any,
    detail_json: str | None = None,
) -> str:
    """sha256(prev_hash + canonical JSON of the record's other fields). `detail_json`, when the
    caller has it, is `canonical(detail)`: the body is then put together around it (the same
    text `canonical` gives for the whole record: keys in sorted order) instead of encoding the
    detail a second time."""
    if detail_json is None:
        detail_json = canonical(detail)
    body = (
        f'{{"action":{_scalar(action)},"actor":{_scalar(actor)},"detail":{detail_json},'
        f'"seq":{_scalar(seq)},"subject":{_scalar(subject)},"ts":{_scalar(ts)}}}'
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def digest(text: Any) -> str:
    """sha256 of a prompt or a response (what the log keeps instead of the text by default)."""
    data = text if isinstance(text, str) else canonical(text)
    return "sha256:" + hashlib.sha256(data.encode("utf-8")).hexdigest()


_DIGEST_TEXT = re.compile(r"sha256:[0-9a-f]{64}")
_PLAIN_WORDS = re.compile(r"[A-Za-z .,/()'-]{0,13}")  # no digit, no @, too short for a key or token


def scrub(value: Any) -> Any:
    """A detail as it may be stored: secrets and personal data masked, JSON-safe (what a
    round trip through JSON gives: tuples as lists, keys as strings, other objects as text).

    On the hook path, so strings that cannot hold either are kept as they are: digests, and
    short digit-free words (personal data needs a digit or an @; a key or `token=...` is longer),
    unless an environment secret's value is inside; and a short string already cleaned under
    the same environment secrets is not cleaned again (model, agent and role names repeat on
    every call)."""
    from crewkit.governance import pii
    from crewkit.redact import env_secrets, redact

    secrets = env_secrets()
    global _cache_for
    if _cache_for is not secrets or len(_clean_cache) > _CACHE_MAX:
        _clean_cache.clear()
        _cache_for = secrets

    def text(item: str) -> str:
        cached = _clean_cache.get(item)
        if cached is not None:
            return cached
        if (_DIGEST_TEXT.fullmatch(item) or _PLAIN_WORDS.fullmatch(item)) and not any(
            v in item for v in secrets
        ):
            out = item
        else:
            out = pii.redact(redact(item, secrets))
        if len(item) <= _CACHE_LEN:
            _clean_cache[item] = out
        return out

    def clean(item: Any) -> Any:
        if isinstance(item, str):
            return text(item)
        if item is None or isinstance(item, bool | int | float):
            return item
        if isinstance(item, dict):
            return {_key(k): clean(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [clean(v) for v in item]
        return text(str(item))

    return clean(value)


def _key(key: Any) -> str:
    """A dict key as JSON has it (json.dumps turns 1 into "1", True into "true", None into "null")."""
    return (
        key
        if isinstance(key, str)
        else json.dumps(key)
        if isinstance(key, bool | int | float | None)
        else str(key)
    )


_clean_cache: dict[str, str] = {}
_cache_for: Any = None
_CACHE_MAX = 2048
_CACHE_LEN = 200


def head(conn: sqlite3.Connection) -> tuple[int, str]:
    """The last record's (seq, hash), else the anchor's, else (0, GENESIS)."""
    row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        row = conn.execute("SELECT seq, hash FROM audit_anchor WHERE id = 1").fetchone()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


def append(conn: sqlite3.Connection, entry: Entry, ts: float | None = None) -> Record:
    """Append `entry` inside the caller's open write transaction (BEGIN IMMEDIATE).

    The run id is both a column (for `export --run`) and `detail["run_id"]` (so it is hashed);
    `entry.run_id` wins over a `run_id` in the detail, and a detail's own `run_id` fills the
    column when the entry names none."""
    seq, prev = head(conn)
    seq += 1
    ts = time.time() if ts is None else ts
    clean = scrub({"actor": entry.actor, "subject": entry.subject, "detail": entry.detail})
    actor, subject, detail = str(clean["actor"]), str(clean["subject"]), clean["detail"]
    run_id = entry.run_id
    if run_id is not None:
        detail["run_id"] = run_id
    elif isinstance(detail.get("run_id"), str):
        run_id = detail["run_id"]
    detail_json = canonical(detail)
    digest_ = record_hash(prev, seq, ts, actor, entry.action, subject, detail, detail_json)
    conn.execute(
        f"INSERT INTO audit ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, ts, actor, entry.action, subject, detail_json, prev, digest_, run_id),
    )
    return Record(seq, ts, actor, entry.action, subject, detail, prev, digest_, run_id)


def record(store: Any, entry: Entry) -> Record:
    """Append `entry` in a transaction of its own (an event with no other state change)."""
    with store.write() as conn:
        return append(conn, entry)


# --- verify -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """`ok`, or the first bad record (`first_bad`, a seq) and a one-line `problem`. `head_seq`
    and `head_hash` are the newest record's: keep them elsewhere to detect tail removal."""

    ok: bool
    checked: int
    first_bad: int | None
    problem: str | None
    head_seq: int
    head_hash: str


@dataclass(frozen=True)
class Purged:
    removed: int
    first_seq: int | None  # the first and last record removed (None when none was)
    last_seq: int | None
    anchor_seq: int | None  # the anchor the remaining chain starts from (None: the genesis)
    anchor_hash: str | None
    cutoff: float  # records older than this (epoch seconds) were due
    record: Record  # the `audit.purged` record that logs this purge


@contextmanager
def _snapshot(store: Any) -> Iterator[sqlite3.Connection]:
    """A read transaction on a connection of its own: one consistent view of the chain and its
    anchor while other processes keep appending (WAL), and no write lock held meanwhile."""
    try:
        with store.snapshot() as conn:  # SQLite: a connection of its own; PostgreSQL: REPEATABLE READ
            conn.execute("SELECT COUNT(*) FROM audit_anchor").fetchone()  # the snapshot starts here
            yield conn
    except sqlite3.DatabaseError as exc:
        raise StateStoreError(
            f"{store.path}: cannot read the audit log ({exc}); check the file and its folder, "
            "or move a damaged file aside (crewkit starts a new one)"
        ) from None


def _span(first: int, last: int) -> str:
    return f"record {first} is" if first == last else f"records {first}-{last} are"


class _Chain:
    """Walks records in seq order from a start (the anchor, else the genesis) and says what is
    wrong with the first one that does not belong."""

    def __init__(self, conn: sqlite3.Connection, anchor: tuple[int, str] | None) -> None:
        self.conn = conn
        self.anchor = anchor
        self.seq, self.hash = anchor if anchor else (0, GENESIS)
        self.checked = 0
        self.last_purge: tuple[int, dict[str, Any]] | None = None

    def check(self, row: tuple[Any, ...]) -> tuple[int, str] | None:
        seq, ts, actor, action, subject, detail_text, prev_hash, digest_, run_id = row
        expected = self.seq + 1
        if seq != expected:
            return self._gap(seq, expected)
        try:
            detail = json.loads(detail_text)
        except ValueError:
            return seq, f"record {seq} was edited (its detail is not valid JSON)"
        content_ok = record_hash(prev_hash, seq, ts, actor, action, subject, detail) == digest_
        if not content_ok:
            moved = self._written_as(prev_hash, ts, actor, action, subject, detail, digest_)
            if moved is not None and moved != seq:
                return (
                    seq,
                    f"record {seq} is out of order (it was written as record {moved}): records reordered",
                )
            return seq, f"record {seq} was edited (its hash does not match its content)"
        if prev_hash != self.hash:
            return seq, self._unlinked(seq)
        detail_run = detail.get("run_id") if isinstance(detail, dict) else None
        if detail_run != run_id:
            return seq, (
                f"record {seq} was edited (its run_id column {run_id!r} differs from the run_id "
                f"in its detail {detail_run!r})"
            )
        if action == PURGED and isinstance(detail, dict):
            self.last_purge = (seq, detail)
        self.seq, self.hash = seq, digest_
        self.checked += 1
        return None

    def _gap(self, seq: int, expected: int) -> tuple[int, str]:
        if self.checked:
            return expected, f"{_span(expected, seq - 1)} missing (seq {expected - 1} is followed by {seq})"
        if self.anchor is None:
            return 1, (
                f"{_span(1, seq - 1)} missing (the log starts at record {seq} and no purge anchor "
                "explains it): records removed from the start without a purge"
            )
        if seq < expected:
            return (
                seq,
                f"record {seq} is older than the purge anchor (seq {self.anchor[0]}): the anchor was altered",
            )
        return expected, (
            f"{_span(expected, seq - 1)} missing (the purge anchor is seq {expected - 1}, "
            f"the log resumes at {seq})"
        )

    def _unlinked(self, seq: int) -> str:
        if self.checked:
            return (
                f"record {seq} does not follow record {seq - 1} (prev_hash differs): record {seq - 1} "
                "was rewritten, or records removed or reordered"
            )
        if self.anchor is None:
            return f"record {seq} does not start the log (its prev_hash is not the genesis hash)"
        return (
            f"record {seq} does not follow the purge anchor (its prev_hash is not the anchor's hash): "
            "the anchor or the records after it were altered"
        )

    def _written_as(self, prev_hash: str, *content: Any) -> int | None:
        """The seq this record's content and hash were written under, if it verifies under one:
        the record after the one whose hash its prev_hash names (a moved record)."""
        ts, actor, action, subject, detail, digest_ = content
        row = self.conn.execute("SELECT seq FROM audit WHERE hash = ?", (prev_hash,)).fetchone()
        candidates = [int(row[0]) + 1] if row is not None else []
        if prev_hash == (self.anchor[1] if self.anchor else GENESIS):
            candidates.append((self.anchor[0] if self.anchor else 0) + 1)
        candidates += range(max(1, self.seq - 8), self.seq + 10)  # rows swapped with their hashes
        for seq in candidates:
            if record_hash(prev_hash, seq, ts, actor, action, subject, detail) == digest_:
                return seq
        return None

    def anchor_problem(self) -> tuple[int, str] | None:
        """The anchor must be the one the newest `audit.purged` record made."""
        made = self.last_purge
        if self.anchor is None:
            if made and made[1].get("anchor_hash"):
                return made[0], f"the purge anchor made by record {made[0]} is missing: it was removed"
            return None
        seq, digest_ = self.anchor
        if made is None:
            return seq + 1, (
                f"the purge anchor (seq {seq}) was made by no audit.purged record in the log: "
                "the anchor was forged or its purge record removed"
            )
        if (made[1].get("anchor_seq"), made[1].get("anchor_hash")) != (seq, digest_):
            return made[0], (
                f"the purge anchor (seq {seq}, hash {digest_[:12]}…) does not match the one purge record "
                f"{made[0]} made (seq {made[1].get('anchor_seq')}, hash "
                f"{str(made[1].get('anchor_hash'))[:12]}…): the anchor was altered"
            )
        return None


def _rows(conn: sqlite3.Connection, where: str = "", args: tuple[Any, ...] = ()) -> Iterable[tuple[Any, ...]]:
    return conn.execute(f"SELECT {COLUMNS} FROM audit {where} ORDER BY seq", args)


def _anchor(conn: sqlite3.Connection) -> tuple[int, str] | None:
    row = conn.execute("SELECT seq, hash FROM audit_anchor WHERE id = 1").fetchone()
    return (int(row[0]), str(row[1])) if row else None


def verify(store: Any, witness: tuple[int, str] | None = None) -> Verification:
    """Check every record's hash and link, from the purge anchor (or the genesis) to the head.

    `witness`: a (seq, hash) head kept elsewhere from an earlier verify (`parse_head`); the log
    must still hold that record unchanged, which catches the removal or rewriting of the
    newest records that the chain alone cannot show."""
    with _snapshot(store) as conn:
        chain = _Chain(conn, _anchor(conn))
        problem = None
        for row in _rows(conn):
            problem = chain.check(row)
            if problem:
                break
        else:
            if chain.checked == 0 and chain.anchor is not None:
                problem = (
                    chain.anchor[0] + 1,
                    f"the log is empty after its purge anchor (seq {chain.anchor[0]}): records removed",
                )
            else:
                problem = chain.anchor_problem() or (witness and _witnessed(conn, chain, witness))
        head_seq, head_hash = head(conn)
    if problem is None:
        return Verification(True, chain.checked, None, None, head_seq, head_hash)
    return Verification(False, chain.checked, problem[0], problem[1], head_seq, head_hash)


def _witnessed(conn: sqlite3.Connection, chain: _Chain, witness: tuple[int, str]) -> tuple[int, str] | None:
    seq, digest_ = witness
    if seq > chain.seq:
        return chain.seq + 1, (
            f"the log ends at record {chain.seq} but the head kept elsewhere is record {seq}: "
            f"{_span(chain.seq + 1, seq)} removed from the end"
        )
    if chain.anchor and seq <= chain.anchor[0]:  # purged since: only the anchor itself can be compared
        stored = chain.anchor[1] if seq == chain.anchor[0] else digest_
    else:
        row = conn.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()
        stored = str(row[0]) if row else ""
    if seq > 0 and stored != digest_:
        return seq, (
            f"record {seq} is not the one kept elsewhere (hash {stored[:12]}…, kept {digest_[:12]}…): "
            "the log was rewritten from there on"
        )
    return None


_HEAD = re.compile(r"(\d+):([0-9a-f]{64})")


def parse_head(text: str) -> tuple[int, str]:
    """`--head SEQ:HASH`, as `crewkit audit verify` prints it."""
    found = _HEAD.fullmatch(str(text).strip().lower())
    if not found:
        raise UsageError(
            f"--head {text!r} is not SEQ:HASH; give the head an earlier `crewkit audit verify` printed, "
            "for example --head 1200:" + "3f" * 32
        )
    return int(found[1]), found[2]


# --- export -----------------------------------------------------------------------------------


def export(store: Any, out: TextIO, since: float | None = None, run_id: str | None = None) -> int:
    """Write records (those at or after `since`, of run `run_id`) to `out` as JSONL in seq
    order, one `{seq, ts, actor, action, subject, detail, prev_hash, hash}` a line; the count."""
    wanted = {
        test: value for test, value in (("ts >= ?", since), ("run_id = ?", run_id)) if value is not None
    }
    clause = f"WHERE {' AND '.join(wanted)}" if wanted else ""
    count = 0
    with _snapshot(store) as conn:
        for seq, ts, actor, action, subject, detail_text, prev_hash, digest_, _ in _rows(
            conn, clause, tuple(wanted.values())
        ):
            try:
                detail = json.loads(detail_text)
            except ValueError:  # a tampered record: exported as it is, `verify` names it
                detail = detail_text
            line = {
                "seq": seq,
                "ts": ts,
                "actor": actor,
                "action": action,
                "subject": subject,
                "detail": detail,
                "prev_hash": prev_hash,
                "hash": digest_,
            }
            out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    return count


def records(store: Any, run_id: str, limit: int = 1000) -> list[Record]:
    """The run's newest `limit` records in seq order: who did what to it, and when."""
    with _snapshot(store) as conn:
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM audit WHERE run_id = ? ORDER BY seq DESC LIMIT ?", (run_id, int(limit))
        ).fetchall()
    # a tampered record (detail not JSON) is shown as it is; `verify` names it
    return [row_record(row) or Record(*row[:5], {"text": row[5]}, *row[6:]) for row in reversed(rows)]


def row_record(row: Sequence[Any]) -> Record | None:
    """A stored row (the columns of COLUMNS) as a Record; None when its detail is not JSON (tampered)."""
    seq, ts, actor, action, subject, detail_text, prev_hash, digest_, run_id = row
    try:
        detail = json.loads(detail_text)
    except ValueError:
        return None
    return Record(seq, ts, actor, action, subject, detail, prev_hash, digest_, run_id)


# --- purge ------------------------------------------------------------------------------------

DAY = 86400.0


def _days(value: Any) -> float:
    try:
        days = float(value)
    except (TypeError, ValueError):
        days = math.nan
    if isinstance(value, bool) or not math.isfinite(days) or days <= 0:
        raise UsageError(
            f"--older-than must be a positive number of days, not {value!r}; for example "
            "--older-than 90 (the profile's audit.retention_days is the default)"
        )
    return days


def purge(store: Any, older_than_days: float, now: float | None = None, actor: str = "crewkit") -> Purged:
    """Remove the records older than `older_than_days` from the start of the chain (up to the
    first record that is not that old: never a hole in the middle), anchor the rest at the
    last removed record and log the purge, in one transaction. A chain that does not verify
    over the records to remove is left alone (StateStoreError): a purge must not erase the
    evidence of tampering."""
    days = _days(older_than_days)
    cutoff = (time.time() if now is None else now) - days * DAY
    with store.write() as conn:
        anchor = _anchor(conn)
        keep = conn.execute("SELECT MIN(seq) FROM audit WHERE ts >= ?", (cutoff,)).fetchone()[0]
        if keep is None:
            keep = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM audit").fetchone()[0]
        first = conn.execute("SELECT MIN(seq) FROM audit WHERE seq < ?", (keep,)).fetchone()[0]
        removed, last = 0, None
        if first is not None:
            last, last_hash = _check_before_purge(store, conn, anchor, keep)
            removed = conn.execute("DELETE FROM audit WHERE seq < ?", (keep,)).rowcount
            conn.execute(
                "INSERT INTO audit_anchor (id, seq, hash, before_ts, created) VALUES (1, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
                "before_ts = excluded.before_ts, created = excluded.created",
                (last, last_hash, cutoff, time.time()),
            )
            anchor = (last, last_hash)
        detail = {
            "removed": removed,
            "first_seq": first,
            "last_seq": last,
            "anchor_seq": anchor[0] if anchor else None,
            "anchor_hash": anchor[1] if anchor else None,
            "older_than_days": days,
            "cutoff": cutoff,
        }
        made = append(conn, Entry(PURGED, "audit", detail, actor=actor))
    return Purged(
        removed, first, last, anchor[0] if anchor else None, anchor[1] if anchor else None, cutoff, made
    )


def _check_before_purge(
    store: Any, conn: sqlite3.Connection, anchor: tuple[int, str] | None, keep: int
) -> tuple[int, str]:
    """Verify the records a purge removes and the link to the first one it keeps; the last
    removed record's (seq, hash), the new anchor."""
    chain = _Chain(conn, anchor)
    for row in _rows(conn, "WHERE seq <= ?", (keep,)):
        problem = chain.check(row)
        if problem is not None:
            raise StateStoreError(
                f"{store.path}: the audit log does not verify ({problem[1]}); nothing was purged, so "
                "the evidence stays: run `crewkit audit verify` and keep an export (`crewkit audit export`)"
            )
    if chain.seq < keep - 1:  # cannot happen after a clean walk; a guard, not a branch to test
        raise StateStoreError(
            f"{store.path}: the audit log ends before record {keep - 1}; nothing was purged"
        )
    if chain.seq == keep - 1:
        return chain.seq, chain.hash
    row = conn.execute("SELECT seq, hash FROM audit WHERE seq = ?", (keep - 1,)).fetchone()
    return int(row[0]), str(row[1])


# --- --since ----------------------------------------------------------------------------------

_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY, "w": 7 * DAY}


def parse_since(text: str, now: float | None = None) -> float:
    """`--since`: an ISO date or date and time (UTC unless it names an offset), or an age
    (`7d`, `12h`, `30m`, `2w`) before now; epoch seconds."""
    value = str(text).strip()
    age = _AGE.fullmatch(value.lower())
    if age:
        return (time.time() if now is None else now) - float(age[1]) * _UNIT[age[2]]
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--since {text!r} is not a date or an age; use an ISO date (2026-11-01), a date and time "
            "(2026-11-01T09:30, UTC unless it names an offset) or an age (7d, 12h, 30m)"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
