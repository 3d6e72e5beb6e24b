"""Grounded verification: is each claim of a result supported by the sources the run used?

`check(result, sources, task=...)` splits the result into claims (sentences and list items with
content; code, generic lines and lines that only restate the task are not counted) and looks
for each claim's best supporting passage among the sources (windows of up to three sentences):

- deterministic layer: the claim's terms that the task does not already give (lower-cased,
  NFKC-normalised, lightly stemmed English words; character unigrams and bigrams for Chinese
  and Japanese) must mostly occur in one passage; every number in the claim must occur there
  (1,000 = 1000, 3.50 = 3.5) and every name (a capitalised word inside a sentence, an acronym)
  there or in the task; a claim that a clause of the passage says with the other polarity
  ("are not refunded" against "are refunded") is unsupported;
- semantic layer (optional, `embedder=`): a claim that passes the numbers and names but whose
  wording differs (a paraphrase) is supported when the embedder puts it close to a passage
  (the profile's `grounding.semantic`; on tests/data/grounding it adds little, see
  bench/grounding.py: related but unsupported claims sit as close as paraphrases).

No network and no model call. `sources_for_run(store, run_id, extra=[...])` gives the run's
sources: the tool outputs journalled in state.db (a delegation's answer is the team's own work,
not a source) plus whatever else the caller passes (recalled memory, knowledge). The result is
a `Grounding`: supported and unsupported claims, each with its best source and the evidence.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crewkit.governance.acceptance import prose

# ---------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    """A text the run used: a tool's output, a recalled memory, a knowledge passage."""

    id: str  # "tool:2" / "memory:<uuid>" / "knowledge:1": unique within a check
    kind: str  # tool | memory | knowledge | text
    text: str
    label: str = ""  # for people: the tool's name, the memory's scope...


# Tools whose output is the team's own work (a coworker's answer), never evidence for it.
_NOT_SOURCES = {"delegate_work_to_coworker", "ask_question_to_coworker"}


def _tool_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def as_sources(items: Iterable[Source | str | dict[str, Any]], kind: str = "text") -> list[Source]:
    """Sources from texts, dicts with `text` (and `id`, `kind`, `label`) or Sources."""
    out: list[Source] = []
    for n, item in enumerate(items, start=1):
        if isinstance(item, Source):
            out.append(item)
        elif isinstance(item, str):
            out.append(Source(f"{kind}:{n}", kind, item))
        else:
            text = str(item.get("text") or "")
            k = str(item.get("kind") or kind)
            out.append(Source(str(item.get("id") or f"{k}:{n}"), k, text, str(item.get("label") or "")))
    return [s for s in out if s.text.strip()]


def sources_for_run(
    store: Any, run_id: str, extra: Iterable[Source | str | dict[str, Any]] = ()
) -> list[Source]:
    """The run's tool outputs from the call journal (in call order), then `extra`.

    Only the journal rows of the run as it stands count: a rollback drops the rows made after
    the checkpoint it returns to, so a rolled-back step's tool outputs are no longer sources.
    """
    from crewkit.runtime.journal import decode

    sources: list[Source] = []
    if store is not None:
        rows = store.read(
            "SELECT key, value FROM journal WHERE run_id = ? AND kind = 'tool' ORDER BY created, rowid",
            (run_id,),
        )
        for n, (key, value) in enumerate(rows, start=1):
            parts = str(key).split(":")
            name = ":".join(parts[2:-2]) if len(parts) >= 5 else "tool"
            if _tool_key(name) in _NOT_SOURCES:
                continue
            try:
                answer = decode(json.loads(value))
            except (TypeError, ValueError):
                continue
            text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False, default=str)
            if text.strip():
                sources.append(Source(f"tool:{n}", "tool", text, name))
    seen = {s.id for s in sources}
    for s in as_sources(extra):
        if s.id in seen:
            s = Source(f"{s.id}#{len(sources) + 1}", s.kind, s.text, s.label)
        seen.add(s.id)
        sources.append(s)
    return sources


