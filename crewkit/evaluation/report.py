"""The model comparison's report: per-model aggregates, the profile's weighted score and limits,
a ranking per role, and how the automatic scores agree with people's.

`build(comparison, settings)` turns the case rows of a `crewkit.evaluation.compare.Comparison`
into a frozen `Report`; `write(report, out_dir)` puts it on disk as `results.json`, `report.md`,
`report.html` and two PNG plots (`crewkit.evaluation.plots`), each file written atomically.

How a score is made (the profile's `eval:` weights, `crewkit.settings.EvalWeights`):
- quality metrics are the mean case score (0..1) per kind: reasoning accuracy, tool-use
  correctness, long-context recall;
- latency is the model's p95 latency per call, cost its price per 1k tokens (the dearer of input
  and output, the figure the profile's ceiling reads); each becomes `limit / (limit + value)`:
  1 at zero, 0.5 at the profile's limit, 1/3 at twice it, never 0, so models past the limit
  still rank among themselves;
- the score is the weighted mean of the metrics measured (a kind the suite has no case of drops
  out and the other weights are rescaled).
Hard limits: p95 latency per call above `latency_ms`, price per 1k above `price_ceiling_per_1k`.
A model that breaks one is ranked after every model that breaks none, and the report names the
limit with both figures. A model that ran no quality case (all skipped) has no score and comes last.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crewkit.errors import CrewkitError
from crewkit.settings import ROLE_NEEDS, price_per_1k

if TYPE_CHECKING:
    from crewkit.evaluation.compare import CaseResult, Comparison
    from crewkit.settings import ModelEntry, Settings

SCHEMA = 1  # results.json's "schema": raised when a key changes meaning
QUALITY = ("reasoning", "tool_use", "drift")
METRICS = (*QUALITY, "latency", "cost")
LABELS = {
    "reasoning": "reasoning",
    "tool_use": "tool use",
    "drift": "drift recall",
    "latency": "latency",
    "cost": "cost",
}
BRIEF_CORRELATION = 0.85  # the product brief's figure for managed evaluation services
MIN_RATED = 3  # fewer models rated by people than this: no correlation is reported
FILES = ("results.json", "report.md", "report.html", "quality_cost.png", "quality_latency.png")


@dataclass(frozen=True)
class Breach:
    """One hard limit of the profile a model breaks, with both figures."""

    limit: str  # "latency" (p95 per call, ms) | "price" (USD per 1k tokens)
    value: float
    max: float

    def text(self) -> str:
        if self.limit == "latency":
            return f"p95 latency {self.value:.0f} ms > {self.max:.0f} ms"
        return f"price ${self.value:.4f}/1k > ${self.max:.4f}/1k"


@dataclass(frozen=True)
class DriftCell:
    """Long-context recall at one context length and fact depth (0 = start, 1 = end)."""

    length: int
    depth: float
    recalled: int
    cases: int  # run (skipped ones apart)
    skipped: int = 0  # longer than the model's context


@dataclass(frozen=True)
class ModelSummary:
    """Everything the report says about one model, over all of its cases."""

    model: str
    cases: int  # run (skipped ones apart)
    passed: int
    skipped: int
    quality: dict[str, float | None]  # reasoning | tool_use | drift -> mean score (None: no case)
    counts: dict[str, int]  # cases per quality metric
    latency_ms: dict[str, float | None]  # p50 | p95 | p99 over calls without an error
    ttft_ms_p50: float | None  # None: the provider does not stream
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cost_per_1k_actual: float | None  # what the suite's tokens cost, per 1k tokens
    price_per_1k: float  # list price per 1k tokens (the dearer of input and output)
    errors: int
    capabilities: tuple[str, ...] | None  # None: not a model of settings.models
    normalised: dict[str, float | None]  # each metric of METRICS on 0..1
    quality_score: float | None  # the weighted mean of the quality metrics only
    score: float | None  # the profile's weighted score over all metrics
    breaches: tuple[Breach, ...]
    drift_grid: tuple[DriftCell, ...]


@dataclass(frozen=True)
class Ranked:
    rank: int
    model: str
    score: float | None
    quality_score: float | None
    breaches: tuple[Breach, ...]


@dataclass(frozen=True)
class RoleRanking:
    """Models ranked for one role: first those within every limit, then those breaking one."""

    role: str
    needs: str
    own_cases: bool  # False: the suite has no case for this role, all cases were used
    cases: int
    ranking: tuple[Ranked, ...]
    not_eligible: tuple[tuple[str, str], ...]  # (model, the capability it lacks)


@dataclass(frozen=True)
class Correlation:
    """The automatic overall score against people's scores of the same models."""

    source: str  # "human" (the suite's human: ratings) | "arena" (Bradley-Terry ratings of the votes)
    n: int
    models: tuple[str, ...]
    score: str = "overall"  # the automatic score compared: "overall" (profile-weighted) | "quality"
    spearman: float | None = None
    spearman_p: float | None = None
    pearson: float | None = None
    pearson_p: float | None = None
    note: str = ""  # why there is no figure, when there is none

    def verdict(self) -> str:
        if self.spearman is None:
            return self.note
        side = "meets" if self.spearman >= BRIEF_CORRELATION else "is below"
        return f"Spearman {self.spearman:.2f} {side} the brief's {BRIEF_CORRELATION}"


