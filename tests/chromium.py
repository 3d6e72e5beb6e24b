"""The browser the console's tests drive: Debian's (or the system's) Chromium, found or installed.

`executable()` returns a Chromium to launch with Playwright. It looks at CREWKIT_CHROMIUM, then
`chromium`, `chromium-browser`, `google-chrome` on PATH. When there is none and the tests run as
root on a machine with apt-get (CI here), it installs Debian's `chromium` package once, under a
file lock so parallel workers wait for one install; Playwright never downloads a browser of its
own. Elsewhere it skips with the command to run, except under CI=true, where it fails.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HOW = "install it (Debian/Ubuntu: sudo apt-get install chromium) or set CREWKIT_CHROMIUM=/path/to/chrome"


def find() -> str | None:
    given = os.environ.get("CREWKIT_CHROMIUM")
    if given:
        return given if Path(given).is_file() else None
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _install() -> str | None:
    """apt-get install chromium (root only); the log goes to a temp file named on failure."""
    log = Path(tempfile.gettempdir()) / "crewkit-chromium-install.log"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with log.open("w") as out:
        for argv in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
        ):
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=1200)
            if done.returncode != 0:
                raise RuntimeError(f"`{' '.join(argv)}` failed (exit {done.returncode}); see {log}")
    return find()


def executable() -> str:
    found = find()
    if found:
        return found
    if (
        hasattr(os, "geteuid")
        and os.geteuid() == 0
        and shutil.which("apt-get")
        and not os.environ.get("CREWKIT_CHROMIUM")
    ):
        lock = Path(tempfile.gettempdir()) / "crewkit-chromium-install.lock"
        with lock.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # one worker installs, the others wait and find it
            found = find() or _install()
        if found:
            return found
    message = f"the console's browser tests need Chromium, and none was found: {HOW}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
