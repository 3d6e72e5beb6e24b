"""The embedded llama.cpp model without the real model: a tiny fake `llama` object.

Pinned tool arguments are spliced in, never generated (and a fully pinned call runs no model);
the context fit always ends, keeps the task's prompt and counts the prompt as the chat template
renders it; a file llama.cpp cannot load is one line; threads default to every usable core; a
context too small for a reply is refused at config load; a task too long for the flow's
prompts is refused before any model call.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from crewkit.errors import ConfigError, ModelUnavailable, UsageError
from crewkit.models import gguf, llamacpp, usage_cell
from crewkit.models.llamacpp import LlamaCppLLM
from crewkit.runtime.pins import pin as pin_tool_arguments
from crewkit.runtime.pins import unpin as clear_pins

TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
DELEGATE = {
    "type": "function",
    "function": {
        "name": "delegate_work_to_coworker",
        "parameters": {
            "type": "object",
            "properties": {
                "task": {"type": "string"},
                "context": {"type": "string"},
                "coworker": {"type": "string"},
            },
            "required": ["task", "context", "coworker"],
        },
    },
}


class FakeLlama:
    """One token per byte; renders with the SmolLM2 chat template; replies from a script."""

    chat_handler = None
    chat_format = "chat_template.default"
    metadata = {"tokenizer.chat_template": TEMPLATE}

    def __init__(self, replies: list[str] | None = None) -> None:
        self.replies = list(replies or [])
        self.requests: list[dict[str, Any]] = []
        self._model = self

    def token_eos(self) -> int:
        return 2

    def token_bos(self) -> int:
        return 1

    def token_get_text(self, token: int) -> str:
        return {1: "<|im_start|>", 2: "<|im_end|>"}[token]

    def tokenize(self, data: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return list(data)

    def detokenize(self, tokens: list[int]) -> bytes:
        return bytes(tokens)

    def create_chat_completion(self, messages: list[dict[str, str]], **kwargs: Any) -> dict[str, Any]:
        self.requests.append({"messages": messages, **kwargs})
        if not self.replies:
            raise AssertionError("the model was run, but no reply was scripted")
        return {
            "choices": [{"message": {"content": self.replies.pop(0)}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5},
        }


class Task:
    def __init__(self, task_id: str) -> None:
        self.id, self.name, self.description = task_id, "t", "d"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeLlama:
    llama = FakeLlama()
    monkeypatch.setattr(llamacpp, "_load", lambda *a: (llama, threading.Lock()))
    return llama


def _llm(**kw: Any) -> LlamaCppLLM:
    return LlamaCppLLM(model="local-small", model_path="/fake.gguf", **kw)


# -- pinned tool arguments ----------------------------------------------------------------------


def test_pinned_arguments_are_spliced_in_not_generated(fake: FakeLlama):
    long_task = "Summarise this report. " * 900  # ~20 KB: used to be re-generated token by token
    fake.replies = [json.dumps({"name": "delegate_work_to_coworker", "arguments": {"context": "see task"}})]
    pin_tool_arguments("t1", "Delegate work to coworker", {"coworker": "Code Specialist", "task": long_task})
    try:
        (call,) = _llm().call(
            [{"role": "user", "content": "delegate it"}], tools=[DELEGATE], from_task=Task("t1")
        )
    finally:
        clear_pins(["t1"])
    grammar = json.dumps(fake.requests[0]["response_format"]["schema"])
    assert long_task[:40] not in grammar and "Code Specialist" not in grammar
    assert json.loads(call["function"]["arguments"]) == {
        "task": long_task,
        "context": "see task",
        "coworker": "Code Specialist",
    }


def test_a_tool_call_with_a_raw_control_character_in_a_string_is_read_not_a_crash(fake: FakeLlama):
    """llama.cpp's JSON grammar lets a raw tab or newline into a string; strict JSON refuses it."""
    fake.replies = [
        '{"name": "delegate_work_to_coworker", "arguments": {"task": "a\tb\nc", "context": "", "coworker": "X"}}'
    ]
    (call,) = _llm().call([{"role": "user", "content": "delegate it"}], tools=[DELEGATE])
    assert json.loads(call["function"]["arguments"])["task"] == "a\tb\nc"


