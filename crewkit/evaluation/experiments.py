"""A/B experiments: the config (`config/experiments.yaml`), sticky assignment, arms, outcomes.

An experiment compares arms that differ in the routing policy (`routing: by-complexity`) or in
the role map (`roles: {reasoning: {model: gpt-4o-mini}}`: the fields given replace the role's,
the others are kept). Each run of a flow is assigned one arm of every enabled experiment:

- the key is the run's `unit`: its tenant (the inputs' `tenant`, else 'default'), its user
  (the inputs' `user`, else CREWKIT_USER, else 'default') or the run itself (a new draw per run);
- `key_hash = "sha256:" + sha256(experiment + ":" + key)`: the same on every process and machine
  (never Python's `hash()`), and the only form of the key that is stored;
- the arm is picked by weighted rendezvous hashing: arm `a` scores `ln(u_a) / w_a` with
  `u_a = sha256(key_hash + ":" + a)` read as a number in (0, 1), and the highest score wins.
  Each arm wins with probability `w_a / sum(w)`; changing one arm's weight moves keys only
  between that arm and the others (raising it takes keys in, lowering it gives keys out; none
  move between arms whose weight stayed), adding an arm only takes keys into it, removing one
  only moves its own keys, and reordering arms moves nothing.

The runner (`crewkit.runtime.runner`) assigns at `run_flow`, stores each assignment in state.db
(`ab_assignments`, audited as `ab.assign`), runs under the arms' settings (`under_arms`), puts
`experiment` in the run record, re-applies the stored arms on resume, and stores the outcome
(`record_outcome`) when the run ends: done, failed or rejected.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from crewkit import yamlfile
    from crewkit.models.registry import RoleMap
    from crewkit.runtime.store import StateStore
    from crewkit.settings import ModelsConfig, Settings

log = logging.getLogger(__name__)

Unit = Literal["tenant", "user", "run"]
Metric = Literal["verifier_pass_rate", "approval_rate", "completion_rate", "cost_usd", "latency_s"]
DEFAULT_KEY = "default"  # the key of a run whose inputs name no tenant (or user)
FINAL = frozenset({"done", "failed", "rejected"})  # run statuses whose outcome counts in a report


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RolePatch(_Strict):
    """What an arm changes in one role: the fields given replace the role's, the others stay."""

    model: str | None = None
    fallbacks: list[str] | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> RolePatch:
        if self.model is None and self.fallbacks is None:
            raise ValueError("a role patch needs 'model' or 'fallbacks' (or both)")
        return self


class Arm(_Strict):
    """One arm: its share of the keys and what it changes (nothing: the settings as configured)."""

    weight: float = Field(ge=0, allow_inf_nan=False, strict=True)  # `true` or "50" is an error
    routing: str | None = None  # a policy name from config/models.yaml `routing.policies`
    roles: dict[str, RolePatch] = Field(default_factory=dict)

    def changes(self) -> set[str]:
        """What the arm changes: 'routing' and 'role:<name>' (two enabled experiments may not share one)."""
        return ({"routing"} if self.routing is not None else set()) | {f"role:{r}" for r in self.roles}


class Experiment(_Strict):
    enabled: bool = False
    description: str = ""
    unit: Unit = "tenant"
    arms: dict[str, Arm]  # the first arm is the control the others are compared with
    primary_metric: Metric = "verifier_pass_rate"
    min_runs_per_arm: int = Field(30, ge=2)
    alpha: float = Field(0.05, gt=0, lt=0.5)  # significance level; intervals are (1 - alpha)

    @property
    def control(self) -> str:
        return next(iter(self.arms))


class ExperimentsConfig(_Strict):
    experiments: dict[str, Experiment] = Field(default_factory=dict)

    def enabled(self) -> list[tuple[str, Experiment]]:
        return [(name, e) for name, e in self.experiments.items() if e.enabled]


# -- config checks (called by crewkit.settings.load_settings) -----------------------------------


def routing_policies(models: ModelsConfig) -> list[str]:
    """The routing policy names config/models.yaml defines (`routing.policies`)."""
    return list(models.routing.policies)


