"""The `crewkit` command: parses arguments, calls the engine, prints. No logic of its own.

Exit codes: 0 done, 1 the run failed, 2 usage or config error (one line, no traceback).
Heavy modules (CrewAI, llama.cpp) are imported inside the commands, so `--help` is fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from crewkit.errors import CrewkitError, UsageError

app = typer.Typer(
    help="crewkit: governed CrewAI flows that run offline on embedded models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Validate configuration.", no_args_is_help=True)
models_app = typer.Typer(help="Inspect the role map.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(models_app, name="models")

InputsOpt = Annotated[
    str | None, typer.Option("--inputs", help='Inputs as a JSON object, e.g. \'{"task": "..."}\'.')
]
InputsFileOpt = Annotated[
    Path | None, typer.Option("--inputs-file", help="Read the inputs JSON object from a file.")
]
FormatOpt = Annotated[str, typer.Option("--format", help="table or json.")]


def _err(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


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
    try:
        value = json.loads(inputs)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; "
            'pass an object such as \'{"task": "..."}\''
        ) from None
    if not isinstance(value, dict):
        raise UsageError(
            f'{source}: expected a JSON object such as \'{{"task": "..."}}\', got {type(value).__name__}'
        )
    return value


def _engine() -> tuple[Any, Any]:
    from crewkit.models.registry import RoleMap
    from crewkit.settings import load_settings

    settings = load_settings()
    return settings, RoleMap(settings)


@app.command()
def run(
    flow: Annotated[str, typer.Argument(help="Flow module in flows/ (default: default).")] = "default",
    inputs: InputsOpt = None,
    inputs_file: InputsFileOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Last stdout line: {run_id, status, output_file}.")
    ] = False,
) -> None:
    """Run a flow end to end and write output/<run_id>.json."""
    from crewkit import console

    parsed = _parse_inputs(inputs, inputs_file)
    settings, role_map = _engine()
    if parsed is None:
        from crewkit.runner import load_flow_class

        parsed = dict(getattr(load_flow_class(settings, flow), "EXAMPLE_INPUTS", {}) or {})
        if parsed:
            console.note(f"no --inputs given; running the example: {json.dumps(parsed)}")
    outcome = console.run_with_progress(settings, role_map, flow, parsed)
    console.summary(outcome)
    if as_json:
        line = {"run_id": outcome.run_id, "status": outcome.status, "output_file": str(outcome.record_path)}
        typer.echo(json.dumps(line))
    raise typer.Exit(outcome.exit_code)


@app.command()
def plot(flow: Annotated[str, typer.Argument(help="Flow module in flows/.")] = "default") -> None:
    """Write the flow's diagram to output/flow_FLOW.html."""
    import shutil

    from crewkit.runner import load_flow_class

    settings, _ = _engine()
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    target = settings.output_dir / f"flow_{flow}.html"
    written = Path(load_flow_class(settings, flow)(suppress_flow_events=True).plot(target.name, show=False))
    if written.resolve() != target.resolve():  # CrewAI writes the page, its script and style to a temp folder
        for part in written.parent.glob(f"{target.stem}*"):
            shutil.copyfile(part, settings.output_dir / part.name)
        shutil.rmtree(written.parent, ignore_errors=True)
    typer.echo(f"wrote {target} (CrewAI's page; it loads fonts and icons from CDNs when opened)")


@app.command()
def crew(
    name: Annotated[str, typer.Argument(help="Crew folder in crews/.")],
    inputs: InputsOpt = None,
    inputs_file: InputsFileOpt = None,
) -> None:
    """Run one crew from crews/NAME/crew.py; agents with no llm get the role map's default."""
    from crewkit import console

    parsed = _parse_inputs(inputs, inputs_file) or {}
    settings, role_map = _engine()
    console.run_crew(settings, role_map, name, parsed)


@config_app.command("check")
def config_check() -> None:
    """Validate every config file and every crew's YAML; errors as FILE:LINE: message."""
    from crewkit import crews

    settings, role_map = _engine()
    names = list(crews.discover(settings))
    for name in names:
        crews.load_spec(settings, name, role_map)
    typer.echo(
        f"ok: config/models.yaml ({len(settings.models.models)} models, {len(settings.models.roles)} roles), "
        f"config/governance.yaml, {len(names)} crew(s): {', '.join(names)}"
    )


@config_app.command("schema")
def config_schema() -> None:
    """Write the JSON schemas of the YAML files to config/schema/."""
    from crewkit.settings import find_project_dir, json_schemas

    folder = find_project_dir() / "config" / "schema"
    folder.mkdir(parents=True, exist_ok=True)
    for filename, schema in json_schemas().items():
        (folder / filename).write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
        typer.echo(f"wrote {folder / filename}")


@models_app.command("list")
def models_list(fmt: FormatOpt = "table") -> None:
    """The resolved role map: model, provider, fallbacks, capabilities, context, prices."""
    from crewkit import console

    settings, role_map = _engine()
    console.models_table(role_map.info(), fmt)


@models_app.command("check")
def models_check() -> None:
    """Check that every role's models are usable here: API keys set, model files present."""
    settings, role_map = _engine()
    problems = role_map.check()
    for problem in problems:
        _err(problem)
    if problems:
        raise typer.Exit(2)
    for info in role_map.info():
        if info.degraded:
            typer.echo(f"note: role '{info.role}' is degraded: {info.degraded}", err=True)
    typer.echo(f"ok: {len(settings.models.roles)} roles ready")


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line and an exit code for user errors, tracebacks for bugs."""
    try:
        rc = app(args=argv, standalone_mode=False)
        return rc if isinstance(rc, int) else 0
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except CrewkitError as exc:
        _err(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except Exception as exc:
        # typer vendors click; match its usage errors by shape, not by import path
        kind = type(exc).__name__
        if kind == "Abort":
            return 130
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            return int(exc.exit_code or 2)
        raise


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