def test_a_structured_reply_with_a_raw_newline_in_a_string_validates(fake: FakeLlama):
    """The planner's structured plan failed a run on a raw newline inside a JSON string."""
    from pydantic import BaseModel

    class Plan(BaseModel):
        steps: list[str]

    fake.replies = ['{"steps": ["first\nline", "second\tpart"]}']
    result = _llm().call([{"role": "user", "content": "plan it"}], response_model=Plan)
    assert result == Plan(steps=["first\nline", "second\tpart"])


def test_fully_pinned_tool_call_runs_no_model_and_says_so(fake: FakeLlama):
    args = {"coworker": "Code Specialist", "task": "write it", "context": ""}
    pin_tool_arguments("t2", "Delegate work to coworker", args)
    try:
        with usage_cell.open_cell() as cell:
            (call,) = _llm().call([{"role": "user", "content": "go"}], tools=[DELEGATE], from_task=Task("t2"))
    finally:
        clear_pins(["t2"])
    assert fake.requests == []  # FakeLlama has no reply scripted: a model run would fail
    assert call["function"]["name"] == "delegate_work_to_coworker"
    assert json.loads(call["function"]["arguments"]) == {
        "task": "write it",
        "context": "",
        "coworker": "Code Specialist",
    }
    assert cell.get("relayed") and cell.get("not_run") == "pinned tool call" and "input_tokens" not in cell


# -- the context fit ----------------------------------------------------------------------------


def _fit_in_thread(llm: LlamaCppLLM, llama: Any, turns: list[dict[str, str]], max_tokens: int) -> Any:
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["turns"] = llm._fit(llama, turns, max_tokens)
        except Exception as exc:  # noqa: BLE001
            box["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "_fit did not terminate"
    return box


def test_fit_always_ends_even_when_nothing_can_fit():
    llama = FakeLlama()
    turns = [{"role": "system", "content": "S" * 300}, {"role": "user", "content": "task " * 200}]
    box = _fit_in_thread(_llm(n_ctx=512), llama, turns, 640)  # the reply room alone exceeds the window
    assert isinstance(box.get("error"), ValueError) and "cannot fit" in str(box["error"])


def test_fit_keeps_system_prompt_and_task_turn_and_drops_old_middle_turns():
    llama = FakeLlama()
    task = "Current Task: write a palindrome checker"
    turns = [
        {"role": "system", "content": "You are Code Specialist."},
        {"role": "user", "content": task},
        {"role": "assistant", "content": "old thought " * 40},
        {"role": "user", "content": "Tool result:\n" + "old observation " * 40},
        {"role": "assistant", "content": "newer thought"},
        {"role": "user", "content": "Tool result:\nlatest"},
    ]
    box = _fit_in_thread(_llm(n_ctx=600), llama, turns, 300)
    kept = box["turns"]
    assert kept[0]["content"] == "You are Code Specialist." and kept[1]["content"] == task
    assert kept[-1]["content"] == "Tool result:\nlatest"
    assert llamacpp._count_tokens(llama, kept) <= 600 - 300


def test_fit_cuts_a_long_tool_result_in_the_middle_before_the_task():
    llama = FakeLlama()
    task = "Current Task: summarise the tool result"
    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": task},
        {"role": "user", "content": "Tool result:\n" + "HEAD " + "x" * 3000 + " TAIL"},
    ]
    kept = _fit_in_thread(_llm(n_ctx=1200), llama, turns, 300)["turns"]
    assert kept[1]["content"] == task
    assert kept[2]["content"].startswith("Tool result:\nHEAD") and kept[2]["content"].endswith("TAIL")
    assert "cut to fit" in kept[2]["content"]
    assert llamacpp._count_tokens(llama, kept) <= 1200 - 300


