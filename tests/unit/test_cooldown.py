"""Cooldowns: a model with repeated transient failures is skipped for a while (LiteLLM's router)."""

from __future__ import annotations

import threading

import pytest

from crewkit.errors import ModelCallFailed
from crewkit.models import cooldown
from crewkit.models.cooldown import Cooldowns
from crewkit.models.metered import Candidate, RoleLLM
from crewkit.models.routing import Cooldown
from crewkit.observability import ledger
from crewkit.runtime import call_audit, hooks
from tests.fakes import ScriptedLLM

POLICY = Cooldown(allowed_fails=2, window_s=10, cooldown_s=30)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry(clock: Clock) -> Cooldowns:
    return Cooldowns(clock)


# -- the registry -----------------------------------------------------------------------------------


def test_more_than_allowed_fails_in_the_window_cools_a_model_down(registry, clock):
    assert registry.failure("m", POLICY) is False
    assert registry.failure("m", POLICY) is False  # 2 failures: allowed
    assert registry.cooling("m") is None
    assert registry.failure("m", POLICY) is True  # the third: more than allowed_fails
    assert registry.cooling("m") == pytest.approx(30)
    clock.now += 29
    assert registry.cooling("m") == pytest.approx(1)
    assert registry.state("m").cooldowns == 1


def test_a_cooldown_expires_and_the_model_starts_afresh(registry, clock):
    for _ in range(3):
        registry.failure("m", POLICY)
    clock.now += 30
    assert registry.cooling("m") is None
    assert registry.state("m").failures == 0
    assert registry.failure("m", POLICY) is False  # one new failure does not cool it again


def test_failures_outside_the_window_do_not_count(registry, clock):
    registry.failure("m", POLICY)
    registry.failure("m", POLICY)
    clock.now += 10.5
    assert registry.failure("m", POLICY) is False
    assert registry.cooling("m") is None
    assert registry.state("m").failures == 1


def test_models_cool_down_independently(registry):
    for _ in range(3):
        registry.failure("a", POLICY)
    assert registry.cooling("a") is not None and registry.cooling("b") is None


def test_zero_allowed_fails_cools_on_the_first_failure(registry):
    assert registry.failure("m", Cooldown(allowed_fails=0, window_s=60, cooldown_s=5)) is True


def test_the_registry_is_thread_safe(registry):
    policy = Cooldown(allowed_fails=1000, window_s=60, cooldown_s=30)

    def fail() -> None:
        for _ in range(200):
            registry.failure("m", policy)

    threads = [threading.Thread(target=fail) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert registry.state("m").failures == 1000 or registry.cooling("m") is not None
    assert registry.state("m").cooldowns == 1  # 1600 failures: one cooldown, not several


# -- RoleLLM ----------------------------------------------------------------------------------------


def role(registry: Cooldowns, *llms: ScriptedLLM, policy: Cooldown = POLICY) -> RoleLLM:
    return RoleLLM(
        model="crewkit/reasoning",
        role="reasoning",
        candidates=[
            Candidate(name=f"m{i}", capabilities=["text"], context=8192, build=lambda llm=llm: llm)
            for i, llm in enumerate(llms)
        ],
        cooldown=policy,
        cooldowns=registry,
    )


class Audit(hooks.Subscriber):
    def __init__(self) -> None:
        self.actions: list[tuple[str, str]] = []

    def after_model(self, result: hooks.ModelResult) -> None:
        entry = call_audit.model_call("r-1", result)
        self.actions.append((entry.action, result.call.model))


def test_role_skips_a_cooling_model_and_says_so_in_ledger_and_audit(registry):
    primary = ScriptedLLM([TimeoutError("slow")] * 3)
    fallback = ScriptedLLM(["one", "two", "three", "four"])
    llm = role(registry, primary, fallback)
    audit = Audit()
    with ledger.open_ledger() as book, hooks.scope(hooks.RunHooks([audit])):
        assert [llm.call("hi") for _ in range(4)] == ["one", "two", "three", "four"]
    assert len(primary.calls) == 3  # the fourth call skipped it: it is cooling down
    assert len(fallback.calls) == 4
    skipped = [s for s in book.steps() if s.get("not_run") == "cooling down"]
    assert [s["model"] for s in skipped] == ["m0"]
    assert skipped[0]["error"].startswith("cooling down (30 s left) after more than 2 failure(s) in 10 s")
    assert ("model.skipped", "m0") in audit.actions
    assert audit.actions.count(("model.failed", "m0")) == 3
    usage = book.usage()["reasoning"]
    assert usage["calls"] == 7  # 3 failures + 4 answers; the skip is not a call


def test_a_cooled_model_is_tried_again_after_the_cooldown(registry, clock):
    primary = ScriptedLLM([TimeoutError("slow")] * 3 + ["back"])
    fallback = ScriptedLLM(["a", "b", "c", "d"])
    llm = role(registry, primary, fallback)
    for _ in range(4):
        llm.call("hi")
    clock.now += 31
    assert llm.call("hi") == "back"
    assert len(primary.calls) == 4


def test_when_every_model_is_cooling_they_are_tried_anyway_in_order(registry, caplog):
    for name in ("m0", "m1"):
        for _ in range(3):
            registry.failure(name, POLICY)
    first, second = ScriptedLLM([TimeoutError("still slow")]), ScriptedLLM(["answered"])
    with caplog.at_level("WARNING", logger="crewkit.models.metered"):
        assert role(registry, first, second).call("hi") == "answered"
    assert len(first.calls) == 1 and len(second.calls) == 1
    assert "every model of role 'reasoning' is cooling down (m0, m1); trying them anyway" in caplog.text


def test_all_cooling_and_all_failing_says_so_in_the_error(registry):
    for _ in range(3):
        registry.failure("m0", POLICY)
    with pytest.raises(ModelCallFailed) as err:
        role(registry, ScriptedLLM([TimeoutError("slow")])).call("hi")
    assert "every model of role 'reasoning' is cooling down" in str(err.value)
    assert "m0: TimeoutError" in str(err.value) or "m0:" in str(err.value)


def test_a_request_error_does_not_count_towards_a_cooldown(registry):
    llm = role(registry, ScriptedLLM([ValueError("a bug")] * 4, allow_unused=True), ScriptedLLM([]))
    for _ in range(4):
        with pytest.raises(ValueError):
            llm.call("hi")
    assert registry.cooling("m0") is None


def test_the_process_registry_is_the_default(clock):
    primary = ScriptedLLM([TimeoutError("slow")] * 4)
    fallback = ScriptedLLM(["a", "b", "c", "d"])
    llm = role(None, primary, fallback, policy=Cooldown(allowed_fails=3, window_s=60, cooldown_s=60))  # type: ignore[arg-type]
    for _ in range(4):
        llm.call("hi")
    assert cooldown.REGISTRY.cooling("m0") is not None  # cleared again by tests/conftest.py