# ---------------------------------------------------------------- text normalisation

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_RUN = re.compile(f"[{_CJK}]+")
_LATIN_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
_NUMBER = re.compile(r"(?<![A-Za-z0-9_.])[-−]?\d[\d,]*(?:\.\d+)?(?![\d])")
_STOPWORDS = """a an the and or but if then else of to in on at by for with from into onto over under about as is are
    was were be been being am do does did done has have had having it its this that these those there here
    which who whom whose what when where why how all any both each few more most other some such no nor
    only own same so than too very can will just should would could may might must shall also not never
    i me my we our you your he him his she her they them their one ones s t d ll m re ve get got make
    made use used using like well yes many much per via up down out off again further once while during
    before after above below between through because until against among within without upon around"""
_STOP = frozenset(_STOPWORDS.split())
# words that make a sentence a claim about the answer itself rather than about the world
_GENERIC_WORDS = """answer question task following summary conclusion overall note important hope help helps
    helpful let know feel free please thank thanks sure certainly course information detail details
    example examples above below mentioned based provided given context source sources here"""
_GENERIC = frozenset(_GENERIC_WORDS.split())
_GENERIC_LINE = re.compile(
    r"(?i)\bhope (?:this|that|it) helps\b|\blet me know\b|\bfeel free\b|\bhappy to help\b|"
    r"\bif you have (?:any )?(?:more |other |further )?questions\b|希望(?:这|以上|我的)?.{0,6}(?:帮助|有用)|"
    r"如(?:果)?(?:您|你)?(?:还)?有(?:任何|其他)?(?:问题|疑问)|请随时|以下是|如下[:：]?$"
)
_CJK_FUNCTION = set(
    "的了是在和与及或也都就而但被把这那个一有为对从到以于等之其此它他她们我你吗呢吧啊么所将会可能要并且"
)
_NEGATION_EN = re.compile(r"(?i)\b(?:not|no|never|neither|nor|cannot)\b|n['’]t\b")
_NEGATION_ZH = re.compile(r"没有|没|未|不是|并非|从未|无法|不")
_NOT_NEGATION_ZH = re.compile(
    r"不同|不过|不断|不仅|不少|不久|不错|不论|不管|无论|未来|不得不|不(?:低|高|少|多|大|小|超过|晚|早)于|不超过"
)
_NOT_NEGATION_EN = re.compile(  # bounds and emphasis, not a denial
    r"(?i)no(?:t)? (?:more|less|later|earlier|fewer|longer|sooner|greater) than|not only|no doubt"
)
# where a sentence's clauses part: the polarity of "because the review is not finished" is not the
# polarity of "the launch moves to 8 December"
_CLAUSE = re.compile(
    r"[,，;；:：]|(?i:\b(?:because|but|although|though|while|whereas|since|so|and|which|unless)\b)|因为|由于|但是|但|而且|而|所以"
)
NEGATION_COVER = 0.7  # a clause that says this much of a claim with the other polarity contradicts it


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "")
    return text.replace("’", "'").replace("−", "-")


def _stem(word: str) -> str:
    w = word
    if w.endswith("'s"):
        w = w[:-2]
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ches", "ch"), ("shes", "sh"), ("xes", "x")):
        if w.endswith(suffix) and len(w) > len(suffix) + 2:
            return w[: -len(suffix)] + keep
    if w.endswith("s") and not w.endswith(("ss", "us", "is")) and len(w) > 3:
        w = w[:-1]
    if w.endswith("ing") and len(w) > 5:
        w = w[:-3]
    elif (w.endswith("ed") and len(w) > 4) or (w.endswith("ly") and len(w) > 5):
        w = w[:-2]
    if w.endswith("e") and len(w) > 4:  # "completed"/"complete" -> "complet"
        w = w[:-1]
    return w


def numbers(text: str) -> set[str]:
    """The numbers in `text`, normalised: 1,000 -> 1000, 3.50 -> 3.5, -2 -> -2."""
    found = set()
    for raw in _NUMBER.findall(normalise(text)):
        value = raw.replace(",", "").replace("−", "-")
        if "." in value:
            value = value.rstrip("0").rstrip(".")
        found.add(value.lstrip("+") or "0")
    return found


def _latin_words(text: str) -> list[str]:
    return [w.lower() for w in _LATIN_WORD.findall(_CJK_RUN.sub(" ", text))]


