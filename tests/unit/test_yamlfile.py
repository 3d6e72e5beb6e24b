"""The FILE:LINE YAML loader reads what yaml.safe_load (and so CrewAI) reads, merge keys included."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from crewkit import yamlfile
from crewkit.errors import ConfigError

AGENTS_WITH_MERGE = """\
_defaults: &defaults
  goal: Answer well
  backstory: You know things.
  allow_delegation: false

researcher:
  <<: *defaults
  role: Researcher
  goal: Find facts

writer:
  <<: [*defaults, {verbose: true}]
  role: Writer
"""


def test_merge_key_loads_like_safe_load_and_keeps_lines(tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(AGENTS_WITH_MERGE)
    doc = yamlfile.load(path)
    assert doc.data == yaml.safe_load(AGENTS_WITH_MERGE)
    assert doc.data["researcher"]["goal"] == "Find facts"  # written here: wins over the merge
    assert doc.data["writer"]["verbose"] is True
    assert doc.line_of(("researcher", "role")) == 8
    assert doc.line_of(("researcher", "goal")) == 9
    assert doc.line_of(("researcher", "backstory")) == 3  # merged: the anchor's line
    assert doc.line_of(("writer", "verbose")) == 12


def test_merging_a_scalar_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text("base: &b hello\nresearcher:\n  <<: *b\n  role: R\n")
    with pytest.raises(ConfigError, match=r"agents.yaml:1: '<<' merges mappings only"):
        yamlfile.load(path)


def test_duplicate_key_still_refused_next_to_a_merge(tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text("base: &b {role: R}\na:\n  <<: *b\n  goal: x\n  goal: y\n")
    with pytest.raises(ConfigError, match=r"agents.yaml:5: duplicate key 'goal'"):
        yamlfile.load(path)
