"""`crewkit schedule list|fires|run` and `config check`: tables, JSON, and one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest

from crewkit.cli import main
from tests.sample_project import add_flow


def write(project, jobs: str) -> None:
    (project / "config" / "schedules.yaml").write_text("jobs:\n" + jobs)


@pytest.mark.parametrize(
    ("jobs", "expected"),
    [
        (
            "  - {name: a, cron: '0 25 * * *'}\n",
            "config/schedules.yaml:2: job 'a': invalid cron expression '0 25 * * *'",
        ),
        (
            "  - {name: a, cron: '0 9 * * *', timezone: Europe/Pariss}\n",
            "config/schedules.yaml:2: job 'a': unknown time zone",
        ),
        (
            "  - {name: a, cron: '0 9 * * *', flow: nightly}\n",
            "config/schedules.yaml:2: job 'a' names unknown flow 'nightly'",
        ),
    ],
)
@pytest.mark.parametrize(
    "argv", [["schedule", "list"], ["schedule", "run", "--once"], ["config", "check"], ["runs", "list"]]
)
def test_a_bad_job_is_one_line_and_exit_2_for_every_command(project, capsys, jobs, expected, argv):
    write(project, jobs)
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2 and captured.err.startswith(f"error: {expected}") and len(captured.err.splitlines()) == 1
    assert captured.out == ""


def test_schedule_list_shows_next_fire_times_in_the_jobs_zone(project, capsys):
    write(project, "  - {name: ldn, cron: '30 6 * * 1-5', timezone: Europe/London, inputs: {task: t}}\n")
    assert main(["schedule", "list", "--format", "json", "--count", "3"]) == 0
    (job,) = json.loads(capsys.readouterr().out)
    assert job["job"] == "ldn" and job["timezone"] == "Europe/London" and len(job["next_fires"]) == 3
    assert all("T06:30:00" in t for t in job["next_fires"]) and job["last_fire"] is None
    assert main(["schedule", "list"]) == 0
    table = capsys.readouterr().out
    assert "ldn" in table and "30 6 * * 1-5" in table and "Europe/London" in table


def test_job_inputs_are_checked_against_the_flows_inputs_at_their_line(project, capsys):
    add_flow(project, "fixed")
    write(project, "  - name: a\n    cron: '0 9 * * *'\n    flow: fixed\n    inputs: {tsk: x}\n")
    assert main(["schedule", "run", "--once"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "error: config/schedules.yaml:5: job 'a' inputs: unknown field 'tsk' (did you mean 'task'?)"
    )
    assert main(["config", "check"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "job 'a' inputs: unknown field 'tsk'" in captured.err  # before any "ok"


def test_schedule_run_without_an_enabled_job_says_how_to_enable_one(project, capsys):
    assert main(["schedule", "run", "--once"]) == 2  # the shipped example is disabled
    assert "no enabled job in config/schedules.yaml" in capsys.readouterr().err


def test_config_check_lists_the_jobs(project, capsys):
    assert main(["config", "check"]) in (0, None)
    assert "schedules (config/schedules.yaml): 1 job(s); weekday-digest (0 7 * * 1-5, default, disabled)" in (
        capsys.readouterr().out
    )


def test_schedule_fires_names_an_unknown_job(project, capsys):
    assert main(["schedule", "fires", "weekday-digst"]) == 2
    assert "unknown job 'weekday-digst' (did you mean 'weekday-digest'?)" in capsys.readouterr().err
    assert main(["schedule", "fires", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_once_and_for_do_not_go_together(project, capsys):
    assert main(["schedule", "run", "--once", "--for", "5"]) == 2
    assert "give --once or --for, not both" in capsys.readouterr().err