def terms(text: str) -> set[str]:
    """Content terms: stemmed non-stopwords, numbers, CJK unigrams (non-function) and bigrams."""
    text = normalise(text)
    out = {_stem(w) for w in _latin_words(text) if w not in _STOP and len(w) > 1}
    out |= {f"#{n}" for n in numbers(text)}
    for run in _CJK_RUN.findall(text):
        out |= {ch for ch in run if ch not in _CJK_FUNCTION}
        out |= {
            run[i : i + 2]
            for i in range(len(run) - 1)
            if not (run[i] in _CJK_FUNCTION and run[i + 1] in _CJK_FUNCTION)
        }
    return out


def names(sentence: str) -> set[str]:
    """Names in a Latin-script sentence: capitalised words not opening it, acronyms, CamelCase."""
    found = set()
    words = list(re.finditer(r"[^\W\d_][\w'-]*", normalise(sentence)))
    for i, m in enumerate(words):
        w = re.sub(r"'s$", "", m.group())
        before = sentence[: m.start()].rstrip()
        opens = i == 0 or before.endswith((":", ".", "!", "?", "\n", '"', "(", "-", "*", "#"))
        acronym = w.isupper() and len(w) >= 2 and w.isascii()
        capitalised = w[:1].isupper() and not opens and w.lower() not in _STOP
        if acronym or capitalised or re.match(r"[a-z]+[A-Z]", w):
            found.add(w.lower())
    return found


def _word_set(text: str) -> set[str]:
    out = set()
    for w in re.findall(r"[^\W\d_][\w'-]*", normalise(text)):
        w = re.sub(r"'s$", "", w.lower())
        out.add(w)
        if "-" in w:  # "requires-python" names python too
            out.update(part for part in w.split("-") if part)
    return out


def _negated(text: str) -> bool:
    text = normalise(text)
    return bool(
        _NEGATION_EN.search(_NOT_NEGATION_EN.sub(" ", text))
        or _NEGATION_ZH.search(_NOT_NEGATION_ZH.sub("", text))
    )


# ---------------------------------------------------------------- claims

_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d+[.)]|[（(]?[一二三四五六七八九十\d]+[、)）])\s+")
# a sentence ends at . ! ? followed by space and not inside a number or a short abbreviation,
# or at CJK full stops (no space needed)
_SENTENCE_END = re.compile(r"(?<=[。！？；])|(?<=[.!?;])\s+")
_ABBREVIATION = re.compile(
    r"(?:\b[A-Z]|(?i:\be\.g|\bi\.e|\bvs|\bdr|\bmr|\bmrs|\bms|\bprof|\bst|\bfig|\bapprox|\bca))\.$"
)
_MARKUP = re.compile(r"[*_`#>|]+")
_CITATION = re.compile(
    r"[ \t]*\[\d+(?:\s*[,-]\s*\d+)*\]"
)  # "[2]", "[1, 3]": a pointer to a source, not a claim


def sentences(text: str) -> list[str]:
    out = []
    for line in (text or "").splitlines():
        line = " ".join(_MARKUP.sub(" ", _BULLET.sub("", line)).split())
        if not line:
            continue
        parts: list[str] = []
        for piece in _SENTENCE_END.split(line):
            piece = (piece or "").strip()
            if not piece:
                continue
            if parts and _ABBREVIATION.search(parts[-1]):
                parts[-1] += " " + piece  # "Dr. Smith", "e.g. this": one sentence
            else:
                parts.append(piece)
        out += parts
    return out


@dataclass(frozen=True)
class Claim:
    text: str
    subtask: str | None = None


def split_claims(result: str, subtask: str | None = None) -> list[Claim]:
    """Sentences and list items of the result's prose (code blocks and code lines left out)."""
    body = _CITATION.sub("", prose(_FENCE.sub("\n", result or "")))
    return [Claim(s, subtask) for s in sentences(body)]


def _kind_of(claim: str, task_terms: set[str]) -> str:
    """'claim' when it says something checkable, else 'generic' or 'restates_task'."""
    if _GENERIC_LINE.search(claim):
        return "generic"
    mine = terms(claim)
    latin = {t for t in mine if t.isascii() and not t.startswith("#")}
    cjk = {t for t in mine if not t.isascii()}
    has_number = any(t.startswith("#") for t in mine)
    content = {t for t in latin if t not in _GENERIC} | {t for t in cjk if len(t) == 2}
    if not has_number and len(content) < (1 if names(claim) else 2):
        return "generic"
    if claim.rstrip().endswith((":", "：")) and not has_number and len(content) < 5:
        return "generic"  # a heading or the lead-in of a list
    novel = mine - task_terms
    novel_content = {
        t for t in novel if t.startswith("#") or (t not in _GENERIC and (t.isascii() or len(t) == 2))
    }
    if not novel_content:
        return "restates_task"
    return "claim"


