"""Scoring a reply against a case: answer checks, structural tool-call comparison, drift prompts.

Every check returns a `Score`: a value in [0, 1], whether it passed, and a detail dict with what
was expected and what was got, so a report can show why a case failed.

- Answers (`check_answer`): `exact` and `contains` compare normalised text (Unicode NFKC, lower
  case, punctuation and English articles dropped, whitespace collapsed: SQuAD's normalisation,
  with Chinese punctuation too); `number` takes the last number in the reply (thousands
  separators allowed) and accepts it within `tolerance`; `choice` finds the letter a reply picks
  ("B", "(B)", "answer: B", "答案是B", or the text of exactly one listed choice); `regex` searches.
- Tool calls (`check_tool_calls`) as BFCL's AST checker does: the function name is equal, every
  required parameter is present, no unknown parameter, and each value equals an acceptable one
  after type-aware normalisation (numbers by value, an integer for a `number` parameter; strings
  as BFCL compares them: lower case, spaces and , . / - _ * ^ dropped; lists in order and dicts by
  key, recursively).
  An optional parameter the expected call does not list may be left out or have any value of its
  type. Several expected calls match the reply's calls in any order; the score is the share of
  calls matched (an extra call counts against it).
- `parse_tool_calls` reads what a model returns: OpenAI-style dicts (`{"function": {"name",
  "arguments": "<json>"}}`, as crewkit's llama.cpp model gives under constrained decoding), a
  `{"name", "arguments"}` dict, a JSON text holding either, or CrewAI's `Action:` / `Action Input:`.
- `drift_prompt` builds a long-context case: seeded filler sentences (no downloads) around a fact.
"""

from __future__ import annotations

import json
import math
import random
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crewkit.evaluation.suite import Answer, ExpectedCall, Tool


@dataclass(frozen=True)
class Score:
    score: float
    passed: bool
    detail: dict[str, Any] = field(default_factory=dict)


class _Omitted:
    """An expected argument that may be left out (`null` among its acceptable values)."""

    def __repr__(self) -> str:
        return "<omitted>"


OMITTED = _Omitted()

# --- answers -------------------------------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBER = re.compile(r"(?<![\w.])[-−]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|[-−]?\d+(?:\.\d+)?")


def normalise(text: str) -> str:
    """Lower case, no punctuation (ASCII or CJK), no English articles, single spaces."""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _contains(haystack: str, needle: str) -> bool:
    """`needle` in `haystack` (both normalised), not inside a longer word or number."""
    if not needle:
        return False
    return re.search(rf"(?<![a-z0-9]){re.escape(needle)}(?![a-z0-9])", haystack) is not None


def numbers(text: str) -> list[float]:
    text = unicodedata.normalize("NFKC", text)
    out = []
    for match in _NUMBER.finditer(text):
        raw = match.group().replace(",", "").replace("−", "-")
        try:
            out.append(float(raw))
        except ValueError:
            continue
    return out


_LETTER_PATTERNS = (
    r"^\W*\(?([A-Z])(?:\)|\.|:|,|\s|$)",  # "B", "B) Paris", "(B)", "B. ..."
    r"(?i:answer|choice|option)\s*(?:is|:|=)?\s*\(?([A-Z])\b",
    r"答案\s*(?:是|为|:|：)?\s*\(?([A-Z])",
    r"\(([A-Z])\)",
    r"(?<![A-Za-z])([A-Z])\)",
)


