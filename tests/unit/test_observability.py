"""The CrewAI event listener's rows, the Prometheus endpoint and the OpenTelemetry export."""

from __future__ import annotations

import http.server
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from crewkit import assembly
from crewkit.models.registry import RoleMap
from crewkit.observability import export, listener
from crewkit.observability.metrics import MetricsSubscriber, summarize
from crewkit.runtime import hooks
from crewkit.runtime.store import StateStore
from crewkit.settings import load_settings
from tests.fakes import ScriptedLLM
from tests.unit.test_crews import TASKS, make_crew


@pytest.fixture
def store(crewkit_home: Path) -> StateStore:
    return StateStore.open(crewkit_home)


def _rows(store: StateStore) -> list[tuple[Any, ...]]:
    return store.read("SELECT kind, agent, role, task, outcome, detail, error FROM metric_events ORDER BY id")


# -- the CrewAI event listener -------------------------------------------------------------------


def test_a_crews_tasks_guardrails_and_retries_are_recorded_with_agent_role_model_and_task(
    project, settings, store
):
    make_crew(project, "guarded", tasks=TASKS + "  guardrails: [no_secrets]\n")
    fake = ScriptedLLM(["my key is sk-proj-abcdefghijklmnopqrstuv0123", "- fact one\n- fact two"])
    listener.install()
    sub = MetricsSubscriber(store, "r1", flow="default", profile="startup")
    with hooks.scope(hooks.RunHooks([sub], transaction=store.write)):
        assembly.kickoff_crew(
            settings, RoleMap(settings, overrides={"reasoning": fake}), "guarded", {"topic": "Owl"}
        )
    listener.flush()
    sub.flush()
    rows = _rows(store)
    kinds = [r[0] for r in rows]
    assert kinds.count("model_call") == 2
    assert sorted(r[4] for r in rows if r[0] == "guardrail") == ["failed", "passed"]
    assert kinds.count("retry") == 1 and kinds.count("task_completed") == 1
    for r in rows:
        assert r[1] == "Owl Researcher" and r[3] == "research_task", r
        assert r[2] == "reasoning", r
    failed = next(r for r in rows if r[0] == "guardrail" and r[4] == "failed")
    assert failed[5] == "guardrail_no_secrets" and "sk-proj-" not in (failed[6] or "")
    [done] = store.read("SELECT seconds, model, run_id FROM metric_events WHERE kind = 'task_completed'")
    assert done[0] is not None and done[0] >= 0 and done[1] and done[2] == "r1"
    total = summarize(store, 0, 4e9, by=("task",)).rows[0]
    assert total.group == {"task": "research_task"}
    assert (total.calls, total.tasks_completed, total.guardrails_failed, total.guardrails_passed) == (
        2,
        1,
        1,
        1,
    )
    assert total.retries == 1


def test_events_outside_a_run_are_not_recorded(project, settings, store):
    make_crew(project, "plain")
    listener.install()
    fake = ScriptedLLM(["- fact"])
    assembly.kickoff_crew(
        settings, RoleMap(settings, overrides={"reasoning": fake}), "plain", {"topic": "Owl"}
    )
    listener.flush()
    assert _rows(store) == []


def test_a_failing_tool_and_a_failed_task_are_recorded(store):
    from crewai.events.event_bus import crewai_event_bus
    from crewai.events.types.task_events import TaskFailedEvent, TaskStartedEvent
    from crewai.events.types.tool_usage_events import ToolUsageErrorEvent

    listener.install()
    sub = MetricsSubscriber(store, "r9")

    class Agent:
        role = "Analyst"
        llm = None

    class Task:
        id = "t-1"
        name = "analyse"
        description = "Analyse the data"
        agent = Agent()
        fingerprint = None

    with hooks.scope(hooks.RunHooks([sub], with_ledger=False, transaction=store.write)):
        crewai_event_bus.emit(None, TaskStartedEvent(context=None, task=Task()))
        crewai_event_bus.emit(
            None,
            ToolUsageErrorEvent(
                tool_name="fetch", tool_args={}, error="connection refused by api.example.com", agent_role="Analyst",
                task_name="analyse",
            ),
        )  # fmt: skip
        crewai_event_bus.emit(
            None, TaskFailedEvent(error="boom: token sk-proj-abcdefghijklmnopqrstuv0123", task=Task())
        )
    listener.flush()
    sub.flush()
    failed, tool = sorted(_rows(store))  # handlers run in CrewAI's thread pool: any order
    assert tool[:6] == ("tool_error", "Analyst", None, "analyse", "error", "fetch")
    assert failed[:5] == ("task_failed", "Analyst", None, "analyse", "error")
    assert "boom" in failed[6] and "sk-proj-abcdefghij" not in failed[6]  # redacted
    s = summarize(store, 0, 4e9, by=()).total
    assert (s.tool_errors, s.tasks_failed) == (1, 1)


