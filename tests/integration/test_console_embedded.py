"""End to end: a real run pauses for approval, bob approves it in the console, the run finishes.

Every piece is what a person would use, each in its own process:

1. `kickoff` starts the default flow on the embedded model with a task carrying bank details
   (as alice); the risk gate pauses it (exit 75) with a pending approval;
2. `crewkit serve --port <free>` serves the console on loopback with CREWKIT_CONSOLE_TOKEN;
3. headless Chromium signs in as bob, opens Approvals, sees the pending item and its risk
   reasons, opens it, approves with a note and lands on the run's page; the console starts
   `crewkit resume RUN_ID` on its own; the page (reloading itself while the run works) shows
   the run done with its result and an audit trail holding bob's approval;
4. `crewkit audit verify` passes afterwards.

Rejecting in the page (a reason needed, the run ending `rejected`) is tested on scripted models
in tests/unit/test_web_approvals.py and tests/browser/test_console_approvals.py: a second real run
here would add about a minute of CPU to the suite.

Screenshots of each step land in output/screenshots/console-e2e-*.png.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests import chromium
from tests.browser.conftest import SHOTS, shot, sign_in
from tests.web_support import TOKEN, free_port

pytestmark = [pytest.mark.integration, pytest.mark.browser]
BIN = Path(sys.executable).parent
TASK = "Write a Python function that checks the IBAN DE89 3704 0044 0532 0130 00"
NOTE = "checked: the IBAN is the public sample one, fine to use"
DONE_WITHIN_S = 600
T = TypeVar("T")


def env(project: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "CREWKIT_PROJECT": str(project), **extra}


def run(project: Path, *argv: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, env=env(project, CREWKIT_USER=user), cwd=project, timeout=420
    )


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"crewkit serve exited {process.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"crewkit serve did not listen on 127.0.0.1:{port}: {log.read_text()[-2000:]}")


@pytest.fixture
def served(project: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`crewkit serve` on a free loopback port as a process of its own; yields (url, its log)."""
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "crewkit"), "serve", "--port", str(port)],
            env=env(project, CREWKIT_CONSOLE_TOKEN=TOKEN),
            cwd=project,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_listening(port, process, log)
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def stop(pid: int | None) -> None:
    """End the `crewkit resume` process the console started, if the test ends before it does."""
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)  # it runs in a session (and process group) of its own


def wait_done(tab: Any, run_id: str, final: str = "done") -> list[str]:
    """Watch the run's page until it shows `final`; the statuses seen on the way, in order.

    While the run is running or queued the page reloads itself (meta refresh, 3 s); before the
    resume process has marked it running (still `paused`) a person would reload: so do we."""
    seen: list[str] = []
    deadline = time.monotonic() + DONE_WITHIN_S
    while time.monotonic() < deadline:
        status = tab.inner_text("#run-status").strip()
        if not seen or seen[-1] != status:
            seen.append(status)
            if status == "running":
                shot(tab, "console-e2e-4-run-running")
        if status == final:
            return seen
        assert status in ("paused", "queued", "running"), f"the run ended {status}: {seen}"
        live = tab.locator("meta[http-equiv=refresh]").count() > 0
        if live:
            # the page reloads itself: wait for the next load rather than forcing one
            try:
                with tab.expect_navigation(timeout=10_000):
                    pass
            except Exception:  # noqa: BLE001 - a missed refresh: look again
                tab.reload()
        else:
            tab.wait_for_timeout(3000)
            tab.reload()
        tab.wait_for_selector("#run-status")
    raise AssertionError(f"run {run_id} not {final} within {DONE_WITHIN_S} s; statuses seen: {seen}")


def paused_run(project: Path) -> dict[str, Any]:
    """A real run of the default flow on the embedded model, paused for a person (its --json line)."""
    for script in ("kickoff", "crewkit"):
        if not (BIN / script).exists():
            pytest.skip(f"{BIN / script} is not installed (uv sync installs the project's scripts)")
    started = run(project, str(BIN / "kickoff"), "--inputs", json.dumps({"task": TASK}), "--json")
    assert started.returncode == 75, started.stderr[-3000:]
    line = json.loads(started.stdout.strip().splitlines()[-1])
    assert line["status"] == "paused" and line["approval_id"].startswith("ap-")
    return line


def in_browser(steps: Callable[[Any], T]) -> T:
    """`steps(page)` in headless Chromium on a thread of its own; its result or its exception.

    Playwright's sync API runs one instance per thread, and the browser tests' session-wide
    browser may already be open on this one when the suites run in one process."""
    path = chromium.executable()  # skips (or installs) here, on the test's own thread

    def go() -> T:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            launched = pw.chromium.launch(executable_path=path, headless=True)
            try:
                context = launched.new_context(viewport={"width": 1280, "height": 900})
                context.set_default_timeout(15_000)
                return steps(context.new_page())
            finally:
                launched.close()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="e2e-browser") as pool:
        return pool.submit(go).result()


