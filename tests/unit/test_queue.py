"""Queued runs (crewkit.scheduling.queue): enqueue checks, what a worker does with a delivery.

A real `redis-server` (tests/redis_server.py) is the broker; the worker's task body
(`queue.execute`) runs in process on the scripted role map, so these tests need no Celery
worker (tests/integration/test_queue_worker.py runs real ones and kills one mid-run).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

from crewkit.runtime.store import StateStore
from crewkit.scheduling import queue
from tests.redis_server import free_port, redis_server_fixture  # noqa: F401 - the fixture `redis_server`
from tests.sample_project import add_flow, run_cli

SECRET = "s3cret-Passw0rd-xyz"


def store_of(settings) -> StateStore:
    return StateStore.open(settings.home)


def audit_actions(store: StateStore, run_id: str | None = None) -> list[str]:
    if run_id is None:
        return [r[0] for r in store.read("SELECT action FROM audit ORDER BY seq")]
    return [r[0] for r in store.read("SELECT action FROM audit WHERE run_id = ? ORDER BY seq", (run_id,))]


def engine():
    from crewkit import cli

    return cli._engine()


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def queued_run(capsys, project, task: str = "say hi") -> str:
    add_flow(project, "echo")
    code, out, err = run_cli(
        capsys, "run", "echo", "--queue", "--json", "--inputs", json.dumps({"task": task})
    )
    assert code == 0, err
    line = json.loads(out.strip().splitlines()[-1])
    assert line["status"] == "queued"
    return line["run_id"]


# -- the broker ---------------------------------------------------------------------------------


def test_redacted_url_hides_the_password_and_keeps_the_rest():
    assert queue.redacted(f"redis://:{SECRET}@db.example:6380/2") == "redis://:***@db.example:6380/2"
    assert queue.redacted(f"rediss://alice:{SECRET}@h/0") == "rediss://alice:***@h/0"
    assert queue.redacted(f"redis://{SECRET}@h:1/0") == "redis://***@h:1/0"
    assert queue.redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_redis_unreachable_is_one_line_naming_the_variable_and_leaves_no_run(
    scripted, project, settings, capsys, monkeypatch
):
    add_flow(project, "echo")
    monkeypatch.setenv("CREWKIT_BROKER_URL", f"redis://:{SECRET}@127.0.0.1:{free_port()}/0")
    code, out, err = run_cli(capsys, "run", "echo", "--queue", "--inputs", '{"task": "x"}')
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Redis unreachable at redis://:***@127.0.0.1:")
    assert "CREWKIT_BROKER_URL" in lines[0]
    assert SECRET not in err
    store = store_of(settings)
    assert store.list_runs() == []
    assert audit_actions(store) == []


def test_unset_variable_names_the_default_url_and_the_variable(scripted, project, capsys, monkeypatch):
    add_flow(project, "echo")
    monkeypatch.delenv("CREWKIT_BROKER_URL", raising=False)
    cfg = project / "config" / "operations.yaml"
    port = free_port()
    cfg.write_text(
        cfg.read_text().replace(
            "default_broker_url: redis://127.0.0.1:6379/0", f"default_broker_url: redis://127.0.0.1:{port}/0"
        )
    )
    code, _, err = run_cli(capsys, "run", "echo", "--queue", "--inputs", '{"task": "x"}')
    assert code == 2
    assert f"127.0.0.1:{port}" in err and "CREWKIT_BROKER_URL unset; queue.default_broker_url" in err


def test_a_broker_url_that_is_not_redis_is_refused_naming_the_variable(
    scripted, project, capsys, monkeypatch
):
    add_flow(project, "echo")
    monkeypatch.setenv("CREWKIT_BROKER_URL", "amqp://guest:guest@127.0.0.1//")
    code, _, err = run_cli(capsys, "run", "echo", "--queue", "--inputs", '{"task": "x"}')
    assert code == 2
    assert err.startswith("error: CREWKIT_BROKER_URL: broker URL") and "not a Redis URL" in err
    assert len(err.strip().splitlines()) == 1


def test_wait_without_queue_is_a_usage_error(scripted, project, capsys):
    code, _, err = run_cli(capsys, "run", "--wait")
    assert code == 2 and "--wait goes with --queue" in err


def test_a_publish_that_fails_after_the_check_leaves_no_run_and_no_audit(
    scripted, project, settings, capsys, monkeypatch
):
    add_flow(project, "echo")
    monkeypatch.setenv("CREWKIT_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    monkeypatch.setattr(queue, "check_broker", lambda s, timeout=0: queue.broker(s))  # as if it answered
    code, _, err = run_cli(capsys, "run", "echo", "--queue", "--inputs", '{"task": "x"}')
    assert code == 2
    assert "while queueing" in err and "nothing was queued" in err
    store = store_of(settings)
    assert store.list_runs() == []
    assert audit_actions(store) == []


def test_bad_inputs_are_refused_before_anything_is_queued(scripted, project, settings, capsys, redis_server):
    add_flow(project, "echo")
    code, _, err = run_cli(capsys, "run", "echo", "--queue", "--inputs", '{"tusk": "x"}')
    assert code == 2 and "tusk" in err
    assert store_of(settings).list_runs() == []
    assert _queue_length(redis_server.port) == 0


# -- enqueue and the worker's task --------------------------------------------------------------


def _queue_length(port: int, name: str = "crewkit") -> int:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        return int(client.llen(name))
    finally:
        client.close()


def test_queue_creates_a_queued_run_and_one_message_then_the_task_runs_it(
    scripted, project, settings, capsys, redis_server
):
    run_id = queued_run(capsys, project)
    store = store_of(settings)
    row = store.require_run(run_id)
    assert row.status == "queued" and row.pid is None
    task = store.read("SELECT queue_task FROM runs WHERE run_id = ?", (run_id,))[0][0]
    assert task
    assert audit_actions(store, run_id) == ["run.started", "queue.enqueued"]
    import redis

    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    (raw,) = client.lrange("crewkit", 0, -1)
    client.close()
    message = json.loads(raw)
    assert message["headers"]["id"] == task and message["headers"]["task"] == "crewkit.run_flow"
    assert run_id in message["headers"]["argsrepr"]

    scripted.add("hello from the worker")
    settings_, role_map = engine()
    assert queue.execute(settings_, role_map, run_id) == queue.STARTED
    row = store.require_run(run_id)
    assert row.status == "done" and row.pid == os.getpid()
    record = json.loads((settings.output_dir / f"{run_id}.json").read_text())
    assert record["result"] == "hello from the worker"
    # the same message delivered again (its worker died before acknowledging it): nothing runs twice
    assert queue.execute(settings_, role_map, run_id) == queue.ENDED
    assert len(scripted.calls) == 1
    outcome = queue.wait(settings, run_id)
    assert outcome.exit_code == 0 and outcome.record["result"] == "hello from the worker"


def test_a_run_whose_worker_died_is_taken_over_and_audited(scripted, project, settings, capsys, redis_server):
    run_id = queued_run(capsys, project)
    store = store_of(settings)
    with store.write() as conn:  # a worker claimed it, then was SIGKILLed
        conn.execute("UPDATE runs SET status = 'running', pid = ?, host = ? WHERE run_id = ?",
                     (dead_pid(), socket.gethostname(), run_id))  # fmt: skip
    scripted.add("second try")
    assert queue.execute(*engine(), run_id) == queue.RESUMED
    assert store.require_run(run_id).status == "done"
    assert audit_actions(store, run_id).count("queue.retried") == 1


def test_a_run_lost_more_than_max_retries_times_fails_with_a_hint(
    scripted, project, settings, capsys, redis_server
):
    cfg = project / "config" / "operations.yaml"
    cfg.write_text(cfg.read_text().replace("max_retries: 3", "max_retries: 1"))
    run_id = queued_run(capsys, project)
    store = store_of(settings)
    for attempt in (1, 2):
        with store.write() as conn:
            conn.execute("UPDATE runs SET status = 'running', pid = ?, host = ? WHERE run_id = ?",
                         (dead_pid(), socket.gethostname(), run_id))  # fmt: skip
        if attempt == 1:
            scripted.add(RuntimeError("the worker's model crashed"))  # the run fails; status set below
            queue.execute(*engine(), run_id)
    assert queue.execute(*engine(), run_id) == queue.ENDED
    row = store.require_run(run_id)
    assert row.status == "failed"
    assert "lost 2 times (queue.max_retries: 1)" in row.error and f"crewkit resume {run_id}" in row.error


def test_a_run_another_live_process_owns_is_left_to_it(scripted, project, settings, capsys, redis_server):
    run_id = queued_run(capsys, project)
    store = store_of(settings)
    with store.write() as conn:
        conn.execute("UPDATE runs SET status = 'running', pid = ?, host = ? WHERE run_id = ?",
                     (os.getppid(), socket.gethostname(), run_id))  # fmt: skip
    assert queue.execute(*engine(), run_id) == queue.WAIT
    assert store.require_run(run_id).status == "running"
    assert "queue.retried" not in audit_actions(store, run_id)


def test_a_flow_changed_on_the_worker_fails_the_queued_run_with_one_line(
    scripted, project, settings, capsys, redis_server
):
    run_id = queued_run(capsys, project)
    flow = project / "flows" / "echo.py"
    flow.write_text(flow.read_text() + "\n# changed after queueing\n")
    assert queue.execute(*engine(), run_id) == queue.ENDED
    row = store_of(settings).require_run(run_id)
    assert row.status == "failed" and "differs from the code run" in row.error
    assert queue.wait(settings, run_id).exit_code == 1


def test_decide_reads_the_row_not_the_message(settings):
    from crewkit.runtime.store import RunRow

    store = store_of(settings)
    here, now = socket.gethostname(), time.time()

    def row(status: str, pid: int | None = None, host: str | None = None, updated: float = now) -> RunRow:
        return RunRow("r", "echo", status, {}, "f", None, pid, host, now, updated, None, None, None)

    beat = settings.operations.queue.heartbeat_seconds
    assert queue.decide(store, None, settings) == queue.MISSING
    assert queue.decide(store, row("queued"), settings) == queue.STARTED
    assert queue.decide(store, row("interrupted"), settings) == queue.RESUMED
    for ended in ("done", "failed", "paused", "rejected", "rolled_back", "budget_exceeded"):
        assert queue.decide(store, row(ended), settings) == queue.ENDED
    assert queue.decide(store, row("running", os.getpid(), here), settings) == queue.WAIT
    assert queue.decide(store, row("running", dead_pid(), here), settings) == queue.RESUMED
    assert queue.decide(store, row("running", 1, "other-host", now - beat), settings) == queue.WAIT
    assert queue.decide(store, row("running", 1, "other-host", now - 5 * beat), settings) == queue.RESUMED


def test_heartbeat_marks_the_run_alive_only_while_this_process_owns_it(
    scripted, project, settings, capsys, redis_server
):
    run_id = queued_run(capsys, project)
    store = store_of(settings)
    with store.write() as conn:
        conn.execute(
            "UPDATE runs SET status = 'running', pid = ?, updated = 0 WHERE run_id = ?", (os.getpid(), run_id)
        )
    with queue._heartbeat(store, run_id, 0.02):
        deadline = time.monotonic() + 5
        while store.require_run(run_id).updated == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert store.require_run(run_id).updated > 0
    with store.write() as conn:
        conn.execute("UPDATE runs SET pid = ?, updated = 0 WHERE run_id = ?", (os.getppid(), run_id))
    with queue._heartbeat(store, run_id, 0.02):
        time.sleep(0.2)
    assert store.require_run(run_id).updated == 0


def test_worker_refuses_to_start_when_redis_is_unreachable(scripted, project, capsys, monkeypatch):
    monkeypatch.setenv("CREWKIT_BROKER_URL", f"redis://:{SECRET}@127.0.0.1:{free_port()}/0")
    code, out, err = run_cli(capsys, "worker")
    assert code == 2 and out == ""
    assert err.startswith("error: Redis unreachable at redis://:***@") and SECRET not in err


def test_worker_refuses_a_pool_that_would_share_the_embedded_memory_store(
    scripted, project, capsys, redis_server
):
    code, out, err = run_cli(capsys, "worker", "--concurrency", "2")
    assert code == 2 and out == ""
    assert "--concurrency 2: long-term memory is on the embedded store" in err
    assert len(err.strip().splitlines()) == 1


def test_resume_queue_hands_a_failed_run_to_a_worker_which_continues_it(
    scripted, project, settings, capsys, redis_server
):
    run_id = queued_run(capsys, project)
    scripted.add(RuntimeError("model server restarted"))
    settings_, role_map = engine()
    queue.execute(settings_, role_map, run_id)
    store = store_of(settings)
    assert store.require_run(run_id).status == "failed"
    code, out, err = run_cli(capsys, "resume", run_id, "--queue", "--json")
    assert code == 0, err
    line = json.loads(out.strip().splitlines()[-1])
    assert line["run_id"] == run_id and line["status"] == "queued"
    assert store.read("SELECT queue_task FROM runs WHERE run_id = ?", (run_id,))[0][0] == line["queue_task"]
    enqueued = store.read(
        "SELECT detail FROM audit WHERE action = 'queue.enqueued' AND run_id = ?", (run_id,)
    )
    assert [json.loads(d)["was"] for (d,) in enqueued[1:]] == ["failed"]
    assert _queue_length(redis_server.port) == 2  # the first message (acknowledged by a real worker) and this
    scripted.add("second time lucky")
    assert queue.execute(settings_, role_map, run_id) == queue.STARTED
    assert store.require_run(run_id).status == "done"


def test_resume_queue_republishes_a_queued_run_whose_message_was_lost(
    scripted, project, settings, capsys, redis_server
):
    import redis

    run_id = queued_run(capsys, project)
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    client.flushall()  # Redis lost its data
    code, out, err = run_cli(capsys, "resume", run_id, "--queue")
    assert code == 0, err
    assert out.strip() == run_id
    assert client.llen("crewkit") == 1
    client.close()


def test_resume_queue_refuses_a_finished_run_and_changes_nothing(
    scripted, project, settings, capsys, redis_server
):
    run_id = queued_run(capsys, project)
    scripted.add("done")
    queue.execute(*engine(), run_id)
    store = store_of(settings)
    before = audit_actions(store, run_id)
    code, _, err = run_cli(capsys, "resume", run_id, "--queue")
    assert code == 2 and f"run {run_id} is done; nothing to resume" in err
    assert audit_actions(store, run_id) == before and store.require_run(run_id).status == "done"
    code, _, err = run_cli(capsys, "resume", run_id, "--wait")
    assert code == 2 and "--wait goes with --queue" in err


def test_a_run_of_another_host_that_stopped_beating_is_taken_over_here(
    scripted, project, settings, capsys, redis_server
):
    run_id = queued_run(capsys, project)
    store = store_of(settings)
    beat = settings.operations.queue.heartbeat_seconds
    with store.write() as conn:  # host-a claimed it, then vanished: no heartbeat for 5 beats
        conn.execute("UPDATE runs SET status = 'running', pid = 4242, host = 'host-a', updated = ? WHERE run_id = ?",
                     (time.time() - 5 * beat, run_id))  # fmt: skip
    scripted.add("finished on host b")
    assert queue.execute(*engine(), run_id) == queue.RESUMED
    row = store.require_run(run_id)
    assert row.status == "done" and row.host == socket.gethostname()
    (detail,) = store.read(
        "SELECT detail FROM audit WHERE action = 'queue.retried' AND run_id = ?", (run_id,)
    )
    assert json.loads(detail[0])["lost_host"] == "host-a"


def test_an_internal_error_after_the_claim_fails_the_run_instead_of_leaving_it_running(
    scripted, project, settings, capsys, redis_server, monkeypatch
):
    from crewkit.runtime import runner

    run_id = queued_run(capsys, project)

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug in the engine")

    monkeypatch.setattr(runner, "_run", broken)
    assert queue.execute(*engine(), run_id) == queue.ENDED
    row = store_of(settings).require_run(run_id)
    assert row.status == "failed" and row.error == "RuntimeError: a bug in the engine"
    assert queue.wait(settings, run_id).exit_code == 1


def test_runs_list_filters_queued_runs(scripted, project, settings, capsys, redis_server):
    run_id = queued_run(capsys, project)
    code, out, err = run_cli(capsys, "runs", "list", "--status", "queued", "--format", "json")
    assert code == 0, err
    assert [r["run_id"] for r in json.loads(out)] == [run_id]
