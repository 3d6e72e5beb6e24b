"""Runs queued to Celery workers over a Redis broker: `crewkit run --queue`, `crewkit worker`.

The queue carries only run ids. The run itself (flow, inputs, profile, A/B arms, status) lives
in state.db (or PostgreSQL), so a worker on any machine sharing that store can start it, and
a run whose worker died is resumed from its checkpoints by another worker:

- `enqueue` checks that the broker answers BEFORE anything is written, then creates the run
  (status "queued", `runs.queue_task` = the Celery task id, audited `queue.enqueued`) and
  publishes task `crewkit.run_flow(run_id)` inside the same transaction: a publish that fails
  leaves no run row behind.
- The task (`execute`) looks at the run's row, not at the message: "queued" -> start it;
  "running" in a process that is gone (same host: its pid; another host: no heartbeat for 4
  beats) or "interrupted" -> take it over and resume it (audited `queue.retried`; the call
  journal answers the calls already paid for, so nothing is paid twice), at most
  `queue.max_retries` times; "running" in a live process -> check again later (a visibility
  timeout shorter than a run redelivers its message); any other status -> it ended, nothing to do.
- Messages are acknowledged late (`acks_late`, `reject_on_worker_lost`): a worker killed mid-run
  leaves its message unacknowledged, and Redis hands it to another worker after
  `queue.visibility_timeout` seconds (a child process killed under a live worker: at once).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from crewkit.errors import CrewkitError, UsageError
from crewkit.settings import env

if TYPE_CHECKING:
    from celery import Celery

    from crewkit.models.registry import RoleMap
    from crewkit.runtime.record import RunOutcome
    from crewkit.runtime.store import RunRow, StateStore
    from crewkit.settings import Settings

log = logging.getLogger("crewkit.queue")

TASK = "crewkit.run_flow"
SCHEMES = ("redis", "rediss", "redis+socket")
CONNECT_TIMEOUT_S = 3.0
STALE_BEATS = 4  # missed heartbeats after which another host's worker takes a run over
MISSING_RETRIES = 30  # a message can arrive before its run's row is committed: look again, 1 s apart
QUEUED = "queued"

# what `execute` did with a message
STARTED, RESUMED, ENDED, WAIT, MISSING = "started", "resumed", "ended", "wait", "missing"

Engine = Callable[[], "tuple[Settings, RoleMap]"]


# -- the broker ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Broker:
    url: str
    variable: str  # the environment variable that names it
    from_env: bool  # False: the variable is unset and `queue.default_broker_url` is used

    @property
    def shown(self) -> str:
        """The URL with its password replaced, for messages and logs."""
        return redacted(self.url)

    @property
    def source(self) -> str:
        return self.variable if self.from_env else f"{self.variable} unset; queue.default_broker_url"


def redacted(url: str) -> str:
    """`url` with the password (and a user name that is a token) replaced by `***`."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if password is None and not parts.username:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    user = parts.username or ""
    # redis://TOKEN@host: a bare user name is the password in Redis URLs
    auth = "***" if password is None else f"{user}:***"
    return urlunsplit((parts.scheme, f"{auth}@{host}{port}", parts.path, parts.query, parts.fragment))


def broker(settings: Settings) -> Broker:
    """The broker URL: the variable `queue.broker_url_env` names, else `queue.default_broker_url`."""
    cfg = settings.operations.queue
    value = env(cfg.broker_url_env)
    target = Broker(value or cfg.default_broker_url, cfg.broker_url_env, value is not None)
    scheme = urlsplit(target.url).scheme.lower() if "://" in target.url else ""
    if scheme not in SCHEMES:
        raise UsageError(
            f"{target.source}: broker URL {target.shown!r} is not a Redis URL; "
            f"use redis://[:password@]host:6379/0 (or rediss://, redis+socket://)"
        )
    return target