def check_config(cfg: ExperimentsConfig, doc: yamlfile.YamlDoc, models: ModelsConfig) -> None:
    """Cross-references of experiments.yaml against models.yaml; a ConfigError at FILE:LINE."""
    from crewkit.errors import ConfigError
    from crewkit.settings import suggest

    def fail(loc: tuple[Any, ...], message: str) -> ConfigError:
        return ConfigError(f"{doc.where(('experiments', *loc))}: {message}")

    policies = routing_policies(models)
    owners: dict[str, str] = {}  # what an enabled experiment changes -> that experiment
    for name, exp in cfg.experiments.items():
        if len(exp.arms) < 2:
            raise fail(
                (name, "arms"),
                f"experiment '{name}' has {len(exp.arms)} arm(s); give at least two (a control and a treatment)",
            )
        if not any(arm.weight > 0 for arm in exp.arms.values()):
            raise fail(
                (name, "arms"), f"experiment '{name}': every arm has weight 0; give one a weight above 0"
            )
        for arm_name, arm in exp.arms.items():
            loc = (name, "arms", arm_name)
            if arm.routing is not None and arm.routing not in policies:
                raise fail(
                    (*loc, "routing"),
                    f"arm '{arm_name}' uses routing policy '{arm.routing}', which is not defined"
                    f"{suggest(arm.routing, policies)}; the policies in config/models.yaml are {', '.join(policies)}",
                )
            for role, patch in arm.roles.items():
                if role not in models.roles:
                    raise fail(
                        (*loc, "roles", role),
                        f"arm '{arm_name}' patches role '{role}', which is not a role{suggest(role, models.roles)}; "
                        f"the roles are {', '.join(models.roles)}",
                    )
                named = [("model", patch.model)] if patch.model is not None else []
                named += [(("fallbacks", i), m) for i, m in enumerate(patch.fallbacks or [])]
                for field, model in named:
                    if model not in models.models:
                        field_loc = field if isinstance(field, tuple) else (field,)
                        raise fail(
                            (*loc, "roles", role, *field_loc),
                            f"arm '{arm_name}' maps role '{role}' to model '{model}', which is not defined"
                            f"{suggest(model, models.models)}; define it in config/models.yaml under 'models:'",
                        )
            _check_patched(models, arm, name, arm_name, fail)
        if exp.enabled:
            for what in sorted(set().union(*(arm.changes() for arm in exp.arms.values()))):
                other = owners.setdefault(what, name)
                if other != name:
                    thing = "the routing policy" if what == "routing" else f"role '{what[5:]}'"
                    raise fail(
                        (name, "enabled"),
                        f"experiments '{other}' and '{name}' are both enabled and both change {thing}, so neither "
                        f"result could be trusted; disable one (enabled: false)",
                    )


class _NoWhere:
    """Stands in for models.yaml's document: its checks name a line there, but the error is the arm's."""

    @staticmethod
    def where(loc: tuple[Any, ...]) -> str:
        return ""


def _check_patched(models: ModelsConfig, arm: Arm, name: str, arm_name: str, fail: Any) -> None:
    """The role map as the arm leaves it must pass models.yaml's own checks (embedding role, routing)."""
    from crewkit.errors import ConfigError
    from crewkit.settings import _check_models

    patched = patch_models(models, arm)
    if patched is models:
        return

    try:
        _check_models(patched, _NoWhere())  # type: ignore[arg-type]
    except ConfigError as exc:
        reason = str(exc).lstrip(": ")
        raise fail((name, "arms", arm_name), f"arm '{arm_name}' of experiment '{name}': {reason}") from None


def patch_models(models: ModelsConfig, arm: Arm) -> ModelsConfig:
    """models.yaml as an arm changes it (the same object when the arm changes nothing)."""
    update: dict[str, Any] = {}
    if arm.roles:
        roles = dict(models.roles)
        for role, patch in arm.roles.items():
            roles[role] = roles[role].model_copy(update=patch.model_dump(exclude_none=True))
        update["roles"] = roles
    if arm.routing is not None:
        update["routing"] = models.routing.model_copy(update={"policy": arm.routing})
    return models.model_copy(update=update) if update else models


# -- sticky assignment -------------------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    experiment: str
    arm: str
    unit: str
    key_hash: str


def key_of(unit: str, inputs: dict[str, Any], run_id: str) -> str:
    """The key a run is assigned by (see the module docstring)."""
    if unit == "run":
        return run_id
    if unit == "user":
        from crewkit.governance.approvals import requester_of

        return (requester_of(inputs) or "").strip() or DEFAULT_KEY
    value = inputs.get("tenant")
    return (str(value).strip() if value is not None else "") or DEFAULT_KEY


def key_hash(experiment: str, key: str) -> str:
    return "sha256:" + hashlib.sha256(f"{experiment}:{key}".encode()).hexdigest()


