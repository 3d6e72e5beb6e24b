"""Budgets on the real hook path: a RoleLLM built by the registry on a scripted model, and the guard.

`local-small` is priced at $1000/$2000 per million tokens (input/output) with max_tokens 100,
so a short prompt's estimate is ~$0.205 and a scripted call with usage (10, 5) costs $0.02.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crewkit.errors import BudgetExceeded, CrewkitError, RunPaused
from crewkit.governance import approvals
from crewkit.governance.approvals import ApprovalGate
from crewkit.governance.budget import Budgets
from crewkit.runtime import hooks
from crewkit.runtime.budget_guard import BudgetGuard, from_settings
from crewkit.runtime.context import tenant_of
from crewkit.runtime.journal import CallJournal
from crewkit.runtime.store import StateStore
from tests.budget_setup import budget_settings, role_llm
from tests.fakes import ScriptedLLM

DAY = 86400.0
T0 = 1_795_000_000.0  # 2026-11-18T10:13:20Z


@pytest.fixture
def store(crewkit_home: Path) -> StateStore:
    s = StateStore.open(crewkit_home)
    s.create_run("r1", "default", {}, "fp", "alice")
    return s


def _totals(store: StateStore) -> dict[str, float]:
    return {r[0]: round(r[1], 9) for r in store.read("SELECT scope, spent FROM budget_totals")}


def _holds(store: StateStore) -> list[tuple[Any, ...]]:
    return store.read("SELECT scope, amount FROM budget_holds")


def _audit(store: StateStore, action: str) -> list[dict[str, Any]]:
    return [
        json.loads(r[0])
        for r in store.read("SELECT detail FROM audit WHERE action = ? ORDER BY seq", (action,))
    ]


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _guard(
    store: StateStore, settings: Any, *, clock: Any = None, gate: Any = None, tenant: str | None = None
):
    budgets = Budgets(store, settings, clock=clock) if clock else Budgets(store, settings)
    return BudgetGuard(budgets, "r1", tenant, gate)


# -- refusals -----------------------------------------------------------------------------------


def test_a_call_that_would_exceed_the_per_run_budget_is_not_sent(project, store):
    settings = budget_settings(project, {"per_run": 0.1})
    fake = ScriptedLLM(["never"], allow_unused=True)
    with hooks.scope(hooks.RunHooks([_guard(store, settings)])), pytest.raises(BudgetExceeded) as info:
        role_llm(settings, fake).call("hello there")
    assert fake.calls == []
    msg = str(info.value)
    assert "per-run budget of run r1 is $0.10, spent $0.00" in msg
    assert "budgets.per_run" in msg and "profile 'test'" in msg and "crewkit resume r1" in msg
    assert (
        info.value.scope == "per-run budget of run r1" and info.value.limit == 0.1 and info.value.spent == 0
    )
    assert info.value.exit_code == 1
    assert _holds(store) == [] and _totals(store) == {}
    [event] = _audit(store, "budget.exceeded")
    assert event["scope"] == "run:r1" and event["model"] == "local-small" and event["run_id"] == "r1"


def test_spending_accumulates_until_the_next_call_would_cross_the_limit(project, store):
    settings = budget_settings(project, {"per_run": 0.25})
    fake = ScriptedLLM(["a", "b", "c", "never"], allow_unused=True)
    llm = role_llm(settings, fake)
    with hooks.scope(hooks.RunHooks([_guard(store, settings)])):
        assert [llm.call("hello there") for _ in range(3)] == ["a", "b", "c"]  # 0.06 + ~0.205 <= 0.25
        with pytest.raises(
            BudgetExceeded, match=r"is \$0\.25, spent \$0\.06; this call would need ~\$0\.2"
        ) as info:
            llm.call("hello there")
    assert len(fake.calls) == 3
    assert info.value.spent == pytest.approx(0.06)


def test_the_estimate_is_held_during_the_call_and_replaced_by_the_real_cost(project, store):
    settings = budget_settings(project, {"total": 5.0})
    seen: list[Any] = []

    def answer(call: Any) -> str:
        seen.extend(_holds(store))
        return "done"

    fake = ScriptedLLM([answer])
    with hooks.scope(hooks.RunHooks([_guard(store, settings, tenant="acme")])):
        role_llm(settings, fake).call("hello there")  # 4 + 3 prompt tokens, 100 output at most
    assert sorted(seen) == sorted(
        (scope, pytest.approx(0.207)) for scope in ("run:r1", "role:reasoning", "tenant:acme", "total")
    )
    assert _holds(store) == []
    assert _totals(store) == {"run:r1": 0.02, "role:reasoning": 0.02, "tenant:acme": 0.02, "total": 0.02}


def test_a_failed_call_releases_its_hold_and_costs_nothing(project, store):
    settings = budget_settings(project, {"per_run": 1.0})
    fake = ScriptedLLM([ValueError("provider broke")])
    with hooks.scope(hooks.RunHooks([_guard(store, settings)])), pytest.raises(ValueError):
        role_llm(settings, fake).call("hello")
    assert _holds(store) == [] and _totals(store) == {}


def test_a_replayed_call_is_neither_reserved_nor_paid_again(project, store):
    settings = budget_settings(project, {"per_run": 0.21})  # room for one call: 0.02 + ~0.205 > 0.21
    with hooks.scope(hooks.RunHooks([CallJournal(store, "r1", lambda: 0), _guard(store, settings)])):
        assert role_llm(settings, ScriptedLLM(["first"])).call("plan it") == "first"
    assert _totals(store)["run:r1"] == 0.02
    # resumed: the journal answers, the guard never sees the call (and the budget left would refuse it)
    with hooks.scope(hooks.RunHooks([CallJournal(store, "r1", lambda: 0), _guard(store, settings)])):
        assert role_llm(settings, ScriptedLLM([])).call("plan it") == "first"
    assert _totals(store)["run:r1"] == 0.02 and _holds(store) == []


class Refuser(hooks.Subscriber):
    """A later subscriber refusing the call after the guard reserved it."""

    def before_model(self, call: hooks.ModelCall) -> None:
        raise CrewkitError("refused by policy")


def test_a_call_refused_by_a_later_hook_releases_the_hold(project, store):
    settings = budget_settings(project, {"per_run": 1.0})
    with hooks.scope(hooks.RunHooks([_guard(store, settings), Refuser()])), pytest.raises(CrewkitError):
        role_llm(settings, ScriptedLLM([])).call("hello")
    assert _holds(store) == [] and _totals(store) == {}


class Pauser(hooks.Subscriber):
    def before_model(self, call: hooks.ModelCall) -> None:
        from crewkit.errors import ApprovalRequired

        raise RunPaused(ApprovalRequired("wait", "a-1"))


def test_close_releases_the_holds_of_calls_that_never_finished(project, store):
    settings = budget_settings(project, {"per_run": 1.0})
    guard = _guard(store, settings)
    with hooks.scope(hooks.RunHooks([guard, Pauser()])), pytest.raises(RunPaused):
        role_llm(settings, ScriptedLLM([])).call("hello")
    assert len(_holds(store)) == 4  # the pause skipped the after hooks
    guard.close()
    assert _holds(store) == []


# -- free models --------------------------------------------------------------------------------


def test_a_free_model_writes_nothing(project, store, monkeypatch):
    settings = budget_settings(project, {"per_run": 0.1, "total": 1.0}, price=(0.0, 0.0))
    writes: list[int] = []
    real_write = store.write
    monkeypatch.setattr(store, "write", lambda: writes.append(1) or real_write())
    with hooks.scope(hooks.RunHooks([_guard(store, settings)], with_ledger=False)):
        assert role_llm(settings, ScriptedLLM(["free"])).call("hello") == "free"
    assert writes == [] and _totals(store) == {}


def test_a_free_model_is_refused_once_a_budget_is_already_over(project, store):
    priced = budget_settings(project, {"per_run": 0.1})
    Budgets(store, priced).settle(None, 0.15, "r1", Budgets(store, priced).scopes("r1", None, "reasoning"))
    free = budget_settings(project, {"per_run": 0.1}, price=(0.0, 0.0))
    fake = ScriptedLLM(["never"], allow_unused=True)
    with (
        hooks.scope(hooks.RunHooks([_guard(store, free)])),
        pytest.raises(BudgetExceeded, match="spent \\$0.15"),
    ):
        role_llm(free, fake).call("hello")
    assert fake.calls == []


# -- alerts -------------------------------------------------------------------------------------


class Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append({"type": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Hook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/secret-token"
    finally:
        server.shutdown()
        server.server_close()


def test_alerts_fire_once_per_threshold_and_period_to_log_audit_file_and_webhook(
    project, store, webhook, caplog
):
    settings = budget_settings(
        project, {"total": 1.0, "sinks": {"file": "output/alerts.jsonl", "webhook": webhook}}
    )
    clock = Clock()
    fake = ScriptedLLM(["a"] * 6)
    fake.usage_per_call = (50, 100)  # $0.05 + $0.20 = $0.25 a call
    llm = role_llm(settings, fake)
    guard = _guard(store, settings, clock=clock)
    caplog.set_level(logging.WARNING, logger="crewkit.governance.budget")
    with hooks.scope(hooks.RunHooks([guard])):
        llm.call("hi")  # 0.25
        llm.call("hi")  # 0.50: 50%
        llm.call("hi")  # 0.75
        llm.call("hi")  # 1.00: 80% and 100%
        clock.t += DAY  # a new period: the alerts fire again
        llm.call("hi")
        llm.call("hi")  # 0.50 of the new day
    day1, day2 = "2026-11-18", "2026-11-19"
    fired = [
        (r[0], r[1], r[2])
        for r in store.read("SELECT scope, period, threshold FROM budget_alerts ORDER BY fired, threshold")
    ]
    assert fired == [("total", day1, 0.5), ("total", day1, 0.8), ("total", day1, 1.0), ("total", day2, 0.5)]
    audited = [(e["period"], e["threshold"], e["spent"]) for e in _audit(store, "budget.alert")]
    assert audited == [(day1, 0.5, 0.5), (day1, 0.8, 1.0), (day1, 1.0, 1.0), (day2, 0.5, 0.5)]
    lines = [json.loads(line) for line in (project / "output" / "alerts.jsonl").read_text().splitlines()]
    assert [(e["event"], e["period"], e["threshold"]) for e in lines] == [
        ("budget.alert", day1, 0.5),
        ("budget.alert", day1, 0.8),
        ("budget.alert", day1, 1.0),
        ("budget.alert", day2, 0.5),
    ]
    assert (
        lines[0]["budget"] == f"total budget for {day1}"
        and lines[0]["limit"] == 1.0
        and lines[0]["run_id"] == "r1"
    )
    assert [h["body"] for h in Hook.received] == lines
    assert Hook.received[0]["type"] == "application/json"
    warnings = [r.getMessage() for r in caplog.records if "budget alert" in r.getMessage()]
    assert warnings[0] == f"budget alert: total budget for {day1} has reached 50% (spent $0.50 of $1.00)"
    assert len(warnings) == 4


def test_a_second_guard_in_another_segment_does_not_fire_an_alert_again(project, store):
    settings = budget_settings(project, {"per_run": 1.0})
    fake = ScriptedLLM(["a", "b", "c"])
    fake.usage_per_call = (100, 100)  # $0.30 a call
    for calls in (2, 1):  # 0.60 (50%), then 0.90 (80%) in a new segment
        with hooks.scope(hooks.RunHooks([_guard(store, settings)])):
            for _ in range(calls):
                role_llm(settings, fake).call("hi")
    assert [e["threshold"] for e in _audit(store, "budget.alert")] == [0.5, 0.8]
    assert [r[0] for r in store.read("SELECT threshold FROM budget_alerts ORDER BY threshold")] == [0.5, 0.8]


def test_an_exceeded_refusal_goes_to_the_sinks_and_a_failing_webhook_never_fails_the_run(
    project, store, caplog
):
    dead = "http://127.0.0.1:9/hooks/secret-token"  # discard port: nothing listens
    settings = budget_settings(project, {"per_run": 0.5, "sinks": {"file": "alerts.jsonl", "webhook": dead}})
    fake = ScriptedLLM(["a"], allow_unused=True)
    fake.usage_per_call = (100, 100)  # $0.30: crosses 50%, the webhook fails
    llm = role_llm(settings, fake)
    with hooks.scope(hooks.RunHooks([_guard(store, settings)])):
        assert llm.call("hi") == "a"
        with pytest.raises(BudgetExceeded):
            llm.call("hi")  # 0.30 + 0.205 > 0.5
    events = [json.loads(line)["event"] for line in (project / "alerts.jsonl").read_text().splitlines()]
    assert events == ["budget.alert", "budget.exceeded"]
    failed = [r.getMessage() for r in caplog.records if "webhook" in r.getMessage()]
    assert len(failed) == 2 and all("http://127.0.0.1:9/…" in m for m in failed)
    assert not any("secret-token" in r.getMessage() for r in caplog.records)


# -- scopes -------------------------------------------------------------------------------------


def test_tenant_and_role_budgets_apply_with_the_tenants_own_limit(project, store):
    settings = budget_settings(
        project, {"per_tenant": 5.0, "tenants": {"acme": 0.1}, "per_role": {"code": 0.1}}
    )
    with (
        hooks.scope(hooks.RunHooks([_guard(store, settings, tenant="acme")])),
        pytest.raises(
            BudgetExceeded, match="budget of tenant 'acme' for .* is \\$0.10.*budgets.tenants.acme"
        ),
    ):
        role_llm(settings, ScriptedLLM([], allow_unused=True)).call("hi")
    with hooks.scope(hooks.RunHooks([_guard(store, settings, tenant="other")])):
        assert role_llm(settings, ScriptedLLM(["ok"])).call("hi") == "ok"
        with pytest.raises(BudgetExceeded, match="budget of role 'code' for .*budgets.per_role.code"):
            role_llm(settings, ScriptedLLM([], allow_unused=True), role="code").call("hi")
    assert _totals(store)["tenant:other"] == 0.02


def test_tenant_of_reads_the_runs_tenant_input():
    assert tenant_of({"tenant": " acme "}) == "acme"
    assert (
        tenant_of({"task": "x"}) == "default"
        and tenant_of(None) == "default"
        and tenant_of({"tenant": ""}) == "default"
    )


def test_concurrent_calls_from_threads_settle_each_their_own_hold(project, store):
    settings = budget_settings(project, {"total": 100.0})
    fake = ScriptedLLM(["x"] * 40)
    llm = role_llm(settings, fake)
    guard = _guard(store, settings)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with hooks.scope(hooks.RunHooks([guard])):
                for _ in range(5):
                    llm.call("hi")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _holds(store) == [] and _totals(store)["total"] == pytest.approx(0.8)


# -- on_exceed: ask ------------------------------------------------------------------------------


def _ask_segment(store: StateStore, settings: Any, fake: ScriptedLLM) -> Any:
    gate = ApprovalGate(store, settings, "r1", "alice", checkpoints=lambda: 0)
    with hooks.scope(hooks.RunHooks([from_settings(settings, store, "r1", None, gate)])):
        return role_llm(settings, fake).call("hello there")


def test_ask_pauses_the_run_for_a_person_and_an_approval_becomes_a_grant(project, store):
    settings = budget_settings(project, {"per_run": 0.1, "on_exceed": "ask"})
    fake = ScriptedLLM(["finally"])
    with pytest.raises(RunPaused) as paused:
        _ask_segment(store, settings, fake)
    assert fake.calls == [] and paused.value.required.exit_code == 75
    approval = store.get_approval(paused.value.required.approval_id)
    assert (
        approval.tier == "sensitive"
        and approval.key == "budget:run:r1:run:0"
        and approval.status == "pending"
    )
    assert approval.subject["kind"] == "budget" and approval.subject["raise_by"] == pytest.approx(0.107)
    assert "per-run budget of run r1" in approval.subject["what"] and approval.subject["limit"] == 0.1
    # resumed before anyone decided: the same approval, paused again
    with pytest.raises(RunPaused) as again:
        _ask_segment(store, settings, fake)
    assert again.value.required.approval_id == approval.id
    with pytest.raises(CrewkitError, match="may not approve"):
        approvals.decide(store, settings, approval.id, "approve", "alice")  # the requester
    approvals.decide(store, settings, approval.id, "approve", "bob")
    assert _ask_segment(store, settings, fake) == "finally"
    [grant] = store.read("SELECT scope, period, amount, approval_id, granted_by FROM budget_grants")
    assert grant == ("run:r1", "run", pytest.approx(0.107), approval.id, "bob")
    [granted] = _audit(store, "budget.granted")
    assert granted["approval_id"] == approval.id
    assert store.read("SELECT actor FROM audit WHERE action = 'budget.granted'") == [("bob",)]
    assert _totals(store)["run:r1"] == 0.02


def test_ask_a_rejected_raise_stops_the_run_with_budget_exceeded(project, store):
    settings = budget_settings(project, {"per_run": 0.1, "on_exceed": "ask"})
    fake = ScriptedLLM([], allow_unused=True)
    with pytest.raises(RunPaused) as paused:
        _ask_segment(store, settings, fake)
    approvals.decide(store, settings, paused.value.required.approval_id, "reject", "bob", "not this month")
    with pytest.raises(BudgetExceeded, match="rejected by bob: not this month"):
        _ask_segment(store, settings, fake)
    assert fake.calls == [] and store.read("SELECT COUNT(*) FROM budget_grants") == [(0,)]


def test_ask_without_a_gate_stops_like_stop(project, store):
    settings = budget_settings(project, {"per_run": 0.1, "on_exceed": "ask"})
    with (
        hooks.scope(hooks.RunHooks([from_settings(settings, store, "r1", None)])),
        pytest.raises(BudgetExceeded),
    ):
        role_llm(settings, ScriptedLLM([], allow_unused=True)).call("hi")


# -- through a CrewAI crew ----------------------------------------------------------------------


def _crew(llm: Any) -> Any:
    from crewai import Agent, Crew, Task

    agent = Agent(role="Analyst", goal="Answer.", backstory="Answers.", llm=llm, max_iter=2)
    return Crew(agents=[agent], tasks=[Task(description="Say hi.", expected_output="hi", agent=agent)])


def test_a_crew_whose_budget_is_exhausted_stops_at_once_without_calling_the_model(project, store):
    settings = budget_settings(project, {"per_run": 0.1})
    fake = ScriptedLLM(["Final Answer: hi"], allow_unused=True)
    with hooks.scope(hooks.RunHooks([_guard(store, settings)])), pytest.raises(BudgetExceeded):
        _crew(role_llm(settings, fake)).kickoff()
    assert fake.calls == []
    assert store.read("SELECT COUNT(*) FROM audit WHERE action = 'budget.exceeded'") == [(1,)]  # not retried


def test_a_crew_under_ask_pauses_out_of_kickoff(project, store):
    settings = budget_settings(project, {"per_run": 0.1, "on_exceed": "ask"})
    fake = ScriptedLLM([], allow_unused=True)
    gate = ApprovalGate(store, settings, "r1", "alice", checkpoints=lambda: 0)
    with (
        hooks.scope(hooks.RunHooks([from_settings(settings, store, "r1", None, gate)])),
        pytest.raises(RunPaused),
    ):
        _crew(role_llm(settings, fake)).kickoff()
    assert fake.calls == [] and len(store.list_approvals("pending")) == 1


def test_a_calls_records_after_it_is_answered_share_one_commit_on_a_runs_hook_path(project, store):
    """Usage row, journalled answer, audit record and budget settlement: written together or not
    at all, with one commit (each commit is the costliest statement on the hook path)."""
    from crewkit.runtime import segment

    settings = budget_settings(project, {"per_run": 5.0})
    path = segment.run_hooks(settings, store, "r1", None, lambda: 0, None)
    statements: list[str] = []
    conn = store._conn()  # this thread's connection: the one the hooks write on
    conn.set_trace_callback(statements.append)
    try:
        with hooks.scope(path):
            assert role_llm(settings, ScriptedLLM(["done"])).call("hello there") == "done"
    finally:
        conn.set_trace_callback(None)
    assert statements.count("COMMIT") == 2  # the reservation before the call, everything after it
    assert len(store.calls("r1")) == 1 and _holds(store) == []
    assert _totals(store)["run:r1"] == 0.02 and len(_audit(store, "model.call")) == 1
