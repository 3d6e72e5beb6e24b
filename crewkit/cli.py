"""The `crewkit` command: parses arguments, calls the engine, prints. No logic of its own.

Exit codes: 0 done, 1 the run failed (or was rejected), 2 usage or config error (one line, no
traceback), 75 the run is paused waiting for a person (the approval id is printed), 130
interrupted (Ctrl-C; the run record says so).
Built on plain click (typer's rich help cost more start-up time than the whole command tree);
heavy modules (CrewAI, llama.cpp, rich) are imported inside the commands, so `--help` is fast.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import click

from crewkit import __version__
from crewkit.errors import CrewkitError, UsageError
from crewkit.redact import install_log_filter, redact

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _err(message: str) -> None:
    sys.stderr.write(f"error: {redact(message)}\n")
    sys.stderr.flush()


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        crewai = f" (crewai {version('crewai')})"
    except PackageNotFoundError:
        crewai = ""
    click.echo(f"crewkit {__version__}{crewai}")
    ctx.exit(0)


@click.group(context_settings=CONTEXT, no_args_is_help=True)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Print crewkit's and CrewAI's versions.",
)
def app() -> None:
    """crewkit: governed CrewAI flows that run offline on embedded models."""


@app.group("config", context_settings=CONTEXT, no_args_is_help=True)
def config_app() -> None:
    """Validate configuration."""


@app.group("models", context_settings=CONTEXT, no_args_is_help=True)
def models_app() -> None:
    """Inspect the role map."""


@app.group("runs", context_settings=CONTEXT, no_args_is_help=True)
def runs_app() -> None:
    """List, inspect and rerun runs (state.db)."""


@app.group("approvals", context_settings=CONTEXT, no_args_is_help=True)
def approvals_app() -> None:
    """Decide what runs wait for: list, show, approve, reject."""


@app.group("audit", context_settings=CONTEXT, no_args_is_help=True)
def audit_app() -> None:
    """The tamper-evident audit log: verify it, export it, purge old records."""


@app.group("budgets", context_settings=CONTEXT, no_args_is_help=True)
def budgets_app() -> None:
    """Cost budgets per run, per period, per tenant and per role."""


@app.group("guard", context_settings=CONTEXT, no_args_is_help=True)
def guard_app() -> None:
    """The prompt-injection scanner."""


@app.group("memory", context_settings=CONTEXT, no_args_is_help=True)
def memory_app() -> None:
    """Long-term memory: add, search, update, delete, history, rollback (scoped by tenant/user/agent)."""


def _profile_option(fn: Any) -> Any:
    return click.option(
        "--profile",
        default=None,
        help="Deployment profile from config/profiles.yaml (default: CREWKIT_PROFILE, else its `default:`).",
    )(fn)


def _inputs_options(fn: Any) -> Any:
    fn = click.option(
        "--inputs-file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Read the inputs JSON object from a file.",
    )(fn)
    return click.option("--inputs", default=None, help='Inputs as a JSON object, e.g. \'{"task": "..."}\'.')(
        fn
    )


def _run_options(fn: Any) -> Any:
    fn = click.option(
        "--verbose", is_flag=True, help="Show CrewAI's own output and flow events (on stderr)."
    )(fn)
    return click.option(
        "--json", "as_json", is_flag=True, help="Last stdout line: {run_id, status, output_file}."
    )(fn)


def _parse_object(text: str, source: str) -> dict[str, Any]:
    """Strict JSON: also refuses NaN, a key given twice, deep nesting and lone surrogates."""
    from crewkit.scheduling.trigger import parse_object

    return parse_object(text, source)


def _parse_inputs(inputs: str | None, inputs_file: Path | None) -> dict[str, Any] | None:
    if inputs is not None and inputs_file is not None:
        raise UsageError("give --inputs or --inputs-file, not both")
    source = "--inputs"
    if inputs_file is not None:
        source = f"--inputs-file {inputs_file}"
        try:
            inputs = inputs_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{source}: cannot read: {exc.strerror}") from None
    if inputs is None:
        return None
    return _parse_object(inputs, source)


def _engine() -> tuple[Any, Any]:
    from crewkit.runtime.startup import start

    return start()


def _engine_under(profile: str | None) -> tuple[Any, Any]:
    """The engine under deployment profile `profile` (None: the default); the role map does not
    depend on the profile."""
    settings, role_map = _engine()
    return settings.with_profile(profile), role_map


def _settings(profile: str | None = None) -> Any:
    """Settings alone (commands that read state.db build no role map), under `profile`."""
    from crewkit.runtime.startup import load_checked

    return load_checked(profile=profile)


def _store(settings: Any = None) -> Any:
    """The state store of `settings` (default: the project's)."""
    from crewkit.runtime.store import StateStore

    return StateStore.open((settings or _settings()).home)


def _json_line(outcome: Any) -> None:
    line: dict[str, Any] = {"run_id": outcome.run_id, "status": outcome.status}
    if getattr(outcome, "approval_id", None):
        line["approval_id"] = outcome.approval_id
    line["output_file"] = str(outcome.record_path)
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


@app.command(context_settings=CONTEXT, short_help="Run a flow and write its run record.")
@click.argument("flow", default="default")
@_inputs_options
@_run_options
@_profile_option
@click.option(
    "--trigger-payload",
    default=None,
    hidden=True,
    help="A trigger's JSON payload, given to start steps as crewai_trigger_payload (main.run_with_trigger).",
)
@click.option(
    "--queue",
    "queued",
    is_flag=True,
    help="Queue the run for `crewkit worker` (Celery + Redis); print its id.",
)
@click.option("--wait", is_flag=True, help="With --queue: wait for the run to end and exit with its code.")
def run(
    flow: str,
    inputs: str | None,
    inputs_file: Path | None,
    as_json: bool,
    verbose: bool,
    profile: str | None,
    trigger_payload: str | None,
    queued: bool = False,
    wait: bool = False,
) -> int:
    """Run FLOW (a module in flows/, default: default) and write output/<run_id>.json."""
    from crewkit.runtime import runner

    if wait and not queued:
        raise UsageError("--wait goes with --queue (a run without --queue always waits)")
    parsed = _parse_inputs(inputs, inputs_file)
    trigger, from_trigger = None, None
    if trigger_payload is not None:  # its inputs, unless --inputs gives them (main.run_with_trigger)
        from crewkit.scheduling import trigger as triggers

        derived, trigger = triggers.split(_parse_object(trigger_payload, triggers.SOURCE))
        if parsed is None:
            parsed, from_trigger = derived, "inputs" in trigger
    settings, role_map = _engine_under(profile)
    runner.check_flow_name(settings, flow)  # a typo is reported before CrewAI is imported
    runner.check_writable(settings)
    from crewkit import console

    if from_trigger is not None:  # errors name the payload's field, before anything is written
        triggers.check_inputs(runner.load_flow_class(settings, flow), parsed, from_trigger)
    if parsed is None:
        parsed = dict(getattr(runner.load_flow_class(settings, flow), "EXAMPLE_INPUTS", {}) or {})
        if parsed:
            console.note(f"no --inputs given; running the example: {json.dumps(parsed)}")
    if queued:
        return _queued_run(settings, role_map, flow, parsed, trigger, as_json=as_json, wait=wait)
    with console.running("loading CrewAI", verbose) as progress:
        outcome = runner.run_flow(
            settings, role_map, flow, parsed, progress, verbose=verbose, trigger_payload=trigger
        )
    return _ended(settings, outcome, as_json)


def _queued_run(
    settings: Any,
    role_map: Any,
    flow: str,
    inputs: dict[str, Any],
    trigger: Any,
    *,
    as_json: bool,
    wait: bool,
) -> int:
    """`run --queue [--wait]`: the run id on stdout (or the --json line), then maybe its end."""
    from crewkit.scheduling import queue

    queued = queue.enqueue(settings, role_map, flow, inputs, trigger_payload=trigger)
    return _queued(settings, queued, as_json=as_json, wait=wait)


def _queued(settings: Any, queued: Any, *, as_json: bool, wait: bool) -> int:
    from crewkit import console
    from crewkit.scheduling import queue

    console.note(
        f"queued run {queued.run_id} on queue '{queued.queue}' ({queued.broker}); `crewkit worker` runs it"
    )
    if not wait:
        if as_json:
            line = {"run_id": queued.run_id, "status": "queued", "queue_task": queued.task_id}
            sys.stdout.write(json.dumps(line) + "\n")
        else:
            sys.stdout.write(queued.run_id + "\n")
        sys.stdout.flush()
        return 0
    return _ended(settings, queue.wait(settings, queued.run_id), as_json)


@app.command(context_settings=CONTEXT, short_help="Work on queued runs (Celery + Redis) in the foreground.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=None,
              help="Runs worked on at once, one child process each (default: queue.concurrency).")  # fmt: skip
@click.option("--queue", "queue_name", default=None, help="The queue to consume (default: queue.queue).")
@click.option("--loglevel", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True, help="Celery's log level (on stderr).")  # fmt: skip
def worker(concurrency: int | None, queue_name: str | None, loglevel: str) -> int:
    """Start a Celery worker on the broker of config/operations.yaml (queue:) until stopped."""
    from crewkit.scheduling import worker as serving

    return serving.serve(_engine, concurrency=concurrency, queue_name=queue_name, loglevel=loglevel)


def _ended(settings: Any, outcome: Any, as_json: bool) -> int:
    from crewkit import console

    console.summary(outcome)
    console.embedded_note(settings, outcome.record)
    if as_json:
        _json_line(outcome)
    return outcome.exit_code


@app.command(context_settings=CONTEXT, short_help="Continue a paused, failed or interrupted run.")
@click.argument("run_id")
@_run_options
@click.option(
    "--queue", "queued", is_flag=True, help="Continue it on a worker (`crewkit worker`) instead of here."
)
@click.option("--wait", is_flag=True, help="With --queue: wait for the run to end and exit with its code.")
def resume(run_id: str, as_json: bool, verbose: bool, queued: bool = False, wait: bool = False) -> int:
    """Continue RUN_ID from its last checkpoint: finished steps are replayed, not run or paid again."""
    from crewkit import console
    from crewkit.runtime import runner

    if wait and not queued:
        raise UsageError("--wait goes with --queue (a resume without --queue always waits)")
    settings, role_map = _engine()
    if queued:
        from crewkit.scheduling import queue

        return _queued(settings, queue.requeue(settings, run_id), as_json=as_json, wait=wait)
    with console.running(f"resuming run {run_id}", verbose) as progress:
        outcome = runner.resume_run(settings, role_map, run_id, progress, verbose=verbose)
    return _ended(settings, outcome, as_json)


@app.command(context_settings=CONTEXT, short_help="Roll a run back to a checkpoint.")
@click.argument("run_id")
@click.option(
    "--to",
    "to",
    default=None,
    help="A step name, a checkpoint number, or 'start' (before any step); default: the last stable one.",
)
def rollback(run_id: str, to: str | None) -> int:
    """Roll RUN_ID back to a checkpoint: its state, and every side effect since, undone."""
    from crewkit import console
    from crewkit.runtime import rollback as rolling

    settings = _settings()
    store = _store(settings)
    done = rolling.by_hand(store, run_id, to)
    console.rolled_back(run_id, done)
    return 0


@app.command(context_settings=CONTEXT)
@click.argument("flow", default="default")
def plot(flow: str) -> int:
    """Write FLOW's diagram to output/flow_FLOW.html."""
    import shutil

    from crewkit.runtime import runner

    settings, _ = _engine()
    runner.check_flow_name(settings, flow)
    runner.check_writable(settings)
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    target = settings.output_dir / f"flow_{flow}.html"
    written = Path(
        runner.load_flow_class(settings, flow)(suppress_flow_events=True).plot(target.name, show=False)
    )
    if written.resolve() != target.resolve():  # CrewAI writes the page, its script and style to a temp folder
        for part in written.parent.glob(f"{target.stem}*"):
            shutil.copyfile(part, settings.output_dir / part.name)
        shutil.rmtree(written.parent, ignore_errors=True)
    click.echo(f"wrote {target} (CrewAI's page; it loads fonts and icons from CDNs when opened)")
    return 0


@app.command(context_settings=CONTEXT, short_help="Run one crew and write its run record.")
@click.argument("name")
@_inputs_options
@_run_options
@_profile_option
def crew(
    name: str, inputs: str | None, inputs_file: Path | None, as_json: bool, verbose: bool, profile: str | None
) -> int:
    """Run one crew from crews/NAME on the role map and write output/<run_id>.json."""
    from crewkit import assembly

    parsed = _parse_inputs(inputs, inputs_file) or {}
    settings, role_map = _engine_under(profile)
    assembly.load_spec(settings, name, role_map)  # a typo is reported before CrewAI is imported
    from crewkit import console
    from crewkit.runtime import runner

    runner.check_writable(settings)
    with console.running(f"running crew {name}", verbose) as progress:
        outcome = runner.run_crew(settings, role_map, name, parsed, progress)
    console.crew_summary(outcome)
    console.embedded_note(settings, outcome.record)
    if as_json:
        _json_line(outcome)
    return outcome.exit_code


@config_app.command("check", context_settings=CONTEXT)
def config_check() -> None:
    """Validate the config files, every crew (YAML, code, built) and every flow module; FILE:LINE errors."""
    from crewkit.evaluation import suite as suites
    from crewkit.project_check import check_project

    settings, role_map = _engine()
    report = check_project(settings, role_map)
    suite_names = suites.available(settings.project_dir)
    for name in suite_names:  # a malformed suite: FILE:LINE, exit 2, before any "ok"
        suites.load(suites.resolve(settings.project_dir, name))
    if settings.schedules_doc is not None:  # jobs' inputs against their flows, before any "ok" too
        from crewkit.scheduling import config as schedule_config

        schedule_config.check_inputs(settings.schedules, settings.schedules_doc, settings)
    governance = (
        "config/governance.yaml" if report.governance_file else "no config/governance.yaml (defaults)"
    )
    click.echo(
        f"ok: config/models.yaml ({len(settings.models.models)} models, {len(settings.models.roles)} roles), "
        f"{governance}, {len(report.crews)} crew(s): {', '.join(report.crews)}, "
        f"{len(report.flows)} flow(s): {', '.join(report.flows)}"
    )
    profiles = "config/profiles.yaml" if settings.profiles_doc is not None else "built-in profiles"
    click.echo(
        f"profiles ({profiles}): {', '.join(settings.profiles.profiles)}; default {settings.profile_name}"
    )
    long_term = settings.memory.long_term
    click.echo(
        f"memory ({'config/memory.yaml' if settings.memory_doc is not None else 'defaults'}): "
        f"long-term {'on' if long_term.enabled else 'off'}, {long_term.backend}"
        f"{f' ({long_term.engine})' if long_term.backend == 'embedded' else f' {long_term.url}'}, "
        f"collection {long_term.collection}"
    )
    if settings.experiments_doc is not None:
        enabled = [name for name, _ in settings.experiments.enabled()]
        click.echo(
            f"experiments (config/experiments.yaml): {len(settings.experiments.experiments)}, "
            f"enabled: {', '.join(enabled) or 'none'}"
        )
    if suite_names:
        click.echo(f"eval suites ({suites.SUITES_DIR}/): {', '.join(suite_names)}")
    if settings.schedules_doc is not None:
        jobs = settings.schedules.jobs
        click.echo(
            f"schedules (config/schedules.yaml): {len(jobs)} job(s)"
            + "".join(f"; {j.name} ({j.cron}, {j.flow}{'' if j.enabled else ', disabled'})" for j in jobs)
        )
    from crewkit.settings import env, price_warnings

    ops = settings.operations
    click.echo(
        f"operations ({'config/operations.yaml' if settings.operations_doc else 'defaults'}): "
        f"cache {'on' if ops.cache.enabled else 'off'} (semantic {'on' if ops.cache.semantic.enabled else 'off'}), "
        f"batching {ops.batching.max_concurrency if ops.batching.enabled else 'off'}, "
        f"metrics {'on' if ops.metrics.enabled else 'off'}, queue via {ops.queue.broker_url_env}, "
        f"state in {'PostgreSQL' if env(ops.database.url_env) else 'SQLite'} ({ops.database.url_env})"
    )
    for name in settings.profiles.profiles:
        for warning in price_warnings(settings.with_profile(name)):
            sys.stderr.write(f"warning: {warning}\n")


@config_app.command("schema", context_settings=CONTEXT)
def config_schema() -> None:
    """Write the JSON schemas of the YAML files to config/schema/."""
    from crewkit.settings import find_project_dir, json_schemas

    folder = find_project_dir() / "config" / "schema"
    folder.mkdir(parents=True, exist_ok=True)
    for filename, schema in json_schemas().items():
        (folder / filename).write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
        click.echo(f"wrote {folder / filename}")


@models_app.command("list", context_settings=CONTEXT)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", help="table or json.")
def models_list(fmt: str) -> None:
    """The resolved role map: model, provider, fallbacks, capabilities, context, prices."""
    from crewkit import console

    settings, role_map = _engine()
    console.models_table(role_map.info(), fmt)


@models_app.command("check", context_settings=CONTEXT)
def models_check() -> int:
    """Check that every role's models are usable here: API keys set, model files present."""
    from crewkit.evaluation.experiments import arm_problems

    settings, role_map = _engine()
    problems = role_map.check() + arm_problems(settings, role_map)  # enabled A/B arms run here too
    for problem in problems:
        _err(problem)
    if problems:
        return 2
    for info in role_map.info():
        if info.degraded:
            sys.stderr.write(f"note: role '{info.role}' is degraded: {info.degraded}\n")
    click.echo(f"ok: {len(settings.models.roles)} roles ready")
    return 0


FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", help="table or json."
)


