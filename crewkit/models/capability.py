"""Capabilities a subtask needs that its role's models lack, stated instead of invented.

A vision subtask on a role whose models are all text-only (and no image in the inputs) cannot be
answered: a text model would invent what the image shows. `gap(...)` finds that case; the flow
then answers the subtask with `Gap.answer()` (no model call) and records `Gap.limitation()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from crewkit.settings import Settings

NEEDS: dict[str, str] = {"vision": "vision"}  # subtask task_type -> capability its model must have


@dataclass(frozen=True)
class Gap:
    subtask: str
    role: str
    model: str
    capability: str
    capabilities: tuple[str, ...]

    def answer(self) -> str:
        return (
            f"Not answered: this part needs a model that can see images, but role '{self.role}' runs "
            f"'{self.model}' (capabilities: {', '.join(self.capabilities) or 'text'}; no {self.capability}), "
            "and no image was given. "
            f"To answer it, map the '{self.role}' role to a model with the '{self.capability}' capability in "
            f"config/models.yaml (for example `{self.role}: {{model: gpt-4o}}`) and give the image."
        )

    def limitation(self) -> str:
        return (
            f"{self.subtask} not attempted: role '{self.role}' runs '{self.model}', which lacks "
            f"'{self.capability}'; set roles.{self.role} in config/models.yaml to a model with it"
        )


def gap(settings: Settings, subtask: str, task_type: str, role: str) -> Gap | None:
    """The gap when none of the role's models (primary or fallbacks) has what the subtask needs."""
    need = NEEDS.get(task_type)
    if need is None:
        return None
    entry = settings.role(role)
    models = [settings.models.models[n] for n in [entry.model, *entry.fallbacks]]
    if any(m.can(need) for m in models):  # type: ignore[arg-type]
        return None
    return Gap(subtask, role, entry.model, need, tuple(models[0].capabilities))
