"""Find and redact personal data and credentials in text: what is stored, logged or sent out.

`find(text)` returns the non-overlapping `Finding`s in order; `redact(text)` replaces each with
a label (`[EMAIL]`, `[PHONE]`, `[CARD]`, `[IBAN]`, `[US_SSN]`, `[CN_ID]`, `[UK_NINO]`,
`[SECRET]`); `redact_obj` walks dicts, lists and tuples; `redact_messages` returns a redacted
copy of a chat prompt (OpenAI message dicts) for a hosted model.

The detectors are the ones `crewkit.governance.data_classes` already uses for risk tiers (the
regexes, Luhn, mod-97, the resident id check digit) and the credential formats of
`crewkit.redact`; this module adds what redaction needs on top: spans, precedence between
overlapping findings, a boundary rule that keeps digits glued to letters (hex hashes, ids like
`INV-123-45-6789`) out, and its own reading of card digit groups (a card next to other
numbers). Checksums keep ordinary numbers out: a 16-digit number is a card only if it passes
Luhn, an IBAN only if mod 97 and its country's length agree. Speed: regex passes run only in
windows around digits, '@' and credential keywords (~0.05 ms for 2 KB of prose, ~0.2 ms with a
handful of findings, linear in the length).

National identifiers are detected as configured (`profile.pii.national_ids`); the default is
all of `crewkit.settings.NATIONAL_IDS`. Microsoft Presidio was considered and not used: it
needs spaCy and a language model that spaCy downloads at run time, and has no Chinese resident
id recognizer.
"""

from __future__ import annotations

import json
import re
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from crewkit import redact as _secrets
from crewkit.governance.data_classes import (
    _CN_ID,
    _EMAIL,
    _IBAN,
    _JWT,
    _PHONE_CN,
    _PHONE_INTL,
    _PHONE_US,
    _PHONE_WORD,
    _SECRET_WORD,
    _SSN,
    _UK_NI,
    _looks_secret,
    is_card_number,
    is_cn_resident_id,
    is_iban,
)
from crewkit.settings import NATIONAL_IDS

LABELS: dict[str, str] = {
    "secret": "[SECRET]",
    "email": "[EMAIL]",
    "iban": "[IBAN]",
    "cn_resident_id": "[CN_ID]",
    "card": "[CARD]",
    "us_ssn": "[US_SSN]",
    "uk_nino": "[UK_NINO]",
    "phone": "[PHONE]",
}
# Where two findings overlap, the earlier kind in LABELS wins (an e-mail holding digits stays
# an e-mail, a resident id that happens to pass Luhn is not a card).
_RANK = {kind: i for i, kind in enumerate(LABELS)}
SHORTEST = 6  # no finding is shorter ("a@b.co"); shorter strings are passed through at once
_OPAQUE = re.compile(r"(?:sha\d+:)?(?=[0-9a-f-]*[a-f])[0-9a-f-]{16,}")  # a digest or a uuid alone

# IBAN length per country (ISO 13616 registry): mod 97 alone lets 1 in 97 random codes through.
_IBAN_TABLE = (
    "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27 "
    "DK18 DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28 IE22 "
    "IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 MK19 "
    "MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 QA29 RO24 RS22 RU33 SA24 SC31 SD18 "
    "SE24 SI19 SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30"
)
_IBAN_LENGTHS = {entry[:2]: int(entry[2:]) for entry in _IBAN_TABLE.split()}

_DIGIT_RUN = re.compile(r"\d+")
_GROUPS = re.compile(r"\d+(?:[ -]\d+)*")  # digit groups joined by single spaces or hyphens
_GLUE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

# Speed: a regex pass over a text costs ~30 ns a character here, a literal search ~1 ns. So the
# digit-based patterns run only in windows around clusters of digits that have enough digits
# for them, e-mails only around an '@', and credential patterns only where their literal
# start ('sk-', 'AKIA', 'password', '密码', ...) occurs. Each window match is re-read on the
# whole text, so a window's edges never cut or invent a finding.
_TO_ZERO = str.maketrans("123456789", "000000000")
_RUN = re.compile("00+")  # a literal prefix: found at string-search speed
_RIGHT = 4  # a check letter after the digits (a resident id's 'X', an NI number's suffix)


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # a key of LABELS
    start: int
    end: int


def _free(text: str, start: int, end: int) -> bool:
    """Not glued to a word: `4111…` in `ref-4111…` or `ab4111…cd` (a hex hash) is no card."""
    return (start == 0 or text[start - 1] not in _GLUE) and (end == len(text) or text[end] not in _GLUE)


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _clusters(shape: str, gap: int) -> list[tuple[int, int, int]]:
    """(start, end, digits) of each cluster of runs of 2+ digits at most `gap` apart
    (`shape`: the text with every digit made '0')."""
    out: list[tuple[int, int, int]] = []
    for m in _RUN.finditer(shape):
        at, end = m.span()
        if out and at - out[-1][1] <= gap:
            out[-1] = (out[-1][0], end, out[-1][2] + end - at)
        else:
            out.append((at, end, end - at))
    return out