@runs_app.command("list", context_settings=CONTEXT)
@click.option(
    "--status",
    type=click.Choice(
        ["queued", "running", "paused", "done", "failed", "rejected", "interrupted", "rolled_back"]
    ),
    default=None,
    help="Only runs with this status.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many, newest first.")
@FORMAT
def runs_list(status: str | None, limit: int | None, fmt: str) -> None:
    """Runs, newest first."""
    from crewkit import console

    store = _store()
    rows = store.list_runs(status=status, limit=limit)
    console.runs_table(rows, fmt, gone={r.run_id for r in rows if store.process_gone(r)})


@runs_app.command("show", context_settings=CONTEXT)
@click.argument("run_id")
@FORMAT
def runs_show(run_id: str, fmt: str) -> None:
    """One run: status, plan, steps, usage, checkpoints and approvals."""
    from crewkit import console
    from crewkit.runtime import runs

    settings = _settings()
    console.run_detail(runs.detail(settings, run_id), fmt)


@runs_app.command("rerun", context_settings=CONTEXT)
@click.argument("run_id")
@_run_options
def runs_rerun(run_id: str, as_json: bool, verbose: bool) -> int:
    """Start a new run of RUN_ID's flow with the same inputs."""
    from crewkit import console
    from crewkit.runtime import runner

    settings, role_map = _engine()
    row = _store(settings).require_run(run_id)
    settings = settings.with_profile(row.profile)  # under the profile the run had
    inputs = dict(row.inputs)
    trigger = inputs.pop(runner.TRIGGER_KEY, None)
    console.note(f"rerunning {row.flow} with the inputs of run {run_id}")
    with console.running("loading CrewAI", verbose) as progress:
        if row.flow.startswith(runner.CREW_PREFIX):
            outcome = runner.run_crew(
                settings, role_map, row.flow[len(runner.CREW_PREFIX) :], inputs, progress
            )
        else:
            outcome = runner.run_flow(
                settings, role_map, row.flow, inputs, progress, verbose=verbose, trigger_payload=trigger
            )
    return _ended(settings, outcome, as_json)


