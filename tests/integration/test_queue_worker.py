"""Runs through real Celery workers on a real redis-server: `crewkit run --queue --wait`, and a
worker SIGKILLed mid-run whose run another worker finishes without paying for a call twice.

Each worker is a real `crewkit worker` process (prefork pool, one child) started by a driver that
scripts the reasoning role: every model call appends its step to a calls file (fsynced), and the
step named by QW_HANG_AT writes a marker and sleeps, so the test kills the worker at that point.
The model is priced (tests/budget_setup.py), so budget totals show what was paid. A worker
imports CrewAI before it consumes (~10 s on a busy 2-core machine); waits are on markers and the
run's status, never on fixed sleeps.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from crewkit.runtime.store import StateStore
from crewkit.scheduling import queue
from tests.budget_setup import budget_settings
from tests.redis_server import redis_server_fixture  # noqa: F401 - the fixture `redis_server`
from tests.sample_project import run_cli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 240.0

STEPS_FLOW = """
from __future__ import annotations

from typing import ClassVar

from crewai.flow.flow import listen, start
from pydantic import BaseModel, ConfigDict

from crewkit.runtime.flow import CrewkitFlow, RunState


class Inputs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str


class State(RunState):
    task: str = ""
    notes: list[str] = []


class Steps(CrewkitFlow[State]):
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
        self.ask("two")

    @listen(two)
    def three(self) -> None:  # two calls: a kill at the second leaves the first journalled
        self.ask("three")
        self.ask("three+")
        self.state.result = " | ".join(self.state.notes)
        self.state.status = "done"
"""

DRIVER = """
import os, sys, time
from pathlib import Path

sys.path.insert(0, os.environ["QW_ROOT"])
from crewkit import cli
from crewkit.models.registry import RoleMap
from tests.fakes import ScriptedLLM


def reply(call):
    step = call.last.split(":", 1)[0]
    with open(os.environ["QW_CALLS"], "a") as fh:
        fh.write(step + "\\n")
        fh.flush()
        os.fsync(fh.fileno())
    if step == os.environ.get("QW_SLOW_AT"):  # a slow call, longer than the visibility timeout
        time.sleep(float(os.environ["QW_SLOW_S"]))
    if step == os.environ.get("QW_HANG_AT"):
        marker = os.environ["QW_MARKER"]
        Path(marker + ".tmp").write_text(str(os.getpid()))
        os.replace(marker + ".tmp", marker)
        time.sleep(120)
    return f"{step} answered"


fake = ScriptedLLM([reply] * 50, allow_unused=True)


def engine():
    from crewkit.runtime.startup import load_checked

    settings = load_checked()
    return settings, RoleMap(settings, overrides={"reasoning": fake})


