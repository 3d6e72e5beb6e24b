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

from crewkit.redact import redact

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
def _running(label: str, verbose: bool) -> Iterator[Any]:
    """Load CrewAI under a spinner (plain lines with --verbose); stdout goes to stderr meanwhile.

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
            yield status
        finally:
            _crewai_verbosity(None)


def _progress(status: Any) -> Any:
    def progress(message: str) -> None:
        if status is not None:
            status.update(_text(message))
        err.print(Text("> ", style="cyan") + _text(message))

    return progress


def run_flow(
    settings: Any,
    role_map: Any,
    flow: str,
    inputs: dict[str, Any],
    *,
    verbose: bool = False,
    trigger_payload: dict[str, Any] | None = None,
) -> Any:
    from crewkit.runtime import runner

    with _running("loading CrewAI", verbose) as status:
        return runner.run_flow(
            settings,
            role_map,
            flow,
            inputs,
            progress=_progress(status),
            verbose=verbose,
            trigger_payload=trigger_payload,
        )


def run_crew(
    settings: Any, role_map: Any, name: str, inputs: dict[str, Any], *, verbose: bool = False
) -> Any:
    from crewkit.runtime import runner

    with _running(f"running crew {name}", verbose) as status:
        return runner.run_crew(settings, role_map, name, inputs, progress=_progress(status))


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
        return _text(f"  {sub.get('id', '-')} {label}{sub.get('description', '')}")
    return _text(f"  {sub}")


def _withheld(blocked: dict[str, Any]) -> Text:
    names = [v.get("guardrail", "?") for v in blocked.get("verdicts") or [] if not v.get("allowed", False)]
    which = ", ".join(names) or "a guardrail"
    return _text(
        f"result withheld: guardrail {which} blocked it (sha256 {blocked.get('sha256', '?')})", "red"
    )


def _ending(outcome: Any) -> None:
    """The lines shared by flow and crew runs: error, interruption, result, record path."""
    record = outcome.record
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
    if record.get("blocked"):
        err.print(_withheld(record["blocked"]))
    elif record.get("result") is not None:
        err.print(Text("result", style="bold"))
        write_result(str(record["result"]))
    err.print(_text(f"record: {outcome.record_path}", "dim"))


def summary(outcome: Any) -> None:
    record = outcome.record
    colour = {"done": "green", "failed": "red"}.get(outcome.status, "yellow")
    err.print(
        Text("\nrun ", style="bold") + _text(outcome.run_id, "bold") + ": " + _text(outcome.status, colour)
    )
    if record.get("plan"):
        err.print(Text("plan", style="bold"))
        for sub in record["plan"]:
            err.print(_plan_line(sub))
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
