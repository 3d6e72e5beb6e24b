"""The response cache on the hook path: deterministic calls asked again are answered from state.db
(no model call, 0 tokens, audited `cache.hit`), never across tenants, and `cache.enabled: false`
turns it off; the semantic cache (opt-in) answers paraphrases within one model, tenant and
conversation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from crewkit.models.cache import ResponseCache
from crewkit.models.metered import Candidate, RoleLLM
from crewkit.models.registry import RoleMap
from crewkit.operations import CacheConfig, SemanticCache
from crewkit.runtime import hooks, response_cache
from crewkit.runtime.journal import CallJournal
from crewkit.runtime.response_cache import ResponseCacheSubscriber, deterministic
from crewkit.runtime.store import StateStore
from crewkit.settings import load_settings
from tests.fakes import ScriptedLLM, tool_call
from tests.sample_project import add_flow


class Verdict(BaseModel):
    ok: bool
    reasons: list[str]


def _role(llm: Any, name: str = "local-small") -> RoleLLM:
    return RoleLLM(
        model="crewkit/reasoning",
        role="reasoning",
        candidates=[
            Candidate(
                name=name,
                capabilities=["text", "tools"],
                context=8192,
                input_per_mtok=2.0,
                output_per_mtok=10.0,
                build=lambda: llm,
            )
        ],
    )


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    s = StateStore.open(tmp_path / "home")
    s.create_run("r1", "default", {}, "fp", None)
    return s


GREEDY = {"local-small": {"temperature": 0, "max_tokens": 256}}


def _sub(
    store: StateStore,
    tenant: str | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    embed: Any = None,
    **config: Any,
) -> ResponseCacheSubscriber:
    return ResponseCacheSubscriber(
        ResponseCache(store, CacheConfig(**config)), params or GREEDY, tenant, embed
    )


class Results(hooks.Subscriber):
    def __init__(self) -> None:
        self.results: list[hooks.ModelResult] = []

    def after_model(self, result: hooks.ModelResult) -> None:
        self.results.append(result)


def _ask(sub: Any, llm: Any, messages: Any, **kw: Any) -> tuple[Any, hooks.ModelResult]:
    seen = Results()
    with hooks.scope(hooks.RunHooks([sub, seen], with_ledger=False)):
        value = _role(llm).call(messages, **kw)
    return value, seen.results[-1]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"temperature": 0}, True),
        ({"temperature": 0.0, "max_tokens": 9}, True),
        ({"temperature": 0.7, "seed": 42}, True),
        ({"seed": 0}, True),
        ({"temperature": 0.2}, False),
        ({}, False),  # the provider's default temperature samples
        ({"temperature": False}, False),
        ({"seed": None, "temperature": 1}, False),
    ],
)
def test_only_deterministic_settings_are_cached(params, expected):
    assert deterministic(params) is expected


def test_a_deterministic_call_asked_again_is_answered_from_the_cache(store):
    llm = ScriptedLLM(["the answer"])
    assert _ask(_sub(store), llm, "What is 2+2?")[0] == "the answer"
    value, result = _ask(_sub(store), llm, "What is 2+2?")  # a new segment: the same state.db
    assert value == "the answer"
    assert len(llm.calls) == 1
    assert result.replayed and result.replay_source == "cache"
    assert result.replay_detail is not None and result.replay_detail["match"] == "exact"
    assert result.replay_detail["key"].startswith("sha256:")
    assert store.read("SELECT hits FROM response_cache") == [(1,)]


def test_a_sampled_model_is_not_cached(store):
    llm = ScriptedLLM(["one", "two"])
    sampled = {"local-small": {"temperature": 0.2}}
    assert _ask(_sub(store, params=sampled), llm, "Q")[0] == "one"
    assert _ask(_sub(store, params=sampled), llm, "Q")[0] == "two"
    assert store.read("SELECT COUNT(*) FROM response_cache") == [(0,)]


def test_a_model_not_in_the_config_is_not_cached(store):
    llm = ScriptedLLM(["one", "two"])
    sub = _sub(store)
    with hooks.scope(hooks.RunHooks([sub], with_ledger=False)):
        assert _role(llm, name="unknown").call("Q") == "one"
        assert _role(llm, name="unknown").call("Q") == "two"


def test_one_tenants_answer_is_never_served_to_another(store):
    llm = ScriptedLLM(["acme's answer", "globex's answer"])
    assert _ask(_sub(store, "acme"), llm, "Q")[0] == "acme's answer"
    assert _ask(_sub(store, "globex"), llm, "Q")[0] == "globex's answer"
    assert _ask(_sub(store, "acme"), llm, "Q")[0] == "acme's answer"
    assert _ask(_sub(store, "globex"), llm, "Q")[0] == "globex's answer"
    assert _ask(_sub(store), ScriptedLLM(["no tenant's answer"]), "Q")[0] == "no tenant's answer"
    assert len(llm.calls) == 2


def test_different_tools_stop_or_schema_are_different_calls(store):
    llm = ScriptedLLM(["plain", "with stop", {"ok": True, "reasons": []}])
    sub = _sub(store)
    assert _ask(sub, llm, "Q")[0] == "plain"
    stopped = _role(llm)
    stopped.stop = ["\nObservation:"]
    with hooks.scope(hooks.RunHooks([sub], with_ledger=False)):
        assert stopped.call("Q") == "with stop"
    value, _ = _ask(sub, llm, "Q", response_model=Verdict)
    assert value == Verdict(ok=True, reasons=[])
    again, result = _ask(_sub(store), llm, "Q", response_model=Verdict)
    assert again == Verdict(ok=True, reasons=[]) and result.replay_source == "cache"
    assert len(llm.calls) == 3


def test_a_tool_call_answer_is_replayed_as_tool_calls(store):
    calls = tool_call("search", query="crewai")
    llm = ScriptedLLM([calls])
    tools = [{"type": "function", "function": {"name": "search", "parameters": {}}}]
    _ask(_sub(store), llm, "Q", tools=tools)
    value, result = _ask(_sub(store), llm, "Q", tools=tools)
    assert result.replay_source == "cache"
    assert value[0]["function"] == calls[0]["function"]


def test_failed_calls_are_not_cached(store):
    llm = ScriptedLLM([ValueError("boom"), "the answer"])
    with pytest.raises(ValueError):
        _ask(_sub(store), llm, "Q")
    assert store.read("SELECT COUNT(*) FROM response_cache") == [(0,)]
    assert _ask(_sub(store), llm, "Q")[0] == "the answer"


def test_the_journal_replays_first_and_keeps_a_cache_served_answer(store):
    """A resumed run replays its own answers: the cache answered it, the journal kept it."""
    _ask(_sub(store), ScriptedLLM(["cached answer"]), "Q")  # another run filled the cache

    def segment() -> hooks.RunHooks:
        return hooks.RunHooks([CallJournal(store, "r1", lambda: 0), _sub(store), Results()])

    llm = ScriptedLLM([])
    with hooks.scope(segment()) as path:
        assert _role(llm).call("Q") == "cached answer"
    assert path.subscribers[-1].results[-1].replay_source == "cache"
    ResponseCache(store, CacheConfig()).clear()  # the entry is gone when the run resumes
    with hooks.scope(segment()) as path:
        assert _role(llm).call("Q") == "cached answer"
    assert path.subscribers[-1].results[-1].replay_source == "journal"
    assert llm.calls == []
    rows = store.calls("r1")
    assert [r["cached"] for r in rows] == [True, False]
    assert all(r["input_tokens"] == 0 and r["cost_usd"] == 0 for r in rows)


def test_a_cache_hit_is_audited_without_text(store):
    _ask(_sub(store), ScriptedLLM(["secret answer"]), "secret question")
    path = hooks.RunHooks([CallJournal(store, "r1", lambda: 0, audit_text="redacted"), _sub(store)])
    with hooks.scope(path):
        _role(ScriptedLLM([])).call("secret question")
    (action, detail), *_ = store.read("SELECT action, detail FROM audit WHERE action = 'cache.hit'")
    detail = json.loads(detail)
    assert detail["key"].startswith("sha256:") and detail["match"] == "exact"
    assert detail["input_tokens"] == 0 and detail["cost_usd"] == 0
    assert "secret" not in json.dumps(detail)


class BrokenStore:
    def read(self, *_: Any) -> Any:
        raise OSError("disk gone")

    def write(self) -> Any:
        raise OSError("disk gone")


def test_a_broken_cache_never_fails_the_call():
    sub = ResponseCacheSubscriber(ResponseCache(BrokenStore(), CacheConfig()), GREEDY)
    assert _ask(sub, ScriptedLLM(["answer"]), "Q")[0] == "answer"


# -- semantic ----------------------------------------------------------------------------------------

VECTORS = {
    "How do I reset my password?": [1.0, 0.0, 0.0],
    "how can I reset my password": [0.99, 0.1, 0.0],
    "How do I delete my account?": [0.6, 0.8, 0.0],
}


def fake_embed(texts: list[str]) -> list[list[float]]:
    return [VECTORS[t] for t in texts]


def _semantic(
    store: StateStore, tenant: str | None = "acme", embed: Any = fake_embed
) -> ResponseCacheSubscriber:
    return _sub(store, tenant, embed=embed, semantic=SemanticCache(enabled=True, threshold=0.95))


def _chat(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You are support."}, {"role": "user", "content": question}]


def test_a_paraphrase_gets_the_answer_in_the_same_model_tenant_and_conversation(store):
    llm = ScriptedLLM(["Use the reset link.", "Ask support to delete it.", "globex: use the link"])
    _ask(_semantic(store), llm, _chat("How do I reset my password?"))
    value, result = _ask(_semantic(store), llm, _chat("how can I reset my password"))
    assert value == "Use the reset link."
    assert result.replay_detail is not None and result.replay_detail["match"] == "semantic"
    assert result.replay_detail["similarity"] >= 0.95
    # not close enough: the model answers
    assert _ask(_semantic(store), llm, _chat("How do I delete my account?"))[0] == "Ask support to delete it."
    # another tenant never gets acme's answer
    assert (
        _ask(_semantic(store, "globex"), llm, _chat("how can I reset my password"))[0]
        == "globex: use the link"
    )
    assert len(llm.calls) == 3


def test_a_paraphrase_in_another_conversation_is_not_matched(store):
    llm = ScriptedLLM(["first", "second"])
    _ask(_semantic(store), llm, _chat("How do I reset my password?"))
    other = [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "how can I reset my password"},
    ]
    assert _ask(_semantic(store), llm, other)[0] == "second"


def test_semantic_off_matches_exactly_only(store):
    llm = ScriptedLLM(["first", "second"])
    _ask(_sub(store, "acme", embed=fake_embed), llm, _chat("How do I reset my password?"))
    assert (
        _ask(_sub(store, "acme", embed=fake_embed), llm, _chat("how can I reset my password"))[0] == "second"
    )


def test_an_embedder_that_fails_leaves_exact_lookups(store):
    def broken(texts: list[str]) -> list[list[float]]:
        raise RuntimeError("no embedder")

    llm = ScriptedLLM(["first"])
    _ask(_semantic(store, embed=broken), llm, _chat("How do I reset my password?"))
    assert _ask(_semantic(store, embed=broken), llm, _chat("How do I reset my password?"))[0] == "first"
    assert len(llm.calls) == 1


# -- a whole run, through config/operations.yaml ----------------------------------------------------


def _greedy_project(project: Path, *, enabled: bool = True) -> None:
    models = project / "config" / "models.yaml"
    text = models.read_text()
    assert "params: {temperature: 0.2, max_tokens: 256}" in text
    models.write_text(
        text.replace(
            "params: {temperature: 0.2, max_tokens: 256}", "params: {temperature: 0, max_tokens: 256}"
        )
    )
    if not enabled:
        ops = project / "config" / "operations.yaml"
        ops.write_text(ops.read_text().replace("cache:\n  enabled: true", "cache:\n  enabled: false"))


def _run_twice(project: Path, replies: list[str], tenant: str | None = None) -> tuple[ScriptedLLM, list[Any]]:
    from crewkit.runtime.runner import run_flow

    add_flow(project, "echo")
    settings = load_settings(project)
    fake = ScriptedLLM(replies)
    role_map = RoleMap(settings, overrides={"reasoning": fake})
    inputs = {"task": "say hello"} if tenant is None else {"task": "say hello", "tenant": tenant}
    outcomes = [run_flow(settings, role_map, "echo", dict(inputs)) for _ in range(2)]
    return fake, outcomes


def test_a_second_run_of_the_same_task_is_answered_from_the_cache(project):
    _greedy_project(project)
    fake, (first, second) = _run_twice(project, ["hello!"])
    assert len(fake.calls) == 1
    store = StateStore.open(load_settings(project).home)
    rows = store.calls(second.run_id)
    assert [(r["cached"], r["input_tokens"], r["cost_usd"]) for r in rows] == [(True, 0, 0.0)]
    assert [r["cached"] for r in store.calls(first.run_id)] == [False]
    record = json.loads(Path(second.record_path).read_text())
    assert record["result"] == "hello!"
    hits = store.read("SELECT run_id FROM audit WHERE action = 'cache.hit'")
    assert hits == [(second.run_id,)]


def test_cache_enabled_false_in_operations_yaml_turns_it_off(project):
    _greedy_project(project, enabled=False)
    settings = load_settings(project)
    assert not settings.operations.cache.enabled
    assert response_cache.from_settings(settings, None, None) is None
    fake, _ = _run_twice(project, ["hello!", "hello again!"])
    assert len(fake.calls) == 2
    store = StateStore.open(settings.home)
    assert store.read("SELECT COUNT(*) FROM response_cache") == [(0,)]


def test_the_shipped_local_model_samples_so_it_is_not_cached(project):
    settings = load_settings(project)
    assert response_cache.from_settings(settings, None, None) is None  # temperature 0.2, no seed
    fake, _ = _run_twice(project, ["hello!", "hello again!"])
    assert len(fake.calls) == 2


def test_runs_of_two_tenants_do_not_share_answers(project):
    _greedy_project(project)
    from crewkit.runtime.runner import run_flow
    from tests.sample_project import FLOWS

    source = FLOWS["echo"].replace("    task: str\n", "    task: str\n    tenant: str | None = None\n", 1)
    (project / "flows" / "tenant_echo.py").write_text(source, encoding="utf-8")
    settings = load_settings(project)
    fake = ScriptedLLM(["for acme", "for globex"])
    role_map = RoleMap(settings, overrides={"reasoning": fake})
    results = []
    for tenant in ("acme", "globex", "acme", "globex"):
        outcome = run_flow(settings, role_map, "tenant_echo", {"task": "say hello", "tenant": tenant})
        results.append(json.loads(Path(outcome.record_path).read_text())["result"])
    assert results == ["for acme", "for globex", "for acme", "for globex"]
    assert len(fake.calls) == 2


# -- crewkit cache stats | clear --------------------------------------------------------------------


def test_cache_stats_and_clear_on_the_command_line(project, capsys, monkeypatch):
    from tests.sample_project import run_cli

    _greedy_project(project)
    _run_twice(project, ["hello!"])
    code, out, err = run_cli(capsys, "cache", "stats", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["enabled"] and report["cached_models"] == ["local-small"]
    assert report["totals"] == {"entries": 1, "bytes": report["by_model"][0]["bytes"], "hits": 1}
    assert report["by_model"][0]["model"] == "local-small"
    code, out, err = run_cli(capsys, "cache", "stats")
    assert code == 0 and "local-small" in out and "cached models: local-small" in err

    monkeypatch.setenv("CREWKIT_USER", "sre-on-call")
    assert run_cli(capsys, "cache", "clear", "--tenant", "globex")[1] == "removed 0 cached answer(s)\n"
    assert run_cli(capsys, "cache", "clear")[1] == "removed 1 cached answer(s)\n"
    store = StateStore.open(load_settings(project).home)
    cleared = store.read("SELECT actor, detail FROM audit WHERE action = 'cache.cleared' ORDER BY seq")
    assert [(actor, json.loads(d)["removed"]) for actor, d in cleared] == [
        ("sre-on-call", 0),
        ("sre-on-call", 1),
    ]
    assert json.loads(cleared[0][1])["tenant"] == "globex"
    assert json.loads(run_cli(capsys, "cache", "stats", "--format", "json")[1])["totals"]["entries"] == 0


def test_cache_stats_says_when_no_model_is_cached(project, capsys):
    from tests.sample_project import run_cli

    code, _, err = run_cli(capsys, "cache", "stats")
    assert code == 0
    assert "the response cache is empty" in err
    assert "cached models: none (no model entry sets temperature: 0 or a seed)" in err
