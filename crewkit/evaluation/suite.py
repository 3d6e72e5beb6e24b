"""Evaluation suites: YAML files of cases with checkable answers, loaded and validated once.

A suite lives in `config/suites/<NAME>.yaml` (or anywhere, given by path). `resolve(settings, name)`
finds it, `load(path)` validates it (pydantic, extra keys forbidden, errors as `FILE:LINE: what; fix`)
and expands it into the runnable `Case`s of a `Suite`:

- `reasoning`: a prompt and an `answer` check (`exact`, `contains`, `number` with `tolerance`,
  `choice` letter with optional `choices` listed under the prompt, or `regex`).
- `tool_use`: a prompt, `tools` (OpenAI function schemas) and the `expected` call(s); each expected
  call is checked against its tool's schema here, so a malformed one is a suite error with its line.
- `drift`: a fact (`needle`) hidden at each of `depths` (0 = start, 1 = end) of filler text of
  each of `lengths` (tokens, estimated), then a `question`; one case per (length, depth), with ids
  `ID@LENGTH/DEPTH`. The filler is generated from a seed, offline (`crewkit.evaluation.scoring`).

Top level: `name`, `description`, `system` (a system prompt for every case), `max_tokens` (per
reply) and `temperature` (None: each model's own; 0 for repeatable scores), which a case may
override, `repeat` (calls per case, for latency samples) and `human`
(`{MODEL: rating}`, human scores of the same models, compared with the automatic ones).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crewkit import yamlfile
from crewkit.errors import ConfigError, UsageError

Kind = Literal["reasoning", "tool_use", "drift"]
KINDS: tuple[str, ...] = ("reasoning", "tool_use", "drift")
# The role a case measures for when it does not say (`role:`): tool calls are the manager's job
# in crewkit (it delegates through tools), the rest is reasoning.
DEFAULT_ROLE: dict[str, str] = {"reasoning": "reasoning", "tool_use": "manager", "drift": "reasoning"}
SUITES_DIR = Path("config") / "suites"
JSON_TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Answer(_Strict):
    """How a reply is checked; exactly one of the checks."""

    exact: str | list[str] | None = None  # the whole reply equals one of these, normalised
    contains: str | list[str] | None = None  # the normalised reply contains one of these
    number: float | None = None  # the last number in the reply, within `tolerance`
    tolerance: float = Field(0.0, ge=0)
    choice: str | None = None  # a multiple-choice letter (A, B, ...)
    regex: str | None = None  # a Python regular expression searched in the reply

    @model_validator(mode="after")
    def _one_check(self) -> Answer:
        given = [
            k for k in ("exact", "contains", "number", "choice", "regex") if getattr(self, k) is not None
        ]
        if len(given) != 1:
            what = "none" if not given else ", ".join(given)
            raise ValueError(
                f"an answer needs exactly one check of exact, contains, number, choice, regex (got {what})"
            )
        if self.choice is not None and not re.fullmatch(r"[A-Za-z]", self.choice):
            raise ValueError(f"choice '{self.choice}' is not a single letter such as B")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex '{self.regex}' does not compile ({exc})") from None
        return self

    @property
    def check(self) -> str:
        return next(
            k for k in ("exact", "contains", "number", "choice", "regex") if getattr(self, k) is not None
        )


class Tool(_Strict):
    """An OpenAI function schema: `{name, description, parameters}` (or wrapped as
    `{type: function, function: {...}}`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and data.get("type") == "function"
            and isinstance(data.get("function"), dict)
        ):
            return data["function"]
        return data

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type", "object") != "object":
            raise ValueError("parameters must be a JSON schema of type 'object'")
        props = value.get("properties", {})
        if not isinstance(props, dict):
            raise ValueError("parameters.properties must be a mapping of parameter name -> schema")
        required = value.get("required", [])
        if not isinstance(required, list) or any(r not in props for r in required):
            missing = [r for r in required if r not in props] if isinstance(required, list) else required
            raise ValueError(f"parameters.required names {missing}, which are not in parameters.properties")
        for name, spec in props.items():
            types = spec.get("type") if isinstance(spec, dict) else None
            for t in types if isinstance(types, list) else [types]:
                if t is not None and t not in JSON_TYPES:
                    raise ValueError(f"parameter '{name}' has type '{t}'; use one of {', '.join(JSON_TYPES)}")
        return {"type": "object", **value}

    def openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class ExpectedCall(_Strict):
    """An expected tool call. An argument's value may be `{one_of: [v1, v2, ...]}` (any of them is
    right; `null` among them: it may also be left out), and for a parameter that is not an array a
    plain list means the same. Optional parameters not listed here may be anything or left out."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class _CaseBase(_Strict):
    id: str
    role: str | None = None
    max_tokens: int | None = Field(None, gt=0, le=8192)
    temperature: float | None = Field(None, ge=0, le=2)
    system: str | None = None

    @field_validator("id")
    @classmethod
    def _plain_id(cls, value: str) -> str:
        # '@' and '/' are kept for drift ids (ID@LENGTH/DEPTH), so no id can collide with one
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,80}", value):
            raise ValueError(f"case id '{value}' may use letters, digits and _ . : - only (at most 80)")
        return value


class ReasoningSpec(_CaseBase):
    kind: Literal["reasoning"]
    prompt: str = Field(min_length=1)
    choices: list[str] | None = None  # listed under the prompt as A) ... B) ...
    answer: Answer

    @model_validator(mode="after")
    def _choice_in_range(self) -> ReasoningSpec:
        if self.answer.choice is not None and self.choices:
            index = ord(self.answer.choice.upper()) - ord("A")
            if index >= len(self.choices):
                raise ValueError(
                    f"answer choice '{self.answer.choice}' is beyond the {len(self.choices)} choices listed"
                )
        return self


class ToolUseSpec(_CaseBase):
    kind: Literal["tool_use"]
    prompt: str = Field(min_length=1)
    tools: list[Tool] = Field(min_length=1)
    expected: list[ExpectedCall] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _one_call(cls, data: Any) -> Any:  # `expected: {name: ...}` is one call
        if isinstance(data, dict) and isinstance(data.get("expected"), dict):
            return {**data, "expected": [data["expected"]]}
        return data


class DriftSpec(_CaseBase):
    kind: Literal["drift"]
    needle: str = Field(min_length=1)
    question: str = Field(min_length=1)
    answer: Answer
    lengths: list[int] = Field(min_length=1)
    depths: list[float] = Field(default_factory=lambda: [0.0, 0.5, 1.0], min_length=1)
    seed: int = 0

    @field_validator("lengths")
    @classmethod
    def _lengths(cls, value: list[int]) -> list[int]:
        bad = [n for n in value if n < 64 or n > 2_000_000]
        if bad:
            raise ValueError(f"lengths must be token counts from 64 to 2000000 (got {bad[0]})")
        return value

    @field_validator("depths")
    @classmethod
    def _depths(cls, value: list[float]) -> list[float]:
        bad = [d for d in value if not 0 <= d <= 1]
        if bad:
            raise ValueError(f"depths are fractions from 0 (start) to 1 (end) (got {bad[0]})")
        return value


SPECS: dict[str, type[_CaseBase]] = {"reasoning": ReasoningSpec, "tool_use": ToolUseSpec, "drift": DriftSpec}


class SuiteHead(_Strict):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    system: str | None = None
    max_tokens: int = Field(64, gt=0, le=8192)
    temperature: float | None = Field(None, ge=0, le=2)  # None: each model's own
    repeat: int = Field(1, ge=1, le=50)
    human: dict[str, float] = Field(default_factory=dict)
    cases: list[dict[str, Any]] = Field(min_length=1)


@dataclass(frozen=True)
class Case:
    """One runnable case (a drift spec gives one per length and depth)."""

    id: str
    kind: Kind
    role: str
    messages: list[dict[str, Any]]
    max_tokens: int
    answer: Answer | None = None
    temperature: float | None = None  # None: the model's own
    tools: list[Tool] = field(default_factory=list)
    expected: list[ExpectedCall] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)  # drift: {"length", "depth", "needle_at"}
    line: int = 1

    @property
    def openai_tools(self) -> list[dict[str, Any]]:
        return [t.openai() for t in self.tools]


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    cases: list[Case]
    human: dict[str, float] = field(default_factory=dict)
    description: str = ""
    repeat: int = 1
    hash: str = ""  # of the validated content: a changed suite runs afresh


def available(project_dir: Path) -> list[str]:
    """The suite names in the project's config/suites/."""
    folder = project_dir / SUITES_DIR
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def resolve(project_dir: Path, name: str | None) -> Path:
    """A suite name (config/suites/NAME.yaml) or a path -> the file; unknown: UsageError listing the suites."""
    name = name or "default"
    as_path = Path(name).expanduser()
    if as_path.suffix in (".yaml", ".yml") or "/" in name or as_path.is_file():
        if not as_path.is_file():
            raise UsageError(
                f"suite file '{name}' not found; give a YAML file or a suite name from {SUITES_DIR}/"
            )
        return as_path
    path = project_dir / SUITES_DIR / f"{name}.yaml"
    if path.is_file():
        return path
    from crewkit.settings import suggest

    names = available(project_dir)
    listed = f"the suites are {', '.join(names)}" if names else f"there are none in {SUITES_DIR}/"
    raise UsageError(
        f"unknown suite '{name}'{suggest(name, names)}; {listed} (or give a path to a suite YAML file)"
    )


