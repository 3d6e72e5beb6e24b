"""The console's metrics and schedules rooms: the figures `crewkit metrics`, `crewkit budgets show`
and `crewkit schedule list|fires` compute, on rows written through the engine's own recorders."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path
from typing import Any

import pytest

from crewkit.governance.budget import Budgets
from crewkit.observability import metrics
from crewkit.observability.metrics import MetricsSubscriber
from crewkit.runtime import hooks
from crewkit.scheduling import scheduler as sched
from crewkit.settings import load_settings
from tests.unit.test_scheduler import JOB, FakeLauncher, make, minute, project_with, run
from tests.web_support import TOKEN, anonymous, make_app

NOW = time.time()


def _call(
    sub: MetricsSubscriber,
    *,
    role: str = "reasoning",
    model: str = "local-small",
    agent: str = "Planner",
    seconds: float = 0.1,
    error: str | None = None,
    started: float | None = None,
    tokens: tuple[int, int] = (10, 5),
    cost: float = 0.01,
) -> None:
    """One model attempt through the hook path, as RoleLLM reports it."""
    call = hooks.ModelCall(role, model, agent, "plan", "hello", attempt=0)
    if error:
        tokens, cost = (0, 0), 0.0
    result = hooks.ModelResult(
        call,
        None if error else "ok",
        *tokens,
        cost,
        NOW - 60 if started is None else started,
        seconds,
        error=error,
    )
    path = hooks.RunHooks([sub], with_ledger=False, transaction=sub.store.write)
    path.after_model(result)


@pytest.fixture
def app(project: Path) -> Any:
    return make_app(project)


@pytest.fixture
def sub(app: Any) -> MetricsSubscriber:
    return MetricsSubscriber(app.state.store, "r1", flow="default", profile="startup")


def _text(answer: Any) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", answer.text))


def _row(answer: Any, group: str) -> str:
    """The text of the metrics table's row of `group` (`role|model`)."""
    found = re.search(
        rf'<tr class="metric-row" data-group="{re.escape(group)}">(.*?)</tr>', answer.text, re.S
    )
    assert found, f"no row {group!r} in the metrics table"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def _state(app: Any) -> tuple[Any, ...]:
    read = app.state.store.read
    return (
        read("SELECT COUNT(*) FROM metric_events")[0][0],
        read("SELECT COUNT(*) FROM audit")[0][0],
        read("SELECT COUNT(*) FROM slo_alerts")[0][0],
    )


# -- /metrics ------------------------------------------------------------------------------------


def test_metrics_show_percentiles_errors_tokens_and_cost_per_role_and_model(app, sub):
    for i in range(20):  # 10 ms .. 200 ms; the first two fail
        _call(sub, seconds=(i + 1) / 100.0, error="boom" if i < 2 else None)
    for _ in range(3):
        _call(sub, role="code", model="gpt-4o", agent="Coder", seconds=1.5, tokens=(100, 50), cost=0.25)
    sub.flush()
    answer = anonymous(app).get("/metrics")
    assert answer.status_code == 200
    reasoning = _row(answer, "reasoning|local-small")
    # 20 calls, 2 errors (10%), p50 = 100 ms, p95 = 190 ms, p99 = 200 ms, 18 x (10 in, 5 out), 18 x $0.01
    assert reasoning.split() == [
        "reasoning", "local-small", "20", "2", "10.0%", "90.0%", "100", "ms", "190", "ms", "200", "ms",
        "180", "90", "$0.1800", "0",
    ]  # fmt: skip
    code = _row(answer, "code|gpt-4o")
    assert code.split()[:4] == ["code", "gpt-4o", "3", "0"] and "1.50 s" in code and "$0.7500" in code
    total = re.search(r'id="metrics-total">(.*?)</tr>', answer.text, re.S).group(1)
    assert ">23<" in total and "$0.9300" in total


