"""Shared fixtures: no network, a temporary CREWKIT_HOME, telemetry off, a copy of the project.

The network guard refuses every socket connection except to loopback, so a test that would
reach a hosted model (or CrewAI's telemetry) fails instead of silently calling out.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

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
