"""The comparison report: aggregates, profile weights and limits, per-role ranking, correlation."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from crewkit.evaluation import report
from crewkit.evaluation.compare import CaseResult, Comparison
from crewkit.evaluation.suite import Suite
from crewkit.settings import Settings

# Synthetic models: a cheap fast weak one, a strong slow dear one (within enterprise's limits,
# past startup's), and a middling one without tools.
MODELS: dict[str, dict[str, Any]] = {
    "fast-cheap": {
        "provider": "openai",
        "model": "x",
        "capabilities": ["text", "tools"],
        "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    },
    "strong-dear": {
        "provider": "openai",
        "model": "y",
        "capabilities": ["text", "tools", "vision"],
        "price": {"input_per_mtok": 30.0, "output_per_mtok": 60.0},
    },
    "plain": {"provider": "openai", "model": "z", "capabilities": ["text"]},
}


def with_models(settings: Settings, profile: str = "startup", **profiles: dict[str, Any]) -> Settings:
    from crewkit.settings import ModelEntry, Profile

    models = {**settings.models.models, **{k: ModelEntry.model_validate(v) for k, v in MODELS.items()}}
    cfg = settings.models.model_copy(update={"models": models})
    extra = {
        name: Profile.model_validate({"slo": {"p99_ms": 1000, "availability": 0.99, "error_rate": 0.01}} | p)
        for name, p in profiles.items()
    }
    prof = settings.profiles.model_copy(update={"profiles": {**settings.profiles.profiles, **extra}})
    return replace(settings, models=cfg, profiles=prof).with_profile(profile)


def row(model: str, case: str, kind: str = "reasoning", *, role: str | None = None, **kw: Any) -> CaseResult:
    fields: dict[str, Any] = {
        "model": model,
        "case_id": case,
        "kind": kind,
        "role": role or ("manager" if kind == "tool_use" else "reasoning"),
        "score": 1.0 if kw.get("passed", True) else 0.0,
        "passed": True,
        "latency_s": 0.1,
        "ttft_s": None,
        "input_tokens": 100,
        "output_tokens": 20,
        "cost_usd": 0.0,
        "error": None,
        "detail": {},
    }
    fields.update(kw)
    return CaseResult(**fields)


def suite(human: dict[str, float] | None = None) -> Suite:
    return Suite(name="synthetic", path=Path("config/suites/synthetic.yaml"), cases=[], human=human or {})


def comparison(
    results: list[CaseResult], human: dict[str, float] | None = None, profile: str = ""
) -> Comparison:
    models = list(dict.fromkeys(r.model for r in results))
    return Comparison(suite=suite(human), models=models, results=results, profile=profile)


def model_results(model: str, accuracy: float, latency_s: float, n: int = 10) -> list[CaseResult]:
    good = round(accuracy * n)
    out = [
        row(model, f"r{i}", passed=i < good, score=1.0 if i < good else 0.0, latency_s=latency_s)
        for i in range(n)
    ]
    out += [
        row(model, f"t{i}", "tool_use", passed=i < good, score=1.0 if i < good else 0.0, latency_s=latency_s)
        for i in range(n)
    ]
    return out


@pytest.fixture
def two(settings: Settings) -> list[CaseResult]:
    return model_results("fast-cheap", 0.3, 0.1) + model_results("strong-dear", 0.9, 0.8)


def test_startup_ranks_the_cheap_fast_weak_model_first_enterprise_the_strong_dear_one(settings, two):
    startup = report.build(comparison(two), with_models(settings, "startup"), votes=[])
    enterprise = report.build(comparison(two), with_models(settings, "enterprise"), votes=[])
    assert [x.model for x in startup.role("reasoning").ranking] == ["fast-cheap", "strong-dear"]
    assert [x.model for x in enterprise.role("reasoning").ranking] == ["strong-dear", "fast-cheap"]
    assert startup.profile == "startup" and enterprise.profile == "enterprise"
    assert not enterprise.model("strong-dear").breaches


def test_weights_alone_change_the_ranking_when_no_limit_is_broken(settings, two):
    loose = {"latency_ms": 1000, "price_ceiling_per_1k": 0.1}  # neither model breaks these
    s = with_models(
        settings,
        "cheap-first",
        **{
            "cheap-first": loose
            | {"eval": {"reasoning": 1, "tool_use": 1, "drift": 0, "latency": 5, "cost": 5}},
            "quality-first": loose
            | {"eval": {"reasoning": 5, "tool_use": 5, "drift": 0, "latency": 0, "cost": 0}},
        },
    )
    a = report.build(comparison(two), s, votes=[])
    b = report.build(comparison(two), s.with_profile("quality-first"), votes=[])
    assert all(not m.breaches for m in a.models)
    assert a.role("code").ranking[0].model == "fast-cheap"
    assert b.role("code").ranking[0].model == "strong-dear"
    # quality-only weights: the score is the mean case score, 0.9
    assert b.model("strong-dear").score == pytest.approx(0.9)


def test_score_normalises_latency_and_cost_against_the_profiles_limits(settings, two):
    rep = report.build(comparison(two), with_models(settings, "startup"), votes=[])
    m = rep.model("strong-dear")
    assert m.latency_ms["p95"] == pytest.approx(800)
    assert m.normalised["latency"] == pytest.approx(200 / (200 + 800))
    assert m.price_per_1k == pytest.approx(0.06)
    assert m.normalised["cost"] == pytest.approx(0.01 / (0.01 + 0.06))
    w = {"reasoning": 1.0, "tool_use": 1.0, "latency": 2.0, "cost": 2.0}  # drift: no case, left out
    expected = (0.9 * 1 + 0.9 * 1 + 2 * 0.2 + 2 * (0.01 / 0.07)) / sum(w.values())
    assert m.score == pytest.approx(expected)
    assert any("no drift recall case" in n for n in rep.notes)


def test_limits_broken_are_named_with_their_figures_and_rank_last(settings):
    # mid-size weighs all metrics equally: strong-dear scores higher, but breaks both limits
    results = model_results("fast-cheap", 0.1, 0.15) + model_results("strong-dear", 1.0, 0.6)
    rep = report.build(comparison(results), with_models(settings, "mid-size"), votes=[])
    breaches = {b.limit: b for b in rep.model("strong-dear").breaches}
    assert breaches["latency"].value == pytest.approx(600) and breaches["latency"].max == 500
    assert breaches["price"].value == pytest.approx(0.06) and breaches["price"].max == 0.05
    assert rep.model("fast-cheap").breaches == ()
    ranking = rep.role("reasoning").ranking
    assert [x.model for x in ranking] == ["fast-cheap", "strong-dear"]
    assert ranking[1].score > ranking[0].score  # ranked after despite the higher score
    md = rep.markdown()
    assert "p95 latency 600 ms > 500 ms; price $0.0600/1k > $0.0500/1k" in md
    assert "Pick: **fast-cheap**" in md and "- reasoning: **fast-cheap** (score" in md
    assert "p95 latency per call <= 500 ms" in md and "$0.0500 per 1k tokens" in md


def test_a_price_at_the_ceiling_is_within_it(settings):
    from crewkit.settings import Price

    s = with_models(settings, "startup")
    at = s.models.models["fast-cheap"].model_copy(
        update={"price": Price(input_per_mtok=10.0, output_per_mtok=10.0)}
    )
    s = replace(s, models=s.models.model_copy(update={"models": {**s.models.models, "fast-cheap": at}}))
    rep = report.build(comparison(model_results("fast-cheap", 0.5, 0.2)), s, votes=[])
    assert rep.model("fast-cheap").breaches == ()  # 0.01 is not above 0.01; 200 ms is not above 200


def test_percentiles_interpolate_like_numpy():
    import numpy as np

    rng = random.Random(7)
    for n in (1, 2, 5, 37, 200):
        xs = [rng.uniform(0, 5) for _ in range(n)]
        for q in (50, 95, 99):
            assert report.percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))
    assert report.percentile([], 50) is None
    assert report.percentile([10, 20, 30, 40], 50) == 25


def test_latency_is_over_calls_without_errors_and_repeats_count_each_call(settings):
    results = [
        row("fast-cheap", "a", latency_s=0.1, detail={"latency_samples_s": [0.1, 0.3, 0.5]}),
        row("fast-cheap", "b", latency_s=0.2, ttft_s=0.05),
        row("fast-cheap", "c", latency_s=30.0, error="timeout", passed=False, score=0.0),
    ]
    rep = report.build(comparison(results), with_models(settings), votes=[])
    m = rep.model("fast-cheap")
    assert m.latency_ms["p50"] == pytest.approx(250)  # of 100, 200, 300, 500
    assert m.latency_ms["p99"] == pytest.approx(
        float(__import__("numpy").percentile([100, 200, 300, 500], 99))
    )
    assert m.ttft_ms_p50 == pytest.approx(50)
    assert m.errors == 1 and m.quality["reasoning"] == pytest.approx(2 / 3)
    assert m.input_tokens == 300 and m.output_tokens == 60


def test_ttft_is_na_where_the_provider_does_not_stream(settings, two):
    rep = report.build(comparison(two), with_models(settings), votes=[])
    assert rep.model("fast-cheap").ttft_ms_p50 is None
    assert "n/a" in rep.markdown().split("## Models")[1].split("## Ranking")[0]


def test_cost_per_1k_is_from_the_tokens_and_what_they_cost(settings):
    results = [row("fast-cheap", "a", input_tokens=1500, output_tokens=500, cost_usd=0.004)]
    m = report.build(comparison(results), with_models(settings), votes=[]).model("fast-cheap")
    assert m.cost_usd == pytest.approx(0.004) and m.cost_per_1k_actual == pytest.approx(0.002)


def test_skipped_cases_count_nowhere_but_skipped(settings):
    results = [
        row("plain", "r1"),
        row("plain", "t1", "tool_use", passed=False, score=0.0, detail={"skipped": "no tools"}),
    ]
    m = report.build(comparison(results), with_models(settings), votes=[]).model("plain")
    assert m.skipped == 1 and m.cases == 1 and m.quality["tool_use"] is None
    assert m.quality["reasoning"] == 1.0


def test_a_model_that_ran_no_case_gets_no_score_and_ranks_last(settings):
    results = model_results("strong-dear", 0.5, 0.1, n=2)
    results += [row("plain", "t1", "tool_use", passed=False, score=0.0, detail={"skipped": "no tools"})]
    rep = report.build(comparison(results), with_models(settings), votes=[])
    assert rep.model("plain").score is None  # free and never slow, but it answered nothing
    # after strong-dear, which breaks startup's price limit
    assert [x.model for x in rep.role("reasoning").ranking] == ["strong-dear", "plain"]
    assert "| 2 | plain | n/a | n/a | none |" in rep.markdown()


def test_a_model_lacking_the_roles_capability_is_not_eligible(settings, two):
    results = two + model_results("plain", 1.0, 0.05)
    rep = report.build(comparison(results), with_models(settings), votes=[])
    vision = rep.role("vision")
    assert [x.model for x in vision.ranking] == ["strong-dear"]
    assert ("fast-cheap", "vision") in vision.not_eligible and ("plain", "vision") in vision.not_eligible
    assert ("plain", "tools") in rep.role("manager").not_eligible
    assert "embedding" not in [r.role for r in rep.roles]
    assert "Not eligible: fast-cheap (lacks vision), plain (lacks vision)." in rep.markdown()
    alone = report.build(comparison(model_results("plain", 1.0, 0.05)), with_models(settings), votes=[])
    assert alone.role("vision").ranking == () and "- vision: no eligible model" in alone.markdown()


def test_each_role_ranks_on_its_own_cases_and_a_role_without_cases_on_all(settings):
    results = [
        row("fast-cheap", "r1", role="reasoning"),
        row("fast-cheap", "c1", role="code", passed=False, score=0.0),
        row("strong-dear", "r1", role="reasoning", passed=False, score=0.0),
        row("strong-dear", "c1", role="code"),
    ]
    loose = {
        "latency_ms": 10_000,
        "price_ceiling_per_1k": 1.0,
        "eval": {"reasoning": 1, "latency": 0, "cost": 0},
    }
    rep = report.build(comparison(results), with_models(settings, "q", q=loose), votes=[])
    assert rep.role("reasoning").ranking[0].model == "fast-cheap" and rep.role("reasoning").own_cases
    assert rep.role("code").ranking[0].model == "strong-dear" and rep.role("code").cases == 1
    manager = rep.role("manager")
    assert not manager.own_cases and manager.cases == 2
    assert "### manager (needs tools; no cases of its own: ranked on all 2 cases)" in rep.markdown()


def test_drift_grid_shows_where_recall_fails(settings):
    results = [
        row("fast-cheap", f"d{n}-{d}", "drift", passed=ok, score=float(ok), detail={"length": n, "depth": d})
        for n, d, ok in [(512, 0.0, True), (512, 1.0, True), (4096, 0.0, True), (4096, 1.0, False)]
    ]
    results.append(
        row(
            "fast-cheap",
            "d9",
            "drift",
            passed=False,
            score=0.0,
            detail={"length": 9000, "depth": 0.5, "skipped": "x"},
        )
    )
    rep = report.build(comparison(results), with_models(settings), votes=[])
    m = rep.model("fast-cheap")
    assert m.quality["drift"] == pytest.approx(0.75)
    grid = {(c.length, c.depth): (c.recalled, c.cases, c.skipped) for c in m.drift_grid}
    assert grid[(4096, 1.0)] == (0, 1, 0) and grid[(9000, 0.5)] == (0, 0, 1)
    md = rep.markdown()
    assert "Fails at: 4096 tok at depth 1." in md
    assert "| 4096 tok | 1/1 | - | 0/1 ✗ |" in md
    assert "Not run (past the model's context): 9000 tok." in md


def test_correlation_with_human_ratings_of_three_models(settings, two):
    results = two + model_results("plain", 0.6, 0.3)
    human = {"fast-cheap": 2.0, "plain": 3.0, "strong-dear": 4.5, "unrun": 1.0}
    rep = report.build(comparison(results, human), with_models(settings, "enterprise"), votes=[])
    c, q = rep.correlations
    assert c.source == "human" and c.score == "overall" and q.score == "quality"
    assert c.n == 3 and c.models == ("fast-cheap", "plain", "strong-dear")
    assert c.spearman == pytest.approx(1.0) and c.pearson is not None and 0.5 < c.pearson <= 1.0
    assert q.spearman == pytest.approx(1.0)
    assert "| human | overall | 3 | 1.00 (0.000) |" in rep.markdown()
    assert "Spearman 1.00 meets the brief's 0.85" in rep.markdown()
    # startup weighs speed: the slow strong model falls, and the overall score disagrees with people
    startup = report.build(comparison(results, human), with_models(settings, "startup"), votes=[])
    assert startup.correlations[0].spearman < 0.85 and "is below the brief's 0.85" in startup.markdown()


def test_too_few_rated_models_gives_no_figure(settings, two):
    rep = report.build(
        comparison(two, {"fast-cheap": 1.0, "strong-dear": 5.0}), with_models(settings), votes=[]
    )
    (c,) = rep.correlations
    assert c.spearman is None and c.n == 2
    assert "not enough models rated by people (n=2)" in rep.markdown()
    none = report.build(comparison(two), with_models(settings), votes=[])
    assert "not enough models rated by people (n=0)" in none.markdown()


def test_correlation_with_arena_votes(settings, two):
    from crewkit.evaluation.votes import Battle

    results = two + model_results("plain", 0.6, 0.3)
    wins = (
        [("strong-dear", "plain")] * 8 + [("plain", "fast-cheap")] * 8 + [("strong-dear", "fast-cheap")] * 8
    )
    wins += [("plain", "strong-dear"), ("fast-cheap", "plain"), ("fast-cheap", "strong-dear")]
    votes = [Battle(model_a=a, model_b=b, winner="model_a", tstamp=float(i)) for i, (a, b) in enumerate(wins)]
    rep = report.build(comparison(results), with_models(settings, "enterprise"), votes=votes)
    c = rep.correlations[0]
    assert c.source == "arena" and c.n == 3 and c.spearman == pytest.approx(1.0)


def test_arena_votes_are_read_from_state_db_when_none_are_given(settings, two):
    from crewkit.runtime.store import StateStore

    results = two + model_results("plain", 0.6, 0.3)
    store = StateStore.open(settings.home)
    order = [("strong-dear", "plain"), ("plain", "fast-cheap"), ("strong-dear", "fast-cheap")] * 3
    order += [("fast-cheap", "strong-dear")]
    with store.write() as conn:
        for i, (a, b) in enumerate(order):
            conn.execute(
                "INSERT INTO arena_battles (id, tstamp, prompt, model_a, model_b, winner, voted) "
                "VALUES (?, ?, 'p', ?, ?, 'model_a', ?)",
                (f"b{i}", float(i), a, b, float(i)),
            )
        conn.execute(  # pending: no vote yet, not counted
            "INSERT INTO arena_battles (id, tstamp, prompt, model_a, model_b) VALUES ('p1', 99, 'p', 'plain', 'x')"
        )
    store.close()
    rep = report.build(comparison(results), with_models(settings, "enterprise"))
    c = rep.correlations[0]
    assert c.source == "arena" and c.n == 3


def test_results_json_has_every_case_and_the_aggregates(settings, two, tmp_path):
    rep = report.build(comparison(two), with_models(settings, "startup"), votes=[])
    data = json.loads(json.dumps(rep.to_json()))
    assert set(data) == {
        "schema",
        "generated",
        "suite",
        "profile",
        "models",
        "roles",
        "correlation",
        "notes",
        "cases",
    }
    assert data["profile"]["name"] == "startup" and data["profile"]["latency_ms"] == 200
    assert data["profile"]["weights"]["cost"] == 2.0
    assert len(data["cases"]) == len(two) and set(data["cases"][0]) >= {"model", "case_id", "kind", "score"}
    m = {x["model"]: x for x in data["models"]}["strong-dear"]
    assert set(m["latency_ms"]) == {"p50", "p95", "p99"} and m["within_limits"] is False
    assert {b["limit"] for b in m["limits_broken"]} == {"latency", "price"}
    reasoning = {r["role"]: r for r in data["roles"]}["reasoning"]
    assert reasoning["ranking"][0] == {
        "rank": 1,
        "model": "fast-cheap",
        "score": pytest.approx(rep.role("reasoning").ranking[0].score),
        "quality": pytest.approx(0.3),
        "within_limits": True,
        "limits_broken": [],
    }


def test_the_comparisons_profile_is_the_one_reported(settings, two):
    rep = report.build(comparison(two, profile="enterprise"), with_models(settings, "startup"), votes=[])
    assert rep.profile == "enterprise" and rep.latency_ms == 1000


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("{reasoning: 0, tool_use: 0, drift: 0, latency: 0, cost: 0}", "eval weights are all zero"),
        ("{reasoning: -1}", "'profiles.mid-size.eval.reasoning': Input should be greater than or equal to 0"),
        ('{cost: "2"}', "'profiles.mid-size.eval.cost'"),
        ("{speed: 2}", "speed"),
    ],
)
def test_bad_eval_weights_are_one_line_naming_the_file_and_line(project, weights, message):
    from crewkit.errors import ConfigError
    from crewkit.settings import load_settings

    path = project / "config" / "profiles.yaml"
    text = path.read_text()
    line = "    eval: {reasoning: 1.0, tool_use: 1.0, drift: 1.0, latency: 1.0, cost: 1.0}\n"
    assert line in text
    path.write_text(text.replace(line, f"    eval: {weights}\n"))
    lineno = path.read_text().splitlines().index(f"    eval: {weights}") + 1
    with pytest.raises(ConfigError) as err:
        load_settings(project)
    assert str(err.value).startswith(f"config/profiles.yaml:{lineno}:") and message in str(err.value)