# ---------------------------------------------------------------- passages


@dataclass(frozen=True)
class _Passage:
    source: Source
    text: str
    terms: frozenset[str]
    numbers: frozenset[str]
    words: frozenset[str]
    sentences: tuple[str, ...]
    prefixes: frozenset[str]  # 6-letter prefixes of its long Latin terms (employs ~ employees)


def _passages(sources: Sequence[Source], width: int = 3) -> list[_Passage]:
    out = []
    for source in sources:
        parts = sentences(source.text) or [source.text]
        for i in range(len(parts)):
            chunk = parts[i : i + width]
            text = " ".join(chunk)
            out.append(
                _Passage(
                    source,
                    text,
                    frozenset(terms(text)),
                    frozenset(numbers(text)),
                    frozenset(_word_set(text)),
                    tuple(chunk),
                    frozenset(t[:6] for t in terms(text) if len(t) >= 6 and t.isascii()),
                )
            )
            if i + width >= len(parts):
                break
    return out


# ---------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class ClaimCheck:
    claim: str
    subtask: str | None
    supported: bool
    score: float  # share of the claim's new terms found in the best passage (0..1)
    source: str | None = None  # the best source's id
    source_label: str = ""
    evidence: str = ""  # the best passage, shortened
    reason: str = ""  # why it is unsupported
    semantic: float | None = None  # the embedder's cosine with the best passage, when asked

    def as_dict(self) -> dict[str, Any]:
        out = {
            "claim": self.claim,
            "subtask": self.subtask,
            "supported": self.supported,
            "score": round(self.score, 3),
            "source": self.source,
            "source_label": self.source_label,
            "evidence": self.evidence,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.semantic is not None:
            out["semantic"] = round(self.semantic, 3)
        return out


@dataclass(frozen=True)
class Grounding:
    checks: list[ClaimCheck] = field(default_factory=list)
    skipped: int = 0  # generic sentences and restatements of the task: not counted
    sources: int = 0

    @property
    def checked(self) -> bool:
        """False when the run used no sources: nothing to ground the result in."""
        return self.sources > 0

    @property
    def supported(self) -> list[ClaimCheck]:
        return [c for c in self.checks if c.supported]

    @property
    def unsupported(self) -> list[ClaimCheck]:
        return [c for c in self.checks if not c.supported] if self.checked else []

    @property
    def unsupported_share(self) -> float:
        return len(self.unsupported) / len(self.checks) if self.checks and self.checked else 0.0

    def fails(self, require: bool, max_unsupported: int) -> bool:
        return require and self.checked and len(self.unsupported) > max_unsupported

    @property
    def summary(self) -> str:
        if not self.checked:
            return "grounding: not checked, the run used no sources (tool outputs, knowledge, memory)"
        if not self.checks:
            return f"grounding: no checkable claims ({self.skipped} generic or restating the task)"
        n = len(self.unsupported)
        return (
            f"grounding: {len(self.checks) - n} of {len(self.checks)} claims supported by {self.sources} source(s)"
            + (f", {n} unsupported" if n else "")
        )

    def feedback(self, limit: int = 3) -> list[str]:
        """What to fix, per unsupported claim (its subtask label first)."""
        out = []
        for c in self.unsupported[:limit]:
            label = f"{c.subtask}: " if c.subtask else ""
            quoted = c.claim if len(c.claim) <= 100 else c.claim[:97] + "..."
            out.append(
                f'{label}the sources do not support "{quoted}" ({c.reason}); '
                "state only what the sources say, or drop it"
            )
        return out

    def as_record(self, require: bool = False, max_unsupported: int = 0) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "sources": self.sources,
            "claims": len(self.checks),
            "skipped": self.skipped,
            "supported": len(self.supported) if self.checked else 0,
            "unsupported": [c.as_dict() for c in self.unsupported],
            "supported_claims": [c.as_dict() for c in self.supported] if self.checked else [],
            "required": require,
            "max_unsupported": max_unsupported,
            "failed": self.fails(require, max_unsupported),
            "summary": self.summary,
        }


