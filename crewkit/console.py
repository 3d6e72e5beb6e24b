"""What a person sees on the terminal: progress while a run works, a summary when it ends.

Progress and notes go to stderr, so stdout stays clean for `--json` and for scripts.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def note(message: str) -> None:
    err.print(f"[dim]{message}[/dim]")


def _quiet_crewai() -> None:
    """CrewAI's console panels would drown the progress line; crewkit prints its own summary."""
    import logging

    logging.getLogger("crewai").setLevel(logging.ERROR)
    try:
        from crewai.events.event_listener import event_listener

        event_listener.verbose = False
        formatter = getattr(event_listener, "formatter", None)
        if formatter is not None:
            formatter.verbose = False
    except Exception:  # a newer CrewAI without these attributes only prints more
        pass


def run_with_progress(settings: Any, role_map: Any, flow: str, inputs: dict[str, Any]) -> Any:
    from crewkit.runner import run_flow

    with err.status("loading CrewAI", spinner="dots") as status:
        import crewai  # noqa: F401 - several seconds on 2 cores; show it

        _quiet_crewai()

        def progress(message: str) -> None:
            status.update(message)
            err.print(f"[cyan]>[/cyan] {message}")

        return run_flow(settings, role_map, flow, inputs, progress=progress)


def summary(outcome: Any) -> None:
    record = outcome.record
    colour = {"done": "green", "failed": "red"}.get(outcome.status, "yellow")
    err.print(f"\n[bold]run {outcome.run_id}[/bold]: [{colour}]{outcome.status}[/{colour}]")
    if record.get("plan"):
        err.print("[bold]plan[/bold]")
        for sub in record["plan"]:
            err.print(f"  {sub['id']} [{sub['task_type']}] {sub['description']}")
    usage = record.get("usage") or {}
    if usage:
        table = Table(title="usage per role", title_justify="left")
        for column in ("role", "calls", "input tok", "output tok", "cost $", "seconds"):
            table.add_column(column, justify="left" if column == "role" else "right")
        for role, u in usage.items():
            table.add_row(
                role, str(u["calls"]), str(u["input_tokens"]), str(u["output_tokens"]),
                f"{u['cost_usd']:.6f}", f"{u['seconds']:.2f}",
            )  # fmt: skip
        err.print(table)
    if record.get("error"):
        err.print(f"[red]error:[/red] {record['error']}")
    if record.get("result"):
        err.print("[bold]result[/bold]")
        out.print(record["result"], markup=False)
    err.print(f"[dim]record: {outcome.record_path}[/dim]")


def run_crew(settings: Any, role_map: Any, name: str, inputs: dict[str, Any]) -> None:
    from crewkit import crews
    from crewkit.observability import ledger

    with err.status(f"running crew {name}", spinner="dots"):
        import crewai  # noqa: F401

        _quiet_crewai()
        role_map.require_ready()
        with ledger.open_ledger() as run_ledger:
            result = crews.kickoff_crew(settings, role_map, name, inputs)
    usage = run_ledger.usage()
    for role, u in usage.items():
        err.print(
            f"[dim]{role}: {u['calls']} call(s), {u['input_tokens']}+{u['output_tokens']} tokens, "
            f"${u['cost_usd']:.6f}, {u['seconds']:.2f}s[/dim]"
        )
    out.print(getattr(result, "raw", str(result)), markup=False)


def models_table(rows: list[Any], fmt: str) -> None:
    if fmt == "json":
        out.print_json(json.dumps([r.__dict__ for r in rows]))
        return
    if fmt != "table":
        from crewkit.errors import UsageError

        raise UsageError(f"--format must be table or json, not '{fmt}'")
    table = Table()
    for column in (
        "role",
        "model",
        "provider",
        "fallbacks",
        "capabilities",
        "context",
        "$/Mtok in",
        "$/Mtok out",
        "note",
    ):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.role, r.model, r.provider, ", ".join(r.fallbacks) or "-", ", ".join(r.capabilities),
            str(r.context), f"{r.input_per_mtok:g}", f"{r.output_per_mtok:g}",
            f"degraded: {r.degraded}" if r.degraded else "",
        )  # fmt: skip
    out.print(table)
