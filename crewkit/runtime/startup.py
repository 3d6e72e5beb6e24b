"""The engine's one start-up function: settings loaded, then everything that checks them.

`load_settings` validates the YAML on its own (it depends on nothing); the checks that need a
registry run here, next to what they check: providers (`crewkit.models.providers`), guardrail
names (`crewkit.governance.guardrails`). Every entry point (`crewkit ...`, main.py, tests that
want a real engine) starts here.
"""

from __future__ import annotations

from pathlib import Path

from crewkit.models.registry import RoleMap
from crewkit.settings import Settings, load_settings


def check(settings: Settings) -> Settings:
    """Run every registry-dependent check on loaded settings; returns them unchanged."""
    from crewkit.governance import guardrails
    from crewkit.models import providers

    providers.check_settings(settings)
    guardrails.check_settings(settings)
    return settings


def load_checked(project_dir: Path | None = None, profile: str | None = None) -> Settings:
    """`load_settings` (under deployment profile `profile`, else the default) and every check."""
    return check(load_settings(project_dir, profile))


def start(project_dir: Path | None = None, profile: str | None = None) -> tuple[Settings, RoleMap]:
    """Settings loaded and checked, and the role map built on them (models load on first use)."""
    settings = load_checked(project_dir, profile)
    return settings, RoleMap(settings)
