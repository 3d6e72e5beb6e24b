"""The scheduler's engine on a fake clock and a fake launcher: each fire claimed once in
schedule_fires before launch, restarts that neither lose nor duplicate, overlap, pauses,
misfire policies, the audit trail, and fires left behind by a scheduler that died."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest

from crewkit.runtime.store import StateStore
from crewkit.scheduling import scheduler as sched
from crewkit.scheduling.scheduler import Launched, Scheduler, SubprocessLauncher
from crewkit.settings import load_settings

T0 = datetime(2026, 11, 27, 12, 0, 30, tzinfo=UTC).timestamp()  # 30 s past a minute
MINUTE = 60.0


def minute(n: int) -> float:
    """The n-th whole minute after T0."""
    return T0 - 30 + n * MINUTE


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeLauncher:
    """Records launches; answers from `statuses` (default done); `hold` keeps runs going."""

    def __init__(self, statuses: list[str] | None = None) -> None:
        self.calls: list[tuple[str, float]] = []
        self.statuses = list(statuses or [])
        self.hold = threading.Event()
        self.hold.set()
        self.lock = threading.Lock()

    def __call__(self, job, fire_time, on_start, stop) -> Launched:
        with self.lock:
            self.calls.append((job.name, fire_time))
            n = len(self.calls)
        on_start(4_000_000 + n)
        self.hold.wait(10)
        status = self.statuses.pop(0) if self.statuses else "done"
        code = {"done": 0, "failed": 1, "paused": 75}[status]
        return Launched(f"run-{n}", status, code, {"approval_id": "ap-1"} if status == "paused" else {})


def project_with(project, jobs: str):
    (project / "config" / "schedules.yaml").write_text("jobs:\n" + jobs)
    return load_settings(project)


JOB = "  - {name: tick, cron: '* * * * *', flow: default, inputs: {task: t}}\n"


def make(settings, now: float, launcher=None, **kw) -> Scheduler:
    return Scheduler(settings, launcher=launcher or FakeLauncher(), clock=Clock(now), **kw)


def run(s: Scheduler, now: float, name: str = "tick") -> None:
    s.clock.now = now
    for thread in s.tick(name):
        thread.join(10)


def fires(settings, job: str = "tick") -> list[tuple[float, str, str | None]]:
    rows = StateStore.open(settings.home).read(
        "SELECT fire_time, status, run_id FROM schedule_fires WHERE job = ? ORDER BY fire_time", (job,)
    )
    return [(float(t), s, r) for t, s, r in rows]


def audit_actions(settings) -> list[tuple[str, str, str | None, dict]]:
    rows = StateStore.open(settings.home).read("SELECT actor, action, run_id, detail FROM audit ORDER BY seq")
    return [(a, act, r, json.loads(d)) for a, act, r, d in rows if act.startswith("schedule.")]


def test_a_fire_is_claimed_audited_and_launched_once(project):
    settings = project_with(project, JOB)
    launcher = FakeLauncher()
    s = make(settings, T0, launcher)
    run(s, minute(1) + 0.2)
    run(s, minute(1) + 0.5)  # the same fire asked for again
    assert launcher.calls == [("tick", minute(1))]
    assert fires(settings) == [(minute(1), "done", "run-1")]
    actions = audit_actions(settings)
    assert [(a, act) for a, act, _, _ in actions] == [
        ("scheduler", "schedule.fired"),
        ("scheduler", "schedule.finished"),
    ]
    assert actions[1][2] == "run-1" and actions[1][3]["status"] == "done"
    assert actions[0][3]["fire_time"] == "2026-11-27T12:01:00+00:00"


def test_the_claim_is_written_before_the_launch(project):
    settings = project_with(project, JOB)
    seen = []

    def launcher(job, fire_time, on_start, stop):
        seen.append(fires(settings))  # what state.db holds when the run starts
        return Launched("r", "done", 0)

    run(make(settings, T0, launcher), minute(1))
    assert seen == [[(minute(1), "launching", None)]]


def test_a_first_start_does_not_replay_history(project):
    settings = project_with(project, JOB)
    launcher = FakeLauncher()
    s = make(settings, T0, launcher)
    for thread in s.run_pending():
        thread.join(10)
    assert launcher.calls == [] and fires(settings) == []


@pytest.mark.parametrize(
    ("policy", "launched", "statuses"),
    [
        ("run_once", [4], {2: None, 3: None, 4: "done"}),  # one run for the missed fires: the latest
        ("run_all", [2, 3, 4], {2: "done", 3: "done", 4: "done"}),
        ("skip", [], {4: "skipped"}),
    ],
)
def test_a_restart_neither_loses_nor_duplicates_fires(project, policy, launched, statuses):
    settings = project_with(project, JOB.replace("inputs:", f"misfire: {policy}, inputs:"))
    first = make(settings, T0)
    run(first, minute(1) + 1)  # fire 1 runs; then the scheduler is down for fires 2..4
    launcher = FakeLauncher()
    second = make(settings, minute(4) + 20, launcher)
    for thread in second.run_pending():
        thread.join(10)
    second.wait(10)
    assert [t for _, t in launcher.calls] == [minute(n) for n in launched]
    recorded = {round((t - minute(0)) / MINUTE): status for t, status, _ in fires(settings)}
    assert recorded == {1: "done", **{n: s for n, s in statuses.items() if s}}
    again = FakeLauncher()
    third = make(settings, minute(4) + 40, again)  # restarted once more before the next fire
    for thread in third.run_pending():
        thread.join(10)
    assert again.calls == []


def test_fires_later_than_grace_are_recorded_as_misfired_not_run(project):
    job = "  - {name: tick, cron: '* * * * *', misfire: {policy: run_once, grace_seconds: 30}}\n"
    settings = project_with(project, job)
    run(make(settings, T0), minute(1) + 1)
    launcher = FakeLauncher()
    s = make(settings, minute(6) + 40, launcher)  # fires 2..6 missed; 6 is 40 s late > 30
    for thread in s.run_pending():
        thread.join(10)
    assert launcher.calls == []
    assert fires(settings)[-1][:2] == (minute(6), "misfired")
    (misfired,) = [d for _, act, _, d in audit_actions(settings) if act == "schedule.misfired"]
    assert misfired["missed"] == 5


def test_the_job_store_s_pending_fire_is_not_lost_on_the_first_restart(project):
    settings = project_with(project, JOB)
    launcher = FakeLauncher()
    # the previous scheduler waited for fire 1 (job store) and never recorded a fire
    s = make(settings, minute(2) + 5, launcher, resume_from={"tick": minute(1)})
    for thread in s.run_pending():
        thread.join(10)
    assert launcher.calls == [("tick", minute(2))]  # run_once: fires 1 and 2 as one run


def test_overlapping_runs_of_a_job_are_skipped_and_audited(project):
    settings = project_with(project, JOB)
    launcher = FakeLauncher()
    launcher.hold.clear()  # the first run keeps going
    s = make(settings, T0, launcher)
    s.clock.now = minute(1)
    (first,) = s.tick("tick")
    time.sleep(0.2)
    run(s, minute(2))
    assert launcher.calls == [("tick", minute(1))]
    assert fires(settings)[1][:2] == (minute(2), "skipped")
    launcher.hold.set()
    first.join(10)
    run(s, minute(3))
    assert [t for _, t in launcher.calls] == [minute(1), minute(3)]
    skipped = [d for _, act, _, d in audit_actions(settings) if act == "schedule.skipped"]
    assert len(skipped) == 1 and "max_concurrent 1" in skipped[0]["reason"]


def test_max_concurrent_allows_that_many_runs_at_once(project):
    settings = project_with(project, JOB.replace("inputs:", "max_concurrent: 2, inputs:"))
    launcher = FakeLauncher()
    launcher.hold.clear()
    s = make(settings, T0, launcher)
    threads = []
    for n in (1, 2, 3):
        s.clock.now = minute(n)
        threads += s.tick("tick")
        time.sleep(0.1)
    launcher.hold.set()
    for thread in threads:
        thread.join(10)
    assert [t for _, t in launcher.calls] == [minute(1), minute(2)]
    assert [status for _, status, _ in fires(settings)] == ["done", "done", "skipped"]


def test_a_run_paused_for_approval_ends_its_fire_and_the_next_fire_runs(project):
    settings = project_with(project, JOB)
    launcher = FakeLauncher(["paused", "done"])
    s = make(settings, T0, launcher)
    run(s, minute(1))
    run(s, minute(2))
    assert fires(settings) == [(minute(1), "paused", "run-1"), (minute(2), "done", "run-2")]


def test_a_claimed_fire_its_dead_scheduler_never_launched_is_launched_once(project):
    settings = project_with(project, JOB)
    store = StateStore.open(settings.home)
    dead = json.dumps({"owner": f"{sched.HOST}:999999:dead"})  # no such process
    with store.write() as conn:
        conn.execute(
            "INSERT INTO schedule_fires (job, fire_time, status, detail, created, updated) VALUES (?, ?, 'launching', ?, ?, ?)",
            ("tick", minute(1), dead, minute(1), minute(1)),
        )
    launcher = FakeLauncher()
    s = make(settings, minute(1) + 10, launcher)
    for thread in s.run_pending():
        thread.join(10)
    s.wait(10)
    assert launcher.calls == [("tick", minute(1))]
    assert fires(settings) == [(minute(1), "done", "run-1")]


def test_a_run_that_outlived_its_scheduler_is_watched_and_holds_its_slot(project):
    settings = project_with(project, JOB)
    store = StateStore.open(settings.home)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    detail = json.dumps({"owner": f"{sched.HOST}:999999:dead", "child_pid": child.pid, "host": sched.HOST})
    with store.write() as conn:
        conn.execute(
            "INSERT INTO schedule_fires (job, fire_time, status, detail, created, updated) VALUES (?, ?, 'running', ?, ?, ?)",
            ("tick", minute(1), detail, minute(1), minute(1)),
        )
    launcher = FakeLauncher()
    s = make(settings, minute(2), launcher)
    run(s, minute(2))  # fire 2 while the orphan still runs: skipped
    assert launcher.calls == [] and fires(settings)[1][1] == "skipped"
    child.wait()
    s.wait(10)
    assert fires(settings)[0][1] == "abandoned"  # it ended; no run row names its pid


def test_the_subprocess_launcher_reads_the_json_line_and_exit_code(settings, tmp_path):
    settings = settings
    job = settings.schedules.jobs[0]
    script = "import json, sys; print('result text'); print(json.dumps({'run_id': 'r-9', 'status': 'paused', 'approval_id': 'a-1'})); sys.exit(75)"
    launcher = SubprocessLauncher(settings, [sys.executable, "-c", script])
    started = []
    result = launcher(job, T0, started.append, threading.Event())
    assert started and result.run_id == "r-9" and result.status == "paused" and result.exit_code == 75
    assert result.detail["approval_id"] == "a-1"
    log = (settings.home / "logs" / "schedules" / job.name).glob("*.log")
    assert "result text" in next(log).read_text()


def test_the_subprocess_launcher_names_a_run_that_never_started(settings):
    job = settings.schedules.jobs[0]
    script = "import sys; sys.stderr.write('error: unknown flow x\\n'); sys.exit(2)"
    result = SubprocessLauncher(settings, [sys.executable, "-c", script])(
        job, T0, lambda pid: None, threading.Event()
    )
    assert (
        result.run_id is None
        and result.status == "error"
        and result.detail["error"] == "error: unknown flow x"
    )


def test_the_subprocess_launcher_interrupts_a_run_past_its_timeout(project):
    settings = project_with(project, "  - {name: slow, cron: '* * * * *', timeout_seconds: 0.5}\n")
    script = (
        "import signal, sys, time\nsignal.signal(signal.SIGINT, lambda *a: sys.exit(130))\ntime.sleep(30)"
    )
    start = time.monotonic()
    result = SubprocessLauncher(settings, [sys.executable, "-c", script])(
        settings.schedules.jobs[0], T0, lambda pid: None, threading.Event()
    )
    assert result.status == "timeout" and result.exit_code == 130 and time.monotonic() - start < 10


def test_the_launch_command_is_crewkit_run_with_json(settings):
    job = settings.schedules.jobs[0]
    argv = SubprocessLauncher(settings).argv(job)
    assert argv[1:] == ["-m", "crewkit.cli", "run", "default", "--inputs", json.dumps(job.inputs), "--json"]


def test_apscheduler_fires_each_second_once_with_a_persistent_job_store(project):
    settings = project_with(project, "  - {name: fast, cron: '* * * * * *', misfire: run_all}\n")
    launcher = FakeLauncher()
    sched.run(settings, seconds=2.5, launcher=launcher)
    first = [t for _, t in launcher.calls]
    assert len(first) >= 2 and len(set(first)) == len(first)
    assert (settings.home / "schedules.db").exists()
    again = FakeLauncher()
    sched.run(settings, seconds=1.5, launcher=again)  # restarted: catches up the gap, repeats nothing
    second = [t for _, t in again.calls]
    assert not set(first) & set(second)
    recorded = [t for t, _, _ in fires(settings, "fast")]
    assert sorted(recorded) == sorted(first + second)
    assert all(b - a == 1.0 for a, b in zip(sorted(recorded), sorted(recorded)[1:], strict=False))


def test_a_run_killed_before_its_json_line_is_still_named_by_its_fire(project):
    settings = project_with(project, JOB)
    store = StateStore.open(settings.home)

    def launcher(job, fire_time, on_start, stop):
        on_start(os.getpid())  # the child: runs records its pid and host
        store.create_run("run-killed", job.flow, {"task": "t"}, "sha256:x", None)
        return Launched(None, "killed", -9, {"log": "x.log"})

    start = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC).timestamp()  # before the run's real creation time
    run(make(settings, start, launcher), start + 30)
    assert fires(settings) == [(start + 30, "killed", "run-killed")]


def test_a_child_killed_by_a_signal_is_killed_not_failed(settings):
    job = settings.schedules.jobs[0]
    script = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    result = SubprocessLauncher(settings, [sys.executable, "-c", script])(
        job, T0, lambda pid: None, threading.Event()
    )
    assert result.status == "killed" and result.exit_code == -9


def test_a_running_fire_names_its_run_before_the_run_ends(project):
    settings = project_with(project, JOB)
    store = StateStore.open(settings.home)
    created, release = threading.Event(), threading.Event()

    def launcher(job, fire_time, on_start, stop):
        on_start(os.getpid())
        store.create_run("run-live", job.flow, {"task": "t"}, "sha256:x", None)
        created.set()
        release.wait(10)
        return Launched("run-live", "done", 0)

    start = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC).timestamp()
    s = make(settings, start, launcher)
    s.clock.now = start + 30
    (thread,) = s.tick("tick")
    assert created.wait(10)
    s.heartbeat()
    assert fires(settings) == [(start + 30, "running", "run-live")]
    release.set()
    thread.join(10)
    assert fires(settings) == [(start + 30, "done", "run-live")]


def test_a_year_of_missed_fires_is_one_misfired_row_found_without_listing_them(project):
    settings = project_with(project, JOB)  # every minute, grace 3600 s
    run(make(settings, T0), minute(1))
    year = 365 * 24 * 60
    launcher = FakeLauncher()
    s = make(settings, minute(year) + 5, launcher)
    started = time.monotonic()
    for thread in s.run_pending():
        thread.join(10)
    assert time.monotonic() - started < 5  # not 525,000 trigger steps
    rows = fires(settings)
    assert [(round((t - minute(0)) / MINUTE), status) for t, status, _ in rows] == [
        (1, "done"),
        (year - 60, "misfired"),  # the newest fire more than grace (3600 s) before now (5 s past)
        (year, "done"),  # run_once: the fires within the grace time, as one run
    ]
    (misfired,) = [d for _, act, _, d in audit_actions(settings) if act == "schedule.misfired"]
    assert misfired["missed"] == "1000 or more" and misfired["first"] == "2026-11-27T12:02:00+00:00"
    assert launcher.calls == [("tick", minute(year))]
