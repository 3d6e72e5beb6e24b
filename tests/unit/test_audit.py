"""The audit log: hash chain, tamper detection on the real SQLite file, purge with an anchor,
export, --since, and what the log may never hold (secrets, personal data)."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from crewkit.errors import StateStoreError, UsageError
from crewkit.governance import audit
from crewkit.runtime.store import StateStore

DAY = 86400.0
NOW = 1_800_000_000.0  # a fixed "now" for purges
CARD = "4111 1111 1111 1111"
IBAN = "DE89 3704 0044 0532 0130 00"
KEY = "sk-proj-Abcdefghijklmnopqrstuvwxyz012345"


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    opened = StateStore.open(tmp_path)
    yield opened
    opened.close()


def fill(store: StateStore, count: int, start_ts: float = NOW - 100 * DAY, step: float = DAY) -> None:
    """`count` records, one a day from `start_ts` (the first is 100 days before NOW)."""
    with store.write() as conn:
        for i in range(count):
            entry = audit.Entry("model.call", f"call {i}", {"i": i, "tokens": 10 * i}, run_id=f"r-{i % 2}")
            audit.append(conn, entry, ts=start_ts + i * step)


def attack(store: StateStore, *statements: tuple[str, tuple]) -> None:
    """Edit state.db as an attacker would: a raw connection of its own, no crewkit code."""
    with closing(sqlite3.connect(store.path)) as db:
        for sql, args in statements:
            db.execute(sql, args)
        db.commit()


def row(store: StateStore, seq: int) -> tuple:
    return store.read(
        "SELECT seq, ts, actor, action, subject, detail, prev_hash, hash, run_id FROM audit WHERE seq = ?",
        (seq,),
    )[0]


def rehash(store: StateStore, seq: int) -> None:
    """Recompute one record's hash after editing it (leaving the next record's prev_hash)."""
    _, ts, actor, action, subject, detail, prev, _, _ = row(store, seq)
    digest = audit.record_hash(prev, seq, ts, actor, action, subject, json.loads(detail))
    attack(store, ("UPDATE audit SET hash = ? WHERE seq = ?", (digest, seq)))


def broken(store: StateStore) -> audit.Verification:
    result = audit.verify(store)
    assert not result.ok and result.problem and "\n" not in result.problem
    return result


# --- the chain ----------------------------------------------------------------------------


def test_an_untouched_log_verifies_and_reports_its_head(store):
    assert audit.verify(store) == audit.Verification(True, 0, None, None, 0, audit.GENESIS)
    fill(store, 10)
    result = audit.verify(store)
    assert result.ok and result.checked == 10 and result.first_bad is None
    assert (result.head_seq, result.head_hash) == (10, row(store, 10)[7])


def test_each_hash_is_sha256_of_the_previous_hash_and_the_canonical_record(store):
    fill(store, 2)
    seq, ts, actor, action, subject, detail, prev, digest, _ = row(store, 2)
    body = json.dumps(
        {
            "seq": seq,
            "ts": ts,
            "actor": actor,
            "action": action,
            "subject": subject,
            "detail": json.loads(detail),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert prev == row(store, 1)[7] and row(store, 1)[6] == audit.GENESIS
    assert digest == hashlib.sha256((prev + body).encode()).hexdigest()


@pytest.mark.parametrize(
    ("statement", "first_bad", "problem"),
    [
        (
            'UPDATE audit SET detail = \'{"i":7,"run_id":"r-1","tokens":1}\' WHERE seq = 7',
            7,
            "record 7 was edited (its hash does not match its content)",
        ),
        ("UPDATE audit SET action = 'tool.call' WHERE seq = 3", 3, "record 3 was edited"),
        ("DELETE FROM audit WHERE seq = 5", 5, "record 5 is missing (seq 4 is followed by 6)"),
        ("DELETE FROM audit WHERE seq = 9", 9, "record 9 is missing (seq 8 is followed by 10)"),
        ("DELETE FROM audit WHERE seq <= 3", 1, "records 1-3 are missing (the log starts at record 4"),
        (
            "UPDATE audit SET run_id = 'r-other' WHERE seq = 2",
            2,
            "record 2 was edited (its run_id column 'r-other'",
        ),
        (
            "UPDATE audit SET detail = '{broken' WHERE seq = 2",
            2,
            "record 2 was edited (its detail is not valid JSON)",
        ),
    ],
    ids=["detail", "action", "middle-deleted", "last-but-one-deleted", "start-deleted", "run-id", "not-json"],
)
def test_the_first_edited_or_removed_record_is_named(store, statement, first_bad, problem):
    fill(store, 10)
    attack(store, (statement, ()))
    result = broken(store)
    assert result.first_bad == first_bad and result.problem.startswith(problem), result.problem
    assert result.checked == first_bad - 1 and result.head_seq == 10


def test_two_records_with_their_contents_swapped_are_caught(store):
    fill(store, 10)
    four, five = row(store, 4), row(store, 5)
    swap = "UPDATE audit SET ts = ?, actor = ?, action = ?, subject = ?, detail = ? WHERE seq = ?"
    attack(store, (swap, (*five[1:6], 4)), (swap, (*four[1:6], 5)))
    result = broken(store)
    assert result.first_bad == 4 and "record 4 was edited" in result.problem


def test_two_whole_records_swapped_with_their_hashes_are_named_as_reordered(store):
    fill(store, 10)
    four, five = row(store, 4), row(store, 5)
    swap = "UPDATE audit SET ts = ?, actor = ?, action = ?, subject = ?, detail = ?, prev_hash = ?, hash = ?, run_id = ? WHERE seq = ?"
    attack(store, (swap, (*five[1:], 4)), (swap, (*four[1:], 5)))
    result = broken(store)
    assert result.first_bad == 4
    assert result.problem == "record 4 is out of order (it was written as record 5): records reordered"


def test_a_record_edited_and_rehashed_is_still_caught_at_the_next_record(store):
    fill(store, 10)
    attack(store, ("UPDATE audit SET subject = 'nothing to see' WHERE seq = 6", ()))
    rehash(store, 6)
    result = broken(store)
    assert result.first_bad == 7
    assert result.problem.startswith("record 7 does not follow record 6 (prev_hash differs)")


def test_the_last_record_edited_and_rehashed_is_only_seen_by_its_head(store):
    """What a chain cannot show alone: a rewritten (or removed) newest record. The head a
    verify reports changes, so an operator who kept the old head sees it."""
    fill(store, 5)
    before = audit.verify(store)
    attack(store, ("UPDATE audit SET subject = 'rewritten' WHERE seq = 5", ()))
    rehash(store, 5)
    after = audit.verify(store)
    assert after.ok and after.head_seq == before.head_seq and after.head_hash != before.head_hash
    attack(store, ("DELETE FROM audit WHERE seq = 5", ()))
    truncated = audit.verify(store)
    assert truncated.ok and truncated.head_seq == 4


def test_a_head_kept_elsewhere_catches_the_removed_or_rewritten_newest_records(store):
    fill(store, 5)
    kept = audit.verify(store)
    witness = audit.parse_head(f"{kept.head_seq}:{kept.head_hash}")
    fill(store, 2)  # the log grows: the kept head is still in it
    assert audit.verify(store, witness=witness).ok
    attack(store, ("DELETE FROM audit WHERE seq >= 5", ()))
    assert audit.verify(store).ok  # the chain alone cannot see it
    result = audit.verify(store, witness=witness)
    assert not result.ok and result.first_bad == 5
    assert result.problem == (
        "the log ends at record 4 but the head kept elsewhere is record 5: record 5 is removed from the end"
    )
    before = row(store, 4)[7]
    attack(store, ("UPDATE audit SET subject = 'rewritten' WHERE seq = 4", ()))
    rehash(store, 4)
    assert audit.verify(store).ok
    assert "record 4 is not the one kept elsewhere" in audit.verify(store, witness=(4, before)).problem


def test_a_head_from_before_a_purge_is_not_held_against_the_log(store):
    fill(store, 6)
    kept = audit.verify(store)
    audit.purge(store, 1, now=NOW + 1000 * DAY)
    assert audit.verify(store, witness=(kept.head_seq, kept.head_hash)).ok
    assert not audit.verify(store, witness=(kept.head_seq, "0" * 64)).ok  # the anchor is that record


@pytest.mark.parametrize("text", ["12", "12:abc", "x:" + "a" * 64, "12:" + "g" * 64])
def test_a_bad_head_names_the_form(text):
    with pytest.raises(UsageError, match=r"--head .* is not SEQ:HASH"):
        audit.parse_head(text)


def test_a_renumbered_start_is_caught_by_the_genesis_link(store):
    fill(store, 4)
    attack(store, ("DELETE FROM audit WHERE seq = 1", ()), ("UPDATE audit SET seq = seq - 1", ()))
    assert broken(store).first_bad == 1


def test_the_run_id_is_both_hashed_in_the_detail_and_a_column(store):
    with store.write() as conn:
        a = audit.append(conn, audit.Entry("x", "s", {"run_id": "r-detail"}, run_id="r-entry"))
        b = audit.append(conn, audit.Entry("x", "s", {"run_id": "r-detail"}))
        c = audit.append(conn, audit.Entry("x", "s", {"n": 1}))
    assert (a.detail["run_id"], a.run_id) == ("r-entry", "r-entry")
    assert (b.detail["run_id"], b.run_id) == ("r-detail", "r-detail")
    assert "run_id" not in c.detail and c.run_id is None
    assert [r[8] for r in store.read("SELECT * FROM audit ORDER BY seq")] == ["r-entry", "r-detail", None]
    assert audit.verify(store).ok


# --- nothing secret or personal is stored -------------------------------------------------------


def test_a_stored_record_never_holds_a_card_iban_email_or_api_key(store, monkeypatch):
    monkeypatch.setenv("ACME_TOKEN", "env-token-value-123")
    detail = {
        "prompt": f"refund {CARD} to {IBAN}, mail ann@corp.io, key {KEY}",
        "nested": [{"headers": {"Authorization": "Bearer abcdefghijklmnopqrstu"}}, ("env-token-value-123",)],
        "ssn": "078-05-1120",
    }
    audit.record(
        store, audit.Entry("model.call", f"for ann@corp.io card {CARD}", detail, actor="bob@corp.io")
    )
    stored = " ".join(str(v) for v in store.read("SELECT * FROM audit")[0])
    for value in (
        CARD,
        IBAN,
        "ann@corp.io",
        "bob@corp.io",
        KEY,
        "abcdefghijklmnopqrstu",
        "env-token-value-123",
        "078-05-1120",
    ):
        assert value not in stored
    assert "[CARD]" in stored and "[IBAN]" in stored and "[EMAIL]" in stored
    assert audit.verify(store).ok


# --- purge --------------------------------------------------------------------------------------


def test_a_purge_removes_the_old_start_and_the_rest_still_verifies(store):
    fill(store, 10)  # days -100 .. -91 before NOW
    last_removed = row(store, 4)
    purged = audit.purge(store, 96.5, now=NOW)  # cutoff: day -96.5, so records 1-4 go
    assert (purged.removed, purged.first_seq, purged.last_seq) == (4, 1, 4)
    assert (purged.anchor_seq, purged.anchor_hash) == (4, last_removed[7])
    assert purged.record.action == "audit.purged" and purged.record.seq == 11
    assert purged.record.detail["anchor_hash"] == last_removed[7] and purged.record.detail["removed"] == 4
    assert store.read("SELECT seq, hash, before_ts FROM audit_anchor") == [
        (4, last_removed[7], NOW - 96.5 * DAY)
    ]
    assert [r[0] for r in store.read("SELECT seq FROM audit ORDER BY seq")] == [5, 6, 7, 8, 9, 10, 11]
    result = audit.verify(store)
    assert result.ok and result.checked == 7 and result.head_seq == 11


def test_purging_twice_moves_the_anchor_and_still_verifies(store):
    fill(store, 10)
    audit.purge(store, 98.5, now=NOW)  # records 1-2
    second = audit.purge(store, 94.5, now=NOW)  # records 3-6; the first purge's record is newer
    assert (second.first_seq, second.last_seq, second.anchor_seq) == (3, 6, 6)
    assert audit.verify(store).ok
    nothing = audit.purge(store, 94.5, now=NOW)
    assert nothing.removed == 0 and nothing.anchor_seq == 6
    assert audit.verify(store).ok


def test_purging_everything_then_appending_still_verifies(store):
    fill(store, 5)
    purged = audit.purge(store, 1, now=NOW + 1000 * DAY)  # every record is older
    assert purged.removed == 5 and purged.anchor_seq == 5
    assert store.read("SELECT seq FROM audit") == [(6,)]  # only the purge's own record
    after = audit.record(store, audit.Entry("run.started", "run r-9", run_id="r-9"))
    assert after.seq == 7 and after.prev_hash == purged.record.hash
    assert audit.verify(store).ok
    again = audit.purge(store, 1, now=time.time() + 1000 * DAY)  # removes the purge record too
    assert again.removed == 2 and audit.verify(store).ok


def test_a_record_appended_after_a_purge_chains_from_the_last_kept_record(store):
    fill(store, 6)
    purged = audit.purge(store, 97.5, now=NOW)
    with store.write() as conn:
        new = audit.append(conn, audit.Entry("tool.call", "search"))
    assert new.seq == purged.record.seq + 1 and new.prev_hash == purged.record.hash
    assert audit.verify(store).ok


def test_a_purge_never_leaves_a_hole_in_the_middle(store):
    fill(store, 6)
    with store.write() as conn:  # a record with an old clock after newer ones
        audit.append(conn, audit.Entry("late", "clock"), ts=NOW - 200 * DAY)
    purged = audit.purge(store, 97.5, now=NOW)
    assert (purged.first_seq, purged.last_seq) == (1, 3)
    assert store.read("SELECT MIN(seq) FROM audit") == [(4,)] and audit.verify(store).ok


def test_a_tampered_anchor_is_caught(store):
    fill(store, 10)
    audit.purge(store, 96.5, now=NOW)
    attack(store, ("UPDATE audit_anchor SET hash = ?", ("f" * 64,)))
    result = broken(store)
    assert result.first_bad == 5 and "does not follow the purge anchor" in result.problem


def test_an_anchor_moved_with_records_deleted_to_match_is_caught_by_the_purge_record(store):
    fill(store, 10)
    audit.purge(store, 96.5, now=NOW)  # anchor at 4
    attack(
        store,
        ("DELETE FROM audit WHERE seq <= 6", ()),
        ("UPDATE audit_anchor SET seq = 6, hash = ?", (row(store, 6)[7],)),
    )
    result = broken(store)
    assert "does not match the one purge record 11 made" in result.problem and result.first_bad == 11


def test_a_deleted_anchor_is_caught(store):
    fill(store, 10)
    audit.purge(store, 96.5, now=NOW)
    attack(store, ("DELETE FROM audit_anchor", ()))
    result = broken(store)
    assert result.first_bad == 1 and "no purge anchor" in result.problem


def test_a_forged_anchor_with_no_purge_record_is_caught(store):
    fill(store, 6)
    attack(
        store,
        ("DELETE FROM audit WHERE seq <= 2", ()),
        (
            "INSERT INTO audit_anchor (id, seq, hash, before_ts, created) VALUES (1, 2, ?, 0, 0)",
            (row(store, 2)[7],),
        ),
    )
    result = broken(store)
    assert "made by no audit.purged record" in result.problem


@pytest.mark.parametrize("days", [0, -5, float("nan"), float("inf"), "abc", None, True])
def test_purge_needs_a_positive_number_of_days(store, days):
    fill(store, 3)
    with pytest.raises(UsageError, match=r"--older-than must be a positive number of days.*--older-than 90"):
        audit.purge(store, days, now=NOW)
    assert len(store.read("SELECT seq FROM audit")) == 3 and store.read("SELECT * FROM audit_anchor") == []


def test_purge_refuses_to_erase_a_tampered_stretch(store):
    fill(store, 10)
    attack(store, ("UPDATE audit SET detail = '{}' WHERE seq = 2", ()))
    with pytest.raises(StateStoreError, match=r"record 2 was edited.*nothing was purged"):
        audit.purge(store, 96.5, now=NOW)
    assert len(store.read("SELECT seq FROM audit")) == 10 and store.read("SELECT * FROM audit_anchor") == []


# --- export and --since -------------------------------------------------------------------------


def test_export_writes_jsonl_that_can_be_verified_outside_crewkit(store):
    fill(store, 6)
    out = io.StringIO()
    assert audit.export(store, out) == 6
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [list(line) for line in lines[:1]] == [
        ["seq", "ts", "actor", "action", "subject", "detail", "prev_hash", "hash"]
    ]
    prev = audit.GENESIS
    for line in lines:
        body = {k: line[k] for k in ("seq", "ts", "actor", "action", "subject", "detail")}
        assert line["prev_hash"] == prev
        assert line["hash"] == hashlib.sha256((prev + audit.canonical(body)).encode()).hexdigest()
        prev = line["hash"]


def test_export_filters_by_time_and_run(store):
    fill(store, 6)
    out = io.StringIO()
    assert audit.export(store, out, since=NOW - 97.5 * DAY) == 3
    assert [json.loads(line)["seq"] for line in out.getvalue().splitlines()] == [4, 5, 6]
    out = io.StringIO()
    assert audit.export(store, out, run_id="r-1") == 3
    assert {json.loads(line)["detail"]["run_id"] for line in out.getvalue().splitlines()} == {"r-1"}
    assert audit.export(store, io.StringIO(), since=NOW - 97.5 * DAY, run_id="r-0") == 1
    assert audit.export(store, io.StringIO(), run_id="r-none") == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", 1793491200.0),
        ("2026-11-01T09:30", 1793491200.0 + 9.5 * 3600),
        ("2026-11-01T09:30:00+01:00", 1793491200.0 + 8.5 * 3600),
        ("2026-11-01T09:30:00Z", 1793491200.0 + 9.5 * 3600),
        ("7d", NOW - 7 * DAY),
        ("12h", NOW - 12 * 3600),
        (" 30m ", NOW - 1800),
        ("2w", NOW - 14 * DAY),
    ],
)
def test_since_takes_an_iso_date_or_an_age(text, expected):
    assert audit.parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "7 days", "-7d", "2026-13-01", ""])
def test_a_bad_since_names_the_value_and_the_accepted_forms(text):
    with pytest.raises(UsageError) as caught:
        audit.parse_since(text)
    message = str(caught.value)
    assert f"--since {text!r}" in message and "2026-11-01" in message and "7d" in message


def test_scrub_keeps_digests_numbers_and_short_words_as_they_are():
    detail = {"prompt": audit.digest("ann@corp.io"), "tokens": 812, "cost": 0.25, "role": "code", "ok": True}
    assert audit.scrub(detail) == detail
    assert audit.scrub({"t": ("call +1 415 555 2671",)}) == {"t": ["call [PHONE]"]}


@pytest.mark.parametrize(
    "detail",
    [
        {},
        {"prompt": "sha256:" + "0" * 64, "tokens": 812, "cost": 0.1 + 0.2, "nested": {"b": [1, 2.5, None]}},
        {"text": '中文 «quotes» "escaped" \\ \n tab\t', "ok": False, "big": 10**20, "tiny": 1e-12},
    ],
)
def test_the_hash_put_together_around_the_detail_json_is_the_canonical_records_hash(detail):
    ts, seq = 1764201600.123456, 42
    whole = audit.canonical(
        {
            "seq": seq,
            "ts": ts,
            "actor": "Wörker",
            "action": "model.call",
            "subject": "code/m",
            "detail": detail,
        }
    )
    expected = hashlib.sha256((audit.GENESIS + whole).encode()).hexdigest()
    assert audit.record_hash(audit.GENESIS, seq, ts, "Wörker", "model.call", "code/m", detail) == expected
    given = audit.canonical(detail)
    assert (
        audit.record_hash(audit.GENESIS, seq, ts, "Wörker", "model.call", "code/m", detail, given) == expected
    )


def test_scrub_gives_what_a_json_round_trip_gives_with_personal_data_masked():
    class Thing:
        def __str__(self) -> str:
            return "thing of ann@corp.io"

    detail = {3: "three", True: ("a", ["b"]), None: Thing(), 2.5: {"k": 1}, "mail": "to ann@corp.io"}
    assert audit.scrub(detail) == {
        "3": "three",
        "true": ["a", ["b"]],
        "null": "thing of [EMAIL]",
        "2.5": {"k": 1},
        "mail": "to [EMAIL]",
    }
    assert audit.scrub(detail) == audit.scrub(detail)  # the second time from the cache: the same


def test_scrub_cleans_a_cached_string_again_once_an_environment_secret_appears_in_it(monkeypatch):
    text = "key abcdef1234567890XYZ"
    assert audit.scrub({"t": text}) == {"t": text}
    monkeypatch.setenv("SERVICE_API_KEY", "abcdef1234567890XYZ")
    assert "abcdef1234567890XYZ" not in audit.scrub({"t": text})["t"]