def picked_choice(reply: str, choices: list[str] | None) -> str | None:
    """The multiple-choice letter a reply picks, or None."""
    text = unicodedata.normalize("NFKC", reply).strip()
    letters = [chr(ord("A") + k) for k in range(len(choices))] if choices else list("ABCDE")
    for pattern in _LETTER_PATTERNS:
        for match in re.finditer(pattern, text):
            if match.group(1) in letters:
                return match.group(1)
    if choices:  # the text of exactly one choice
        said = normalise(reply)
        hits = [letters[k] for k, c in enumerate(choices) if normalise(c) and _contains(said, normalise(c))]
        if len(hits) == 1:
            return hits[0]
    return None


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def check_answer(answer: Answer, reply: str, choices: list[str] | None = None) -> Score:
    """Check a text reply with the case's `answer`."""
    reply = reply if isinstance(reply, str) else str(reply)
    got = reply.strip()
    kind = answer.check
    if kind == "exact":
        expected = _as_list(answer.exact)  # type: ignore[arg-type]
        ok = normalise(got) in {normalise(e) for e in expected}
        return Score(float(ok), ok, {"check": kind, "expected": expected, "got": got})
    if kind == "contains":
        expected = _as_list(answer.contains)  # type: ignore[arg-type]
        said = normalise(got)
        ok = any(_contains(said, normalise(e)) for e in expected)
        return Score(float(ok), ok, {"check": kind, "expected": expected, "got": got})
    if kind == "number":
        found = numbers(got)
        value = found[-1] if found else None
        ok = value is not None and abs(value - answer.number) <= answer.tolerance + 1e-9 * max(
            1.0, abs(answer.number)
        )  # type: ignore[operator]
        detail = {
            "check": kind,
            "expected": answer.number,
            "tolerance": answer.tolerance,
            "got": got,
            "number": value,
        }
        return Score(float(ok), ok, detail)
    if kind == "choice":
        letter = picked_choice(got, choices)
        ok = letter == answer.choice.upper()  # type: ignore[union-attr]
        return Score(
            float(ok), ok, {"check": kind, "expected": answer.choice.upper(), "got": got, "picked": letter}
        )  # type: ignore[union-attr]
    ok = re.search(answer.regex, got) is not None  # type: ignore[arg-type]
    return Score(float(ok), ok, {"check": "regex", "expected": answer.regex, "got": got})


# --- tool calls ----------------------------------------------------------------------------
class ParseError(ValueError):
    """A reply holds no tool call that can be read."""


def _call(name: Any, arguments: Any) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise ParseError("a call without a function name")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments, strict=False) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise ParseError(f"arguments of '{name}' are not valid JSON ({exc.msg})") from None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise ParseError(f"arguments of '{name}' are not a JSON object")
    return {"name": name, "arguments": arguments}


def _from_obj(obj: Any) -> list[dict[str, Any]]:
    if isinstance(obj, list):
        return [c for item in obj for c in _from_obj(item)]
    if not isinstance(obj, dict):
        raise ParseError(f"not a tool call: {str(obj)[:80]}")
    if "tool_calls" in obj:
        return _from_obj(obj["tool_calls"] or [])
    if isinstance(obj.get("function"), dict):
        fn = obj["function"]
        return [_call(fn.get("name"), fn.get("arguments"))]
    if "name" in obj:
        return [_call(obj["name"], obj.get("arguments", obj.get("parameters")))]
    raise ParseError(f"not a tool call: {json.dumps(obj)[:80]}")


def _json_spans(text: str) -> list[Any]:
    """Every top-level JSON value ({...} or [...]) embedded in a text, in order."""
    decoder = json.JSONDecoder()
    out, i = [], 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                i += 1
                continue
            out.append(value)
            i = end
        else:
            i += 1
    return out


_REACT = re.compile(r"Action:\s*([^\n]+?)\s*\n\s*Action Input:\s*(\{.*\})", re.S)


def parse_tool_calls(reply: Any) -> list[dict[str, Any]]:
    """The tool calls in a model's reply as `[{"name", "arguments": dict}]`; ParseError if none."""
    if isinstance(reply, list | dict):
        return _from_obj(reply)
    text = str(reply or "").strip()
    if not text:
        raise ParseError("empty reply, no tool call")
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fence:
        text = fence.group(1).strip()
    try:
        return _from_obj(json.loads(text, strict=False))
    except json.JSONDecodeError:
        pass
    react = _REACT.search(text)
    if react:
        return [_call(react.group(1).strip(), react.group(2))]
    for value in _json_spans(text):
        try:
            calls = _from_obj(value)
        except ParseError:
            continue
        if calls:
            return calls
    raise ParseError(f"no tool call in the reply: {text[:80]}")