def test_prompt_tokens_are_counted_as_the_chat_template_renders_them():
    llama = FakeLlama()
    turns = [{"role": "user", "content": "hi"}]  # the template adds SmolLM's default system prompt
    rendered = (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert llamacpp._count_tokens(llama, turns) == len(rendered.encode())


def test_structured_prompts_drop_crewais_pretty_schema_block(fake: FakeLlama):
    """The grammar enforces the schema: its ~200-400 indented tokens only slowed the prompt."""
    from crewai.utilities.i18n import I18N_DEFAULT
    from pydantic import BaseModel, Field

    class Review(BaseModel):
        passed: bool
        description: str = ""  # a field named "description" is not a description

    class Described(BaseModel):
        passed: bool = Field(description="true when every criterion is met")

    for model, expect in ((Review, "Answer with JSON.\n"), (Described, '"true when every criterion is met"')):
        block = I18N_DEFAULT.slice("formatted_task_instructions").format(
            output_format=json.dumps(model.model_json_schema(), indent=2)
        )
        fake.replies = ['{"passed": true}']
        result = _llm().call(
            [{"role": "user", "content": f"Check it.\n{block}\n\nGo:"}], response_model=model
        )
        sent = fake.requests[-1]["messages"][0]["content"]
        assert result.passed is True
        assert "OpenAPI" not in sent and "Preserve the original content" not in sent
        assert sent.startswith("Check it.") and sent.endswith("Go:") and expect in sent
        assert len(sent) < len(block)


# -- loading ------------------------------------------------------------------------------------


def test_a_file_llama_cpp_cannot_load_is_one_line_model_unavailable(tmp_path: Path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00garbage" * 64)
    llm = LlamaCppLLM(model="local-small", model_path=str(bad), n_ctx=1024)
    with pytest.raises(ModelUnavailable) as info:
        llm.call([{"role": "user", "content": "hi"}])
    message = str(info.value)
    assert "\n" not in message
    assert "model 'local-small'" in message and str(bad) in message and "config/models.yaml" in message


def test_threads_default_to_every_usable_core(monkeypatch: pytest.MonkeyPatch):
    import llama_cpp

    seen: dict[str, Any] = {}

    class Llama:
        def __init__(self, **kwargs: Any) -> None:
            seen.update(kwargs)

        def set_cache(self, cache: Any) -> None:
            seen["cache"] = cache

    monkeypatch.setattr(llama_cpp, "Llama", Llama)
    monkeypatch.setattr(gguf.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    monkeypatch.setattr(gguf, "_MODELS", {})
    gguf.load("m", "/x.gguf", 2048, 0)
    assert gguf.usable_cores() <= 3
    assert seen["n_threads"] == seen["n_threads_batch"] == gguf.usable_cores() >= 1
    assert seen["cache"] is not None  # prompt cache: earlier prompts' KV states are reused


def test_calls_use_only_the_cores_other_processes_leave_free(
    fake: FakeLlama, monkeypatch: pytest.MonkeyPatch
):
    """2 llama.cpp threads on 2 busy cores ran ~40x slower than 1: threads follow the free cores."""
    set_to: list[tuple[int, int]] = []

    class Ctx:
        def set_n_threads(self, n: int, n_batch: int) -> None:
            set_to.append((n, n_batch))

    fake._ctx = Ctx()
    monkeypatch.setattr(gguf, "usable_cores", lambda: 2)
    monkeypatch.setattr(gguf.os, "cpu_count", lambda: 2)
    fake.replies = ["a", "b", "c"]
    monkeypatch.setattr(gguf, "_runnable_threads", lambda: 9)  # a busy machine
    _llm().call("hi")
    monkeypatch.setattr(gguf, "_runnable_threads", lambda: 1)  # only this thread runs
    _llm().call("hi")
    _llm(n_threads=1).call("hi")  # an explicit param wins
    assert set_to == [(1, 1), (2, 2), (1, 1)]


# -- config load and run start ------------------------------------------------------------------


def test_a_context_too_small_for_the_reply_is_refused_at_config_load(project: Path):
    from crewkit.runtime.startup import load_checked as load_settings

    path = project / "config" / "models.yaml"
    text = path.read_text()
    assert "    context: 8192\n" in text
    path.write_text(text.replace("    context: 8192\n", "    context: 512\n", 1))
    with pytest.raises(ConfigError) as info:
        load_settings(project)
    message = str(info.value)
    assert message.startswith("config/models.yaml:") or "models.yaml:" in message.split()[0]
    assert "context 512" in message and "at least" in message and "\n" not in message


def test_a_task_too_long_for_the_flows_prompts_is_refused_before_any_model_call(project: Path):
    from crewkit.models.registry import RoleMap
    from crewkit.runtime.runner import run_flow
    from crewkit.runtime.startup import load_checked as load_settings
    from tests.fakes import ScriptedLLM

    path = project / "config" / "models.yaml"
    path.write_text(path.read_text().replace("    context: 8192\n", "    context: 2048\n", 1))
    settings = load_settings(project)
    roles = {r: ScriptedLLM([]) for r in ("reasoning", "code", "vision", "manager")}
    task = ("Please analyse the following text carefully. " * 500)[:19_999]  # accepted by Inputs
    with pytest.raises(UsageError) as info:
        run_flow(settings, RoleMap(settings, overrides=roles), "default", {"task": task})
    message = str(info.value)
    assert (
        message.startswith("--inputs: field 'task' is about 5,000 tokens; role '")
        and "fits at most" in message
    )
    assert "2048-token context" in message and "\n" not in message
    assert all(not llm.calls for llm in roles.values())
    assert not list((settings.project_dir / "output").glob("*.json"))


def test_the_task_limit_is_exact_at_the_boundary(settings):
    from crewkit.models.context_fit import check_inputs_fit
    from crewkit.models.registry import RoleMap
    from crewkit.runtime.preflight import load_flow_class
    from tests.fakes import ScriptedLLM

    roles = {r: ScriptedLLM([]) for r in ("reasoning", "code", "vision", "manager")}
    role_map = RoleMap(settings, overrides=roles)
    flow = load_flow_class(settings, "default")
    with pytest.raises(UsageError) as info:
        check_inputs_fit(settings, role_map, flow, {"task": "a" * 40_000})
    limit = int(info.value.args[0].split("fits at most about ")[1].split()[0].replace(",", ""))
    assert limit > 500
    check_inputs_fit(settings, role_map, flow, {"task": "a" * (limit * 4)})  # estimated 4 chars a token
    with pytest.raises(UsageError):
        check_inputs_fit(settings, role_map, flow, {"task": "a" * (limit * 4 + 4)})


def test_hosted_models_are_checked_against_their_configured_context(project: Path):
    from crewkit.models.context_fit import check_inputs_fit
    from crewkit.models.registry import RoleMap
    from crewkit.runtime.preflight import load_flow_class
    from crewkit.runtime.startup import load_checked as load_settings

    path = project / "config" / "models.yaml"
    text = path.read_text().replace("    context: 128000\n", "    context: 4096\n")
    text = re.sub(
        r"(?m)^(  (?:reasoning|code|vision|manager): *\{model: )local-small", r"\1gpt-4o-mini", text
    )
    path.write_text(text)
    settings = load_settings(project)
    assert {settings.role(r).model for r in ("reasoning", "code", "vision", "manager")} == {"gpt-4o-mini"}
    flow = load_flow_class(settings, "default")
    check_inputs_fit(settings, RoleMap(settings), flow, {"task": "Summarise the report. " * 20})
    with pytest.raises(UsageError) as info:
        check_inputs_fit(settings, RoleMap(settings), flow, {"task": "Summarise the report. " * 2000})
    assert "model 'gpt-4o-mini', 4096-token context) fits at most about " in str(info.value)
