"""What a person sees on the terminal: progress while a run works, a summary when it ends.

Two rules:
- stdout holds only what a script reads: the result, written exactly as produced
  (`sys.stdout.write`: no wrapping, no markup), and the `--json` line. Progress, the plan,
  usage, verification, notes and errors go to stderr; while a run works, anything CrewAI or a
  flow step prints goes to stderr too.
- no user or model text is ever read as rich markup (`[/INST]`, `[code]` stay as written):
  it is printed as `Text`, and every piece of it is redacted first.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from crewkit.redact import redact, redact_obj

err = Console(stderr=True, highlight=False, soft_wrap=True)  # long paths and hashes stay whole


def _text(value: Any, style: str = "") -> Text:
    """User or model text, redacted, never parsed as markup."""
    return Text(redact(str(value)), style=style)


def note(message: str) -> None:
    err.print(_text(message, "dim"))


def write_result(text: str) -> None:
    """The result on stdout, byte for byte (plus a final newline so a `--json` line stays its own)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _crewai_verbosity(verbose: bool | None) -> None:
    """CrewAI's console panels: all of them with `--verbose`, none without (crewkit prints progress).

    CrewAI sets its console formatter's `verbose` from each Crew as it is built (`Crew.verbose`,
    usually False), so setting it once would not hold: the formatter's class is swapped for a
    subclass whose `verbose` is the run's choice. `None` gives CrewAI back its own behaviour.
    """
    import logging

    logging.getLogger("crewai").setLevel(logging.NOTSET if verbose in (True, None) else logging.ERROR)
    try:
        from crewai.events.event_listener import event_listener

        formatter = event_listener.formatter
        if not hasattr(type(formatter), "crewkit_forced"):
            own = formatter.verbose

            class RunVerbosity(type(formatter)):  # type: ignore[misc]
                crewkit_forced: bool | None = None

                @property
                def verbose(self) -> bool:
                    forced = type(self).crewkit_forced
                    return self.__dict__.get("crewkit_own", own) if forced is None else forced

                @verbose.setter
                def verbose(self, value: bool) -> None:
                    self.__dict__["crewkit_own"] = value  # what CrewAI asked for; used when not forced

            formatter.__class__ = RunVerbosity
        type(formatter).crewkit_forced = verbose
    except Exception:  # a newer CrewAI without this formatter only prints more (on stderr)
        pass


