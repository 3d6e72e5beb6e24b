"""Scoring: answer checks, tool-call parsing and structural comparison, drift prompts."""

from __future__ import annotations

import json

import pytest

from crewkit.evaluation import scoring
from crewkit.evaluation.suite import Answer, ExpectedCall, Tool
from tests.fakes import tool_call

WEATHER = Tool(
    name="get_weather",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"},
            "lat": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["city"],
    },
)
SEARCH = Tool(
    name="search", parameters={"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
)
TOOLS = [WEATHER, SEARCH]


def check(answer: dict, reply: str, choices: list[str] | None = None) -> scoring.Score:
    return scoring.check_answer(Answer(**answer), reply, choices)


@pytest.mark.parametrize(
    ("answer", "reply", "passed"),
    [
        ({"exact": "Paris"}, "  paris. ", True),
        ({"exact": "Paris"}, "The capital is Paris.", False),
        ({"exact": ["Beijing", "北京"]}, "北京。", True),
        ({"contains": "Paris"}, "The capital of France is Paris!", True),
        ({"contains": "4"}, "It is 14.", False),  # not inside a longer number
        ({"contains": "北京"}, "中国的首都是北京。", True),
        ({"number": 42}, "17 + 25 = 42", True),
        ({"number": 42}, "42 is wrong, it is 43", False),  # the last number counts
        ({"number": 1234567}, "About 1,234,567 people.", True),
        ({"number": 3.14, "tolerance": 0.01}, "pi is 3.141", True),
        ({"number": 3.14, "tolerance": 0.0001}, "pi is 3.141", False),
        ({"number": -5}, "minus: -5", True),
        ({"number": 15}, "１５", True),  # full-width digits
        ({"number": 7}, "seven", False),
        ({"regex": r"(?i)\bparis\b"}, "It's PARIS", True),
        ({"regex": r"^\d+$"}, "42 apples", False),
    ],
)
def test_answer_checks(answer, reply, passed):
    result = check(answer, reply)
    assert result.passed is passed
    assert result.score == (1.0 if passed else 0.0)
    assert result.detail["got"] == reply.strip()


@pytest.mark.parametrize(
    ("reply", "letter"),
    [
        ("B", "B"),
        ("B) Jupiter", "B"),
        ("(b)", None),  # lower case is not a letter choice
        ("The answer is B.", "B"),
        ("I think the answer: (C)", "C"),
        ("答案是B", "B"),
        ("Jupiter is the largest planet.", "B"),  # the text of exactly one choice
        ("Mars or Jupiter", None),  # two choices named: no pick
        ("I don't know", None),
    ],
)
def test_choice_letter_is_found_in_common_reply_shapes(reply, letter):
    assert scoring.picked_choice(reply, ["Mars", "Jupiter", "Venus", "Mercury"]) == letter


def test_choice_check_reports_the_picked_letter():
    result = check({"choice": "b"}, "B) Jupiter", ["Mars", "Jupiter"])
    assert result.passed and result.detail["picked"] == "B" and result.detail["expected"] == "B"


@pytest.mark.parametrize(
    "reply",
    [
        tool_call("get_weather", city="Paris"),  # what crewkit's llama.cpp model returns with tools=
        [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        '```json\n{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}\n```',
        'Sure! {"tool_calls": [{"function": {"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}}]}',
        'Thought: I need the weather.\nAction: get_weather\nAction Input: {"city": "Paris"}',
    ],
)
def test_tool_calls_are_parsed_from_every_reply_shape(reply):
    assert scoring.parse_tool_calls(reply) == [{"name": "get_weather", "arguments": {"city": "Paris"}}]


def test_a_raw_newline_inside_a_json_string_is_read_not_a_parse_error():
    reply = '{"name": "search_web", "arguments": {"query": "crewai\nrelease notes"}}'
    assert scoring.parse_tool_calls(reply) == [
        {"name": "search_web", "arguments": {"query": "crewai\nrelease notes"}}
    ]
    nested = [{"function": {"name": "search_web", "arguments": '{"query": "a\tb"}'}}]
    assert scoring.parse_tool_calls(nested)[0]["arguments"] == {"query": "a\tb"}


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty reply"),
        ("It is sunny in Paris.", "no tool call"),
        ([{"function": {"name": "get_weather", "arguments": "{city: Paris"}}], "not valid JSON"),
        ([{"function": {"name": "get_weather", "arguments": "[1]"}}], "not a JSON object"),
    ],
)
def test_unreadable_tool_calls_score_zero_with_the_reason(reply, reason):
    result = scoring.check_tool_calls(
        [ExpectedCall(name="get_weather", arguments={"city": "Paris"})], TOOLS, reply
    )
    assert result.score == 0 and not result.passed
    assert reason in result.detail["problems"][0]


def score(expected: dict | list, reply) -> scoring.Score:
    calls = [ExpectedCall(**e) for e in (expected if isinstance(expected, list) else [expected])]
    return scoring.check_tool_calls(calls, TOOLS, reply)


