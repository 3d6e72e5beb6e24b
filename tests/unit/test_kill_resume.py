"""Reliability with real processes: SIGKILL (and Ctrl-C) mid-step, mid-pause, mid-rollback; racing
deciders, resumers and rollbacks.

Every run here is a real `crewkit` process (`cli.entry` in a child Python) on the test project
with a small four-step flow (`one` and `two` make one model call each, `three` two, `release`
asks the approval gate; `two` writes a file registered in the undo log when asked), and once the
default flow with every role scripted. The child's models are scripted by a driver script: every
model call appends a line to a calls file (fsynced), so the test counts what was paid for across
processes; a call, or a store write (approval requested, status set, undo entry marked, rollback
truncate), can be told to write a marker file and sleep, so the test kills the process at that
exact point. Waits are on marker files and exit codes, never on fixed sleeps, and every child
still alive at the end of a test is SIGKILLed and reaped. Each child imports CrewAI (~5-10 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from crewkit.runtime.store import StateStore

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 180.0  # a child imports CrewAI (~10 s on a busy 2-core machine) before its first step
IBAN_TASK = "Pay the invoice: transfer 500 EUR to IBAN DE89 3704 0044 0532 0130 00"
LOW_TASK = "Explain recursion in one paragraph"
STEPS = ["one", "two", "three", "release"]

KILL_FLOW = """
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from crewai.flow.flow import listen, start
from pydantic import BaseModel, ConfigDict

from crewkit.errors import RunRejected
from crewkit.governance import risk
from crewkit.runtime import undo
from crewkit.runtime.flow import CrewkitFlow, RunState


class Inputs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str
    out: str = ""  # a file `two` writes (registered in the undo log), when given


class State(RunState):
    task: str = ""
    out: str = ""
    notes: list[str] = []


class Kill(CrewkitFlow[State]):
    Inputs: ClassVar[type[BaseModel]] = Inputs
    RECORD_FIELDS: ClassVar[tuple[str, ...]] = ("notes",)

    def ask(self, step: str) -> None:
        llm = self.ctx.role_map.llm("reasoning")
        self.state.notes.append(llm.call([{"role": "user", "content": f"{step}: {self.state.task}"}]))

    @start()
    def one(self) -> None:
        self.ask("one")

    @listen(one)
    def two(self) -> None:
        if self.state.out:
            path = Path(self.state.out)
            previous = path.read_text() if path.exists() else None
            path.write_text("written by two")
            undo.record("file.restore", {"path": str(path), "previous": previous})
        self.ask("two")

    @listen(two)
    def three(self) -> None:  # two model calls: a kill between them leaves the first one journalled
        self.ask("three")
        self.ask("three+")

    @listen(three)
    def release(self) -> None:
        assessed = risk.assess_subtask(self.ctx.settings, self.state.task, "reasoning")
        decision = self.gate("release", [("task", assessed)])
        if decision.rejected:
            self.state.status = "rejected"
            self.state.error = f"rejected: {decision.approval.note}"
            raise RunRejected(self.state.error)
        self.state.result = " | ".join(self.state.notes)
        self.state.status = "done"
"""

# The child: a scripted model on the CLI, then `crewkit.cli.entry(argv)`, which exits with the code.
#   KR_CALLS          file: one line per model call (the step's name), fsynced before answering
#   KR_HANG_AT        a step whose model call writes KR_MARKER (its pid) and sleeps 60 s
#   KR_HANG_APPROVAL  marker: right after the approval row is committed, write it and sleep 60 s
#   KR_HANG_STATUS    STATUS:marker: when the run's status is about to be set to STATUS, write it and sleep
#   KR_HANG_TRUNCATE  marker: when a rollback is about to drop checkpoints (side effects undone), likewise
#   KR_HANG_UNDONE    marker: when a rollback has compensated an undo entry, before marking it, likewise
#   KR_ROLES          JSON {role: [replies]}: the default flow's roles scripted, each call logged
#                     "role:agent:number of messages";
#                     KR_HANG_CALL "role:n": that role's n-th call writes KR_MARKER and sleeps 60 s
#   KR_READY/KR_GO    a start line: write KR_READY, wait for KR_GO to exist, then run the command
DRIVER = """
import json, os, sys, time
from pathlib import Path

