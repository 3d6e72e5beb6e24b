"""The A/B report: per-arm metrics, each arm against the control, and a plain verdict.

Per arm, over its finished runs (done, failed, rejected; `crewkit.evaluation.experiments`):
- verifier pass rate: runs whose verifier passed, of the runs it judged;
- approval rate: runs a person approved, of the runs a person decided (approved or rejected);
- completion rate: runs that ended `done`;
- cost: mean USD per run; latency: mean, p50 and p95 wall seconds per run.

Each other arm is compared with the control (the experiment's first arm):
- proportions: difference (points) with Newcombe's hybrid score interval (from Wilson
  intervals), relative lift, Cohen's h; two-proportion z-test, or Fisher's exact test when an
  expected cell count is below 5;
- means: difference with Welch's interval, relative lift, Hedges' g (Cohen's d corrected for
  small samples); Welch's t-test.

The verdict reads the primary metric only, at the experiment's `alpha`; with several treatment
arms their primary p-values are Holm-adjusted. The other metrics are shown unadjusted, as hints.
Below `min_runs_per_arm` runs (of the primary metric's sample) in any arm the verdict is
"not enough data yet". Runs of one tenant (or user) are not independent: with few keys per arm
the p-values are optimistic, and the report says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from crewkit.evaluation.experiments import FINAL, Experiment, Row

# name -> (label, kind, higher is better)
METRICS: dict[str, tuple[str, str, bool]] = {
    "verifier_pass_rate": ("verifier pass rate", "proportion", True),
    "approval_rate": ("approval rate", "proportion", True),
    "completion_rate": ("completion rate", "proportion", True),
    "cost_usd": ("cost per run (USD)", "mean", False),
    "latency_s": ("latency per run (s)", "mean", False),
}
SRM_ALPHA = 0.001  # a sample-ratio mismatch is flagged below this p (as experimentation platforms do)


@dataclass(frozen=True)
class Proportion:
    successes: int
    n: int
    value: float | None
    ci: tuple[float, float] | None


@dataclass(frozen=True)
class Mean:
    n: int
    value: float | None
    sd: float | None
    ci: tuple[float, float] | None
    p50: float | None = None
    p95: float | None = None


@dataclass(frozen=True)
class ArmStats:
    arm: str
    weight: float | None  # None: the arm is no longer in the config
    assigned: int  # runs assigned
    keys: int  # distinct keys (tenants, users, runs) assigned
    finished: int  # runs with a final outcome
    statuses: dict[str, int]
    metrics: dict[str, Proportion | Mean]

    def sample(self, metric: str) -> int:
        return self.metrics[metric].n


@dataclass(frozen=True)
class Comparison:
    metric: str
    arm: str
    control: str
    control_value: float | None
    arm_value: float | None
    diff: float | None  # arm - control
    ci: tuple[float, float] | None
    lift: float | None  # diff / control value
    effect: str  # "cohens_h" | "hedges_g"
    effect_size: float | None
    test: str  # "z" | "fisher" | "welch" | "none"
    p: float | None
    p_adjusted: float | None = None  # Holm, primary metric only
    note: str = ""


@dataclass(frozen=True)
class Report:
    experiment: str
    description: str
    enabled: bool
    unit: str
    control: str
    primary_metric: str
    min_runs_per_arm: int
    alpha: float
    arms: list[ArmStats]
    comparisons: list[Comparison]
    enough_data: bool
    verdicts: list[str]
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 10)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# -- statistics ----------------------------------------------------------------------------------


def _z(alpha: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(1 - alpha / 2))


def wilson(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float] | None:
    """Wilson's score interval for a proportion."""
    if n <= 0:
        return None
    z = _z(alpha)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int, alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe's hybrid score interval (his method 10) for p1 - p2."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, alpha) or (0.0, 1.0)
    l2, u2 = wilson(k2, n2, alpha) or (0.0, 1.0)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def proportion_test(k1: int, n1: int, k2: int, n2: int) -> tuple[str, float]:
    """Two-sided p for p1 != p2: the pooled two-proportion z-test, or Fisher's exact test when any
    expected cell count is below 5."""
    from scipy import stats

    total, hits = n1 + n2, k1 + k2
    expected = [n * hits / total for n in (n1, n2)] + [n * (total - hits) / total for n in (n1, n2)]
    if min(expected) < 5:
        return "fisher", float(stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)
    pooled = hits / total
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (k1 / n1 - k2 / n2) / se
    return "z", float(2 * stats.norm.sf(abs(z)))


def cohens_h(p1: float, p2: float) -> float:
    return 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p2))


