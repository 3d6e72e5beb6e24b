"""`crewkit serve`: the console on HOST:PORT under uvicorn, until Ctrl-C.

Loopback (127.0.0.1) by default; on another address reading needs a sign-in too. The access
log is off (paths carry ids, nothing secret, but the terminal stays for errors); uvicorn's own
errors go to stderr through crewkit's redacting handler.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from crewkit.errors import UsageError

DEFAULT_PORT = 8787


def check_port(host: str, port: int) -> None:
    """One line (exit 2) when the address cannot be bound, before uvicorn prints its own."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"port {port} on {host} is in use; pick another with --port N") from None
            if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
                raise UsageError(
                    f"--host {host}: not an address of this machine; the default is 127.0.0.1"
                ) from None
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(settings: Any, host: str, port: int, say: Any = print) -> None:
    import uvicorn

    from crewkit.web import auth
    from crewkit.web.app import create_app

    check_port(host, port)
    tokens = auth.Auth.from_env(settings.home)
    app = create_app(settings, tokens, host=host)
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    say(f"crewkit console: http://{shown}:{port}/  (Ctrl-C stops it)")
    say(f"sign in to act with the token from {tokens.source}")
    if not auth.is_loopback(host):
        say(f"listening on {host}: reading needs a sign-in too; put TLS in front before exposing it")
    uvicorn.run(
        app, host=host.strip("[]"), port=port, log_level="warning", access_log=False, server_header=False
    )
