"""The state store on a real SQLite file: schema versions, bad files, runs, claims, approvals, rollback."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crewkit.errors import StateStoreError, UsageError
from crewkit.runtime import store as store_mod
from crewkit.runtime.store import SCHEMA_VERSION, StateStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore.open(tmp_path)
    yield s
    s.close()


def _run(store: StateStore, run_id: str = "r1", **kw: object) -> None:
    store.create_run(run_id, "default", {"task": "t"}, "fp", kw.get("requester"))  # type: ignore[arg-type]


def _approval(store: StateStore, run_id: str = "r1", key: str = "k1", **kw: object):
    args = {
        "step": "execute",
        "tier": "sensitive",
        "subject": {"task": "pay invoice 42"},
        "reason": "money movement",
        "approvers": ["finance"],
        "expires_at": time.time() + 3600,
        "on_expiry": "rejected",
    }
    args.update(kw)
    return store.request_approval(run_id, key, **args)  # type: ignore[arg-type]


# -- schema and bad files ------------------------------------------------------------------------


def test_new_file_is_wal_at_current_schema_with_every_table(store: StateStore) -> None:
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "checkpoints", "journal", "calls", "approvals", "undo"} <= tables
    conn.close()


def test_open_is_cached_per_path(tmp_path: Path) -> None:
    a = StateStore.open(tmp_path)
    assert StateStore.open(tmp_path / ".") is a
    assert StateStore.open(tmp_path / "other") is not a
    a.close()
    assert StateStore.open(tmp_path) is not a


def test_migrations_apply_in_order_and_keep_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = StateStore.open(tmp_path)
    _run(s)
    s.close()
    v2 = (
        *store_mod.MIGRATIONS,
        ("ALTER TABLE runs ADD COLUMN shard TEXT", "CREATE INDEX runs_t ON runs (shard)"),
    )
    monkeypatch.setattr(store_mod, "MIGRATIONS", v2)
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", len(v2))
    s = StateStore.open(tmp_path)
    conn = sqlite3.connect(s.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(v2)
    assert "shard" in [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
    conn.close()
    assert s.require_run("r1").flow == "default"
    s.close()


def test_a_failing_migration_leaves_the_file_at_the_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    StateStore.open(tmp_path).close()
    now = len(store_mod.MIGRATIONS)
    bad = (*store_mod.MIGRATIONS, ("ALTER TABLE runs ADD COLUMN shard TEXT", "CREATE TABLE runs (x)"))
    monkeypatch.setattr(store_mod, "MIGRATIONS", bad)
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", len(bad))
    with pytest.raises(StateStoreError, match=rf"cannot migrate from schema {now} to {now + 1}"):
        StateStore.open(tmp_path)
    conn = sqlite3.connect(tmp_path / "state.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == now
    assert "shard" not in [r[1] for r in conn.execute("PRAGMA table_info(runs)")]  # rolled back whole
    conn.close()


def test_newer_schema_is_refused_and_the_file_left_alone(tmp_path: Path) -> None:
    StateStore.open(tmp_path).close()
    db = tmp_path / "state.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StateStoreError) as info:
        StateStore.open(tmp_path)
    msg = str(info.value)
    assert msg.startswith(
        f"{db}: written by a newer crewkit (schema 99, this one reads up to {SCHEMA_VERSION})"
    )
    assert "upgrade crewkit, or point CREWKIT_HOME elsewhere" in msg
    assert "\n" not in msg
    assert db.read_bytes() == before


def test_garbage_file_is_refused_never_reset(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(b"these are my notes, not a database\n" * 200)
    before = db.read_bytes()
    with pytest.raises(StateStoreError) as info:
        StateStore.open(tmp_path)
    assert str(info.value).startswith(f"{db}: ")
    assert "move it aside" in str(info.value)
    assert db.read_bytes() == before


@pytest.mark.parametrize("keep", [0.5, 0.2, 60])
def test_truncated_file_is_refused(tmp_path: Path, keep: float) -> None:
    s = StateStore.open(tmp_path)
    _run(s)
    for i in range(200):
        s.add_checkpoint("r1", f"s{i}", {"i": i}, {"pad": "x" * 400}, False)
    s.close()
    db = tmp_path / "state.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = db.stat().st_size
    with db.open("r+b") as fh:
        fh.truncate(int(size * keep) if keep < 1 else int(keep))
    before = db.read_bytes()
    with pytest.raises(StateStoreError, match="move it aside"):
        StateStore.open(tmp_path)
    assert db.read_bytes() == before


def test_unwritable_home_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StateStoreError, match="point CREWKIT_HOME at a writable folder") as info:
        StateStore.open(tmp_path / "file")
    assert str(info.value).startswith(str(tmp_path / "file" / "state.db"))


def test_a_read_only_file_is_one_line_naming_the_fix(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(store)
    monkeypatch.setattr(
        sqlite3,
        "connect",
        lambda path, **kw: sqlite3.dbapi2.Connection(f"file:{store.path}?mode=ro", uri=True, **kw),
    )
    s = StateStore(store.path)  # a second store on the same file, opened read-only
    assert s.require_run("r1").flow == "default"  # reads work
    with pytest.raises(StateStoreError) as info:
        s.set_status("r1", "done")
    msg = str(info.value)
    assert msg.startswith(f"{store.path}: attempt to write a readonly database; make the file")
    monkeypatch.undo()
    assert store.require_run("r1").status == "running"


def test_connections_of_ended_threads_are_closed(store: StateStore) -> None:
    _run(store)

    def open_fds() -> int:
        return sum(
            1 for fd in Path("/proc/self/fd").iterdir() if os.path.realpath(fd).startswith(str(store.path))
        )

    baseline = open_fds()
    for _ in range(30):
        t = threading.Thread(target=store.get_run, args=("r1",))
        t.start()
        t.join()
    store.get_run("r1")
    assert open_fds() <= baseline + 3  # at most the last thread's connection (db, wal)


# -- runs ----------------------------------------------------------------------------------------


def test_create_get_list_and_set_status(store: StateStore) -> None:
    run = store.create_run("r1", "default", {"task": "é 中文"}, "fp1", "alice")
    assert (run.status, run.pid, run.requester) == ("running", os.getpid(), "alice")
    assert store.get_run("r1") == run
    time.sleep(0.01)
    store.create_run("r2", "other", {}, "fp2", None)
    assert [r.run_id for r in store.list_runs()] == ["r2", "r1"]
    store.set_status("r1", "paused", approval_id="ap-0123456789")
    store.set_status("r1", "failed", error="boom", record_path="output/r1.json")
    got = store.require_run("r1")
    assert (got.status, got.error, got.record_path, got.approval_id) == (
        "failed",
        "boom",
        "output/r1.json",
        "ap-0123456789",
    )
    assert [r.run_id for r in store.list_runs(status="failed")] == ["r1"]
    store.set_status("r1", "failed", approval_id="")  # "" clears, None keeps
    assert (store.require_run("r1").approval_id, store.require_run("r1").error) == (None, "boom")
    assert [r.run_id for r in store.list_runs(limit=1)] == ["r2"]
    raw = sqlite3.connect(store.path).execute("SELECT inputs FROM runs WHERE run_id = 'r1'").fetchone()[0]
    assert "é 中文" in raw  # ensure_ascii=False
    assert json.loads(raw) == {"task": "é 中文"}


def test_unknown_run_suggests_a_close_id(store: StateStore) -> None:
    _run(store, "run-20261126-abc")
    with pytest.raises(
        UsageError, match=r"unknown run 'run-20261126-abd' \(did you mean 'run-20261126-abc'\?\)"
    ):
        store.require_run("run-20261126-abd")
    with pytest.raises(UsageError, match="unknown run"):
        store.set_status("nope", "done")
    with pytest.raises(UsageError, match="already exists"):
        _run(store, "run-20261126-abc")


# -- claim ---------------------------------------------------------------------------------------


def test_claim_takes_a_paused_run_and_refuses_a_done_one(store: StateStore) -> None:
    _run(store)
    store.set_status("r1", "paused")
    claimed = store.claim("r1", {"paused"})
    assert (claimed.status, claimed.pid) == ("running", os.getpid())
    assert store.require_run("r1").status == "running"
    store.set_status("r1", "done")
    with pytest.raises(UsageError, match="^run r1 is done; nothing to resume$"):
        store.claim("r1", {"paused"})
    assert store.require_run("r1").status == "done"
    with pytest.raises(UsageError, match="unknown run"):
        store.claim("r9", {"paused"})


_CREATE_AND_WAIT = """
import sys
from pathlib import Path
from crewkit.runtime.store import StateStore
s = StateStore.open(Path(sys.argv[1]))
s.create_run("r1", "default", {}, "fp", None)
print("created", flush=True)
sys.stdin.readline()
"""


def _creator(home: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CREATE_AND_WAIT, str(home)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "created", proc.stderr.read() if proc.stderr else ""
    return proc


def test_claim_refuses_a_run_whose_process_lives_and_takes_it_once_dead(store: StateStore) -> None:
    proc = _creator(store.path.parent)
    try:
        with pytest.raises(UsageError, match=rf"^run r1 is running in process {proc.pid}; "):
            store.claim("r1", {"paused"})
        assert store.require_run("r1").pid == proc.pid
    finally:
        proc.kill()
        proc.wait()
    claimed = store.claim("r1", {"paused"})
    assert claimed.pid == os.getpid()
    assert store.require_run("r1").pid == os.getpid()


def test_claim_takes_a_run_whose_process_was_killed_and_not_reaped(store: StateStore) -> None:
    proc = _creator(store.path.parent)
    os.kill(proc.pid, signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline and store_mod._proc_state(proc.pid) not in ("Z", None):
        time.sleep(0.01)
    try:
        assert store.claim("r1", set()).pid == os.getpid()  # a zombie is dead
    finally:
        proc.wait()


def test_claim_treats_a_recycled_pid_as_dead(store: StateStore) -> None:
    _run(store)
    conn = sqlite3.connect(store.path)
    conn.execute("UPDATE runs SET pid = ?, pid_start = '1' WHERE run_id = 'r1'", (os.getppid(),))
    conn.commit()
    conn.close()
    assert store.claim("r1", set()).pid == os.getpid()


def test_claim_refuses_a_run_on_another_host(store: StateStore) -> None:
    _run(store)
    conn = sqlite3.connect(store.path)
    conn.execute("UPDATE runs SET host = 'elsewhere', pid = 999999 WHERE run_id = 'r1'")
    conn.commit()
    conn.close()
    with pytest.raises(UsageError, match="on host elsewhere"):
        store.claim("r1", {"paused"})


def _claim_worker(home: str, barrier: object, out: object) -> None:
    s = StateStore.open(Path(home))
    barrier.wait()  # type: ignore[attr-defined]
    try:
        s.claim("r1", {"paused"})
        out.put(("won", os.getpid()))  # type: ignore[attr-defined]
    except UsageError as exc:
        out.put(("lost", str(exc)))  # type: ignore[attr-defined]


def test_two_processes_claiming_a_paused_run_exactly_one_wins(store: StateStore) -> None:
    _run(store)
    store.set_status("r1", "paused")
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_claim_worker, args=(str(store.path.parent), barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    won = [r for r in results if r[0] == "won"]
    lost = [r for r in results if r[0] == "lost"]
    assert len(won) == 1 and len(lost) == 1, results
    assert "is running in process" in lost[0][1] or "nothing to resume" in lost[0][1]


# -- checkpoints, journal, calls -----------------------------------------------------------------


def test_checkpoints_number_per_run_and_round_trip(store: StateStore) -> None:
    _run(store, "a")
    _run(store, "b")
    assert store.add_checkpoint("a", "plan", ["x", "é"], {"plan": [1]}, True) == 1
    assert store.add_checkpoint("b", "plan", None, {}, False) == 1
    assert store.add_checkpoint("a", "execute", {"out": 1}, {"results": {"1": "ok"}}, False) == 2
    cps = store.checkpoints("a")
    assert [(c.seq, c.step, c.output, c.state, c.stable) for c in cps] == [
        (1, "plan", ["x", "é"], {"plan": [1]}, True),
        (2, "execute", {"out": 1}, {"results": {"1": "ok"}}, False),
    ]
    with pytest.raises(UsageError, match="unknown run"):
        store.add_checkpoint("zz", "plan", None, {}, True)


def test_checkpoints_from_many_threads_get_distinct_seqs(store: StateStore) -> None:
    _run(store)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(25):
                store.add_checkpoint("r1", "s", None, {}, False)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [c.seq for c in store.checkpoints("r1")] == list(range(1, 201))


def test_journal_and_calls_round_trip(store: StateStore) -> None:
    _run(store)
    assert store.journal_get("r1", "model:0:abc") is None
    store.journal_put("r1", "model:0:abc", "model", 0, {"text": "Final answer: 42", "tool_calls": None})
    entry = store.journal_get("r1", "model:0:abc")
    assert entry is not None
    assert (entry.kind, entry.checkpoint, entry.value) == (
        "model",
        0,
        {"text": "Final answer: 42", "tool_calls": None},
    )
    row = {
        "stage": "plan",
        "role": "reasoning",
        "model": "m",
        "input_tokens": 3,
        "output_tokens": 4,
        "cost_usd": 0.1,
    }
    store.add_call("r1", row)
    store.add_call("r1", {**row, "stage": "execute"})
    assert [c["stage"] for c in store.calls("r1")] == ["plan", "execute"]
    assert store.calls("r1")[0] == row


def test_truncate_drops_later_checkpoints_and_their_journal(store: StateStore) -> None:
    _run(store)
    for i in range(4):
        store.journal_put("r1", f"k{i}", "model", i, i)  # made with i checkpoints taken
        store.add_checkpoint("r1", f"step{i + 1}", i, {"i": i}, i % 2 == 0)
    store.add_call("r1", {"role": "reasoning"})
    store.truncate("r1", 2)
    assert [c.step for c in store.checkpoints("r1")] == ["step1", "step2"]
    assert [k for k in ("k0", "k1", "k2", "k3") if store.journal_get("r1", k)] == ["k0", "k1"]
    assert len(store.calls("r1")) == 1  # money spent stays spent
    assert store.add_checkpoint("r1", "step3", None, {}, False) == 3
    with pytest.raises(UsageError, match="cannot roll back to 7"):
        store.truncate("r1", 7)
    assert len(store.checkpoints("r1")) == 3  # nothing changed
    store.truncate("r1", 0)
    assert store.checkpoints("r1") == [] and store.journal_get("r1", "k0") is None


# -- approvals -----------------------------------------------------------------------------------


def test_request_approval_is_idempotent_per_run_and_key(store: StateStore) -> None:
    _run(store)
    a = _approval(store)
    assert re.fullmatch(r"ap-[0-9a-f]{10}", a.id)
    assert a.status == "pending" and a.subject == {"task": "pay invoice 42"} and a.approvers == ["finance"]
    assert _approval(store, reason="different text") == a
    assert store.get_approval(a.id) == a
    assert store.find_approval("r1", "k1") == a
    b = _approval(store, key="k2")
    assert b.id != a.id
    store.decide(a.id, "approved", "bob", "fine")
    again = _approval(store)
    assert (again.id, again.status) == (a.id, "approved")
    assert [x.id for x in store.list_approvals(status="pending")] == [b.id]
    assert {x.id for x in store.list_approvals(run_id="r1")} == {a.id, b.id}


def test_decide_records_who_and_refuses_a_second_decision(store: StateStore) -> None:
    _run(store)
    a = _approval(store)
    done = store.decide(a.id, "approved", "bob", "looks right")
    assert (done.status, done.decided_by, done.note) == ("approved", "bob", "looks right")
    assert done.decided is not None
    with pytest.raises(UsageError, match=rf"^approval {a.id} was already approved by bob at \d{{4}}-"):
        store.decide(a.id, "rejected", "carol", "no")
    assert store.require_approval(a.id) == done  # nothing changed
    with pytest.raises(UsageError, match="'approved' or 'rejected'"):
        store.decide(a.id, "maybe", "carol", None)


def test_unknown_approval_suggests_a_close_id(store: StateStore) -> None:
    _run(store)
    a = _approval(store)
    wrong = a.id[:-1] + ("0" if a.id[-1] != "0" else "1")
    with pytest.raises(UsageError, match=rf"unknown approval '{wrong}' \(did you mean '{a.id}'\?\)"):
        store.require_approval(wrong)
    with pytest.raises(UsageError, match="unknown approval"):
        store.decide("ap-zzzzzzzzzz", "approved", "bob", None)


def test_expire_due_applies_each_approvals_default(store: StateStore) -> None:
    _run(store)
    now = time.time()
    late = _approval(store, key="late", expires_at=now - 1)
    late_ok = _approval(store, key="late-ok", expires_at=now - 1, on_expiry="approve")
    fresh = _approval(store, key="fresh", expires_at=now + 3600)
    expired = store.expire_due(now)
    assert {(a.id, a.status, a.decided_by) for a in expired} == {
        (late.id, "rejected", "policy (expired)"),
        (late_ok.id, "approved", "policy (expired)"),
    }
    assert store.require_approval(late.id).status == "rejected"
    assert store.require_approval(fresh.id).status == "pending"
    assert store.expire_due(now) == []
    with pytest.raises(UsageError, match=r"already rejected by policy \(expired\)"):
        store.decide(late.id, "approved", "bob", None)


def test_deciding_a_pending_approval_past_its_expiry_is_refused(store: StateStore) -> None:
    _run(store)
    a = _approval(store, expires_at=time.time() - 5)
    with pytest.raises(UsageError, match=rf"approval {a.id} expired at .* and was rejected by policy"):
        store.decide(a.id, "approved", "bob", None)
    assert store.require_approval(a.id).status == "rejected"


def _decide_worker(home: str, ids: list[str], name: str, barrier: object, out: object) -> None:
    s = StateStore.open(Path(home))
    for approval_id in ids:
        barrier.wait()  # type: ignore[attr-defined]
        try:
            s.decide(approval_id, "approved" if name == "p0" else "rejected", name, None)
            out.put((approval_id, name, "won"))  # type: ignore[attr-defined]
        except UsageError as exc:
            out.put((approval_id, name, str(exc)))  # type: ignore[attr-defined]


def test_two_processes_deciding_the_same_approval_exactly_one_wins(store: StateStore) -> None:
    _run(store)
    ids = [_approval(store, key=f"k{i}").id for i in range(6)]
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_decide_worker, args=(str(store.path.parent), ids, f"p{i}", barrier, out))
        for i in range(2)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in range(2 * len(ids))]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for approval_id in ids:
        mine = [r for r in results if r[0] == approval_id]
        winners = [r[1] for r in mine if r[2] == "won"]
        losers = [r for r in mine if r[2] != "won"]
        assert len(winners) == 1, mine
        assert (
            len(losers) == 1
            and f"was already {'approved' if winners[0] == 'p0' else 'rejected'} by {winners[0]}"
            in losers[0][2]
        )
        final = store.require_approval(approval_id)
        assert final.decided_by == winners[0]
        assert final.status == ("approved" if winners[0] == "p0" else "rejected")


_OPEN_AND_WRITE = """
import sys, time
from pathlib import Path
from crewkit.runtime.store import StateStore
go = float(sys.argv[2])
time.sleep(max(0.0, go - time.time()))
s = StateStore.open(Path(sys.argv[1]))
try:
    s.create_run("shared", "default", {}, "fp", None)