# thresholds: share of the claim's new terms that must be found in one passage
LEXICAL = 0.6
LEXICAL_CJK = 0.55
# cosine for a paraphrase that passes numbers and names, per embedder class (set on
# tests/data/grounding: topic-related unsupported claims score close to paraphrases, so these
# are high; bench/grounding.py shows what the semantic layer adds)
SEMANTIC = {"UseEmbedder": 0.5, "OnnxEmbedder": 0.75}
SEMANTIC_DEFAULT = 0.75
SEMANTIC_FLOOR = 0.3  # a claim below this lexical share is never rescued by the embedder


def _weights(novel: set[str], claim_names: set[str]) -> dict[str, float]:
    """Numbers and names weigh double, a CJK character half (its bigrams carry the meaning)."""
    stems = {_stem(n) for n in claim_names}
    out = {}
    for t in novel:
        if t.startswith("#") or t in stems:
            out[t] = 2.0
        elif len(t) == 1 and not t.isascii():
            out[t] = 0.5
        else:
            out[t] = 1.0
    return out


def _score(weights: dict[str, float], passage: _Passage) -> float:
    if not weights:
        return 1.0
    found = 0.0
    for t, w in weights.items():
        if t in passage.terms:
            found += w
        elif len(t) >= 6 and t[:6] in passage.prefixes:
            found += 0.75 * w  # the same word, another form the stemmer missed
    return found / sum(weights.values())


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check(
    result: str | Sequence[tuple[str | None, str]],
    sources: Sequence[Source | str | dict[str, Any]],
    *,
    task: str = "",
    embedder: Any = None,
) -> Grounding:
    """Check every claim of `result` (a text, or (subtask id, text) pairs) against `sources`."""
    pieces = [(None, result)] if isinstance(result, str) else list(result)
    srcs = as_sources(sources)
    task_terms = terms(task)
    task_words = _word_set(task)
    passages = _passages(srcs)
    claims: list[Claim] = []
    skipped = 0
    for subtask, text in pieces:
        for claim in split_claims(text, subtask):
            if _kind_of(claim.text, task_terms) == "claim":
                claims.append(claim)
            else:
                skipped += 1
    if not srcs:
        return Grounding(
            [ClaimCheck(c.text, c.subtask, False, 0.0, reason="no sources") for c in claims], skipped, 0
        )

    checks: list[ClaimCheck] = []
    rescue: list[tuple[int, list[_Passage]]] = []  # claims the embedder may still support
    for claim in claims:
        mine = terms(claim.text)
        novel = mine - task_terms or mine
        cjk = any(not t.isascii() for t in novel)
        threshold = LEXICAL_CJK if cjk else LEXICAL
        wanted_numbers = numbers(claim.text)
        wanted_names = names(claim.text) - task_words
        weights = _weights(novel, names(claim.text))
        ranked = sorted(passages, key=lambda p: _score(weights, p), reverse=True)
        best: tuple[float, _Passage, str] | None = None  # the best passage that passes the hard checks
        first_reason = ""
        for p in ranked[:8]:
            score = _score(weights, p)
            reason = ""
            missing_numbers = sorted(wanted_numbers - p.numbers)
            missing_names = sorted(n for n in wanted_names if n not in p.words)
            if missing_numbers:
                reason = f"number {', '.join(missing_numbers)} is not in the sources"
            elif missing_names:
                reason = f"'{missing_names[0]}' is not in the sources"
            elif _contradicts(claim.text, weights, p):
                reason = "the sources say the opposite"
            if reason:
                first_reason = first_reason or reason
                continue
            best = (score, p, "")
            break
        top = ranked[0] if ranked else None
        if best is not None and best[0] >= threshold:
            p = best[1]
            checks.append(
                ClaimCheck(
                    claim.text, claim.subtask, True, best[0], p.source.id, p.source.label, _short(p.text)
                )
            )
            continue
        if best is not None:
            score, p, _ = best
            reason = f"only {score:.0%} of its terms are in the best passage"
            checks.append(
                ClaimCheck(
                    claim.text,
                    claim.subtask,
                    False,
                    score,
                    p.source.id,
                    p.source.label,
                    _short(p.text),
                    reason,
                )
            )
            if embedder is not None and score >= SEMANTIC_FLOOR:
                ok = [
                    q
                    for q in ranked[:8]
                    if not _hard_failure(claim.text, wanted_numbers, wanted_names, weights, q)
                ]
                rescue.append((len(checks) - 1, ok[:3]))
            continue
        p = top
        checks.append(
            ClaimCheck(
                claim.text,
                claim.subtask,
                False,
                _score(weights, p) if p else 0.0,
                p.source.id if p else None,
                p.source.label if p else "",
                _short(p.text) if p else "",
                first_reason or "nothing in the sources matches it",
            )
        )
    if embedder is not None and rescue:
        checks = _semantic(checks, rescue, embedder)
    return Grounding(checks, skipped, len(srcs))


