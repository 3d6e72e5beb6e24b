"""`crewkit schedule run`: config/schedules.yaml's jobs fired in the foreground on APScheduler 3.

APScheduler is the clock: one job per schedule, a cron trigger in the job's zone, kept in a
persistent SQLAlchemy job store (`CREWKIT_HOME/schedules.db`, or the PostgreSQL database named by
`operations.database.url_env`), so a restarted scheduler knows which fire it was waiting for.
What was fired is decided by table `schedule_fires` (PRIMARY KEY (job, fire_time)), the one record
of truth: each nominal fire time is claimed there, with its `schedule.fired` audit record, in one
transaction BEFORE anything is launched. A second claim of the same fire (a restart, a second
scheduler on the same database) finds the row and launches nothing; a fire the scheduler slept
through is found as a gap after the job's last recorded fire and handled by the misfire policy.

A fire's life (`status`): `queued` (a `run_all` catch-up waiting for the previous one) ->
`launching` (claimed, jitter pending) -> `running` (the `crewkit run` child started) -> the run's
own status (`done`, `failed`, `paused`, `rejected`, `interrupted`, ...) or `error` (it never
started: exit 2), `timeout`; or, never launched: `skipped` (an earlier run of the job still going,
or missed under policy `skip`), `misfired` (later than `grace_seconds`), `abandoned` (its
scheduler died and its run cannot be found). A run that pauses for approval (exit 75) ends its
fire as `paused`: it holds no slot, so the next fire is not blocked.

Each fire runs `crewkit run FLOW --inputs JSON --json` as a child process (exactly the recipe
for external schedulers), its output in `CREWKIT_HOME/logs/schedules/JOB/`. In-flight fires carry
their scheduler (`host:pid`) and a heartbeat; a scheduler that died leaves rows another one
adopts: a child still alive is watched to its end, a fire never launched is launched.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crewkit.governance import audit
from crewkit.scheduling.config import Job, fire_times, next_fires, trigger

log = logging.getLogger(__name__)

ACTOR = "scheduler"
IN_FLIGHT = ("queued", "launching", "running")
SLOT_HOLDERS = ("launching", "running")  # what max_concurrent counts
HEARTBEAT_S = 10.0
STALE_S = 60.0  # an in-flight row not refreshed for this long belongs to a dead scheduler
EXIT_STATUS = {0: "done", 1: "failed", 2: "error", 75: "paused", 130: "interrupted"}
HOST = socket.gethostname()
JOB_TABLE = "crewkit_apscheduler_jobs"
LATE_COUNT_CAP = 1000  # missed fires counted one by one up to this many ("1000 or more")


def _iso(ts: float, tz: Any = UTC) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- launching a run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Launched:
    """How a fire's run ended: its run id (None if it never started), status, exit code."""

    run_id: str | None
    status: str
    exit_code: int | None
    detail: dict[str, Any] = field(default_factory=dict)


Launcher = Callable[[Job, float, Callable[[int], None], threading.Event], Launched]


