"""A run's life around its model calls: names and folders are checked before anything is paid
for, Ctrl-C stops at once and leaves a record, and the small CLI contracts (--version, usage errors)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sample_project import add_crew, add_flow, run_cli

CONSOLE_SCRIPT = "import sys; from crewkit.cli import main; sys.exit(main())"  # what `crewkit` runs


def env_for(project: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "CREWKIT_PROJECT": str(project), **extra}


# ---------------------------------------------------------------------------------------------
# Unwritable folders: found before the first model call, one line naming the folder, exit 2


def _unwritable(kind: str, tmp_path: Path) -> Path:
    """A folder path nobody can write, root included (chmod alone does not stop root)."""
    if kind == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root writes through chmod 0555; the other cases cover root")
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        return folder / "sub"
    regular = tmp_path / "a-regular-file"
    regular.write_text("")
    return regular / "sub"  # mkdir fails with ENOTDIR, for every user


COMMANDS = {
    "run": ["run", "echo", "--inputs", '{"task": "t"}', "--json"],
    "crew": ["crew", "echo", "--inputs", '{"topic": "t"}', "--json"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", ["under-a-file", "chmod"])
def test_unwritable_output_folder_stops_the_run_before_any_model_call(
    project, scripted, capsys, tmp_path, kind, command
):
    add_flow(project, "echo")
    add_crew(project)
    (project / "output").symlink_to(_unwritable(kind, tmp_path), target_is_directory=True)
    code, out, err = run_cli(capsys, *COMMANDS[command])
    assert code == 2
    assert err.startswith(f"error: output folder {project / 'output'} ") and "not writable" in err
    assert len(err.splitlines()) == 1 and out == ""
    assert scripted.calls == []


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", ["under-a-file", "chmod"])
def test_unwritable_crewkit_home_is_named_before_any_model_call(
    project, scripted, capsys, tmp_path, monkeypatch, kind, command
):
    home = _unwritable(kind, tmp_path)
    monkeypatch.setenv("CREWKIT_HOME", str(home))
    monkeypatch.delenv("CREWAI_STORAGE_DIR")
    add_flow(project, "echo")
    add_crew(project)
    code, out, err = run_cli(capsys, *COMMANDS[command][:-1])
    assert code == 2
    assert err.startswith(f"error: CREWKIT_HOME {home} ") and "not writable" in err
    assert "set CREWKIT_HOME to a writable folder" in err and "flows/" not in err
    assert len(err.splitlines()) == 1
    assert scripted.calls == [] and not (project / "output").exists()


def _read_only_mount_prefix(folder: Path) -> list[str]:
    """`unshare -rm` with `folder` bind-mounted read-only: EROFS for root too; skip where unavailable."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) for a read-only mount")
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", 'mount --bind -o ro "$1" "$1"', "sh", str(folder)],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"user or mount namespaces unavailable here: {probe.stderr.strip()[-200:]}")
    return [
        "unshare",
        "-rm",
        "sh",
        "-c",
        'mount --bind -o ro "$1" "$1" && shift && exec "$@"',
        "sh",
        str(folder),
    ]


def test_read_only_crewkit_home_in_a_fresh_process_is_one_line_naming_it(project, tmp_path):
    """In a fresh process (CrewAI not yet imported) the old code blamed flows/default.py."""
    home = tmp_path / "home"
    home.mkdir()
    env = env_for(project, CREWKIT_HOME=str(home))
    env.pop("CREWAI_STORAGE_DIR", None)
    cmd = [
        *_read_only_mount_prefix(home),
        sys.executable,
        "-m",
        "crewkit.cli",
        "run",
        "--inputs",
        '{"task": "t"}',
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=project, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        f"error: CREWKIT_HOME {home} is not writable (Read-only file system); "
        "set CREWKIT_HOME to a writable folder (in .env or the environment)\n"
    )
    assert not (project / "output").exists()


# ---------------------------------------------------------------------------------------------
# Ctrl-C


def test_ctrl_c_stops_the_run_at_once_with_a_record_and_exit_130(project):
    add_flow(project, "slow")
    proc = subprocess.Popen(
        [sys.executable, "-c", CONSOLE_SCRIPT, "run", "slow", "--inputs", "{}", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(project),
        cwd=project,
    )
    try:
        seen = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # wait until the step is sleeping inside CrewAI's thread
            line = proc.stderr.readline()
            seen.append(line)
            if "> sleeping" in line or not line:
                break
        assert "> sleeping" in seen[-1], "".join(seen)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        out, err = proc.communicate(timeout=20)  # the step sleeps 60 s: waiting for it fails here
        stopped_in = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert stopped_in < 10
    (record_path,) = (project / "output").glob("*.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "interrupted"
    assert record["error"] == "interrupted by the user (Ctrl-C)"
    assert record["plan"] == [{"id": "s1", "task_type": "reasoning", "description": "wait"}]
    assert f"interrupted: run {record['run_id']} was stopped by the user" in err
    assert str(record_path) in err
    assert json.loads(out.splitlines()[-1]) == {
        "run_id": record["run_id"],
        "status": "interrupted",
        "output_file": str(record_path),
    }


# ---------------------------------------------------------------------------------------------
# Names checked before CrewAI is imported; small contracts


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "defualt", "--inputs", '{"task": "x"}'], "unknown flow 'defualt' (did you mean 'default'?)"),
        (["run", "defualt"], "unknown flow 'defualt'"),
        (["crew", "plannr"], "unknown crew 'plannr' (did you mean 'planner'?)"),
        (["plot", "defualt"], "unknown flow 'defualt'"),
    ],
)
def test_unknown_names_are_reported_before_crewai_is_imported(project, argv, expected):
    script = (
        "import sys; from crewkit.cli import main; code = main(sys.argv[1:]); "
        "print('crewai imported' if 'crewai' in sys.modules else 'crewai not imported'); sys.exit(code)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *argv],
        capture_output=True,
        text=True,
        env=env_for(project),
        cwd=project,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == "crewai not imported\n"
    assert proc.stderr.startswith("error: ") and expected in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_version(capsys):
    from crewkit import __version__

    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.startswith(f"crewkit {__version__} (crewai 1.")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--bogus"], "No such option '--bogus'"),
        (["models", "list", "--format", "xml"], "'xml' is not one of 'table', 'json'"),
        (["crew"], "Missing argument 'NAME'"),
        (["nope"], "No such command 'nope'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(project, capsys, argv, expected):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and expected in err and len(err.splitlines()) == 1


def test_library_warnings_are_redacted_on_the_terminal(project):
    """Without a handler, Python's last-resort handler printed log records past every filter."""
    script = (
        "import logging; from crewkit.cli import main; main(['--version']); "
        "logging.getLogger('litellm').warning('401 from provider: key %s rejected', 'sk-proj-"
        + "Z" * 30
        + "')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env_for(project), timeout=120
    )
    assert proc.returncode == 0
    assert "ZZZZZZZZZZ" not in proc.stderr
    assert "WARNING litellm: 401 from provider: key [REDACTED] rejected" in proc.stderr