sys.path.insert(0, os.environ["KR_ROOT"])
from crewkit import cli


def hang(marker):
    Path(marker + ".tmp").write_text(str(os.getpid()))
    os.replace(marker + ".tmp", marker)
    time.sleep(60)


if os.environ.get("KR_CALLS"):
    from crewkit.models.registry import RoleMap
    from tests.fakes import ScriptedLLM

    def reply(call):
        step = call.last.split(":", 1)[0]
        with open(os.environ["KR_CALLS"], "a") as fh:
            fh.write(step + "\\n")
            fh.flush()
            os.fsync(fh.fileno())
        if step == os.environ.get("KR_HANG_AT"):
            hang(os.environ["KR_MARKER"])
        return f"{step} answered"

    fake = ScriptedLLM([reply] * 50, allow_unused=True)

    def engine():
        from crewkit.runtime.startup import load_checked

        settings = load_checked()
        return settings, RoleMap(settings, overrides={"reasoning": fake})

    cli._engine = engine

if os.environ.get("KR_ROLES"):  # the default flow: scripted replies per role, each call logged role:agent
    from crewkit.models.registry import RoleMap
    from tests.fakes import ScriptedLLM

    hang_role, _, hang_n = os.environ.get("KR_HANG_CALL", "").partition(":")
    made = {}

    def logged(role, value):
        def reply(call):
            made[role] = made.get(role, 0) + 1
            with open(os.environ["KR_CALLS"], "a") as fh:
                fh.write(f"{role}:{(call.agent or '').replace(' ', '_')}:{len(call.messages)}\\n")
                fh.flush()
                os.fsync(fh.fileno())
            if role == hang_role and made[role] == int(hang_n):
                hang(os.environ["KR_MARKER"])
            return value
        return reply

    roles = json.loads(os.environ["KR_ROLES"])
    fakes = {
        role: ScriptedLLM([logged(role, v) for v in roles.get(role, [])])
        for role in ("reasoning", "code", "manager", "vision")
    }

    def engine():
        from crewkit.runtime.startup import load_checked

        settings = load_checked()
        return settings, RoleMap(settings, overrides=fakes)

    cli._engine = engine

if os.environ.get("KR_HANG_APPROVAL"):
    from crewkit.runtime.store import StateStore

    requested = StateStore.request_approval

    def request_then_hang(self, *args, **kwargs):
        approval = requested(self, *args, **kwargs)
        hang(os.environ["KR_HANG_APPROVAL"])
        return approval

    StateStore.request_approval = request_then_hang

if os.environ.get("KR_HANG_STATUS"):
    from crewkit.runtime.store import StateStore

    hang_status, hang_marker = os.environ["KR_HANG_STATUS"].split(":", 1)
    set_status = StateStore.set_status

    def hang_then_set(self, run_id, status, **kwargs):
        if status == hang_status:
            hang(hang_marker)
        return set_status(self, run_id, status, **kwargs)

    StateStore.set_status = hang_then_set

if os.environ.get("KR_HANG_TRUNCATE"):
    from crewkit.runtime.store import StateStore

    truncate = StateStore.truncate

    def hang_then_truncate(self, run_id, seq):
        hang(os.environ["KR_HANG_TRUNCATE"])
        return truncate(self, run_id, seq)

    StateStore.truncate = hang_then_truncate

if os.environ.get("KR_HANG_UNDONE"):
    from crewkit.runtime.store import StateStore

    mark_undone = StateStore.mark_undone

    def hang_then_mark(self, entry_id):
        hang(os.environ["KR_HANG_UNDONE"])
        return mark_undone(self, entry_id)

    StateStore.mark_undone = hang_then_mark

