"""Short-term memory: fit a model call's messages into a token budget, whole messages only.

`fit(messages, budget, counter, keep_recent=4, policy="summarise")` returns the messages to send
(`Fitted`, with what was left out and how many tokens that saved):

- Kept verbatim, always: every system message and the newest `keep_recent` messages (widened to
  whole tool exchanges: an assistant turn that called tools is never separated from the tool
  results that answer it, so the list stays valid for every provider).
- Older material is reduced oldest first, the conversation's first user message (the task's own
  prompt) last: `summarise` folds it into one deterministic extractive summary message (each
  message's first sentence or two and its key lines, `Action:` / `Final Answer:` ..., newest
  first when room is short) put where that material was; `trim` drops whole messages. As little
  as needed goes: the newest older messages stay verbatim while the budget allows.
- When the conversation alone cannot be made to fit because the task's own prompt carries
  CrewAI's context from earlier tasks (their outputs, between CrewAI's dividers), the older of
  those outputs are summarised (or, `trim`, left out) the same way, oldest first; the newest is
  kept whole.
- A message is never cut in its middle. When even the kept part does not fit,
  `ContextBudgetExceeded` says which budget, how many tokens, and what to change.

The summary is extractive on purpose, not a call to the role's model: it costs no tokens or time,
is the same on every resume (the call journal keys calls by what was sent), cannot be talked
into anything by the text it summarises, and the embedded 135M model summarises worse than the
first lines do.

Tokens are counted by a `Counter`: `LlamaCounter` uses the embedded model's own tokenizer and
chat template (llama_cpp's `Llama.tokenize` on the model the role already shares; nothing is
loaded twice), `EstimateCounter` the documented estimate for hosted models
(`crewkit.governance.budget.prompt_tokens`: a quarter of the ASCII characters plus one per other
character (CJK takes about one token each), plus 4 per message; nothing is downloaded).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from crewkit.errors import CrewkitError

LLAMA_TURN_TOKENS = 8  # a chat-template turn's markers (<|im_start|>role ... <|im_end|>) and then some
LLAMA_FIXED_TOKENS = 64  # a template's own text (a default system line) in the byte bound
UNIT_CHARS = 280  # the most one message contributes to a summary
_KEY_LINE = re.compile(
    r"^\s*(Final Answer|Answer|Action|Action Input|Result|Conclusion|Decision|Summary)\s*:", re.I
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？；])")
_MAX_CACHE = 4096


class ContextBudgetExceeded(CrewkitError):
    """Even the part of a call that is always kept (system + newest messages) exceeds the budget.

    `kept` names that part ("the system prompt and the 4 newest messages"), `tokens` its size,
    `budget` the budget it exceeds, `exact` whether the model's tokenizer counted them."""

    exit_code = 2

    def __init__(
        self, message: str, kept: str = "", tokens: int = 0, budget: int = 0, exact: bool = False
    ) -> None:
        super().__init__(message)
        self.kept, self.tokens, self.budget, self.exact = kept, tokens, budget, exact


class Counter(Protocol):
    """Token counts for one model: `exact` when it is the model's own tokenizer."""

    exact: bool
    turn_tokens: int

    def prompt(self, messages: list[dict[str, Any]]) -> int: ...
    def text(self, text: str) -> int: ...
    def upper(self, messages: list[dict[str, Any]]) -> int: ...


def _text_bytes(messages: list[Any], chars: bool = False) -> int:
    """UTF-8 bytes (or characters) of the messages' texts: the hot path's bound, kept cheap."""
    n = 0
    for m in messages:
        content = m.get("content") if type(m) is dict else None
        if type(content) is str and not m.get("tool_calls"):
            n += len(content) if chars or content.isascii() else len(content.encode("utf-8", "surrogatepass"))
        else:
            text = message_text(m)
            n += len(text) if chars else len(text.encode("utf-8", "surrogatepass"))
    return n


def message_text(message: Any) -> str:
    """The text a message carries: its content (text parts of a list) and any tool calls' JSON."""
    if not isinstance(message, dict):
        return str(message)
    content = message.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "\n".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    else:
        text = str(content)
    calls = message.get("tool_calls")
    if calls:
        text += json.dumps(calls, ensure_ascii=False, default=str, separators=(",", ":"))
    return text


class _Cached:
    """Per-text token counts, cached (CrewAI resends the whole conversation on every call)."""

    def __init__(self, count: Callable[[str], int]) -> None:
        self._count = count
        self._cache: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def __call__(self, text: str) -> int:
        if len(text) < 64:
            return self._count(text)
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        n = self._count(text)
        with self._lock:
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
            self._cache[key] = n
        return n