def _matches(pattern: re.Pattern[str], text: str, windows: list[tuple[int, int]]) -> Iterator[re.Match[str]]:
    for start, end in windows:
        for m in pattern.finditer(text, start, end):
            real = pattern.match(text, m.start())  # the match on the whole text, not the window
            if real is not None:
                yield real


# --- numbers --------------------------------------------------------------------------------


def _cards(text: str, windows: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Cards among runs of digit groups (`4111 1111 1111 1111`, `3782 822463 10005`, one group
    of 13-19): each stretch of groups shaped like a card is checked, left to right, so a card
    next to other numbers (an IBAN, a phone, its own security code) is still found. None starts
    inside an IBAN-shaped code (`DE89 3704 …` that failed its check) or in the middle of a
    uniform run of 4-digit groups (a table of numbers). `CARD_CANDIDATE` is not used here: it
    takes up to 19 digits greedily across such neighbours and then misses the card."""
    for m in _matches(_GROUPS, text, windows):
        groups = [g.span() for g in _DIGIT_RUN.finditer(text, m.start(), m.end())]
        code_end = _code_end(text, m.start())
        i = first = next((k for k, g in enumerate(groups) if g[0] >= code_end), len(groups))
        while i < len(groups):
            for j in range(min(len(groups), i + 5), i, -1) if _may_start(text, groups, first, i) else ():
                if _is_card(text, groups[i:j]):
                    yield groups[i][0], groups[j - 1][1]
                    i = first = j
                    break
            else:
                i += 1


def _code_end(text: str, start: int) -> int:
    """Where the code that digits at `start` belong to ends, when they are glued to letters:
    an IBAN-shaped one (valid or not) or the digits' own group; else `start`."""
    if start == 0 or not text[start - 1].isalpha():
        return start
    head = start - 2 if start >= 2 and text[start - 2 : start].isupper() else start
    code = _IBAN.match(text, head)
    return code.end() if code else _DIGIT_RUN.match(text, start).end()


def _may_start(text: str, groups: list[tuple[int, int]], first: int, i: int) -> bool:
    """Not the middle of a table: 4-digit groups all alike from `first` (the start, or the end
    of the last card) through `i`."""
    if i == first:
        return True
    run = groups[first : i + 1]
    seps = {text[a[1] : b[0]] for a, b in zip(run, run[1:], strict=False)}
    return not (len(seps) == 1 and all(end - start == 4 for start, end in run))


def _is_card(text: str, groups: list[tuple[int, int]]) -> bool:
    """13-19 digits printed as a card is: one group, or 4 digits then groups of 4 or 6."""
    sizes = [end - start for start, end in groups]
    if not 13 <= sum(sizes) <= 19:
        return False
    if len(sizes) > 1 and (sizes[0] != 4 or any(n not in (4, 6) for n in sizes[1:-1]) or sizes[-1] > 6):
        return False
    digits = "".join(text[start:end] for start, end in groups)
    return (
        is_card_number(digits) and not is_cn_resident_id(digits) and _free(text, groups[0][0], groups[-1][1])
    )


def _ibans(text: str, windows: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    for m in _matches(_IBAN, text, windows):
        value = m.group()
        while value:  # an IBAN followed by more groups: drop groups from the end
            compact = value.replace(" ", "")
            if _IBAN_LENGTHS.get(compact[:2]) == len(compact) and is_iban(compact):
                if _free(text, m.start(), m.start() + len(value)):
                    yield m.start(), m.start() + len(value)
                break
            value = value.rpartition(" ")[0]


def _plain(pattern: re.Pattern[str], check: Any = None, group: int = 0) -> Any:
    def spans(text: str, windows: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
        for m in _matches(pattern, text, windows):
            if "\n" in m.group():  # a value ends at a line break (a phone's `\s` crosses it)
                line = pattern.match(text, m.start(), m.start() + m.group().index("\n"))
                if line is None:
                    continue
                m = line  # noqa: PLW2901 - the same match, cut at the line break
            if (check is None or check(m.group(group))) and _free(text, *m.span(group)):
                yield m.span(group)

    return spans


# kind, the fewest digits (counting runs of 2+) a value has, how far apart its runs may be (an
# IBAN's letter groups, else punctuation), how far before its first run a match may start
# (a '+', a country code, a keyword such as "phone number is"), its spans
_NUMBERS: tuple[tuple[str, int, int, int, Any], ...] = (
    ("iban", 6, 12, 4, _ibans),
    ("card", 12, 4, 2, _cards),
    ("cn_resident_id", 17, 4, 2, _plain(_CN_ID, is_cn_resident_id)),
    ("us_ssn", 9, 4, 2, _plain(_SSN)),
    ("uk_nino", 6, 4, 4, _plain(_UK_NI)),
    ("phone", 10, 4, 6, _plain(_PHONE_CN)),
    ("phone", 5, 4, 6, _plain(_PHONE_INTL)),
    ("phone", 10, 4, 2, _plain(_PHONE_US)),
    ("phone", 6, 4, 40, _plain(_PHONE_WORD, group=1)),  # "phone: 0612345678", "电话 02012345678"
)
_GAPS = frozenset(n[2] for n in _NUMBERS)


def _numbers(text: str, wanted: set[str], taken: list[tuple[int, int]]) -> Iterator[tuple[str, int, int]]:
    """Numeric findings, kinds in order of precedence; a cluster of digits inside a span found
    before (an e-mail, a secret, an IBAN) is not searched again for a weaker kind."""
    shape = text.translate(_TO_ZERO)
    if "00" not in shape:
        return
    size, clusters = len(text), {gap: _clusters(shape, gap) for gap in _GAPS}
    most = {gap: max(c[2] for c in found) for gap, found in clusters.items()}
    taken = sorted(taken)
    for kind, fewest, gap, left, spans in _NUMBERS:
        if most[gap] < fewest or (kind in NATIONAL_IDS and kind not in wanted):
            continue
        windows = _merge(
            (max(0, s - left), min(size, e + _RIGHT))
            for s, e, digits in clusters[gap]
            if digits >= fewest and not _inside(taken, s, e)
        )
        found = list(spans(text, windows)) if windows else []
        for start, end in found:
            yield kind, start, end
        if found:
            taken = sorted(taken + found)


def _inside(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    i = bisect_right(spans, (start, sys.maxsize)) - 1
    return i >= 0 and spans[i][0] <= start and end <= spans[i][1]


def _emails(text: str) -> Iterator[tuple[str, int, int]]:
    ats, at = [], text.find("@")
    while at >= 0:
        ats.append((max(0, at - 256), min(len(text), at + 300)))
        at = text.find("@", at + 1)
    for m in _matches(_EMAIL, text, _merge(ats)):
        yield "email", m.start(), m.end()


# --- credentials ----------------------------------------------------------------------------

_SECRET_STARTS = (  # where each of crewkit.redact's credential patterns begins, in its order
    ("sk-",),
    ("AKIA", "ASIA"),
    ("gh",),
    ("xox",),
    ("AIza",),
    ("-----BEGIN",),
    ("bearer",),
)
_ASSIGNED = ("api", "x-api", "pass", "secret", "token", "access")
_WORDS = ("api", "pass", "pwd", "pin", "secret", "token", "access")


def _scan(pattern: re.Pattern[str], starts: tuple[str, ...], group: int | str = 0, check: Any = None) -> Any:
    """A credential pattern with the literals its matches begin with (lower case when the
    pattern ignores case); with none that the pattern names, the whole text is scanned."""
    source = pattern.pattern.lower()
    usable = bool(starts) and all(s.lower() in source for s in starts)
    return pattern, (starts if usable else ()), bool(pattern.flags & re.IGNORECASE), group, check


_CREDENTIALS = (
    *(
        _scan(p, s)
        for p, s in zip(_secrets._PATTERNS, (*_SECRET_STARTS, *[()] * len(_secrets._PATTERNS)), strict=False)
    ),
    _scan(_JWT, ("eyJ",)),
    # `api_key=...`: the value, not the name
    _scan(_secrets._ASSIGNMENT, _ASSIGNED, 2, lambda value: value != _secrets.MARK),
    _scan(_SECRET_WORD, (*_WORDS, "密码", "口令", "密钥", "私钥", "秘钥", "令牌"), "value", _looks_secret),
)


# Any literal a credential match starts with, in lower case, searched in the lowered text (a
# superset; ten times faster than IGNORECASE); a pattern scanned whole makes it match anywhere.
_ANY_START = re.compile(
    "|".join(sorted({re.escape(start.lower()) for _, starts, *_ in _CREDENTIALS for start in starts}))
    if all(starts for _, starts, *_ in _CREDENTIALS)
    else ""
)


def _credentials(text: str, env_values: list[str]) -> Iterator[tuple[str, int, int]]:
    for value in env_values:
        at = text.find(value)
        while at >= 0:
            yield "secret", at, at + len(value)
            at = text.find(value, at + len(value))
    lower = text.lower()
    if len(text) < 256 and not _ANY_START.search(lower):  # short text: one pass says "none"
        return
    same_length = len(lower) == len(text)
    for pattern, starts, ignore_case, group, check in _CREDENTIALS:
        if not starts or (ignore_case and not same_length):
            found: Iterable[re.Match[str]] = pattern.finditer(text)
        else:
            found = _anchored(pattern, lower if ignore_case else text, text, starts)
        for m in found:
            if m.group(group) and (check is None or check(m.group(group))):
                yield "secret", *m.span(group)


def _anchored(
    pattern: re.Pattern[str], haystack: str, text: str, starts: tuple[str, ...]
) -> Iterator[re.Match[str]]:
    for literal in starts:
        at = haystack.find(literal)
        while at >= 0:
            m = pattern.match(text, at)
            if m is not None:
                yield m
            at = haystack.find(literal, at + 1)


def _find(text: str, national_ids: Iterable[str], env_values: list[str]) -> list[Finding]:
    if len(text) < SHORTEST or _OPAQUE.fullmatch(text):
        return []
    candidates = [*_credentials(text, env_values), *_emails(text)]
    candidates += _numbers(text, set(national_ids), [(s, e) for _, s, e in candidates])
    if not candidates:
        return []
    # precedence, then the earlier and longer span; keep each that overlaps none kept so far
    candidates.sort(key=lambda c: (_RANK[c[0]], c[1], c[1] - c[2]))
    starts: list[int] = []
    kept: list[Finding] = []
    for kind, start, end in candidates:
        i = bisect_left(starts, start)
        if i < len(starts) and starts[i] < end:
            continue
        if i > 0 and kept[i - 1].end > start:
            continue
        starts.insert(i, start)
        kept.insert(i, Finding(kind, start, end))
    return kept


# --- API ------------------------------------------------------------------------------------


def find(text: str, national_ids: Iterable[str] = NATIONAL_IDS) -> list[Finding]:
    """The personal data and credentials in `text`: non-overlapping, in order of position."""
    if not text or not isinstance(text, str):
        return []
    return _find(text, national_ids, _secrets.env_secrets())


def _apply(text: str, findings: list[Finding]) -> str:
    parts: list[str] = []
    at = 0
    for f in findings:
        parts += (text[at : f.start], LABELS[f.kind])
        at = f.end
    parts.append(text[at:])
    return "".join(parts)


def redact(text: str, national_ids: Iterable[str] = NATIONAL_IDS) -> str:
    """`text` with each finding replaced by its label (`[EMAIL]`, `[CARD]`, ...)."""
    if not text or not isinstance(text, str):
        return text
    return _apply(text, _find(text, national_ids, _secrets.env_secrets()))


def _walk(value: Any, ids: tuple[str, ...], env_values: list[str]) -> Any:
    if isinstance(value, str):
        return _apply(value, _find(value, ids, env_values)) if value else value
    if isinstance(value, dict):
        return {k: _walk(v, ids, env_values) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_walk(v, ids, env_values) for v in value)
    return value


def redact_obj(value: Any, national_ids: Iterable[str] = NATIONAL_IDS) -> Any:
    """`redact` on every string inside dicts, lists and tuples (keys are kept as they are)."""
    return _walk(value, tuple(national_ids), _secrets.env_secrets())


def _message(message: Any, ids: tuple[str, ...], env_values: list[str]) -> Any:
    if not isinstance(message, dict):
        return _walk(message, ids, env_values)
    out = dict(message)
    content = message.get("content")
    if isinstance(content, str):
        out["content"] = _walk(content, ids, env_values)
    elif isinstance(content, list):  # OpenAI content parts: text parts redacted, images kept
        out["content"] = [
            {**part, "text": _walk(part["text"], ids, env_values)}
            if isinstance(part, dict) and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
    if isinstance(message.get("tool_calls"), list):
        out["tool_calls"] = [_tool_call(call, ids, env_values) for call in message["tool_calls"]]
    return out


def _tool_call(call: Any, ids: tuple[str, ...], env_values: list[str]) -> Any:
    """A tool call with its arguments redacted and still valid JSON (ids and names kept)."""
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        return call
    function = dict(call["function"])
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            function["arguments"] = _walk(arguments, ids, env_values)
        else:
            function["arguments"] = json.dumps(_walk(parsed, ids, env_values), ensure_ascii=False)
    elif isinstance(arguments, dict | list):
        function["arguments"] = _walk(arguments, ids, env_values)
    return {**call, "function": function}


def redact_messages(
    messages: str | list[dict[str, Any]], national_ids: Iterable[str] = NATIONAL_IDS
) -> str | list[dict[str, Any]]:
    """A redacted copy of a prompt (the input is never changed): message contents (strings, or
    OpenAI content parts with `text`) and tool-call arguments redacted; roles, names, tool call
    ids and the messages' structure kept."""
    ids, env_values = tuple(national_ids), _secrets.env_secrets()
    if isinstance(messages, str):
        return _walk(messages, ids, env_values)
    return [_message(m, ids, env_values) for m in messages]