@approvals_app.command("list", context_settings=CONTEXT)
@click.option(
    "--status",
    type=click.Choice(["pending", "approved", "rejected", "all"]),
    default="pending",
    show_default=True,
    help="Which approvals.",
)
@click.option("--run", "run_id", default=None, help="Only this run's approvals.")
@FORMAT
def approvals_list(status: str, run_id: str | None, fmt: str) -> None:
    """Approvals (pending ones by default); expired ones take their default first."""
    from crewkit import console

    store = _store()
    store.expire_due()
    rows = store.list_approvals(status=None if status == "all" else status, run_id=run_id)
    console.approvals_table(rows, fmt)


@approvals_app.command("show", context_settings=CONTEXT)
@click.argument("approval_id")
@FORMAT
def approvals_show(approval_id: str, fmt: str) -> None:
    """What an approval is about, why, its tier and who may decide."""
    from crewkit import console

    store = _store()
    store.expire_due()
    console.approval_detail(store.require_approval(approval_id), fmt)


def _decide(approval_id: str, decision: str, by: str | None, note: str | None) -> None:
    from crewkit import console
    from crewkit.governance import approvals

    settings = _settings()
    store = _store(settings)
    decided = approvals.decide(store, settings, approval_id, decision, by or approvals.current_user(), note)
    console.decided(decided)