except Exception:
    pass
for _ in range(50):
    s.add_checkpoint("shared", "s", None, {}, False)
"""


def test_processes_opening_a_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    go = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_AND_WRITE, str(tmp_path), str(go)], cwd=ROOT, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    s = StateStore.open(tmp_path)
    assert [c.seq for c in s.checkpoints("shared")] == list(range(1, 151))
    s.close()


# -- undo log rows -------------------------------------------------------------------------------


def test_undo_entries_newest_first_from_a_checkpoint_and_marking(store: StateStore) -> None:
    _run(store)
    ids = [store.add_undo("r1", cp, "file.restore", {"n": cp}) for cp in (0, 1, 1, 2)]
    assert [e.id for e in store.undo_entries("r1", 1)] == [ids[3], ids[2], ids[1]]
    store.mark_undone(ids[2])
    assert [e.payload["n"] for e in store.undo_entries("r1", 0)] == [2, 1, 0]
    assert [e.id for e in store.undo_entries("r1", 0)] == [ids[3], ids[1], ids[0]]


def test_a_forked_child_opens_its_own_connection(store: StateStore) -> None:
    _run(store)
    store.add_checkpoint("r1", "a", None, {}, True)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()

    def child() -> None:
        s = StateStore.open(store.path.parent)
        out.put(s.add_checkpoint("r1", "b", None, {}, True))

    p = ctx.Process(target=child)
    p.start()
    assert out.get(timeout=30) == 2
    p.join(timeout=30)
    assert [c.step for c in store.checkpoints("r1")] == ["a", "b"]


_WRITE_FOREVER = """
import sys
from pathlib import Path
from crewkit.runtime.store import StateStore
s = StateStore.open(Path(sys.argv[1]))
s.create_run("r1", "default", {}, "fp", None)
i = 0
while True:
    i += 1
    s.add_checkpoint("r1", f"s{i}", {"i": i}, {"pad": "x" * 3000}, False)
    s.journal_put("r1", f"k{i}", "model", i, "y" * 2000)