def _types(schema: dict[str, Any]) -> list[str]:
    t = schema.get("type") if isinstance(schema, dict) else None
    return list(t) if isinstance(t, list) else ([t] if t else [])


def alternatives(value: Any, schema: dict[str, Any]) -> list[Any]:
    """The acceptable values an expected argument lists (OMITTED: may be left out)."""
    if isinstance(value, dict) and set(value) == {"one_of"} and isinstance(value["one_of"], list):
        options = value["one_of"]
    elif isinstance(value, list) and "array" not in _types(schema):
        options = value
    else:
        options = [value]
    return [OMITTED if v is None and "null" not in _types(schema) else v for v in options]


def type_problem(value: Any, schema: dict[str, Any]) -> str | None:
    """Why `value` does not fit the JSON schema of a parameter (None: it fits)."""
    if not isinstance(schema, dict):
        return None
    if "enum" in schema and value not in schema["enum"]:
        return f"is not one of {schema['enum']}"
    types = _types(schema)
    if not types:
        return None
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
        "null": lambda v: v is None,
    }
    if not any(checks.get(t, lambda v: True)(value) for t in types):
        return f"is not of type {' or '.join(types)}"
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            problem = type_problem(item, schema["items"])
            if problem:
                return f"has an item {item!r} that {problem}"
    return None


_BFCL_STRIP = re.compile(r"[\s,./\-_*^]")


def _norm_str(text: str) -> str:
    """BFCL's string normalisation (lower case; spaces and , . / - _ * ^ dropped), after Unicode NFKC."""
    return _BFCL_STRIP.sub("", unicodedata.normalize("NFKC", text).lower())


def values_equal(expected: Any, got: Any) -> bool:
    """Type-aware equality: numbers by value, strings normalised, lists and dicts recursively."""
    if isinstance(expected, bool) or isinstance(got, bool):
        return isinstance(expected, bool) and isinstance(got, bool) and expected == got
    if isinstance(expected, int | float):
        return isinstance(got, int | float) and math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(expected, str):
        return isinstance(got, str) and _norm_str(expected) == _norm_str(got)
    if isinstance(expected, list):
        return (
            isinstance(got, list)
            and len(expected) == len(got)
            and all(values_equal(e, g) for e, g in zip(expected, got, strict=True))
        )
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and set(expected) == set(got)
            and all(values_equal(v, got[k]) for k, v in expected.items())
        )
    return expected == got


def call_problems(expected: ExpectedCall, got: dict[str, Any], tool: Tool | None) -> list[str]:
    """What is wrong with `got` as the call `expected` (empty: it matches)."""
    if got["name"] != expected.name:
        return [f"called '{got['name']}', expected '{expected.name}'"]
    params = tool.parameters if tool is not None else {}
    props: dict[str, Any] = params.get("properties", {})
    args: dict[str, Any] = got["arguments"]
    problems = [f"unknown parameter '{k}'" for k in args if k not in props]
    problems += [f"required parameter '{k}' missing" for k in params.get("required", []) if k not in args]
    for arg, value in expected.arguments.items():
        options = alternatives(value, props.get(arg, {}))
        if arg not in args:
            if OMITTED not in options and f"required parameter '{arg}' missing" not in problems:
                problems.append(f"parameter '{arg}' missing")
            continue
        problem = type_problem(args[arg], props.get(arg, {}))
        if problem and not (isinstance(args[arg], int) and "number" in _types(props.get(arg, {}))):
            problems.append(f"'{arg}' {args[arg]!r} {problem}")
            continue
        if not any(values_equal(opt, args[arg]) for opt in options if opt is not OMITTED):
            shown = [o for o in options if o is not OMITTED]
            problems.append(f"'{arg}' is {args[arg]!r}, expected {shown[0] if len(shown) == 1 else shown}")
    for arg in set(args) - set(expected.arguments):
        if arg in props:
            problem = type_problem(args[arg], props[arg])
            if problem:
                problems.append(f"'{arg}' {args[arg]!r} {problem}")
    return problems