if os.environ.get("KR_GO"):
    Path(os.environ["KR_READY"]).write_text(str(os.getpid()))
    while not os.path.exists(os.environ["KR_GO"]):
        time.sleep(0.001)

cli.entry(sys.argv[1:])  # as the console script: exits, at once after an interrupt
"""


class Children:
    """Child processes of one test: started with the driver, each SIGKILLed and reaped at the end."""

    def __init__(self, tmp: Path, project: Path) -> None:
        self.tmp = tmp
        self.project = project
        self.driver = tmp / "driver.py"
        self.driver.write_text(DRIVER)
        self.calls = tmp / "calls.txt"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, tuple[Path, Path]] = {}

    def start(self, *argv: str, scripted: bool = True, **env: str) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        out, err = self.tmp / f"child{n}.out", self.tmp / f"child{n}.err"
        child_env = {**os.environ, "KR_ROOT": str(ROOT), "CREWKIT_USER": "alice", **env}
        if scripted:
            child_env["KR_CALLS"] = str(self.calls)
        with out.open("wb") as fo, err.open("wb") as fe:
            proc = subprocess.Popen(
                [sys.executable, str(self.driver), *argv],
                stdout=fo,
                stderr=fe,
                env=child_env,
                cwd=self.project,
            )
        self.procs.append(proc)
        self.logs[proc.pid] = (out, err)
        return proc

    def finish(self, proc: subprocess.Popen[bytes], timeout: float = WAIT_S) -> tuple[int, str, str]:
        code = proc.wait(timeout=timeout)
        out, err = self.logs[proc.pid]
        return code, out.read_text(), err.read_text()

    def run(self, *argv: str, scripted: bool = True, **env: str) -> tuple[int, str, str]:
        return self.finish(self.start(*argv, scripted=scripted, **env))

    def wait_for(self, marker: Path, proc: subprocess.Popen[bytes]) -> None:
        """Until `marker` exists; fails at once (with the child's stderr) if the child ended first."""
        deadline = time.monotonic() + WAIT_S
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(
                    f"child exited {proc.returncode} before {marker.name}:\n{self.stderr(proc)[-3000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no {marker.name} after {WAIT_S:.0f} s:\n{self.stderr(proc)[-3000:]}")
            time.sleep(0.01)

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL

    def stderr(self, proc: subprocess.Popen[bytes]) -> str:
        return self.logs[proc.pid][1].read_text()

    def counted(self) -> Counter[str]:
        return Counter(self.calls.read_text().split()) if self.calls.exists() else Counter()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)


@pytest.fixture
def children(project: Path, tmp_path: Path) -> Iterator[Children]:
    (project / "flows" / "kill.py").write_text(KILL_FLOW)
    kids = Children(tmp_path, project)
    try:
        yield kids
    finally:
        kids.close()