@approvals_app.command("approve", context_settings=CONTEXT)
@click.argument("approval_id")
@click.option("--note", default=None, help="Why (stored with the decision).")
@click.option("--by", default=None, help="Who decides (default: CREWKIT_USER, else your login name).")
def approvals_approve(approval_id: str, note: str | None, by: str | None) -> None:
    """Approve APPROVAL_ID; then `crewkit resume RUN_ID` continues the run."""
    _decide(approval_id, "approved", by, note)


@approvals_app.command("reject", context_settings=CONTEXT)
@click.argument("approval_id")
@click.option("--reason", required=True, help="Why (required; stored and shown in the run record).")
@click.option("--by", default=None, help="Who decides (default: CREWKIT_USER, else your login name).")
def approvals_reject(approval_id: str, reason: str, by: str | None) -> None:
    """Reject APPROVAL_ID; the run ends as rejected (or goes back for rework) when resumed."""
    _decide(approval_id, "rejected", by, reason)


@guard_app.command("scan", context_settings=CONTEXT)
@click.argument("source", default="-")
def guard_scan(source: str) -> None:
    """Scan JSONL {"id", "text"} from SOURCE (a file, or - for stdin) for prompt injection.

    Writes one line per item: {"id", "verdict": "allow"|"review"|"block", "score", "reasons"}.
    A malformed line is reported with its line number and nothing is written.
    """
    from crewkit.governance import guard_scan as scanner

    if source == "-":
        items = scanner.read_items(sys.stdin, "<stdin>")
    else:
        try:
            with open(source, encoding="utf-8") as fh:
                items = scanner.read_items(fh, source)
        except OSError as exc:
            raise UsageError(
                f"{source}: cannot read: {exc.strerror}; give a JSONL file or - for stdin"
            ) from None
        except UnicodeDecodeError:
            raise UsageError(f"{source}: not UTF-8 text; give a JSONL file of UTF-8 text") from None
    out = sys.stdout
    for line in scanner.scan_items(items):
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
    out.flush()


@budgets_app.command("show", context_settings=CONTEXT)
@FORMAT
@_profile_option
def budgets_show(fmt: str, profile: str | None) -> None:
    """Each budget of the current period: limit, granted, spent, reserved, remaining, share used."""
    from crewkit import console
    from crewkit.governance.budget import Budgets

    settings = _settings(profile)
    rows = Budgets(_store(settings), settings).show()
    console.budgets_table(rows, fmt, settings.profile_name)


# --- response cache (crewkit.models.cache) -----------------------------------------------------


@app.group("cache", context_settings=CONTEXT, no_args_is_help=True)
def cache_app() -> None:
    """The response cache of deterministic model calls: what it holds, and clearing it."""


@cache_app.command("stats", context_settings=CONTEXT)
@click.option("--tenant", default=None, help="Only this tenant's entries.")
@FORMAT
def cache_stats(tenant: str | None, fmt: str) -> None:
    """Entries, bytes and hits per model and tenant, against the limits in config/operations.yaml."""
    from crewkit import console
    from crewkit.runtime import response_cache

    settings = _settings()
    console.cache_table(response_cache.stats(settings, _store(settings), tenant), fmt)


@cache_app.command("clear", context_settings=CONTEXT)
@click.option("--tenant", default=None, help="Only this tenant's entries.")
@click.option("--model", default=None, help="Only this model entry's answers (a name in config/models.yaml).")
@click.option("--expired", is_flag=True, help="Only entries past their TTL.")
def cache_clear(tenant: str | None, model: str | None, expired: bool) -> None:
    """Remove cached answers (all, or of one tenant / model / the expired ones); audited as cache.cleared."""
    from crewkit.runtime import response_cache

    settings = _settings()
    removed = response_cache.clear(
        settings, _store(settings), tenant=tenant, model=model, expired_only=expired
    )
    click.echo(f"removed {removed} cached answer(s)")


@audit_app.command("verify", context_settings=CONTEXT)
@click.option("--head", default=None, help="A head SEQ:HASH printed by an earlier verify (kept elsewhere): "
              "also detects removed or rewritten newest records.")  # fmt: skip
def audit_verify(head: str | None) -> int:
    """Check the hash chain; a broken one names the first edited, removed or reordered record (exit 2)."""
    from crewkit.governance import audit

    store = _store()
    result = audit.verify(store, witness=audit.parse_head(head) if head else None)
    if result.ok:
        click.echo(
            f"ok: {result.checked} record(s) verified; head {result.head_seq}:{result.head_hash} "
            "(keep it elsewhere; pass it back with --head to detect removal of the newest records)"
        )
        return 0
    _err(
        f"{store.path}: audit log broken: {result.problem}; keep the file and an export "
        "(crewkit audit export) for investigation"
    )
    return 2


