"""Evaluation suites: the YAML format, its expansion into cases, and one-line FILE:LINE errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from crewkit.errors import ConfigError, UsageError
from crewkit.evaluation import suite

ROOT = Path(__file__).resolve().parents[2]

TOOLS = """
    tools:
      - name: get_weather
        description: Current weather.
        parameters:
          type: object
          properties:
            city: {type: string}
            unit: {type: string, enum: [celsius, fahrenheit]}
            days: {type: integer}
          required: [city]
"""


def write(tmp_path: Path, body: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def tool_case(expected: str) -> str:
    return (
        "cases:\n  - id: t1\n    kind: tool_use\n    prompt: weather in Paris?\n"
        + textwrap.dedent(TOOLS).replace("\n", "\n    ").rstrip()
        + "\n"
        + textwrap.indent(textwrap.dedent(expected), "    ")
    )


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        suite.load(path)
    return str(info.value)


def test_default_suite_loads_and_expands_drift_into_length_by_depth_cases():
    s = suite.load(ROOT / "config" / "suites" / "default.yaml")
    kinds = [c.kind for c in s.cases]
    assert kinds.count("reasoning") >= 6 and kinds.count("tool_use") >= 4
    drift = [c for c in s.cases if c.kind == "drift"]
    assert len(drift) == 9
    assert {(c.detail["length"], c.detail["depth"]) for c in drift} == {
        (n, d) for n in (256, 1024, 3000) for d in (0, 0.5, 1)
    }
    assert "vault-code@1024/0.5" in {c.id for c in drift}
    assert any(
        "\u4e00" <= ch <= "\u9fff" for c in s.cases for ch in c.messages[-1]["content"]
    )  # Chinese cases
    assert len({c.id for c in s.cases}) == len(s.cases)


def test_case_defaults_roles_by_kind_and_lists_choices_under_the_prompt(tmp_path):
    path = write(
        tmp_path,
        """\
        max_tokens: 12
        system: Be brief.
        cases:
          - id: mc
            kind: reasoning
            prompt: Largest planet?
            choices: [Mars, Jupiter]
            answer: {choice: B}
          - id: code
            kind: reasoning
            role: code
            max_tokens: 40
            prompt: len([1,2])?
            answer: {number: 2}
        """,
    )
    s = suite.load(path)
    mc, code = s.cases
    assert mc.role == "reasoning" and code.role == "code"
    assert mc.max_tokens == 12 and code.max_tokens == 40
    assert mc.messages[0] == {"role": "system", "content": "Be brief."}
    assert "A) Mars\nB) Jupiter" in mc.messages[-1]["content"]
    assert s.name == "s" and s.repeat == 1


def test_tool_use_default_role_is_manager_and_tools_become_openai_schemas(tmp_path):
    s = suite.load(write(tmp_path, tool_case("expected: {name: get_weather, arguments: {city: Paris}}")))
    (case,) = s.cases
    assert case.role == "manager"
    assert case.openai_tools[0]["type"] == "function"
    assert case.openai_tools[0]["function"]["name"] == "get_weather"
    assert case.expected[0].arguments == {"city": "Paris"}


def test_duplicate_case_id_names_its_line(tmp_path):
    path = write(
        tmp_path,
        """\
        cases:
          - id: a
            kind: reasoning
            prompt: x
            answer: {exact: y}
          - id: a
            kind: reasoning
            prompt: x
            answer: {exact: y}
        """,
    )
    assert error_of(path) == f"{path}:6: duplicate case id 'a' (also on line 2); give every case its own id"


def test_a_case_id_cannot_take_the_shape_of_a_drift_id(tmp_path):
    path = write(
        tmp_path,
        """\
        cases:
          - id: n
            kind: drift
            needle: The code is 7.
            question: What is the code?
            answer: {number: 7}
            lengths: [256]
            depths: [0]
          - id: n@256/0
            kind: reasoning
            prompt: x
            answer: {exact: y}
        """,
    )
    assert ":9: field 'id': case id 'n@256/0' may use letters, digits and _ . : - only" in error_of(path)


@pytest.mark.parametrize(
    ("body", "line", "text"),
    [
        ("cases:\n  - id: a\n    kind: reasonin\n    prompt: x\n", 3, "(did you mean 'reasoning'?)"),
        (
            "cases:\n  - id: a\n    kind: reasoning\n    prompt: x\n    answr: {exact: y}\n",
            5,
            "unknown field 'answr' (did you mean 'answer'?)",
        ),
        (
            "cases:\n  - id: a\n    kind: reasoning\n    prompt: x\n    answer: {exact: y, number: 3}\n",
            5,
            "exactly one check",
        ),
        (
            "cases:\n  - id: a\n    kind: reasoning\n    prompt: x\n    answer: {regex: '(' }\n",
            5,
            "does not compile",
        ),
        (
            "cases:\n  - id: a\n    kind: drift\n    needle: n\n    question: q\n    answer: {number: 1}\n    lengths: [256]\n    depths: [1.5]\n",
            8,
            "depths are fractions",
        ),
        ("cases:\n  - id: a\n    kind: [reasoning]\n", 3, "case kind '['reasoning']' is not one of"),
        (
            "cases:\n  - id: a\n    prompt: x\n",
            2,
            "case kind missing; set kind: to one of reasoning, tool_use, drift",
        ),
        ("cases:\n  - just text\n", 2, "valid dictionary"),
        (
            "human: {m: high}\ncases:\n  - {id: a, kind: reasoning, prompt: x, answer: {exact: y}}\n",
            1,
            "field 'human.m'",
        ),
        ("repeats: 3\ncases: []\n", 1, "unknown field 'repeats' (did you mean 'repeat'?)"),
        ("cases: []\n", 1, "the suite has no cases"),
        ("name: x\n", 1, "the suite has no cases"),
    ],
)
def test_malformed_suites_are_one_line_with_file_and_line(tmp_path, body, line, text):
    path = write(tmp_path, body)
    message = error_of(path)
    assert message.startswith(f"{path}:{line}: "), message
    assert text in message and "\n" not in message


@pytest.mark.parametrize(
    ("expected", "line", "text"),
    [
        (
            "expected: {name: get_wether, arguments: {city: Paris}}",
            16,
            "names tool 'get_wether', which is not among this case's tools (did you mean 'get_weather'?)",
        ),
        (
            "expected:\n  name: get_weather\n  arguments:\n    city: Paris\n    town: Lyon\n",
            20,
            "'town' is not a parameter of 'get_weather'",
        ),
        (
            "expected:\n  name: get_weather\n  arguments:\n    city: Paris\n    days: two\n",
            20,
            "expected value 'two' for 'days' is not of type integer",
        ),
        (
            "expected:\n  name: get_weather\n  arguments:\n    city: Paris\n    unit: kelvin\n",
            20,
            "is not one of ['celsius', 'fahrenheit']",
        ),
        (
            "expected:\n  name: get_weather\n  arguments:\n    unit: celsius\n",
            18,
            "lacks required parameter 'city'",
        ),
        (
            "expected:\n  name: get_weather\n  arguments:\n    city: [Paris, null]\n",
            19,
            "'city' is required by 'get_weather', so it cannot be left out",
        ),
    ],
)
def test_malformed_expected_tool_call_is_a_suite_error_at_its_line(tmp_path, expected, line, text):
    path = write(tmp_path, tool_case(expected))
    message = error_of(path)
    assert message.startswith(f"{path}:{line}: "), message
    assert text in message


def test_expected_values_may_list_alternatives_and_optional_omission(tmp_path):
    expected = "expected:\n  name: get_weather\n  arguments:\n    city: [Paris, 'Paris, France']\n    unit: {one_of: [celsius, null]}\n"
    (case,) = suite.load(write(tmp_path, tool_case(expected))).cases
    assert case.expected[0].arguments["unit"] == {"one_of": ["celsius", None]}


def test_suite_hash_ignores_comments_and_human_ratings_but_not_cases(tmp_path):
    base = "cases:\n  - id: a\n    kind: reasoning\n    prompt: x\n    answer: {exact: y}\n"
    one = suite.load(write(tmp_path, base, "one.yaml")).hash
    two = suite.load(write(tmp_path, "# a comment\nhuman: {m: 1.0}\n" + base, "two.yaml")).hash
    three = suite.load(write(tmp_path, base.replace("exact: y", "exact: z"), "three.yaml")).hash
    assert one == two != three


def test_resolve_finds_names_and_paths_and_lists_suites_for_an_unknown_one(tmp_path):
    assert suite.resolve(ROOT, "default") == ROOT / "config" / "suites" / "default.yaml"
    path = write(tmp_path, "cases: []\n")
    assert suite.resolve(ROOT, str(path)) == path
    with pytest.raises(UsageError) as info:
        suite.resolve(ROOT, "defualt")
    assert "unknown suite 'defualt' (did you mean 'default'?); the suites are default" in str(info.value)
    with pytest.raises(UsageError, match="suite file 'nope.yaml' not found"):
        suite.resolve(ROOT, "nope.yaml")