def report(page: Any, serve_log: Path) -> None:
    """What the browser and the server saw, for a failure's report (pytest shows stdout)."""
    print(f"page {page.url}:\n{page.inner_text('body')[:3000]}")
    print(f"crewkit serve's output:\n{serve_log.read_text()[-5000:]}")
    with contextlib.suppress(Exception):
        shot(page, "console-e2e-failure")


def test_a_paused_run_is_approved_by_bob_in_the_browser_and_finishes(project, served):
    home = Path(os.environ["CREWKIT_HOME"])
    (SHOTS / "console-e2e-failure.png").unlink(missing_ok=True)  # a failed earlier run's

    # 1. a real run of the default flow on the embedded model pauses for a person
    line = paused_run(project)
    run_id, approval_id = line["run_id"], line["approval_id"]
    url, serve_log = served

    def steps(page: Any) -> list[str]:
        resume_pid: int | None = None
        try:
            # 2. bob signs in with the shared token and his name
            sign_in(page, url, "bob")
            shot(page, "console-e2e-1-signed-in")

            # 3. the approvals queue lists the pending item with its risk reasons
            page.click("nav >> text=Approvals")
            page.wait_for_url(re.compile(r"/approvals"))
            row = page.locator(f"tr.approval[data-approval-id='{approval_id}']")
            assert row.count() == 1, page.content()[-3000:]
            assert row.get_attribute("data-status") == "pending"
            assert row.locator("ul.reasons li").count() >= 1
            assert "sensitive" in row.inner_text()
            assert page.inner_text("#pending-count").strip() == "1"
            shot(page, "console-e2e-2-approvals-pending")

            # 4. the approval in full, approved with a note
            row.locator("a.approval-link").click()
            page.wait_for_selector("#decision-form")
            assert page.inner_text("#approval-status").strip() == "pending"
            reasons = page.locator("#approval-reasons li").all_inner_texts()
            assert reasons and all(r.strip() for r in reasons)
            page.fill("#note", NOTE)
            shot(page, "console-e2e-3-approval-detail")
            page.click("#approve-button")

            # 5. the browser lands on the run page; the console started `crewkit resume` itself
            page.wait_for_url(re.compile(rf"/runs/{re.escape(run_id)}$"))
            flashes = " ".join(page.locator("p.flash").all_inner_texts())
            assert f"approval {approval_id} approved by bob" in flashes, flashes
            found = re.search(r"process (\d+)", flashes)
            resume_pid = int(found.group(1)) if found else None
            assert f"resuming run {run_id}" in flashes, flashes

            seen = wait_done(page, run_id)
            assert page.inner_text("#run-result").strip(), "the done run shows no result"
            trail = page.locator("#audit-trail tr.audit[data-action='approval.approved']")
            assert trail.count() == 1
            assert trail.locator(".actor").inner_text().strip() == "bob"
            assert run_id in page.inner_text("#audit-trail")
            decided = page.locator(f"#approvals tr.approval[data-approval-id='{approval_id}']")
            assert decided.locator(".decided-by").inner_text().strip() == "bob"
            assert NOTE in decided.inner_text()
            shot(page, "console-e2e-5-run-done")

            # the queue is empty again
            page.click("nav >> text=Approvals")
            page.wait_for_selector("#approvals-empty")
            return seen
        except Exception:
            report(page, serve_log)
            raise
        finally:
            stop(resume_pid)

    seen = in_browser(steps)
    print(f"statuses the run page showed: {seen}")  # pytest -rP shows it
    assert seen[-1] == "done", seen

    # 6. the record, the audit chain and the resume log agree
    record = json.loads(Path(line["output_file"]).read_text())
    assert record["status"] == "done" and record["run_id"] == run_id
    assert record["approvals"][0]["outcome"] == "approved" and record["approvals"][0]["decided_by"] == "bob"
    assert record["resumed"]["replayed_steps"] == ["plan"]
    verified = run(project, str(BIN / "crewkit"), "audit", "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("ok:"), verified.stderr
    exported = run(project, str(BIN / "crewkit"), "audit", "export", "--run", run_id)
    actions = [json.loads(x) for x in exported.stdout.splitlines() if x.strip()]
    assert any(a["action"] == "approval.approved" and a["actor"] == "bob" for a in actions), actions
    assert (home / "logs" / f"resume-{run_id}.log").exists()
    assert "Traceback" not in serve_log.read_text()