@dataclass(frozen=True)
class Report:
    suite: str
    suite_path: str
    suite_cases: int
    profile: str
    latency_ms: float
    price_ceiling_per_1k: float
    weights: dict[str, float]
    models: tuple[ModelSummary, ...]
    roles: tuple[RoleRanking, ...]
    correlations: tuple[Correlation, ...]
    cases: tuple[dict[str, Any], ...]
    generated: str
    notes: tuple[str, ...] = ()

    def model(self, name: str) -> ModelSummary:
        return next(m for m in self.models if m.model == name)

    def role(self, name: str) -> RoleRanking:
        return next(r for r in self.roles if r.role == name)

    def to_json(self) -> dict[str, Any]:
        """results.json: the documented keys of docs/evaluation.md ("JSON results")."""
        return {
            "schema": SCHEMA,
            "generated": self.generated,
            "suite": {"name": self.suite, "path": self.suite_path, "cases": self.suite_cases},
            "profile": {
                "name": self.profile,
                "latency_ms": self.latency_ms,
                "price_ceiling_per_1k": self.price_ceiling_per_1k,
                "weights": self.weights,
            },
            "models": [_model_json(m) for m in self.models],
            "roles": [
                {
                    "role": r.role,
                    "needs": r.needs,
                    "own_cases": r.own_cases,
                    "cases": r.cases,
                    "ranking": [
                        {
                            "rank": x.rank,
                            "model": x.model,
                            "score": x.score,
                            "quality": x.quality_score,
                            "within_limits": not x.breaches,
                            "limits_broken": [asdict(b) for b in x.breaches],
                        }
                        for x in r.ranking
                    ],
                    "not_eligible": [{"model": m, "missing": c} for m, c in r.not_eligible],
                }
                for r in self.roles
            ],
            "correlation": [asdict(c) | {"models": list(c.models)} for c in self.correlations],
            "notes": list(self.notes),
            "cases": list(self.cases),
        }

    def markdown(self) -> str:
        return _markdown(self)


# --- aggregation ---------------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between ranks (numpy's default);
    None for no values."""
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def closeness(value: float, limit: float) -> float:
    """A latency or price on 0..1 against the profile's limit: 1 at zero, 0.5 at the limit."""
    return limit / (limit + max(value, 0.0))


def weighted(metrics: dict[str, float | None], weights: dict[str, float]) -> float | None:
    """The weighted mean of the metrics that were measured (None: no weighted metric was)."""
    used = {k: w for k, w in weights.items() if w > 0 and metrics.get(k) is not None}
    total = sum(used.values())
    if not total:
        return None
    return sum(metrics[k] * w for k, w in used.items()) / total  # type: ignore[operator]