def welch(x1: list[float], x2: list[float], alpha: float = 0.05) -> tuple[float, tuple[float, float], float]:
    """Welch's difference of means mean(x1) - mean(x2): (difference, interval, two-sided p)."""
    from scipy import stats

    n1, n2 = len(x1), len(x2)
    m1, m2 = sum(x1) / n1, sum(x2) / n2
    v1, v2 = _var(x1), _var(x2)
    d = m1 - m2
    se2 = v1 / n1 + v2 / n2
    if se2 <= 0:  # no spread in either arm: the difference is exact
        return d, (d, d), (1.0 if d == 0 else 0.0)
    df = se2**2 / ((v1 / n1) ** 2 / (n1 - 1) + (v2 / n2) ** 2 / (n2 - 1))
    half = float(stats.t.ppf(1 - alpha / 2, df)) * math.sqrt(se2)
    p = float(2 * stats.t.sf(abs(d) / math.sqrt(se2), df))
    return d, (d - half, d + half), p


def hedges_g(x1: list[float], x2: list[float]) -> float | None:
    n1, n2 = len(x1), len(x2)
    pooled = ((n1 - 1) * _var(x1) + (n2 - 1) * _var(x2)) / (n1 + n2 - 2)
    if pooled <= 0:
        return None
    d = (sum(x1) / n1 - sum(x2) / n2) / math.sqrt(pooled)
    return d * (1 - 3 / (4 * (n1 + n2) - 9))


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the given order."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [0.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def _var(x: list[float]) -> float:
    n = len(x)
    if n < 2:
        return 0.0
    m = sum(x) / n
    return sum((v - m) ** 2 for v in x) / (n - 1)


def _percentile(x: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(x, q))


# -- per arm -------------------------------------------------------------------------------------


def _proportion(successes: int, n: int, alpha: float) -> Proportion:
    return Proportion(successes, n, successes / n if n else None, wilson(successes, n, alpha))


def _mean(x: list[float], alpha: float) -> Mean:
    if not x:
        return Mean(0, None, None, None)
    from scipy import stats

    n, m = len(x), sum(x) / len(x)
    sd = math.sqrt(_var(x)) if n > 1 else None
    ci = None
    if sd is not None:
        half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
        ci = (m - half, m + half)
    return Mean(n, m, sd, ci, _percentile(x, 50), _percentile(x, 95))


def arm_stats(arm: str, weight: float | None, runs: list[Row], alpha: float) -> ArmStats:
    done = [r.outcome or {} for r in runs if r.finished]
    judged = [o["verified"] for o in done if o.get("verified") is not None]
    decided = [o["approval"] for o in done if o.get("approval") in ("approved", "rejected")]
    statuses: dict[str, int] = {}
    for r in runs:
        status = (r.outcome or {}).get("status") if r.outcome else "running"
        status = status if r.finished or status not in FINAL else "running"
        statuses[status] = statuses.get(status, 0) + 1
    metrics: dict[str, Proportion | Mean] = {
        "verifier_pass_rate": _proportion(sum(1 for v in judged if v), len(judged), alpha),
        "approval_rate": _proportion(decided.count("approved"), len(decided), alpha),
        "completion_rate": _proportion(sum(1 for o in done if o.get("status") == "done"), len(done), alpha),
        "cost_usd": _mean([float(o.get("cost_usd") or 0.0) for o in done], alpha),
        "latency_s": _mean([float(o.get("seconds") or 0.0) for o in done], alpha),
    }
    return ArmStats(
        arm=arm,
        weight=weight,
        assigned=len(runs),
        keys=len({r.key_hash for r in runs}),
        finished=len(done),
        statuses=dict(sorted(statuses.items())),
        metrics=metrics,
    )


# -- between arms ---------------------------------------------------------------------------------