"""


def _count_checkpoints(db: Path) -> int:
    conn = sqlite3.connect(db, timeout=5)
    try:
        return conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
    except sqlite3.Error:
        return 0  # the writer is still creating the schema
    finally:
        conn.close()


def test_a_writer_killed_mid_write_leaves_a_file_that_opens_whole(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _WRITE_FOREVER, str(tmp_path)], cwd=ROOT)
    db = tmp_path / "state.db"
    seen = 0
    try:
        deadline = time.time() + 60
        while seen < 300 and time.time() < deadline:
            time.sleep(0.05)
            if db.exists():
                seen = _count_checkpoints(db)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert seen >= 300
    s = StateStore(db)  # as a new process opens it: header, quick_check, schema
    seqs = [c.seq for c in s.checkpoints("r1")]
    assert len(seqs) >= seen and seqs == list(range(1, len(seqs) + 1))
    assert s.add_checkpoint("r1", "after", None, {}, True) == len(seqs) + 1
    s.close()


def test_secrets_are_never_written_to_state_db(tmp_path, monkeypatch):
    """Inputs, states, journalled answers and approvals pass through the redaction on the way in."""
    from crewkit.runtime.store import StateStore

    monkeypatch.setenv("ACME_API_KEY", "acme-secret-value-123456")
    key = "sk-proj-" + "A1b2C3d4" * 4
    store = StateStore(tmp_path / "state.db")
    store.create_run("r1", "default", {"task": f"use {key} and acme-secret-value-123456"}, "fp", "alice")
    store.add_checkpoint("r1", "plan", {"token": "x"}, {"result": f"the key is {key}"}, stable=True)
    store.journal_put("r1", "model:0:abc:0", "model", 0, {"type": "str", "value": f"password={key}"})
    store.close()
    raw = (tmp_path / "state.db").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("state.db-*"))
    assert key.encode() not in raw and b"acme-secret-value-123456" not in raw
    reopened = StateStore(tmp_path / "state.db")
    assert "[REDACTED]" in reopened.get_run("r1").inputs["task"]
    assert reopened.checkpoints("r1")[0].state["result"] == "the key is [REDACTED]"


# -- nested write blocks and after-commit actions -------------------------------------------------


def test_a_write_inside_a_write_is_a_savepoint_undone_alone_and_committed_with_the_outer(
    store: StateStore,
) -> None:
    _run(store)
    with store.write() as conn:
        conn.execute("INSERT INTO calls (run_id, row) VALUES ('r1', '\"outer\"')")
        with pytest.raises(RuntimeError), store.write() as inner:
            inner.execute("INSERT INTO calls (run_id, row) VALUES ('r1', '\"inner, failed\"')")
            raise RuntimeError("boom")
        with store.write() as inner:
            inner.execute("INSERT INTO calls (run_id, row) VALUES ('r1', '\"inner, kept\"')")
        other = sqlite3.connect(store.path)  # nothing is visible before the outer block commits
        assert other.execute("SELECT COUNT(*) FROM calls").fetchone() == (0,)
    assert [r[0] for r in other.execute("SELECT row FROM calls ORDER BY id")] == [
        '"outer"',
        '"inner, kept"',
    ]
    other.close()


def test_an_outer_failure_undoes_the_inner_blocks_too(store: StateStore) -> None:
    _run(store)
    with pytest.raises(RuntimeError), store.write() as conn:
        with store.write() as inner:
            inner.execute("INSERT INTO calls (run_id, row) VALUES ('r1', '1')")
        conn.execute("INSERT INTO calls (run_id, row) VALUES ('r1', '2')")
        raise RuntimeError("boom")
    assert store.calls("r1") == []
    with store.write() as conn:  # the thread is out of the transaction: a new one begins
        conn.execute("INSERT INTO calls (run_id, row) VALUES ('r1', '3')")
    assert store.calls("r1") == [3]


def test_after_commit_actions_run_once_the_outermost_block_commits_and_never_after_a_rollback(
    store: StateStore,
) -> None:
    seen: list[str] = []
    committed = lambda: seen.append(  # noqa: E731
        "visible"
        if sqlite3.connect(store.path).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        else "not yet"
    )
    store.after_commit(lambda: seen.append("now"))  # no transaction open: at once
    with store.write():
        _run(store)  # create_run's own block is a savepoint of this one
        store.after_commit(committed)
        with pytest.raises(RuntimeError), store.write():
            store.after_commit(lambda: seen.append("dropped with its savepoint"))
            raise RuntimeError("boom")
        assert seen == ["now"]
    assert seen == ["now", "visible"]
    with pytest.raises(RuntimeError), store.write():
        store.after_commit(lambda: seen.append("dropped with the transaction"))
        raise RuntimeError("boom")
    assert seen == ["now", "visible"]