def _hard_failure(
    claim: str, wanted_numbers: set[str], wanted_names: set[str], weights: dict[str, float], p: _Passage
) -> bool:
    return bool(
        wanted_numbers - p.numbers
        or any(n not in p.words for n in wanted_names)
        or _contradicts(claim, weights, p)
    )


def _contradicts(claim: str, weights: dict[str, float], p: _Passage) -> bool:
    """A clause of the passage says nearly all the claim says with the other polarity ("are not
    refunded" against "are refunded"), and no clause says it with the claim's."""
    total = sum(weights.values())
    if not total:
        return False
    polarity = _negated(claim)
    agree = disagree = False
    for sentence in p.sentences:
        for clause in _CLAUSE.split(sentence):
            if not clause or not clause.strip():
                continue
            found = terms(clause)
            if sum(w for t, w in weights.items() if t in found) / total >= NEGATION_COVER:
                if _negated(clause) == polarity:
                    agree = True
                else:
                    disagree = True
    return disagree and not agree


def _semantic(
    checks: list[ClaimCheck], rescue: list[tuple[int, list[_Passage]]], embedder: Any
) -> list[ClaimCheck]:
    """Claims that passed the numbers and names but not the wording: supported when the embedder
    puts them close to one of their best passages."""
    texts: list[str] = []
    for index, passages in rescue:
        texts.append(checks[index].claim)
        texts += [p.text for p in passages]
    vectors = embedder.embed_documents(texts)
    threshold = SEMANTIC.get(type(embedder).__name__, SEMANTIC_DEFAULT)
    out = list(checks)
    at = 0
    for index, passages in rescue:
        claim_vec = vectors[at]
        sims = [
            sum(a * b for a, b in zip(claim_vec, vectors[at + 1 + j], strict=False))
            for j in range(len(passages))
        ]
        at += 1 + len(passages)
        if not sims:
            continue
        j = max(range(len(sims)), key=lambda k: sims[k])
        c = out[index]
        if sims[j] >= threshold:
            p = passages[j]
            out[index] = ClaimCheck(
                c.claim,
                c.subtask,
                True,
                c.score,
                p.source.id,
                p.source.label,
                _short(p.text),
                semantic=sims[j],
            )
        else:
            out[index] = ClaimCheck(
                c.claim,
                c.subtask,
                False,
                c.score,
                c.source,
                c.source_label,
                c.evidence,
                c.reason,
                semantic=sims[j],
            )
    return out


def strip_unsupported(result: str, grounding: Grounding) -> str:
    """The result without its unsupported claims (each removed where it stands; code kept)."""
    out = result
    for c in grounding.unsupported:
        out = _remove(out, c.claim)
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+(?=\n|$)", "", out)).strip()


def _remove(text: str, claim: str) -> str:
    """Remove one claim (as `sentences` produced it: markup gone) from the text it came from."""
    words = re.findall(r"\w+|[^\w\s]", claim)
    if not words:
        return text
    gap = r"(?:[\s*_`#>|]|\[\d+(?:\s*[,-]\s*\d+)*\])*"  # markup and citations that split_claims dropped
    pattern = gap.join(re.escape(w) for w in words)
    m = re.search(pattern, text)
    if not m:
        return text
    start, end = m.start(), m.end()
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    rest = _MARKUP.sub("", _BULLET.sub("", text[line_start:start] + text[end:line_end])).strip()
    if not rest:  # the claim was the whole line (a list item): drop the line
        return text[:line_start] + text[line_end + 1 :]
    return text[:start].rstrip(" ") + (" " if text[:start].strip() else "") + text[end:].lstrip(" ")