def _sub(doc: yamlfile.YamlDoc, prefix: tuple[Any, ...], data: Any) -> yamlfile.YamlDoc:
    n = len(prefix)
    lines = {loc[n:]: line for loc, line in doc.lines.items() if loc[:n] == prefix and len(loc) > n}
    return yamlfile.YamlDoc(doc.path, data, lines, start=doc.line_of(prefix))


def load(path: Path) -> Suite:
    """Read, validate and expand the suite at `path`. Errors: `ConfigError("FILE:LINE: ...; fix")`."""
    from crewkit.evaluation import scoring
    from crewkit.settings import _validate, suggest

    doc = yamlfile.load(path)
    if isinstance(doc.data, dict):
        for key in doc.data:  # before pydantic, which names a missing field first
            if key not in SuiteHead.model_fields:
                raise ConfigError(
                    f"{doc.where((key,))}: unknown field '{key}'{suggest(key, SuiteHead.model_fields)}; "
                    f"allowed at the top of a suite: {', '.join(SuiteHead.model_fields)}"
                )
        if not doc.data.get("cases"):
            raise ConfigError(
                f"{doc.where(('cases',))}: the suite has no cases; list them under 'cases:' (see docs/evaluation.md)"
            )
    head: SuiteHead = _validate(SuiteHead, doc)
    specs: list[_CaseBase] = []
    seen: dict[str, int] = {}
    cases: list[Case] = []
    for i, raw in enumerate(head.cases):
        where = doc.where(("cases", i))
        if not isinstance(raw, dict):
            raise ConfigError(
                f"{where}: a case must be a mapping with 'id' and 'kind'; see docs/evaluation.md"
            )
        kind = raw.get("kind")
        if not isinstance(kind, str) or kind not in SPECS:
            got = (
                "missing"
                if kind is None
                else f"'{kind}' is not one of {', '.join(KINDS)}{suggest(kind, KINDS)}"
            )
            raise ConfigError(
                f"{doc.where(('cases', i, 'kind'))}: case kind {got}; set kind: to one of {', '.join(KINDS)}"
            )
        allowed = SPECS[kind].model_fields
        for key in raw:  # before pydantic, which names a missing field first
            if key not in allowed:
                raise ConfigError(
                    f"{doc.where(('cases', i, key))}: unknown field '{key}'{suggest(key, allowed)}; "
                    f"allowed in a {kind} case: {', '.join(sorted(allowed))}"
                )
        spec = _validate(SPECS[kind], _sub(doc, ("cases", i), raw))
        specs.append(spec)
        if isinstance(spec, ToolUseSpec):
            _check_expected(spec, doc, i, single=isinstance(raw.get("expected"), dict))
        for case in _expand(spec, head, doc.line_of(("cases", i)), scoring):
            if case.id in seen:
                raise ConfigError(
                    f"{doc.where(('cases', i, 'id'))}: duplicate case id '{case.id}' (also on line {seen[case.id]}); "
                    "give every case its own id"
                )
            seen[case.id] = case.line
            cases.append(case)
    content = {
        "head": head.model_dump(exclude={"cases", "human", "description"}),
        "cases": [s.model_dump() for s in specs],
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Suite(
        name=head.name or path.stem,
        path=path,
        cases=cases,
        human=dict(head.human),
        description=head.description,
        repeat=head.repeat,
        hash=digest,
    )


def _messages(system: str | None, prompt: str) -> list[dict[str, Any]]:
    out = [{"role": "system", "content": system}] if system else []
    return [*out, {"role": "user", "content": prompt}]


def _expand(spec: _CaseBase, head: SuiteHead, line: int, scoring: Any) -> list[Case]:
    role = spec.role or DEFAULT_ROLE[spec.kind]  # type: ignore[attr-defined]
    system = spec.system if spec.system is not None else head.system
    max_tokens = spec.max_tokens or head.max_tokens
    temperature = spec.temperature if spec.temperature is not None else head.temperature
    if isinstance(spec, ReasoningSpec):
        prompt = spec.prompt
        if spec.choices:
            options = "\n".join(f"{chr(ord('A') + k)}) {text}" for k, text in enumerate(spec.choices))
            prompt = f"{prompt}\n{options}\nAnswer with the letter of the right choice."
        detail: dict[str, Any] = {"choices": list(spec.choices)} if spec.choices else {}
        return [
            Case(
                spec.id,
                "reasoning",
                role,
                _messages(system, prompt),
                max_tokens,
                spec.answer,
                temperature=temperature,
                detail=detail,
                line=line,
            )
        ]
    if isinstance(spec, ToolUseSpec):
        return [
            Case(
                spec.id,
                "tool_use",
                role,
                _messages(system, spec.prompt),
                max_tokens,
                tools=list(spec.tools),
                expected=list(spec.expected),
                temperature=temperature,
                line=line,
            )
        ]
    assert isinstance(spec, DriftSpec)
    out = []
    for length in spec.lengths:
        for depth in spec.depths:
            prompt, at = scoring.drift_prompt(spec.needle, spec.question, length, depth, spec.seed)
            out.append(
                Case(
                    f"{spec.id}@{length}/{depth:g}",
                    "drift",
                    role,
                    _messages(system, prompt),
                    max_tokens,
                    spec.answer,
                    temperature=temperature,
                    detail={"length": length, "depth": depth, "needle_at": at},
                    line=line,
                )
            )
    return out


def _check_expected(spec: ToolUseSpec, doc: yamlfile.YamlDoc, i: int, *, single: bool = False) -> None:
    """Every expected call names one of the case's tools, gives its required parameters, no unknown
    ones, and values of the declared types: else a suite error at the offending line."""
    from crewkit.evaluation import scoring
    from crewkit.settings import suggest

    tools = {t.name: t for t in spec.tools}
    for j, call in enumerate(spec.expected):
        loc: tuple[Any, ...] = ("cases", i, "expected") if single else ("cases", i, "expected", j)
        if call.name not in tools:
            raise ConfigError(
                f"{doc.where(loc + ('name',))}: expected call names tool '{call.name}', which is not among "
                f"this case's tools{suggest(call.name, tools)}; use one of {', '.join(tools)}"
            )
        params = tools[call.name].parameters
        props: dict[str, Any] = params.get("properties", {})
        for arg in call.arguments:  # an unknown name first: it is often the required one misspelt
            if arg not in props:
                raise ConfigError(
                    f"{doc.where(loc + ('arguments', arg))}: '{arg}' is not a parameter of '{call.name}'"
                    f"{suggest(arg, props)}; its parameters are {', '.join(props) or 'none'}"
                )
        for arg in params.get("required", []):
            if arg not in call.arguments:
                raise ConfigError(
                    f"{doc.where(loc + ('arguments',))}: expected call of '{call.name}' lacks required "
                    f"parameter '{arg}'; add it under arguments"
                )
        for arg, value in call.arguments.items():
            where = doc.where(loc + ("arguments", arg))
            alternatives = scoring.alternatives(value, props[arg])
            if not alternatives:
                raise ConfigError(f"{where}: one_of for '{arg}' lists no value; give at least one")
            for alt in alternatives:
                if alt is scoring.OMITTED:
                    if arg in params.get("required", []):
                        raise ConfigError(
                            f"{where}: '{arg}' is required by '{call.name}', so it cannot be left out (null); "
                            "remove null from its values"
                        )
                    continue
                problem = scoring.type_problem(alt, props[arg])
                if problem:
                    raise ConfigError(f"{where}: expected value {alt!r} for '{arg}' {problem}; fix the value")
