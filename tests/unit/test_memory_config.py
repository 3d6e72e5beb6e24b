"""config/memory.yaml: shipped defaults, missing file, FILE:LINE errors, `crewkit config check`."""

from __future__ import annotations

from pathlib import Path

import pytest

from crewkit.errors import ConfigError
from crewkit.memory.config import MemoryConfig
from crewkit.settings import load_settings


def _write(project: Path, text: str) -> Path:
    path = project / "config" / "memory.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_memory_yaml_equals_the_built_in_defaults(project):
    """The file documents the defaults: loading it gives what a missing file gives."""
    shipped = load_settings(project).memory
    assert shipped == MemoryConfig()
    (project / "config" / "memory.yaml").unlink()
    settings = load_settings(project)
    assert settings.memory == MemoryConfig() and settings.memory_doc is None
    assert settings.memory.long_term.max_chars == 8000
    assert settings.memory.long_term.recall.steps == ["plan", "execute"]
    assert settings.memory.short_term.policy == "summarise"


def test_values_are_read_into_settings(project):
    _write(project, "long_term:\n  max_chars: 100\n  recall: {k: 3}\nshort_term:\n  policy: trim\n")
    memory = load_settings(project).memory
    assert memory.long_term.max_chars == 100 and memory.long_term.recall.k == 3
    assert memory.short_term.policy == "trim"


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        (
            "long_term:\n  enabled: true\n  max_char: 10\n",
            3,
            "unknown field 'max_char' (did you mean 'max_chars'?)",
        ),
        ("long_term:\n  shards: true\n", 2, "long_term.shards"),
        ("long_term:\n  recall:\n    k: '5'\n", 3, "long_term.recall.k"),
        ("short_term:\n  policy: summarize\n", 2, "did you mean 'summarise'"),
        ("long_term:\n  backend: server\n", 1, "needs a url"),
        ("long_term:\n  url: localhost:6333\n", 2, "not an http(s) URL"),
        ("long_term:\n  api_key_env: sk-abc def\n", 2, "not an environment variable name"),
        ("long_term:\n  max_chars: 0\n", 2, "long_term.max_chars"),
        ("- a list\n", 1, "expected a mapping"),
        ("long_term: [1\n", 2, "invalid YAML"),
    ],
)
def test_bad_memory_yaml_is_one_line_with_file_and_line(project, text, line, needle):
    _write(project, text)
    with pytest.raises(ConfigError) as err:
        load_settings(project)
    message = str(err.value)
    assert message.startswith(f"config/memory.yaml:{line}: "), message
    assert needle in message and "\n" not in message


def test_config_check_reports_memory_and_its_errors(project, capsys):
    from crewkit import cli

    assert cli.main(["config", "check"]) == 0
    assert "memory (config/memory.yaml): long-term on, embedded" in capsys.readouterr().out
    _write(project, "long_term:\n  collection: 'bad name'\n")
    assert cli.main(["config", "check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config/memory.yaml:2: ") and err.count("\n") == 1