def test_the_page_has_the_figures_summarize_computes(app, sub):
    for i in range(7):
        _call(sub, agent=f"A{i % 2}", seconds=0.05 * (i + 1))
    sub.flush()
    summary = metrics.summarize(app.state.store, NOW - 3600, time.time() + 1, ("agent",))
    answer = anonymous(app).get("/metrics?since=1h&by=agent")
    assert answer.status_code == 200
    for stats in summary.rows:
        row = _row(answer, stats.group["agent"])
        assert row.split()[:3] == [stats.group["agent"], str(stats.calls), str(stats.errors)]
        assert f"{stats.p95_ms:.0f} ms" in row
    assert "<th>agent</th>" in answer.text and "<th>role</th>" not in answer.text


def test_the_window_leaves_out_older_calls(app, sub):
    _call(sub, model="recent")
    _call(sub, model="older", started=NOW - 3 * 86400)
    sub.flush()
    client = anonymous(app)
    day = client.get("/metrics?since=24h&by=model").text
    week = client.get("/metrics?since=7d&by=model").text
    assert 'data-group="recent"' in day and 'data-group="older"' not in day
    assert 'data-group="recent"' in week and 'data-group="older"' in week
    iso = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(NOW - 4 * 86400))
    assert 'data-group="older"' in client.get(f"/metrics?since={iso}&by=model").text


def test_by_may_be_given_once_per_dimension(app, sub):
    _call(sub, role="code", model="m1")
    sub.flush()
    text = anonymous(app).get("/metrics?by=role&by=model").text
    assert 'data-group="code|m1"' in text and 'value="role,model"' in text


def test_the_page_says_when_recording_is_off(project):
    assert 'id="metrics-off"' not in anonymous(make_app(project)).get("/metrics").text
    ops = project / "config" / "operations.yaml"
    text = ops.read_text()
    line = next(x for x in text.splitlines() if "`crewkit metrics`" in x)
    ops.write_text(text.replace(line, line.replace("enabled: true", "enabled: false")))
    app = make_app(project)
    assert app.state.settings.operations.metrics.enabled is False
    assert 'id="metrics-off"' in anonymous(app).get("/metrics").text


def test_the_profile_filter_keeps_that_profiles_calls(app, sub):
    _call(sub, model="startup-model")
    other = MetricsSubscriber(app.state.store, "r2", profile="enterprise")
    _call(other, model="enterprise-model")
    sub.flush()
    other.flush()
    text = anonymous(app).get("/metrics?by=model&profile=enterprise").text
    assert 'data-group="enterprise-model"' in text and 'data-group="startup-model"' not in text


def test_no_calls_says_so(app):
    answer = anonymous(app).get("/metrics")
    assert answer.status_code == 200
    assert 'id="metrics-empty"' in answer.text and 'id="metrics-table"' not in answer.text


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("since=yesterday", "since 'yesterday' is not a date or an age"),
        ("since=", "since is empty"),
        ("since=2999-01-01", "is in the future"),
        ("by=colour", "by 'colour' is not a metric dimension; use one of: role, model"),
        ("by=role,bogus", "by 'bogus' is not a metric dimension"),
        ("by=,", "by is empty"),
        ("by=" + "role," * 60, "by is longer than"),
        ("chart=pie", "chart 'pie' is not a figure to chart"),
        ("since=" + "1" * 80 + "h", "since is longer than 64 characters"),
        ("profile=nope", "profile 'nope' is not in config/profiles.yaml"),
    ],
)
def test_bad_query_values_get_a_422_page_with_one_line_and_change_nothing(app, sub, query, says):
    _call(sub)
    sub.flush()
    before = _state(app)
    answer = anonymous(app).get(f"/metrics?{query}")
    assert answer.status_code == 422
    message = re.search(r'id="error-message">(.*?)</p>', answer.text, re.S)
    assert message and says in html.unescape(message.group(1))
    assert "Traceback" not in answer.text
    assert _state(app) == before


