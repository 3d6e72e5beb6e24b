"""What the `crewkit arena` commands print: anonymised answers, revealed names, pending battles,
the leaderboard (table or JSON on stdout; notes and skipped lines on stderr)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from crewkit.evaluation.arena import ArenaBattle
from crewkit.evaluation.leaderboard import as_json, table
from crewkit.evaluation.ratings import Leaderboard
from crewkit.redact import redact

NAMES = {"model_a": "Model A", "model_b": "Model B", "tie": "a tie", "tie (bothbad)": "both bad"}


def _out() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def note(message: str) -> None:
    from crewkit.console import note as show

    show(message)


def answers(fight: ArenaBattle) -> None:
    """Both answers, anonymised, on stdout (text as written, never read as markup)."""
    from rich.rule import Rule
    from rich.text import Text

    out = _out()
    for label, answer in (("Model A", fight.answer_a), ("Model B", fight.answer_b)):
        out.print(Rule(Text(label), align="left"))
        out.print(Text(redact(answer or "")))
    out.print(Rule())


def pending_hint(fight: ArenaBattle) -> None:
    note(
        f"battle {fight.id} is waiting for a vote: crewkit arena vote {fight.id} a|b|tie|bothbad "
        "(the names stay hidden until then)"
    )


def revealed(fight: ArenaBattle) -> None:
    sys.stdout.write(
        f"vote recorded on {fight.id}: {NAMES.get(fight.winner or '', fight.winner)}; "
        f"Model A was {fight.model_a}, Model B was {fight.model_b}\n"
    )
    sys.stdout.flush()


def pending(rows: list[ArenaBattle], fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(
            json.dumps([{"id": r.id, "tstamp": r.tstamp, "prompt": r.prompt} for r in rows], indent=2) + "\n"
        )
        return
    if not rows:
        note("no battles are waiting for a vote")
        return
    from datetime import UTC, datetime

    from rich.table import Table
    from rich.text import Text

    grid = Table()
    grid.add_column("battle")
    grid.add_column("started (UTC)")
    grid.add_column("prompt")
    for r in rows:
        when = datetime.fromtimestamp(r.tstamp, UTC).strftime("%Y-%m-%d %H:%M")
        prompt = r.prompt if len(r.prompt) <= 60 else r.prompt[:57] + "..."
        grid.add_row(r.id, when, Text(prompt.replace("\n", " ")))
    _out().print(grid)


def board(result: Leaderboard, fmt: str) -> None:
    """The leaderboard on stdout; its notes on stderr."""
    if fmt == "json":
        sys.stdout.write(json.dumps(as_json(result), indent=2) + "\n")
        sys.stdout.flush()
    else:
        _out().print(table(result))
    for text in result.notes:
        note(f"note: {text}")


@contextmanager
def bootstrap_progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A transient progress bar on stderr for the bootstrap (shown only on a terminal)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from crewkit.console import err

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal,
    )  # fmt: skip
    task = bar.add_task(label, total=None)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total)
