"""The comparison runner and `crewkit eval compare`: scores, usage, errors as rows, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crewkit.cli import main
from crewkit.errors import ModelAuthError, ModelUnavailable, UsageError
from crewkit.evaluation import compare as cmp
from crewkit.evaluation import suite as suites
from crewkit.runtime.store import StateStore
from crewkit.settings import load_settings
from tests.fakes import ScriptedLLM, tool_call

SUITE = """\
name: mini
max_tokens: 20
cases:
  - id: add
    kind: reasoning
    prompt: "What is 17 + 25?"
    answer: {number: 42}
  - id: weather
    kind: tool_use
    prompt: "Weather in Paris?"
    tools:
      - name: get_weather
        description: Current weather.
        parameters: {type: object, properties: {city: {type: string}}, required: [city]}
    expected: {name: get_weather, arguments: {city: Paris}}
  - id: vault
    kind: drift
    needle: "The secret code of the blue vault is 4721."
    question: "What is the secret code?"
    answer: {number: 4721}
    lengths: [256, 20000]
    depths: [0.5]
"""
RIGHT = ["42", tool_call("get_weather", city="Paris"), "The code is 4721."]


@pytest.fixture
def mini(tmp_path: Path) -> suites.Suite:
    path = tmp_path / "mini.yaml"
    path.write_text(SUITE)
    return suites.load(path)


def by_case(comparison: cmp.Comparison) -> dict[str, cmp.CaseResult]:
    return {r.case_id: r for r in comparison.results}


def test_each_case_is_scored_with_tokens_latency_and_cost(settings, mini):
    llm = ScriptedLLM([*RIGHT, "4721"])  # gpt-4o's 128k context holds the 20000-token case too
    result = cmp.compare(settings, ["gpt-4o"], mini, llms={"gpt-4o": llm})
    rows = by_case(result)
    assert list(rows) == ["add", "weather", "vault@256/0.5", "vault@20000/0.5"]
    for case_id in rows:
        row = rows[case_id]
        assert (row.score, row.passed, row.error) == (1.0, True, None), row
        assert (row.input_tokens, row.output_tokens) == (10, 5)  # ScriptedLLM's usage per call
        assert row.cost_usd == pytest.approx((10 * 2.5 + 5 * 10.0) / 1e6)  # gpt-4o's price
        assert row.latency_s > 0 and row.ttft_s is None
    assert rows["weather"].role == "manager" and rows["add"].role == "reasoning"
    assert rows["vault@256/0.5"].detail["length"] == 256
    # the tool-use case offered the tools and got the call back instead of running it
    assert llm.calls[1].tool_names == ["get_weather"]
    assert llm.calls[0].tools is None
    assert llm.calls[0].messages[-1]["content"] == "What is 17 + 25?"
    assert "4721" in llm.calls[2].prompt
    assert result.profile == settings.profile_name and result.models == ["gpt-4o"]


def test_a_drift_length_beyond_the_context_is_skipped_not_failed(settings, mini):
    result = cmp.compare(settings, ["local-small"], mini, llms={"local-small": ScriptedLLM(list(RIGHT))})
    row = by_case(result)["vault@20000/0.5"]
    assert row.detail["skipped"] == "20000 tokens do not fit the model's 8192-token context"
    assert row.error is None and row.latency_s == 0


def test_tool_use_is_skipped_for_a_model_without_the_tools_capability(project, mini):
    path = project / "config" / "models.yaml"
    path.write_text(
        path.read_text().replace(
            "capabilities: [text, tools]\n    price: {input_per_mtok: 0.0",
            "capabilities: [text]\n    price: {input_per_mtok: 0.0",
        )
    )
    settings = load_settings(project)
    llm = ScriptedLLM(["42", "4721"])
    row = by_case(cmp.compare(settings, ["local-small"], mini, llms={"local-small": llm}))["weather"]
    assert row.detail["skipped"] == "the model has no 'tools' capability" and len(llm.calls) == 2


def test_a_failed_call_is_an_error_row_redacted_and_run_again_next_time(settings, mini, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-0123456789abcdefghijklmnop")
    boom = RuntimeError("upstream said:\nbad key sk-live-0123456789abcdefghijklmnop")
    result = cmp.compare(
        settings, ["gpt-4o"], mini, llms={"gpt-4o": ScriptedLLM(["42", boom, "4721", "4721"])}
    )
    row = by_case(result)["weather"]
    assert row.score == 0 and not row.passed and row.error is not None
    assert "sk-live" not in row.error and "\n" not in row.error and "bad key" in row.error
    assert by_case(result)["add"].passed  # the other cases ran
    again = ScriptedLLM([tool_call("get_weather", city="paris")])  # only the failed case runs again
    rerun = by_case(cmp.compare(settings, ["gpt-4o"], mini, llms={"gpt-4o": again}))
    assert rerun["weather"].passed and rerun["weather"].error is None
    assert len(again.calls) == 1


class ProviderError(Exception):
    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (ModelAuthError("model 'gpt-4o' refused the credentials"), "model 'gpt-4o' refused the credentials"),
        (ProviderError("invalid api key", 401), "ProviderError 401: invalid api key"),
    ],
)
def test_a_refused_key_fails_the_rest_of_that_model_without_calling_it(settings, mini, error, shown):
    llm = ScriptedLLM([error])
    rows = by_case(cmp.compare(settings, ["gpt-4o"], mini, llms={"gpt-4o": llm}))
    assert len(llm.calls) == 1
    assert [r.error for r in rows.values()] == [shown] * 4


def test_a_transient_error_does_not_stop_the_model(settings, mini):
    llm = ScriptedLLM([ProviderError("overloaded", 503), *RIGHT[1:], "4721"])
    rows = by_case(cmp.compare(settings, ["gpt-4o"], mini, llms={"gpt-4o": llm}))
    assert rows["add"].error == "ProviderError 503: overloaded"
    assert [r.passed for r in rows.values()] == [False, True, True, True]


def test_interrupted_run_keeps_finished_cases_and_a_rerun_does_not_call_them_again(settings, mini):
    first = ScriptedLLM(["42", KeyboardInterrupt()])
    with pytest.raises(cmp.Interrupted) as info:
        cmp.compare(settings, ["local-small"], mini, llms={"local-small": first})
    assert str(info.value) == "interrupted: 1 finished case kept; run the same command again to continue"
    assert info.value.exit_code == 130
    # ScriptedLLM fails on any call beyond its replies: 'add' must come from state.db
    second = ScriptedLLM([tool_call("get_weather", city="Paris"), "4721"])
    result = cmp.compare(settings, ["local-small"], mini, llms={"local-small": second})
    rows = by_case(result)
    assert all(rows[c].passed for c in ("add", "weather", "vault@256/0.5"))
    assert result.resumed == 1 and len(second.calls) == 2
    assert [c.last for c in second.calls][0] == "Weather in Paris?"


def test_fresh_runs_every_case_again(settings, mini):
    cmp.compare(settings, ["local-small"], mini, llms={"local-small": ScriptedLLM(list(RIGHT))})
    again = ScriptedLLM(["41", tool_call("get_weather", city="Paris"), "4721"])
    rows = by_case(cmp.compare(settings, ["local-small"], mini, llms={"local-small": again}, fresh=True))
    assert len(again.calls) == 3 and not rows["add"].passed
    # and the fresh results replaced the kept ones
    kept = by_case(cmp.compare(settings, ["local-small"], mini, llms={"local-small": ScriptedLLM([])}))
    assert not kept["add"].passed


def test_a_changed_model_entry_or_suite_runs_afresh(project, settings, mini, tmp_path):
    cmp.compare(settings, ["local-small"], mini, llms={"local-small": ScriptedLLM(list(RIGHT))})
    path = project / "config" / "models.yaml"
    path.write_text(
        path.read_text().replace(
            "params: {temperature: 0.2, max_tokens: 256}", "params: {temperature: 0.0, max_tokens: 256}"
        )
    )
    changed = load_settings(project)
    assert cmp.model_hash("local-small", changed.models.models["local-small"]) != cmp.model_hash(
        "local-small", settings.models.models["local-small"]
    )
    llm = ScriptedLLM(list(RIGHT))
    cmp.compare(changed, ["local-small"], mini, llms={"local-small": llm})
    assert len(llm.calls) == 3
    edited = tmp_path / "edited.yaml"
    edited.write_text(SUITE.replace("What is 17 + 25?", "What is 25 + 17?"))
    llm = ScriptedLLM(list(RIGHT))
    cmp.compare(changed, ["local-small"], suites.load(edited), llms={"local-small": llm})
    assert len(llm.calls) == 3


def test_repeat_gives_latency_samples_and_total_tokens(settings, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("repeat: 3\ncases:\n  - {id: a, kind: reasoning, prompt: 'x?', answer: {number: 1}}\n")
    llm = ScriptedLLM(["1", "1", "2"])
    (row,) = cmp.compare(settings, ["local-small"], suites.load(path), llms={"local-small": llm}).results
    assert len(row.detail["latency_samples_s"]) == 3 and row.detail["scores"] == [1.0, 1.0, 0.0]
    assert row.score == pytest.approx(2 / 3) and not row.passed
    assert (row.input_tokens, row.output_tokens) == (30, 15)


def test_the_case_sampling_applies_during_its_call_and_the_model_keeps_its_own(settings, tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(
        "temperature: 0\nmax_tokens: 9\ncases:\n"
        "  - {id: a, kind: reasoning, prompt: 'x?', answer: {number: 1}}\n"
        "  - {id: b, kind: reasoning, prompt: 'y?', answer: {number: 1}, temperature: 0.5, max_tokens: 3}\n"
    )
    seen = []
    llm = ScriptedLLM(temperature=0.7, max_tokens=256)
    llm.add(*[lambda call: seen.append((llm.temperature, llm.max_tokens)) or "1"] * 2)
    cmp.compare(settings, ["local-small"], suites.load(path), llms={"local-small": llm})
    assert seen == [(0.0, 9), (0.5, 3)]
    assert (llm.temperature, llm.max_tokens) == (0.7, 256)


def test_progress_is_reported_per_case(settings, mini):
    seen = []
    cmp.compare(
        settings,
        ["local-small"],
        mini,
        llms={"local-small": ScriptedLLM(list(RIGHT))},
        progress=lambda done, total, label: seen.append((done, total, label)),
    )
    assert seen[0] == (0, 4, "local-small: add") and seen[-1] == (4, 4, "done")


@pytest.mark.parametrize(
    ("models", "error", "text"),
    [
        (["local-smal"], UsageError, "unknown model 'local-smal' (did you mean 'local-small'?)"),
        (["local-minilm"], UsageError, "model 'local-minilm' is an embedding model"),
        (["local-small", "local-small"], UsageError, "named twice"),
        ([], UsageError, "give at least one model"),
        (
            ["local-small", "gpt-4o"],
            ModelUnavailable,
            "model 'gpt-4o' needs OPENAI_API_KEY, which is not set",
        ),
    ],
)
def test_bad_models_fail_before_any_call(settings, mini, models, error, text):
    llm = ScriptedLLM([])
    with pytest.raises(error) as info:
        cmp.compare(settings, models, mini, llms={"local-small": llm})
    assert text in str(info.value) and "\n" not in str(info.value)
    assert llm.calls == []
    assert not StateStore.open(settings.home).read("SELECT * FROM eval_cases")


def test_a_placeholder_key_is_refused_naming_the_model_and_variable(settings, mini, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-your-key-here")
    with pytest.raises(ModelUnavailable) as info:
        cmp.compare(settings, ["gpt-4o-mini"], mini)
    message = str(info.value)
    assert message.startswith("config/models.yaml:") and "model 'gpt-4o-mini'" in message
    assert (
        "OPENAI_API_KEY holds a placeholder" in message and "leave 'gpt-4o-mini' out of --models" in message
    )


# --- the command ---------------------------------------------------------------------------
def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def fake_model(monkeypatch):
    """The CLI builds models through RoleMap._model: hand it a ScriptedLLM per model name."""
    from crewkit.models.registry import RoleMap

    fakes: dict[str, ScriptedLLM] = {}
    monkeypatch.setattr(RoleMap, "_model", lambda self, name: fakes[name])
    return fakes


def test_cli_writes_the_report_and_a_rerun_continues_from_kept_cases(project, capsys, fake_model, tmp_path):
    (project / "mini.yaml").write_text(SUITE)
    fake_model["local-small"] = ScriptedLLM(list(RIGHT))
    out = tmp_path / "report"
    code, stdout, err = run_cli(
        capsys, "eval", "compare", "--models", "local-small", "--suite", "mini.yaml", "--out", str(out)
    )
    assert code == 0, err
    assert {p.name for p in out.iterdir()} >= {
        "results.json",
        "report.md",
        "report.html",
        "quality_cost.png",
        "quality_latency.png",
    }
    assert str(out / "results.json") in stdout and "local-small" in stdout
    cases = json.loads((out / "results.json").read_text())["cases"]
    assert {c["case_id"] for c in cases} == {"add", "weather", "vault@256/0.5", "vault@20000/0.5"}
    fake_model["local-small"] = ScriptedLLM([])  # a rerun makes no call
    code, stdout, _ = run_cli(
        capsys, "eval", "compare", "--models", "local-small", "--suite", "mini.yaml", "--out", str(out)
    )
    assert code == 0 and "3 case(s) kept from an earlier run" in stdout


def test_cli_default_out_dir_is_under_output_eval(project, capsys, fake_model):
    (project / "config" / "suites" / "mini.yaml").write_text(SUITE)
    fake_model["local-small"] = ScriptedLLM(list(RIGHT))
    code, _, err = run_cli(capsys, "eval", "compare", "--models", "local-small", "--suite", "mini")
    assert code == 0, err
    (folder,) = (project / "output" / "eval").iterdir()
    assert folder.name.startswith("mini-") and (folder / "report.md").exists()


def test_cli_malformed_expected_call_is_one_line_exit_2_naming_the_line(project, capsys, fake_model):
    (project / "bad.yaml").write_text(SUITE.replace("arguments: {city: Paris}}", "arguments: {town: Paris}}"))
    fake_model["local-small"] = ScriptedLLM([])
    code, out, err = run_cli(capsys, "eval", "compare", "--models", "local-small", "--suite", "bad.yaml")
    assert code == 2
    assert err == "error: bad.yaml:15: 'town' is not a parameter of 'get_weather'; its parameters are city\n"
    assert out == "" and not (project / "output").exists()


def test_cli_unknown_suite_lists_the_suites(project, capsys):
    code, _, err = run_cli(capsys, "eval", "compare", "--models", "local-small", "--suite", "defualt")
    assert code == 2
    assert err == (
        "error: unknown suite 'defualt' (did you mean 'default'?); the suites are default "
        "(or give a path to a suite YAML file)\n"
    )


def test_cli_unknown_model_is_one_line_exit_2(project, capsys):
    code, _, err = run_cli(capsys, "eval", "compare", "--models", "local-small,gpt4o")
    assert (
        code == 2
        and err.startswith("error: unknown model 'gpt4o' (did you mean 'gpt-4o'")
        and err.count("\n") == 1
    )


def test_cli_ctrl_c_exits_130_and_says_how_to_continue(project, capsys, fake_model):
    (project / "mini.yaml").write_text(SUITE)
    fake_model["local-small"] = ScriptedLLM(
        ["42", tool_call("get_weather", city="Paris"), KeyboardInterrupt()]
    )
    code, _, err = run_cli(capsys, "eval", "compare", "--models", "local-small", "--suite", "mini.yaml")
    assert code == 130
    assert err == "interrupted: 2 finished cases kept; run the same command again to continue\n"
    assert not (project / "output").exists()


def test_default_suite_runs_end_to_end_on_scripted_replies(settings):
    default = suites.load(Path(settings.project_dir) / "config" / "suites" / "default.yaml")

    def reply(call):
        if call.tools:
            return tool_call("search_web", query="x")
        return "I am not sure."

    llm = ScriptedLLM([reply] * len(default.cases))
    result = cmp.compare(settings, ["local-small"], default, llms={"local-small": llm})
    assert len(result.results) == len(default.cases)
    assert all(r.error is None for r in result.results)
    assert not any(r.detail.get("skipped") for r in result.results)  # 3000 tokens fit 8192