def check_broker(settings: Settings, timeout: float = CONNECT_TIMEOUT_S) -> Broker:
    """The broker, after it answered a PING; else one line naming its variable (exit 2)."""
    from kombu import Connection
    from kombu.exceptions import KombuError

    target = broker(settings)
    options = {"socket_connect_timeout": timeout, "socket_timeout": timeout, "max_retries": 0}
    conn = Connection(target.url, connect_timeout=timeout, transport_options=options)
    try:
        errors = (KombuError, *conn.connection_errors, *conn.channel_errors, OSError, ValueError)
        try:
            conn.default_channel.client.ping()
        except errors as exc:
            reason = str(exc).split("\n")[0] or type(exc).__name__
            raise UsageError(
                f"Redis unreachable at {target.shown} ({target.source}): {reason}; start Redis there "
                f"or set {target.variable} to the broker's URL (nothing was queued)"
            ) from None
    finally:
        conn.release()
    return target


def make_app(settings: Settings, engine: Engine | None = None) -> Celery:
    """The Celery app on the configured broker; with `engine`, task `crewkit.run_flow` runs runs on it."""
    from celery import Celery

    cfg = settings.operations.queue
    app = Celery("crewkit", broker=broker(settings).url, set_as_current=False)
    app.conf.update(
        task_default_queue=cfg.queue,
        task_acks_late=True,  # acknowledged when the run ended: a worker that dies leaves it queued
        task_reject_on_worker_lost=True,  # a killed child process: the message goes back at once
        task_acks_on_failure_or_timeout=True,
        task_ignore_result=True,  # the outcome is the run's row and record, not a result backend
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,  # a worker holds only the runs it works on
        worker_concurrency=cfg.concurrency,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=CONNECT_TIMEOUT_S,
        broker_transport_options={
            "visibility_timeout": cfg.visibility_timeout,
            # look for runs of dead workers every quarter of the timeout (kombu: every 100 s)
            "unacked_restore_interval": max(1.0, min(60.0, cfg.visibility_timeout / 4)),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": CONNECT_TIMEOUT_S,
        },
    )
    if engine is not None:
        _register(app, settings, engine)
    return app


# -- queueing a run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Enqueued:
    run_id: str
    task_id: str
    queue: str
    broker: str  # redacted


def enqueue(
    settings: Settings,
    role_map: RoleMap,
    flow: str,
    inputs: dict[str, Any],
    *,
    trigger_payload: dict[str, Any] | None = None,
) -> Enqueued:
    """Queue a run of `flow`: checked as `crewkit run` checks it, then a "queued" row and a message.

    Nothing is written when the broker does not answer, the flow or its inputs are wrong, or the
    message cannot be published. Models are not loaded here: the worker checks them.
    """
    from crewkit import assembly
    from crewkit.evaluation import experiments as ab
    from crewkit.governance import audit
    from crewkit.governance.approvals import requester_of
    from crewkit.runtime import runner
    from crewkit.runtime.context import tenant_of
    from crewkit.runtime.preflight import fingerprint
    from crewkit.runtime.record import new_run_id
    from crewkit.runtime.store import StateStore

    target = check_broker(settings)
    runner.check_flow_name(settings, flow)
    runner.check_writable(settings)
    flow_cls = runner.load_flow_class(settings, flow)
    inputs = runner.validate_inputs(flow_cls, inputs)
    for crew_name in getattr(flow_cls, "CREWS", None) or assembly.discover(settings):
        assembly.load_spec(settings, crew_name, role_map)
    run_id, task_id = new_run_id(), str(uuid.uuid4())
    arms = ab.assign(settings, inputs, run_id)
    stored = {**inputs, runner.TRIGGER_KEY: trigger_payload} if trigger_payload is not None else dict(inputs)
    requester = requester_of(inputs)
    cfg = settings.operations.queue
    store = StateStore.open(settings.home)
    app = make_app(settings)
    try:
        with store.write() as conn:
            store.create_run(
                run_id, flow, stored, fingerprint(settings, flow), requester,
                profile=settings.profile_name, tenant=tenant_of(inputs),
            )  # fmt: skip
            ab.store_assignments(store, run_id, arms)
            conn.execute(
                "UPDATE runs SET status = ?, pid = NULL, pid_start = NULL, host = NULL, queue_task = ? "
                "WHERE run_id = ?",
                (QUEUED, task_id, run_id),
            )
            audit.append(
                conn,
                audit.Entry(
                    "queue.enqueued",
                    f"run {run_id}",
                    {"flow": flow, "queue": cfg.queue, "task": task_id, "broker": target.shown},
                    actor=requester or "crewkit",
                    run_id=run_id,
                ),
            )
            _publish(app, target, run_id, task_id, cfg.queue)  # fails: the transaction rolls back
    finally:
        app.close()
    log.info("queued run %s as task %s on %s", run_id, task_id, target.shown)
    return Enqueued(run_id, task_id, cfg.queue, target.shown)


