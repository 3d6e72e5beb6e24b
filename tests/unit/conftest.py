"""Unit-test fixtures: the project copy runs subtasks one after another unless a test says otherwise.

Many unit tests script a role's replies in call order (ScriptedLLM's queue): with batching on,
two subtasks' managers would take each other's scripted replies in whatever order their threads
call. The shipped default (`batching.enabled: true` in config/operations.yaml) is kept by the
integration tests (real models answer by prompt); tests of batching turn it on with
`set_batching(project, enabled=True, max_concurrency=n)`.

Likewise the response cache: the shipped `local-small` has a fixed seed, which makes its calls
cacheable, and a cached answer would take the place of the next scripted reply. The copy drops
the seed (as the model entry was before the cache); tests of the cache set their own `params:`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest


def set_batching(project: Path, *, enabled: bool, max_concurrency: int | None = None) -> None:
    """Rewrite the copy's `batching:` section of config/operations.yaml."""
    path = project / "config" / "operations.yaml"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    section = f"batching:\n  enabled: {'true' if enabled else 'false'}\n"
    if max_concurrency is not None:
        section += f"  max_concurrency: {max_concurrency}\n"
    pattern = re.compile(r"^batching:\n(?:[ \t]+.*\n|[ \t]*\n)*", re.MULTILINE)
    text = pattern.sub(section, text, count=1) if pattern.search(text) else text + "\n" + section
    path.write_text(text, encoding="utf-8")


SEEDED = "params: {temperature: 0.2, max_tokens: 256, seed: 42}"
SAMPLED = "params: {temperature: 0.2, max_tokens: 256}"


def unseed(project: Path) -> None:
    """The copy's local-small without its fixed seed: its calls are not cacheable (see above)."""
    path = project / "config" / "models.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count(SEEDED) == 1, (
        f"config/models.yaml no longer has {SEEDED!r}: update tests/unit/conftest.py"
    )
    path.write_text(text.replace(SEEDED, SAMPLED), encoding="utf-8")


@pytest.fixture
def project(project: Path) -> Path:
    set_batching(project, enabled=False)
    unseed(project)
    return project
