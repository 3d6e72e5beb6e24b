"""Shared fixtures: no network, a temporary CREWKIT_HOME, telemetry off, a copy of the project.

The network guard refuses every socket connection except to loopback, so a test that would
reach a hosted model (or CrewAI's telemetry) fails instead of silently calling out. A test that
leaves ScriptedLLM replies unused fails at teardown (`scripted_replies_used`). `netless` gives
the `unshare -rn` prefix for a run with no network namespace, or skips where user namespaces
are unavailable.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]  # tests/unit/test_harness.py runs small suites against these fixtures

from crewkit.settings import TELEMETRY_OFF  # noqa: E402 - cheap, and must precede any CrewAI import

for key, value in TELEMETRY_OFF.items():
    os.environ[key] = value
for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "MODEL"):
    os.environ.pop(key, None)


class NetworkBlocked(AssertionError):
    pass


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = str(address[0])
        return host in ("localhost", "::1") or host.startswith("127.")
    return isinstance(address, str | bytes)  # unix sockets


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_loopback(address):
        raise NetworkBlocked(f"test tried to open a network connection to {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_loopback(address):
        raise NetworkBlocked(f"test tried to open a network connection to {address!r}")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)


CALL_PASSED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.stash[CALL_PASSED] = report.passed
    return report


@pytest.fixture(autouse=True)
def scripted_replies_used(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a passing test whose ScriptedLLMs (or `by_agent` scripts) still hold replies at its end.

    A test that failed or was skipped is not failed again: its leftovers are dropped.
    """
    yield
    fakes = sys.modules.get("tests.fakes")  # not imported: no ScriptedLLM, nothing to check
    problems = fakes.unused_replies() if fakes else []
    if problems and request.node.stash.get(CALL_PASSED, False):
        pytest.fail(
            "scripted replies left unused (an expected model call never happened; remove them or "
            "pass allow_unused=True):\n" + "\n".join(problems),
            pytrace=False,
        )


NETLESS = ["unshare", "-rn"]


@cache
def netless_unavailable(prefix: tuple[str, ...]) -> str | None:
    """Why `prefix + command` cannot run here (no unshare, no user namespaces), or None."""
    if shutil.which(prefix[0]) is None:
        return f"needs `{prefix[0]}` (util-linux) for a run with no network"
    try:
        proc = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`{' '.join(prefix)} true` failed: {exc}"
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        return f"user namespaces are unavailable here (`{' '.join(prefix)} true`: {detail})"
    return None


@pytest.fixture
def netless() -> list[str]:
    """The command prefix that runs a program with no network; skips the test where it cannot."""
    reason = netless_unavailable(tuple(NETLESS))
    if reason:
        pytest.skip(reason)
    return list(NETLESS)


@pytest.fixture(autouse=True)
def fresh_cooldowns() -> None:
    """Model cooldowns are per process (crewkit.models.cooldown): each test starts with none, so
    one test's failing models are not skipped in the next."""
    from crewkit.models.cooldown import REGISTRY

    REGISTRY.clear()


@pytest.fixture(autouse=True)
def crewkit_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("crewkit-home")
    monkeypatch.setenv("CREWKIT_HOME", str(home))
    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(home / "crewai"))
    return home


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's config, crews and flows in a temp dir (safe to edit)."""
    target = tmp_path / "proj"
    for folder in ("config", "crews", "flows", "tools"):
        shutil.copytree(ROOT / folder, target / folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("CREWKIT_PROJECT", str(target))
    monkeypatch.chdir(target)
    return target


@pytest.fixture
def settings(project: Path):
    from crewkit.settings import load_settings

    return load_settings(project)


@pytest.fixture
def scripted(project: Path, monkeypatch: pytest.MonkeyPatch):
    """The CLI's role map with an empty ScriptedLLM on the reasoning role; returns the fake.

    Script replies with `scripted.add(...)`; any call beyond them fails the test.
    """
    from crewkit import cli
    from crewkit.models.registry import RoleMap
    from tests.fakes import ScriptedLLM

    fake = ScriptedLLM([])

    def engine():
        from crewkit.settings import load_settings

        settings = load_settings()
        return settings, RoleMap(settings, overrides={"reasoning": fake})

    monkeypatch.setattr(cli, "_engine", engine)
    return fake


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the folder of the console's browser screenshots (tests/browser), when any were taken."""
    shots = ROOT / "output" / "screenshots"
    found = sorted(shots.glob("*.png")) if shots.is_dir() else []
    if found:
        terminalreporter.write_line(f"console screenshots ({len(found)}): {shots}/")
