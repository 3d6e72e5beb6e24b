"""Budgets shared by real processes over one state.db: never overspent together, no hold left by a kill.

Each child is `python -c DRIVER` on the test's project and CREWKIT_HOME: it loads the settings,
then either loops reserve/settle on the shared total budget (printing what it settled and how
often it was refused) or reserves once and sleeps until it is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crewkit.errors import BudgetExceeded
from crewkit.governance.budget import Budgets
from crewkit.runtime.store import StateStore
from tests.budget_setup import budget_settings

ROOT = Path(__file__).resolve().parents[2]

DRIVER = """
import json, sys, time
from pathlib import Path
from crewkit.errors import BudgetExceeded
from crewkit.governance.budget import Budgets
from crewkit.runtime.store import StateStore
from crewkit.settings import load_settings

project, mode, run_id, amount, n = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
settings = load_settings(Path(project))
budgets = Budgets(StateStore.open(settings.home), settings)
scopes = budgets.scopes(run_id, "shared", "reasoning")
if mode == "hold":
    budgets.reserve(scopes, amount, run_id)
    print("held", flush=True)
    time.sleep(120)
    sys.exit(0)
go = Path(project) / "go"
while not go.exists():  # start together
    time.sleep(0.005)
ok = refused = 0
settled = 0.0
for _ in range(n):
    try:
        reservation = budgets.reserve(scopes, amount, run_id)
    except BudgetExceeded:
        refused += 1
        continue
    time.sleep(0.002)  # the call in flight: other processes reserve meanwhile
    budgets.settle(reservation, amount, run_id)
    ok += 1
    settled += amount
print(json.dumps({"ok": ok, "refused": refused, "settled": settled}), flush=True)
"""


def _child(project: Path, mode: str, run_id: str, amount: float, n: int = 1) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(project), mode, run_id, str(amount), str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=project,
    )


def test_four_processes_sharing_one_budget_never_overspend_it_together(project, crewkit_home):
    limit, amount, loops = 1.0, 0.013, 40  # asked for 4 x 40 x 0.013 = 2.08: about half is refused
    budget_settings(project, {"total": limit, "alerts": [0.5]})
    StateStore.open(crewkit_home)  # created and migrated before the children race
    children = [_child(project, "loop", f"r{i}", amount, loops) for i in range(4)]
    (project / "go").touch()
    reports = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    store = StateStore.open(crewkit_home)
    spent = dict(store.read("SELECT scope, spent FROM budget_totals WHERE period != 'run'"))
    settled = sum(r["settled"] for r in reports)
    assert spent["total"] == pytest.approx(settled)
    assert spent["total"] <= limit + 1e-9
    assert sum(r["refused"] for r in reports) > 0
    assert limit / 2 <= sum(r["ok"] for r in reports) * amount <= limit  # refusals only near the limit
    assert store.read("SELECT COUNT(*) FROM budget_holds") == [(0,)]
    assert store.read("SELECT COUNT(*) FROM budget_alerts") == [(1,)]  # one 50% alert among four processes
    assert store.read("SELECT COUNT(*) FROM audit WHERE action = 'budget.alert'") == [(1,)]


def test_a_hold_lives_with_its_process_and_goes_when_it_is_killed(project, crewkit_home):
    settings = budget_settings(project, {"total": 1.0})
    store = StateStore.open(crewkit_home)
    holder = _child(project, "hold", "r-killed", 0.6)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        budgets = Budgets(store, settings)
        scopes = budgets.scopes("r-mine", "shared", "reasoning")
        with pytest.raises(BudgetExceeded, match=r"spent \$0\.00 \(\+\$0\.60 held\)"):
            budgets.reserve(scopes, 0.6, "r-mine")  # the holder lives: its hold counts
        assert store.read("SELECT COUNT(*) FROM budget_holds WHERE run_id = 'r-killed'") == [(4,)]
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        assert budgets.reserve(scopes, 0.6, "r-mine") is not None  # the dead process's hold is gone
        assert store.read("SELECT COUNT(*) FROM budget_holds WHERE run_id = 'r-killed'") == [(0,)]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
