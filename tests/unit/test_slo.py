# ruff: noqa: F811 - `steps` is a fixture imported from test_runs, `webhook` from test_budget_guard
"""SLOs per deployment profile: checked over the window, a breach alerted once per window through
the budget alert sinks (file, webhook), the log and the audit log."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from crewkit.observability import slo
from crewkit.observability.metrics import MetricsSubscriber
from crewkit.runtime import hooks
from crewkit.runtime.store import StateStore
from crewkit.settings import load_settings
from tests.unit.test_budget_guard import Hook, webhook  # noqa: F401 - fixture
from tests.unit.test_runs import run_cli, start, steps  # noqa: F401 - fixture

HOUR = 3600.0
T0 = 1_795_000_000.0 - (1_795_000_000.0 % HOUR) + 600  # ten minutes into a UTC hour


def _settings(project: Path, slo_: dict[str, float], sinks: dict[str, str] | None = None, **metrics: Any):
    profile: dict[str, Any] = {"latency_ms": 100, "price_ceiling_per_1k": 10, "slo": slo_}
    if sinks:
        profile["budgets"] = {"sinks": sinks}
    (project / "config" / "profiles.yaml").write_text(
        yaml.safe_dump({"default": "prod", "profiles": {"prod": profile}}, sort_keys=False)
    )
    (project / "config" / "operations.yaml").write_text(
        yaml.safe_dump({"metrics": {"slo_window": "1h", "slo_min_calls": 10, **metrics}})
    )
    return load_settings(project)


def _calls(store: StateStore, n: int, *, ms: float = 100.0, errors: int = 0, at: float = T0, profile="prod"):
    sub = MetricsSubscriber(store, "r1", profile=profile)
    path = hooks.RunHooks([sub], with_ledger=False, transaction=store.write)
    for i in range(n):
        call = hooks.ModelCall("reasoning", "m1", "Planner", "plan", "hi")
        err = "timeout" if i < errors else None
        path.after_model(
            hooks.ModelResult(call, None if err else "ok", 1, 1, 0.0, at - i, ms / 1000.0, error=err)
        )
    sub.flush()


def _audit(store: StateStore) -> list[dict[str, Any]]:
    return [json.loads(r[0]) for r in store.read("SELECT detail FROM audit WHERE action = 'slo.breached'")]


@pytest.fixture
def store(crewkit_home: Path) -> StateStore:
    return StateStore.open(crewkit_home)


def test_within_targets_no_alert(project, store):
    settings = _settings(project, {"p99_ms": 500, "availability": 0.99, "error_rate": 0.01})
    _calls(store, 50, ms=100)
    report, raised = slo.check(settings, store, T0 + 1)
    assert raised == [] and report.calls == 50 and report.enough
    assert [(r.slo, r.ok) for r in report.results] == [
        ("p99_ms", True),
        ("error_rate", True),
        ("availability", True),
    ]
    assert report.results[0].value == 100.0


def test_too_few_calls_give_no_verdict_and_no_alert(project, store):
    settings = _settings(project, {"p99_ms": 1, "availability": 0.99, "error_rate": 0.01})
    _calls(store, 9, ms=900, errors=9)
    report, raised = slo.check(settings, store, T0 + 1)
    assert raised == [] and not report.enough
    assert [r.ok for r in report.results] == [None, None, None]
    assert store.read("SELECT COUNT(*) FROM slo_alerts") == [(0,)]


def test_a_breach_alerts_once_per_window_to_log_audit_file_and_webhook(project, store, webhook, caplog):
    settings = _settings(
        project,
        {"p99_ms": 500, "availability": 0.9, "error_rate": 0.01},
        sinks={"file": "output/alerts.jsonl", "webhook": webhook},
    )
    caplog.set_level(logging.WARNING, logger="crewkit.observability.slo")
    _calls(store, 40, ms=800, errors=2)  # p99 800 ms > 500; error rate 5% > 1%; availability 95% >= 90%
    _, raised = slo.check(settings, store, T0 + 1, run_id="r1")
    assert sorted(e["slo"] for e in raised) == ["error_rate", "p99_ms"]
    p99 = next(e for e in raised if e["slo"] == "p99_ms")
    assert p99["value"] == 800.0 and p99["target"] == 500 and p99["profile"] == "prod" and p99["calls"] == 40
    assert p99["window"] == "1h" and p99["run_id"] == "r1" and p99["event"] == "slo.breached"
    lines = [json.loads(x) for x in (project / "output" / "alerts.jsonl").read_text().splitlines()]
    assert sorted(x["slo"] for x in lines) == ["error_rate", "p99_ms"]
    assert sorted(h["body"]["slo"] for h in Hook.received) == ["error_rate", "p99_ms"]
    assert {a["slo"] for a in _audit(store)} == {"error_rate", "p99_ms"}
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("SLO breached")]
    assert any(
        "p99_ms of profile 'prod' is 800 ms, above its target 500 ms over the last 1h" in w for w in warnings
    )

    # the same window: still breached, nothing new anywhere
    _, again = slo.check(settings, store, T0 + 600)
    assert again == [] and len(_audit(store)) == 2 and len(Hook.received) == 2
    # the next window: alerted again
    _calls(store, 40, ms=800, errors=2, at=T0 + HOUR)
    _, later = slo.check(settings, store, T0 + HOUR + 1)
    assert len(later) == 2 and len(_audit(store)) == 4


def test_availability_below_target_is_a_breach(project, store):
    settings = _settings(project, {"p99_ms": 5000, "availability": 0.999, "error_rate": 1.0})
    _calls(store, 20, errors=1)  # one logical call of 20 got no answer: 95%
    report, raised = slo.check(settings, store, T0 + 1)
    assert [e["slo"] for e in raised] == ["availability"]
    assert report.results[2].value == pytest.approx(0.95)


def test_only_the_profiles_own_calls_in_the_window_count(project, store):
    settings = _settings(project, {"p99_ms": 500, "availability": 0.9, "error_rate": 0.5})
    _calls(store, 30, ms=900, profile="other")
    _calls(store, 30, ms=900, at=T0 - 2 * HOUR)
    report, raised = slo.check(settings, store, T0 + 1)
    assert report.calls == 0 and raised == []


def test_builtin_profiles_carry_the_briefs_slos(project):
    profiles = load_settings(project).profiles.profiles
    got = {name: profiles[name].slo.model_dump() for name in ("startup", "mid-size", "enterprise")}
    assert got == {
        "startup": {"p99_ms": 500, "availability": 0.99, "error_rate": 0.01},
        "mid-size": {"p99_ms": 1000, "availability": 0.999, "error_rate": 0.005},
        "enterprise": {"p99_ms": 2000, "availability": 0.9999, "error_rate": 0.001},
    }


def test_a_run_checks_the_slos_when_it_ends_and_metrics_check_slo_exits_1(project, steps, capsys, tmp_path):
    _settings(project, {"p99_ms": 0.000001, "availability": 0.5, "error_rate": 0.5},
              sinks={"file": "output/alerts.jsonl"}, slo_min_calls=2)  # fmt: skip
    steps.add("one", "two")
    code, line, _ = start(capsys, "Explain recursion", tmp_path / "f.txt")
    assert code == 0
    [alert] = [json.loads(x) for x in (project / "output" / "alerts.jsonl").read_text().splitlines()]
    assert alert["slo"] == "p99_ms" and alert["run_id"] == line["run_id"] and alert["calls"] == 2
    code, out, err = run_cli(capsys, "metrics", "--check-slo")
    assert code == 1, err
    assert "BREACHED" in out
    assert len((project / "output" / "alerts.jsonl").read_text().splitlines()) == 1  # once per window