# -- Prometheus endpoint -------------------------------------------------------------------------


def _fill(store: StateStore, n: int = 3) -> None:
    import time

    sub = MetricsSubscriber(store, "r1", profile="startup")
    path = hooks.RunHooks([sub], with_ledger=False, transaction=store.write)
    for _ in range(n):
        call = hooks.ModelCall("reasoning", "m1", "Planner", "plan", "hi")
        path.after_model(hooks.ModelResult(call, "ok", 10, 5, 0.001, time.time(), 0.2))
    sub.flush()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_prometheus_endpoint_serves_the_figures_at_each_scrape(project, store):
    port = _free_port()
    (project / "config" / "operations.yaml").write_text(
        yaml.safe_dump({"metrics": {"prometheus": {"enabled": True, "port": port}}})
    )
    settings = load_settings(project)
    try:
        assert export.start_endpoint(settings, store) is not None
        _fill(store, 3)
        url = f"http://127.0.0.1:{port}/metrics"
        body = urllib.request.urlopen(url, timeout=5).read().decode()
        assert 'crewkit_model_calls_total{model="m1",role="reasoning"} 3.0' in body
        assert 'crewkit_model_input_tokens_total{model="m1",role="reasoning"} 30.0' in body
        assert 'crewkit_model_call_latency_seconds{model="m1",quantile="0.99",role="reasoning"} 0.2' in body
        _fill(store, 2)
        body = urllib.request.urlopen(url, timeout=5).read().decode()
        assert 'crewkit_model_calls_total{model="m1",role="reasoning"} 5.0' in body
        # a second start in the process reuses it; the port taken by another is a warning, not an error
        assert export.start_endpoint(settings, store) is not None
    finally:
        export.stop_servers()


def test_the_endpoint_is_off_by_default_and_a_taken_port_is_a_warning(project, store, caplog):
    assert export.start_endpoint(load_settings(project), store) is None
    with socketserver_on_a_port() as port:
        (project / "config" / "operations.yaml").write_text(
            yaml.safe_dump({"metrics": {"prometheus": {"enabled": True, "port": port}}})
        )
        assert export.start_endpoint(load_settings(project), store) is None
    assert any("metrics endpoint not started" in r.getMessage() for r in caplog.records)


class socketserver_on_a_port:  # noqa: N801 - used as a context manager
    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        return self.sock.getsockname()[1]

    def __exit__(self, *exc: Any) -> None:
        self.sock.close()


# -- OpenTelemetry -------------------------------------------------------------------------------


class Collector(http.server.BaseHTTPRequestHandler):
    posts: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Collector.posts.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    Collector.posts = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_otel_export_sends_the_metrics_to_the_collector_even_with_otel_sdk_disabled(
    project, store, collector, monkeypatch
):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")  # what crewkit sets for CrewAI's own telemetry
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector)
    (project / "config" / "operations.yaml").write_text(
        yaml.safe_dump({"metrics": {"otel": {"enabled": True, "interval_seconds": 60}}})
    )
    settings = load_settings(project)
    _fill(store, 2)
    try:
        provider = export.start_otel(settings, store)
        assert provider is not None
        assert provider.force_flush(timeout_millis=10_000)
    finally:
        export.stop_otel()
    assert Collector.posts, "nothing reached the collector"
    path, body = Collector.posts[0]
    assert path == "/v1/metrics"
    assert b"crewkit.model_calls" in body and b"reasoning" in body


def test_otel_export_is_off_without_the_setting_or_the_endpoint_variable(project, store, monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert export.start_otel(load_settings(project), store) is None  # off by default
    (project / "config" / "operations.yaml").write_text(
        yaml.safe_dump({"metrics": {"otel": {"enabled": True}}})
    )
    assert export.start_otel(load_settings(project), store) is None  # enabled, but no endpoint: no network


def test_the_listener_is_registered_again_after_crewais_scoped_handlers_dropped_it(project, settings, store):
    from crewai.events.event_bus import crewai_event_bus

    before = listener.install()
    with crewai_event_bus.scoped_handlers():  # e.g. a test or a tool of CrewAI's own
        assert not before.attached()
        inside = listener.install()  # events inside the scope are still recorded
        assert inside is not before and inside.attached()
    assert not inside.attached() and before.attached()  # the scope restored the one before it
    assert listener.install() is before  # not a second one: no event is recorded twice
    with crewai_event_bus.scoped_handlers():
        pass
    assert listener.install() is before


def test_metrics_serve_on_a_taken_port_is_one_line_exit_2(project, capsys):
    from crewkit import cli

    with socketserver_on_a_port() as port:
        code = cli.main(["metrics", "--serve", "--port", str(port)])
    _out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith(f"error: cannot serve metrics on 127.0.0.1:{port}") and err.count("\n") == 1