def compare(
    metric: str, arm: ArmStats, control: ArmStats, runs: dict[str, list[Row]], alpha: float
) -> Comparison:
    kind = METRICS[metric][1]
    a, c = arm.metrics[metric], control.metrics[metric]
    base = {
        "metric": metric,
        "arm": arm.arm,
        "control": control.arm,
        "control_value": c.value,
        "arm_value": a.value,
    }
    effect = "cohens_h" if kind == "proportion" else "hedges_g"
    if kind == "proportion":
        assert isinstance(a, Proportion) and isinstance(c, Proportion)
        if not a.n or not c.n:
            return Comparison(**base, diff=None, ci=None, lift=None, effect=effect, effect_size=None, test="none",
                              p=None, note="no runs to compare")  # fmt: skip
        test, p = proportion_test(a.successes, a.n, c.successes, c.n)
        diff = a.value - c.value  # type: ignore[operator]
        return Comparison(
            **base, diff=diff, ci=newcombe(a.successes, a.n, c.successes, c.n, alpha),
            lift=diff / c.value if c.value else None, effect=effect,
            effect_size=cohens_h(a.value, c.value), test=test, p=p,  # type: ignore[arg-type]
        )  # fmt: skip
    xa, xc = _values(metric, runs[arm.arm]), _values(metric, runs[control.arm])
    if len(xa) < 2 or len(xc) < 2:
        return Comparison(**base, diff=None, ci=None, lift=None, effect=effect, effect_size=None, test="none",
                          p=None, note="fewer than 2 runs in an arm")  # fmt: skip
    diff, ci, p = welch(xa, xc, alpha)
    return Comparison(
        **base, diff=diff, ci=ci, lift=diff / c.value if c.value else None, effect=effect,
        effect_size=hedges_g(xa, xc), test="welch", p=p,
    )  # fmt: skip


def _values(metric: str, runs: list[Row]) -> list[float]:
    key = {"cost_usd": "cost_usd", "latency_s": "seconds"}[metric]
    return [float((r.outcome or {}).get(key) or 0.0) for r in runs if r.finished]


# -- the report -----------------------------------------------------------------------------------


def build(name: str, experiment: Experiment, runs: list[Row]) -> Report:
    """The report of experiment `name` over its stored runs."""
    alpha, primary = experiment.alpha, experiment.primary_metric
    by_arm: dict[str, list[Row]] = {arm: [] for arm in experiment.arms}
    for r in runs:
        by_arm.setdefault(r.arm, []).append(r)
    arms = [
        arm_stats(arm, experiment.arms[arm].weight if arm in experiment.arms else None, rs, alpha)
        for arm, rs in by_arm.items()
    ]
    control = arms[0]
    others = [a for a in arms[1:] if a.weight is not None]
    comparisons = [compare(m, a, control, by_arm, alpha) for a in others for m in METRICS]
    primaries = [c for c in comparisons if c.metric == primary and c.p is not None]
    if len(primaries) > 1:
        adjusted = dict(zip((c.arm for c in primaries), holm([c.p for c in primaries]), strict=True))  # type: ignore[misc]
        comparisons = [
            replace(c, p_adjusted=adjusted[c.arm]) if c.metric == primary and c.arm in adjusted else c
            for c in comparisons
        ]
    needed = experiment.min_runs_per_arm
    short = [a for a in [control, *others] if a.sample(primary) < needed]
    if short:
        counts = ", ".join(f"{a.arm} {a.sample(primary)}/{needed}" for a in [control, *others])
        counts = counts.replace("/" + str(needed), f"/{needed} runs", 1)
        what = {"verifier_pass_rate": "runs the verifier judged", "approval_rate": "runs a person decided"}
        verdicts = [
            f"not enough data yet: {counts} ({what.get(primary, 'finished runs')}; min_runs_per_arm {needed})"
        ]
    else:
        verdicts = [_verdict(c, METRICS[primary][0], alpha) for c in comparisons if c.metric == primary]
    return Report(
        experiment=name,
        description=experiment.description,
        enabled=experiment.enabled,
        unit=experiment.unit,
        control=control.arm,
        primary_metric=primary,
        min_runs_per_arm=needed,
        alpha=alpha,
        arms=arms,
        comparisons=comparisons,
        enough_data=not short,
        verdicts=verdicts,
        notes=_notes(experiment, arms, control, others, runs),
    )


def _verdict(c: Comparison, label: str, alpha: float) -> str:
    if c.p is None:
        return f"{c.arm}: no comparison on {label} ({c.note or 'no data'})"
    p = c.p_adjusted if c.p_adjusted is not None else c.p
    p_text = _p_is(c.p) + (f", Holm-adjusted {_p_is(c.p_adjusted)}" if c.p_adjusted is not None else "")
    detail = f"{_value(c.metric, c.arm_value)} vs {_value(c.metric, c.control_value)}, {_diff(c)}"
    if p >= alpha:
        return f"{c.arm}: no significant difference on {label} ({p_text}; {detail})"
    higher_better = METRICS[c.metric][2]
    better = (c.diff or 0) > 0 if higher_better else (c.diff or 0) < 0
    return f"{c.arm} {'better' if better else 'worse'} than {c.control} on {label} ({p_text}; {detail})"