def test_the_chart_draws_one_bar_per_group_scaled_to_the_largest(app, sub):
    for model, n in (("small", 2), ("big", 8)):
        for _ in range(n):
            _call(sub, model=model)
    sub.flush()
    text = anonymous(app).get("/metrics?by=model&chart=calls").text
    svg = re.search(r'<svg id="metrics-chart".*?</svg>', text, re.S).group(0)
    bars = re.findall(r"<title>(.*?)</title>.*?<rect [^>]*width=\"([\d.]+)\"", svg, re.S)
    assert [label for label, _ in bars] == ["big: 8", "small: 2"]  # largest first
    assert float(bars[0][1]) == pytest.approx(4 * float(bars[1][1]))


def test_model_and_role_names_are_escaped(app, sub):
    _call(sub, model="<script>alert(1)</script>")
    sub.flush()
    text = anonymous(app).get("/metrics?by=model").text
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text


def test_each_profile_shows_its_slos_and_budgets(app, sub, project):
    for i in range(25):  # over slo_min_calls (20); 5 errors: error rate 20% breaches every profile
        _call(sub, seconds=0.01, error="boom" if i < 5 else None)
    sub.flush()
    settings = load_settings(project)
    budgets = Budgets(app.state.store, settings)
    budgets.settle(None, 19.0, "r1", budgets.scopes("r1", None, "reasoning"))  # of the $20.00 total
    text = anonymous(app).get("/metrics").text
    for name in settings.profiles.profiles:
        card = re.search(rf'<section class="card profile" id="profile-{name}".*?</section>', text, re.S)
        assert card, f"no card of profile {name}"
    startup = re.search(r'id="profile-startup".*?</section>', text, re.S).group(0)
    statuses = dict(re.findall(r'data-slo="(\w+)">.*?slo-status">([^<]+)<', startup, re.S))
    assert statuses == {"p99_ms": "ok", "error_rate": "breached", "availability": "breached"}
    total = re.search(r'data-scope="total">(.*?)</tr>', startup, re.S).group(1)
    assert "$20.00" in total and "$19.00" in total and "95.0%" in total and "near" in total
    # the other profiles have no startup calls: no verdict there
    enterprise = re.search(r'id="profile-enterprise".*?</section>', text, re.S).group(0)
    assert set(re.findall(r'slo-status">([^<]+)<', enterprise)) == {"not enough data"}
    targets = re.findall(
        r'data-slo="\w+">.*?<td class="num">[^<]*</td><td class="num">([^<]+)<', enterprise, re.S
    )
    assert [html.unescape(t) for t in targets] == ["<= 2.00 s", "<= 0.1%", ">= 99.99%"]
    values = re.findall(r'data-slo="\w+">.*?<td class="num">([^<]*)</td>', startup, re.S)
    assert values == ["10 ms", "20%", "80%"]


def test_few_calls_give_no_slo_verdict(app, sub):
    for _ in range(3):
        _call(sub, error="boom")
    sub.flush()
    startup = re.search(
        r'id="profile-startup".*?</section>', anonymous(app).get("/metrics").text, re.S
    ).group(0)
    assert set(re.findall(r'slo-status">([^<]+)<', startup)) == {"not enough data"}
    assert "a verdict needs 20" in startup


def test_metrics_need_a_sign_in_off_loopback(project):
    app = make_app(project, host="0.0.0.0")
    assert anonymous(app).get("/metrics").status_code == 401
    assert anonymous(app).get("/schedules").status_code == 401
    client = anonymous(app)
    signin = {"csrf_token": client.csrf, "name": "bob", "token": TOKEN, "next": "/metrics"}
    assert client.post("/signin", data=signin).status_code == 303
    assert client.get("/metrics").status_code == 200
    assert client.get("/schedules").status_code == 200


# -- /schedules ----------------------------------------------------------------------------------


JOBS = (
    JOB + "  - {name: nightly, cron: '30 2 * * *', timezone: Europe/Paris, flow: default, enabled: false}\n"
)


