"""config/schedules.yaml: cron (crontab dialect), time zones, flows, profiles, at FILE:LINE."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from crewkit.errors import ConfigError
from crewkit.scheduling.config import flow_names, next_fires, trigger
from crewkit.settings import load_settings

FRIDAY = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # a Friday


def write(project, text: str) -> None:
    (project / "config" / "schedules.yaml").write_text(textwrap.dedent(text))


def error(project, text: str) -> str:
    write(project, text)
    with pytest.raises(ConfigError) as info:
        load_settings(project)
    return str(info.value)


def days(expr: str, count: int = 7) -> list[str]:
    return [t.strftime("%a %H:%M") for t in next_fires(trigger(expr, "UTC"), FRIDAY, count)]


def test_crontab_weekday_numbers_mean_what_they_mean_in_cron():
    # APScheduler 3 counts weekdays from Monday = 0; crontab from Sunday = 0 (7 too)
    assert days("0 9 * * 1-5", 5) == ["Mon 09:00", "Tue 09:00", "Wed 09:00", "Thu 09:00", "Fri 09:00"]
    assert days("0 9 * * 0", 1) == days("0 9 * * 7", 1) == days("0 9 * * sun", 1) == ["Sun 09:00"]
    assert days("0 9 * * */2", 4) == ["Sat 09:00", "Sun 09:00", "Tue 09:00", "Thu 09:00"]


def test_both_day_fields_fire_on_either_as_in_cron():
    fires = next_fires(trigger("0 0 1 * mon", "UTC"), FRIDAY, 3)
    assert [t.date().isoformat() for t in fires] == ["2026-11-30", "2026-12-01", "2026-12-07"]


def test_six_fields_take_seconds_first_and_nicknames_work():
    fires = next_fires(trigger("*/20 * * * * *", "UTC"), FRIDAY, 3)
    assert [t.second for t in fires] == [0, 20, 40]
    assert days("@daily", 2) == ["Sat 00:00", "Sun 00:00"]


def test_a_job_fires_in_its_time_zone(project):
    write(project, "jobs:\n  - {name: ldn, cron: '0 9 * * *', timezone: Europe/London, enabled: true}\n")
    job = load_settings(project).schedules.jobs[0]
    (t,) = next_fires(trigger(job.cron, job.timezone), datetime(2026, 7, 1, tzinfo=UTC), 1)
    assert t.astimezone(UTC).hour == 8  # 09:00 BST


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("jobs:\n  - name: a\n    cron: '61 * * * *'\n", 3, "job 'a': invalid cron expression '61 * * * *'"),
        ("jobs:\n  - name: a\n    cron: '* * *'\n", 3, "expected 5 fields"),
        ("jobs:\n  - name: a\n    cron: '0 9 * * 8'\n", 3, "day of week 8 is out of range"),
        ("jobs:\n  - name: a\n    cron: '@fortnightly'\n", 3, "unknown nickname"),
        (
            "jobs:\n  - name: a\n    cron: '0 9 * * *'\n    timezone: Europe/Londn\n",
            4,
            "unknown time zone 'Europe/Londn'",
        ),
        ("timezone: Mars/Base\njobs: []\n", 1, "unknown time zone 'Mars/Base'"),
        (
            "jobs:\n  - name: a\n    cron: '0 9 * * *'\n    flow: defualt\n",
            4,
            "unknown flow 'defualt' (did you mean 'default'?)",
        ),
        (
            "jobs:\n  - name: a\n    cron: '0 9 * * *'\n    profile: enterprize\n",
            4,
            "unknown profile 'enterprize'",
        ),
        (
            "jobs:\n  - {name: a, cron: '0 9 * * *'}\n  - {name: a, cron: '0 9 * * *'}\n",
            3,
            "job 'a' is defined twice",
        ),
        (
            "jobs:\n  - name: a\n    cron: '0 9 * * *'\n    misfire: {policy: run_twice}\n",
            4,
            "'run_twice' is not one of",
        ),
        (
            "jobs:\n  - name: a\n    cron: '0 9 * * *'\n    jiter: 5\n",
            4,
            "unknown field 'jiter' (did you mean 'jitter'?)",
        ),
        ("jobs:\n  - name: a b\n    cron: '0 9 * * *'\n", 2, "'a b' is not a job name"),
        ("jobs:\n  - name: a\n    cron: '0 9 * * *'\n    max_concurrent: 0\n", 4, "max_concurrent"),
    ],
)
def test_bad_jobs_are_one_line_at_their_line(project, text, line, expected):
    message = error(project, text)
    assert message.startswith(f"config/schedules.yaml:{line}: "), message
    assert expected in message and "\n" not in message


def test_jobs_may_be_a_mapping_and_errors_keep_its_lines(project):
    text = "jobs:\n  nightly:\n    cron: '0 2 * * *'\n  weekly:\n    cron: '0 2 * * 1'\n    flow: nope\n"
    message = error(project, text)
    assert message.startswith("config/schedules.yaml:6: job 'weekly' names unknown flow 'nope'")
    write(project, "jobs:\n  nightly: {cron: '0 2 * * *', misfire: skip}\n")
    (job,) = load_settings(project).schedules.jobs
    assert job.name == "nightly" and job.misfire.policy == "skip" and job.misfire.grace_seconds == 3600


def test_the_shipped_example_is_valid_and_fires_nothing(settings):
    assert settings.schedules.jobs and not any(j.enabled for j in settings.schedules.jobs)


def test_a_missing_file_means_no_jobs(project):
    (project / "config" / "schedules.yaml").unlink()
    settings = load_settings(project)
    assert settings.schedules.jobs == [] and settings.schedules_doc is None


def test_flow_names_follow_the_runners_rule(settings):
    from crewkit.runtime.preflight import discover_flows

    (settings.project_dir / "flows" / "_helper.py").write_text("")
    assert flow_names(settings.project_dir) == list(discover_flows(settings))


def test_a_wall_clock_time_repeated_when_clocks_go_back_fires_once():
    from crewkit.scheduling.config import fire_times

    trig = trigger("30 1 * * *", "Europe/London")
    autumn = [t.isoformat() for t in next_fires(trig, datetime(2026, 10, 24, tzinfo=UTC), 3)]
    assert autumn == ["2026-10-24T01:30:00+01:00", "2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"]
    first = datetime.fromisoformat("2026-10-25T00:30:00+00:00")  # 01:30 BST, recorded by an earlier tick
    assert fire_times(trig, first, datetime(2026, 10, 25, 12, tzinfo=UTC)) == []


def test_the_trigger_moves_past_fires_in_a_repeated_hour():
    """APScheduler's CronTrigger alone answers the same fire again there (its scheduler thread loops)."""
    import pickle

    trig = pickle.loads(pickle.dumps(trigger("*/20 1 * * *", "Europe/London")))  # as the job store keeps it
    t = datetime.fromisoformat("2026-10-25T00:00:00+00:00")
    seen = []
    for _ in range(7):
        t = trig.get_next_fire_time(t, t + timedelta(microseconds=1))
        seen.append(t.isoformat())
    times = [datetime.fromisoformat(x) for x in seen]
    assert all(a < b for a, b in zip(times, times[1:], strict=False))  # always forward, never stuck
    # the repeated hour (01:00-02:00 GMT after 01:00-02:00 BST) fires once, in its first pass
    assert seen[:3] == ["2026-10-25T01:20:00+01:00", "2026-10-25T01:40:00+01:00", "2026-10-26T01:00:00+00:00"]


def test_jitter_seconds_and_grace_are_accepted_spellings(project):
    write(
        project,
        "jobs:\n  - {name: a, cron: '0 9 * * *', jitter_seconds: 5, misfire: {policy: skip, grace: 60}}\n",
    )
    (job,) = load_settings(project).schedules.jobs
    assert job.jitter == 5 and job.misfire.grace_seconds == 60