def _uniform(text: str) -> float:
    """A number in (0, 1) from sha256(text): the first 64 bits, centred in their bucket."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return (int.from_bytes(digest[:8], "big") + 0.5) / 2.0**64


def pick_arm(hashed: str, weights: dict[str, float]) -> str:
    """The arm of a hashed key: weighted rendezvous hashing (highest `ln(u) / w`; weight 0 never wins)."""
    best, best_score = "", -math.inf
    for arm, weight in weights.items():
        if weight <= 0:
            continue
        score = math.log(_uniform(f"{hashed}:{arm}")) / weight
        if score > best_score:
            best, best_score = arm, score
    if not best:
        raise ValueError("every arm has weight 0")
    return best


def arm_for(name: str, experiment: Experiment, key: str) -> Assignment:
    hashed = key_hash(name, key)
    arm = pick_arm(hashed, {a: arm.weight for a, arm in experiment.arms.items()})
    return Assignment(name, arm, experiment.unit, hashed)


def assign(settings: Settings, inputs: dict[str, Any], run_id: str) -> list[Assignment]:
    """One arm of every enabled experiment for a new run."""
    return [
        arm_for(name, exp, key_of(exp.unit, inputs, run_id)) for name, exp in settings.experiments.enabled()
    ]


# -- running under an arm ----------------------------------------------------------------------


def apply(settings: Settings, assignments: list[Assignment]) -> Settings:
    """A copy of `settings` with each assigned arm's routing policy and role patches applied.
    A stored arm whose experiment or arm is no longer in the config is skipped (logged)."""
    models = settings.models
    for a in assignments:
        exp = settings.experiments.experiments.get(a.experiment)
        arm = exp.arms.get(a.arm) if exp is not None else None
        if arm is None:
            log.warning(
                "experiment '%s' arm '%s' is no longer in config/experiments.yaml; the run goes on "
                "under the configured settings",
                a.experiment,
                a.arm,
            )
            continue
        models = patch_models(models, arm)
    return settings if models is settings.models else replace(settings, models=models)


def arm_problems(settings: Settings, role_map: RoleMap) -> list[str]:
    """What stops an enabled experiment's arm from running here (its role patches' API keys and
    model files), one line each naming the experiment and the arm: `crewkit models check`."""
    problems: list[str] = []
    seen = set(role_map.check())
    for name, experiment in settings.experiments.enabled():
        for arm_name, arm in experiment.arms.items():
            if not arm.roles:
                continue
            arm_map = role_map.derive(replace(settings, models=patch_models(settings.models, arm)))
            for problem in arm_map.check():
                if problem not in seen:
                    seen.add(problem)
                    problems.append(
                        f"{problem} (arm '{arm_name}' of experiment '{name}' in config/experiments.yaml)"
                    )
    return problems


def under_arms(
    settings: Settings, role_map: RoleMap, assignments: list[Assignment]
) -> tuple[Settings, RoleMap]:
    """The settings and role map a run uses under its arms (unchanged objects when no arm changes
    anything); the role map keeps the caller's overrides and shares its built models."""
    arm_settings = apply(settings, assignments)
    if arm_settings is settings:
        return settings, role_map
    arm_map = role_map.derive(arm_settings)
    from crewkit.errors import ModelUnavailable

    try:
        arm_map.require_ready()
    except ModelUnavailable as exc:  # say why this run uses that model
        arms = ", ".join(f"arm '{a.arm}' of experiment '{a.experiment}'" for a in assignments)
        raise ModelUnavailable(
            f"{exc} (this run was assigned {arms} in config/experiments.yaml; make the model usable here "
            "or disable the experiment)"
        ) from None
    return arm_settings, arm_map


def record_field(assignments: list[Assignment]) -> dict[str, str] | list[dict[str, str]] | None:
    """The run record's `experiment`: {"name", "arm"}, a list of them when several experiments ran."""
    items = [{"name": a.experiment, "arm": a.arm} for a in assignments]
    if not items:
        return None
    return items[0] if len(items) == 1 else items


# -- state.db: assignments and outcomes ---------------------------------------------------------

_COLS = "experiment, arm, unit, key_hash"


def store_assignments(store: StateStore, run_id: str, assignments: list[Assignment]) -> None:
    """Keep a new run's arms (and audit each as `ab.assign`) in one transaction."""
    if not assignments:
        return
    from crewkit.governance import audit

    now = time.time()
    with store.write() as conn:
        for a in assignments:
            conn.execute(
                "INSERT INTO ab_assignments (experiment, run_id, arm, unit, key_hash, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (a.experiment, run_id, a.arm, a.unit, a.key_hash, now),
            )
            audit.append(
                conn,
                audit.Entry(
                    "ab.assign",
                    f"experiment {a.experiment}",
                    {"arm": a.arm, "unit": a.unit, "key_hash": a.key_hash},
                    run_id=run_id,
                ),
            )