def json_line(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def store(project: Path) -> StateStore:
    from crewkit.settings import load_settings

    return StateStore.open(load_settings(project).home)


def only_run_id(project: Path) -> str:
    (row,) = store(project).list_runs()
    return row.run_id


def quick_check(project: Path) -> str:
    """PRAGMA quick_check on state.db through a fresh sqlite3 connection (not the store's)."""
    from crewkit.settings import load_settings

    conn = sqlite3.connect(load_settings(project).home / "state.db")
    try:
        return conn.execute("PRAGMA quick_check").fetchone()[0]
    finally:
        conn.close()


def start_run(children: Children, task: str, **env: str) -> subprocess.Popen[bytes]:
    return children.start("run", "kill", "--inputs", json.dumps({"task": task}), "--json", **env)


def test_sigkill_in_the_middle_of_a_step_then_resume_finishes_without_rerunning_finished_steps(
    project, children, tmp_path
):
    marker = tmp_path / "three.started"
    proc = start_run(children, LOW_TASK, KR_HANG_AT="three+", KR_MARKER=str(marker))
    try:
        # one and two are checkpointed; `three` had its first call answered, its second is in flight
        children.wait_for(marker, proc)
        children.kill(proc)
    finally:
        children.close()
    run_id = only_run_id(project)
    killed = store(project).get_run(run_id)
    assert killed.status == "running" and killed.pid == proc.pid  # the process died before it could say so
    assert [cp.step for cp in store(project).checkpoints(run_id)] == ["one", "two"]
    assert quick_check(project) == "ok"

    code, out, err = children.run("resume", run_id, "--json")
    assert code == 0, err[-3000:]
    line = json_line(out)
    assert line["run_id"] == run_id and line["status"] == "done"
    # one and two finished before the kill: not run or paid again; `three` ran again, its answered first
    # call replayed from the journal, its second (cut off before an answer) made again
    assert children.counted() == Counter({"one": 1, "two": 1, "three": 1, "three+": 2})
    cps = store(project).checkpoints(run_id)
    assert [cp.step for cp in cps] == STEPS and [cp.seq for cp in cps] == [
        1,
        2,
        3,
        4,
    ]  # none lost, none twice
    record = json.loads(Path(line["output_file"]).read_text())
    assert record["resumed"]["replayed_steps"] == ["one", "two"]
    assert record["result"] == "one answered | two answered | three answered | three+ answered"
    assert record["usage"]["reasoning"]["calls"] == 4  # the answered calls of both processes, once each
    replayed = [s for s in record["steps"] if s.get("replayed")]
    assert [(s["step"], s["input_tokens"], s["output_tokens"]) for s in replayed] == [("three", 0, 0)]
    assert quick_check(project) == "ok"
    code, out, err = children.run("runs", "list", "--format", "json", scripted=False)
    assert code == 0, err
    assert [(r["run_id"], r["status"]) for r in json.loads(out)] == [(run_id, "done")]


def test_sigkill_while_the_pause_is_written_then_approve_and_resume_pays_nothing_again(
    project, children, tmp_path
):
    marker = tmp_path / "approval.requested"
    proc = start_run(children, IBAN_TASK, KR_HANG_APPROVAL=str(marker))
    try:
        children.wait_for(marker, proc)  # the approval row is committed; the run is not marked paused yet
        children.kill(proc)
    finally:
        children.close()
    run_id = only_run_id(project)
    assert quick_check(project) == "ok"
    assert [cp.step for cp in store(project).checkpoints(run_id)] == ["one", "two", "three"]

    code, out, err = children.run("approvals", "list", "--format", "json", scripted=False)
    assert code == 0, err
    (listed,) = json.loads(out)
    assert listed["run_id"] == run_id and listed["status"] == "pending" and listed["tier"] == "sensitive"
    approval_id = listed["id"]

    # resumed before anyone decided: it replays to the gate, finds the same approval still pending, exits 75
    code, out, err = children.run("resume", run_id, "--json")
    assert code == 75, err[-3000:]
    assert json_line(out)["approval_id"] == approval_id
    assert store(project).get_run(run_id).status == "paused"
    assert children.counted() == Counter({"one": 1, "two": 1, "three": 1, "three+": 1})

    code, out, err = children.run("approvals", "approve", approval_id, "--by", "bob", scripted=False)
    assert code == 0, err
    assert store(project).get_approval(approval_id).decided_by == "bob"

    code, out, err = children.run("resume", run_id, "--json")
    assert code == 0, err[-3000:]
    line = json_line(out)
    assert line["status"] == "done" and "approval_id" not in line
    assert children.counted() == Counter({"one": 1, "two": 1, "three": 1, "three+": 1})  # each paid once
    assert [cp.step for cp in store(project).checkpoints(run_id)] == STEPS
    record = json.loads(Path(line["output_file"]).read_text())
    assert record["resumed"]["replayed_steps"] == ["one", "two", "three"]
    assert record["usage"]["reasoning"]["calls"] == 4
    assert [a.id for a in store(project).list_approvals(run_id=run_id)] == [approval_id]  # not asked twice
    assert quick_check(project) == "ok"


def pending_approval(project: Path, n: int) -> str:
    """A paused run's pending sensitive approval, made by the real gate (no model, no CrewAI)."""
    from crewkit.errors import RunPaused
    from crewkit.governance import risk
    from crewkit.governance.approvals import ApprovalGate
    from crewkit.settings import load_settings

    settings = load_settings(project)
    st = store(project)
    run_id = f"20260101-000000-race{n:04d}"
    st.create_run(run_id, "kill", {"task": IBAN_TASK}, "sha256:test", "alice")
    gate = ApprovalGate(st, settings, run_id, "alice", checkpoints=lambda: 3)
    with pytest.raises(RunPaused) as paused:
        gate.check_step("release", [("task", risk.assess_subtask(settings, IBAN_TASK, "reasoning"))])
    approval_id = paused.value.required.approval_id
    st.set_status(run_id, "paused", approval_id=approval_id)
    return approval_id


@pytest.mark.parametrize(
    ("round_", "carol"),
    [(0, "approve"), (1, "approve"), (2, "approve"), (3, "reject"), (4, "reject")],
)
def test_two_processes_deciding_the_same_id_at_once_exactly_one_wins(
    project, children, tmp_path, round_, carol
):
    """bob approves and carol approves (or rejects) the same approval at the same moment."""
    approval_id = pending_approval(project, round_)
    go = tmp_path / "go"
    argv = {
        "bob": ["approvals", "approve", approval_id, "--by", "bob"],
        "carol": ["approvals", carol, approval_id, "--by", "carol"]
        + (["--reason", "wrong payee"] if carol == "reject" else []),
    }
    decision = {"bob": "approved", "carol": "approved" if carol == "approve" else "rejected"}
    procs = {}
    for who, args in argv.items():
        procs[who] = children.start(
            *args, scripted=False, KR_READY=str(tmp_path / f"{who}.ready"), KR_GO=str(go)
        )
    for who, proc in procs.items():
        children.wait_for(tmp_path / f"{who}.ready", proc)
    go.write_text("go")  # both are loaded and polling: they decide within a millisecond of each other
    ended = {who: children.finish(proc, timeout=60) for who, proc in procs.items()}

    codes = sorted(code for code, _, _ in ended.values())
    assert codes == [0, 2], ended
    winner = next(who for who, (code, _, _) in ended.items() if code == 0)
    loser = next(who for who in ended if who != winner)
    _, _, err = ended[loser]
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert (
        lines[0].startswith("error: ")
        and f"already {decision[winner]} by {winner}" in lines[0]
        and approval_id in lines[0]
    ), lines[0]
    decided = store(project).get_approval(approval_id)
    assert decided.status == decision[winner] and decided.decided_by == winner
    assert quick_check(project) == "ok"


def test_resume_while_another_process_runs_the_run_is_refused_and_changes_nothing(
    project, children, tmp_path
):
    marker = tmp_path / "two.started"
    proc = start_run(children, LOW_TASK, KR_HANG_AT="two", KR_MARKER=str(marker))
    try:
        children.wait_for(marker, proc)  # the run is in `two`, its model call in flight
        run_id = only_run_id(project)
        st = store(project)
        before = (
            st.get_run(run_id),
            st.checkpoints(run_id),
            st.calls(run_id),
            st.list_approvals(status=None),
        )

        code, out, err = children.run("resume", run_id, "--json")
        assert code == 2, err[-3000:]
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert f"run {run_id} is running in process {proc.pid}" in lines[0]
        assert out.strip() == ""
        # a rollback by hand is refused the same way: it would undo work under the running process
        code, out, err = children.run("rollback", run_id, "--to", "one", scripted=False)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"run {run_id} is running in process {proc.pid}" in err
        after = (st.get_run(run_id), st.checkpoints(run_id), st.calls(run_id), st.list_approvals(status=None))
        assert after == before
        assert children.counted() == Counter({"one": 1, "two": 1})  # the refused resume paid for nothing
        assert proc.poll() is None  # the running process was left alone
        assert not list((project / "output").glob(f"{run_id}*.json"))  # and no record was written for it
    finally:
        children.close()


def test_sigkill_after_the_last_step_before_the_run_is_marked_done_then_resume_only_finishes(
    project, children, tmp_path
):
    marker = tmp_path / "done.pending"
    proc = start_run(children, LOW_TASK, KR_HANG_STATUS=f"done:{marker}")
    try:
        children.wait_for(marker, proc)  # every step checkpointed, the record written, the status not yet
        children.kill(proc)
    finally:
        children.close()
    run_id = only_run_id(project)
    assert store(project).get_run(run_id).status == "running"
    assert [cp.step for cp in store(project).checkpoints(run_id)] == STEPS

    code, out, err = children.run("resume", run_id, "--json")
    assert code == 0, err[-3000:]
    line = json_line(out)
    assert line["status"] == "done"
    assert children.counted() == Counter({"one": 1, "two": 1, "three": 1, "three+": 1})  # no call again
    assert [cp.step for cp in store(project).checkpoints(run_id)] == STEPS  # no step twice
    record = json.loads(Path(line["output_file"]).read_text())
    assert record["resumed"]["replayed_steps"] == STEPS
    assert record["result"] == "one answered | two answered | three answered | three+ answered"
    assert store(project).get_run(run_id).status == "done"


def test_two_processes_resuming_a_killed_run_at_once_only_one_takes_it_and_a_third_finishes_it(
    project, children, tmp_path
):
    marker = tmp_path / "two.started"
    proc = start_run(children, LOW_TASK, KR_HANG_AT="two", KR_MARKER=str(marker))
    try:
        children.wait_for(marker, proc)
        children.kill(proc)
    finally:
        children.close()
    run_id = only_run_id(project)
    marker.unlink()
    go = tmp_path / "go"
    resumers = []
    for n in range(2):  # each hangs in `two` if it takes the run, so the other finds it running
        ready = tmp_path / f"resumer{n}.ready"
        resumers.append(
            children.start(
                "resume", run_id, KR_HANG_AT="two", KR_MARKER=str(marker), KR_READY=str(ready), KR_GO=str(go)
            )
        )
    try:
        for n, resumer in enumerate(resumers):
            children.wait_for(tmp_path / f"resumer{n}.ready", resumer)
        go.write_text("go")
        deadline = time.monotonic() + WAIT_S
        while all(r.poll() is None for r in resumers):  # a second winner would hang too: no exit, fail
            assert time.monotonic() < deadline, "neither resumer was refused: both took the run"
            time.sleep(0.01)
        (loser,) = [r for r in resumers if r.poll() is not None]
        (winner,) = [r for r in resumers if r is not loser]
        code, _, err = children.finish(loser)
        assert code == 2, err[-3000:]
        lines = err.strip().splitlines()
        assert len(lines) == 1 and f"run {run_id} is running in process {winner.pid}" in lines[0], err
        children.wait_for(marker, winner)
        assert marker.read_text() == str(winner.pid)
        row = store(project).get_run(run_id)
        assert row.status == "running" and row.pid == winner.pid
        # `one` never again; `two` by the winner only
        assert children.counted() == Counter({"one": 1, "two": 2})
        children.kill(winner)  # killed again, in the resumed segment
    finally:
        children.close()
    code, out, err = children.run("resume", run_id, "--json")  # a third process finishes it
    assert code == 0, err[-3000:]
    assert json_line(out)["status"] == "done"
    assert children.counted() == Counter({"one": 1, "two": 3, "three": 1, "three+": 1})
    assert [cp.step for cp in store(project).checkpoints(run_id)] == STEPS
    assert quick_check(project) == "ok"


def test_sigkill_in_the_middle_of_a_rollback_then_resume_refuses_until_the_rollback_is_finished(
    project, children, tmp_path
):
    target = tmp_path / "written.txt"
    code, out, err = children.run(
        "run", "kill", "--inputs", json.dumps({"task": LOW_TASK, "out": str(target)})
    )
    assert code == 0, err[-3000:]
    run_id = only_run_id(project)
    assert target.read_text() == "written by two"

    marker = tmp_path / "truncate.pending"
    proc = children.start("rollback", run_id, "--to", "one", scripted=False, KR_HANG_TRUNCATE=str(marker))
    try:
        children.wait_for(marker, proc)  # `two`'s file is undone; the checkpoints after `one` not yet dropped
        children.kill(proc)
    finally:
        children.close()
    assert not target.exists()
    assert quick_check(project) == "ok"
    before = store(project).get_run(run_id)

    # resuming now would replay `two` from its checkpoint over its undone file: refused, nothing changed
    code, out, err = children.run("resume", run_id, "--json")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"crewkit rollback {run_id} --to 1" in err
    assert store(project).get_run(run_id) == before and not target.exists()

    # the command it names finishes the rollback; then resume runs `two` again and its file is back
    code, out, err = children.run("rollback", run_id, "--to", "1", scripted=False)
    assert code == 0, err
    assert [cp.step for cp in store(project).checkpoints(run_id)] == ["one"]
    code, out, err = children.run("resume", run_id, "--json")
    assert code == 0, err[-3000:]
    assert json_line(out)["status"] == "done"
    assert target.read_text() == "written by two"
    # `one` was never paid again; the steps after the rollback point ran (and paid) once more
    assert children.counted() == Counter({"one": 1, "two": 2, "three": 2, "three+": 2})


def test_a_second_rollback_while_one_is_undoing_side_effects_in_a_live_process_is_refused(
    project, children, tmp_path
):
    target = tmp_path / "written.txt"
    code, out, err = children.run(
        "run", "kill", "--inputs", json.dumps({"task": LOW_TASK, "out": str(target)})
    )
    assert code == 0, err[-3000:]
    run_id = only_run_id(project)

    marker = tmp_path / "undone.pending"
    proc = children.start("rollback", run_id, "--to", "one", scripted=False, KR_HANG_UNDONE=str(marker))
    try:
        children.wait_for(marker, proc)  # the file is restored; the entry not yet marked undone
        before = (store(project).get_run(run_id), store(project).checkpoints(run_id))
        code, out, err = children.run("rollback", run_id, "--to", "one", scripted=False)
        assert code == 2 and len(err.strip().splitlines()) == 1, (code, out, err)
        assert f"process {proc.pid}" in err
        assert (store(project).get_run(run_id), store(project).checkpoints(run_id)) == before
    finally:
        children.close()


def test_sigkill_inside_a_crew_step_of_the_default_flow_replays_its_answered_calls_in_the_new_process(
    project, children, tmp_path
):
    """Killed while the executor's manager writes its final answer: the plan is checkpointed, and
    inside `execute` the manager's delegation and the specialist's answer were already paid. The
    new process re-enters `execute` with a new crew (new ids, new objects) and must find both in
    the journal: the prompts it sends are the same bytes as in the killed process."""
    task = "Explain recursion in one paragraph"
    answer = "Recursion is when a function calls itself on a smaller input until it reaches a base case."
    plan = {
        "subtasks": [{"description": task, "task_type": "reasoning", "acceptance": "Explains recursion."}]
    }
    delegate = [
        {
            "id": "call_0001",
            "type": "function",
            "function": {
                "name": "delegate_work_to_coworker",
                "arguments": json.dumps(
                    {"task": task, "context": "from the plan", "coworker": "Reasoning Specialist"}
                ),
            },
        }
    ]
    trusted = [{"passed": False, "issues": ["banana is not 4"]}, {"passed": True, "issues": []}]
    passed = {"passed": True, "issues": []}
    marker = tmp_path / "manager.final"
    first = {"reasoning": [plan, answer], "manager": [delegate, answer]}
    proc = children.start(
        "run", "--inputs", json.dumps({"task": task}), "--json",
        scripted=False, KR_CALLS=str(children.calls), KR_ROLES=json.dumps(first),
        KR_HANG_CALL="manager:2", KR_MARKER=str(marker),
    )  # fmt: skip
    try:
        children.wait_for(marker, proc)
        children.kill(proc)
    finally:
        children.close()
    run_id = only_run_id(project)
    assert [cp.step for cp in store(project).checkpoints(run_id)] == [
        "plan",
        "approve",
    ]  # approve: nothing sensitive, no person
    killed = children.calls.read_text().split()
    assert [c.rsplit(":", 1)[0] for c in killed] == [
        "reasoning:Planner", "manager:Crew_Manager", "reasoning:Reasoning_Specialist", "manager:Crew_Manager"
    ]  # fmt: skip
    cut_off = killed[-1]  # the manager's second call: its first messages plus the delegation's result

    children.calls.unlink()
    # the new process is scripted with only what is still owed: the manager's final answer (cut off),
    # then the verifier's calibration and review; a call paid again would take a wrong reply and fail
    second = {"reasoning": [*trusted, passed], "manager": [answer]}
    code, out, err = children.run(
        "resume", run_id, "--json", scripted=False, KR_CALLS=str(children.calls), KR_ROLES=json.dumps(second)
    )
    assert code == 0, err[-3000:]
    assert json_line(out)["status"] == "done"
    again = children.calls.read_text().split()
    # only the cut-off call reached the manager again (same messages); the delegation and the
    # specialist's answer came from the journal; then the verifier (calibration twice, review)
    assert [c for c in again if c.startswith("manager:")] == [cut_off]
    assert [c.rsplit(":", 1)[0] for c in again if not c.startswith("manager:")] == ["reasoning:Verifier"] * 3
    record = json.loads(Path(json_line(out)["output_file"]).read_text())
    assert record["resumed"]["replayed_steps"] == ["plan", "approve"]
    assert record["result"] == answer


def test_ctrl_c_in_the_middle_of_a_step_exits_130_at_once_and_resume_pays_only_the_cut_off_call(
    project, children, tmp_path
):
    marker = tmp_path / "three.started"
    proc = start_run(children, LOW_TASK, KR_HANG_AT="three+", KR_MARKER=str(marker))
    try:
        children.wait_for(marker, proc)
        interrupted_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code, out, err = children.finish(proc, timeout=30)
        assert code == 130, err[-3000:]
        assert time.monotonic() - interrupted_at < 20  # not after the 60 s model call in flight
    finally:
        children.close()
    line = json_line(out)
    run_id = line["run_id"]
    assert line["status"] == "interrupted" and store(project).get_run(run_id).status == "interrupted"
    assert [cp.step for cp in store(project).checkpoints(run_id)] == ["one", "two"]

    code, out, err = children.run("resume", run_id, "--json")
    assert code == 0, err[-3000:]
    assert json_line(out)["status"] == "done"
    assert children.counted() == Counter({"one": 1, "two": 1, "three": 1, "three+": 2})
    assert [cp.step for cp in store(project).checkpoints(run_id)] == STEPS


def test_runs_show_of_a_killed_run_shows_what_it_paid_for(project, children, tmp_path):
    marker = tmp_path / "three.started"
    proc = start_run(children, LOW_TASK, KR_HANG_AT="three+", KR_MARKER=str(marker))
    try:
        children.wait_for(marker, proc)
        children.kill(proc)
    finally:
        children.close()
    run_id = only_run_id(project)
    assert len(store(project).calls(run_id)) == 3  # one, two and three's first call: paid, in state.db
    code, out, err = children.run("runs", "show", run_id, "--format", "json", scripted=False)
    assert code == 0, err
    shown = json.loads(out)
    assert [c["step"] for c in shown["checkpoints"]] == ["one", "two"]
    assert shown["usage"].get("reasoning", {}).get("calls") == 3