def requeue(settings: Settings, run_id: str) -> Enqueued:
    """Queue an existing run again (`crewkit resume RUN_ID --queue`): a worker continues it from its
    checkpoints. For what `crewkit resume` would continue (a decided pause, a failure, an
    interruption, a rollback, a run whose process died) and for a run still `queued` whose message
    was lost with Redis's data. Refused like `crewkit resume` otherwise (exit 2; 75 while its
    approval is pending), and when the broker does not answer; nothing is changed then."""
    from crewkit.governance import audit
    from crewkit.runtime.crew_run import CREW_PREFIX
    from crewkit.runtime.record import RESUMABLE
    from crewkit.runtime.runner import check_continuable
    from crewkit.runtime.store import StateStore

    target = check_broker(settings)
    store = StateStore.open(settings.home)
    row = store.require_run(run_id)
    if row.flow.startswith(CREW_PREFIX):
        raise UsageError(
            f"run {run_id} is a crew run; workers run flows: continue it with `crewkit resume {run_id}`"
        )
    check_continuable(store, row)  # done, rejected: exit 2; a pending approval: exit 75
    if row.status == "running" and not store.process_gone(row):
        where = f" on host {row.host}" if row.host else ""
        raise UsageError(f"run {run_id} is running in process {row.pid}{where}; wait for it or stop it")
    if row.status not in {QUEUED, "running", *RESUMABLE}:
        raise UsageError(f"run {run_id} is {row.status}; nothing to queue")
    cfg = settings.operations.queue
    task_id = str(uuid.uuid4())
    app = make_app(settings)
    try:
        with store.write() as conn:
            changed = conn.execute(
                "UPDATE runs SET status = ?, pid = NULL, pid_start = NULL, host = NULL, queue_task = ?, "
                "updated = ? WHERE run_id = ? AND status = ? AND updated = ?",
                (QUEUED, task_id, time.time(), run_id, row.status, row.updated),
            )
            if changed.rowcount != 1:
                raise UsageError(
                    f"run {run_id} changed while it was being queued; look at `crewkit runs show {run_id}`"
                )
            audit.append(
                conn,
                audit.Entry(
                    "queue.enqueued",
                    f"run {run_id}",
                    {
                        "resume": True,
                        "was": row.status,
                        "queue": cfg.queue,
                        "task": task_id,
                        "broker": target.shown,
                    },
                    actor=env("CREWKIT_USER") or "crewkit",
                    run_id=run_id,
                ),
            )
            _publish(app, target, run_id, task_id, cfg.queue)
    finally:
        app.close()
    log.info("queued run %s again as task %s on %s", run_id, task_id, target.shown)
    return Enqueued(run_id, task_id, cfg.queue, target.shown)


def _publish(app: Celery, target: Broker, run_id: str, task_id: str, queue: str) -> None:
    from kombu.exceptions import KombuError, OperationalError

    try:
        app.send_task(
            TASK,
            args=[run_id],
            task_id=task_id,
            queue=queue,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1},
        )
    except (OperationalError, KombuError, OSError) as exc:
        raise UsageError(
            f"Redis unreachable at {target.shown} ({target.source}) while queueing: {exc}; "
            f"nothing was queued (check Redis and {target.variable})"
        ) from None


# -- waiting for a queued run -------------------------------------------------------------------


