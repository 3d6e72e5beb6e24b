"""The short-term context budget: a long conversation is fitted before the model sees it (system
prompt and newest messages verbatim, older ones summarised or trimmed whole), and the run record
says how much. Scripted models, estimated tokens."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from crewai import Agent, Crew, Task
from crewai.tools import BaseTool

from crewkit.assembly import wire
from crewkit.memory import context
from crewkit.memory.config import MemoryConfig, ShortTermConfig
from crewkit.models.registry import RoleMap
from crewkit.observability import ledger
from crewkit.runtime import hooks
from crewkit.runtime.context_budget import ContextBudget, summary
from crewkit.runtime.journal import CallJournal
from crewkit.runtime.record import finish
from crewkit.runtime.store import StateStore
from crewkit.runtime.worker import Ended
from tests.fakes import ScriptedLLM, tool_call

SYSTEM = {"role": "system", "content": "You are a careful researcher. Answer from the sources."}
TASK = {"role": "user", "content": "Current Task: find when the bridge opened. Cite the source."}


def _exchange(i: int, words: int = 40) -> list[dict[str, Any]]:
    """An assistant turn calling a tool, and the tool's (long) result."""
    return [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"c{i}",
                    "type": "function",
                    "function": {"name": "search", "arguments": f'{{"q": "q{i}"}}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": f"c{i}",
            "content": f"Source {i} says the bridge opened in 19{i}0. "
            + "More archive text follows. " * words,
        },
    ]


def conversation(exchanges: int = 8) -> list[dict[str, Any]]:
    msgs = [SYSTEM, TASK]
    for i in range(exchanges):
        msgs += _exchange(i)
    msgs += [
        {"role": "assistant", "content": "Thought: the sources agree.\nFinal Answer: it opened in 1970."},
        {"role": "user", "content": "Check the last source once more and answer."},
    ]
    return msgs


def _valid_tool_pairs(msgs: list[Any]) -> bool:
    """Every tool result follows the assistant turn that asked for it."""
    asked: set[str] = set()
    for m in msgs:
        if m.get("role") == "assistant":
            asked = {c["id"] for c in m.get("tool_calls") or []}
        elif m.get("role") == "tool" and m.get("tool_call_id") not in asked:
            return False
    return True


def test_a_long_conversation_is_summarised_whole_messages_with_system_and_recent_kept():
    msgs = conversation()
    counter = context.EstimateCounter()
    before = counter.prompt(msgs)
    fitted = context.fit(msgs, 1200, counter, keep_recent=4, policy="summarise")

    out = fitted.messages
    assert before > 1200 >= fitted.tokens_after == counter.prompt(out)
    assert fitted.tokens_before == before and fitted.changed
    assert out[0] is SYSTEM and out[1] is TASK  # the system prompt and the task's own prompt
    assert out[-4:] == msgs[-4:] and all(a is b for a, b in zip(out[-4:], msgs[-4:], strict=True))
    summaries = [m for m in out if str(m.get("content") or "").startswith("[crewkit:")]
    assert len(summaries) == 1
    # every other message is one of the originals, unedited: nothing was cut in its middle
    originals = {id(m) for m in msgs}
    assert all(id(m) in originals for m in out if m is not summaries[0])
    text = summaries[0]["content"]
    assert "Source 0 says the bridge opened in 1900." in text and "search" in text
    assert "More archive text follows. More archive" not in text  # first sentences only
    assert fitted.summarised + fitted.dropped == len(msgs) + 1 - len(out)
    assert fitted.summarised > 0 and _valid_tool_pairs(out)
    assert msgs == conversation()  # the caller's list is not edited


def test_trim_drops_the_oldest_whole_messages_and_keeps_the_task_prompt():
    msgs = conversation()
    fitted = context.fit(msgs, 1200, context.EstimateCounter(), keep_recent=4, policy="trim")
    out = fitted.messages
    assert out[0] is SYSTEM and out[1] is TASK
    assert fitted.summarised == 0 and fitted.dropped == len(msgs) - len(out)
    assert all(any(m is o for o in msgs) for m in out)  # no summary, no edited message
    kept_sources = [m["content"][:8] for m in out if m.get("role") == "tool"]
    assert kept_sources and kept_sources == sorted(kept_sources)
    assert "Source 0" not in kept_sources[0] and "Source 7" in kept_sources[-1]  # the oldest went
    assert _valid_tool_pairs(out)


def test_keep_recent_never_splits_a_tool_call_from_its_result():
    msgs = [SYSTEM, TASK, *_exchange(0), *_exchange(1), *_exchange(2)]
    fitted = context.fit(msgs, 700, context.EstimateCounter(), keep_recent=1, policy="trim")
    assert fitted.messages[-2:] == msgs[-2:]  # keep_recent 1 still keeps the call with its result
    assert _valid_tool_pairs(fitted.messages)


