"""Showing a leaderboard: a rich table, the design's JSON, and a plot of ratings with their intervals.

JSON (design.md "Leaderboard JSON"): `[{"rank", "model", "rating", "ci_lower", "ci_upper",
"battles"}]`, best first, ratings rounded to 0.01. The plot is a PNG, or one self-contained HTML
file with the PNG inlined when the path ends in .html.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import IO, Any

from crewkit.errors import UsageError
from crewkit.evaluation.ratings import Leaderboard

METHODS = {"bt": "Bradley-Terry", "elo": "online Elo (K=4)"}


def as_json(board: Leaderboard) -> list[dict[str, Any]]:
    return [r.as_dict() for r in board]


def write_json(board: Leaderboard, out: IO[str]) -> None:
    out.write(json.dumps(as_json(board), indent=2) + "\n")


def title(board: Leaderboard) -> str:
    method = METHODS.get(board.method, board.method)
    if board.bootstrap:
        return f"{method}, 95% intervals from {board.bootstrap} bootstrap rounds (seed {board.seed})"
    return f"{method}, no bootstrap (intervals are the ratings themselves)"


def table(board: Leaderboard) -> Any:
    """A rich Table: rank (claimable from the intervals), model, rating, interval, battles."""
    from rich.table import Table
    from rich.text import Text

    grid = Table(title=title(board), title_justify="left")
    grid.add_column("rank", justify="right")
    grid.add_column("model")
    grid.add_column("rating", justify="right")
    grid.add_column("95% CI", justify="right")
    grid.add_column("battles", justify="right")
    for r in board:
        grid.add_row(
            str(r.rank),
            Text(r.model),
            f"{r.rating:.0f}",
            f"+{r.ci_upper - r.rating:.0f}/-{r.rating - r.ci_lower:.0f}",
            str(r.battles),
        )
    return grid


def plot(board: Leaderboard, path: Path) -> Path:
    """Ratings with their intervals, best at the top: PNG, or HTML with the PNG inlined."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".html", ".htm"):
        raise UsageError(f"--plot {path}: give a file ending in .png or .html")
    if not board:
        raise UsageError("nothing to plot: the leaderboard is empty")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(board)
    names = [r.model for r in rows]
    ys = list(range(len(rows)))[::-1]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.32 * len(rows) + 1.2)), dpi=110)
    try:
        ax.errorbar(
            [r.rating for r in rows],
            ys,
            xerr=[[r.rating - r.ci_lower for r in rows], [r.ci_upper - r.rating for r in rows]],
            fmt="o",
            color="#1f5fa8",
            ecolor="#7aa6d6",
            capsize=3,
        )
        ax.set_yticks(ys, [f"{r.rank}. {n}" for r, n in zip(rows, names, strict=True)])
        ax.axvline(1000, color="#bbbbbb", linewidth=0.8, linestyle="--")
        ax.set_xlabel("rating (1000 = average model)" if board.method == "bt" else "rating")
        ax.set_title(title(board), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    png = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if suffix == ".png":
        tmp.write_bytes(png)
    else:
        tmp.write_text(_html(board, png), encoding="utf-8")
    tmp.replace(path)
    return path


def _html(board: Leaderboard, png: bytes) -> str:
    rows = "\n".join(
        f"<tr><td>{r.rank}</td><td>{html.escape(r.model)}</td><td>{r.rating:.1f}</td>"
        f"<td>{r.ci_lower:.1f} &ndash; {r.ci_upper:.1f}</td><td>{r.battles}</td></tr>"
        for r in board
    )
    notes = "".join(f"<p class=note>{html.escape(n)}</p>" for n in board.notes)
    data = base64.b64encode(png).decode("ascii")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Arena leaderboard</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}td:nth-child(2){{text-align:left}}
.note{{color:#666}}</style></head><body>
<h1>Arena leaderboard</h1><p>{html.escape(title(board))}</p>
<img alt="ratings with 95% intervals" src="data:image/png;base64,{data}">
<table><tr><th>rank</th><th>model</th><th>rating</th><th>95% CI</th><th>battles</th></tr>
{rows}
</table>{notes}
</body></html>
"""