@audit_app.command("export", context_settings=CONTEXT)
@click.option("--since", default=None, help="Only records at or after: an ISO date/time (UTC) or 7d, 12h.")
@click.option("--run", "run_id", default=None, help="Only this run's records.")
def audit_export(since: str | None, run_id: str | None) -> None:
    """Write audit records to stdout as JSONL {seq, ts, actor, action, subject, detail, prev_hash, hash}."""
    from crewkit.governance import audit

    after = audit.parse_since(since) if since else None
    audit.export(_store(), sys.stdout, since=after, run_id=run_id)
    sys.stdout.flush()


@audit_app.command("purge", context_settings=CONTEXT)
@click.option("--older-than", "days", type=float, default=None,
              help="Remove records older than DAYS (default: the profile's audit.retention_days).")  # fmt: skip
@_profile_option
def audit_purge(days: float | None, profile: str | None) -> None:
    """Remove old records from the start of the chain; the rest still verifies (anchored)."""
    from crewkit.governance import audit
    from crewkit.governance.approvals import current_user

    settings = _settings(profile)
    if days is None:
        days = settings.profile.audit.retention_days
    purged = audit.purge(_store(settings), days, actor=current_user())
    if not purged.removed:
        click.echo(f"nothing older than {days:g} day(s) to remove")
        return
    click.echo(
        f"removed {purged.removed} record(s) older than {days:g} day(s); the chain now starts after "
        f"record {purged.last_seq} (anchor {purged.anchor_hash[:16]}...); logged as record {purged.record.seq}"
    )


def _memory_scope(fn: Any) -> Any:
    fn = click.option("--agent", default=None, help="The agent the memory belongs to (optional).")(fn)
    fn = click.option("--user", default=None, help="The user the memory belongs to (optional).")(fn)
    fn = click.option("--tenant", default="default", show_default=True, help="The tenant (required scope).")(
        fn
    )
    return FORMAT(fn)


def _memory(tenant: str, user: str | None, agent: str | None, *, known: bool = True) -> tuple[Any, Any]:
    """The memory store and the scope; `known`: refuse a tenant crewkit has never seen."""
    from crewkit.memory.store import MemoryStore, Scope

    scope = Scope(tenant, user, agent).checked()
    store = MemoryStore.open(_settings())
    if known:
        store.require_tenant(scope.tenant)
    return store, scope


def _memory_text(text: str) -> str:
    """TEXT, or stdin for '-'."""
    if text != "-":
        return text
    try:
        return sys.stdin.read()
    except UnicodeDecodeError:
        raise UsageError("stdin is not UTF-8 text; give the memory text as UTF-8") from None


def _actor() -> str:
    from crewkit.governance.approvals import current_user

    return current_user()


@memory_app.command("add", context_settings=CONTEXT)
@click.argument("text")
@click.option(
    "--new-tenant", is_flag=True, help="Allow a tenant crewkit has not seen yet (no runs, no memories)."
)
@_memory_scope
def memory_add(
    text: str, new_tenant: bool, tenant: str, user: str | None, agent: str | None, fmt: str
) -> None:
    """Remember TEXT ('-': read stdin) for the scope; prints the new memory's id (version 1)."""
    from crewkit.memory import show

    store, scope = _memory(tenant, user, agent, known=not new_tenant)
    show.record(store.add(_memory_text(text), scope, source="cli", actor=_actor()), fmt, "added")


@memory_app.command("search", context_settings=CONTEXT)
@click.argument("query")
@click.option("--k", "k", type=click.IntRange(1, 1000), default=5, show_default=True, help="How many.")
@_memory_scope
def memory_search(query: str, k: int, tenant: str, user: str | None, agent: str | None, fmt: str) -> None:
    """The K memories nearest to QUERY in the scope (never another tenant's); flagged ones are marked."""
    from crewkit.memory import show

    store, scope = _memory(tenant, user, agent)
    show.recalled(store.search(query, scope, k), fmt)


@memory_app.command("list", context_settings=CONTEXT)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many, newest first.")
@_memory_scope
def memory_list(limit: int | None, tenant: str, user: str | None, agent: str | None, fmt: str) -> None:
    """The memories in the scope, most recently changed first."""
    from crewkit.memory import show

    store, scope = _memory(tenant, user, agent)
    show.records(store.list_memories(scope, limit), fmt)


@memory_app.command("update", context_settings=CONTEXT)
@click.argument("memory_id")
@click.argument("text")
@_memory_scope
def memory_update(
    memory_id: str, text: str, tenant: str, user: str | None, agent: str | None, fmt: str
) -> None:
    """Write a new version of MEMORY_ID with TEXT ('-': read stdin); older versions stay in its history."""
    from crewkit.memory import show

    store, scope = _memory(tenant, user, agent)
    rec = store.update(memory_id, _memory_text(text), scope, source="cli", actor=_actor())
    show.record(rec, fmt, "updated" if rec.changed else "unchanged")


@memory_app.command("delete", context_settings=CONTEXT)
@click.argument("memory_id", required=False)
@_memory_scope
def memory_delete(memory_id: str | None, tenant: str, user: str | None, agent: str | None, fmt: str) -> None:
    """Delete MEMORY_ID (every version and its vector), or with --user and no id every memory of
    that user in the tenant. The audit log keeps digests only."""
    from crewkit.memory import show

    if memory_id is None and user is None:
        raise UsageError("give a memory ID, or --user USER to delete all of a user's memories")
    store, scope = _memory(tenant, user, agent)
    if memory_id is not None:
        versions = store.delete(memory_id, scope, actor=_actor())
        show.deleted({"memory_id": memory_id, "versions": versions}, fmt)
    else:
        removed = store.delete_user(scope, actor=_actor())
        show.deleted({"tenant": scope.tenant, "user": scope.user, "memories": removed}, fmt)


@memory_app.command("history", context_settings=CONTEXT)
@click.argument("memory_id")
@_memory_scope
def memory_history(memory_id: str, tenant: str, user: str | None, agent: str | None, fmt: str) -> None:
    """Every version of MEMORY_ID, oldest first; * marks the current one."""
    from crewkit.memory import show

    store, scope = _memory(tenant, user, agent)
    show.history(store.history(memory_id, scope), fmt)


