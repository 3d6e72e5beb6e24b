"""Redact secrets from anything crewkit writes or prints: run records, logs, errors, the console.

Two sources of truth:
- the values of secret-looking environment variables (`*_API_KEY`, `*_TOKEN`, `*_SECRET`,
  `*PASSWORD*`, and every `api_key_env` a model entry names), replaced wherever they appear;
- patterns of well-known credential formats (OpenAI/Anthropic `sk-...`, AWS key ids, GitHub,
  Slack and Google tokens, private key blocks, `password=...` assignments), so a key pasted into
  a task or echoed in a provider's error text is caught even if it is not in the environment.

`redact(text)` returns the text with each secret replaced by `[REDACTED]`; `redact_obj(value)`
walks dicts, lists and tuples. `install_log_filter()` puts the same redaction, and the personal
data masking of `crewkit.governance.pii`, on every log record.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from typing import Any

MARK = "[REDACTED]"

_PATTERNS = [
    re.compile(r"\bsk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_\-]{16,}"),
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    re.compile(
        r"-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
        re.S,
    ),
    re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._\-]{16,}"),
]
# `api_key=...`, `password: ...`, `DB_PASSWORD=...`: keep the name, hide the value.
_ASSIGNMENT = re.compile(
    r"(?i)(?<![a-z0-9])((?:api[_-]?key|x-api-key|password|passwd|secret|token|access[_-]?key)[\"']?\s*[:=]\s*[\"']?)([^\s\"',;}]{8,})"
)
# Literal text each pattern needs (lower-cased): a text without them skips the pattern.
_PATTERN_HINTS = ("sk-", "akia", "asia", "gh", "xox", "aiza", "private key", "bearer")
_ASSIGNMENT_HINTS = ("key", "passw", "secret", "token")
_SECRET_ENV = re.compile(r"(?i)(_API_KEY|_KEY|_TOKEN|_SECRET|PASSWORD|_PASS)$")
_extra_env: set[str] = set()


def register_env(*names: str | None) -> None:
    """Treat these variables' values as secrets too (the config's `api_key_env` names)."""
    global _names_seen
    _extra_env.update(n for n in names if n)
    _secret_names.clear()
    _names_seen = (0, [])


_secret_names: dict[Any, bool] = {}  # raw environment name -> whether its value is a secret
_names_seen: tuple[int, list[Any]] = (0, [])  # (hash of the environment's names, the secret ones)
_env_cache: tuple[tuple[Any, ...], list[str]] = ((), [])


def _is_secret_name(raw: Any) -> bool:
    known = _secret_names.get(raw)
    if known is None:
        name = os.fsdecode(raw) if isinstance(raw, bytes) else str(raw)
        known = _secret_names[raw] = bool(name in _extra_env or _SECRET_ENV.search(name))
    return known


def env_secrets() -> list[str]:
    """The values of secret-looking variables, longest first. Read on every call (a key set a
    moment ago is redacted at once) but cheaply: the secret names are found again only when the
    environment's names change, values decoded only when a secret one changed."""
    global _env_cache, _names_seen
    data = getattr(os.environ, "_data", None)
    if not isinstance(data, dict):
        data = dict(os.environ)
    names_hash = hash(tuple(data))
    if names_hash != _names_seen[0]:
        _names_seen = (names_hash, [name for name in data if _is_secret_name(name)])
    current = tuple(v for v in (data.get(name) for name in _names_seen[1]) if v)
    if current != _env_cache[0]:
        decoded = {os.fsdecode(v) if isinstance(v, bytes) else str(v) for v in current}
        values = sorted((v for v in decoded if len(v) >= 8), key=len, reverse=True)  # no partial replacement
        _env_cache = (current, values)
    return _env_cache[1]


def redact(text: str, secrets: list[str] | None = None) -> str:
    """`secrets`: the environment's secret values, when the caller already has them (`redact_obj`)."""
    if not text or not isinstance(text, str):
        return text
    for value in env_secrets() if secrets is None else secrets:
        if value in text:
            text = text.replace(value, MARK)
    low = text.lower()  # cheap literal checks first: most text holds no key format at all
    if any(hint in low for hint in _PATTERN_HINTS):
        for pattern in _PATTERNS:
            text = pattern.sub(MARK, text)
    if not any(hint in low for hint in _ASSIGNMENT_HINTS):
        return text
    return _ASSIGNMENT.sub(lambda m: m.group(1) + MARK if m.group(2) != MARK else m.group(0), text)


def redact_obj(value: Any, secrets: list[str] | None = None) -> Any:
    """`redact` on every string inside dicts, lists and tuples (the environment is read once)."""
    if secrets is None:
        secrets = env_secrets()
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {k: redact_obj(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_obj(v, secrets) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """Secrets and personal data (`crewkit.governance.pii`) masked in a record's message and in
    the text of its exception, before any handler formats it."""

    def __init__(self, national_ids: Iterable[str] | None = None) -> None:
        super().__init__()
        self.national_ids: tuple[str, ...] | None = None if national_ids is None else tuple(national_ids)

    def clean(self, text: str) -> str:
        from crewkit.governance import pii  # pii imports this module's patterns

        text = redact(text)
        return pii.redact(text) if self.national_ids is None else pii.redact(text, self.national_ids)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's problem, not ours
            return True
        cleaned = self.clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:  # formatters reuse exc_text when it is set
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self.clean(record.stack_info)
        return True


def install_log_filter(national_ids: Iterable[str] | None = None) -> None:
    """Redact every record that reaches the root logger's handlers (idempotent).

    Also Python's last-resort handler, which prints WARNING and above when no handler is set:
    a record of a named logger (CrewAI's) does not pass the root logger's own filters.
    `national_ids`: the profile's `pii.national_ids` (default: all that crewkit knows); a
    second call with other ids updates the installed filters.
    """
    root = logging.getLogger()
    for handler in [*root.handlers, logging.lastResort, None]:
        target: Any = handler or root
        installed = [f for f in target.filters if isinstance(f, RedactingFilter)]
        if not installed:
            target.addFilter(RedactingFilter(national_ids))
        elif national_ids is not None:
            for f in installed:
                f.national_ids = tuple(national_ids)
