"""uvw, the README's bootstrap: uv on any Python 3.11+, with no pip, venv or PEP 668 exemption.

The subprocess tests run uvw with `python -I -S` (no site-packages: no pip, no importable uv)
and a PATH without uv, against a fake uv wheel served on loopback and a uv.lock naming it.
"""

from __future__ import annotations

import hashlib
import http.server
import importlib.machinery
import importlib.util
import io
import os
import re
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAKE_UV = (
    '#!/bin/sh\nif [ "$1" = "--version" ]; then echo "uv 9.9.9"; exit 0; fi\necho "wheel-uv $*"\nexit 3\n'
)

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the fake uv binaries are shell scripts")


def load_uvw():
    loader = importlib.machinery.SourceFileLoader("uvw", str(ROOT / "uvw"))
    spec = importlib.util.spec_from_loader("uvw", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def fake_wheel(version: str = "9.9.9") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            f"uv-{version}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: uv\nVersion: {version}\n"
        )
        archive.writestr(
            f"uv-{version}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: py3-none-any\n"
        )
        archive.writestr(f"uv-{version}.data/scripts/uv", FAKE_UV)
    return buffer.getvalue()


@pytest.fixture
def wheel_server() -> Iterator[tuple[str, list[str]]]:
    """Serve the fake wheel on 127.0.0.1; yields (base URL, paths requested)."""
    body, requested = fake_wheel(), []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            requested.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requested
    server.shutdown()
    server.server_close()


def tag() -> str:
    """A wheel platform tag that uvw accepts on this machine."""
    import platform

    uvw = load_uvw()
    libc = platform.libc_ver()[0] if sys.platform.startswith("linux") else ""
    patterns = uvw.platform_patterns(sys.platform, platform.machine(), libc)
    for arch in ("x86_64", "aarch64", "arm64", "i686"):
        for candidate in (f"manylinux_2_17_{arch}", f"musllinux_1_1_{arch}", f"macosx_11_0_{arch}"):
            if any(re.fullmatch(p, candidate) for p in patterns):
                return candidate
    pytest.skip(f"no sample wheel tag for {sys.platform}/{platform.machine()}")


def project(tmp_path: Path, base_url: str, sha256: str, version: str = "9.9.9") -> Path:
    """A folder holding uvw and a uv.lock that pins a uv wheel on base_url."""
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "uvw").write_text((ROOT / "uvw").read_text())
    (folder / "uv.lock").write_text(
        "version = 1\n\n[[package]]\n"
        f'name = "uv"\nversion = "{version}"\n'
        f'wheels = [{{ url = "{base_url}/uv-{version}-py3-none-{tag()}.whl", hash = "sha256:{sha256}" }}]\n'
    )
    return folder


