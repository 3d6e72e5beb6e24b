"""`crewkit ab report` over synthetic outcome rows: metrics per arm, comparisons, the verdict."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from crewkit import cli
from crewkit.evaluation import ab_report
from crewkit.evaluation.experiments import Arm, Experiment, Row, key_hash

EXP = Experiment(
    enabled=True,
    unit="run",
    arms={"control": Arm(weight=50), "treatment": Arm(weight=50, routing="static")},
    min_runs_per_arm=30,
)


def runs(
    arm: str,
    n: int,
    passed: int,
    *,
    cost: float = 0.0,
    seconds: float = 1.0,
    approved: int = 0,
    rejected: int = 0,
    start: int = 0,
) -> list[Row]:
    """`n` finished runs of `arm`: the first `passed` verified, then approvals, costs and latencies."""
    out = []
    for i in range(n):
        approval = "approved" if i < approved else "rejected" if i < approved + rejected else "none"
        outcome = {
            "status": "rejected" if approval == "rejected" else "done",
            "verified": i < passed,
            "cost_usd": cost * (1 + 0.1 * (i % 3)),
            "seconds": seconds * (1 + 0.05 * (i % 7)),
            "approval": approval,
        }
        run_id = f"{arm}-{start + i}"
        out.append(Row(run_id, arm, key_hash("x", run_id), float(i), outcome, float(i) + 1))
    return out


def test_below_the_minimum_the_verdict_is_not_enough_data_yet():
    report = ab_report.build("x", EXP, runs("control", 12, 6) + runs("treatment", 9, 9))
    assert not report.enough_data
    assert report.verdicts == [
        "not enough data yet: control 12/30 runs, treatment 9/30 (runs the verifier judged; min_runs_per_arm 30)"
    ]
    # the numbers are still shown
    assert report.arms[1].metrics["verifier_pass_rate"].value == 1.0


def test_a_clearly_better_treatment_is_called_better_with_its_interval():
    report = ab_report.build("x", EXP, runs("control", 60, 30) + runs("treatment", 60, 50))
    assert report.enough_data
    [line] = report.verdicts
    assert line.startswith("treatment better than control on verifier pass rate (p<0.001; ")
    primary = next(c for c in report.comparisons if c.metric == "verifier_pass_rate")
    assert primary.diff == pytest.approx(50 / 60 - 0.5) and primary.test == "z" and primary.p < 0.001
    assert primary.ci[0] > 0 and primary.lift == pytest.approx((50 / 60) / 0.5 - 1)
    assert primary.effect == "cohens_h" and primary.effect_size > 0.5
    assert "+33.3 pts" in line and "83.3% vs 50.0%" in line


def test_a_small_difference_is_no_significant_difference():
    report = ab_report.build("x", EXP, runs("control", 60, 30) + runs("treatment", 60, 33))
    [line] = report.verdicts
    assert line.startswith("treatment: no significant difference on verifier pass rate (p=0.")


def test_a_worse_treatment_is_called_worse():
    report = ab_report.build("x", EXP, runs("control", 80, 70) + runs("treatment", 80, 40))
    assert report.verdicts[0].startswith("treatment worse than control on verifier pass rate")


def test_for_cost_lower_is_better_and_means_are_compared_with_welch():
    exp = EXP.model_copy(update={"primary_metric": "cost_usd"})
    report = ab_report.build(
        "x", exp, runs("control", 40, 20, cost=0.02) + runs("treatment", 40, 20, cost=0.01)
    )
    assert report.verdicts[0].startswith("treatment better than control on cost per run (USD)")
    cost = next(c for c in report.comparisons if c.metric == "cost_usd")
    assert (
        cost.test == "welch"
        and cost.effect == "hedges_g"
        and cost.diff < 0
        and cost.lift == pytest.approx(-0.5)
    )


def test_latency_mean_p50_p95_and_approval_rate_of_decided_runs():
    rows = runs("control", 40, 20, seconds=2.0, approved=6, rejected=2) + runs("treatment", 40, 20)
    report = ab_report.build("x", EXP, rows)
    control = report.arms[0]
    seconds = [r.outcome["seconds"] for r in rows[:40]]
    latency = control.metrics["latency_s"]
    assert latency.value == pytest.approx(np.mean(seconds))
    assert latency.p50 == pytest.approx(np.percentile(seconds, 50))
    assert latency.p95 == pytest.approx(np.percentile(seconds, 95))
    approval = control.metrics["approval_rate"]
    assert (approval.successes, approval.n) == (6, 8)  # of the runs a person decided, not of all 40
    assert control.metrics["completion_rate"].successes == 38  # two rejected
    assert control.statuses == {"done": 38, "rejected": 2}
    assert report.arms[1].metrics["approval_rate"].value is None  # nobody decided: no rate


def test_unfinished_runs_are_not_counted_and_the_report_says_so():
    rows = runs("control", 30, 15) + runs("treatment", 30, 15)
    rows.append(Row("p1", "treatment", "sha256:p1", 99.0, {"status": "paused", "seconds": 3.0}, None))
    rows.append(Row("r1", "control", "sha256:r1", 99.0, None, None))
    report = ab_report.build("x", EXP, rows)
    assert [a.finished for a in report.arms] == [30, 30] and [a.assigned for a in report.arms] == [31, 31]
    assert any("2 run(s) not finished yet" in n for n in report.notes)


def test_three_arms_each_against_the_control_with_holm_adjusted_primary_p_values():
    exp = EXP.model_copy(update={"arms": {"control": Arm(weight=1), "b": Arm(weight=1), "c": Arm(weight=1)}})
    report = ab_report.build("x", exp, runs("control", 60, 30) + runs("b", 60, 50) + runs("c", 60, 31))
    primary = {c.arm: c for c in report.comparisons if c.metric == "verifier_pass_rate"}
    assert set(primary) == {"b", "c"} and all(c.control == "control" for c in primary.values())
    assert all(c.p_adjusted is not None and c.p_adjusted >= c.p for c in primary.values())
    assert report.verdicts[0].startswith("b better than control") and "Holm-adjusted" in report.verdicts[0]
    assert "no significant difference" in report.verdicts[1]
    assert any("Holm" in n for n in report.notes)
    others = [c for c in report.comparisons if c.metric != "verifier_pass_rate"]
    assert all(c.p_adjusted is None for c in others)  # secondary metrics: unadjusted, said in a note
    assert any("primary metric: verifier pass rate" in n for n in report.notes)


def test_a_sample_ratio_mismatch_is_flagged():
    report = ab_report.build("x", EXP, runs("control", 100, 50) + runs("treatment", 40, 20))
    assert any(n.startswith("sample-ratio mismatch") for n in report.notes)
    balanced = ab_report.build("x", EXP, runs("control", 50, 25) + runs("treatment", 48, 20))
    assert not any(n.startswith("sample-ratio mismatch") for n in balanced.notes)


def test_runs_assigned_by_tenant_with_few_tenants_carry_a_warning():
    exp = EXP.model_copy(update={"unit": "tenant"})
    rows = [Row(r.run_id, r.arm, "sha256:one-tenant-" + r.arm, r.created, r.outcome, r.ended) for r in
            runs("control", 30, 15) + runs("treatment", 30, 15)]  # fmt: skip
    report = ab_report.build("x", exp, rows)
    assert any("not independent" in n and "control has 1" in n for n in report.notes)


def test_an_arm_no_longer_in_the_config_is_shown_not_compared():
    rows = runs("control", 30, 15) + runs("treatment", 30, 15) + runs("old", 5, 5)
    report = ab_report.build("x", EXP, rows)
    assert [a.arm for a in report.arms] == ["control", "treatment", "old"] and report.arms[2].weight is None
    assert {c.arm for c in report.comparisons} == {"treatment"}
    assert any("no longer in config/experiments.yaml" in n for n in report.notes)


def test_the_json_form_is_plain_json():
    report = ab_report.build("x", EXP, runs("control", 30, 15) + runs("treatment", 30, 20))
    data = json.loads(json.dumps(report.as_json()))
    assert data["experiment"] == "x" and data["primary_metric"] == "verifier_pass_rate"
    assert data["arms"][0]["metrics"]["verifier_pass_rate"]["n"] == 30
    assert {c["metric"] for c in data["comparisons"]} == set(ab_report.METRICS)


# -- the CLI -----------------------------------------------------------------------------------------

YAML = """experiments:
  routing-v2:
    enabled: true
    unit: tenant
    arms:
      control: {weight: 50, routing: static}
      treatment: {weight: 50, routing: by-complexity}
    min_runs_per_arm: 3