def wait(settings: Settings, run_id: str, poll: float = 0.5, timeout: float | None = None) -> RunOutcome:
    """Until the run is no longer queued or running (its worker ended it, or paused it for approval)."""
    from crewkit.runtime.record import RunOutcome
    from crewkit.runtime.store import StateStore

    store = StateStore.open(settings.home)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        row = store.require_run(run_id)
        if row.status not in (QUEUED, "running", "rolling_back"):
            break
        if deadline is not None and time.monotonic() > deadline:
            raise UsageError(f"run {run_id} is still {row.status} after {timeout:.0f} s")
        time.sleep(poll)
    path = Path(row.record_path) if row.record_path else settings.output_dir / f"{run_id}.json"
    record: dict[str, Any] = {"run_id": run_id, "flow": row.flow, "status": row.status, "error": row.error}
    with contextlib.suppress(OSError, ValueError):  # no record: it failed before its first step
        record = json.loads(path.read_text(encoding="utf-8"))
    return RunOutcome(run_id, row.status, path, record, approval_id=row.approval_id)


# -- the worker's side --------------------------------------------------------------------------


def decide(store: StateStore, row: RunRow | None, settings: Settings, now: float | None = None) -> str:
    """What a delivered message means for its run: start, take over, wait, ended, or missing."""
    from crewkit.runtime.record import INTERRUPTED
    from crewkit.runtime.store import pid_alive

    if row is None:
        return MISSING
    if row.status == QUEUED:
        return STARTED
    if row.status == INTERRUPTED:
        return RESUMED
    if row.status != "running":
        return ENDED  # done, failed, paused, rejected, rolled back...: a person or `crewkit resume` decides
    if row.pid is None:
        return RESUMED  # released: a stale run of another host (see _release_stale)
    here = socket.gethostname()
    if row.host in (None, here):
        start = store.read("SELECT pid_start FROM runs WHERE run_id = ?", (row.run_id,))
        return WAIT if pid_alive(row.pid, start[0][0] if start else None) else RESUMED
    stale = settings.operations.queue.heartbeat_seconds * STALE_BEATS
    return RESUMED if (time.time() if now is None else now) - row.updated > stale else WAIT


def execute(settings: Settings, role_map: RoleMap, run_id: str) -> str:
    """Handle one delivery of `crewkit.run_flow(run_id)`; returns what it did (see `decide`)."""
    from crewkit.runtime import runner
    from crewkit.runtime.store import StateStore
    from crewkit.runtime.worker import error_text

    store = StateStore.open(settings.home)
    row = store.get_run(run_id)
    action = decide(store, row, settings)
    if action in (MISSING, WAIT, ENDED):
        if action == ENDED:
            log.info("run %s is %s; nothing to do", run_id, row.status if row else "?")
        return action
    assert row is not None
    progress = _progress(run_id)
    cfg = settings.operations.queue
    try:
        if action == STARTED:
            log.info("starting run %s (%s)", run_id, row.flow)
            with _heartbeat(store, run_id, cfg.heartbeat_seconds):
                outcome = runner.start_queued(settings, role_map, run_id, progress)
        else:
            taken = _retries(store, run_id)
            if taken >= cfg.max_retries:
                _fail(
                    store, run_id, row.status,
                    f"its worker was lost {taken + 1} times (queue.max_retries: {cfg.max_retries}); "
                    f"find the cause, then `crewkit resume {run_id}`",
                )  # fmt: skip
                return ENDED
            if not _take_over(store, row, settings, taken + 1):
                return WAIT
            log.info("resuming run %s from its last checkpoint (worker lost, retry %d)", run_id, taken + 1)
            with _heartbeat(store, run_id, cfg.heartbeat_seconds):
                outcome = runner.resume_run(settings, role_map, run_id, progress)
    except Exception as exc:  # noqa: BLE001 - a run this worker holds must not stay "running"
        now = store.get_run(run_id)
        held = now is not None and now.status == "running" and now.pid == os.getpid()
        unstarted = now is not None and (
            now.status == QUEUED or (now.status == "running" and decide(store, now, settings) == RESUMED)
        )
        if now is not None and (held or unstarted):
            _fail(store, run_id, now.status, error_text(exc))
            if isinstance(exc, CrewkitError):
                log.error("run %s failed: %s", run_id, exc)
            else:
                log.exception("run %s failed with an internal error", run_id)
            return ENDED
        if not isinstance(exc, CrewkitError):
            raise
        log.info("run %s: %s", run_id, exc)  # another worker claimed it first
        return WAIT if now is not None and now.status in (QUEUED, "running") else ENDED
    log.info("run %s ended: %s (exit %d)", run_id, outcome.status, outcome.exit_code)
    return action


