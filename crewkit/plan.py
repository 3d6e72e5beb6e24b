"""The typed contracts between the flow's steps: a plan of subtasks and a verifier review.

These are also the JSON schemas the embedded model is constrained to, so a small model still
produces a valid plan; `Plan.normalised()` removes what small models get wrong (duplicates,
empty or overlong lists) deterministically.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

TaskType = Literal["reasoning", "code", "vision"]
MAX_SUBTASKS = 4


class Subtask(BaseModel):
    description: str = Field(min_length=8, max_length=200)
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


class Review(BaseModel):
    passed: bool
    issues: list[Annotated[str, Field(max_length=160)]] = Field(default_factory=list, max_length=3)
