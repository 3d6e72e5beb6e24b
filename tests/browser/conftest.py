"""Fixtures for driving the console in headless Chromium (Playwright + the system's Chromium).

    def test_x(project, console, page):      # console: the app live on a free port (console.url)
        sign_in(page, console.url, "bob")
        page.goto(console.url + "/approvals")
        shot(page, "approvals-pending")       # output/screenshots/<name>.png, checked not blank

`console` serves `make_app(project, resumer=console_resumer)`; a test that needs another
resumer or app builds its own with `tests.web_support.live`. Every test gets a fresh browser
context (no cookies from another test). The screenshots written are listed at the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import chromium
from tests.web_support import TOKEN, Resumer, live, make_app

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "output" / "screenshots"  # named at the end of the run (tests/conftest.py)

pytestmark = pytest.mark.browser


@dataclass
class LiveConsole:
    url: str
    app: Any

    @property
    def store(self) -> Any:
        return self.app.state.store


@pytest.fixture
def console_resumer() -> Any:
    """How the test console continues a decided run (default: records the run ids it was given)."""
    return Resumer()


@pytest.fixture
def console(project: Path, console_resumer: Any) -> Iterator[LiveConsole]:
    app = make_app(project, resumer=console_resumer)
    with live(app) as url:
        yield LiveConsole(url=url, app=app)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Playwright and Chromium for one test. Not shared across tests: while Playwright's sync API
    is started it leaves an event loop running on this thread, and a later test in the same
    worker that kicks off a crew synchronously would be refused by CrewAI ("invoked
    synchronously from within a running event loop")."""
    from playwright.sync_api import sync_playwright

    path = chromium.executable()
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=path, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


def sign_in(page: Any, url: str, name: str = "bob", token: str = TOKEN) -> None:
    """Sign in through the form, as a person would; fails the test if it does not take."""
    page.goto(url + "/signin")
    if page.locator("input[name=name]").count():
        page.fill("input[name=name]", name)
    page.fill("input[name=token]", token)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#signed-in-as")
    assert page.inner_text("#signed-in-as").strip() == name


def shot(page: Any, name: str) -> Path:
    """Screenshot the whole page to SHOTS/<name>.png and check it shows something (not one colour)."""
    from PIL import Image

    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    with Image.open(path) as image:
        assert image.width >= 800 and image.height >= 300, f"{path}: {image.size}"
        extrema = image.convert("L").getextrema()
        assert extrema[1] - extrema[0] > 40, f"{path} is blank (grey levels {extrema})"
    return path
