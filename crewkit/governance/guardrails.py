"""Guardrails: plain callables with typed verdicts, resolved by name from a small registry.

A guardrail takes the output text and returns a `Verdict` (`allowed`, `reason`, `score`); the
framework decides what a failure does. Tasks name them in YAML (`guardrails: [no_secrets,
not_empty]`); `as_task_guardrail(name)` adapts one to CrewAI's `(TaskOutput) -> (bool, Any)`
contract, so CrewAI retries the task up to `guardrail_max_retries` with the reason as feedback.
Deterministic checks only here: they are cheap and never call a model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crewkit.governance.data_classes import SECRET_PATTERNS as _SECRET_PATTERNS


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""
    score: float = 0.0  # 0 = clean, 1 = certainly bad
    guardrail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "guardrail": self.guardrail,
            "allowed": self.allowed,
            "reason": self.reason,
            "score": self.score,
        }


Guardrail = Callable[[str], Verdict]


def not_empty(text: str) -> Verdict:
    if text and text.strip():
        return Verdict(True)
    return Verdict(False, "the output is empty; produce a non-empty answer", 1.0)


def no_secrets(text: str) -> Verdict:
    found = [name for name, pattern in _SECRET_PATTERNS.items() if pattern.search(text or "")]
    if found:
        return Verdict(False, f"the output contains a {found[0]}; remove credentials from the answer", 1.0)
    return Verdict(True)


_PII_NAMES = {
    "email": "email address",
    "phone": "phone number",
    "card": "payment card number",
    "iban": "IBAN",
    "us_ssn": "US social security number",
    "cn_resident_id": "Chinese resident id",
    "uk_nino": "UK national insurance number",
    "secret": "credential",
}


def no_pii(text: str) -> Verdict:
    """No personal data in the output (`crewkit.governance.pii`: e-mails, phones, Luhn-valid cards,
    mod-97 IBANs, national ids, credentials)."""
    from crewkit.governance import pii

    kinds = list(dict.fromkeys(f.kind for f in pii.find(text or "")))
    if kinds:
        names = ", ".join(_PII_NAMES.get(k, k) for k in kinds)
        return Verdict(False, f"the output contains personal data ({names}); redact it", 0.9)
    return Verdict(True)


def no_prompt_injection(text: str) -> Verdict:
    """crewkit.governance.injection's scanner: any verdict but allow fails the guardrail."""
    from crewkit.governance.injection import scan

    result = scan(text or "")
    if result.verdict != "allow":
        found = "; ".join(result.reasons) or "injection signals"
        return Verdict(
            False,
            f"the output carries an injected instruction ({result.verdict}: {found}); drop it",
            result.score,
        )
    return Verdict(True)


def json_schema(text: str) -> Verdict:
    """The output must be one JSON object or array (a fenced ```json block is accepted)."""
    body = (text or "").strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", body, re.S)
    if fenced:
        body = fenced.group(1).strip()
    try:
        value = json.loads(body)
    except ValueError as exc:
        return Verdict(
            False, f"the output is not valid JSON ({exc.msg} at char {exc.pos}); answer with JSON only", 1.0
        )
    if not isinstance(value, dict | list):
        return Verdict(False, "the output must be a JSON object or array", 1.0)
    return Verdict(True)


def has_code(text: str) -> Verdict:
    """The output must contain source code (a fenced block or a def/class/function line)."""
    if re.search(r"```|^\s*(def |class |function |fn |public |import |from \S+ import )", text or "", re.M):
        return Verdict(True)
    return Verdict(False, "the output contains no code; include the code in a fenced block", 0.8)


REGISTRY: dict[str, Guardrail] = {
    "not_empty": not_empty,
    "no_secrets": no_secrets,
    "no_pii": no_pii,
    "no_prompt_injection": no_prompt_injection,
    "json_schema": json_schema,
    "has_code": has_code,
}


def run(name: str, text: str) -> Verdict:
    """Run guardrail `name`; its verdict is audited when a run is recording (`runtime.trail`)."""
    from crewkit.runtime import trail

    verdict = REGISTRY[name](text)
    trail.note(
        "guardrail.verdict",
        f"guardrail {name}",
        {"allowed": verdict.allowed, "reason": verdict.reason, "score": verdict.score},
    )
    return Verdict(verdict.allowed, verdict.reason, verdict.score, name)


def run_all(names: list[str], text: str) -> list[Verdict]:
    return [run(name, text) for name in names]


def as_task_guardrail(name: str) -> Callable[[Any], tuple[bool, Any]]:
    """CrewAI task guardrail: `(TaskOutput) -> (True, output) | (False, reason)`."""

    def check(output: Any) -> tuple[bool, Any]:
        text = getattr(output, "raw", output)
        verdict = run(name, text if isinstance(text, str) else str(text))
        return (True, output) if verdict.allowed else (False, f"guardrail '{name}' failed: {verdict.reason}")

    check.__name__ = f"guardrail_{name}"
    check.__qualname__ = check.__name__
    return check


def check_settings(settings: Any) -> None:
    """config/governance.yaml's `output_guardrails` name registered guardrails."""
    from crewkit.errors import ConfigError
    from crewkit.settings import suggest

    doc = settings.governance_doc
    for i, name in enumerate(settings.governance.output_guardrails):
        if name not in REGISTRY:
            where = doc.where(("output_guardrails", i)) if doc is not None else "config/governance.yaml"
            raise ConfigError(
                f"{where}: unknown guardrail '{name}'{suggest(name, REGISTRY)}; known: {', '.join(sorted(REGISTRY))}"
            )