def _progress(run_id: str) -> Callable[[str], None]:
    return lambda message: log.info("run %s: %s", run_id, message)


def _retries(store: StateStore, run_id: str) -> int:
    rows = store.read("SELECT COUNT(*) FROM audit WHERE action = ? AND run_id = ?", ("queue.retried", run_id))
    return int(rows[0][0]) if rows else 0


def _take_over(store: StateStore, row: RunRow, settings: Settings, attempt: int) -> bool:
    """Audit the retry and free a stale run of another host for this process's claim.

    False when the run changed since it was read (another worker took it first)."""
    from crewkit.governance import audit

    here = socket.gethostname()
    with store.write() as conn:
        current = conn.execute(
            "SELECT status, pid, host, updated FROM runs WHERE run_id = ?", (row.run_id,)
        ).fetchall()
        if not current or tuple(current[0]) != (row.status, row.pid, row.host, row.updated):
            return False
        if row.status == "running" and row.host not in (None, here):
            conn.execute(
                "UPDATE runs SET pid = NULL, pid_start = NULL, host = NULL WHERE run_id = ?", (row.run_id,)
            )
        audit.append(
            conn,
            audit.Entry(
                "queue.retried",
                f"run {row.run_id}",
                {
                    "attempt": attempt,
                    "was": row.status,
                    "lost_pid": row.pid,
                    "lost_host": row.host,
                    "host": here,
                },
                actor="worker",
                run_id=row.run_id,
            ),
        )
    return True


def _fail(store: StateStore, run_id: str, status: str, error: str) -> None:
    """Mark a run this worker cannot run as failed (so `--wait` and `runs list` see an end)."""
    with store.write() as conn:
        conn.execute(
            "UPDATE runs SET pid = NULL, pid_start = NULL, host = NULL WHERE run_id = ? AND status = ?",
            (run_id, status),
        )
        store.set_status(run_id, "failed", error=error)


@contextmanager
def _heartbeat(store: StateStore, run_id: str, every: float) -> Iterator[None]:
    """While the block runs, mark the run alive every `every` seconds (`runs.updated`) while this
    process owns it, so workers on other hosts can tell a live run from one whose host died."""
    stop = threading.Event()
    pid = os.getpid()

    def beat() -> None:
        while not stop.wait(every):
            try:
                with store.write() as conn:
                    conn.execute(
                        "UPDATE runs SET updated = ? WHERE run_id = ? AND status = 'running' AND pid = ?",
                        (time.time(), run_id, pid),
                    )
            except Exception:  # noqa: BLE001 - a missed beat is retried; the run goes on
                log.warning("run %s: heartbeat not written", run_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"crewkit-heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _register(app: Celery, settings: Settings, engine: Engine) -> None:
    """Task `crewkit.run_flow` on `app`; the engine is built once per worker process, on first use."""
    built: list[tuple[Settings, RoleMap]] = []
    cfg = settings.operations.queue

    @app.task(name=TASK, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
    def run_flow(self: Any, run_id: str) -> str:
        if not built:
            built.append(engine())
        done = execute(*built[0], run_id)
        if done == WAIT:  # its owner still works on it: look again (take it over if the owner dies)
            raise self.retry(countdown=cfg.heartbeat_seconds * 2, max_retries=None)
        if done == MISSING:
            if self.request.retries < MISSING_RETRIES:
                raise self.retry(countdown=1.0, max_retries=None)
            log.error(
                "run %s is not in the state store; dropped (a store the worker does not share?)", run_id
            )
        return done