cli._engine = engine
cli.entry(["worker", "--concurrency", "1", "--loglevel", "info"])
"""


class Workers:
    """`crewkit worker` processes of one test, each in its own process group, all killed at the end."""

    def __init__(self, tmp: Path, project: Path) -> None:
        self.tmp, self.project = tmp, project
        self.driver = tmp / "worker_driver.py"
        self.driver.write_text(DRIVER)
        self.calls = tmp / "calls.txt"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        log = self.tmp / f"worker{len(self.procs)}.log"
        child_env = {**os.environ, "QW_ROOT": str(ROOT), "QW_CALLS": str(self.calls), **env}
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, str(self.driver)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=child_env,
                cwd=self.project,
                start_new_session=True,  # its own process group: the pool's children die with it
            )
        self.procs.append(proc)
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.tmp / f"worker{self.procs.index(proc)}.log").read_text(errors="replace")[-4000:]

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def counted(self) -> Counter[str]:
        return Counter(self.calls.read_text().split()) if self.calls.exists() else Counter()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)


@pytest.fixture
def workers(project: Path, tmp_path: Path, redis_server) -> Iterator[Workers]:
    # its own module name: a `flows.steps` imported here would be the one unit tests in this process get
    (project / "flows" / "queued_steps.py").write_text(STEPS_FLOW)
    budget_settings(project, {"total": 100.0})
    ops = project / "config" / "operations.yaml"
    text = ops.read_text().replace("visibility_timeout: 3600", "visibility_timeout: 4")
    ops.write_text(text.replace("heartbeat_seconds: 15", "heartbeat_seconds: 1"))
    crew = Workers(tmp_path, project)
    try:
        yield crew
    finally:
        crew.close()


def store_of(project: Path) -> StateStore:
    from crewkit.settings import load_settings

    return StateStore.open(load_settings(project).home)


def spent_total(store: StateStore) -> float:
    rows = store.read("SELECT spent FROM budget_totals WHERE scope = 'total'")
    return float(rows[0][0]) if rows else 0.0


def test_a_queued_run_goes_through_a_worker_and_wait_exits_with_its_code(workers, project, capsys):
    worker = workers.start()
    code, out, err = run_cli(
        capsys, "run", "queued_steps", "--queue", "--wait", "--json", "--inputs", '{"task": "t"}'
    )
    assert code == 0, err + workers.log(worker)
    line = json.loads(out.strip().splitlines()[-1])
    assert line["status"] == "done"
    record = json.loads(Path(line["output_file"]).read_text())
    assert record["notes"] == ["one answered", "two answered", "three answered", "three+ answered"]
    store = store_of(project)
    row = store.require_run(line["run_id"])
    assert row.status == "done" and row.pid not in (None, os.getpid(), worker.pid)  # a pool child ran it
    assert workers.counted() == Counter({"one": 1, "two": 1, "three": 1, "three+": 1})
    assert len(store.calls(line["run_id"])) == 4


def test_a_worker_killed_mid_run_is_replaced_and_nothing_is_paid_twice(workers, project, tmp_path, capsys):
    marker = tmp_path / "hung"
    first = workers.start(QW_HANG_AT="three+", QW_MARKER=str(marker))
    code, out, err = run_cli(capsys, "run", "queued_steps", "--queue", "--json", "--inputs", '{"task": "t"}')
    assert code == 0, err
    run_id = json.loads(out.strip().splitlines()[-1])["run_id"]
    deadline = time.monotonic() + WAIT_S
    while not marker.exists():
        assert first.poll() is None, workers.log(first)
        assert time.monotonic() < deadline, workers.log(first)
        time.sleep(0.05)
    store = store_of(project)
    paid_before = store.calls(run_id)
    spent_before = spent_total(store)
    assert len(paid_before) == 3 and spent_before > 0  # one, two, three answered and paid; three+ in flight
    workers.kill(first)  # SIGKILL: the worker and its pool child, the run left "running", unacknowledged
    assert store.require_run(run_id).status == "running"

    second = workers.start()
    outcome = queue.wait(_settings(project), run_id, timeout=WAIT_S)
    assert outcome.status == "done", workers.log(second)
    assert outcome.record["notes"] == ["one answered", "two answered", "three answered", "three+ answered"]
    assert outcome.record["resumed"]["replayed_steps"] == ["one", "two"]
    # the model was asked for three+ twice (the first answer died with its worker), everything else once
    assert workers.counted() == Counter({"one": 1, "two": 1, "three": 1, "three+": 2})
    rows = store.calls(run_id)
    replayed = [c for c in rows if c.get("replayed")]
    paid = [c for c in rows if not c.get("replayed")]
    assert [c["stage"] for c in paid] == ["one", "two", "three", "three"]  # each call paid once
    assert [(c["stage"], c["cost_usd"]) for c in replayed] == [("three", 0)]  # the journal answered it
    assert spent_total(store) == pytest.approx(sum(c["cost_usd"] for c in paid))  # the budget agrees
    assert spent_total(store) == pytest.approx(spent_before + paid[-1]["cost_usd"])
    retried = store.read("SELECT detail FROM audit WHERE action = 'queue.retried' AND run_id = ?", (run_id,))
    assert len(retried) == 1 and json.loads(retried[0][0])["lost_pid"] is not None


def _settings(project: Path):
    from crewkit.settings import load_settings

    return load_settings(project)


def test_a_pool_child_killed_mid_run_is_retried_at_once_by_its_own_worker(workers, project, tmp_path, capsys):
    ops = project / "config" / "operations.yaml"  # no redelivery by timeout here: only by the rejection
    ops.write_text(ops.read_text().replace("visibility_timeout: 4", "visibility_timeout: 3600"))
    marker = tmp_path / "hung"
    worker = workers.start(QW_HANG_AT="two", QW_MARKER=str(marker))
    code, out, err = run_cli(capsys, "run", "queued_steps", "--queue", "--json", "--inputs", '{"task": "t"}')
    assert code == 0, err
    run_id = json.loads(out.strip().splitlines()[-1])["run_id"]
    deadline = time.monotonic() + WAIT_S
    while not marker.exists():
        assert worker.poll() is None and time.monotonic() < deadline, workers.log(worker)
        time.sleep(0.05)
    child = int(marker.read_text())
    assert child != worker.pid
    marker.unlink()
    os.kill(child, signal.SIGKILL)  # the OOM killer's way: the worker lives, its child does not
    # reject_on_worker_lost: the message goes back at once; the new child resumes the run and
    # hangs again at `two` (its answer was never given), so the marker is written by another pid
    while not marker.exists():
        assert worker.poll() is None and time.monotonic() < deadline, workers.log(worker)
        time.sleep(0.05)
    assert int(marker.read_text()) != child
    store = store_of(project)
    assert store.require_run(run_id).status == "running"
    retried = store.read("SELECT detail FROM audit WHERE action = 'queue.retried' AND run_id = ?", (run_id,))
    assert [json.loads(r[0])["lost_pid"] for r in retried] == [child]
    assert workers.counted() == Counter({"one": 1, "two": 2})  # `one` answered from the journal


def test_a_run_longer_than_the_visibility_timeout_runs_once_while_another_worker_watches(
    workers, project, capsys
):
    slow = {"QW_SLOW_AT": "two", "QW_SLOW_S": "12"}  # 3 x the 4 s visibility timeout
    first, second = workers.start(**slow), workers.start(**slow)
    code, out, err = run_cli(
        capsys, "run", "queued_steps", "--queue", "--wait", "--json", "--inputs", '{"task": "t"}'
    )
    assert code == 0, err + workers.log(first) + workers.log(second)
    run_id = json.loads(out.strip().splitlines()[-1])["run_id"]
    # Redis handed the unacknowledged message to the idle worker, which saw the run alive and only
    # looked again later: every step ran once, nothing was taken over
    assert workers.counted() == Counter({"one": 1, "two": 1, "three": 1, "three+": 1})
    store = store_of(project)
    assert store.read(
        "SELECT COUNT(*) FROM audit WHERE action = 'queue.retried' AND run_id = ?", (run_id,)
    ) == [(0,)]
    logs = workers.log(first) + workers.log(second)
    assert "Retry in" in logs, logs
