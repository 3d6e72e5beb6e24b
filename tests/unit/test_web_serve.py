"""`crewkit serve`: the address checks, the token sources and what the terminal says.

Driven through `crewkit.cli.main([...])` as a person's command line; uvicorn itself is replaced
by a recorder where the test is about what happens before it would start serving.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crewkit.cli import main
from crewkit.web import auth
from tests.web_support import free_port


@pytest.fixture
def no_env_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(auth.TOKEN_ENV, raising=False)
    monkeypatch.delenv(auth.USERS_ENV, raising=False)


@pytest.fixture
def uvicorn_runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """uvicorn.run replaced: each call's app and options are recorded, nothing is served."""
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    return calls


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_a_port_in_use_is_one_line_and_exit_2(project, capsys, uvicorn_runs, no_env_tokens):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"port {port} on 127.0.0.1 is in use" in line and "--port" in line
    assert uvicorn_runs == []


@pytest.mark.parametrize("host", ["192.0.2.1", "203.0.113.77"])  # documentation nets: on no machine
def test_a_host_that_is_not_this_machines_is_one_line_and_exit_2(project, capsys, uvicorn_runs, host):
    assert main(["serve", "--host", host, "--port", str(free_port())]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"--host {host}: not an address of this machine" in line
    assert uvicorn_runs == []


def test_a_host_name_that_does_not_resolve_is_one_line_and_exit_2(project, capsys, uvicorn_runs):
    assert main(["serve", "--host", "no such host", "--port", str(free_port())]) == 2
    assert "not an address of this machine" in one_line(capsys.readouterr().err)
    assert uvicorn_runs == []


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_a_port_out_of_range_is_a_usage_error(project, capsys, uvicorn_runs, port):
    assert main(["serve", "--port", port]) == 2
    assert "--port" in capsys.readouterr().err
    assert uvicorn_runs == []


def test_a_short_console_token_is_refused_without_echoing_it(project, capsys, uvicorn_runs, monkeypatch):
    monkeypatch.setenv(auth.TOKEN_ENV, "hunter2-short")
    assert main(["serve", "--port", str(free_port())]) == 2
    line = one_line(capsys.readouterr().err)
    assert auth.TOKEN_ENV in line and "at least 16" in line and "hunter2-short" not in line
    assert uvicorn_runs == []


def test_malformed_console_users_are_refused(project, capsys, uvicorn_runs, monkeypatch):
    monkeypatch.setenv(auth.USERS_ENV, "alice:tooshort bob:" + "b" * 20)
    assert main(["serve", "--port", str(free_port())]) == 2
    line = one_line(capsys.readouterr().err)
    assert auth.USERS_ENV in line and "tooshort" not in line
    assert uvicorn_runs == []


def test_without_env_tokens_serve_writes_a_token_file_and_names_it_never_the_token(
    project, capsys, uvicorn_runs, no_env_tokens
):
    port = free_port()
    assert main(["serve", "--port", str(port)]) == 0
    out = capsys.readouterr()
    home = Path(os.environ["CREWKIT_HOME"])
    token_file = home / auth.TOKEN_FILE
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    said = out.err + out.out
    assert f"http://127.0.0.1:{port}/" in said and str(token_file) in said
    assert token not in said
    (call,) = uvicorn_runs
    assert call["host"] == "127.0.0.1" and call["port"] == port
    assert call["access_log"] is False and call["server_header"] is False
    app = call["app"]
    assert app.state.private_reads is False and app.state.auth.shared == token
    assert app.state.settings.project_dir.resolve() == project.resolve()


def test_env_tokens_are_used_and_no_file_is_written(project, capsys, uvicorn_runs, monkeypatch):
    monkeypatch.delenv(auth.TOKEN_ENV, raising=False)
    monkeypatch.setenv(auth.USERS_ENV, "alice:" + "a" * 20 + " bob:" + "b" * 20)
    assert main(["serve", "--port", str(free_port())]) == 0
    said = capsys.readouterr().err
    assert auth.USERS_ENV in said and "a" * 20 not in said
    assert not (Path(os.environ["CREWKIT_HOME"]) / auth.TOKEN_FILE).exists()
    assert uvicorn_runs[0]["app"].state.auth.users == {"a" * 20: "alice", "b" * 20: "bob"}


def test_a_non_loopback_host_makes_reads_private_and_says_so(project, capsys, uvicorn_runs, no_env_tokens):
    assert main(["serve", "--host", "0.0.0.0", "--port", str(free_port())]) == 0
    said = capsys.readouterr().err
    assert "reading needs a sign-in too" in said and "TLS" in said
    assert uvicorn_runs[0]["app"].state.private_reads is True


def test_serve_help_is_fast_and_loads_no_web_server():
    probe = (
        "import sys, time; t = time.monotonic(); from crewkit.cli import main; rc = main(['serve', '--help']); "
        "print('LOADED', sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'crewai') if m in sys.modules)); "
        "print('SECONDS', time.monotonic() - t); sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--host" in done.stdout and "--port" in done.stdout and "CREWKIT_CONSOLE_TOKEN" in done.stdout
    assert "LOADED []" in done.stdout, done.stdout[-500:]
    seconds = float(done.stdout.split("SECONDS", 1)[1].split()[0])
    assert seconds < 10, seconds
