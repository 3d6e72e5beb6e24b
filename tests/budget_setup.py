"""A project whose profile has the budgets a test needs, on a priced model (budget tests share it).

`budget_settings(project, budgets)` writes `config/profiles.yaml` with one profile `test` (a
high price ceiling) and prices `local-small` (the role map's model for every chat role) at
`price` USD per million tokens (input, output), its maximum output at `max_tokens`.
`role_llm(settings, fake)` is the reasoning role's `RoleLLM`, built by the registry with the
scripted fake in place of the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from crewkit.settings import Settings, load_settings

PRICE = (1000.0, 2000.0)  # USD per million tokens: $0.001 per input token, $0.002 per output token


def budget_settings(
    project: Path,
    budgets: dict[str, Any],
    *,
    price: tuple[float, float] = PRICE,
    max_tokens: int | None = 100,
) -> Settings:
    profiles = {
        "default": "test",
        "profiles": {
            "test": {
                "latency_ms": 100,
                "price_ceiling_per_1k": 1000,
                "slo": {"p99_ms": 500, "availability": 0.99, "error_rate": 0.01},
                "budgets": budgets,
            }
        },
    }
    (project / "config" / "profiles.yaml").write_text(yaml.safe_dump(profiles, sort_keys=False))
    models_path = project / "config" / "models.yaml"
    models = yaml.safe_load(models_path.read_text())
    entry = models["models"]["local-small"]
    entry["price"] = {"input_per_mtok": price[0], "output_per_mtok": price[1]}
    entry["params"] = {"temperature": 0.2} | ({"max_tokens": max_tokens} if max_tokens else {})
    models_path.write_text(yaml.safe_dump(models, sort_keys=False))
    return load_settings(project)


def role_llm(settings: Settings, fake: Any, role: str = "reasoning") -> Any:
    from crewkit.models.registry import RoleMap

    return RoleMap(settings, overrides={role: fake}).llm(role)