@memory_app.command("rollback", context_settings=CONTEXT)
@click.argument("memory_id")
@click.argument("version", type=int)
@_memory_scope
def memory_rollback(
    memory_id: str, version: int, tenant: str, user: str | None, agent: str | None, fmt: str
) -> None:
    """Make VERSION's text current again, as a new version (the history keeps every version)."""
    from crewkit.memory import show

    store, scope = _memory(tenant, user, agent)
    rec = store.rollback(memory_id, version, scope, actor=_actor())
    show.record(rec, fmt, f"rolled back to version {version}:")


@memory_app.command("repair", context_settings=CONTEXT)
def memory_repair() -> None:
    """Make the vector store agree with state.db (after a failure that says to run this)."""
    from crewkit.memory.store import MemoryStore

    written, removed = MemoryStore.open(_settings()).repair()
    click.echo(f"ok: {written} vector(s) written, {removed} stale vector(s) removed")


@memory_app.command("migrate", context_settings=CONTEXT)
@click.option("--to", "url", required=True, help="The Qdrant server or cluster, e.g. http://localhost:6333.")
@click.option(
    "--api-key-env",
    default=None,
    metavar="VAR",
    help="The environment variable holding the server's API key (default: long_term.api_key_env).",
)
def memory_migrate(url: str, api_key_env: str | None) -> None:
    """Copy the embedded store under CREWKIT_HOME to a Qdrant server (the local copy is kept);
    safe to run again. Then set long_term.backend: server and url in config/memory.yaml."""
    import re

    from crewkit.memory import vectors

    if not re.match(r"^https?://[^\s/]+", url):
        raise UsageError(f"--to '{url}' is not an http(s) URL such as http://localhost:6333")
    settings = _settings()
    cfg = settings.memory.long_term
    key_env = api_key_env or cfg.api_key_env
    moved = vectors.migrate(cfg, settings.home, url, vectors.api_key(key_env))
    click.echo(
        f"ok: {moved} vector(s) copied from {vectors.folder(cfg, settings.home)} to {url} "
        f"(collection '{cfg.collection}'); to use it, set long_term.backend: server and url: {url}"
        + (f" and api_key_env: {key_env}" if key_env else "")
        + " in config/memory.yaml"
    )


# --- metrics: run metrics, exporters, SLOs (crewkit.observability) ------------------------------


@app.command(
    "metrics", context_settings=CONTEXT, short_help="Latency, errors, tokens and cost per role and model."
)
@click.option(
    "--since",
    default="1h",
    show_default=True,
    help="Window start: an age (15m, 1h, 7d) or an ISO date/time (UTC unless it names an offset).",
)
@click.option(
    "--by",
    default="role,model",
    show_default=True,
    help="Group by, comma-separated: role, model, agent, task, run_id, flow, profile.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "prometheus"]),
    default="table",
    help="table, json or prometheus (the exposition text).",
)
@click.option(
    "--check-slo",
    is_flag=True,
    help="Alert each breached SLO of the profile (once per window); exit 1 when one is breached.",
)
@click.option("--serve", is_flag=True, help="Serve /metrics for Prometheus in the foreground (Ctrl-C stops).")
@click.option(
    "--host", default=None, help="--serve: the address (default: metrics.prometheus.host, 127.0.0.1)."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="--serve: the port (default: metrics.prometheus.port, 9464).",
)
@_profile_option
def metrics_cmd(
    since: str, by: str, fmt: str, check_slo: bool, serve: bool, host: str | None, port: int | None,
    profile: str | None,
) -> int:  # fmt: skip
    """p50/p95/p99 latency, error rate, availability, throughput, tokens, cost and cache hits of model
    calls per role and model over --since, with the profile's SLOs (config/profiles.yaml `slo:`)."""
    from crewkit.observability import export

    settings = _settings(profile)
    store = _store(settings)
    if serve:
        import time

        url = export.start_serving(settings, store, host, port)
        sys.stderr.write(f"serving Prometheus metrics on {url} (Ctrl-C stops)\n")
        sys.stderr.flush()
        while True:
            time.sleep(3600)
    return export.show(settings, store, since, by, fmt, check_slo=check_slo)


# --- ab: A/B experiments (crewkit.evaluation.experiments, crewkit.evaluation.ab_report) -------
# --- schedule (crewkit.scheduling: config/schedules.yaml on APScheduler) ---------------------------


@app.group("schedule", context_settings=CONTEXT, no_args_is_help=True)
def schedule_app() -> None:
    """Scheduled flows (config/schedules.yaml): list them, run the scheduler in the foreground."""


@schedule_app.command("list", context_settings=CONTEXT)
@click.option(
    "--count", type=click.IntRange(1, 100), default=1, show_default=True, help="Next fire times per job."
)
@FORMAT
def schedule_list(count: int, fmt: str) -> None:
    """Every job: cron, zone, flow, its next fire times, its last fire and runs in flight."""
    from crewkit.scheduling import scheduler, view

    view.jobs_table(scheduler.listing(_settings(), count=count), fmt)


