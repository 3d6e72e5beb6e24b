"""The typed contracts between the flow's steps: a plan of subtasks and a verifier review.

These are also the JSON schemas the embedded model is constrained to, so a small model still
produces a valid plan. `normalise(plan, task)` then makes the plan follow the task
deterministically (see `crewkit.task_profile`): duplicates and subtasks unrelated to the task
are dropped, a code subtask needs a task that asks for code and a vision subtask a task about an
image, a one-part task gets exactly one subtask, and an unusable plan becomes a plan built from
the task's own parts. Acceptance criteria that ask for sections the task never asked for are
replaced, since the acceptance checks enforce them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from crewkit.governance.acceptance import sections_asked, words
from crewkit.task_profile import TaskProfile, profile

TaskType = Literal["reasoning", "code", "vision"]
MAX_SUBTASKS = 4
DESCRIPTION_MAX = 200
WHOLE_TASK = "Complete the overall task as stated."

_DEFAULT_ACCEPTANCE = {
    "code": "Contains code that parses and does what the task asks.",
    "vision": "Describes what the task asks about the image.",
    "reasoning": "Answers the task directly and correctly.",
}
# words that say what kind of work a subtask is, not what it is about
_GENERIC = frozenset(
    re.split(
        r"\s+",
        "a an the and or of for to in on with by from as at is are be it its this that these those your you "
        "write create make build implement explain describe provide give show code function program script "
        "solution answer task subtask result output step steps example examples test tests using use how what "
        "why which it into about each all any one two three simple small short python "
        "的 是 一 个 了 我 你 这 那 在 和 并 请 写 用 吗 呢 么 什 为",
    )
)


class Subtask(BaseModel):
    description: str = Field(min_length=8, max_length=DESCRIPTION_MAX)
    task_type: TaskType
    acceptance: str = Field(min_length=4, max_length=120)


class Plan(BaseModel):
    subtasks: list[Subtask] = Field(min_length=1, max_length=MAX_SUBTASKS)

    def normalised(self) -> Plan:
        """Drop duplicate descriptions (case/space-insensitive), keep order, cap the count."""
        seen: set[str] = set()
        kept: list[Subtask] = []
        for sub in self.subtasks:
            key = " ".join(sub.description.lower().split())
            if key and key not in seen:
                seen.add(key)
                kept.append(sub)
        return Plan(subtasks=kept[:MAX_SUBTASKS])


def plan_from(output: Any) -> Plan | None:
    """The planner crew's plan, or None when the model's reply is not a valid plan."""
    if isinstance(getattr(output, "pydantic", None), Plan):
        return output.pydantic
    try:
        return Plan.model_validate_json(str(getattr(output, "raw", "") or ""))
    except ValueError:
        return None


class Review(BaseModel):
    passed: bool
    issues: list[Annotated[str, Field(max_length=160)]] = Field(default_factory=list, max_length=3)


def _stem(word: str) -> str:
    return re.sub(r"(?:ing|ers|er|ed|es|s)$", "", word) if len(word) > 4 else word


def _topic(text: str) -> set[str]:
    out: set[str] = set()
    for w in words(re.sub(r"([a-z])([A-Z])", r"\1 \2", text).replace("_", " ")):
        if w not in _GENERIC and not w.isdigit():
            out.add(_stem(w))
    return out


def relevant(description: str, task: str) -> bool:
    """The subtask shares a topic word with the task (a task with no topic words keeps everything)."""
    want = _topic(task)
    if not want:
        return True
    got = _topic(description)
    return any(
        a == b or (min(len(a), len(b)) >= 4 and (a.startswith(b) or b.startswith(a)))
        for a in got
        for b in want
    )


def _fit(text: str) -> str:
    """A task or part as a subtask description (the schema's length limits hold)."""
    text = " ".join(text.split())
    if len(text) > DESCRIPTION_MAX:
        return WHOLE_TASK
    return text if len(text) >= 8 else f"Answer this: {text}"


def _acceptance(sub_type: str, model_acceptance: str | None, allowed: set[str]) -> str:
    """The model's criterion if it asks only for what is allowed, else the default for the type."""
    if model_acceptance and set(sections_asked(model_acceptance)) <= allowed:
        return model_acceptance
    return _DEFAULT_ACCEPTANCE[sub_type]


def _allowed_sections(task: str, sub_type: str) -> set[str]:
    allowed = set(sections_asked(task)) - {"code"}
    if sub_type == "code":
        allowed |= {"code", "example"}
    return allowed


def _type_for(part: str, prof: TaskProfile) -> str:
    sub = profile(part)
    if prof.about_image and sub.about_image:
        return "vision"
    return "code" if prof.asks_for_code and sub.asks_for_code else "reasoning"


def from_parts(task: str, prof: TaskProfile | None = None) -> Plan:
    """The deterministic plan: one subtask per part of the task (one for the whole task if it has
    one part or more parts than a plan may hold)."""
    prof = prof or profile(task)
    parts = list(prof.parts) if 1 < len(prof.parts) <= MAX_SUBTASKS else [task]
    subs = []
    for part in parts:
        kind = prof.main_type if len(parts) == 1 else _type_for(part, prof)
        subs.append(Subtask(description=_fit(part), task_type=kind, acceptance=_DEFAULT_ACCEPTANCE[kind]))
    if len(subs) > 1 and prof.asks_for_code and all(s.task_type != "code" for s in subs):
        subs[0] = subs[0].model_copy(update={"task_type": "code", "acceptance": _DEFAULT_ACCEPTANCE["code"]})
    if len(subs) > 1 and prof.about_image and all(s.task_type != "vision" for s in subs):
        subs[0] = subs[0].model_copy(
            update={"task_type": "vision", "acceptance": _DEFAULT_ACCEPTANCE["vision"]}
        )
    return Plan(subtasks=subs).normalised()


def normalise(plan: Plan | None, task: str) -> Plan:
    """Make the model's plan follow the task; `plan=None` (unusable) gives `from_parts(task)`."""
    prof = profile(task)
    kept: list[Subtask] = []
    for sub in plan.normalised().subtasks if plan else []:
        if sub.task_type == "code" and not prof.asks_for_code:
            continue
        if sub.task_type == "vision" and not prof.about_image:
            continue
        if not relevant(sub.description, task):
            continue
        kept.append(sub)
    if len(prof.parts) == 1:
        best = next((s for s in kept if s.task_type == prof.main_type), None)
        kind = prof.main_type
        return Plan(
            subtasks=[
                Subtask(
                    description=_fit(task),
                    task_type=kind,
                    acceptance=_acceptance(
                        kind, best.acceptance if best else None, _allowed_sections(task, kind)
                    ),
                )
            ]
        )
    kept = kept[: len(prof.parts)]
    types = {s.task_type for s in kept}
    if (
        not kept
        or (prof.asks_for_code and "code" not in types)
        or (prof.about_image and "vision" not in types)
    ):
        return from_parts(task, prof)
    return Plan(
        subtasks=[
            s.model_copy(
                update={
                    "acceptance": _acceptance(s.task_type, s.acceptance, _allowed_sections(task, s.task_type))
                }
            )
            for s in kept
        ]
    )
