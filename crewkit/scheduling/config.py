"""`config/schedules.yaml`, typed and checked: the jobs `crewkit schedule run` fires.

A job names a flow, its inputs and a cron expression read in a time zone. Cron is the crontab
dialect operators know (5 fields: minute hour day-of-month month day-of-week; 0 or 7 is Sunday;
when both day fields are restricted a day matching either fires, as in cron), plus an optional
leading seconds field (6 fields) and the `@hourly`/`@daily`/`@weekly`/`@monthly`/`@yearly`
nicknames. It is compiled into APScheduler 3 `CronTrigger`s (whose own weekday numbers start at
Monday, so crontab numbers are translated, never passed through).

`check_schedules(cfg, doc, project_dir, profiles)` raises a `ConfigError` at FILE:LINE for an
invalid cron expression or time zone, a job naming an unknown flow or profile, or two jobs of
one name. Inputs are checked against the flow's `Inputs` model later (`check_inputs`), where
importing the flow's code is paid anyway (`crewkit config check`, `crewkit schedule run`).
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from crewkit import yamlfile
from crewkit.errors import ConfigError

MisfirePolicy = Literal["run_once", "skip", "run_all"]
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbers 0..6 (7 is sun too)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Misfire(_Strict):
    """What happens to fires the scheduler missed (it was stopped, or the machine slept).

    `run_once`: the missed fires become one run (the latest). `run_all`: each runs, oldest first,
    one after another. `skip`: none runs; the next fire on the clock does. A fire later than
    `grace_seconds` never runs, whatever the policy (recorded as misfired)."""

    policy: MisfirePolicy = "run_once"
    grace_seconds: float = Field(
        3600.0, ge=0, allow_inf_nan=False, validation_alias=AliasChoices("grace_seconds", "grace")
    )


class Job(_Strict):
    name: str
    cron: str = Field(min_length=1)
    timezone: str | None = None  # an IANA zone (Europe/London); default: the file's `timezone`
    flow: str = "default"
    inputs: dict[str, Any] = Field(default_factory=dict)
    profile: str | None = None  # a deployment profile; default: CREWKIT_PROFILE, else profiles.yaml's
    enabled: bool = True
    jitter: float = Field(  # seconds of random delay per fire (`jitter_seconds` works too)
        0.0, ge=0, le=3600, allow_inf_nan=False, validation_alias=AliasChoices("jitter", "jitter_seconds")
    )
    max_concurrent: int = Field(1, ge=1, le=64)  # runs of this job at once; a fire beyond is skipped
    timeout_seconds: float | None = Field(None, gt=0, allow_inf_nan=False)  # then the run is interrupted
    misfire: Misfire = Misfire()

    @field_validator("misfire", mode="before")
    @classmethod
    def _policy_alone(cls, value: Any) -> Any:
        return {"policy": value} if isinstance(value, str) else value  # `misfire: skip`

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(
                f"'{value}' is not a job name; use letters, digits, '-', '_' or '.' (at most 64, "
                "starting with a letter or digit)"
            )
        return value


class SchedulesConfig(_Strict):
    timezone: str = "UTC"  # the zone of jobs that name none
    jobs: list[Job] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _jobs_by_name(cls, data: Any) -> Any:
        """`jobs:` may also be a mapping name -> job (`load` keeps its lines)."""
        if isinstance(data, dict) and isinstance(data.get("jobs"), dict):
            data = {**data, "jobs": _as_list(data["jobs"])}
        return data

    def job(self, name: str) -> Job | None:
        return next((j for j in self.jobs if j.name == name), None)

    def zone(self, job: Job) -> str:
        return job.timezone or self.timezone


def _as_list(jobs: dict[Any, Any]) -> list[Any]:
    return [{"name": str(k), **v} if isinstance(v, dict) else v for k, v in jobs.items()]


def load(path: Path) -> yamlfile.YamlDoc:
    """config/schedules.yaml (missing: no jobs). A `jobs:` mapping is turned into the list form
    with its lines kept, so errors point at the same lines either way."""
    doc = yamlfile.load(path, required=False)
    data = doc.data
    if not (isinstance(data, dict) and isinstance(data.get("jobs"), dict)):
        return doc
    names = list(data["jobs"])
    lines = dict(doc.lines)
    for loc, line in doc.lines.items():
        if len(loc) >= 2 and loc[0] == "jobs" and loc[1] in data["jobs"]:
            i = names.index(loc[1])
            lines[("jobs", i, *loc[2:])] = line
            if len(loc) == 2:
                lines[("jobs", i, "name")] = line
    return yamlfile.YamlDoc(doc.path, {**data, "jobs": _as_list(data["jobs"])}, lines, doc.start)


# --- cron ----------------------------------------------------------------------------------------


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone `name`; ValueError with a hint otherwise."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"unknown time zone '{name}'; use an IANA name such as UTC, Europe/London, America/New_York"
        ) from None


def _number(token: str, names: tuple[str, ...], low: int, high: int, what: str) -> int:
    lowered = token.lower()
    if lowered in names:
        return names.index(lowered) + low
    if not token.isdigit():
        raise ValueError(f"'{token}' is not a {what}")
    value = int(token)
    if not low <= value <= high:
        raise ValueError(f"{what} {value} is out of range {low}-{high}")
    return value


def _weekdays(field: str) -> set[int]:
    """A crontab day-of-week field -> the crontab day numbers (0 = Sunday) it selects."""
    days: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"day-of-week step '{step_text}' is not a positive number")
            step = int(step_text)
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            a, _, b = base.partition("-")
            first = _number(a, DAY_NAMES, 0, 7, "day of week")
            last = _number(b, DAY_NAMES, 0, 7, "day of week")
            if first > last:
                raise ValueError(f"day-of-week range '{base}' runs backwards")
        else:
            first = _number(base, DAY_NAMES, 0, 7, "day of week")
            last = 6 if step_text else first
        days.update(d % 7 for d in range(first, last + 1, step))
    return days


def _fields(expr: str) -> dict[str, str]:
    text = NICKNAMES.get(expr.strip().lower(), expr)
    if text.strip().startswith("@"):
        raise ValueError(f"unknown nickname '{text.strip()}'; use one of {', '.join(NICKNAMES)}")
    parts = text.split()
    if len(parts) == 5:
        parts = ["0", *parts]
    if len(parts) != 6:
        raise ValueError(
            f"expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), "
            f"got {len(parts)}"
        )
    second, minute, hour, day, month, dow = parts
    if dow in ("*", "?"):
        dow = "*"
    else:
        days = _weekdays(dow)
        dow = "*" if len(days) == 7 else ",".join(DAY_NAMES[d] for d in sorted(days))
    return {"second": second, "minute": minute, "hour": hour, "day": day, "month": month, "day_of_week": dow}


def trigger(expr: str, tz: str) -> Any:
    """The APScheduler trigger of crontab `expr` in zone `tz` (ValueError naming what is wrong).

    As in cron, when both day-of-month and day-of-week are restricted a day matching either
    fires (an OrTrigger of the two); APScheduler alone would need both."""
    from apscheduler.triggers.combining import OrTrigger
    from apscheduler.triggers.cron import CronTrigger

    from crewkit.scheduling.cron import Forward

    fields = _fields(expr)
    where = zone(tz)
    try:
        if fields["day"] not in ("*", "?") and fields["day_of_week"] != "*":
            return Forward(
                OrTrigger(
                    [
                        CronTrigger(**{**fields, "day_of_week": "*"}, timezone=where),
                        CronTrigger(**{**fields, "day": "*"}, timezone=where),
                    ]
                )
            )
        return Forward(CronTrigger(**{**fields, "day": fields["day"].replace("?", "*")}, timezone=where))
    except ValueError as exc:
        raise ValueError(str(exc).replace("Error validating expression", "invalid field")) from None


def _wall(trig: Any, t: datetime) -> datetime:
    """`t` as the wall clock of the trigger's zone reads it (no offset)."""
    return t.astimezone(trig.timezone).replace(tzinfo=None)


