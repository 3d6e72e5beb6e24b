"""Sort a failed model call: worth another model (transient) or stop now (auth, bad request).

A timeout, a rate limit, a dropped connection or a server error (5xx) may pass, so `RoleLLM`
tries the role's fallbacks. A refused key (401/403) or a refused request (400/404/422: an
unknown model, invalid params) fails the same way on every retry: the run stops with one line
naming the role, the model and what to fix.

The SDKs CrewAI calls natively (openai, anthropic, google-genai, httpx underneath) are told
apart by exception type and by status code; CrewAI often wraps them (`ValueError("Model X not
found") from NotFoundError`, `ConnectionError(...) from APIConnectionError`), so the whole
`__cause__`/`__context__` chain is read. SDK classes are looked up only if the SDK is already
imported: an SDK that is not loaded cannot have raised.
"""

from __future__ import annotations

import re
import sys
from typing import Literal

Kind = Literal["transient", "auth", "request", "unknown"]

# Class names per kind, checked against the SDK modules that define them.
_SDK_CLASSES: dict[str, dict[str, Kind]] = {
    "openai._exceptions": {
        "AuthenticationError": "auth",
        "PermissionDeniedError": "auth",
        "BadRequestError": "request",
        "NotFoundError": "request",
        "UnprocessableEntityError": "request",
        "RateLimitError": "transient",
        "InternalServerError": "transient",
        "APITimeoutError": "transient",
        "APIConnectionError": "transient",
    },
    "anthropic._exceptions": {  # some classes are not re-exported by `anthropic`
        "AuthenticationError": "auth",
        "PermissionDeniedError": "auth",
        "BadRequestError": "request",
        "NotFoundError": "request",
        "UnprocessableEntityError": "request",
        "RequestTooLargeError": "request",
        "RateLimitError": "transient",
        "InternalServerError": "transient",
        "ServiceUnavailableError": "transient",
        "OverloadedError": "transient",
        "DeadlineExceededError": "transient",
        "APITimeoutError": "transient",
        "APIConnectionError": "transient",
    },
    "httpx._exceptions": {"TimeoutException": "transient", "TransportError": "transient"},
    "google.genai.errors": {"ServerError": "transient"},  # ClientError: by its code
}
# Gemini answers a bad key with 400 INVALID_ARGUMENT "API key not valid": the text decides.
_AUTH_TEXT = re.compile(
    r"(?i)\b(api[ _-]?key|invalid[ _-]?(?:x-)?api|unauthori[sz]ed|authenticat\w*|credential\w*|"
    r"permission[ _-]denied|incorrect api key|access denied)\b"
)
_MAX_CHAIN = 8


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an SDK exception carries (`status_code`, `code`, `response.status_code`)."""
    for value in (
        getattr(exc, "status_code", None),
        getattr(getattr(exc, "response", None), "status_code", None),
        getattr(exc, "code", None) if _is_genai(exc) else None,
        getattr(exc, "status", None) if isinstance(getattr(exc, "status", None), int) else None,
    ):
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    return None


def _is_genai(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("google.genai")


def _by_status(status: int, text: str) -> Kind:
    if status in (401, 402, 403, 407):
        return "auth"
    if status in (408, 409, 425, 429) or status >= 500:
        return "transient"
    if 400 <= status < 500:
        return "auth" if _AUTH_TEXT.search(text) else "request"
    return "unknown"


def _by_type(exc: BaseException) -> Kind:
    for module_name, classes in _SDK_CLASSES.items():
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for class_name, kind in classes.items():
            cls = getattr(module, class_name, None)
            if isinstance(cls, type) and isinstance(exc, cls):
                return kind
    if isinstance(exc, TimeoutError | ConnectionError):
        return "transient"
    return "unknown"


def chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from (cause, else context), outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < _MAX_CHAIN:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def classify(exc: BaseException) -> Kind:
    """What kind of failure `exc` is; the first link of its chain that says decides."""
    for link in chain(exc):
        status = status_of(link)
        kind = _by_status(status, str(link)) if status is not None else _by_type(link)
        if kind != "unknown":
            return kind
    return "unknown"


def describe(exc: BaseException) -> str:
    """`ClassName (status): first line of the message`, for one-line errors (redact it after)."""
    link = next((e for e in chain(exc) if status_of(e) is not None), exc)
    status = status_of(link)
    text = " ".join(str(link).split())
    if len(text) > 240:
        text = text[:237] + "..."
    head = type(link).__name__ + (f" {status}" if status is not None else "")
    return f"{head}: {text}" if text else head
