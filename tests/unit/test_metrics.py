# ruff: noqa: F811 - `steps` is a fixture imported from test_runs
"""Run metrics: the hook-path subscriber's rows and the figures `crewkit metrics` computes from them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crewkit.errors import UsageError
from crewkit.observability import metrics
from crewkit.observability.metrics import MetricsSubscriber, percentile, summarize
from crewkit.runtime import hooks
from crewkit.runtime.store import StateStore
from tests.unit.test_runs import json_line, run_cli, start, steps  # noqa: F401 - fixture

T0 = 1_795_000_000.0


@pytest.fixture
def store(crewkit_home: Path) -> StateStore:
    return StateStore.open(crewkit_home)


def _result(
    role: str = "reasoning",
    model: str = "m1",
    *,
    seconds: float = 0.1,
    error: str | None = None,
    attempt: int = 0,
    agent: str = "Planner",
    started: float = T0,
    tokens: tuple[int, int] = (10, 5),
    cost: float = 0.01,
    **flags: Any,
) -> hooks.ModelResult:
    call = hooks.ModelCall(role, model, agent, "plan", "hello", attempt=attempt)
    if error:  # RoleLLM reports a failed attempt with no tokens and no cost
        tokens, cost = (0, 0), 0.0
    return hooks.ModelResult(
        call, None if error else "ok", *tokens, cost, started, seconds, error=error, **flags
    )


def _rows(store: StateStore) -> list[tuple[Any, ...]]:
    return store.read(
        "SELECT kind, run_id, flow, profile, role, model, agent, outcome, call_id, attempt, "
        "input_tokens, output_tokens, cost_usd FROM metric_events ORDER BY id"
    )


def test_every_model_attempt_is_a_row_with_its_outcome_and_fallbacks_share_a_call_id(store):
    sub = MetricsSubscriber(store, "r1", flow="default", profile="startup")
    path = hooks.RunHooks([sub], with_ledger=False, transaction=store.write)
    path.after_model(_result(error="timeout"))  # the primary fails ...
    path.after_model(_result(model="m2", attempt=1))  # ... its fallback answers
    path.after_model(_result(tokens=(0, 0), cost=0.0, replayed=True))  # a journal replay
    cached = _result(tokens=(0, 0), cost=0.0, replayed=True)
    cached.replay_source = "cache"  # type: ignore[attr-defined]  # C's field: a response-cache hit
    path.after_model(cached)
    path.after_model(_result(error="over budget", not_run="refused"))
    sub.flush()
    rows = _rows(store)
    assert [r[7] for r in rows] == ["error", "ok", "replayed", "cached", "refused"]
    assert rows[0][:7] == ("model_call", "r1", "default", "startup", "reasoning", "m1", "Planner")
    assert rows[0][8] == rows[1][8] and [rows[0][9], rows[1][9]] == [0, 1]  # one logical call, 2 attempts
    assert len({r[8] for r in rows}) == 4
    assert rows[1][10:] == (10, 5, 0.01)
    assert rows[3][10:] == (0, 0, 0.0)  # a cache hit costs nothing


def test_a_skipped_primary_and_the_attempt_after_it_are_one_logical_call(store):
    sub = MetricsSubscriber(store, "r1")
    path = hooks.RunHooks([sub], with_ledger=False, transaction=store.write)
    path.after_model(_result(error="cooling down for 20 s", not_run="cooling down"))
    path.after_model(_result(model="m2"))  # RoleLLM gives the next candidate attempt 0 as well
    path.after_model(_result())  # a new call
    sub.flush()
    rows = _rows(store)
    assert [r[7] for r in rows] == ["skipped", "ok", "ok"]
    assert rows[0][8] == rows[1][8] != rows[2][8]


def test_rows_are_buffered_and_written_in_batches_or_after_a_while(store, monkeypatch):
    monkeypatch.setattr(metrics, "FLUSH_ROWS", 3)
    sub = MetricsSubscriber(store, "r1")
    path = hooks.RunHooks([sub], with_ledger=False, transaction=store.write)
    path.after_model(_result())
    path.after_model(_result())
    assert _rows(store) == []  # two rows wait in the buffer
    path.after_model(_result())
    assert len(_rows(store)) == 3  # the third filled it: written in that call's transaction
    path.after_model(_result())
    monkeypatch.setattr(metrics, "FLUSH_SECONDS", 0.0)
    path.after_model(_result())
    assert len(_rows(store)) == 5  # the buffer is written after FLUSH_SECONDS, however few rows


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, q) for q in (0.5, 0.95, 0.99, 1.0)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


def _fill(
    store: StateStore, n: int = 100, *, errors: int = 0, role: str = "reasoning", model: str = "m1"
) -> None:
    sub = MetricsSubscriber(store, "r1", profile="startup")
    path = hooks.RunHooks([sub], with_ledger=False, transaction=store.write)
    for i in range(n):
        path.after_model(
            _result(
                role, model, seconds=(i + 1) / 1000.0, started=T0 + i, error="boom" if i < errors else None
            )
        )
    sub.flush()


def test_summary_per_role_and_model_has_latency_percentiles_error_rate_throughput_tokens_and_cost(store):
    _fill(store, 100, errors=2)
    _fill(store, 10, role="code", model="m2")
    summary = summarize(store, T0, T0 + 600)  # 10 minutes
    by_key = {(s.group["role"], s.group["model"]): s for s in summary.rows}
    s = by_key[("reasoning", "m1")]
    assert (s.calls, s.errors, s.error_rate) == (100, 2, 0.02)
    assert (s.p50_ms, s.p95_ms, s.p99_ms) == (50.0, 95.0, 99.0)
    assert s.availability == 0.98  # the two failed calls had no fallback
    assert s.throughput_per_min == pytest.approx(98 / 10)
    assert (s.input_tokens, s.output_tokens) == (980, 490)  # failed calls pay nothing here
    assert s.cost_usd == pytest.approx(0.98)
    assert by_key[("code", "m2")].calls == 10
    assert summary.total.calls == 110 and summary.total.p99_ms == 99.0
    assert [r.group for r in summarize(store, T0, T0 + 600, by=("model",)).rows] == [
        {"model": "m1"},
        {"model": "m2"},
    ]


def test_availability_counts_a_call_a_fallback_answered_and_leaves_refusals_out(store):
    sub = MetricsSubscriber(store, "r1")
    path = hooks.RunHooks([sub], with_ledger=False, transaction=store.write)
    path.after_model(_result(error="timeout"))
    path.after_model(_result(model="m2", attempt=1))  # answered by the fallback: available
    path.after_model(_result(error="timeout"))
    path.after_model(_result(model="m2", attempt=1, error="timeout"))  # no answer: unavailable
    path.after_model(_result(error="over budget", not_run="refused"))  # policy, not unavailability
    cached = _result(tokens=(0, 0), replayed=True)
    cached.replay_source = "cache"  # type: ignore[attr-defined]
    path.after_model(cached)
    sub.flush()
    total = summarize(store, T0 - 1, T0 + 60, by=()).total
    assert (total.logical_calls, total.failed_calls, total.availability) == (3, 1, pytest.approx(2 / 3))
    assert (total.calls, total.errors, total.retries, total.cache_hits, total.refused) == (4, 3, 2, 1, 1)
    assert total.error_rate == 0.75


def test_rows_outside_the_window_or_another_profile_are_left_out(store):
    _fill(store, 10)
    assert summarize(store, T0 + 5, T0 + 100).total.calls == 5
    assert summarize(store, T0, T0 + 100, profile="enterprise").total.calls == 0


def test_an_unknown_group_key_is_a_usage_error(store):
    with pytest.raises(UsageError, match="--by 'tenant' is not a metric dimension; use one of: role"):
        summarize(store, 0, 1, by=("tenant",))


def test_durations_and_since(store):
    assert [metrics.parse_duration(t) for t in ("90s", "15m", "1h", "1d", "2w")] == [
        90,
        900,
        3600,
        86400,
        1209600,
    ]
    for bad in ("1 hour", "h", "0m", "-5m", ""):
        with pytest.raises(ValueError, match="is not a duration"):
            metrics.parse_duration(bad)
    assert metrics.parse_since("1h", now=T0) == T0 - 3600
    assert metrics.parse_since("2026-11-18T00:00:00+00:00") == datetime(2026, 11, 18, tzinfo=UTC).timestamp()
    with pytest.raises(UsageError, match="--since 'yesterday' is not a date or an age"):
        metrics.parse_since("yesterday")


def test_retention_purges_old_rows(store):
    _fill(store, 10)
    assert metrics.purge(store, retention_days=1, now=T0 + 86400 + 4.5) == 5
    assert summarize(store, 0, T0 + 1e6).total.calls == 5


def test_a_bad_slo_window_in_operations_yaml_is_one_line_with_file_and_line(project, capsys):
    (project / "config" / "operations.yaml").write_text("metrics:\n  slo_window: 1 hour\n")
    code, _out, err = run_cli(capsys, "config", "check")
    assert code == 2
    assert err.count("\n") == 1 and "operations.yaml:2" in err and "'1 hour' is not a duration" in err


# -- through a run and the CLI -------------------------------------------------------------------


def test_a_run_records_its_model_calls_and_crewkit_metrics_prints_them(project, steps, capsys, tmp_path):
    steps.add("one", "two")
    code, line, _ = start(capsys, "Explain recursion", tmp_path / "f.txt")
    assert code == 0
    from crewkit.settings import load_settings

    store = StateStore.open(load_settings(project).home)
    rows = store.read(
        "SELECT run_id, flow, profile, role, outcome FROM metric_events WHERE kind = 'model_call'"
    )
    assert rows == [(line["run_id"], "steps", "startup", "reasoning", "ok")] * 2

    code, out, err = run_cli(capsys, "metrics", "--format", "json", "--since", "10m")
    assert code == 0, err
    data = json.loads(out)
    [group] = data["groups"]
    assert group["role"] == "reasoning" and group["calls"] == 2 and group["errors"] == 0
    assert group["p99_ms"] is not None and data["total"]["calls"] == 2
    assert data["slo"]["profile"] == "startup" and data["slo"]["enough_calls"] is False  # 2 < 20 calls

    code, out, err = run_cli(capsys, "metrics", "--format", "prometheus")
    assert code == 0, err
    model = group["model"]
    assert f'crewkit_model_calls_total{{model="{model}",role="reasoning"}} 2.0' in out
    assert 'crewkit_model_call_latency_seconds{model="' in out and 'quantile="0.99"' in out
    assert 'crewkit_slo_target{profile="startup",slo="p99_ms"} 500.0' in out

    code, out, err = run_cli(capsys, "metrics", "--by", "run_id,task")
    assert code == 0, err
    assert line["run_id"] in out and "total" in out


def test_crewkit_metrics_rejects_a_bad_since_in_one_line(project, capsys):
    code, out, err = run_cli(capsys, "metrics", "--since", "last week")
    assert code == 2 and out == ""
    assert err.startswith("error: --since 'last week' is not a date or an age") and err.count("\n") == 1
    code, _out, err = run_cli(capsys, "metrics", "--by", "tenant")
    assert code == 2 and err.count("\n") == 1 and "not a metric dimension" in err


def test_metrics_disabled_records_nothing(project, steps, capsys, tmp_path):
    (project / "config" / "operations.yaml").write_text("metrics:\n  enabled: false\n")
    steps.add("one", "two")
    code, _line, _ = start(capsys, "Explain recursion", tmp_path / "f.txt")
    assert code == 0
    from crewkit.settings import load_settings

    assert StateStore.open(load_settings(project).home).read("SELECT COUNT(*) FROM metric_events") == [(0,)]


def test_the_slo_totals_aggregated_in_sql_equal_the_summarys(store):
    _fill(store, 57, errors=3)
    sub = MetricsSubscriber(store, "r2", profile="startup")
    path = hooks.RunHooks([sub], with_ledger=False, transaction=store.write)
    path.after_model(_result(error="timeout", started=T0 + 1))
    path.after_model(_result(model="m2", attempt=1, started=T0 + 1, seconds=3.0))
    path.after_model(_result(error="timeout", started=T0 + 2))
    path.after_model(_result(model="m2", attempt=1, error="timeout", started=T0 + 2))
    path.after_model(_result(error="over budget", not_run="refused", started=T0 + 3))
    sub.flush()
    for profile in ("startup", None):
        expected = summarize(store, T0, T0 + 600, by=(), profile=profile).total
        got = metrics.totals(store, T0, T0 + 600, profile=profile)
        assert (got.calls, got.errors, got.p99_ms, got.error_rate, got.availability) == (
            expected.calls, expected.errors, expected.p99_ms, expected.error_rate, expected.availability
        )  # fmt: skip
    assert got.calls == 61 and got.logical_calls == 59 and got.failed_calls == 4
    assert metrics.totals(store, T0 + 1000, T0 + 2000) == metrics.Totals(0, 0, None, 0, 0)


def test_the_counters_aggregated_in_sql_equal_the_summarys(store):
    _fill(store, 30, errors=4)
    _fill(store, 5, role="code", model="m2")
    sub = MetricsSubscriber(store, "r2")
    path = hooks.RunHooks([sub], with_ledger=False, transaction=store.write)
    path.after_model(_result(error="timeout", started=T0 + 1))
    path.after_model(_result(model="m2", attempt=1, started=T0 + 1))
    cached = _result(tokens=(0, 0), replayed=True, started=T0 + 2)
    cached.replay_source = "cache"
    path.after_model(cached)
    sub.record("guardrail", role="reasoning", model="m1", outcome="failed", ts=T0 + 3)
    sub.record("retry", role="reasoning", model="m1", outcome="guardrail", ts=T0 + 3)
    sub.flush()
    fields = ("calls", "errors", "input_tokens", "output_tokens", "cost_usd", "cache_hits", "retries",
              "guardrails_failed", "refused", "replayed")  # fmt: skip
    want = summarize(store, T0, T0 + 600)
    got = metrics.counts(store, T0, T0 + 600)
    assert [r.group for r in got.rows] == [r.group for r in want.rows]
    for g, w in zip([*got.rows, got.total], [*want.rows, want.total], strict=True):
        assert {f: getattr(g, f) for f in fields} == {f: getattr(w, f) for f in fields}
    assert got.total.retries == 2 and got.total.cache_hits == 1