def fire_times(trig: Any, after: datetime, until: datetime, limit: int = 100_000) -> list[datetime]:
    """The trigger's fire times t with after < t <= until, oldest first (at most `limit`).

    As in cron, a wall-clock time the zone repeats when its clocks go back fires once (the
    first time): APScheduler alone would fire 01:30 twice on that night."""
    out: list[datetime] = []
    seen = _wall(trig, after)
    t = trig.get_next_fire_time(None, after + timedelta(microseconds=1))
    while t is not None and t <= until and len(out) < limit:
        wall = _wall(trig, t)
        if wall != seen:
            out.append(t)
        seen = wall
        t = trig.get_next_fire_time(t, t + timedelta(microseconds=1))
    return out


def next_fires(trig: Any, now: datetime, count: int) -> list[datetime]:
    """The next `count` fire times after `now` (a repeated wall-clock time once)."""
    out: list[datetime] = []
    seen = None
    t = trig.get_next_fire_time(None, now)
    while t is not None and len(out) < count:
        wall = _wall(trig, t)
        if wall != seen:
            out.append(t)
        seen = wall
        t = trig.get_next_fire_time(t, t + timedelta(microseconds=1))
    return out


# --- checks --------------------------------------------------------------------------------------


def flow_names(project_dir: Path) -> list[str]:
    """The flows a job may name: modules in flows/ (the rule of
    `crewkit.runtime.preflight.discover_flows`, without importing the engine)."""
    return [p.stem for p in sorted((project_dir / "flows").glob("*.py")) if not p.stem.startswith("_")]