def _score(metrics: dict[str, float | None], weights: dict[str, float]) -> float | None:
    """The profile's score; None when no quality metric was measured (every case skipped or none
    for the role): price and speed alone do not rank a model that answered nothing."""
    if all(metrics.get(k) is None for k in QUALITY):
        return None
    return weighted(metrics, weights)


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def skipped(result: CaseResult) -> bool:
    """A row the runner did not run (a drift case past the model's context, a tool-use case for a
    model without tools): left out of every figure, counted apart."""
    return bool(result.detail.get("skipped"))


def _quality(results: Sequence[CaseResult]) -> tuple[dict[str, float | None], dict[str, int]]:
    scores: dict[str, list[float]] = {k: [] for k in QUALITY}
    for r in results:
        if r.kind in scores and not skipped(r):
            scores[r.kind].append(float(r.score))
    return {k: _mean(v) for k, v in scores.items()}, {k: len(v) for k, v in scores.items()}


def _drift_grid(results: Sequence[CaseResult]) -> tuple[DriftCell, ...]:
    cells: dict[tuple[int, float], list[bool | None]] = {}
    for r in results:
        if r.kind != "drift":
            continue
        length, depth = r.detail.get("length"), r.detail.get("depth")
        if length is None or depth is None:
            continue
        cells.setdefault((int(length), float(depth)), []).append(None if skipped(r) else bool(r.passed))
    return tuple(
        DriftCell(length, depth, sum(1 for x in v if x), sum(1 for x in v if x is not None), v.count(None))
        for (length, depth), v in sorted(cells.items())
    )


def _summarise(
    model: str,
    results: Sequence[CaseResult],
    entry: ModelEntry | None,
    settings: Settings,
    weights: dict[str, float],
) -> ModelSummary:
    profile = settings.profile
    ok = [r for r in results if r.error is None and not skipped(r)]
    lat = [s * 1000 for r in ok for s in r.detail.get("latency_samples_s") or [r.latency_s]]
    ttft = [r.ttft_s * 1000 for r in ok if r.ttft_s is not None]
    tokens_in = sum(r.input_tokens for r in results)
    tokens_out = sum(r.output_tokens for r in results)
    cost = sum(r.cost_usd for r in results)
    actual = cost / (tokens_in + tokens_out) * 1000 if tokens_in + tokens_out else None
    # A model outside settings.models (a caller's own) is priced from what its tokens cost.
    price = price_per_1k(entry) if entry is not None else (actual or 0.0)
    p95 = percentile(lat, 95)
    quality, counts = _quality(results)
    normalised = dict(quality)
    normalised["latency"] = closeness(p95, profile.latency_ms) if p95 is not None else None
    normalised["cost"] = closeness(price, profile.price_ceiling_per_1k)
    breaches = []
    if p95 is not None and p95 > profile.latency_ms + 1e-9:  # at the limit is within it
        breaches.append(Breach("latency", p95, profile.latency_ms))
    if price > profile.price_ceiling_per_1k + 1e-12:
        breaches.append(Breach("price", price, profile.price_ceiling_per_1k))
    return ModelSummary(
        model=model,
        cases=sum(1 for r in results if not skipped(r)),
        passed=sum(1 for r in results if r.passed and not skipped(r)),
        skipped=sum(1 for r in results if skipped(r)),
        quality=quality,
        counts=counts,
        latency_ms={"p50": percentile(lat, 50), "p95": p95, "p99": percentile(lat, 99)},
        ttft_ms_p50=percentile(ttft, 50),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost_usd=cost,
        cost_per_1k_actual=actual,
        price_per_1k=price,
        errors=sum(1 for r in results if r.error is not None),
        capabilities=tuple(entry.capabilities) if entry is not None else None,
        normalised=normalised,
        quality_score=weighted(quality, {k: weights[k] for k in QUALITY}),
        score=_score(normalised, weights),
        breaches=tuple(breaches),
        drift_grid=_drift_grid(results),
    )


def _rank_key(score: float | None, breaches: tuple[Breach, ...], model: str) -> tuple[Any, ...]:
    return (score is None, bool(breaches), -(score or 0.0), model)