@pytest.mark.parametrize(
    ("expected", "got", "passed"),
    [
        ({"name": "get_weather", "arguments": {"city": "Paris"}}, {"city": "  PARIS "}, True),
        (
            {"name": "get_weather", "arguments": {"city": "New York"}},
            {"city": "new-york"},
            True,
        ),  # BFCL strips - _ . ,
        (
            {"name": "get_weather", "arguments": {"city": ["Paris", "Paris, France"]}},
            {"city": "paris, france"},
            True,
        ),
        ({"name": "get_weather", "arguments": {"city": "Paris"}}, {"city": "Lyon"}, False),
        (
            {"name": "get_weather", "arguments": {"city": "Paris", "lat": 48}},
            {"city": "Paris", "lat": 48.0},
            True,
        ),
        (
            {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}},
            {"city": "Paris", "days": 3.0},
            False,
        ),
        (
            {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}},
            {"city": "Paris", "days": "3"},
            False,
        ),
        ({"name": "get_weather", "arguments": {"city": "Paris"}}, {"city": "Paris", "unit": "celsius"}, True),
        ({"name": "get_weather", "arguments": {"city": "Paris"}}, {"city": "Paris", "unit": "kelvin"}, False),
        (
            {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
            {"city": "Paris"},
            False,
        ),
        (
            {"name": "get_weather", "arguments": {"city": "Paris", "unit": {"one_of": ["celsius", None]}}},
            {"city": "Paris"},
            True,
        ),
        ({"name": "get_weather", "arguments": {"city": "Paris"}}, {"city": "Paris", "country": "FR"}, False),
        ({"name": "get_weather", "arguments": {"city": "Paris"}}, {"unit": "celsius"}, False),
        (
            {"name": "get_weather", "arguments": {"city": "P", "tags": ["a", "b"]}},
            {"city": "p", "tags": ["A", "B"]},
            True,
        ),
        (
            {"name": "get_weather", "arguments": {"city": "P", "tags": ["a", "b"]}},
            {"city": "p", "tags": ["b", "a"]},
            False,
        ),
        (
            {"name": "get_weather", "arguments": {"city": "P", "tags": {"one_of": [["a"], ["b"]]}}},
            {"city": "P", "tags": ["b"]},
            True,
        ),
    ],
)
def test_tool_calls_are_compared_structurally(expected, got, passed):
    result = score(expected, tool_call("get_weather", **got))
    assert result.passed is passed, result.detail["problems"]
    assert bool(result.detail["problems"]) is not passed


def test_the_wrong_function_fails_and_says_which():
    result = score(
        {"name": "get_weather", "arguments": {"city": "Paris"}}, tool_call("search", q="weather Paris")
    )
    assert not result.passed and result.detail["problems"] == ["called 'search', expected 'get_weather'"]


def test_several_expected_calls_match_in_any_order_and_an_extra_call_costs_score():
    expected = [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "search", "arguments": {"q": "louvre"}},
    ]
    both = tool_call("search", q="Louvre") + tool_call("get_weather", city="Paris")
    assert score(expected, both).passed
    one = score(expected, tool_call("get_weather", city="Paris"))
    assert one.score == 0.5 and not one.passed
    extra = score(expected[:1], both)
    assert extra.score == 0.5 and not extra.passed and "1 extra call(s): search" in extra.detail["problems"]


def test_values_equal_is_type_aware():
    assert scoring.values_equal(1, 1.0)
    assert not scoring.values_equal(True, 1) and not scoring.values_equal(1, True)
    assert scoring.values_equal({"a": [1, "X y"]}, {"a": [1.0, "x  Y"]})
    assert not scoring.values_equal({"a": 1}, {"a": 1, "b": 2})


def test_drift_prompt_is_deterministic_and_puts_the_needle_at_its_depth():
    needle = "The secret code of the blue vault is 4721."
    first, at0 = scoring.drift_prompt(needle, "What is the code?", 512, 0.0, seed=3)
    again, _ = scoring.drift_prompt(needle, "What is the code?", 512, 0.0, seed=3)
    other, _ = scoring.drift_prompt(needle, "What is the code?", 512, 0.0, seed=4)
    assert first == again != other
    assert at0 == 0.0
    body = first.split("\n\n")[1]
    assert body.startswith(needle)
    end, at1 = scoring.drift_prompt(needle, "What is the code?", 512, 1.0, seed=3)
    assert end.split("\n\n")[1].endswith(needle) and at1 == 1.0
    middle, half = scoring.drift_prompt(needle, "What is the code?", 512, 0.5, seed=3)
    position = middle.index(needle) / len(middle)
    assert 0.4 < position < 0.6 and half == pytest.approx(0.5, abs=0.02)
    assert not scoring.numbers(body.replace(needle, ""))  # the filler holds no numbers to confuse a check
    long, _ = scoring.drift_prompt(needle, "What is the code?", 2048, 0.5, seed=3)
    assert 3.5 < len(long) / len(middle) < 4.5
    assert len(long) / scoring.CHARS_PER_TOKEN == pytest.approx(2048, rel=0.05)


def test_parsed_arguments_round_trip_through_json():
    reply = json.dumps([{"id": "c1", "function": {"name": "search", "arguments": json.dumps({"q": "数据"})}}])
    assert scoring.parse_tool_calls(reply) == [{"name": "search", "arguments": {"q": "数据"}}]
