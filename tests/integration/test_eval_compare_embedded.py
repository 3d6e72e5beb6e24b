"""Integration: `eval compare` on the real embedded model (llama.cpp + SmolLM2-135M), a tiny suite.

What a 135M model cannot fake: the tool-use case comes back as a structured call (constrained
decoding) that the checker reads, the text cases stream (time to first token measured), tokens
are counted by llama.cpp, and a rerun takes every case from state.db without loading the model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crewkit.evaluation import compare as cmp
from crewkit.evaluation import suite as suites

pytestmark = pytest.mark.integration

TINY = """\
max_tokens: 12
cases:
  - id: add
    kind: reasoning
    prompt: "What is 2 + 2? Reply with the number only."
    answer: {number: 4}
  - id: weather
    kind: tool_use
    prompt: "What is the weather in Paris?"
    tools:
      - name: get_weather
        description: Current weather for a city.
        parameters: {type: object, properties: {city: {type: string}}, required: [city]}
    expected: {name: get_weather, arguments: {city: Paris}}
  - id: vault
    kind: drift
    needle: "The secret code of the blue vault is 4721."
    question: "What is the secret code of the blue vault? Reply with the number only."
    answer: {number: 4721}
    lengths: [256, 9000]
    depths: [0.5]
"""


def test_tiny_suite_on_the_embedded_model(settings, tmp_path: Path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    suite = suites.load(path)
    result = cmp.compare(settings, ["local-small"], suite)
    rows = {r.case_id: r for r in result.results}
    assert set(rows) == {"add", "weather", "vault@256/0.5", "vault@9000/0.5"}
    for case_id in ("add", "weather", "vault@256/0.5"):
        row = rows[case_id]
        assert row.error is None, row.error
        assert row.latency_s > 0 and row.input_tokens > 0 and row.output_tokens > 0
        assert row.cost_usd == 0.0  # the embedded model is free
    # constrained decoding: the reply is a call the checker reads (right or wrong, never unparsable)
    got = rows["weather"].detail["got"]
    assert isinstance(got, list) and got[0]["name"] == "get_weather", rows["weather"].detail
    # streamed text cases: the first token came before the whole reply
    for case_id in ("add", "vault@256/0.5"):
        assert rows[case_id].ttft_s is not None and 0 < rows[case_id].ttft_s <= rows[case_id].latency_s
    assert rows["weather"].ttft_s is None
    assert rows["vault@256/0.5"].input_tokens > 200  # the filler really is ~256 tokens
    assert rows["vault@9000/0.5"].detail["skipped"].startswith("9000 tokens do not fit")
    # a rerun takes every finished case from state.db: no call, no model load needed
    again = cmp.compare(settings, ["local-small"], suite, llms={"local-small": object()})
    assert again.resumed == 3
    assert [r.to_json() for r in again.results] == [r.to_json() for r in result.results]
