"""The call journal on a real state store: answered calls are replayed on resume, not paid again.

Each "segment" is a fresh `CallJournal` (as a resumed process has), over the same state.db.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from crewai import Agent, Crew, Task
from crewai.tools import BaseTool
from pydantic import BaseModel

from crewkit.errors import ApprovalRequired, RunPaused
from crewkit.models.metered import Candidate, RoleLLM
from crewkit.observability import ledger
from crewkit.runtime import hooks
from crewkit.runtime.journal import CallJournal, decode, encode
from crewkit.runtime.store import StateStore
from crewkit.runtime.tool_gate import ToolGate
from tests.fakes import ScriptedLLM, tool_call


class Verdict(BaseModel):
    ok: bool
    reasons: list[str]


class SendMail(BaseTool):
    name: str = "send_mail"
    description: str = "Send an email to someone."
    sent: list[str] = []

    def _run(self, to: str) -> str:
        self.sent.append(to)
        return f"mail sent to {to}"


def _role(*llms: ScriptedLLM, caps: tuple[str, ...] = ("text", "tools")) -> RoleLLM:
    return RoleLLM(
        model="crewkit/reasoning",
        role="reasoning",
        candidates=[
            Candidate(
                name=f"m{i}",
                capabilities=list(caps),
                context=8192,
                input_per_mtok=2.0,
                output_per_mtok=10.0,
                build=lambda llm=llm: llm,
            )
            for i, llm in enumerate(llms)
        ],
    )


def _crew(llm: Any, tool: BaseTool) -> Crew:
    agent = Agent(
        role="Mailer", goal="Send mail.", backstory="Sends mail.", llm=llm, tools=[tool], max_iter=3
    )
    task = Task(description="Send the report to bob.", expected_output="done", agent=agent)
    return Crew(agents=[agent], tasks=[task])


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    s = StateStore.open(tmp_path / "home")
    s.create_run("r1", "default", {}, "fp", None)
    return s


def _segment(store: StateStore, count: int = 0, *extra: hooks.Subscriber) -> hooks.RunHooks:
    return hooks.RunHooks([*extra, CallJournal(store, "r1", lambda: count)])


def test_model_answers_are_replayed_on_resume_without_calling_the_model(store):
    with hooks.scope(_segment(store)):
        assert _role(ScriptedLLM(["first answer"])).call("plan it") == "first answer"
    resumed = ScriptedLLM([])
    with ledger.open_ledger() as book, hooks.scope(_segment(store)):
        assert _role(resumed).call("plan it") == "first answer"
    assert resumed.calls == []
    assert book.steps()[0]["replayed"] is True and book.usage() == {}
    rows = store.calls("r1")
    assert [(r["input_tokens"], r["replayed"]) for r in rows] == [(10, False), (0, True)]
    assert rows[0]["cost_usd"] > 0 and rows[1]["cost_usd"] == 0.0


def test_a_response_model_answer_is_replayed_as_an_instance_of_the_calls_model(store):
    with hooks.scope(_segment(store)):
        first = _role(ScriptedLLM([{"ok": True, "reasons": ["fits"]}])).call("judge", response_model=Verdict)
    assert first == Verdict(ok=True, reasons=["fits"])
    with hooks.scope(_segment(store)):
        again = _role(ScriptedLLM([])).call("judge", response_model=Verdict)
    assert isinstance(again, Verdict) and again == first


def test_a_different_response_model_is_a_different_call(store):
    class Other(BaseModel):
        ok: bool

    with hooks.scope(_segment(store)):
        _role(ScriptedLLM([{"ok": True, "reasons": []}])).call("judge", response_model=Verdict)
    with hooks.scope(_segment(store)):
        assert _role(ScriptedLLM([{"ok": False}])).call("judge", response_model=Other) == Other(ok=False)


def test_a_segment_of_a_run_with_nothing_journalled_looks_the_journal_up_once_not_per_call(store):
    lookups: list[str] = []
    conn = store._conn()
    conn.set_trace_callback(lambda sql: lookups.append(sql) if "FROM journal" in sql else None)
    try:
        with hooks.scope(_segment(store)):
            llm = _role(ScriptedLLM(["a", "b", "a"]))
            assert [llm.call("same question") for _ in range(3)] == ["a", "b", "a"]
        assert len(lookups) == 1  # new answers only: the same question thrice is three calls
        with hooks.scope(_segment(store)):  # a resume: the run has journalled answers now
            llm = _role(ScriptedLLM([]))
            assert [llm.call("same question") for _ in range(3)] == ["a", "b", "a"]
        assert len(lookups) == 1 + 1 + 3
    finally:
        conn.set_trace_callback(None)


def test_identical_calls_replay_in_the_order_they_were_answered(store):
    with hooks.scope(_segment(store)):
        llm = _role(ScriptedLLM(["one", "two"]))
        assert [llm.call("again"), llm.call("again")] == ["one", "two"]
    with hooks.scope(_segment(store)):
        llm = _role(ScriptedLLM(["three"]))
        assert [llm.call("again"), llm.call("again"), llm.call("again")] == ["one", "two", "three"]


def test_a_call_made_after_another_checkpoint_does_not_take_an_earlier_steps_answer(store):
    with hooks.scope(_segment(store, count=1)):
        _role(ScriptedLLM(["step one's answer"])).call("same prompt")
    with hooks.scope(_segment(store, count=2)):
        assert _role(ScriptedLLM(["step two's answer"])).call("same prompt") == "step two's answer"


def test_failed_attempts_are_not_journalled_and_a_fallbacks_answer_replays_for_the_call(store):
    with hooks.scope(_segment(store)):
        assert (
            _role(ScriptedLLM([ConnectionError("down")]), ScriptedLLM(["fallback"])).call("x") == "fallback"
        )
    primary = ScriptedLLM([])
    with hooks.scope(_segment(store)):
        assert _role(primary, ScriptedLLM([])).call("x") == "fallback"
    assert primary.calls == []  # answered from the journal at the first attempt
    assert [r["error"] is not None for r in store.calls("r1")] == [True, False, False]


def test_a_paused_tool_call_resumes_with_the_model_answers_replayed_and_the_tool_run_once(store):
    tool = SendMail(sent=[])

    class Gate:
        decided = False

        def check_tool(self, call: hooks.ToolCall) -> None:
            if not self.decided:
                raise RunPaused(ApprovalRequired("approval ap-0000000001 is needed", "ap-0000000001"))

    gate = Gate()
    first = ScriptedLLM([tool_call("send_mail", to="bob@example.com")])
    with hooks.scope(_segment(store, 0, ToolGate(gate))), pytest.raises(RunPaused):
        _crew(_role(first), tool).kickoff()
    assert tool.sent == [] and len(first.calls) == 1

    gate.decided = True  # a person approved; the run resumes in a new segment
    resumed = ScriptedLLM(["Sent the report to bob."])
    with hooks.scope(_segment(store, 0, ToolGate(gate))):
        result = _crew(_role(resumed), tool).kickoff()
    assert result.raw == "Sent the report to bob."
    assert tool.sent == ["bob@example.com"]
    assert len(first.calls) + len(resumed.calls) == 2  # the tool-call answer was not paid twice

    third = ScriptedLLM([])  # resuming once more replays everything: no model call, no tool run
    with hooks.scope(_segment(store, 0, ToolGate(gate))):
        assert _crew(_role(third), tool).kickoff().raw == "Sent the report to bob."
    assert third.calls == [] and tool.sent == ["bob@example.com"]


def test_parallel_tool_calls_paused_on_one_resume_without_running_the_other_again(store):
    tool = SendMail(sent=[])

    class Gate:
        decided = False

        def check_tool(self, call: hooks.ToolCall) -> None:
            if call.arguments["to"] == "carol@example.com" and not self.decided:
                raise RunPaused(ApprovalRequired("approval ap-0000000002 is needed", "ap-0000000002"))

    gate = Gate()
    both = tool_call("send_mail", to="bob@example.com") + tool_call("send_mail", to="carol@example.com")
    first = ScriptedLLM([both])
    with hooks.scope(_segment(store, 0, ToolGate(gate))), pytest.raises(RunPaused):
        _crew(_role(first), tool).kickoff()
    assert tool.sent == ["bob@example.com"]  # CrewAI ran the sibling call in parallel

    gate.decided = True
    resumed = ScriptedLLM(["Sent to both."])
    with hooks.scope(_segment(store, 0, ToolGate(gate))):
        assert _crew(_role(resumed), tool).kickoff().raw == "Sent to both."
    assert sorted(tool.sent) == ["bob@example.com", "carol@example.com"]  # bob's mail went once
    assert len(resumed.calls) == 1


def test_a_text_only_models_run_replays_its_answers_and_tool_results(store):
    tool = SendMail(sent=[])
    action = 'Thought: send it\nAction: send_mail\nAction Input: {"to": "bob@example.com"}'
    with hooks.scope(_segment(store)):
        first = ScriptedLLM([action, "Thought: done\nFinal Answer: Sent."], function_calling=False)
        assert _crew(_role(first, caps=("text",)), tool).kickoff().raw == "Sent."
    again = ScriptedLLM([], function_calling=False)
    with hooks.scope(_segment(store)):
        assert _crew(_role(again, caps=("text",)), tool).kickoff().raw == "Sent."
    assert again.calls == [] and tool.sent == ["bob@example.com"]


def test_a_failing_tool_is_not_journalled(store):
    calls: list[str] = []

    class Flaky(BaseTool):
        name: str = "send_mail"
        description: str = "Send an email."

        def _run(self, to: str) -> str:
            calls.append(to)
            if len(calls) == 1:
                raise OSError("smtp down")
            return "sent"

    with hooks.scope(_segment(store)):
        _crew(_role(ScriptedLLM([tool_call("send_mail", to="bob"), "failed"])), Flaky()).kickoff()
    resumed = ScriptedLLM(["sent now"])
    with hooks.scope(_segment(store)):
        assert _crew(_role(resumed), Flaky()).kickoff().raw == "sent now"
    assert calls == ["bob", "bob"]  # the tool-call answer was replayed, the failed call ran again
    assert len(resumed.calls) == 1  # only the answer to the new tool result was paid


def test_encode_keeps_tool_calls_of_any_provider_as_calls_crewai_executes():
    class Function(BaseModel):
        name: str
        arguments: str

    class OpenAIToolCall(BaseModel):  # the shape of openai's ChatCompletionMessageToolCall
        id: str
        type: str = "function"
        function: Function

    class ToolUse(BaseModel):  # the shape of anthropic's ToolUseBlock
        id: str
        type: str = "tool_use"
        name: str
        input: dict[str, Any]

    stored = encode([OpenAIToolCall(id="c1", function=Function(name="send_mail", arguments='{"to": "bob"}'))])
    assert stored == {
        "type": "tool_calls",
        "value": [
            {"id": "c1", "type": "function", "function": {"name": "send_mail", "arguments": '{"to": "bob"}'}}
        ],
    }
    assert encode([ToolUse(id="t1", name="send_mail", input={"to": "bob"})])["value"][0]["function"] == {
        "name": "send_mail",
        "arguments": '{"to": "bob"}',
    }


def test_encode_refuses_what_would_come_back_changed():
    assert encode(object()) is None
    assert encode(("a", "b")) is None  # a tuple would come back a list
    assert decode(encode({"a": [1, 2]})) == {"a": [1, 2]}
    assert decode(encode("text")) == "text"
    assert decode(encode(Verdict(ok=True, reasons=[]))) == Verdict(ok=True, reasons=[])  # own class


def test_an_answer_that_cannot_be_stored_is_paid_again_rather_than_replayed_wrong(store):
    odd = object()
    with hooks.scope(_segment(store)):
        assert _role(ScriptedLLM([odd])).call("x") is odd
    again = ScriptedLLM(["paid again"])
    with hooks.scope(_segment(store)):
        assert _role(again).call("x") == "paid again"
    assert len(again.calls) == 1