class SubprocessLauncher:
    """Runs `crewkit run FLOW --inputs JSON --json [--profile P]` in the project, as a child.

    `on_start(pid)` is called once the child exists. The last stdout line (`--json`) gives the
    run id and status; without it the exit code does (2: the run never started). A job's
    `timeout_seconds`, or `stop` being set, interrupts the child (SIGINT: it writes its record as
    interrupted), then kills it 30 s later."""

    def __init__(self, settings: Any, command: list[str] | None = None) -> None:
        self.settings = settings
        self.command = command or [sys.executable, "-m", "crewkit.cli"]

    def argv(self, job: Job) -> list[str]:
        argv = [*self.command, "run", job.flow, "--inputs", json.dumps(job.inputs), "--json"]
        return argv + (["--profile", job.profile] if job.profile else [])

    def __call__(
        self, job: Job, fire_time: float, on_start: Callable[[int], None], stop: threading.Event
    ) -> Launched:
        folder = self.settings.home / "logs" / "schedules" / job.name
        folder.mkdir(parents=True, exist_ok=True)
        log_path = folder / f"{datetime.fromtimestamp(fire_time, UTC):%Y%m%dT%H%M%SZ}.log"
        env = {
            **os.environ,
            "CREWKIT_PROJECT": str(self.settings.project_dir),
            "CREWKIT_HOME": str(self.settings.home),
        }
        with log_path.open("ab") as err:
            try:
                child = subprocess.Popen(
                    self.argv(job), cwd=self.settings.project_dir, env=env,
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                )  # fmt: skip
            except OSError as exc:
                return Launched(
                    None, "error", None, {"error": f"cannot start crewkit run: {exc}", "log": str(log_path)}
                )
            on_start(child.pid)
            out, timed_out = self._wait(child, job, stop)
            err.write(out)
        return self._outcome(child.returncode, out, log_path, timed_out)

    def _wait(self, child: subprocess.Popen[bytes], job: Job, stop: threading.Event) -> tuple[bytes, bool]:
        deadline = time.monotonic() + job.timeout_seconds if job.timeout_seconds else None
        chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: chunks.append(child.stdout.read() if child.stdout else b""))
        reader.start()
        timed_out = False
        while child.poll() is None:
            if stop.is_set() or (deadline is not None and time.monotonic() > deadline):
                timed_out = not stop.is_set()
                child.send_signal(signal.SIGINT)
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()
                break
            time.sleep(0.1)
        child.wait()
        reader.join()
        return b"".join(chunks), timed_out

    @staticmethod
    def _outcome(code: int, out: bytes, log_path: Path, timed_out: bool) -> Launched:
        line: dict[str, Any] = {}
        for text in reversed(out.decode("utf-8", "replace").splitlines()):
            if text.strip():
                try:
                    parsed = json.loads(text)
                except json.JSONDecodeError:
                    break
                line = parsed if isinstance(parsed, dict) else {}
                break
        detail: dict[str, Any] = {"log": str(log_path)}
        if line.get("output_file"):
            detail["output_file"] = line["output_file"]
        if line.get("approval_id"):
            detail["approval_id"] = line["approval_id"]
        status = str(line.get("status") or EXIT_STATUS.get(code, "killed" if code < 0 else "failed"))
        if timed_out:
            status = "timeout"
        if code not in (0,) and not line:
            detail["error"] = _last_line(log_path)
        return Launched(line.get("run_id"), status, code, detail)


