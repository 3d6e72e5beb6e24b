"""Signing in and out in a real browser; every room renders under the console's strict CSP."""

from __future__ import annotations

import re
from typing import Any

import pytest

from crewkit.web.render import NAV
from tests.browser.conftest import shot, sign_in
from tests.web_support import TOKEN, live, make_app

pytestmark = pytest.mark.browser


def test_a_wrong_token_is_refused_then_the_right_one_leads_back_to_the_page_asked_for(project, console, page):
    page.goto(console.url + "/approvals")
    page.click("#signin-link")
    page.wait_for_url(re.compile(r"/signin\?next=(/|%2F)approvals$"))
    shot(page, "auth-signin-form")
    page.fill("input[name=name]", "bob")
    page.fill("input[name=token]", "not-the-token-0000000000")
    page.click("#signin-form button[type=submit]")
    assert "wrong token" in page.inner_text("#error-message")
    assert page.locator("#signed-in-as").count() == 0
    shot(page, "auth-wrong-token")

    page.goto(console.url + "/signin?next=/approvals")
    sign_in_form = page.locator("#signin-form")
    sign_in_form.locator("input[name=name]").fill("bob")
    sign_in_form.locator("input[name=token]").fill(TOKEN)
    sign_in_form.locator("button[type=submit]").click()
    page.wait_for_selector("#signed-in-as")
    assert page.url.endswith("/approvals")
    assert "signed in as bob" in page.inner_text("main")

    page.click("header .who button[type=submit]")  # Sign out
    page.wait_for_selector("#signin-link")
    assert page.locator("#signed-in-as").count() == 0


def test_every_room_renders_without_a_content_security_policy_violation(project, console, page):
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    sign_in(page, console.url, "bob")
    for href, label in NAV:
        answer = page.goto(console.url + href)
        assert answer is not None and answer.status == 200, (href, answer and answer.status)
        assert page.locator("header.top nav a.active").inner_text().strip().startswith(label), href
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems


def test_on_a_non_loopback_console_a_reader_signs_in_first(project, page):
    app: Any = make_app(project, host="0.0.0.0")  # served on loopback here; it behaves as if exposed
    with live(app) as url:
        answer = page.goto(url + "/runs")
        assert answer is not None and answer.status == 401
        assert "sign in to read" in page.inner_text("#error-message")
        assert page.locator("#pending-count").count() == 0
        shot(page, "auth-private-read")
        sign_in(page, url, "bob")
        answer = page.goto(url + "/runs")
        assert answer is not None and answer.status == 200