def test_schedules_list_jobs_with_the_next_fire_times_the_scheduler_computes(project):
    settings = project_with(project, JOBS)
    app = make_app(project)
    answer = anonymous(app).get("/schedules?count=2")
    assert answer.status_code == 200
    listed = {j["job"]: j for j in sched.listing(settings, count=2)}
    tick = re.search(r'<tr class="job" data-job="tick">(.*?)</tr>', answer.text, re.S).group(1)
    nexts = re.findall(r'class="next-fire">([^<]+)<', tick)
    assert len(nexts) == 2 and nexts[0] in listed["tick"]["next_fires"] + [
        sched.listing(settings, time.time() - 60, 2)[0]["next_fires"][0]
    ]  # the minute may have turned between the two listings
    assert "* * * * *" in tick and "enabled" in tick and "never fired" in tick
    nightly = re.search(r'<tr class="job" data-job="nightly">(.*?)</tr>', answer.text, re.S).group(1)
    assert "Europe/Paris" in nightly and "disabled" in nightly and "next-fire" not in nightly


def test_fires_show_their_status_and_link_their_runs(project):
    settings = project_with(project, JOB)
    launcher = FakeLauncher(statuses=["done", "failed"])
    s = make(settings, minute(0), launcher)
    run(s, minute(1) + 0.2)
    run(s, minute(2) + 0.2)
    app = make_app(project)
    client = anonymous(app)
    index = client.get("/schedules").text
    fires = re.findall(
        r'<tr class="fire" data-job="tick" data-status="(\w+)">.*?href="/runs/([\w-]+)"', index, re.S
    )
    assert fires == [("failed", "run-2"), ("done", "run-1")]  # newest first
    last = re.search(r'data-job="tick">(.*?)</tr>', index, re.S).group(1)
    assert "failed" in last and 'href="/runs/run-2"' in last
    page = client.get("/schedules/tick")
    assert page.status_code == 200
    assert re.findall(r'href="/runs/([\w-]+)" class="run-link"', page.text) == ["run-2", "run-1"]
    assert "2026-11-27T12:02:00" in page.text


def test_a_skipped_fire_says_why(project):
    settings = project_with(project, JOB)
    launcher = FakeLauncher()
    launcher.hold.clear()  # the first run keeps going
    s = make(settings, minute(0), launcher)
    s.clock.now = minute(1) + 0.2
    threads = s.tick("tick")
    run(s, minute(2) + 0.2)  # max_concurrent 1: skipped
    launcher.hold.set()
    for thread in threads:
        thread.join(10)
    text = _text(anonymous(make_app(project)).get("/schedules/tick"))
    assert "skipped" in text and "still running (max_concurrent 1)" in text


def test_a_job_taken_out_of_the_config_keeps_its_fires(project):
    settings = project_with(project, JOB)
    run(make(settings, minute(0), FakeLauncher()), minute(1) + 0.2)
    project_with(project, JOB.replace("tick", "tock"))
    client = anonymous(make_app(project))
    index = client.get("/schedules").text
    assert 'data-job="tock"' in index and 'href="/schedules/tick"' in index  # its fire is listed
    page = client.get("/schedules/tick")
    assert page.status_code == 200
    assert 'id="job-removed"' in page.text and 'href="/runs/run-1"' in page.text


def test_no_jobs_and_no_fires_say_so(project):
    (project / "config" / "schedules.yaml").write_text("jobs: []\n")
    text = anonymous(make_app(project)).get("/schedules").text
    assert 'id="schedules-empty"' in text and 'id="fires-empty"' in text


@pytest.mark.parametrize(
    ("url", "status", "says"),
    [
        ("/schedules/tock", 404, "no job 'tock' in config/schedules.yaml (did you mean 'tick'?)"),
        ("/schedules?count=0", 422, "count"),
        ("/schedules?count=500", 422, "count"),
        ("/schedules?limit=abc", 422, "limit"),
        ("/schedules/tick?limit=0", 422, "limit"),
    ],
)
def test_bad_schedule_requests_get_one_line_and_the_right_status(project, url, status, says):
    project_with(project, JOB)
    app = make_app(project)
    answer = anonymous(app).get(url)
    assert answer.status_code == status
    message = html.unescape(re.search(r'id="error-message">(.*?)</p>', answer.text, re.S).group(1))
    assert says in message
    assert app.state.store.read("SELECT COUNT(*) FROM schedule_fires")[0][0] == 0