def check_schedules(
    cfg: SchedulesConfig, doc: yamlfile.YamlDoc, flows: Iterable[str], profiles: Iterable[str]
) -> None:
    """Cross-checks: time zones, cron expressions, flow and profile names, unique job names."""
    from crewkit.settings import suggest

    flows, profiles = list(flows), list(profiles)
    try:
        zone(cfg.timezone)
    except ValueError as exc:
        raise ConfigError(f"{doc.where(('timezone',))}: {exc}") from None
    seen: dict[str, int] = {}
    for i, job in enumerate(cfg.jobs):
        loc = ("jobs", i)
        if job.name in seen:
            raise ConfigError(
                f"{doc.where((*loc, 'name'))}: job '{job.name}' is defined twice (also job {seen[job.name] + 1}); "
                "give each job its own name"
            )
        seen[job.name] = i
        if job.timezone is not None:
            try:
                zone(job.timezone)
            except ValueError as exc:
                raise ConfigError(f"{doc.where((*loc, 'timezone'))}: job '{job.name}': {exc}") from None
        try:
            trigger(job.cron, cfg.zone(job))
        except ValueError as exc:
            raise ConfigError(
                f"{doc.where((*loc, 'cron'))}: job '{job.name}': invalid cron expression '{job.cron}': {exc}; "
                "write 'minute hour day-of-month month day-of-week', e.g. '0 6 * * 1-5'"
            ) from None
        if job.flow not in flows:
            raise ConfigError(
                f"{doc.where((*loc, 'flow'))}: job '{job.name}' names unknown flow '{job.flow}'"
                f"{suggest(job.flow, flows)}; flows: {', '.join(flows) or 'none'} (files in flows/)"
            )
        if job.profile is not None and job.profile not in profiles:
            raise ConfigError(
                f"{doc.where((*loc, 'profile'))}: job '{job.name}' names unknown profile '{job.profile}'"
                f"{suggest(job.profile, profiles)}; the profiles are {', '.join(profiles)}"
            )


def check_inputs(cfg: SchedulesConfig, doc: yamlfile.YamlDoc | None, settings: Any) -> None:
    """Each enabled job's inputs against its flow's `Inputs` model (imports the flows' code)."""
    from crewkit.errors import UsageError
    from crewkit.runtime.preflight import load_flow_class, validate_inputs

    for i, job in enumerate(cfg.jobs):
        if not job.enabled:
            continue
        try:
            validate_inputs(load_flow_class(settings, job.flow), dict(job.inputs))
        except UsageError as exc:
            where = doc.where(("jobs", i, "inputs")) if doc is not None else "config/schedules.yaml"
            detail = str(exc).removeprefix("--inputs: ").split(" (e.g. --inputs", 1)[0]
            raise ConfigError(f"{where}: job '{job.name}' inputs: {detail}") from None