def _notes(
    experiment: Experiment, arms: list[ArmStats], control: ArmStats, others: list[ArmStats], runs: list[Row]
) -> list[str]:
    notes = [
        f"primary metric: {METRICS[experiment.primary_metric][0]} (the verdict); the other metrics are not "
        f"corrected for multiple comparisons: read them as hints"
    ]
    if len(others) > 1:
        notes.append(f"{len(others)} arms against {control.arm}: the primary p-values are Holm-adjusted")
    gone = [a.arm for a in arms if a.weight is None]
    if gone:
        notes.append(
            f"arm(s) no longer in config/experiments.yaml, shown but not compared: {', '.join(gone)}"
        )
    srm = _sample_ratio(experiment, [control, *others])
    if srm is not None:
        notes.append(srm)
    if experiment.unit != "run":
        few = [a for a in [control, *others] if a.finished and a.keys < 10]
        if few:
            notes.append(
                f"runs are assigned by {experiment.unit}; runs of one {experiment.unit} are not independent and "
                f"{', '.join(f'{a.arm} has {a.keys}' for a in few)} distinct {experiment.unit}(s): the p-values "
                "are optimistic"
            )
    unfinished = sum(1 for r in runs if not r.finished)
    if unfinished:
        notes.append(f"{unfinished} run(s) not finished yet (running, paused or resumable) are not counted")
    return notes


def _sample_ratio(experiment: Experiment, arms: list[ArmStats]) -> str | None:
    """A chi-square check of the keys per arm against the weights (sample-ratio mismatch)."""
    from scipy import stats

    keys = [a.keys for a in arms]
    weights = [a.weight or 0.0 for a in arms]
    total, wsum = sum(keys), sum(weights)
    if total < 20 or wsum <= 0 or any(w == 0 for w in weights):
        return None
    expected = [total * w / wsum for w in weights]
    p = float(stats.chisquare(keys, expected).pvalue)
    if p >= SRM_ALPHA:
        return None
    shares = ", ".join(
        f"{a.arm} {k} ({k / total:.0%}, weight {w / wsum:.0%})"
        for a, k, w in zip(arms, keys, weights, strict=True)
    )
    return (
        f"sample-ratio mismatch: keys per arm {shares} (chi-square {_p_is(p)}); were the weights changed during the "
        "experiment, or do some runs fail before they are recorded?"
    )


# -- text ---------------------------------------------------------------------------------------------


def _p(p: float | None) -> str:
    """A p-value as a table cell: 0.012, <0.001."""
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _p_is(p: float | None) -> str:
    """A p-value in a sentence: p=0.012, p<0.001."""
    text = _p(p)
    return "p" + (text if text.startswith("<") else "=" + text)


def _usd(value: float) -> str:
    return f"${value:.3g}" if abs(value) < 1 else f"${value:,.2f}"