def test_a_conversation_that_fits_is_sent_as_it_is():
    msgs = conversation(2)
    fitted = context.fit(msgs, 100_000, context.EstimateCounter())
    assert fitted.messages is msgs and not fitted.changed


def test_the_summary_is_the_same_every_time():  # the journal keys calls by what is sent
    a = context.fit(conversation(), 1200, context.EstimateCounter()).messages
    b = context.fit(conversation(), 1200, context.EstimateCounter()).messages
    assert a == b


def test_when_even_the_kept_part_does_not_fit_the_error_names_the_budget_tokens_and_fix():
    msgs = conversation()
    with pytest.raises(context.ContextBudgetExceeded) as exc:
        context.fit(
            msgs, 300, context.EstimateCounter(), keep_recent=4, describe="role 'reasoning'", fix="lower it"
        )
    text = str(exc.value)
    assert text.startswith(
        "role 'reasoning': what is always kept (the system prompt and the 4 newest messages)"
    )
    assert "over the 300-token context budget; lower it" in text and "\n" not in text
    assert exc.value.exit_code == 2


def test_a_summary_with_little_room_keeps_the_newest_lines_and_counts_the_rest_as_dropped():
    msgs = [SYSTEM, TASK]
    for i in range(40):
        msgs += [{"role": "assistant", "content": f"Step {i} is done. " + "x " * 30}]
    msgs += [{"role": "user", "content": "Go on."}]
    fitted = context.fit(msgs, 260, context.EstimateCounter(), keep_recent=1)
    summary_text = next(m["content"] for m in fitted.messages if str(m["content"]).startswith("[crewkit:"))
    assert "Step 39 is done." in summary_text and "Step 0 is done." not in summary_text
    assert "older messages left out" in summary_text
    assert fitted.dropped > 0 and fitted.summarised > 0 and fitted.tokens_after <= 260


def test_chinese_text_is_estimated_at_about_a_token_a_character():
    counter = context.EstimateCounter()
    assert counter.text("桥梁于一九七零年开通") == 10
    assert counter.text("The bridge opened in 1970.") == 7


def _task_with_context(outputs: int, words: int = 60) -> dict[str, str]:
    """A task prompt the way CrewAI writes it when earlier tasks' outputs are its context."""
    parts = [
        f"Report {i}: the bridge was inspected in 19{i}5. " + "Inspection detail. " * words
        for i in range(outputs)
    ]
    context_text = "\n\n----------\n\n".join(parts)
    return {
        "role": "user",
        "content": "Current Task: write the final summary.\n\nThis is the context you're working with:\n"
        + context_text
        + "\n\nBegin! This is VERY important to you.",
    }


@pytest.mark.parametrize("policy", ["summarise", "trim"])
def test_a_task_prompt_over_budget_has_its_older_context_outputs_shortened_the_newest_kept(policy):
    task = _task_with_context(4)
    msgs = [SYSTEM, task]
    counter = context.EstimateCounter()
    fitted = context.fit(msgs, 600, counter, keep_recent=4, policy=policy)
    assert counter.prompt(msgs) > 600 >= fitted.tokens_after == counter.prompt(fitted.messages)
    assert fitted.messages[0] is SYSTEM and fitted.context_parts >= 1 and fitted.changed
    text = fitted.messages[1]["content"]
    newest = task["content"][task["content"].index("Report 3:") :]
    assert text.startswith("Current Task: write the final summary.") and text.endswith(newest)
    assert "Report 0: the bridge was inspected in 1905. Inspection detail. Inspection" not in text
    if policy == "summarise":
        assert "summarised to fit the context budget] Report 0: the bridge was inspected in 1905." in text
    else:
        assert "was left out to fit the context budget]" in text and "Report 0" not in text
    assert fitted.as_dict()["context_parts"] == fitted.context_parts


def test_a_single_context_output_is_never_cut_the_error_says_so_instead():
    msgs = [SYSTEM, _task_with_context(1, words=400)]
    with pytest.raises(context.ContextBudgetExceeded, match="what is always kept"):
        context.fit(msgs, 300, context.EstimateCounter())


# -- on the hook path ------------------------------------------------------------------------------


class Search(BaseTool):
    name: str = "search"
    description: str = "Search the archive."

    def _run(self, q: str) -> str:
        return f"The archive entry for {q} says the bridge opened in 1970. " + "Old newspaper text. " * 120


def _budgeted(settings: Any, **short_term: Any) -> Any:
    return dataclasses.replace(settings, memory=MemoryConfig(short_term=ShortTermConfig(**short_term)))


