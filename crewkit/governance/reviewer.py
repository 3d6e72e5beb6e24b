"""The model reviewer (the verifier crew), and whether it has earned the right to be asked.

A reviewer's pass is never enough on its own: the deterministic acceptance checks run first and
gate it (`gate`, also installed in the verifier crew, so calling the crew directly cannot pass
an empty result or "banana" for 2+2). Before a reviewer model is asked at all it is calibrated
once with two probes whose answers are known: it must reject "banana" as the answer to 2+2 and
accept "2 + 2 = 4". A reviewer that fails is *untrusted*: it is not asked (its pass would mean
nothing and its call costs as much as the probe), and the result rests on the deterministic checks,
which the run record and the console say. The calibration is cached per reviewer model and
verifier prompt in `$CREWKIT_HOME/reviewer_trust.json`, so it costs one or two calls once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

from crewkit.governance.acceptance import check_answer
from crewkit.observability import ledger
from crewkit.plan import Review
from crewkit.settings import Settings

log = logging.getLogger(__name__)

CREW = "verifier"
CACHE_FILE = "reviewer_trust.json"
_PROBE_TASK = {"task": "What is 2+2?", "criteria": "- s1: States the sum."}
PROBES: tuple[tuple[dict[str, str], bool, str], ...] = (
    ({**_PROBE_TASK, "result": "banana"}, False, "it passed 'banana' as the answer to 2+2"),
    ({**_PROBE_TASK, "result": "2 + 2 = 4"}, True, "it rejected '2 + 2 = 4' as the answer to 2+2"),
)


@dataclass(frozen=True)
class Trust:
    trusted: bool
    reason: str = ""


@dataclass(frozen=True)
class ReviewerVerdict:
    role: str
    model: str
    agreed: bool | None  # None: not asked
    trusted: bool
    issues: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gate(review: Review | None, inputs: dict[str, Any]) -> Review:
    """The review the checks allow: a failed deterministic check fails it, whatever the model said."""
    failed = [
        c.reason
        for c in check_answer(
            str(inputs.get("result") or ""),
            task=str(inputs.get("task") or ""),
            acceptance=str(inputs.get("criteria") or ""),
        )
        if not c.passed
    ]
    if failed:
        return Review(passed=False, issues=[r[:160] for r in failed[:3]])
    if review is None:
        return Review(passed=False, issues=["the reviewer gave no valid verdict"])
    return review


def model_review(output: Any) -> Review | None:
    """What the reviewer model itself said (the last task's output, before any gate)."""
    task_output = output.tasks_output[-1] if getattr(output, "tasks_output", None) else output
    if isinstance(getattr(task_output, "pydantic", None), Review):
        return task_output.pydantic
    try:
        return Review.model_validate_json(str(getattr(task_output, "raw", "") or ""))
    except ValueError:
        return None


def reviewer_role(settings: Settings, role_map: Any) -> str:
    from crewkit import assembly

    spec = assembly.load_spec(settings, CREW, role_map)
    names = list(spec.agent_llm_names().values())
    return role_map.resolve_role(names[0] if names else None)


def _cache_key(settings: Settings, role: str) -> str:
    from crewkit import assembly

    entry = settings.role(role)
    models = [settings.models.models[n].model_dump(mode="json") for n in [entry.model, *entry.fallbacks]]
    spec = assembly.load_spec(settings, CREW)
    blob = json.dumps([role, models, spec.agents.data, spec.tasks.data], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _read_cache(settings: Settings) -> dict[str, Any]:
    try:
        data = json.loads((settings.home / CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(settings: Settings, data: dict[str, Any]) -> None:
    path = settings.home / CACHE_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, path)
    except OSError as exc:  # a cache: the next run calibrates again
        log.warning("cannot save the reviewer calibration to %s: %s", path, exc)


def _ask(settings: Settings, role_map: Any, inputs: dict[str, str]) -> Any:
    from crewkit import assembly

    crew, _ = assembly.build_crew(settings, role_map, CREW)
    return assembly.kickoff(crew, inputs)


def calibrate(settings: Settings, role_map: Any, role: str) -> Trust:
    """Trust from the cache, else from the probes (each must get its known verdict)."""
    key = _cache_key(settings, role)
    cache = _read_cache(settings)
    if isinstance(cache.get(key), dict):
        return Trust(bool(cache[key].get("trusted")), str(cache[key].get("reason", "")))
    trust = Trust(True)
    for inputs, expected, failure in PROBES:
        with ledger.stage("calibrate"):
            review = model_review(_ask(settings, role_map, inputs))
        if review is None or review.passed != expected:
            trust = Trust(False, failure if review is not None else "its reply was not a valid review")
            break
    cache[key] = {"trusted": trust.trusted, "reason": trust.reason, "model": settings.role(role).model}
    _write_cache(settings, cache)
    return trust


def review(settings: Settings, role_map: Any, task: str, criteria: str, result: str) -> ReviewerVerdict:
    """Ask the reviewer if it is trusted; an untrusted reviewer is reported, not asked."""
    role = reviewer_role(settings, role_map)
    model = settings.role(role).model
    trust = calibrate(settings, role_map, role)
    if not trust.trusted:
        return ReviewerVerdict(role, model, None, False, [f"failed calibration: {trust.reason}"])
    said = model_review(_ask(settings, role_map, {"task": task, "criteria": criteria, "result": result}))
    if said is None:
        return ReviewerVerdict(role, model, False, True, ["the reviewer's reply was not a valid review"])
    return ReviewerVerdict(role, model, said.passed, True, [i for i in said.issues if i.strip()])