def _value(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    kind = METRICS[metric][1]
    if kind == "proportion":
        return f"{value:.1%}"
    return _usd(value) if metric == "cost_usd" else f"{value:.2f}s"


def _signed(metric: str, value: float) -> str:
    if METRICS[metric][1] == "proportion":
        return f"{value * 100:+.1f} pts"
    return f"{'+' if value >= 0 else '-'}{_usd(abs(value))}" if metric == "cost_usd" else f"{value:+.2f}s"


def _diff(c: Comparison) -> str:
    if c.diff is None:
        return "-"
    text = _signed(c.metric, c.diff)
    if c.ci is not None:
        text += f" (CI {_signed(c.metric, c.ci[0])} to {_signed(c.metric, c.ci[1])})"
    return text


def render(report: Report) -> None:
    """The report as tables on stdout: arms, comparisons, then the verdict and notes."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = Console(highlight=False)
    state = "enabled" if report.enabled else "disabled"
    out.print(
        Text(f"experiment {report.experiment} ({state}, by {report.unit}): {report.description}".rstrip(": "))
    )
    level = f"{1 - report.alpha:.0%}"
    arms = Table(box=None, title=None)
    for column in ("arm", "weight", "runs", "pass rate", f"{level} CI", "approval", "done", "cost/run",
                   "latency mean", "p50", "p95"):  # fmt: skip
        arms.add_column(column, no_wrap=True)
    for a in report.arms:
        m = a.metrics
        pass_rate, approval, done = m["verifier_pass_rate"], m["approval_rate"], m["completion_rate"]
        cost, latency = m["cost_usd"], m["latency_s"]
        assert isinstance(latency, Mean)
        arms.add_row(
            Text(a.arm + (" (control)" if a.arm == report.control and a.arm != "control" else "")),
            "-" if a.weight is None else f"{a.weight:g}",
            f"{a.finished}/{a.assigned}",
            _ratio(pass_rate),
            _interval(pass_rate),
            _ratio(approval),
            _ratio(done),
            _value("cost_usd", cost.value),
            _value("latency_s", latency.value),
            _value("latency_s", latency.p50),
            _value("latency_s", latency.p95),
        )
    _print(out, arms)
    if report.comparisons:
        table = Table(box=None)
        for column in (
            "metric",
            "arm vs control",
            "difference",
            f"{level} CI",
            "lift",
            "effect",
            "test",
            "p",
        ):
            table.add_column(column, no_wrap=True)
        for c in report.comparisons:
            label = METRICS[c.metric][0] + (" (primary)" if c.metric == report.primary_metric else "")
            table.add_row(
                Text(label),
                Text(f"{c.arm} vs {c.control}"),
                "-" if c.diff is None else _signed(c.metric, c.diff),
                "-" if c.ci is None else f"{_signed(c.metric, c.ci[0])} to {_signed(c.metric, c.ci[1])}",
                "-" if c.lift is None else f"{c.lift:+.1%}",
                "-"
                if c.effect_size is None
                else f"{'h' if c.effect == 'cohens_h' else 'g'}={c.effect_size:+.2f}",
                c.test,
                _p(c.p) + (f" (Holm {_p(c.p_adjusted)})" if c.p_adjusted is not None else ""),
            )
        _print(out, table)
    for line in report.verdicts:
        out.print(Text(line, style="bold"))
    for line in report.notes:
        out.print(Text(f"note: {line}", style="dim"))


def _print(out: Any, table: Any) -> None:
    """A table whole, never cut to the terminal's width (a narrow one wraps the lines instead)."""
    from rich.measure import Measurement

    out.width = max(out.width, Measurement.get(out, out.options.update_width(10_000), table).maximum)
    out.print(table)


def _ratio(m: Proportion | Mean) -> str:
    assert isinstance(m, Proportion)
    return "-" if m.value is None else f"{m.value:.1%} ({m.successes}/{m.n})"


def _interval(m: Proportion | Mean) -> str:
    return "-" if m.ci is None else f"{m.ci[0]:.1%}-{m.ci[1]:.1%}"


# -- the list of experiments ------------------------------------------------------------------------


def listing(settings: Any, store: Any) -> list[dict[str, Any]]:
    """Every experiment with its arms, weights and runs so far (assigned, finished)."""
    from crewkit.evaluation.experiments import counts

    seen = counts(store)
    out = []
    for name, exp in settings.experiments.experiments.items():
        total = sum(a.weight for a in exp.arms.values())
        arms = []
        for arm, cfg in exp.arms.items():
            assigned, finished = seen.get((name, arm), (0, 0))
            arms.append(
                {"arm": arm, "weight": cfg.weight, "share": cfg.weight / total if total else 0.0,
                 "changes": _changes(cfg), "assigned": assigned, "finished": finished}
            )  # fmt: skip
        out.append(
            {"experiment": name, "enabled": exp.enabled, "unit": exp.unit, "primary_metric": exp.primary_metric,
             "min_runs_per_arm": exp.min_runs_per_arm, "description": exp.description, "arms": arms}
        )  # fmt: skip
    return out


def _changes(arm: Any) -> str:
    parts = [f"routing {arm.routing}"] if arm.routing is not None else []
    for role, patch in arm.roles.items():
        given = patch.model_dump(exclude_none=True)
        parts.append(f"{role}: " + ", ".join(f"{k} {v}" for k, v in given.items()))
    return "; ".join(parts) or "as configured"


def render_list(rows: list[dict[str, Any]], fmt: str) -> None:
    import json
    import sys

    if fmt == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if not rows:
        Console(stderr=True).print(Text("no experiments (config/experiments.yaml)", style="dim"))
        return
    table = Table(box=None)
    for column in ("experiment", "enabled", "unit", "arm", "weight", "changes", "runs"):
        table.add_column(column, no_wrap=column != "changes")
    for row in rows:
        for i, arm in enumerate(row["arms"]):
            first = i == 0
            table.add_row(
                Text(row["experiment"] if first else ""),
                ("yes" if row["enabled"] else "no") if first else "",
                row["unit"] if first else "",
                Text(arm["arm"]),
                f"{arm['weight']:g} ({arm['share']:.0%})",
                Text(arm["changes"]),
                f"{arm['finished']}/{arm['assigned']}",
            )
    _print(Console(highlight=False), table)