"""


def _store_rows(project: Path, rows: list[Row]) -> None:
    from crewkit.runtime.store import StateStore
    from crewkit.settings import load_settings

    store = StateStore.open(load_settings(project).home)
    with store.write() as conn:
        for r in rows:
            conn.execute(
                "INSERT INTO ab_assignments (experiment, run_id, arm, unit, key_hash, created, outcome, ended) "
                "VALUES ('routing-v2', ?, ?, 'tenant', ?, ?, ?, ?)",
                (
                    r.run_id,
                    r.arm,
                    r.key_hash,
                    time.time(),
                    json.dumps(r.outcome) if r.outcome else None,
                    r.ended,
                ),
            )


def test_cli_report_list_and_assign(project, capsys):
    (project / "config" / "experiments.yaml").write_text(YAML)
    _store_rows(
        project, runs("control", 4, 1) + runs("treatment", 4, 4) + [Row("z", "control", "k", 0, None, None)]
    )

    assert cli.main(["ab", "report", "routing-v2", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(a["arm"], a["finished"], a["assigned"]) for a in data["arms"]] == [
        ("control", 4, 5),
        ("treatment", 4, 4),
    ]
    assert data["enough_data"] and data["verdicts"][0].startswith("treatment")

    assert cli.main(["ab", "report", "routing-v2"]) == 0
    out = capsys.readouterr().out
    assert "verifier pass rate (primary)" in out and "25.0% (1/4)" in out and "100.0% (4/4)" in out
    assert data["verdicts"][0][:40] in out

    assert cli.main(["ab", "list", "--format", "json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["enabled"] and [(a["arm"], a["finished"], a["assigned"]) for a in listed["arms"]] == [
        ("control", 4, 5),
        ("treatment", 4, 4),
    ]
    assert listed["arms"][1]["changes"] == "routing by-complexity" and listed["arms"][0]["share"] == 0.5

    assert cli.main(["ab", "assign", "routing-v2", "acme"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tenant 'acme' -> arm '") and key_hash("routing-v2", "acme") in out


def test_cli_unknown_experiment_is_one_line_naming_the_experiments(project, capsys):
    (project / "config" / "experiments.yaml").write_text(YAML)
    assert cli.main(["ab", "report", "routing-v3"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: unknown experiment 'routing-v3'")
    assert "did you mean 'routing-v2'" in captured.err and "the experiments are routing-v2" in captured.err
    assert cli.main(["ab", "assign", "nope", "acme"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown experiment 'nope'")