class LlamaCounter:
    """The embedded model's tokenizer: `llm` is a `LlamaCppLLM` (its `Llama` is the shared one)."""

    exact = True
    turn_tokens = LLAMA_TURN_TOKENS

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.text = _Cached(llm.count_text_tokens)  # type: ignore[method-assign]

    def prompt(self, messages: list[dict[str, Any]]) -> int:
        """The whole prompt as llama.cpp will send it (rendered with the model's chat template)."""
        return int(self.llm.get_input_tokens_count(messages))

    def upper(self, messages: list[dict[str, Any]]) -> int:
        """A bound that loads nothing: a token is at least one byte of text."""
        return LLAMA_FIXED_TOKENS + _text_bytes(messages) + LLAMA_TURN_TOKENS * len(messages)


class EstimateCounter:
    """Hosted models: the budget module's estimate (no tokenizer, nothing downloaded)."""

    exact = False

    def __init__(self) -> None:
        from crewkit.governance import budget

        self._prompt = budget.prompt_tokens
        self.turn_tokens = budget.MESSAGE_TOKENS
        self.text = _Cached(budget._text_tokens)  # type: ignore[method-assign]

    def prompt(self, messages: list[dict[str, Any]]) -> int:
        return int(self._prompt(messages))

    def upper(self, messages: list[dict[str, Any]]) -> int:
        """A bound cheaper than the estimate: one token per character at most, plus the turns."""
        return _text_bytes(messages, chars=True) + (self.turn_tokens + 16) * len(messages)  # ids, names


@dataclass(frozen=True)
class Fitted:
    """What `fit` made of a call's messages. `messages` is the input itself when nothing changed."""

    messages: Any
    budget: int
    tokens_before: int
    tokens_after: int
    messages_before: int
    messages_after: int
    summarised: int = 0  # older messages folded into the summary message
    dropped: int = 0  # older messages left out whole (trim, or no room left in the summary)
    policy: str = "summarise"
    exact: bool = False  # counted with the model's own tokenizer
    context_parts: int = 0  # earlier tasks' outputs in the task prompt's context, summarised or left out

    @property
    def changed(self) -> bool:
        return bool(self.summarised or self.dropped or self.context_parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "budget": self.budget,
            "tokens_before": self.tokens_before,
            "tokens_after": self.tokens_after,
            "messages_before": self.messages_before,
            "messages_after": self.messages_after,
            "summarised": self.summarised,
            "dropped": self.dropped,
            "context_parts": self.context_parts,
            "counted": "tokenizer" if self.exact else "estimate",
        }


# -- the conversation's units ----------------------------------------------------------------------


def _role(message: Any) -> str:
    return str(message.get("role") or "user") if isinstance(message, dict) else "user"


def units(messages: Sequence[Any]) -> list[list[int]]:
    """Message indexes grouped into what must stay together: an assistant turn with tool calls and
    the tool results that follow it; every other message alone."""
    out: list[list[int]] = []
    for i, msg in enumerate(messages):
        if (
            _role(msg) == "tool"
            and out
            and (_role(messages[out[-1][0]]) == "assistant" and messages[out[-1][0]].get("tool_calls"))
        ):
            out[-1].append(i)
        else:
            out.append([i])
    return out


# -- the extractive summary ------------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + "…"


