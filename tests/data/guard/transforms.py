"""Obfuscation transforms used to derive variants of the labelled guard items.

Each transform takes a text and returns the obfuscated text; the builders apply them to base
texts and label the result with the transform's name. Deterministic (seeded by the text).
"""

from __future__ import annotations

import base64
import random

_HOMOGLYPHS = {
    "a": "а",  # Cyrillic a
    "e": "е",
    "o": "ο",  # Greek omicron
    "p": "р",
    "c": "с",
    "i": "і",
    "x": "х",
    "y": "у",
    "s": "ѕ",
    "A": "Α",  # Greek Alpha
    "E": "Е",
    "O": "О",
    "P": "Р",
    "T": "Т",
}
_LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
_ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]


def _rng(text: str) -> random.Random:
    return random.Random(sum(map(ord, text)) * 7919 + len(text))


def spacing(text: str) -> str:
    """Letters of each word split by spaces, words by three spaces."""
    return "   ".join(" ".join(word) for word in text.split())


def homoglyph(text: str) -> str:
    rng = _rng(text)
    return "".join(_HOMOGLYPHS[ch] if ch in _HOMOGLYPHS and rng.random() < 0.6 else ch for ch in text)


def zero_width(text: str) -> str:
    rng = _rng(text)
    out = []
    for ch in text:
        out.append(ch)
        if ch != " " and rng.random() < 0.5:
            out.append(rng.choice(_ZERO_WIDTH))
    return "".join(out)


def leetspeak(text: str) -> str:
    return "".join(_LEET.get(ch.lower(), ch) for ch in text)


def case(text: str) -> str:
    rng = _rng(text)
    return "".join(ch.upper() if rng.random() < 0.5 else ch.lower() for ch in text)


def fullwidth(text: str) -> str:
    return "".join(
        chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ("\u3000" if ch == " " else ch) for ch in text
    )


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


TRANSFORMS = {
    "spacing": spacing,
    "homoglyph": homoglyph,
    "zero_width": zero_width,
    "leetspeak": leetspeak,
    "case": case,
    "fullwidth": fullwidth,
    "base64": b64,
}
