"""Budgets on a real state store: scopes, estimates, reserve/settle/release, stale holds, grants, show."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from crewkit.errors import BudgetExceeded
from crewkit.governance import budget
from crewkit.governance.budget import Budgets, max_output_tokens, prompt_tokens, usd
from crewkit.runtime.store import StateStore, _proc_start
from tests.budget_setup import budget_settings

T0 = 1_795_000_000.0  # 2026-11-18T10:13:20Z


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def store(crewkit_home: Path) -> StateStore:
    return StateStore.open(crewkit_home)


def _budgets(project: Path, store: StateStore, limits: dict[str, Any], **kw: Any) -> Budgets:
    return Budgets(store, budget_settings(project, limits), clock=kw.pop("clock", Clock()), **kw)


def _hold(
    store: StateStore, scope: str, amount: float, pid: int, start: str | None, host: str, created: float
) -> None:
    with store.write() as conn:
        conn.execute(
            "INSERT INTO budget_holds (reservation, scope, period, amount, run_id, pid, pid_start, host, created) "
            "VALUES (?, ?, 'run', ?, 'rx', ?, ?, ?, ?)",
            (f"h{pid}{created}", scope, amount, pid, start, host, created),
        )


# -- estimates ----------------------------------------------------------------------------------


def test_prompt_tokens_count_ascii_by_four_and_other_characters_one_each():
    assert prompt_tokens("abcdefgh") == 4 + 2
    assert prompt_tokens([{"role": "user", "content": "abcde"}]) == 4 + 2
    assert prompt_tokens([{"role": "user", "content": "预算超出了"}]) == 4 + 5
    assert prompt_tokens([{"role": "user", "content": "ab 預算"}]) == 4 + 1 + 2


def test_prompt_tokens_count_images_tool_calls_and_tools():
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100_000}}
    msgs = [{"role": "user", "content": [{"type": "text", "text": "look"}, image]}]
    assert prompt_tokens(msgs) == 4 + 1 + budget.IMAGE_TOKENS
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"function": {"name": "x", "arguments": "{}"}}],
    }
    assert prompt_tokens([call]) > 4
    tools = [{"type": "function", "function": {"name": "search", "description": "d" * 400}}]
    assert prompt_tokens("hi", tools) >= 4 + 1 + 100


def test_max_output_is_the_models_cap_else_4096_within_the_context():
    assert max_output_tokens({"max_tokens": 256}, 8192) == 256
    assert max_output_tokens({"max_completion_tokens": 900}, 8192) == 900
    assert max_output_tokens({}, 128000) == 4096
    assert max_output_tokens({}, 2048) == 2048


def test_the_estimate_is_prompt_tokens_times_input_price_plus_max_output_times_output_price(project, store):
    b = _budgets(project, store, {})
    assert b.estimate("local-small", "abcdefgh") == pytest.approx((6 * 1000 + 100 * 2000) / 1e6)
    assert b.estimate("local-minilm", "abcdefgh") == 0.0  # free
    assert b.estimate("not-configured", "abcdefgh") == 0.0


def test_usd_shows_cents_and_more_below_a_cent():
    assert [usd(0.5), usd(12), usd(0), usd(0.0031), usd(1234.5), usd(None)] == [
        "$0.50",
        "$12.00",
        "$0.00",
        "$0.0031",
        "$1,234.50",
        "no limit",
    ]


# -- scopes -------------------------------------------------------------------------------------


def test_scopes_name_each_budget_with_its_limit_and_period(project, store):
    b = _budgets(
        project,
        store,
        {"per_run": 1, "total": 9, "per_tenant": 5, "tenants": {"acme": 7}, "per_role": {"code": 3}},
    )
    run, role, tenant, total = b.scopes("r1", "acme", "reasoning")
    assert (run.key, run.period, run.limit, run.name) == ("run:r1", "run", 1, "per-run budget of run r1")
    assert (role.key, role.limit, role.name) == (
        "role:reasoning",
        None,
        "budget of role 'reasoning' for 2026-11-18",
    )
    assert (tenant.key, tenant.limit, tenant.setting) == ("tenant:acme", 7, "budgets.tenants.acme")
    assert (total.key, total.period, total.name) == ("total", "2026-11-18", "total budget for 2026-11-18")
    other = b.scopes("r1", None, "code")
    assert (other[1].limit, other[2].key, other[2].limit, other[2].setting) == (
        3,
        "tenant:default",
        5,
        "budgets.per_tenant",
    )


def test_a_monthly_period_is_the_utc_month(project, store):
    b = _budgets(project, store, {"total": 9, "period": "month"})
    assert b.scopes("r1", None, "reasoning")[-1].period == "2026-11"


# -- reserve, settle, release ---------------------------------------------------------------------


def test_reserve_refuses_on_the_first_scope_over_its_limit_and_holds_nothing(project, store):
    b = _budgets(project, store, {"per_run": 1.0, "total": 0.5})
    scopes = b.scopes("r1", None, "reasoning")
    r = b.reserve(scopes, 0.3, "r1")
    b.settle(r, 0.1, "r1")
    held = b.reserve(scopes, 0.3, "r1")  # 0.1 spent + 0.3 held
    with pytest.raises(BudgetExceeded) as info:
        b.reserve(scopes, 0.2, "r1")  # 0.1 + 0.3 + 0.2 > 0.5
    exc = info.value
    assert exc.scope == "total budget for 2026-11-18" and exc.limit == 0.5
    assert exc.spent == pytest.approx(0.1) and exc.held == pytest.approx(0.3) and exc.needed == 0.2
    assert "spent $0.10 (+$0.30 held); this call would need ~$0.20" in str(exc)
    assert "wait for the next period" in str(exc)
    assert store.read("SELECT COUNT(*) FROM budget_holds") == [(4,)]
    b.release([held])
    assert store.read("SELECT COUNT(*) FROM budget_holds") == [(0,)]
    assert b.reserve(scopes, 0.4, "r1") is not None  # 0.1 + 0.4 <= 0.5: exactly at the limit is allowed


def test_a_limit_of_zero_refuses_any_priced_call(project, store):
    b = _budgets(project, store, {"per_run": 0})
    with pytest.raises(BudgetExceeded, match=r"is \$0\.00"):
        b.reserve(b.scopes("r1", None, "reasoning"), 0.0001, "r1")


def test_settling_without_a_reservation_adds_the_cost(project, store):
    b = _budgets(project, store, {"total": 1.0})
    b.settle(None, 0.25, "r1", b.scopes("r1", None, "reasoning"))
    assert dict(store.read("SELECT scope, spent FROM budget_totals")) == {
        "run:r1": 0.25,
        "role:reasoning": 0.25,
        "tenant:default": 0.25,
        "total": 0.25,
    }


def test_a_grant_raises_the_limit_for_its_period_once_per_approval(project, store):
    b = _budgets(project, store, {"total": 0.5})
    scopes = b.scopes("r1", None, "reasoning")
    total = scopes[-1]
    with pytest.raises(BudgetExceeded):
        b.reserve(scopes, 0.7, "r1")
    assert b.grants_so_far(total) == 0
    assert b.grant(total, 0.5, "a-1", "bob", "r1") is True
    assert b.grant(total, 0.5, "a-1", "bob", "r1") is False  # the same approval: no second grant
    assert b.grants_so_far(total) == 1
    b.settle(b.reserve(scopes, 0.7, "r1"), 0.6, "r1")  # 1.0 with the grant
    # the alerts' shares count the grant: 0.6 of 1.0 is 50%, not 120%
    assert [r[0] for r in store.read("SELECT threshold FROM budget_alerts")] == [0.5]
    assert store.read("SELECT actor, subject FROM audit WHERE action = 'budget.granted'") == [
        ("bob", "total budget for 2026-11-18")
    ]
    b._clock.t += 86400  # the next day: the grant no longer applies
    with pytest.raises(BudgetExceeded):
        b.reserve(b.scopes("r1", None, "reasoning"), 0.7, "r1")


# -- stale holds --------------------------------------------------------------------------------


def _dead_pid() -> tuple[int, str | None]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    start = _proc_start(proc.pid)
    proc.kill()
    proc.wait()
    return proc.pid, start


def test_a_reserve_drops_holds_of_dead_processes_and_of_other_hosts_past_the_ttl(project, store):
    clock = Clock(time.time())
    b = _budgets(project, store, {"per_run": 1.0}, clock=clock)
    pid, start = _dead_pid()
    me = os.getpid()
    host = budget._HOST
    _hold(store, "run:r1", 0.3, pid, start, host, clock.t)  # dead process here: dropped
    _hold(store, "run:r1", 0.2, me, _proc_start(me), host, clock.t)  # live (this process): kept
    _hold(store, "run:r1", 0.1, 4242, None, "elsewhere", clock.t - 10)  # another host, recent: kept
    _hold(store, "run:r1", 0.15, 4243, None, "elsewhere", clock.t - budget.HOLD_TTL_S - 1)  # old: dropped
    b.reserve(b.scopes("r1", None, "reasoning"), 0.05, "r1")
    left = sorted(r[0] for r in store.read("SELECT amount FROM budget_holds WHERE run_id = 'rx'"))
    assert left == [0.1, 0.2]


def test_a_recycled_pid_does_not_keep_a_dead_processs_hold(project, store):
    b = _budgets(project, store, {"per_run": 1.0}, clock=Clock(time.time()))
    _hold(store, "run:r1", 0.3, os.getpid(), "not-my-start-time", budget._HOST, b.now())
    b.reserve(b.scopes("r1", None, "reasoning"), 0.05, "r1")
    assert store.read("SELECT COUNT(*) FROM budget_holds WHERE run_id = 'rx'") == [(0,)]


# -- show ---------------------------------------------------------------------------------------


def test_show_lists_every_budget_of_the_current_period(project, store):
    clock = Clock(time.time())
    b = _budgets(
        project,
        store,
        {"total": 2.0, "per_run": 1.0, "tenants": {"acme": 1.5}, "per_role": {"code": 0.5}},
        clock=clock,
    )
    clock.t -= 86400  # yesterday's spending is not this period's
    b.settle(None, 0.9, "old", b.scopes("old", "zeta", "reasoning"))
    clock.t += 86400
    b.settle(None, 0.4, "r1", b.scopes("r1", "acme", "reasoning"))
    b.settle(None, 0.1, "r2", b.scopes("r2", "beta", "code"))
    clock.t += 1
    held = b.reserve(b.scopes("r2", "beta", "code"), 0.2, "r2")
    rows = {r["scope"]: r for r in b.show()}
    assert list(rows) == [
        "total",
        "tenant:acme",
        "tenant:beta",
        "role:code",
        "role:reasoning",
        "run:r2",
        "run:r1",
    ]
    total = rows["total"]
    assert (total["limit"], total["spent"], total["reserved"], total["remaining"]) == (2.0, 0.5, 0.2, 1.3)
    assert total["used"] == 0.25 and total["period"] == b.period()
    assert rows["tenant:beta"]["limit"] is None and rows["tenant:beta"]["remaining"] is None
    assert rows["role:code"]["reserved"] == 0.2 and rows["role:code"]["name"].startswith(
        "budget of role 'code'"
    )
    assert rows["run:r1"]["spent"] == 0.4 and rows["run:r1"]["period"] == "run"
    b.release([held])
    assert next(r for r in b.show() if r["scope"] == "run:r2")["reserved"] == 0.0


def test_show_counts_no_hold_of_a_dead_process(project, store):
    b = _budgets(project, store, {"total": 2.0}, clock=Clock(time.time()))
    pid, start = _dead_pid()
    _hold(store, "total", 0.3, pid, start, budget._HOST, b.now())
    with store.write() as conn:
        conn.execute("UPDATE budget_holds SET period = ?", (b.period(),))
    assert b.show()[0]["reserved"] == 0.0


def test_with_no_limit_nothing_is_held_and_the_spending_is_still_recorded(project, store):
    b = _budgets(project, store, {})
    scopes = b.scopes("r1", "acme", "reasoning")
    assert b.reserve(scopes, 5.0, "r1") is None
    assert store.read("SELECT COUNT(*) FROM budget_holds") == [(0,)]
    b.settle(None, 0.5, "r1", scopes)
    assert {r["scope"]: r["spent"] for r in b.show()} == {
        "total": 0.5,
        "tenant:acme": 0.5,
        "role:reasoning": 0.5,
        "run:r1": 0.5,
    }


def test_a_dead_processs_hold_never_causes_a_refusal_between_two_looks_for_stale_holds(project, store):
    clock = Clock(time.time())
    b = _budgets(project, store, {"per_run": 1.0}, clock=clock)
    scopes = b.scopes("r1", None, "reasoning")
    b.release([b.reserve(scopes, 0.1, "r1")])  # the first reserve looks for stale holds
    pid, start = _dead_pid()
    _hold(store, "run:r1", 0.8, pid, start, budget._HOST, clock.t)  # died holding most of the budget
    held = b.reserve(scopes, 0.5, "r1")  # within PURGE_EVERY_S: looked for again before refusing
    assert held is not None and held.amount == 0.5
    assert store.read("SELECT COUNT(*) FROM budget_holds WHERE run_id = 'rx'") == [(0,)]