def _role_ranking(
    role: str,
    results: Sequence[CaseResult],
    summaries: dict[str, ModelSummary],
    weights: dict[str, float],
) -> RoleRanking:
    needs = ROLE_NEEDS.get(role, "text")
    own = [r for r in results if r.role == role]
    cases = own or list(results)
    rows, not_eligible = [], []
    for name, s in summaries.items():
        if s.capabilities is not None and needs not in s.capabilities:
            not_eligible.append((name, needs))
            continue
        quality, _ = _quality([r for r in cases if r.model == name])
        metrics = {**quality, "latency": s.normalised["latency"], "cost": s.normalised["cost"]}
        q = weighted(quality, {k: weights[k] for k in QUALITY})
        rows.append((_score(metrics, weights), q, s.breaches, name))
    rows.sort(key=lambda x: _rank_key(x[0], x[2], x[3]))
    ranking = tuple(Ranked(i + 1, name, score, q, b) for i, (score, q, b, name) in enumerate(rows))
    return RoleRanking(
        role=role,
        needs=needs,
        own_cases=bool(own),
        cases=len({r.case_id for r in cases}),
        ranking=ranking,
        not_eligible=tuple(sorted(not_eligible)),
    )


# --- agreement with people -----------------------------------------------------------------


def correlate(
    source: str, auto: dict[str, float | None], people: dict[str, float], *, score: str = "overall"
) -> Correlation:
    """Spearman and Pearson between the automatic scores and people's, over the models both have."""
    common = tuple(sorted(m for m, v in auto.items() if v is not None and m in people))
    if len(common) < MIN_RATED:
        note = f"not enough models rated by people (n={len(common)})"
        return Correlation(source, len(common), common, score, note=note)
    x = [float(auto[m]) for m in common]  # type: ignore[arg-type]
    y = [float(people[m]) for m in common]
    if len(set(x)) == 1 or len(set(y)) == 1:
        which = "automatic" if len(set(x)) == 1 else "people's"
        return Correlation(
            source, len(common), common, score, note=f"undefined: the {which} scores are all equal"
        )
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = stats.spearmanr(x, y)
        r = stats.pearsonr(x, y)
    return Correlation(
        source,
        len(common),
        common,
        score,
        spearman=float(rho.statistic),
        spearman_p=float(rho.pvalue),
        pearson=float(r.statistic),
        pearson_p=float(r.pvalue),
    )


def _stored_battles(settings: Settings) -> list[Any]:
    """Voted battles of state.db's arena_battles (none when there is no state.db yet)."""
    from crewkit.evaluation import arena
    from crewkit.runtime.store import DB_NAME, StateStore, database_url

    if database_url() is None and not (settings.home / DB_NAME).exists():
        return []
    store = StateStore.open(settings.home)
    try:
        return arena.voted(store)
    finally:
        store.close()


def _arena(settings: Settings, votes: Sequence[Any] | None) -> tuple[dict[str, float], str | None]:
    """Bradley-Terry ratings of the votes (given, else state.db's); a note when they cannot be had."""
    try:
        battles = list(votes) if votes is not None else _stored_battles(settings)
        if not battles:
            return {}, None
        from crewkit.evaluation import ratings

        board = ratings.leaderboard(battles, method="bt", bootstrap=0)
    except (CrewkitError, ImportError) as exc:
        return {}, f"arena ratings not used: {exc}"
    return {r.model: r.rating for r in board}, None


# --- build ---------------------------------------------------------------------------------


def _row(result: Any) -> dict[str, Any]:
    row = asdict(result) if is_dataclass(result) else dict(vars(result))
    return json.loads(json.dumps(row, default=str))