def _last_line(path: Path) -> str:
    try:
        lines = [x for x in path.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""


# --- the engine ------------------------------------------------------------------------------------


@dataclass
class Fire:
    job: str
    fire_time: float
    detail: dict[str, Any]


class Scheduler:
    """Claims and launches the fires of `settings.schedules`' enabled jobs.

    `tick(job)` is what the clock calls (APScheduler at each fire time; `run_pending` for all
    jobs at start): it reads the job's fires due since its last recorded one, applies the
    misfire policy and the overlap limit, claims them in `schedule_fires` and launches the
    claimed ones on threads. `now`/`clock` are injectable for tests."""

    def __init__(
        self,
        settings: Any,
        store: Any = None,
        launcher: Launcher | None = None,
        *,
        clock: Callable[[], float] = time.time,
        progress: Callable[[str], None] | None = None,
        resume_from: dict[str, float] | None = None,
    ) -> None:
        from crewkit.runtime.store import StateStore

        self.settings = settings
        self.store = store or StateStore.open(settings.home)
        self.launcher = launcher or SubprocessLauncher(settings)
        self.clock = clock
        self.progress = progress or (lambda message: None)
        cfg = settings.schedules
        self.jobs = {j.name: j for j in cfg.jobs if j.enabled}
        self.triggers = {name: trigger(j.cron, cfg.zone(j)) for name, j in self.jobs.items()}
        self.started = clock()
        self.owner = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.resume_from = dict(resume_from or {})
        self.stop_event = threading.Event()
        self._locks = {name: threading.Lock() for name in self.jobs}
        self._threads: list[threading.Thread] = []
        self._mine: dict[tuple[str, float], int | None] = {}  # my in-flight fires -> child pid
        self._adopted: dict[tuple[str, float], int] = {}  # orphans I watch -> their child pid
        self._mine_lock = threading.Lock()
        self._named: set[tuple[str, float]] = set()  # running fires whose run id is recorded
        self.ended: list[tuple[str, float, str]] = []  # (job, fire time, final status) in this process

    # -- what is due ------------------------------------------------------------------------------

    def _last_fire(self, name: str) -> float | None:
        rows = self.store.read("SELECT MAX(fire_time) FROM schedule_fires WHERE job = ?", (name,))
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    def _after(self, name: str) -> float:
        """Fires after this instant are not recorded yet: the job's last recorded fire, else just
        before the fire the job store was waiting for, else just before this scheduler started."""
        last = self._last_fire(name)
        if last is not None:
            return last
        if name in self.resume_from:
            return min(self.resume_from[name], self.started) - 0.001
        return self.started - 0.001

    def _late(self, name: str, after: float, cut: float) -> tuple[list[float], int | str]:
        """The first and last fires in (after, cut) and how many (capped): found without listing
        them all, so a job that missed a year of per-minute fires costs a few trigger steps."""
        trig = self.triggers[name]
        first = fire_times(trig, _dt(after), _dt(cut - 0.001), limit=1)
        if not first:
            return [], 0
        window, last = 60.0, []
        while not last:  # the newest late fire: look back from `cut` over a doubling window
            lo = max(after, cut - window)
            last = fire_times(trig, _dt(lo), _dt(cut - 0.001))[-1:]
            window *= 2
        counted = fire_times(trig, _dt(after), _dt(cut - 0.001), limit=LATE_COUNT_CAP)
        count: int | str = len(counted) if len(counted) < LATE_COUNT_CAP else f"{LATE_COUNT_CAP} or more"
        return sorted({first[0].timestamp(), last[0].timestamp()}), count

    def due(self, name: str, now: float) -> list[float]:
        """Nominal fire times of `name` not recorded yet, up to `now` (late ones included)."""
        after = self._after(name)
        return [t.timestamp() for t in fire_times(self.triggers[name], _dt(after), _dt(now))]

    def tick(self, name: str, now: float | None = None) -> list[threading.Thread]:
        """Claim what is due for job `name` and launch it; returns the launch threads."""
        job = self.jobs.get(name)
        if job is None or self.stop_event.is_set():
            return []
        with self._locks[name]:
            now = self.clock() if now is None else now
            self._reap(job, now)
            after = self._after(name)
            grace = job.misfire.grace_seconds
            cut = now - grace  # a fire before this is too late to run, whatever the policy
            late, count = self._late(name, after, cut) if after < cut else ([], 0)
            if late:
                reason = f"later than grace_seconds ({grace:g} s)"
                self._record_missed(job, late, "misfired", reason, count)
            start = max(after, cut - 0.001)
            ok = [t.timestamp() for t in fire_times(self.triggers[name], _dt(start), _dt(now))]
            if job.misfire.policy == "skip":
                missed = [t for t in ok if t < self.started]
                ok = [t for t in ok if t >= self.started]
                if missed:
                    self._record_missed(
                        job, missed, "skipped", "missed while the scheduler was stopped (misfire policy skip)"
                    )
            if not ok:
                return []
            if job.misfire.policy == "run_all" and len(ok) > 1:
                return [self._queue_all(job, ok)]
            coalesced = ok[:-1]
            fire = self._claim(job, ok[-1], now, coalesced=len(coalesced))
            return [self._start(job, fire)] if fire is not None else []

    def run_pending(self, now: float | None = None) -> list[threading.Thread]:
        """One pass over every job (at start, and for `schedule run --once`)."""
        threads: list[threading.Thread] = []
        for name in self.jobs:
            threads += self.tick(name, now)
        return threads

    # -- claiming --------------------------------------------------------------------------------

    def _in_flight(self, conn: Any, job: str) -> list[tuple[float, str | None]]:
        rows = conn.execute(
            "SELECT fire_time, run_id FROM schedule_fires WHERE job = ? AND status IN (?, ?)",
            (job, *SLOT_HOLDERS),
        ).fetchall()
        return [(float(r[0]), r[1]) for r in rows]

    def _insert(self, conn: Any, job: str, t: float, status: str, detail: dict[str, Any], now: float) -> bool:
        row = conn.execute(
            "INSERT INTO schedule_fires (job, fire_time, run_id, status, detail, created, updated) "
            "VALUES (?, ?, NULL, ?, ?, ?, ?) ON CONFLICT (job, fire_time) DO NOTHING RETURNING job",
            (job, t, status, json.dumps(detail), now, now),
        ).fetchone()
        return row is not None

    def _claim(
        self, job: Job, t: float, now: float, *, coalesced: int = 0, status: str = "launching"
    ) -> Fire | None:
        """Claim fire `t` of `job` (launching, or skipped when the job's runs fill its slots)."""
        detail: dict[str, Any] = {"owner": self.owner, "flow": job.flow, "late_s": round(now - t, 3)}
        if coalesced:
            detail["coalesced"] = coalesced
        with self.store.write() as conn:
            running = self._in_flight(conn, job.name) if status == "launching" else []
            if len(running) >= job.max_concurrent:
                skip = {
                    "reason": f"{len(running)} run(s) of this job still running (max_concurrent {job.max_concurrent})",
                    "running": [r for _, r in running if r] or [_iso(f) for f, _ in running],
                }
                if not self._insert(conn, job.name, t, "skipped", skip, now):
                    return None
                self._audit(conn, "schedule.skipped", job, t, skip)
                self.progress(f"{job.name}: fire {_iso(t)} skipped: {skip['reason']}")
                self.ended.append((job.name, t, "skipped"))
                return None
            if not self._insert(conn, job.name, t, status, detail, now):
                return None  # claimed already (a restart, another scheduler): never launched twice
            self._audit(conn, "schedule.fired", job, t, {k: v for k, v in detail.items() if k != "owner"})
        with self._mine_lock:
            self._mine[(job.name, t)] = None
        return Fire(job.name, t, detail)

    def _record_missed(
        self, job: Job, times: list[float], status: str, reason: str, count: int | str | None = None
    ) -> None:
        """One row (the newest missed fire) and one audit record for a series of missed fires
        (`times`: the series, or its first and last; `count`: how many when not all are listed)."""
        t = times[-1]
        missed = len(times) if count is None else count
        detail = {"reason": reason, "missed": missed, "first": _iso(times[0]), "last": _iso(t)}
        action = "schedule.misfired" if status == "misfired" else "schedule.skipped"
        with self.store.write() as conn:
            if self._insert(conn, job.name, t, status, detail, self.clock()):
                self._audit(conn, action, job, t, detail)
                self.progress(f"{job.name}: {missed} fire(s) up to {_iso(t)} {status}: {reason}")

    def _audit(
        self, conn: Any, action: str, job: Job, t: float, detail: dict[str, Any], run_id: str | None = None
    ) -> None:
        entry = audit.Entry(
            action=action,
            subject=f"schedule:{job.name}",
            detail={"job": job.name, "fire_time": _iso(t), "flow": job.flow, **detail},
            actor=ACTOR,
            run_id=run_id,
        )
        audit.append(conn, entry)

    def _update(self, job: str, t: float, **values: Any) -> None:
        values["updated"] = self.clock()
        if "detail" in values:
            values["detail"] = json.dumps(values["detail"])
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.store.write() as conn:
            conn.execute(
                f"UPDATE schedule_fires SET {sets} WHERE job = ? AND fire_time = ?",
                (*values.values(), job, t),
            )

    # -- launching -------------------------------------------------------------------------------

    def _start(self, job: Job, fire: Fire) -> threading.Thread:
        thread = threading.Thread(
            target=self._launch, args=(job, fire), name=f"schedule-{job.name}", daemon=True
        )
        self._threads.append(thread)
        thread.start()
        return thread

    def _queue_all(self, job: Job, times: list[float]) -> threading.Thread:
        """`run_all`: every missed fire claimed now (queued), then run one after another."""
        fires = [f for t in times if (f := self._claim(job, t, self.clock(), status="queued")) is not None]

        def run_in_order() -> None:
            for fire in fires:
                while not self.stop_event.is_set():
                    with self.store.write() as conn:
                        if len(self._in_flight(conn, job.name)) < job.max_concurrent:
                            conn.execute(
                                "UPDATE schedule_fires SET status = 'launching', updated = ? WHERE job = ? AND fire_time = ?",
                                (self.clock(), job.name, fire.fire_time),
                            )
                            break
                    self.stop_event.wait(1.0)
                if self.stop_event.is_set():
                    return
                self._launch(job, fire)

        thread = threading.Thread(target=run_in_order, name=f"schedule-{job.name}-all", daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def _launch(self, job: Job, fire: Fire) -> None:
        key = (job.name, fire.fire_time)
        if job.jitter and self.stop_event.wait(random.uniform(0, job.jitter)):
            self._release(key)  # stopped before it started: the next scheduler launches it
            return
        detail = dict(fire.detail)

        def on_start(pid: int) -> None:
            with self._mine_lock:
                self._mine[key] = pid
            detail.update(child_pid=pid, host=HOST, started=_iso(self.clock()))
            self._update(job.name, fire.fire_time, status="running", detail=detail)
            self.progress(
                f"{job.name}: fire {_iso(fire.fire_time)} started `crewkit run {job.flow}` (pid {pid})"
            )

        try:
            result = self.launcher(job, fire.fire_time, on_start, self.stop_event)
        except Exception as exc:  # a launcher bug must not leave the fire in flight forever
            log.exception("schedule %s: launching fire %s failed", job.name, _iso(fire.fire_time))
            result = Launched(None, "error", None, {"error": f"{type(exc).__name__}: {exc}"})
        self._finish(job, fire.fire_time, result, detail)

    def _finish(self, job: Job, t: float, result: Launched, detail: dict[str, Any]) -> None:
        if result.run_id is None and isinstance(detail.get("child_pid"), int):  # died before its --json line
            found = self._run_of(detail["child_pid"], str(detail.get("host")), t)
            if found is not None:
                result = Launched(found[0], result.status, result.exit_code, result.detail)
        detail = {**detail, **result.detail, "exit_code": result.exit_code, "ended": _iso(self.clock())}
        detail.pop("owner", None)
        with self.store.write() as conn:
            conn.execute(
                "UPDATE schedule_fires SET status = ?, run_id = ?, detail = ?, updated = ? WHERE job = ? AND fire_time = ?",
                (result.status, result.run_id, json.dumps(detail), self.clock(), job.name, t),
            )
            summary = {"status": result.status, "exit_code": result.exit_code}
            if "error" in result.detail:
                summary["error"] = result.detail["error"]
            self._audit(conn, "schedule.finished", job, t, summary, run_id=result.run_id)
        with self._mine_lock:
            self._mine.pop((job.name, t), None)
        self.ended.append((job.name, t, result.status))
        run = f"run {result.run_id}" if result.run_id else "no run"
        self.progress(f"{job.name}: fire {_iso(t)} ended: {result.status} ({run}, exit {result.exit_code})")

    # -- fires of schedulers that died -----------------------------------------------------------

    def _dead(self, owner: str, updated: float, now: float) -> bool:
        host, _, rest = owner.partition(":")
        pid = rest.split(":", 1)[0]
        if now - updated > STALE_S:
            return True
        return host == HOST and pid.isdigit() and not _alive(int(pid))

    def _reap(self, job: Job, now: float) -> None:
        """Take over the in-flight fires of `job` whose scheduler died."""
        rows = self.store.read(
            "SELECT fire_time, status, detail, updated FROM schedule_fires WHERE job = ? AND status IN (?, ?, ?)",
            (job.name, *IN_FLIGHT),
        )
        for fire_time, status, detail_text, updated in rows:
            t, detail = float(fire_time), json.loads(detail_text or "{}")
            owner = str(detail.get("owner", ""))
            if owner == self.owner or not self._dead(owner, float(updated), now):
                continue
            with self.store.write() as conn:  # take it over unless another scheduler just did
                taken = conn.execute(
                    "UPDATE schedule_fires SET detail = ?, updated = ? WHERE job = ? AND fire_time = ? "
                    "AND updated = ? RETURNING job",
                    (
                        json.dumps({**detail, "owner": self.owner, "adopted_from": owner}),
                        now,
                        job.name,
                        t,
                        updated,
                    ),
                ).fetchone()
            if taken is None:
                continue
            detail = {**detail, "owner": self.owner, "adopted_from": owner}
            if status == "running":
                self._adopt(job, t, detail)
            elif now - t > job.misfire.grace_seconds:
                self._finish(
                    job,
                    t,
                    Launched(
                        None,
                        "misfired",
                        None,
                        {
                            "reason": "its scheduler stopped before launching it, and the grace time has passed"
                        },
                    ),
                    detail,
                )
            else:
                self.progress(
                    f"{job.name}: fire {_iso(t)} was claimed by a scheduler that stopped ({owner}); launching it"
                )
                self._update(job.name, t, status="launching", detail=detail)
                with self._mine_lock:
                    self._mine[(job.name, t)] = None
                self._start(job, Fire(job.name, t, detail))

    def _adopt(self, job: Job, t: float, detail: dict[str, Any]) -> None:
        pid, host = detail.get("child_pid"), detail.get("host")
        if isinstance(pid, int) and host == HOST and _alive(pid):
            self.progress(f"{job.name}: fire {_iso(t)}'s run (pid {pid}) outlived its scheduler; watching it")
            with self._mine_lock:
                self._adopted[(job.name, t)] = pid
            return
        self._finish(job, t, self._orphan_outcome(detail, t), detail)

    def _run_of(self, pid: int, host: str, t: float) -> tuple[str, str] | None:
        """The run a fire's child created (runs records its process and host), with its status."""
        rows = self.store.read(
            "SELECT run_id, status FROM runs WHERE pid = ? AND host = ? AND created >= ? ORDER BY created",
            (pid, host, t - 1),
        )
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    def _orphan_outcome(self, detail: dict[str, Any], t: float) -> Launched:
        """How an orphaned run ended, from the runs table (the child's pid and host)."""
        pid, host = detail.get("child_pid"), detail.get("host")
        found = self._run_of(pid, str(host), t) if isinstance(pid, int) else None
        if found is None:
            return Launched(
                None, "abandoned", None, {"reason": "its scheduler stopped; no run of it was found"}
            )
        run_id, status = found
        final = status if status != "running" else "abandoned"
        return Launched(run_id, final, None, {"reason": "finished after its scheduler stopped"})

    def heartbeat(self) -> None:
        """Refresh my in-flight rows; finish adopted orphans whose process has ended."""
        with self._mine_lock:
            mine = list(self._mine) + list(self._adopted)
            adopted = dict(self._adopted)
        now = self.clock()
        with self.store.write() as conn:
            for job, t in mine:
                conn.execute(
                    "UPDATE schedule_fires SET updated = ? WHERE job = ? AND fire_time = ?", (now, job, t)
                )
        self._name_runs()
        for (job, t), pid in adopted.items():
            if not _alive(pid):
                rows = self.store.read(
                    "SELECT detail FROM schedule_fires WHERE job = ? AND fire_time = ?", (job, t)
                )
                detail = json.loads(rows[0][0] or "{}") if rows else {}
                with self._mine_lock:
                    self._adopted.pop((job, t), None)
                self._finish(self.jobs[job], t, self._orphan_outcome(detail, t), detail)

    def _name_runs(self) -> None:
        """Give my running fires their run id as soon as the child has created its run."""
        with self._mine_lock:
            started = [(k, pid) for k, pid in self._mine.items() if pid is not None and k not in self._named]
        for (job, t), pid in started:
            found = self._run_of(pid, HOST, t)
            if found is not None:
                with self.store.write() as conn:
                    conn.execute(
                        "UPDATE schedule_fires SET run_id = ? WHERE job = ? AND fire_time = ? AND run_id IS NULL",
                        (found[0], job, t),
                    )
                self._named.add((job, t))

    # -- lifetime --------------------------------------------------------------------------------

    def busy(self) -> bool:
        with self._mine_lock:
            adopted = bool(self._adopted)
        return adopted or any(t.is_alive() for t in self._threads)

    def _release(self, key: tuple[str, float]) -> None:
        """A claimed fire this scheduler will not launch: stale at once (updated = 0), so the
        next scheduler to start launches it (within its grace time)."""
        with self._mine_lock:
            self._mine.pop(key, None)
        with self.store.write() as conn:
            conn.execute(
                "UPDATE schedule_fires SET updated = 0 WHERE job = ? AND fire_time = ? AND status IN ('queued', 'launching')",
                key,
            )

    def wait(self, timeout: float | None = None) -> None:
        """Until every fire launched by this scheduler (and every adopted run) has ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.busy() and (deadline is None or time.monotonic() < deadline):
            for thread in list(self._threads):
                thread.join(0.2)
            if self._adopted:
                self.heartbeat()
                time.sleep(0.5)

    def stop(self, *, interrupt: bool) -> None:
        """Fire nothing more; `interrupt`: SIGINT the runs in flight (they record `interrupted`).
        Claimed fires that never started are released at once for the next scheduler."""
        if interrupt:
            self.stop_event.set()
        self.wait(60.0 if interrupt else None)
        self.stop_event.set()
        with self._mine_lock:
            left = [k for k, pid in self._mine.items() if pid is None]
        for key in left:
            self._release(key)


# --- the clock: APScheduler with a persistent job store ---------------------------------------------

_ACTIVE: Scheduler | None = None


def _tick(name: str) -> None:
    """What APScheduler calls at a job's fire time (a module-level name: the job store keeps it)."""
    if _ACTIVE is not None:
        _ACTIVE.tick(name)


def job_store_url(settings: Any) -> str:
    """SQLAlchemy URL of APScheduler's job store: the state database when it is PostgreSQL,
    else `CREWKIT_HOME/schedules.db`."""
    from crewkit.runtime.database import database_url

    url = database_url()  # what the state store uses (operations.database.url_env)
    if url is None:
        return f"sqlite:///{settings.home / 'schedules.db'}"
    scheme, rest = url.split("://", 1)
    return f"postgresql+psycopg://{rest}" if "+" not in scheme else url


def clock(settings: Any) -> Any:
    """A paused BackgroundScheduler on the persistent job store (started: its jobs are loaded)."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    from crewkit.errors import ConfigError
    from crewkit.redact import redact

    url = job_store_url(settings)
    try:
        if url.startswith("sqlite"):
            settings.home.mkdir(parents=True, exist_ok=True)
        aps = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(url=url, tablename=JOB_TABLE)},
            executors={"default": ThreadPoolExecutor(4)},
            timezone=UTC,
        )
        aps.start(paused=True)
    except Exception as exc:  # the database: unreachable, unwritable
        where = (
            settings.operations.database.url_env
            if url.startswith("postgresql")
            else url.removeprefix("sqlite:///")
        )
        raise ConfigError(
            f"schedule job store {redact(where)}: cannot open it ({type(exc).__name__}: {redact(str(exc)).splitlines()[0]}); "
            "check the database URL, or that CREWKIT_HOME is writable"
        ) from None
    return aps


def run(
    settings: Any,
    *,
    once: bool = False,
    seconds: float | None = None,
    progress: Callable[[str], None] | None = None,
    launcher: Launcher | None = None,
    stop: threading.Event | None = None,
) -> Scheduler:
    """Run the enabled jobs: `once` (one pass: due and missed fires, wait, return), for
    `seconds`, or until `stop` is set / KeyboardInterrupt (then the runs in flight are
    interrupted). Returns the scheduler (its `ended` fires)."""
    global _ACTIVE
    from apscheduler.triggers.cron import CronTrigger  # noqa: F401 - fail here, not in a thread

    aps = clock(settings)
    persisted = {job.id: job.next_run_time for job in aps.get_jobs()}
    cfg = settings.schedules
    enabled = [j for j in cfg.jobs if j.enabled]
    resume = {j.name: persisted[j.name].timestamp() for j in enabled if persisted.get(j.name) is not None}
    sched = Scheduler(settings, launcher=launcher, progress=progress, resume_from=resume)
    for job_id in persisted:
        if job_id not in sched.jobs:
            aps.remove_job(job_id)  # removed from (or disabled in) config/schedules.yaml
    for job in enabled:
        aps.add_job(
            _tick, sched.triggers[job.name], args=[job.name], id=job.name, name=job.name,
            replace_existing=True, coalesce=True, misfire_grace_time=None, max_instances=1,
        )  # fmt: skip
    _ACTIVE = sched
    stop = stop or threading.Event()
    interrupted = False
    try:
        sched.run_pending()
        if once:
            sched.wait()
            return sched
        aps.resume()
        deadline = None if seconds is None else time.monotonic() + seconds
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            stop.wait(min(HEARTBEAT_S, max(0.05, (deadline or float("inf")) - time.monotonic())))
            sched.heartbeat()
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        aps.shutdown(wait=False)
        sched.stop(interrupt=interrupted or stop.is_set())
        _ACTIVE = None
    return sched


# --- what `schedule list` shows -----------------------------------------------------------------


def listing(settings: Any, now: float | None = None, count: int = 1) -> list[dict[str, Any]]:
    """Every job with its next `count` fire times (in its zone), its last fire and runs in flight."""
    from crewkit.runtime.store import StateStore
    from crewkit.scheduling.config import zone

    now = time.time() if now is None else now
    cfg = settings.schedules
    store = StateStore.open(settings.home) if cfg.jobs else None
    out = []
    for job in cfg.jobs:
        tz = cfg.zone(job)
        nexts = next_fires(trigger(job.cron, tz), _dt(now), count) if job.enabled else []
        last = store.read(
            "SELECT fire_time, status, run_id FROM schedule_fires WHERE job = ? ORDER BY fire_time DESC LIMIT 1",
            (job.name,),
        ) if store else []  # fmt: skip
        running = store.read(
            "SELECT COUNT(*) FROM schedule_fires WHERE job = ? AND status IN (?, ?)", (job.name, *SLOT_HOLDERS)
        )[0][0] if store else 0  # fmt: skip
        out.append(
            {
                "job": job.name,
                "enabled": job.enabled,
                "cron": job.cron,
                "timezone": tz,
                "flow": job.flow,
                "next_fires": [t.astimezone(zone(tz)).isoformat(timespec="seconds") for t in nexts],
                "last_fire": (
                    {"fire_time": _iso(last[0][0], zone(tz)), "status": last[0][1], "run_id": last[0][2]}
                    if last
                    else None
                ),
                "running": int(running),
                "max_concurrent": job.max_concurrent,
                "misfire": job.misfire.policy,
                "jitter": job.jitter,
            }
        )
    return out


def history(settings: Any, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest recorded fires (of `job`, else of every job)."""
    from crewkit.runtime.store import StateStore

    store = StateStore.open(settings.home)
    where, args = ("WHERE job = ? ", (job,)) if job else ("", ())
    rows = store.read(
        f"SELECT job, fire_time, status, run_id, detail FROM schedule_fires {where}ORDER BY fire_time DESC LIMIT ?",
        (*args, limit),
    )
    out = []
    for name, t, status, run_id, detail in rows:
        d = json.loads(detail or "{}")
        d.pop("owner", None)
        out.append(
            {"job": name, "fire_time": _iso(float(t)), "status": status, "run_id": run_id, "detail": d}
        )
    return out