@schedule_app.command("fires", context_settings=CONTEXT)
@click.argument("job", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Newest first.")
@FORMAT
def schedule_fires(job: str | None, limit: int, fmt: str) -> None:
    """Recorded fires (of JOB, else of every job): status, run id, why skipped or misfired."""
    from crewkit.scheduling import scheduler, view

    settings = _settings()
    if job is not None and settings.schedules.job(job) is None:
        from crewkit.settings import suggest

        names = [j.name for j in settings.schedules.jobs]
        raise UsageError(f"unknown job '{job}'{suggest(job, names)}; jobs: {', '.join(names) or 'none'}")
    view.fires_table(scheduler.history(settings, job, limit), fmt)


@schedule_app.command("run", context_settings=CONTEXT)
@click.option("--once", is_flag=True, help="Fire what is due now (and missed fires, by policy), wait, exit.")
@click.option(
    "--for",
    "seconds",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Stop after SECONDS (then wait for runs).",
)
def schedule_run(once: bool, seconds: float | None) -> int:
    """Run the enabled jobs in the foreground until Ctrl-C (or SIGTERM): each fire is
    `crewkit run FLOW --inputs JSON --json`, recorded once in state.db and audited."""
    import signal

    from crewkit import console
    from crewkit.scheduling import config as schedule_config
    from crewkit.scheduling import scheduler

    if once and seconds is not None:
        raise UsageError("give --once or --for, not both")
    settings = _settings()
    schedule_config.check_inputs(settings.schedules, settings.schedules_doc, settings)
    enabled = [j.name for j in settings.schedules.jobs if j.enabled]
    if not enabled:
        raise UsageError(
            "no enabled job in config/schedules.yaml; set `enabled: true` on one (see docs/scheduling.md)"
        )
    console.note(f"scheduler: {len(enabled)} job(s): {', '.join(enabled)}; Ctrl-C stops it")

    def terminate(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        done = scheduler.run(settings, once=once, seconds=seconds, progress=console.note)
    except KeyboardInterrupt:
        _err("interrupted: the scheduler stopped; runs in flight were interrupted")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    failed = [s for _, _, s in done.ended if s not in ("done", "paused", "skipped", "misfired")]
    return 1 if once and failed else 0


@app.group("ab", context_settings=CONTEXT, no_args_is_help=True)
def ab_app() -> None:
    """A/B experiments of config/experiments.yaml: list them, report one, see a key's arm."""


@ab_app.command("report", context_settings=CONTEXT)
@click.argument("experiment")
@FORMAT
def ab_report(experiment: str, fmt: str) -> None:
    """Per-arm metrics of EXPERIMENT, each arm against the control, and the verdict on its primary metric."""
    from crewkit.evaluation import ab_report as reporting
    from crewkit.evaluation import experiments

    settings = _settings()
    config = experiments.require(settings, experiment)
    report = reporting.build(experiment, config, experiments.rows(_store(settings), experiment))
    if fmt == "json":
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        reporting.render(report)


@ab_app.command("list", context_settings=CONTEXT)
@FORMAT
def ab_list(fmt: str) -> None:
    """The experiments: enabled or not, unit, arms with their weights, runs so far (finished/assigned)."""
    from crewkit.evaluation import ab_report as reporting

    settings = _settings()
    reporting.render_list(reporting.listing(settings, _store(settings)), fmt)


@ab_app.command("assign", context_settings=CONTEXT)
@click.argument("experiment")
@click.argument("key")
def ab_assign(experiment: str, key: str) -> None:
    """The arm KEY (a tenant, or a user, as the experiment's unit says) gets in EXPERIMENT."""
    from crewkit.evaluation import experiments

    settings = _settings()
    config = experiments.require(settings, experiment)
    click.echo(experiments.explain(experiment, config, key))


# --- eval: model comparison (crewkit.evaluation.compare) -------------------------------------
@app.group("eval", context_settings=CONTEXT, no_args_is_help=True)
def eval_app() -> None:
    """Model comparison: run a suite on several models; quality, latency and cost under a profile."""


@eval_app.command("compare", context_settings=CONTEXT)
@click.option(
    "--models",
    required=True,
    metavar="A,B[,..]",
    help="Model names from config/models.yaml, comma-separated.",
)
@click.option(
    "--suite",
    "suite_name",
    default="default",
    metavar="NAME|PATH",
    help="config/suites/NAME.yaml, or a suite file.",
)
@_profile_option
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Report folder (default: output/eval/SUITE-UTCTIME/).",
)
@click.option(
    "--fresh", is_flag=True, help="Run every case again (default: keep the cases an earlier run finished)."
)
def eval_compare(models: str, suite_name: str, profile: str | None, out: Path | None, fresh: bool) -> int:
    """Run a suite on each model and write results.json, report.md, report.html and two plots.
    Ctrl-C keeps the finished cases; the same command continues from them."""
    from datetime import UTC, datetime

    from crewkit.evaluation import compare, compare_view, suite

    settings = _settings(profile)
    names = [m.strip() for m in models.split(",") if m.strip()]
    compare.check_models(settings, names)
    cases = suite.load(suite.resolve(settings.project_dir, suite_name))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = out or settings.output_dir / "eval" / f"{cases.name}-{stamp}"
    try:
        with compare_view.progress_bar() as bar:
            comparison = compare.compare(settings, names, cases, progress=bar, fresh=fresh)
    except compare.Interrupted as exc:
        sys.stderr.write(f"{exc}\n")
        return 130
    rep, paths = compare_view.write(comparison, settings, out_dir)
    compare_view.summary(comparison, rep, paths)
    return 0


# --- the web console (crewkit.web) ---------------------------------------------------------------
@app.command(context_settings=CONTEXT, short_help="The web console: runs, approvals, arena, metrics, memory.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; any other than loopback makes reading need a sign-in too.")  # fmt: skip
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8787, show_default=True, help="Port to listen on."
)
def serve(host: str, port: int) -> None:
    """Serve the web console until Ctrl-C. Acting (approve, reject, vote, resume, delete) needs a
    sign-in with a token: CREWKIT_CONSOLE_USERS="alice:TOKEN ...", CREWKIT_CONSOLE_TOKEN, or the
    one written to CREWKIT_HOME/console.token at each start."""
    from crewkit.web.serve import serve as serving

    serving(_settings(), host, port, say=lambda line: click.echo(line, err=True))


# --- arena: pairwise battles, votes and ratings (crewkit.evaluation.arena, .ratings) ---------
@app.group("arena", context_settings=CONTEXT, no_args_is_help=True)
def arena_app() -> None:
    """Pairwise battles of two anonymised models, human votes, Elo and Bradley-Terry leaderboards."""


@arena_app.command(
    "battle", context_settings=CONTEXT, short_help="Ask two anonymised models one prompt; vote."
)
@click.argument("prompt")
@click.option("--models", required=True, metavar="A,B", help="Two model names from config/models.yaml.")
@click.option(
    "--vote",
    "choice",
    type=click.Choice(["a", "b", "tie", "bothbad"]),
    default=None,
    help="Record this vote at once (default: ask on a terminal, else keep the battle pending).",
)
def arena_battle(prompt: str, models: str, choice: str | None) -> None:
    """Ask two models PROMPT ('-': read stdin) in random order, shown as Model A and Model B; the
    names are revealed after the vote. Without a vote the battle waits for 'crewkit arena vote'."""
    from crewkit.evaluation import arena, arena_view

    settings = _settings()
    store = _store(settings)
    if prompt == "-":
        try:
            prompt = sys.stdin.read()
        except UnicodeDecodeError:
            raise UsageError("stdin is not UTF-8 text; give the battle prompt as UTF-8") from None
    fight = arena.battle(settings, prompt, models.split(","), store=store)
    arena_view.answers(fight)
    if choice is None and sys.stdin.isatty() and sys.stdout.isatty():
        choice = click.prompt(
            "Which is better?", type=click.Choice(["a", "b", "tie", "bothbad", "skip"]), default="skip"
        )
        choice = None if choice == "skip" else choice
    if choice is None:
        arena_view.pending_hint(fight)
        return
    arena_view.revealed(arena.vote(store, fight.id, choice, voter=_actor()))