def build(comparison: Comparison, settings: Settings, *, votes: Sequence[Any] | None = None) -> Report:
    """The report of a comparison under its profile (`comparison.profile`, else the active one).

    `votes`: arena battles (`crewkit.evaluation.votes.Battle`) to correlate with; None reads the
    voted battles of state.db's `arena_battles`."""
    if getattr(comparison, "profile", None):
        settings = settings.with_profile(comparison.profile)
    profile = settings.profile
    weights = profile.eval.model_dump()
    models = list(dict.fromkeys(comparison.models))
    by_model: dict[str, list[CaseResult]] = {m: [] for m in models}
    for r in comparison.results:
        by_model.setdefault(r.model, []).append(r)
    summaries = {
        m: _summarise(m, rs, settings.models.models.get(m), settings, weights) for m, rs in by_model.items()
    }
    roles = [r for r in settings.models.roles if ROLE_NEEDS.get(r) != "embedding"]
    rankings = tuple(_role_ranking(r, comparison.results, summaries, weights) for r in roles)

    notes = []
    unmeasured = [LABELS[k] for k in QUALITY if not any(s.counts[k] for s in summaries.values())]
    if unmeasured:
        notes.append(f"the suite has no {', '.join(unmeasured)} case; its weight is left out")
    unknown = [m for m, s in summaries.items() if s.capabilities is None]
    if unknown:
        notes.append(f"not in config/models.yaml, capabilities unknown: {', '.join(unknown)}")

    def agree(source: str, people: dict[str, float]) -> list[Correlation]:
        overall = correlate(source, {m: s.score for m, s in summaries.items()}, people)
        if overall.n < MIN_RATED:
            return [overall]
        quality = {m: s.quality_score for m, s in summaries.items()}
        return [overall, correlate(source, quality, people, score="quality")]

    correlations = []
    suite = comparison.suite
    human = getattr(suite, "human", None)
    if human:
        correlations += agree("human", {k: float(v) for k, v in human.items()})
    arena, arena_note = _arena(settings, votes)
    if arena:
        correlations += agree("arena", arena)
    elif arena_note:
        notes.append(arena_note)
    if not correlations:
        correlations.append(
            Correlation(
                "none",
                0,
                (),
                note="not enough models rated by people (n=0): no human ratings, no arena votes",
            )
        )

    return Report(
        suite=suite.name,
        suite_path=_shown(getattr(suite, "path", None), settings.project_dir),
        suite_cases=len(getattr(suite, "cases", ()) or ()),
        profile=settings.profile_name,
        latency_ms=profile.latency_ms,
        price_ceiling_per_1k=profile.price_ceiling_per_1k,
        weights=weights,
        models=tuple(summaries.values()),
        roles=rankings,
        correlations=tuple(correlations),
        cases=tuple(_row(r) for r in comparison.results),
        generated=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        notes=tuple(notes),
    )


def _shown(path: Path | str | None, project_dir: Path) -> str:
    """A suite's path as the user would type it: relative to the project when inside it."""
    if not path:
        return ""
    try:
        return str(Path(path).resolve().relative_to(project_dir.resolve()))
    except ValueError:
        return str(path)


def _model_json(m: ModelSummary) -> dict[str, Any]:
    return {
        "model": m.model,
        "cases": m.cases,
        "passed": m.passed,
        "skipped": m.skipped,
        "score": m.score,
        "quality": m.quality_score,
        "reasoning": m.quality["reasoning"],
        "tool_use": m.quality["tool_use"],
        "drift": m.quality["drift"],
        "case_counts": m.counts,
        "latency_ms": m.latency_ms,
        "ttft_ms_p50": m.ttft_ms_p50,
        "input_tokens": m.input_tokens,
        "output_tokens": m.output_tokens,
        "cost_usd": m.cost_usd,
        "cost_per_1k_actual": m.cost_per_1k_actual,
        "price_per_1k": m.price_per_1k,
        "errors": m.errors,
        "capabilities": list(m.capabilities) if m.capabilities is not None else None,
        "normalised": m.normalised,
        "within_limits": not m.breaches,
        "limits_broken": [asdict(b) for b in m.breaches],
        "drift_grid": [asdict(c) for c in m.drift_grid],
    }


# --- markdown ------------------------------------------------------------------------------


def _f(value: float | None, fmt: str = ".2f", none: str = "n/a") -> str:
    return none if value is None else format(value, fmt)


def _ms(value: float | None) -> str:
    return _f(value, ".0f")


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:.4f}"


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _limits(breaches: Sequence[Breach]) -> str:
    return "; ".join(b.text() for b in breaches) or "none"