def _store(tmp_path: Any) -> StateStore:
    store = StateStore.open(tmp_path / "home")
    store.create_run("r1", "test", {}, "fp", None)
    return store


def _research(settings: Any, store: StateStore, model: ScriptedLLM) -> Any:
    role_map = RoleMap(settings, overrides={"reasoning": model})
    agent = Agent(
        role="Researcher", goal="Find facts.", backstory="Reads archives.", llm=role_map.llm("reasoning"),
        tools=[Search()], max_iter=8,
    )  # fmt: skip
    task = Task(description="When did the bridge open?", expected_output="A year.", agent=agent)
    chain = [CallJournal(store, "r1", lambda: 0), ContextBudget(settings, store, "r1")]
    with wire.bound(role_map), hooks.scope(hooks.RunHooks(chain)):
        return Crew(agents=[agent], tasks=[task]).kickoff()


def test_the_hook_fits_a_growing_agent_conversation_and_the_record_says_how_much(settings, tmp_path):
    settings = _budgeted(settings, budget_tokens=2000, keep_recent=2)
    model = ScriptedLLM([*(tool_call("search", q=f"q{i}") for i in range(5)), "It opened in 1970."])
    store = _store(tmp_path)
    result = _research(settings, store, model)
    assert result.raw == "It opened in 1970."

    budget = 2000 - 256  # local-small's max_tokens: the reply after a tool result is free text
    sent = [c.messages for c in model.calls]
    counter = context.EstimateCounter()
    assert all(counter.prompt(m) <= budget for m in sent[1:])
    last = sent[-1]
    assert last[0]["role"] == "system" and "Researcher" in last[0]["content"]
    assert any("[crewkit:" in str(m.get("content")) for m in last)
    assert last[-1]["role"] == "tool" and "q4" in last[-1]["content"]  # the newest result, whole
    assert last[-1]["content"] == Search()._run("q4")
    assert _valid_tool_pairs(last)

    found = summary(store, "r1")
    assert found is not None and found["fitted_calls"] >= 2
    assert found["messages_summarised"] > 0 and found["tokens_saved"] > 0
    assert found["by_agent"]["Researcher"]["calls"] == found["fitted_calls"]
    call = found["calls"][-1]
    assert call["agent"] == "Researcher" and call["model"] == "local-small" and call["counted"] == "estimate"
    assert call["tokens_after"] <= call["budget"] == budget < call["tokens_before"]

    outcome = finish(
        settings, "r1", {"status": "done", "result": "1970"}, ledger.Ledger(), Ended("1970"), store=store
    )
    written = json.loads(outcome.record_path.read_text())
    assert written["context_budget"]["fitted_calls"] == found["fitted_calls"]
    assert written["context_budget"]["by_agent"]["Researcher"]["summarised"] > 0


def test_trim_policy_on_the_hook_path_drops_whole_messages(settings, tmp_path):
    settings = _budgeted(settings, budget_tokens=2000, keep_recent=2, policy="trim")
    model = ScriptedLLM([*(tool_call("search", q=f"q{i}") for i in range(4)), "1970."])
    store = _store(tmp_path)
    _research(settings, store, model)
    last = model.calls[-1].messages
    assert not any("[crewkit:" in str(m.get("content")) for m in last)
    assert _valid_tool_pairs(last) and last[-1]["content"] == Search()._run("q3")
    found = summary(store, "r1")
    assert found and found["messages_dropped"] > 0 and found["messages_summarised"] == 0


def test_a_call_whose_kept_part_is_over_budget_is_refused_and_audited(settings, tmp_path):
    settings = _budgeted(settings, budget_tokens=700, keep_recent=4)  # 700 - 640 constrained reply room
    model = ScriptedLLM([])
    store = _store(tmp_path)
    with pytest.raises(
        context.ContextBudgetExceeded,
        match=r"^role 'reasoning' \(model 'local-small', agent 'Researcher'\): what is always kept \(the "
        r"system prompt and the 1 newest message\) is about \d+ tokens, over its 60-token context budget "
        r"\(short_term.budget_tokens 700 - 640 reserved for the reply\); lower short_term.keep_recent or "
        r"raise short_term.budget_tokens in config/memory.yaml, or map role 'reasoning' to a model with a "
        r"larger context in config/models.yaml$",
    ):
        _research(settings, store, model)
    assert model.calls == []  # never sent
    actions = [a for (a,) in store.read("SELECT action FROM audit WHERE run_id = 'r1'")]
    assert "context.over_budget" in actions and summary(store, "r1") is None


