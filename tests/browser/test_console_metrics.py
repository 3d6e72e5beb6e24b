"""The metrics and schedules rooms in headless Chromium: a person reads the figures, regroups
them, charts another figure, mistypes a window, and follows a scheduled fire to its run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.conftest import shot, sign_in
from tests.unit.test_scheduler import JOB, FakeLauncher, make, minute, project_with, run
from tests.unit.test_web_metrics import _call
from tests.web_support import live, make_app


def _record_calls(store: Any) -> None:
    from crewkit.observability.metrics import MetricsSubscriber

    sub = MetricsSubscriber(store, "r1", flow="default", profile="startup")
    for i in range(24):
        _call(sub, seconds=0.02 * (i + 1), error="timeout" if i < 2 else None)
    for i in range(6):
        _call(
            sub,
            role="code",
            model="gpt-4o",
            agent="Coder",
            seconds=0.8 + 0.1 * i,
            tokens=(400, 200),
            cost=0.3,
        )
    for _ in range(3):
        _call(
            sub, role="embedding", model="local-embed", agent="Memory", seconds=0.01, tokens=(50, 0), cost=0.0
        )
    sub.flush()


def test_metrics_regroup_rechart_and_a_bad_window(console: Any, page: Any) -> None:
    _record_calls(console.store)
    sign_in(page, console.url, "bob")
    page.click("nav >> text=Metrics")
    page.wait_for_selector("#metrics-table")
    rows = page.locator("#metrics-table tbody tr.metric-row")
    assert rows.count() == 3
    reasoning = page.locator('tr[data-group="reasoning|local-small"]')
    assert reasoning.locator("td.calls").inner_text() == "24"
    assert reasoning.locator("td.errors").inner_text() == "2"
    assert reasoning.locator("td.error-rate").inner_text() == "8.3%"
    assert page.locator("#metrics-chart .bar").count() == 3
    assert page.locator("#profile-startup .slo-status").count() == 3
    shot(page, "metrics-overview")

    page.fill("input[name=by]", "model")
    page.select_option("select[name=chart]", "cost")
    page.click("#metrics-form button[type=submit]")
    page.wait_for_url("**/metrics?*by=model*")
    assert page.locator("#metrics-table thead th").first.inner_text() == "model"
    first_bar = page.locator("#metrics-chart .bar").first
    assert first_bar.locator(".bar-label").text_content() == "gpt-4o"  # the dearest model leads
    assert first_bar.locator(".bar-value").text_content() == "$1.80"
    page.click('a.window[data-window="7d"]')
    page.wait_for_url("**since=7d*")
    assert "by=model" in page.url and page.locator("#metrics-table tbody tr").count() == 3

    page.fill("input[name=since]", "yesterday")
    page.click("#metrics-form button[type=submit]")
    message = page.locator("#error-message")
    assert "since 'yesterday' is not a date or an age" in message.inner_text()
    assert "422" in page.locator("h1").inner_text()
    shot(page, "metrics-bad-window")


def test_schedules_show_jobs_and_fires_that_lead_to_their_runs(project: Path, page: Any) -> None:
    jobs = JOB + "  - {name: nightly, cron: '30 2 * * *', timezone: Europe/Paris, enabled: false}\n"
    settings = project_with(project, jobs)
    s = make(settings, minute(0), FakeLauncher(statuses=["done", "failed"]))
    run(s, minute(1) + 0.2)
    run(s, minute(2) + 0.2)
    with live(make_app(project)) as url:
        sign_in(page, url, "bob")
        page.click("nav >> text=Schedules")
        page.wait_for_selector("#jobs-table")
        tick = page.locator('tr.job[data-job="tick"]')
        assert tick.locator(".next-fire").count() == 3
        assert "failed" in tick.locator("td.last").inner_text()
        assert page.locator('tr.job[data-job="nightly"] .job-enabled').inner_text() == "disabled"
        assert page.locator("#fires-table tr.fire").count() == 2
        shot(page, "schedules-jobs")

        tick.locator("a.job-link").click()
        page.wait_for_url("**/schedules/tick")
        assert page.locator("#next-fires li").count() == 5
        statuses = page.locator("#fires-table .fire-status").all_inner_texts()
        assert statuses == ["failed", "done"]
        shot(page, "schedules-job")
        page.locator("#fires-table a.run-link").first.click()
        page.wait_for_url("**/runs/run-2")