@arena_app.command(
    "vote", context_settings=CONTEXT, short_help="Vote on a pending battle: a, b, tie or bothbad."
)
@click.argument("battle_id")
@click.argument("choice", type=click.Choice(["a", "b", "tie", "bothbad"]))
def arena_vote(battle_id: str, choice: str) -> None:
    """Record the vote on a pending battle (once only) and reveal which model was which."""
    from crewkit.evaluation import arena, arena_view

    arena_view.revealed(arena.vote(_store(), battle_id, choice, voter=_actor()))


@arena_app.command("pending", context_settings=CONTEXT)
@FORMAT
def arena_pending(fmt: str) -> None:
    """Battles still waiting for a vote, newest first."""
    from crewkit.evaluation import arena, arena_view

    arena_view.pending(arena.pending(_store()), fmt)


@arena_app.command(
    "leaderboard", context_settings=CONTEXT, short_help="Elo or Bradley-Terry ratings with intervals."
)
@click.option("--votes", "votes_files", multiple=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Votes JSONL (FastChat format) instead of state.db; repeatable.")  # fmt: skip
@click.option("--method", type=click.Choice(["bt", "elo"]), default="bt", show_default=True,
              help="bt: Bradley-Terry maximum likelihood; elo: online Elo (K=4), order-dependent.")  # fmt: skip
@click.option("--bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Bootstrap rounds for the 95% intervals (0: none).")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@FORMAT
@click.option("--plot", "plot_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also draw ratings with their intervals: FILE.png or FILE.html (PNG inlined).")  # fmt: skip
@click.option("--min-battles", type=click.IntRange(min=1), default=2, show_default=True,
              help="Refuse to rate a model seen in fewer battles (1: rate every model).")  # fmt: skip
@click.option("--on-bad-line", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="A malformed votes line: stop with its line number, or skip it (reported on stderr).")  # fmt: skip
def arena_leaderboard(
    votes_files: tuple[Path, ...], method: str, bootstrap: int, seed: int, fmt: str,
    plot_path: Path | None, min_battles: int, on_bad_line: str,
) -> None:  # fmt: skip
    """Ratings with bootstrap intervals and the rank each model can claim (1 + models surely better)."""
    from crewkit.evaluation import arena, arena_view, leaderboard, ratings, votes

    battles: list[Any] = []
    if votes_files:
        for path in votes_files:
            read = votes.read_jsonl(path, on_bad=on_bad_line)  # type: ignore[arg-type]
            if read.skipped:
                arena_view.note(f"warning: {read.skipped_summary()}")
            battles.extend(read.battles)
        source = ", ".join(str(p) for p in votes_files)
    else:
        battles = arena.voted(_store())
        source = "state.db"
    if not battles:
        raise UsageError(
            f"no voted battles in {source}; vote with 'crewkit arena battle PROMPT --models A,B' "
            "or read a dump with --votes FILE"
        )
    with arena_view.bootstrap_progress(f"{method} bootstrap") as progress:
        result = ratings.leaderboard(
            battles,
            method=method,  # type: ignore[arg-type]
            bootstrap=bootstrap,
            seed=seed,
            min_battles=min_battles,
            progress=progress,
        )
    arena_view.board(result, fmt)
    if plot_path is not None:
        arena_view.note(f"wrote {leaderboard.plot(result, plot_path)}")


@arena_app.command("export", context_settings=CONTEXT, short_help="Voted battles as FastChat JSONL.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write to FILE (default: stdout).")  # fmt: skip
def arena_export(out: Path | None) -> None:
    """The voted battles of state.db as FastChat-compatible JSONL (prompts and answers included)."""
    from crewkit.evaluation import arena, arena_view

    store = _store()
    if out is None:
        arena.export(store, sys.stdout)
        sys.stdout.flush()
        return
    tmp = out.with_name(out.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            count = arena.export(store, handle)
        tmp.replace(out)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write: {exc.strerror}") from None
    arena_view.note(f"wrote {count} battle(s) to {out}")


def _usage_error(exc: click.ClickException) -> int:
    """click's usage errors as one line: `error: MESSAGE (see 'crewkit CMD --help')`, exit 2."""
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    _err(f"{exc.format_message()}{hint}")
    return int(exc.exit_code)


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line and an exit code for user errors, tracebacks for bugs.

    Called with no `argv` it is the console script and owns the process: after an interrupted
    run it exits at once (see `exit_process`) instead of returning.
    """
    code = _main(argv)
    if argv is None and code == 130:
        exit_process(code)
    return code


def _log_to_stderr() -> None:
    """Library warnings go through one stderr handler that carries the redaction filter.

    With no handler configured, Python prints warnings through its last-resort handler, which
    no filter sees: a provider's error text with a key in it would reach the terminal as is.
    """
    import logging

    class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
        """Writes to whatever sys.stderr is at the time (as the last-resort handler does)."""

        @property  # type: ignore[override]
        def stream(self) -> Any:
            return sys.stderr

        @stream.setter
        def stream(self, _value: Any) -> None:
            pass

    root = logging.getLogger()
    if not any(isinstance(h, logging.StreamHandler) for h in root.handlers):
        handler = StderrHandler()
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    install_log_filter()


def _main(argv: list[str] | None) -> int:
    _log_to_stderr()
    try:
        rc = app.main(args=argv, prog_name="crewkit", standalone_mode=False)
        return rc if isinstance(rc, int) else 0
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.exceptions.NoArgsIsHelpError as exc:  # click >= 8.2: `crewkit` alone prints help
        click.echo(exc.ctx.get_help())
        return 0
    except click.ClickException as exc:
        return _usage_error(exc)
    except click.exceptions.Abort:
        _err("interrupted")
        return 130
    except CrewkitError as exc:
        _err(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


def exit_process(code: int) -> None:
    """Exit with `code`; after an interrupted run, do not wait for CrewAI's worker threads."""
    sys.stdout.flush()
    sys.stderr.flush()
    others = [t for t in threading.enumerate() if t is not threading.current_thread() and t.is_alive()]
    if code == 130 and others:
        # Interpreter shutdown joins CrewAI's executor threads (daemon or not): the step in
        # flight would finish first. The record is written; leave now.
        os._exit(code)
    sys.exit(code)


def entry(argv: list[str] | None = None) -> None:
    exit_process(main(argv))


if __name__ == "__main__":
    entry()
