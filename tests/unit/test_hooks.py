"""The hook path: ordering, scoping, replay, refusal and pause around model and tool calls.

The crew tests run a real CrewAI crew on ScriptedLLM: a pause raised by a hook must come out
of `crew.kickoff()` as `RunPaused` (CrewAI's `except Exception` must not swallow it) and the
tool must not have run.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from crewai import Agent, Crew, Task
from crewai.hooks.dispatch import InterceptionPoint, get_hooks, get_scoped_hooks
from crewai.tools import BaseTool

from crewkit.errors import ApprovalRequired, CrewkitError, RunPaused
from crewkit.models.metered import Candidate, RoleLLM
from crewkit.observability import ledger
from crewkit.runtime import hooks
from tests.fakes import ScriptedLLM, tool_call


def _role(*llms: ScriptedLLM, role: str = "reasoning") -> RoleLLM:
    return RoleLLM(
        model=f"crewkit/{role}",
        role=role,
        candidates=[
            Candidate(
                name=f"m{i}",
                capabilities=["text", "tools"],
                context=8192,
                input_per_mtok=2.0,
                output_per_mtok=10.0,
                build=lambda llm=llm: llm,
            )  # fmt: skip
            for i, llm in enumerate(llms)
        ],
    )


class SendMail(BaseTool):
    name: str = "send_mail"
    description: str = "Send an email to someone."
    sent: list[str] = []

    def _run(self, to: str) -> str:
        self.sent.append(to)
        return f"mail sent to {to}"


def _crew(llm: Any, tool: BaseTool, *, async_task: bool = False) -> Crew:
    agent = Agent(
        role="Mailer", goal="Send mail.", backstory="Sends mail.", llm=llm, tools=[tool], max_iter=3
    )
    task = Task(
        description="Send the report to bob.", expected_output="done", agent=agent, async_execution=async_task
    )
    tasks = [task]
    if async_task:  # an async task must be followed by a sync one that waits for it
        tasks.append(Task(description="Say done.", expected_output="done", agent=agent, context=[task]))
    return Crew(agents=[agent], tasks=tasks)


def _pause(approval_id: str = "ap-0123456789") -> RunPaused:
    return RunPaused(ApprovalRequired(f"approval {approval_id} is needed", approval_id))


class Recorder(hooks.Subscriber):
    """Records every event with its name; optionally answers, refuses or pauses."""

    def __init__(self, name: str, events: list[tuple[str, str, Any]], **behaviour: Any) -> None:
        self.name, self.events, self.behaviour = name, events, behaviour

    def _act(self, what: str) -> hooks.Replay | None:
        action = self.behaviour.get(what)
        if isinstance(action, BaseException):
            raise action
        return action

    def before_model(self, call: hooks.ModelCall) -> hooks.Replay | None:
        self.events.append((self.name, "before_model", (call.model, call.attempt)))
        return self._act("model")

    def after_model(self, result: hooks.ModelResult) -> None:
        self.events.append((self.name, "after_model", result))

    def before_tool(self, call: hooks.ToolCall) -> hooks.Replay | None:
        self.events.append((self.name, "before_tool", call))
        return self._act("tool")

    def after_tool(self, result: hooks.ToolResult) -> None:
        self.events.append((self.name, "after_tool", result))


# --- model calls ------------------------------------------------------------------------------


def test_subscribers_see_every_model_attempt_in_order_and_the_ledger_records_them():
    primary, fallback = ScriptedLLM([ConnectionError("down")]), ScriptedLLM(["from fallback"])
    events: list[tuple[str, str, Any]] = []
    run = hooks.RunHooks([Recorder("a", events), Recorder("b", events)])
    with ledger.open_ledger() as book, hooks.scope(run), ledger.stage("plan"):
        assert _role(primary, fallback).call("hello") == "from fallback"
    assert [(n, what) for n, what, _ in events] == [
        ("a", "before_model"), ("b", "before_model"), ("a", "after_model"), ("b", "after_model"),
        ("a", "before_model"), ("b", "before_model"), ("a", "after_model"), ("b", "after_model"),
    ]  # fmt: skip
    assert [e[2] for e in events if e[1] == "before_model"] == [("m0", 0), ("m0", 0), ("m1", 1), ("m1", 1)]
    failed, answered = events[2][2], events[6][2]
    assert "down" in failed.error and failed.value is None
    assert (answered.call.role, answered.call.stage, answered.value) == ("reasoning", "plan", "from fallback")
    assert (answered.input_tokens, answered.output_tokens) == (10, 5)
    assert answered.cost_usd == pytest.approx((10 * 2.0 + 5 * 10.0) / 1e6)
    assert [c.model for c in book.calls] == ["m0", "m1"]  # the ledger is the scope's first subscriber
    assert book.usage()["reasoning"]["calls"] == 2


def test_a_replay_answers_without_calling_the_model_and_is_a_free_replayed_step():
    model = ScriptedLLM([])
    events: list[tuple[str, str, Any]] = []
    run = hooks.RunHooks(
        [Recorder("journal", events, model=hooks.Replay("from the journal")), Recorder("later", events)]
    )
    with ledger.open_ledger() as book, hooks.scope(run):
        assert _role(model).call("hello") == "from the journal"
    assert model.calls == []
    # the first replay ends the before pass; every after hook sees the replayed result
    assert [(n, what) for n, what, _ in events] == [
        ("journal", "before_model"), ("journal", "after_model"), ("later", "after_model"),
    ]  # fmt: skip
    assert events[-1][2].replayed and events[-1][2].value == "from the journal"
    (record,) = book.calls
    assert record.replayed and (record.input_tokens, record.output_tokens, record.cost_usd) == (0, 0, 0.0)
    assert book.steps()[0]["replayed"] is True
    assert book.usage() == {} and book.totals()["successful_requests"] == 0


def test_a_refused_model_call_raises_without_a_model_call_and_the_step_says_why():
    model = ScriptedLLM([])
    run = hooks.RunHooks([Recorder("budget", [], model=CrewkitError("budget exhausted for role reasoning"))])
    with (
        ledger.open_ledger() as book,
        hooks.scope(run),
        pytest.raises(CrewkitError, match="budget exhausted"),
    ):
        _role(model, ScriptedLLM([])).call("hello")  # the fallback is not tried either
    assert model.calls == []
    (record,) = book.calls
    assert record.error == "budget exhausted for role reasoning" and record.not_run == "refused"
    assert book.usage() == {}


def test_outside_a_scope_only_the_ledger_sees_model_calls():
    with ledger.open_ledger() as book:
        assert _role(ScriptedLLM(["hi"])).call("hello") == "hi"
    assert hooks.current().subscribers[0].__class__ is ledger.LedgerSubscriber
    assert len(hooks.current().subscribers) == 1
    assert len(book.calls) == 1


def test_hooks_of_one_run_do_not_fire_in_another_run_or_after_the_scope():
    events_a: list[tuple[str, str, Any]] = []
    events_b: list[tuple[str, str, Any]] = []
    run_a = hooks.RunHooks([Recorder("a", events_a)])
    run_b = hooks.RunHooks([Recorder("b", events_b)])
    started, release = threading.Event(), threading.Event()

    def other_run() -> None:
        with hooks.scope(run_b):
            started.set()
            release.wait(10)
            _role(ScriptedLLM(["b"])).call("in run b")

    before_global = get_hooks(InterceptionPoint.PRE_TOOL_CALL)
    thread = threading.Thread(target=other_run)
    thread.start()
    with hooks.scope(run_a):
        started.wait(10)
        assert hooks.current() is run_a
        assert get_scoped_hooks(InterceptionPoint.PRE_TOOL_CALL)  # CrewAI sees the adapters inside
        _role(ScriptedLLM(["a"])).call("in run a")
        release.set()
        thread.join(10)
    _role(ScriptedLLM(["none"])).call("after both runs")
    assert [e[2] for e in events_a if e[1] == "before_model"] == [("m0", 0)]
    assert [e[2] for e in events_b if e[1] == "before_model"] == [("m0", 0)]
    assert hooks.current() is not run_a and hooks.current() is not run_b
    assert get_scoped_hooks(InterceptionPoint.PRE_TOOL_CALL) == []  # gone with the scope
    assert get_hooks(InterceptionPoint.PRE_TOOL_CALL) == before_global  # nothing registered globally


def test_subscribers_that_override_nothing_cost_nothing():
    class AfterOnly(hooks.Subscriber):
        def after_model(self, result: hooks.ModelResult) -> None:
            pass

    run = hooks.RunHooks([AfterOnly()], with_ledger=False)
    assert run._lists["before_model"] == [] and len(run._lists["after_model"]) == 1
    assert not run.watches_tools


def test_a_refused_model_call_in_a_crew_fails_at_once_without_crewais_task_retries():
    # A refusal (an exhausted budget, a policy) gives the same answer however often it is asked:
    # CrewAI's agent would re-run the task max_retry_limit times, each refused again.
    asked: list[int] = []

    class Refuse(hooks.Subscriber):
        def before_model(self, call: hooks.ModelCall) -> hooks.Replay | None:
            asked.append(call.attempt)
            raise CrewkitError("budget exhausted for role reasoning")

    model = ScriptedLLM([])
    with (
        ledger.open_ledger() as book,
        hooks.scope(hooks.RunHooks([Refuse()])),
        pytest.raises(CrewkitError, match="budget exhausted"),
    ):
        _crew(_role(model), SendMail(sent=[])).kickoff()
    assert asked == [0] and model.calls == []
    assert [c.not_run for c in book.calls] == ["refused"]


# --- tool calls in a real CrewAI crew -----------------------------------------------------------


def test_a_tool_hook_pause_comes_out_of_crew_kickoff_and_the_tool_does_not_run():
    tool = SendMail(sent=[])
    model = ScriptedLLM([tool_call("send_mail", to="bob@example.com")])
    run = hooks.RunHooks([Recorder("gate", [], tool=_pause("ap-1111111111"))])
    with hooks.scope(run), pytest.raises(RunPaused) as paused:
        _crew(_role(model), tool).kickoff()
    assert paused.value.required.approval_id == "ap-1111111111"
    assert tool.sent == []
    assert len(model.calls) == 1


def test_a_model_hook_pause_comes_out_of_crew_kickoff_before_any_model_call():
    model = ScriptedLLM([])
    run = hooks.RunHooks([Recorder("gate", [], model=_pause("ap-2222222222"))])
    with hooks.scope(run), pytest.raises(RunPaused) as paused:
        _crew(_role(model), SendMail(sent=[])).kickoff()
    assert paused.value.required.approval_id == "ap-2222222222"
    assert model.calls == []


def test_a_tool_pause_comes_out_of_a_crew_on_a_text_only_model():
    tool = SendMail(sent=[])  # ReAct text tool calls: CrewAI's other tool path
    model = ScriptedLLM(
        ['Thought: send it\nAction: send_mail\nAction Input: {"to": "bob@example.com"}'],
        function_calling=False,
    )
    with hooks.scope(hooks.RunHooks([Recorder("gate", [], tool=_pause())])), pytest.raises(RunPaused):
        _crew(model, tool).kickoff()
    assert tool.sent == []


def test_a_tool_pause_in_an_async_task_comes_out_of_crew_kickoff_instead_of_hanging_it():
    # CrewAI runs an async task in a thread that catches only Exception into the future the crew
    # waits on: a pause there used to kill the thread and leave kickoff waiting for ever.
    tool = SendMail(sent=[])
    model = ScriptedLLM([tool_call("send_mail", to="bob@example.com")])
    outcome: list[BaseException | str] = []

    def kickoff() -> None:
        with hooks.scope(hooks.RunHooks([Recorder("gate", [], tool=_pause())])):
            try:
                _crew(_role(model), tool, async_task=True).kickoff()
                outcome.append("finished")
            except BaseException as exc:  # noqa: BLE001 - the test inspects what came out
                outcome.append(exc)

    thread = threading.Thread(target=kickoff, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "crew.kickoff() hung on the async task's future"
    assert len(outcome) == 1 and isinstance(outcome[0], RunPaused)
    assert tool.sent == []


def test_a_refused_tool_does_not_run_and_the_agent_reads_the_refusal():
    tool = SendMail(sent=[])
    model = ScriptedLLM([tool_call("send_mail", to="bob@example.com"), "I could not send it."])
    events: list[tuple[str, str, Any]] = []
    refusal = CrewkitError("sending mail needs an approval that was rejected")
    with hooks.scope(hooks.RunHooks([Recorder("gate", events, tool=refusal)])):
        result = _crew(_role(model), tool).kickoff()
    assert tool.sent == [] and result.raw == "I could not send it."
    seen = model.calls[1].messages[-1]
    assert seen["role"] == "tool" and "sending mail needs an approval that was rejected" in seen["content"]
    (after,) = [e[2] for e in events if e[1] == "after_tool"]
    assert after.error == "sending mail needs an approval that was rejected" and not after.replayed


def test_a_replayed_tool_answer_reaches_the_agent_without_running_the_tool():
    tool = SendMail(sent=[])
    model = ScriptedLLM([tool_call("send_mail", to="bob@example.com"), "sent"])
    events: list[tuple[str, str, Any]] = []
    run = hooks.RunHooks([Recorder("journal", events, tool=hooks.Replay("mail sent to bob@example.com"))])
    with hooks.scope(run):
        _crew(_role(model), tool).kickoff()
    assert tool.sent == []
    assert model.calls[1].messages[-1]["content"] == "mail sent to bob@example.com"
    (after,) = [e[2] for e in events if e[1] == "after_tool"]
    assert after.replayed and after.value == "mail sent to bob@example.com"


def test_after_tool_sees_the_call_its_agent_stage_arguments_result_and_latency():
    tool = SendMail(sent=[])
    model = ScriptedLLM([tool_call("send_mail", to="bob@example.com"), "sent"])
    events: list[tuple[str, str, Any]] = []
    with hooks.scope(hooks.RunHooks([Recorder("audit", events)])), ledger.stage("execute"):
        _crew(_role(model), tool).kickoff()
    assert tool.sent == ["bob@example.com"]
    (before,) = [e[2] for e in events if e[1] == "before_tool"]
    (after,) = [e[2] for e in events if e[1] == "after_tool"]
    assert (before.tool_name, before.arguments, before.agent, before.stage) == (
        "send_mail", {"to": "bob@example.com"}, "Mailer", "execute",
    )  # fmt: skip
    assert before.tool is tool  # the BaseTool itself (its class attributes label its risk)
    assert after.call is before and after.value == "mail sent to bob@example.com"
    assert after.error is None and after.seconds >= 0


def test_a_failing_tool_is_an_error_result():
    class Broken(BaseTool):
        name: str = "send_mail"
        description: str = "Send an email."

        def _run(self, to: str) -> str:
            raise OSError("smtp down")

    model = ScriptedLLM([tool_call("send_mail", to="bob@example.com"), "failed"])
    events: list[tuple[str, str, Any]] = []
    with hooks.scope(hooks.RunHooks([Recorder("audit", events)])):
        _crew(_role(model), Broken()).kickoff()
    (after,) = [e[2] for e in events if e[1] == "after_tool"]
    assert after.error and "smtp down" in after.error


def test_a_failing_tool_on_a_text_only_model_is_an_error_result():
    class Broken(BaseTool):
        name: str = "send_mail"
        description: str = "Send an email."

        def _run(self, to: str) -> str:
            raise OSError("smtp down")

    action = 'Thought: send it\nAction: send_mail\nAction Input: {"to": "bob@example.com"}'
    model = ScriptedLLM([action, "Final Answer: failed"], function_calling=False)
    events: list[tuple[str, str, Any]] = []
    with hooks.scope(hooks.RunHooks([Recorder("audit", events)])):
        _crew(model, Broken()).kickoff()
    (after,) = [e[2] for e in events if e[1] == "after_tool"]
    assert after.error and "smtp down" in after.error


def test_a_tool_that_returns_its_own_failure_is_an_error_result():
    from crewai.tools.tool_failure import ToolFailure

    class Declares(BaseTool):
        name: str = "send_mail"
        description: str = "Send an email."

        def _run(self, to: str) -> Any:
            return ToolFailure(message="mailbox full")

    model = ScriptedLLM([tool_call("send_mail", to="bob@example.com"), "failed"])
    events: list[tuple[str, str, Any]] = []
    with hooks.scope(hooks.RunHooks([Recorder("audit", events)])):
        _crew(_role(model), Declares()).kickoff()
    (after,) = [e[2] for e in events if e[1] == "after_tool"]
    assert after.error == "mailbox full"


def test_nested_scopes_dispatch_each_tool_call_once_to_the_innermost_run():
    tool = SendMail(sent=[])
    model = ScriptedLLM([tool_call("send_mail", to="bob@example.com"), "sent"])
    outer: list[tuple[str, str, Any]] = []
    inner: list[tuple[str, str, Any]] = []
    with hooks.scope(hooks.RunHooks([Recorder("outer", outer)])):
        with hooks.scope(hooks.RunHooks([Recorder("inner", inner)])):
            _crew(_role(model), tool).kickoff()
        assert get_scoped_hooks(InterceptionPoint.PRE_TOOL_CALL)  # the outer scope's adapters are back
    assert [e[1] for e in inner if e[1].endswith("_tool")] == ["before_tool", "after_tool"]
    assert outer == []


def test_crewai_hooks_scoped_around_the_run_still_fire_inside_it():
    from crewai.hooks.dispatch import register_scoped, scoped_hooks

    tool = SendMail(sent=[])
    model = ScriptedLLM([tool_call("send_mail", to="bob@example.com"), "sent"])
    seen: list[str] = []
    with scoped_hooks():
        register_scoped(InterceptionPoint.PRE_TOOL_CALL, lambda ctx: seen.append(ctx.tool_name))
        with hooks.scope(hooks.RunHooks([Recorder("audit", [])])):
            _crew(_role(model), tool).kickoff()
        assert len(get_scoped_hooks(InterceptionPoint.PRE_TOOL_CALL)) == 1  # ours left with the run
    assert seen == ["send_mail"] and tool.sent == ["bob@example.com"]
