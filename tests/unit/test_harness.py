"""The test harness itself: unused scripted replies fail a test, and `netless` skips with a reason."""

from __future__ import annotations

import pytest

from tests import fakes
from tests.conftest import netless_unavailable
from tests.fakes import ScriptedLLM, by_agent, tool_call


def test_unused_replies_lists_what_a_scripted_llm_left_over():
    fakes.unused_replies()  # start from a clean slate
    used = ScriptedLLM(["only"])
    used.call("hi")
    left = ScriptedLLM(["first", "never asked", tool_call("lookup", q="owls")], model="left")
    left.call("hi")
    problems = fakes.unused_replies()
    assert len(problems) == 1
    assert "ScriptedLLM(model='left') was called 1 time(s) and left 2 scripted replies unused" in problems[0]
    assert "'never asked'" in problems[0] and "tool_call(lookup" in problems[0]
    assert fakes.unused_replies() == []  # each check starts afresh


def test_unused_replies_skips_allow_unused_and_reads_by_agent_scripts():
    fakes.unused_replies()
    ScriptedLLM(["optional"], allow_unused=True)
    script = {"Writer": ["a", "b"]}
    llm = ScriptedLLM([by_agent(script)])
    llm.call("hi", from_agent=type("A", (), {"role": "Writer"})())
    problems = fakes.unused_replies()
    assert problems == ["by_agent script for 'Writer' left 1 unused:\n    'b'"]


SUITE = """
import pytest
from tests.fakes import ScriptedLLM

def test_leaves_a_reply():
    llm = ScriptedLLM(["used", "surplus reply"])
    assert llm.call("x") == "used"

def test_uses_every_reply():
    llm = ScriptedLLM(["used"])
    assert llm.call("x") == "used"

def test_optional_reply_allowed():
    ScriptedLLM(["maybe"], allow_unused=True)

def test_fails_on_its_own():
    ScriptedLLM(["never"])
    assert False, "its own failure"

def test_skipped():
    ScriptedLLM(["never"])
    pytest.skip("not here")
"""


def test_a_test_that_leaves_scripted_replies_unused_fails(pytester: pytest.Pytester):
    pytester.makeconftest("from tests.conftest import *  # noqa: F403\n")
    pytester.makepyfile(test_inner=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    # one teardown error (the surplus reply); the failing test is not reported twice
    assert outcomes.get("passed") == 3 and outcomes.get("failed") == 1 and outcomes.get("errors") == 1
    assert outcomes.get("skipped") == 1
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaves_a_reply*",
            "*scripted replies left unused*",
            "*ScriptedLLM(model='scripted') was called 1 time(s) and left 1 scripted reply unused:",
            "*'surplus reply'",
        ]
    )
    assert "ERROR at teardown of test_fails_on_its_own" not in result.stdout.str()
    assert "ERROR at teardown of test_skipped" not in result.stdout.str()


def test_netless_probe_gives_a_reason_where_namespaces_are_unavailable(tmp_path):
    assert "needs `no-such-unshare-here`" in netless_unavailable(("no-such-unshare-here", "-rn"))
    # a prefix that exists but cannot run the probe, as unshare does without user namespaces
    reason = netless_unavailable(("false",))
    assert reason is not None and reason.startswith("user namespaces are unavailable here (`false true`")


def test_netless_fixture_skips_with_the_reason(pytester: pytest.Pytester, monkeypatch):
    monkeypatch.setattr("tests.conftest.NETLESS", ["false"])  # unshare failing as without userns
    pytester.makeconftest("from tests.conftest import *  # noqa: F403\n")
    pytester.makepyfile(test_inner="def test_needs_it(netless):\n    raise AssertionError('ran')\n")
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*user namespaces are unavailable here*"])