def stored(store: StateStore, run_id: str) -> list[Assignment]:
    """The arms a run was assigned when it started (what a resumed run runs under again)."""
    rows = store.read(f"SELECT {_COLS} FROM ab_assignments WHERE run_id = ? ORDER BY rowid", (run_id,))
    return [Assignment(*row) for row in rows]


def outcome_of(record: dict[str, Any]) -> dict[str, Any]:
    """What a report needs from a run record: status, verified, cost, approval."""
    verification = record.get("verification")
    verified = None
    if isinstance(verification, dict):
        if isinstance(verification.get("passed"), bool):
            verified = verification["passed"]
        elif verification.get("verdict") in ("passed", "failed"):
            verified = verification["verdict"] == "passed"
    decisions = record.get("approvals") or [record.get("approval")]  # a flow keeps every gate's; a crew one
    outcomes = [a.get("outcome") for a in decisions if isinstance(a, dict)]
    approval = "rejected" if "rejected" in outcomes else "approved" if "approved" in outcomes else "none"
    usage = record.get("usage") or {}
    cost = sum(float(u.get("cost_usd") or 0.0) for u in usage.values() if isinstance(u, dict))
    return {"status": record.get("status"), "verified": verified, "cost_usd": cost, "approval": approval}


def record_outcome(store: StateStore, run_id: str, record: dict[str, Any], seconds: float) -> None:
    """After each segment of a run in an experiment: add its wall time and keep the run's outcome.

    `seconds` sum over the run's segments (time waiting for a person or for a resume is not
    latency); `ended` is set when the status is final (done, failed, rejected). A failed run that
    is resumed later is updated again."""
    rows = store.read("SELECT experiment, outcome FROM ab_assignments WHERE run_id = ?", (run_id,))
    if not rows:
        return
    outcome = outcome_of(record)
    ended = time.time() if outcome["status"] in FINAL else None
    with store.write() as conn:
        for experiment, previous in rows:
            before = float((json.loads(previous) if previous else {}).get("seconds") or 0.0)
            value = {**outcome, "seconds": round(before + max(seconds, 0.0), 6)}
            conn.execute(
                "UPDATE ab_assignments SET outcome = ?, ended = ? WHERE experiment = ? AND run_id = ?",
                (json.dumps(value), ended, experiment, run_id),
            )


@dataclass(frozen=True)
class Row:
    """One run of an experiment as the report reads it."""

    run_id: str
    arm: str
    key_hash: str
    created: float
    outcome: dict[str, Any] | None
    ended: float | None

    @property
    def finished(self) -> bool:
        return self.ended is not None and (self.outcome or {}).get("status") in FINAL


def rows(store: StateStore, experiment: str) -> list[Row]:
    found = store.read(
        "SELECT run_id, arm, key_hash, created, outcome, ended FROM ab_assignments WHERE experiment = ? "
        "ORDER BY created, rowid",
        (experiment,),
    )
    return [Row(r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] else None, r[5]) for r in found]


def require(settings: Settings, name: str) -> Experiment:
    """Experiment `name` of config/experiments.yaml; a UsageError (exit 2) naming the experiments."""
    from crewkit.errors import UsageError
    from crewkit.settings import suggest

    found = settings.experiments.experiments.get(name)
    if found is None:
        names = list(settings.experiments.experiments)
        known = f"the experiments are {', '.join(names)}" if names else "there are no experiments"
        raise UsageError(
            f"unknown experiment '{name}'{suggest(name, names)}; {known} (config/experiments.yaml)"
        )
    return found


def counts(store: StateStore) -> dict[tuple[str, str], tuple[int, int]]:
    """(experiment, arm) -> (runs assigned, runs finished)."""
    found = store.read(
        "SELECT experiment, arm, COUNT(*), SUM(CASE WHEN ended IS NOT NULL THEN 1 ELSE 0 END) "
        "FROM ab_assignments GROUP BY experiment, arm"
    )
    return {(r[0], r[1]): (int(r[2]), int(r[3] or 0)) for r in found}


def explain(name: str, experiment: Experiment, key: str) -> str:
    """One line for support: the arm a key gets (and its hash, to find its runs in state.db)."""
    if experiment.unit == "run":
        return (
            f"experiment '{name}' draws an arm for every run (unit: run), so a key has no fixed arm; "
            f"'{key}' as a run id would get '{arm_for(name, experiment, key).arm}'"
        )
    a = arm_for(name, experiment, key)
    state = "" if experiment.enabled else " (the experiment is disabled: new runs get no arm)"
    return f"{experiment.unit} '{key}' -> arm '{a.arm}' of experiment '{name}'{state}; key_hash {a.key_hash}"