def check_tool_calls(expected: list[ExpectedCall], tools: list[Tool], reply: Any) -> Score:
    """Compare the calls in `reply` with the expected ones, structurally."""
    shown_expected = [{"name": e.name, "arguments": e.arguments} for e in expected]
    try:
        got = parse_tool_calls(reply)
    except ParseError as exc:
        text = reply if isinstance(reply, str) else json.dumps(reply, default=str)
        return Score(0.0, False, {"expected": shown_expected, "got": text[:500], "problems": [str(exc)]})
    by_name = {t.name: t for t in tools}
    unused = list(range(len(got)))
    matched, problems = 0, []
    for exp in expected:
        hit = next((k for k in unused if not call_problems(exp, got[k], by_name.get(exp.name))), None)
        if hit is not None:
            unused.remove(hit)
            matched += 1
            continue
        same = [k for k in unused if got[k]["name"] == exp.name]
        candidates = same or unused
        problems.extend(
            call_problems(exp, got[candidates[0]], by_name.get(exp.name))
            if candidates
            else [f"no call of '{exp.name}'"]
        )
    if unused and matched == len(expected):
        problems.append(f"{len(unused)} extra call(s): {', '.join(got[k]['name'] for k in unused)}")
    score = matched / max(len(expected), len(got))
    passed = matched == len(expected) and not unused
    return Score(score, passed, {"expected": shown_expected, "got": got, "problems": problems})


# --- long-context drift --------------------------------------------------------------------
CHARS_PER_TOKEN = (
    5.0  # this filler measured 4.7-5.0 chars per token with SmolLM2's tokenizer; calls report real counts
)

_SUBJECTS = (
    "The old harbour",
    "A quiet village",
    "The morning train",
    "The river",
    "A small bakery",
    "The library",
    "The mountain path",
    "An orchard",
    "The night market",
    "A wooden bridge",
    "The lighthouse",
    "The garden",
    "A fishing boat",
    "The museum",
    "The school choir",
    "A northern forest",
    "The city square",
    "A windmill",
)
_VERBS = (
    "was repainted",
    "welcomed visitors",
    "stayed calm",
    "grew busier",
    "was described in letters",
    "changed slowly",
    "appeared in paintings",
    "was mentioned by travellers",
    "drew a small crowd",
    "kept its old charm",
    "was cleaned",
    "became a meeting place",
)
_TAILS = (
    "during the long summer",
    "after the autumn rains",
    "in the early evening",
    "before the festival",
    "under a grey sky",
    "when the snow melted",
    "as the seasons turned",
    "on market days",
    "while the bells rang",
    "through the cold winter",
    "at the end of the harvest",
    "in the soft light",
)


def filler(n_tokens: int, seed: int) -> list[str]:
    """Neutral sentences (no numbers, no facts worth recalling) of about `n_tokens` tokens."""
    rng = random.Random(seed)
    out, chars = [], 0
    while chars / CHARS_PER_TOKEN < n_tokens:
        sentence = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_TAILS)}."
        out.append(sentence)
        chars += len(sentence) + 1
    return out


DRIFT_INSTRUCTION = "Read the text below. A question about it follows."


def drift_prompt(needle: str, question: str, length: int, depth: float, seed: int) -> tuple[str, float]:
    """The prompt of a drift case: about `length` tokens in all, `needle` at `depth` of the filler.

    Returns the prompt and where the needle landed (a fraction of the filler's sentences).
    """
    overhead = (len(DRIFT_INSTRUCTION) + len(needle) + len(question) + 40) / CHARS_PER_TOKEN
    sentences = filler(max(0, int(length - overhead)), seed)
    at = round(depth * len(sentences))
    body = [*sentences[:at], needle.strip(), *sentences[at:]]
    prompt = f"{DRIFT_INSTRUCTION}\n\n{' '.join(body)}\n\nQuestion: {question.strip()}\nAnswer briefly."
    return prompt, (at / len(sentences) if sentences else 0.0)
