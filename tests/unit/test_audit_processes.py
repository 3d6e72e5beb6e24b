"""Four real processes appending to one audit log at once: one linear chain, no seq lost."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from crewkit.governance import audit
from crewkit.runtime.store import StateStore

WRITERS, EACH = 4, 50


def _writer(home: str, name: str, together: multiprocessing.synchronize.Barrier) -> None:
    store = StateStore.open(Path(home))
    for i in range(EACH):
        if i == 1:  # everyone has written once: the chain interleaves, whatever the lock order
            together.wait(30)
        audit.record(store, audit.Entry("model.call", f"{name} call {i}", {"i": i}, actor=name, run_id=name))


def test_four_processes_appending_at_once_leave_one_contiguous_verified_chain(tmp_path):
    StateStore.open(tmp_path).close()  # created and migrated before the writers race
    ctx = multiprocessing.get_context("fork")
    together = ctx.Barrier(WRITERS)
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), f"w{n}", together)) for n in range(WRITERS)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
    assert [p.exitcode for p in writers] == [0] * WRITERS
    store = StateStore.open(tmp_path)
    seqs = [row[0] for row in store.read("SELECT seq FROM audit ORDER BY seq")]
    assert seqs == list(range(1, WRITERS * EACH + 1))
    per_writer = store.read("SELECT run_id, COUNT(*) FROM audit GROUP BY run_id ORDER BY run_id")
    assert per_writer == [(f"w{n}", EACH) for n in range(WRITERS)]
    assert store.read("SELECT COUNT(DISTINCT run_id) FROM audit WHERE seq <= ?", (WRITERS,)) == [(WRITERS,)]
    result = audit.verify(store)
    assert result.ok and result.checked == WRITERS * EACH and result.head_seq == WRITERS * EACH