def gist(text: str, limit: int = UNIT_CHARS) -> str:
    """A text's first sentence or two and its key lines (`Action:`, `Final Answer:` ...), one line."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    first = lines[0]
    sentences = [s for s in _SENTENCE_END.split(first) if s.strip()]
    head = " ".join(sentences[:2]) if len(" ".join(sentences[:2])) <= limit else sentences[0]
    keys = [line for line in lines[1:] if _KEY_LINE.match(line)]
    return _clip(" / ".join([head, *keys]), limit)


def _unit_line(messages: Sequence[Any], unit: list[int]) -> str:
    first = messages[unit[0]]
    role = _role(first)
    text = gist(message_text({**first, "tool_calls": None}) if isinstance(first, dict) else str(first))
    if role == "assistant" and isinstance(first, dict) and first.get("tool_calls"):
        called = []
        for call in first["tool_calls"]:
            fn = call.get("function", call) if isinstance(call, dict) else {}
            called.append(f"{fn.get('name', '?')}({_clip(str(fn.get('arguments', '')), 80)})")
        results = [gist(message_text(messages[i]), UNIT_CHARS // 2) for i in unit[1:]]
        line = f"assistant called {', '.join(called)}"
        if text:
            line = f"assistant: {text}; called {', '.join(called)}"
        if results:
            line += " -> " + " | ".join(r or "(empty)" for r in results)
        return "- " + line
    label = "tool result" if role == "tool" else role
    return f"- {label}: {text or '(empty)'}"


def _summary_message(
    messages: Sequence[Any], removed: list[list[int]], tokens: int, room: int, counter: Counter
) -> tuple[dict[str, Any], int] | None:
    """One user message summarising `removed` (chronological units) in at most `room` tokens, and
    how many of their messages it had no room to mention; None when not even its header fits."""
    n = sum(len(u) for u in removed)
    header = (
        f"[crewkit: {n} earlier message{'s' if n != 1 else ''} ({tokens:,} tokens) were summarised "
        "to fit the context budget; their first lines follow]"
    )
    used = counter.turn_tokens + counter.text(header)
    if used > room:
        return None
    lines: list[str] = []
    omitted = 0
    for unit in reversed(removed):  # the newest first: they matter most to the next turn
        line = _unit_line(messages, unit)
        cost = counter.text(line) + 1
        if omitted or used + cost > room:
            omitted += len(unit)
            continue
        lines.insert(0, line)
        used += cost
    if omitted:
        note = f"- ({omitted} older message{'s' if omitted != 1 else ''} left out)"
        if used + counter.text(note) + 1 <= room:
            lines.insert(0, note)
    return {"role": "user", "content": "\n".join([header, *lines])}, omitted


# -- fitting ---------------------------------------------------------------------------------------


def fit(
    messages: Any,
    budget: int,
    counter: Counter,
    *,
    keep_recent: int = 4,
    policy: str = "summarise",
    describe: str = "",
    fix: str = "",
    task_context: bool = True,
) -> Fitted:
    """`messages` (CrewAI's list, or a bare prompt string) within `budget` prompt tokens.

    `describe` names the budget in an error ("role 'reasoning' (model 'local-small')"), `fix`
    says what to change. When the conversation alone cannot be made to fit and the task's prompt
    carries CrewAI's context from earlier tasks (several outputs), the older outputs there are
    summarised, then left out, by the same policy, the newest kept (`task_context=False`: not).
    Raises ContextBudgetExceeded when the system messages and the newest `keep_recent` messages
    alone still exceed the budget.
    """
    bare = isinstance(messages, str)
    msgs: list[Any] = [{"role": "user", "content": messages}] if bare else list(messages or ())
    if counter.upper(msgs) <= budget:  # fits by a bound that loads and tokenizes nothing
        return Fitted(messages, budget, -1, -1, len(msgs), len(msgs), policy=policy, exact=counter.exact)
    per = [counter.text(message_text(m)) + counter.turn_tokens for m in msgs]  # cached per text
    if counter.exact and sum(per) + LLAMA_FIXED_TOKENS <= budget:
        # fits by the messages' own token counts plus every template token they could get: only
        # the newest message was tokenized (CrewAI resends the rest), no whole prompt rendered
        return Fitted(messages, budget, -1, -1, len(msgs), len(msgs), policy=policy, exact=counter.exact)
    total = counter.prompt(msgs)
    if total <= budget:
        return Fitted(
            messages, budget, total, total, len(msgs), len(msgs), policy=policy, exact=counter.exact
        )

    groups = units(msgs)
    system = {g for g, u in enumerate(groups) if _role(msgs[u[0]]) == "system"}
    recent: set[int] = set()
    kept_n = 0
    for g in reversed(range(len(groups))):
        if kept_n >= keep_recent:
            break
        if g not in system:
            recent.add(g)
            kept_n += len(groups[g])
    older = [g for g in range(len(groups)) if g not in system and g not in recent]
    non_system = [g for g in range(len(groups)) if g not in system]
    task = (
        non_system[0]
        if non_system and non_system[0] in older and _role(msgs[groups[non_system[0]][0]]) == "user"
        else None
    )
    order = [g for g in older if g != task] + ([task] if task is not None else [])

    calib = total - sum(per)  # the template's own tokens, as the whole-prompt count sees them

    def assemble(removed: set[int], summary: dict[str, Any] | None) -> list[Any]:
        out: list[Any] = []
        placed = False
        for g, unit in enumerate(groups):
            if g in removed:
                if summary is not None and not placed:
                    out.append(summary)
                    placed = True
                continue
            out.extend(msgs[i] for i in unit)
        return out

    def attempt(k: int, summarise: bool, complete: bool = False) -> Fitted | None:
        removed = set(order[:k])
        removed_units = [groups[g] for g in sorted(removed)]
        n_removed = sum(len(u) for u in removed_units)
        kept_tokens = calib + sum(per[i] for g, u in enumerate(groups) if g not in removed for i in u)
        summary, omitted = None, n_removed
        if summarise:
            removed_tokens = sum(per[i] for u in removed_units for i in u)
            made = _summary_message(msgs, removed_units, removed_tokens, budget - kept_tokens, counter)
            if made is None or (complete and made[1]):
                return None
            summary, omitted = made
            kept_tokens += counter.text(summary["content"]) + counter.turn_tokens
        if kept_tokens > budget:
            return None  # by the estimate: fold in the next older unit
        candidate = assemble(removed, summary)
        after = counter.prompt(candidate)
        if after > budget:
            return None
        return Fitted(
            messages=candidate[0]["content"] if bare and len(candidate) == 1 else candidate,
            budget=budget,
            tokens_before=total,
            tokens_after=after,
            messages_before=len(msgs),
            messages_after=len(candidate),
            summarised=n_removed - omitted if summary is not None else 0,
            dropped=omitted,
            policy=policy,
            exact=counter.exact,
        )

    # As few older messages as possible are folded in, each one mentioned in the summary; failing
    # that, all of them, the summary naming the newest it has room for; failing that (not even
    # the summary's header fits), all of them left out.
    tries: list[tuple[int, bool, bool]] = [(k, policy == "summarise", True) for k in range(1, len(order) + 1)]
    if order and policy == "summarise":
        tries += [(len(order), True, False), (len(order), False, False)]
    for k, summarise, complete in tries:
        fitted = attempt(k, summarise, complete)
        if fitted is not None:
            return fitted

    if task_context:
        fitted = _fit_task_context(msgs, total, budget, counter, keep_recent, policy, bare)
        if fitted is not None:
            return fitted

    kept = [msgs[i] for g, u in enumerate(groups) if g in system or g in recent for i in u]
    kept_tokens = counter.prompt(kept) if kept else 0
    about = "" if counter.exact else "about "
    parts = (["the system prompt"] if system else []) + (
        [f"the {kept_n} newest message{'s' if kept_n != 1 else ''}"] if recent else []
    )
    what = " and ".join(parts) or "the prompt"
    raise ContextBudgetExceeded(
        f"{describe + ': ' if describe else ''}what is always kept ({what}) is {about}{kept_tokens:,} "
        f"tokens, over the {budget:,}-token context budget" + (f"; {fix}" if fix else ""),
        what,
        kept_tokens,
        budget,
        counter.exact,
    )


# -- the task's context (earlier tasks' outputs in its prompt) -----------------------------------------

_CONTEXT_MARK = "\n\nThis is the context you're working with:\n"  # CrewAI's task_with_context
_DIVIDER = "\n\n----------\n\n"  # between earlier tasks' outputs (crewai.utilities.formatter)


def _context_parts(text: str) -> tuple[str, list[str]] | None:
    """A task prompt split into its head (through CrewAI's context line) and the earlier tasks'
    outputs after it; None unless there are at least two (the newest, which runs to the end of
    the message with CrewAI's own framing, is never touched)."""
    at = text.find(_CONTEXT_MARK)
    if at < 0:
        return None
    head, rest = text[: at + len(_CONTEXT_MARK)], text[at + len(_CONTEXT_MARK) :]
    parts = rest.split(_DIVIDER)
    return (head, parts) if len(parts) >= 2 else None


def _fit_task_context(
    msgs: list[Any], total: int, budget: int, counter: Counter, keep_recent: int, policy: str, bare: bool
) -> Fitted | None:
    """`fit` again with the task prompt's older context parts summarised (policy summarise) or
    left out, oldest first, as few as fit; None when that does not fit either."""
    task = next((i for i, m in enumerate(msgs) if _role(m) == "user"), None)
    content = msgs[task].get("content") if task is not None and isinstance(msgs[task], dict) else None
    split = _context_parts(content) if isinstance(content, str) else None
    if split is None:
        return None
    head, parts = split
    older = len(parts) - 1

    def shortened(part: str, summarise: bool) -> str:
        tokens = counter.text(part)
        if summarise:
            return f"[crewkit: an earlier task's output ({tokens:,} tokens), summarised to fit the context budget] {gist(part)}"
        return (
            f"[crewkit: an earlier task's output ({tokens:,} tokens) was left out to fit the context budget]"
        )

    tries = [(n, 0) for n in range(1, older + 1)] if policy == "summarise" else []
    tries += [(older, n) for n in range(1, older + 1)]  # (parts touched, of them left out)
    for touched, left_out in tries:
        new_parts = [shortened(part, i >= left_out) if i < touched else part for i, part in enumerate(parts)]
        new = list(msgs)
        new[task] = {**msgs[task], "content": head + _DIVIDER.join(new_parts)}
        try:
            fitted = fit(new, budget, counter, keep_recent=keep_recent, policy=policy, task_context=False)
        except ContextBudgetExceeded:
            continue
        out = fitted.messages if isinstance(fitted.messages, list) else new
        after = fitted.tokens_after if fitted.tokens_after >= 0 else counter.prompt(out)
        return dataclasses.replace(
            fitted,
            messages=out[0]["content"] if bare and len(out) == 1 else out,
            tokens_before=total,
            tokens_after=after,
            messages_before=len(msgs),
            messages_after=len(out),
            context_parts=touched,
        )
    return None