def _weights_text(weights: dict[str, float]) -> str:
    return ", ".join(f"{LABELS[k]} {weights[k]:g}" for k in METRICS)


def _cell(c: DriftCell | None) -> str:
    if c is None:
        return "-"
    if not c.cases:
        return "skipped"
    return f"{c.recalled}/{c.cases}" + (" ✗" if c.recalled < c.cases else "")


def _markdown(rep: Report) -> str:
    out = [
        f"# Model comparison: {rep.suite}",
        "",
        f"- Suite: `{rep.suite}` ({rep.suite_path or 'built in'}, {_n(rep.suite_cases, 'case')})",
        f"- Profile: **{rep.profile}**, limits: p95 latency per call <= {rep.latency_ms:g} ms, "
        f"price <= ${rep.price_ceiling_per_1k:.4f} per 1k tokens",
        f"- Weights: {_weights_text(rep.weights)}",
        f"- Generated: {rep.generated}",
        "",
        "## Summary",
        "",
    ]
    for r in rep.roles:
        within = [x for x in r.ranking if not x.breaches]
        if within:
            pick = f"**{within[0].model}** (score {_f(within[0].score)})"
        elif r.ranking:
            best = r.ranking[0]
            pick = f"no model within the limits; best: {best.model} ({_limits(best.breaches)})"
        else:
            pick = "no eligible model"
        out.append(f"- {r.role}: {pick}")
    out += ["", "## Models", ""]
    out += _table(
        [
            "model", "score", "quality", "reasoning", "tool use", "drift recall", "p50 ms", "p95 ms",
            "p99 ms", "TTFT p50 ms", "tokens in/out", "cost", "cost/1k", "price/1k", "errors", "skipped",
            "limits broken",
        ],
        [
            [
                m.model, _f(m.score), _f(m.quality_score), _f(m.quality["reasoning"]), _f(m.quality["tool_use"]),
                _f(m.quality["drift"]), _ms(m.latency_ms["p50"]), _ms(m.latency_ms["p95"]),
                _ms(m.latency_ms["p99"]), _ms(m.ttft_ms_p50), f"{m.input_tokens}/{m.output_tokens}",
                _usd(m.cost_usd), _usd(m.cost_per_1k_actual), _usd(m.price_per_1k), str(m.errors),
                str(m.skipped), _limits(m.breaches),
            ]
            for m in sorted(rep.models, key=lambda m: _rank_key(m.score, m.breaches, m.model))
        ],
    )  # fmt: skip
    out += ["", f"## Ranking per role (profile {rep.profile})", ""]
    for r in rep.roles:
        own = (
            f"{_n(r.cases, 'case')} of its own"
            if r.own_cases
            else f"no cases of its own: ranked on all {_n(r.cases, 'case')}"
        )
        out += [f"### {r.role} (needs {r.needs}; {own})", ""]
        if r.ranking:
            out += _table(
                ["rank", "model", "score", "quality", "limits broken"],
                [
                    [str(x.rank), x.model, _f(x.score), _f(x.quality_score), _limits(x.breaches)]
                    for x in r.ranking
                ],
            )
            within = [x.model for x in r.ranking if not x.breaches]
            out += [
                "",
                f"Pick: **{within[0]}**." if within else "No model keeps within the profile's limits.",
            ]
        else:
            out.append("No eligible model.")
        if r.not_eligible:
            out += ["", "Not eligible: " + ", ".join(f"{m} (lacks {c})" for m, c in r.not_eligible) + "."]
        out.append("")
    out += ["## Long-context drift", ""]
    any_grid = False
    for m in rep.models:
        if not m.drift_grid:
            continue
        any_grid = True
        depths = sorted({c.depth for c in m.drift_grid})
        lengths = sorted({c.length for c in m.drift_grid})
        cell = {(c.length, c.depth): c for c in m.drift_grid}
        recalled = sum(c.recalled for c in m.drift_grid)
        total = sum(c.cases for c in m.drift_grid)
        out += [f"### {m.model}: recalled {recalled}/{total}", ""]
        out += _table(
            ["length \\ depth", *(f"{d:g}" for d in depths)],
            [
                [
                    f"{n} tok",
                    *(_cell(cell.get((n, d))) for d in depths),
                ]
                for n in lengths
            ],
        )
        fails = [c for c in m.drift_grid if c.recalled < c.cases]
        past = sorted({c.length for c in m.drift_grid if c.skipped})
        where = ", ".join(f"{c.length} tok at depth {c.depth:g}" for c in fails)
        out += ["", f"Fails at: {where}." if fails else "Recalled everywhere it ran."]
        if past:
            out.append(f"Not run (past the model's context): {', '.join(f'{n} tok' for n in past)}.")
        out.append("")
    if not any_grid:
        out += ["The suite has no drift case.", ""]
    out += ["## Automatic vs human scores", ""]
    rated = [c for c in rep.correlations if c.spearman is not None]
    if rated:
        out += _table(
            ["people", "automatic score", "n", "Spearman (p)", "Pearson (p)", f"vs {BRIEF_CORRELATION}"],
            [
                [
                    c.source, c.score, str(c.n), f"{c.spearman:.2f} ({_f(c.spearman_p, '.3f')})",
                    f"{_f(c.pearson)} ({_f(c.pearson_p, '.3f')})", c.verdict(),
                ]
                for c in rated
            ],
        )  # fmt: skip
        out.append("")
    notes = [c for c in rep.correlations if c.spearman is None]
    for c in notes:
        label = "" if c.source == "none" else f"{c.source} ({c.score} score): "
        out += [f"- {label}{c.note}"]
    out += [
        *([""] if notes else []),
        "People's scores are the suite's `human:` ratings and the arena's Bradley-Terry ratings"
        " (votes in state.db or given); 'overall' is the profile-weighted score, 'quality' leaves latency"
        f" and cost out. The product brief quotes > {BRIEF_CORRELATION} for managed evaluation services.",
        "",
        "## Plots",
        "",
        "![quality vs cost](quality_cost.png)",
        "",
        "![quality vs latency](quality_latency.png)",
        "",
        "## How scores were computed",
        "",
        "- Quality metrics are mean case scores (0..1): reasoning accuracy, tool-use correctness"
        " (tool and arguments compared structurally), long-context recall.",
        f"- Latency is the p95 per call, cost the price per 1k tokens (the dearer of input and output);"
        f" each becomes limit / (limit + value) against the profile's limit ({rep.latency_ms:g} ms,"
        f" ${rep.price_ceiling_per_1k:.4f}/1k): 1 at zero, 0.5 at the limit.",
        f"- Score = weighted mean with the profile's `eval:` weights ({_weights_text(rep.weights)});"
        " quality = the same over the quality metrics only. A metric with no case is left out.",
        "- Models breaking a hard limit are ranked after all models within the limits; a model with no"
        " quality case run (all skipped) has no score and comes last.",
        "- Latency percentiles are over calls without an error; failed calls score 0 and count as errors;"
        " skipped cases (past the model's context, tool use without tools) count nowhere but in 'skipped'.",
    ]
    out += [f"- Note: {n}." for n in rep.notes]
    return "\n".join(out) + "\n"


# --- files ---------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # a report to share, not mkstemp's private 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(report: Report, out_dir: Path) -> list[Path]:
    """Write results.json, report.md, report.html and the two PNG plots into `out_dir` (created);
    each file appears whole or not at all. Returns the paths in that order."""
    from crewkit.evaluation import plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = report.markdown()
    images = {
        "quality_cost.png": plots.quality_cost(report),
        "quality_latency.png": plots.quality_latency(report),
    }
    contents: dict[str, Callable[[], bytes]] = {
        "results.json": lambda: (json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n").encode(),
        "report.md": md.encode,
        "report.html": lambda: plots.html_page(f"Model comparison: {report.suite}", md, images).encode(),
        "quality_cost.png": lambda: images["quality_cost.png"],
        "quality_latency.png": lambda: images["quality_latency.png"],
    }
    paths = []
    for name in FILES:
        path = out_dir / name
        _write_atomic(path, contents[name]())
        paths.append(path)
    return paths
