"""What `crewkit eval compare` shows: a progress bar while it runs, then a short summary.

The bar (rich, on stderr) counts cases over every model and names the case being run. The
summary is one line per model (cases passed, quality per kind, latency p50/p95, tokens, cost,
errors, skipped cases, limits broken) and the best model per role under the profile, read from
the report (`crewkit.evaluation.report`); the full tables are in the files it writes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crewkit.evaluation.compare import Comparison


@contextmanager
def progress_bar(enabled: bool | None = None) -> Iterator[Any]:
    """A `progress(done, total, label)` callback drawing a rich bar on stderr (a TTY only, unless `enabled`)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]eval[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        transient=True,
    )
    task = None

    def update(done: int, total: int, label: str) -> None:
        nonlocal task
        if task is None:
            task = bar.add_task(label, total=total)
        bar.update(task, completed=done, description=label)

    with bar:
        yield update


def write(comparison: Comparison, settings: Any, out_dir: Path) -> tuple[Any, list[Path]]:
    """The report built and written into `out_dir`: (report, paths)."""
    from crewkit.evaluation import report

    rep = report.build(comparison, settings)
    return rep, report.write(rep, out_dir)


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "n/a" if value is None else format(value, fmt)


def summary(comparison: Comparison, rep: Any, paths: list[Path]) -> None:
    """The per-model lines, the best model per role and the files, on stdout."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    table = Table(
        title=f"suite '{comparison.suite.name}', profile '{comparison.profile}'", title_justify="left"
    )
    for head in (
        "model",
        "passed",
        "reasoning",
        "tool use",
        "drift",
        "p50 ms",
        "p95 ms",
        "tokens",
        "cost $",
        "errors",
        "skipped",
        "limits broken",
    ):
        table.add_column(head, justify="left" if head in ("model", "limits broken") else "right")
    for m in rep.models:
        table.add_row(
            m.model,
            f"{m.passed}/{m.cases}",
            _num(m.quality.get("reasoning")),
            _num(m.quality.get("tool_use")),
            _num(m.quality.get("drift")),
            _num(m.latency_ms.get("p50"), ".0f"),
            _num(m.latency_ms.get("p95"), ".0f"),
            str(m.input_tokens + m.output_tokens),
            f"{m.cost_usd:.4f}",
            str(m.errors),
            str(m.skipped),
            "; ".join(b.text() for b in m.breaches) or "none",
        )
    console.print(table)
    for role in rep.roles:
        if role.ranking:
            best = role.ranking[0]
            within = "within the limits" if not best.breaches else "breaking a limit"
            console.print(f"best for {role.role}: {best.model} (score {_num(best.score)}, {within})")
    resumed = f", {comparison.resumed} case(s) kept from an earlier run" if comparison.resumed else ""
    console.print(f"wall time {comparison.wall_s:.1f} s{resumed}")
    for path in paths:
        console.print(str(path))