class _RedactingStream(io.TextIOBase):
    """stdout during a run: CrewAI's panels and a step's prints, redacted, sent to stderr."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def write(self, text: str) -> int:
        self._target.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self._target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._target, "encoding", "utf-8")


@contextlib.contextmanager
def running(label: str, verbose: bool) -> Iterator[Any]:
    """While a run works: a spinner with its progress lines (plain lines with --verbose); yields
    the `progress(message)` callable to hand the runner. Stdout goes to stderr meanwhile.

    The spinner starts first: on a terminal it reroutes stderr above itself, and the redacting
    stdout is then built on that, so nothing printed during the run skips the redaction.
    """
    if verbose:
        err.print(_text(label, "dim"))
    spinner = contextlib.nullcontext() if verbose else err.status(_text(label), spinner="dots")
    with spinner as status, contextlib.redirect_stdout(_RedactingStream(sys.stderr)):
        import crewai  # noqa: F401 - several seconds on 2 cores; show it

        _crewai_verbosity(verbose)
        try:
            yield _progress(status)
        finally:
            _crewai_verbosity(None)


def _progress(status: Any) -> Any:
    def progress(message: str) -> None:
        if status is not None:
            status.update(_text(message))
        err.print(Text("> ", style="cyan") + _text(message))

    return progress


def _usage_table(usage: dict[str, Any]) -> None:
    if not usage:
        return
    table = Table(title="usage per role", title_justify="left")
    for column in ("role", "calls", "input tok", "output tok", "cost $", "seconds"):
        table.add_column(column, justify="left" if column == "role" else "right")
    for role, u in usage.items():
        table.add_row(
            _text(role), str(u["calls"]), str(u["input_tokens"]), str(u["output_tokens"]),
            f"{u['cost_usd']:.6f}", f"{u['seconds']:.2f}",
        )  # fmt: skip
    err.print(table)


def _plan_line(sub: Any) -> Text:
    if isinstance(sub, dict):
        label = f"[{sub['task_type']}] " if sub.get("task_type") else ""
        if sub.get("risk") and sub.get("risk") != "low":
            label += f"({sub['risk']}) "
        return _text(f"  {sub.get('id', '-')} {label}{sub.get('description', '')}")
    return _text(f"  {sub}")


def _withheld(blocked: dict[str, Any]) -> Text:
    names = [v.get("guardrail", "?") for v in blocked.get("verdicts") or [] if not v.get("allowed", False)]
    which = ", ".join(names) or "a guardrail"
    return _text(
        f"result withheld: guardrail {which} blocked it (sha256 {blocked.get('sha256', '?')})", "red"
    )


def _ending(outcome: Any) -> None:
    """The lines shared by flow and crew runs: error, interruption, pause, result, record path."""
    record = outcome.record
    if outcome.status == "paused":
        err.print(_text(f"paused: {record.get('waiting') or 'waiting for a person'}", "yellow"))
        err.print(_text(f"record: {outcome.record_path}", "dim"))
        return
    if outcome.status == "interrupted":
        err.print(
            _text(
                f"interrupted: run {outcome.run_id} was stopped by the user; its record "
                f"(status interrupted) is {outcome.record_path}",
                "yellow",
            )
        )
        return
    if record.get("error"):
        err.print(Text("error: ", style="red") + _text(record["error"]))
    rolled = record.get("rollback")
    if isinstance(rolled, dict):
        undone = len(rolled.get("undone") or [])
        then = (
            f"start it again with `crewkit runs rerun {outcome.run_id}`"
            if outcome.status == "rejected"
            else f"continue with `crewkit resume {outcome.run_id}`"
        )
        err.print(
            _text(
                f"rolled back to step '{rolled.get('to_step')}' (checkpoint {rolled.get('to_checkpoint')}), "
                f"{undone} side effect(s) undone; {then}",
                "yellow",
            )
        )
    if record.get("blocked"):
        err.print(_withheld(record["blocked"]))
    elif record.get("result") is not None:
        err.print(Text("result", style="bold"))
        write_result(str(record["result"]))
    err.print(_text(f"record: {outcome.record_path}", "dim"))


def summary(outcome: Any) -> None:
    record = outcome.record
    colour = {"done": "green", "failed": "red", "rejected": "red"}.get(outcome.status, "yellow")
    err.print(
        Text("\nrun ", style="bold") + _text(outcome.run_id, "bold") + ": " + _text(outcome.status, colour)
    )
    if record.get("plan"):
        err.print(Text("plan", style="bold"))
        for sub in record["plan"]:
            err.print(_plan_line(sub))
    replayed = (record.get("resumed") or {}).get("replayed_steps")
    if replayed:
        err.print(_text(f"resumed: {len(replayed)} finished step(s) replayed, not run again", "dim"))
    _usage_table(record.get("usage") or {})
    verification = record.get("verification")
    if isinstance(verification, dict) and verification.get("summary"):
        err.print(Text("verification: ", style="bold") + _text(verification["summary"]))
    for limitation in record.get("limitations") or []:
        err.print(Text("limitation: ", style="yellow") + _text(limitation))
    _ending(outcome)


def embedded_note(settings: Any, record: dict[str, Any]) -> None:
    """Say plainly when answers came from a model shipped in a package (the offline demo model)."""
    models = settings.models.models
    shipped = sorted(
        {
            str(step.get("model"))
            for step in record.get("steps") or []
            if not step.get("relayed")
            and step.get("model") in models
            and models[step["model"]].provider == "llamacpp"
            and str(models[step["model"]].file or "").startswith("package:")
        }
    )
    if shipped:
        err.print(
            _text(
                f"note: answers came from the embedded model ({', '.join(shipped)}), a 135M-parameter model "
                "that proves the machinery runs offline but writes weak content; for real answers switch a "
                "role in config/models.yaml, e.g. 'reasoning: {model: ollama-qwen}' (a local Ollama), "
                "'{model: llama-server}' (llama.cpp's server) or '{model: gpt-4o}' (see README, Embedded models)",
                "dim",
            )
        )


def crew_summary(outcome: Any) -> None:
    for role, u in (outcome.record.get("usage") or {}).items():
        err.print(
            _text(
                f"{role}: {u['calls']} call(s), {u['input_tokens']}+{u['output_tokens']} tokens, "
                f"${u['cost_usd']:.6f}, {u['seconds']:.2f}s",
                "dim",
            )
        )
    if outcome.status != "done":
        err.print(_text(f"crew {outcome.record.get('crew')}: {outcome.status}", "red"))
    _ending(outcome)


def models_table(rows: list[Any], fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps([r.__dict__ for r in rows], indent=2) + "\n")
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
        cells = (
            r.role, r.model, r.provider, ", ".join(r.fallbacks) or "-", ", ".join(r.capabilities),
            str(r.context), f"{r.input_per_mtok:g}", f"{r.output_per_mtok:g}",
            f"degraded: {r.degraded}" if r.degraded else "",
        )  # fmt: skip
        table.add_row(*(Text(c) for c in cells))
    Console(highlight=False).print(table)


# ---------------------------------------------------------------------------------------------
# Runs and approvals (state.db)


def _json_out(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


_FREE_WIDTH = 60  # the one column of free text in a listing is cut to this many characters


def _listing(columns: tuple[str, ...], rows: list[tuple[str, ...]], free: str) -> None:
    """A plain table: every column as wide as its content except `free`, which is cut to fit."""
    table = Table(box=None)
    needed = 0
    for i, column in enumerate(columns):
        if column == free:
            table.add_column(column, overflow="ellipsis", min_width=24, max_width=_FREE_WIDTH)
            needed += 24 + 2
        else:
            width = max([len(column), *(len(r[i]) for r in rows)])
            table.add_column(column, no_wrap=True, min_width=width)
            needed += width + 2
    cut = columns.index(free)
    for row in rows:
        cells = [
            c if i != cut or len(c) <= _FREE_WIDTH else c[: _FREE_WIDTH - 1] + "…" for i, c in enumerate(row)
        ]
        table.add_row(*(_text(c) for c in cells))
    out = Console(highlight=False)
    out.width = max(out.width, needed)  # never drop a column: a narrow terminal wraps the line instead
    out.print(table)


def runs_table(rows: list[Any], fmt: str, gone: set[str] | frozenset[str] = frozenset()) -> None:
    """`gone`: runs whose process died while it held them (resume continues them)."""
    if fmt == "json":
        _json_out([
            {"run_id": r.run_id, "flow": r.flow, "status": r.status, "created": _ago(r.created),
             "updated": _ago(r.updated), "requester": r.requester, "approval_id": r.approval_id,
             "error": r.error, "process_gone": r.run_id in gone}
            for r in rows
        ])  # fmt: skip
        return
    if not rows:
        err.print(_text("no runs", "dim"))
        return
    _listing(
        ("run", "flow", "status", "started", "waiting for", "error"),
        [
            (
                r.run_id,
                r.flow,
                r.status + (" (process gone)" if r.run_id in gone else ""),
                _ago(r.created),
                r.approval_id or "",
                r.error or "",
            )
            for r in rows
        ],  # fmt: skip
        free="error",
    )


def run_detail(detail: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        _json_out(redact_obj(detail))
        return
    out = Console(highlight=False, soft_wrap=True)
    out.print(_text(f"run {detail['run_id']} ({detail['flow']}): {detail['status']}", "bold"))
    out.print(
        _text(f"started {detail['created']} by {detail['requester'] or '-'}; updated {detail['updated']}")
    )
    if detail.get("profile"):
        out.print(_text(f"profile {detail['profile']}, tenant {detail.get('tenant') or 'default'}"))
    if detail.get("error"):
        out.print(_text(f"error: {detail['error']}", "red"))
    out.print(_text(f"inputs: {json.dumps(detail['inputs'], ensure_ascii=False)}"))
    if detail["plan"]:
        out.print(Text("plan", style="bold"))
        for sub in detail["plan"]:
            out.print(_plan_line(sub))
    if detail["steps"]:
        out.print(Text("steps", style="bold"))
        for step in detail["steps"]:
            flags = " (replayed)" if step.get("replayed") else " (relayed)" if step.get("relayed") else ""
            out.print(_text(
                f"  {step.get('step') or '-'}: {step.get('agent')} on {step.get('role')}/{step.get('model')}, "
                f"{step.get('input_tokens', 0)}+{step.get('output_tokens', 0)} tok, {step.get('seconds', 0)}s{flags}"
            ))  # fmt: skip
    for role, u in (detail["usage"] or {}).items():
        out.print(
            _text(
                f"usage {role}: {u['calls']} call(s), {u['input_tokens']}+{u['output_tokens']} tok, ${u['cost_usd']:.6f}"
            )
        )
    if detail["checkpoints"]:
        out.print(Text("checkpoints", style="bold"))
        for cp in detail["checkpoints"]:
            out.print(
                _text(f"  {cp['seq']}: {cp['step']}{' (stable)' if cp['stable'] else ''} at {cp['at']}")
            )
    if detail.get("rollback"):
        rb = detail["rollback"]
        out.print(
            _text(
                f"rolled back to {rb.get('to_step')} (checkpoint {rb.get('to_checkpoint')}): {len(rb.get('undone') or [])} undone"
            )
        )
    for a in detail["approvals"]:
        by = f" by {a['decided_by']}" if a["decided_by"] else ""
        out.print(
            _text(
                f"approval {a['id']} [{a['tier']}] {a['step']}: {a['status']}{by}"
                + (f" ({a['note']})" if a["note"] else "")
            )
        )
    if detail.get("record"):
        out.print(_text(f"record: {detail['record']}", "dim"))


def _approval_row(a: Any) -> dict[str, Any]:
    return {
        "id": a.id, "run_id": a.run_id, "step": a.step, "tier": a.tier, "status": a.status,
        "what": (a.subject or {}).get("what"), "reason": a.reason,
        "who_may_decide": (a.subject or {}).get("who_may_decide"), "approvers": a.approvers,
        "decided_by": a.decided_by, "note": a.note, "created": _ago(a.created),
        "decided": _ago(a.decided), "expires": _ago(a.expires_at),
    }  # fmt: skip


def approvals_table(rows: list[Any], fmt: str) -> None:
    if fmt == "json":
        _json_out([_approval_row(a) for a in rows])
        return
    if not rows:
        err.print(_text("no approvals", "dim"))
        return
    listed = [_approval_row(a) for a in rows]
    keys = ("id", "run_id", "tier", "status", "expires", "what")
    _listing(
        ("approval", "run", "tier", "status", "expires", "what"),
        [tuple(str(r[k] or "") for k in keys) for r in listed],
        free="what",
    )


def approval_detail(a: Any, fmt: str) -> None:
    if fmt == "json":
        _json_out({**_approval_row(a), "subject": a.subject})
        return
    r = _approval_row(a)
    out = Console(highlight=False, soft_wrap=True)
    out.print(_text(f"approval {r['id']} for run {r['run_id']}: {r['status']}", "bold"))
    out.print(_text(f"what: {r['what']}"))
    out.print(_text(f"tier: {r['tier']}"))
    out.print(_text(f"why: {r['reason']}"))
    for item in (a.subject or {}).get("items") or []:
        draw = f", draw {item['draw']:.3f} < {item['rate']}" if item.get("draw") is not None else ""
        out.print(
            _text(
                f"  {item.get('id')} [{item.get('tier')}] {'needs a person' if item.get('human') else 'automatic'}{draw}: {'; '.join(item.get('reasons') or [])}"
            )
        )
    out.print(_text(f"who may decide: {r['who_may_decide']}"))
    out.print(_text(f"requested {r['created']}; expires {r['expires']}"))
    if a.decided_by:
        out.print(_text(f"decided by {a.decided_by} at {r['decided']}" + (f": {a.note}" if a.note else "")))
    elif a.status == "pending":
        out.print(
            _text(
                f"decide: crewkit approvals approve {a.id} [--note ...] | crewkit approvals reject {a.id} --reason ...",
                "dim",
            )
        )


def decided(a: Any) -> None:
    sys.stdout.write(f"{a.status} {a.id} (run {a.run_id}) by {a.decided_by}\n")
    err.print(_text(f"continue the run with: crewkit resume {a.run_id}", "dim"))


def rolled_back(run_id: str, done: dict[str, Any]) -> None:
    sys.stdout.write(
        f"rolled back run {run_id} to step '{done['to_step']}' (checkpoint {done['to_checkpoint']})\n"
    )
    for line in done.get("undone") or []:
        err.print(_text(f"  {line}"))
    err.print(_text(f"continue from there with: crewkit resume {run_id}", "dim"))


def _money(value: Any) -> str:
    return "no limit" if value is None else f"${value:,.4f}"


def cache_table(report: dict[str, Any], fmt: str) -> None:
    """`crewkit cache stats`: entries, bytes and hits per model and tenant, then the limits."""
    if fmt == "json":
        _json_out(report)
        return
    limits, totals = report["limits"], report["totals"]
    if report["by_model"]:
        _listing(
            ("model", "tenant", "entries", "semantic", "bytes", "hits", "expired"),
            [
                (
                    str(r["model"]),
                    str(r["tenant"] or "-"),
                    str(r["entries"]),
                    str(r["semantic"]) if r["semantic"] else "",
                    f"{r['bytes']:,}",
                    str(r["hits"]),
                    str(r["expired"]) if r["expired"] else "",
                )
                for r in report["by_model"]
            ],
            free="tenant",
        )
    else:
        err.print(_text("the response cache is empty", "dim"))
    state = "on" if report["enabled"] else "off (cache.enabled: false)"
    models = ", ".join(report["cached_models"]) or "none (no model entry sets temperature: 0 or a seed)"
    ttl = "never expire" if limits["ttl_seconds"] is None else f"TTL {limits['ttl_seconds']:g} s"
    err.print(
        _text(
            f"cache {state}; semantic {'on' if report['semantic'] else 'off'}; cached models: {models}; "
            f"{totals['entries']:,}/{limits['max_entries']:,} entries, {totals['bytes']:,}/{limits['max_bytes']:,} "
            f"bytes, {ttl}",
            "dim",
        )
    )


def budgets_table(rows: list[dict[str, Any]], fmt: str, profile: str) -> None:
    if fmt == "json":
        _json_out(rows)
        return
    if not rows:
        err.print(_text(f"no budgets in profile '{profile}' and nothing spent this period", "dim"))
        return
    _listing(
        ("budget", "period", "limit", "granted", "spent", "reserved", "remaining", "used"),
        [
            (
                str(r["name"]),
                str(r["period"]),
                _money(r["limit"]),
                _money(r["granted"]) if r.get("granted") else "",
                _money(r["spent"]),
                _money(r["reserved"]) if r.get("reserved") else "",
                _money(r["remaining"]),
                "" if r.get("used") is None else f"{r['used']:.0%}",
            )
            for r in rows
        ],
        free="budget",
    )