def run_uvw(folder: Path, *args: str, path: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "HOME": str(folder), "LANG": "C.UTF-8"}
    return subprocess.run(
        [sys.executable, "-I", "-S", str(folder / "uvw"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=60,
    )


def test_uvw_fetches_the_locked_wheel_checks_it_and_runs_uv_with_the_arguments(tmp_path, wheel_server):
    base, requested = wheel_server
    folder = project(tmp_path, base, hashlib.sha256(fake_wheel()).hexdigest())
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = run_uvw(folder, "run", "--locked", "pytest", path=str(empty))
    assert proc.stdout == "wheel-uv run --locked pytest\n", proc.stderr
    assert proc.returncode == 3  # uv's exit code is uvw's
    assert "uvw: fetching uv 9.9.9" in proc.stderr
    assert os.access(folder / ".uvw" / "uv-9.9.9" / "uv", os.X_OK)
    assert (folder / ".uvw" / ".gitignore").read_text() == "*\n"  # never committed
    assert len(requested) == 1
    # the second run uses the unpacked binary: no download
    again = run_uvw(folder, "sync", path=str(empty))
    assert again.stdout == "wheel-uv sync\n" and len(requested) == 1 and "fetching" not in again.stderr


def test_uvw_refuses_a_wheel_whose_sha256_is_not_the_locked_one(tmp_path, wheel_server):
    base, _ = wheel_server
    folder = project(tmp_path, base, "0" * 64)
    proc = run_uvw(folder, "sync", path=str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: uvw: ")
    assert "but uv.lock pins 0000" in proc.stderr and "refusing to run it" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (folder / ".uvw" / "uv-9.9.9" / "uv").exists()


def test_uvw_uses_a_uv_on_path_only_when_it_is_at_least_the_locked_version(tmp_path, wheel_server):
    base, requested = wheel_server
    folder = project(tmp_path, base, hashlib.sha256(fake_wheel()).hexdigest())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    path_uv = bin_dir / "uv"
    path_uv.write_text(
        '#!/bin/sh\nif [ "$1" = "--version" ]; then echo "uv 10.0.0"; exit 0; fi\necho "path-uv $*"\n'
    )
    path_uv.chmod(0o755)
    newer = run_uvw(folder, "lock", path=str(bin_dir))
    assert newer.stdout == "path-uv lock\n" and newer.returncode == 0 and requested == []

    path_uv.write_text(path_uv.read_text().replace("uv 10.0.0", "uv 9.9.1"))
    older = run_uvw(folder, "lock", path=str(bin_dir))
    assert older.stdout == "wheel-uv lock\n" and len(requested) == 1


def test_uvw_names_the_problem_when_uv_lock_pins_no_uv(tmp_path):
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "uvw").write_text((ROOT / "uvw").read_text())
    (folder / "uv.lock").write_text('version = 1\n\n[[package]]\nname = "crewai"\nversion = "1.0"\n')
    proc = run_uvw(folder, "sync", path=str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: uvw: ") and "pins no uv version; install uv" in proc.stderr


@pytest.mark.parametrize(
    ("system", "machine", "libc", "expected"),
    [
        ("linux", "x86_64", "glibc", "manylinux_2_17_x86_64.manylinux2014_x86_64"),
        ("linux", "x86_64", "", "musllinux_1_1_x86_64"),
        ("linux", "aarch64", "glibc", "manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64"),
        ("darwin", "arm64", "", "macosx_11_0_arm64"),
        ("darwin", "x86_64", "", "macosx_10_12_x86_64"),
        ("win32", "AMD64", "", "win_amd64"),
    ],
)
def test_uvw_picks_this_platforms_wheel_from_the_real_uv_lock(system, machine, libc, expected):
    uvw = load_uvw()
    version, wheels = uvw.locked_uv(ROOT / "uv.lock")
    wheel = uvw.pick_wheel(wheels, uvw.platform_patterns(system, machine, libc))
    assert wheel is not None
    assert str(wheel["url"]).endswith(f"uv-{version}-py3-none-{expected}.whl")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", str(wheel["hash"]))


def test_uvw_finds_no_wheel_for_an_unknown_platform():
    uvw = load_uvw()
    _, wheels = uvw.locked_uv(ROOT / "uv.lock")
    assert uvw.pick_wheel(wheels, uvw.platform_patterns("sunos5", "sparc", "")) is None


def readme_commands() -> list[str]:
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", quick_start, re.S)]


def test_the_readme_quick_start_needs_no_pip_and_ci_runs_its_test_command():
    run_flow, run_tests = readme_commands()
    assert run_flow.startswith("python3 uvw run --locked crewkit run ")
    assert run_tests == "python3 uvw run --locked pytest"
    assert "pip install" not in run_flow + run_tests
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert run_tests in ci


@pytest.mark.parametrize(("pytest_rc", "ci_rc"), [(0, 0), (1, 1), (2, 2), (5, 1)])
def test_ci_run_passes_pytests_exit_code_through_and_fails_when_nothing_was_collected(
    tmp_path, pytest_rc, ci_rc
):
    # .ci/run in a copy whose uvw stands in for uv + pytest and exits with pytest's code
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "run").write_text((ROOT / ".ci" / "run").read_text())
    (tmp_path / "uvw").write_text(f"import sys\nprint(' '.join(sys.argv[1:]))\nsys.exit({pytest_rc})\n")
    proc = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], capture_output=True, text=True, timeout=60)
    assert proc.stdout == "run --locked pytest\n"
    assert proc.returncode == ci_rc
    assert ("collected no tests" in proc.stderr) == (pytest_rc == 5)


def test_uvw_uses_an_importable_uv_package_when_none_is_on_path(tmp_path, wheel_server):
    """`pip install --user uv` puts uv in a package, not always on PATH: uvw finds it there."""
    base, requested = wheel_server
    folder = project(tmp_path, base, hashlib.sha256(fake_wheel()).hexdigest())
    binary = tmp_path / "pkg-uv"
    binary.write_text(
        '#!/bin/sh\nif [ "$1" = "--version" ]; then echo "uv 9.9.9"; exit 0; fi\necho "pkg-uv $*"\n'
    )
    binary.chmod(0o755)
    site = tmp_path / "site" / "uv"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text(f"def find_uv_bin():\n    return {str(binary)!r}\n")
    env = {"PATH": str(tmp_path / "site"), "PYTHONPATH": str(tmp_path / "site"), "HOME": str(folder)}
    proc = subprocess.run(
        [sys.executable, "-S", str(folder / "uvw"), "sync"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.stdout == "pkg-uv sync\n", proc.stderr
    assert requested == []


def test_uvw_gets_the_locked_wheel_through_pip_when_pip_is_there(tmp_path, wheel_server):
    """pip's own settings (here a local find-links folder) apply; the lock's URL is not asked."""
    base, requested = wheel_server
    body = fake_wheel()
    folder = project(tmp_path, base, hashlib.sha256(body).hexdigest())
    links = tmp_path / "links"
    links.mkdir()
    (links / f"uv-9.9.9-py3-none-{tag()}.whl").write_bytes(body)
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {
        "PATH": str(empty),
        "HOME": str(folder),
        "LANG": "C.UTF-8",
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(links),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_CONSTRAINT": "",
    }
    with_pip = [
        exe
        for exe in dict.fromkeys([sys.executable, getattr(sys, "_base_executable", sys.executable)])
        if subprocess.run([exe, "-I", "-c", "import pip"], capture_output=True).returncode == 0
    ]
    if not with_pip:
        pytest.skip("no Python with pip here (uv's venvs have none)")
    proc = subprocess.run(
        [with_pip[0], "-I", str(folder / "uvw"), "sync"],
        capture_output=True, text=True, env=env, cwd=folder, timeout=120,
    )  # fmt: skip
    assert proc.stdout == "wheel-uv sync\n", proc.stderr
    assert requested == []  # pip fetched it; the URL in uv.lock was never used