def test_reserve_output_off_gives_the_prompt_the_whole_budget(settings):
    cfg = ContextBudget(_budgeted(settings, budget_tokens=4000, reserve_output=False))
    call = hooks.ModelCall("reasoning", "local-small", "a", "s", [TASK])
    assert cfg.budget(call, settings.models.models["local-small"]) == 4000
    hosted = hooks.ModelCall("reasoning", "gpt-4o", "a", "s", [TASK])
    default = ContextBudget(settings)
    assert default.budget(hosted, settings.models.models["gpt-4o"]) == 128000 - 4096
    capped = ContextBudget(_budgeted(settings, budget_tokens=10**6))  # never more than the context
    assert capped.budget(call, settings.models.models["local-small"]) == 8192 - 256


# -- through a run -------------------------------------------------------------------------------


def _short_term(project: Any, text: str) -> Any:
    from crewkit.settings import load_settings

    path = project / "config" / "memory.yaml"
    path.write_text(f"short_term:\n{text}")
    return load_settings(project)


def test_a_run_whose_kept_prompt_is_over_budget_fails_with_one_line_and_no_model_call(project):
    from crewkit.runtime.runner import run_flow
    from tests.unit.test_default_flow import scripted_roles

    settings = _short_term(project, "  budget_tokens: 700\n")  # 700 - 640 for a plan: no room
    fakes = scripted_roles([], [], [])
    outcome = run_flow(settings, RoleMap(settings, overrides=fakes), "default", {"task": "Explain recursion"})
    assert outcome.status == "failed" and outcome.exit_code == 2
    error = outcome.record["error"]
    assert error.startswith("role 'reasoning' (model 'local-small'") and "60-token context budget" in error
    assert "short_term.budget_tokens 700 - 640 reserved for the reply" in error and "\n" not in error
    assert all(f.calls == [] for f in fakes.values())


def test_a_run_record_says_which_calls_were_fitted(project):
    from crewkit.runtime.runner import run_flow
    from tests.unit.test_default_flow import PLAN, UNTRUSTED, delegate, scripted_roles

    settings = _short_term(project, "  budget_tokens: 2000\n  keep_recent: 2\n")
    code = (
        "```python\ndef is_palindrome(s):\n    return s == s[::-1]\n```\n" + "# a long comment line\n" * 262
    )
    plan = {"subtasks": PLAN["subtasks"][:1]}
    fakes = scripted_roles(
        reasoning=[plan, *UNTRUSTED],
        code=[code],
        manager=[delegate("Code Specialist", "Write is_palindrome(s) in Python."), code],
    )
    outcome = run_flow(
        settings, RoleMap(settings, overrides=fakes), "default", {"task": "Write is_palindrome"}
    )
    assert outcome.status == "done", outcome.record.get("error")
    fitted = outcome.record["context_budget"]
    assert fitted["fitted_calls"] >= 1 and fitted["messages_summarised"] >= 1 and fitted["tokens_saved"] > 0
    call = fitted["calls"][0]
    assert call["agent"] and call["stage"] and call["tokens_after"] <= call["budget"] < call["tokens_before"]
    written = json.loads(outcome.record_path.read_text())
    assert written["context_budget"] == fitted
    manager_last = fakes["manager"].calls[-1].messages
    assert manager_last[0]["role"] == "system" and manager_last[-1]["content"].startswith("```python")
    assert manager_last[1]["content"].startswith("[crewkit: 1 earlier message")  # the subtask's prompt


def test_a_sequential_crews_growing_task_context_is_fitted_on_the_hook_path(settings, tmp_path):
    settings = _budgeted(settings, budget_tokens=1400)
    long = "The survey found the bridge sound. " + "Measured values follow. " * 150
    model = ScriptedLLM([f"Part {i}. {long}" for i in range(3)] + ["All three parts agree: sound."])
    store = _store(tmp_path)
    role_map = RoleMap(settings, overrides={"reasoning": model})
    agent = Agent(role="Writer", goal="Write.", backstory="Writes.", llm=role_map.llm("reasoning"))
    tasks = [Task(description=f"Write part {i}.", expected_output="Text.", agent=agent) for i in range(3)]
    tasks.append(Task(description="Summarise the parts.", expected_output="One line.", agent=agent))
    chain = [CallJournal(store, "r1", lambda: 0), ContextBudget(settings, store, "r1")]
    with wire.bound(role_map), hooks.scope(hooks.RunHooks(chain)):
        result = Crew(agents=[agent], tasks=tasks).kickoff()
    assert result.raw == "All three parts agree: sound."
    last = model.calls[-1].messages[-1]["content"]
    assert "summarised to fit the context budget] Part 0. The survey found the bridge sound." in last
    assert f"Part 2. {long}" in last  # the newest output, whole
    assert context.EstimateCounter().prompt(model.calls[-1].messages) <= 1400 - 256
    found = summary(store, "r1")
    assert found and found["context_parts"] >= 1 and found["by_agent"]["Writer"]["context_parts"] >= 1
