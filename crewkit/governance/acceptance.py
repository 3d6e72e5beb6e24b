"""Deterministic acceptance checks: what can be verified about an answer without a model.

They run before the model reviewer and fail a subtask on their own:

- `not_empty`          the answer has content;
- `code_parses`        fenced code blocks parse (Python with `ast`, JSON with `json`, brackets
                       balance for C-like languages); an unfenced Python answer parses too;
- `not_meta_reply`     the answer is not a reply about the conversation ("I'm ready to assist",
                       "please share the plan", "As an AI ...");
- `not_echo`           the answer is not the prompt given back;
- `same_language`      the answer's script matches the task's (CJK, Latin, Cyrillic, ...);
- `required_sections`  what the acceptance criteria ask for is there (code, an example, an
                       explanation, tests, steps, a list, a table);
- `computed_answer`    a task that is plain arithmetic ("What is 17*3?") gets the right number.

Each check returns a `Check`; its `reason` is short, says what to fix and never quotes the answer
(reasons are fed back to the executor and written to the run record).
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Check:
    check: str
    subtask: str | None
    passed: bool
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, check: str, subtask: str | None, failure: str | None) -> Check:
        """Passed when `failure` is None, else failed with that reason."""
        return cls(check, subtask, failure is None, failure or "")


# ---------------------------------------------------------------- code blocks


@dataclass(frozen=True)
class CodeBlock:
    lang: str  # lower-case fence tag, "" when untagged
    code: str
    fenced: bool


_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_PY_TAGS = {"python", "py", "python3", "py3", "ipython", "pycon"}
_JSON_TAGS = {"json", "jsonc"}
_BRACE_TAGS = {
    "javascript", "js", "typescript", "ts", "java", "c", "cpp", "c++", "cc", "h", "hpp", "cs",
    "csharp", "c#", "go", "golang", "kotlin", "kt", "swift", "php", "scala", "dart",
}  # fmt: skip
_PY_START = re.compile(r"^(?:async\s+def|def|class)\s+\w+\s*[(:]|^(?:import\s+\w|from\s+[\w.]+\s+import\s)")
_CODE_LINE = re.compile(
    r"^\s*(?:(?:async\s+)?def\s+\w+\s*\(|class\s+\w+|import\s+[\w.]+|from\s+[\w.]+\s+import\s|return\b|"
    r"function\s+\w*\s*\(|(?:const|let|var)\s+\w+\s*=|fn\s+\w+\s*\(|public\s+|#include\s*<|package\s+\w+|"
    r"(?i:select)\s.+\s(?i:from)\s|for\s*\(|while\s*\(|if\s*\(|[\w.\[\]]+\s*(?:=|\+=|-=)\s*\S|"
    r"[\w.]+\(.*\)\s*;?\s*$|print\s*\()"
)


def code_blocks(text: str, unfenced: bool = True) -> list[CodeBlock]:
    """Fenced blocks (an unterminated last fence runs to the end), else (if `unfenced`) the region
    of unfenced Python starting at a def/class/import line."""
    text = text or ""
    blocks = [CodeBlock(m.group(1).lower(), m.group(2), True) for m in _FENCE.finditer(text)]
    if blocks or not unfenced:
        return blocks
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _PY_START.match(line):
            end = i + 1
            while end < len(lines) and (
                not lines[end].strip() or lines[end][:1].isspace() or _CODE_LINE.match(lines[end])
            ):
                end += 1
            return [CodeBlock("python", "\n".join(lines[i:end]).strip("\n"), False)]
    return []


def prose(text: str) -> str:
    """The answer without code: no fenced blocks, inline code, URLs or code-looking lines."""
    text = _FENCE.sub(" ", text or "")
    text = re.sub(r"`[^`\n]*`|https?://\S+", " ", text)
    return "\n".join(line for line in text.splitlines() if not _CODE_LINE.match(line))


def has_code(text: str) -> bool:
    if any(b.code.strip() for b in code_blocks(text)):
        return True
    return any(_CODE_LINE.match(line) and re.search(r"[(=:{;]", line) for line in (text or "").splitlines())


def _looks_python(code: str) -> bool:
    first = next((line for line in code.splitlines() if line.strip()), "")
    return bool(_PY_START.match(first.strip()) or first.startswith(">>>"))


def _doctest_source(code: str) -> str:
    if not any(line.startswith(">>>") for line in code.splitlines()):
        return code
    return "\n".join(
        line[4:] for line in code.splitlines() if line.startswith((">>> ", "... ", ">>>", "..."))
    )


# one pass, leftmost first: "http://x" stays a string, "// don't" stays a comment
_STRING_OR_COMMENT = re.compile(
    r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|`(?:\\.|[^`\\])*`|//[^\n]*|/\*.*?\*/', re.S
)


def _brackets_balance(code: str) -> str | None:
    """None when (), [] and {} balance outside strings and comments, else what is wrong."""
    code = _STRING_OR_COMMENT.sub(lambda m: "" if m.group().startswith("/") else '""', code)
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    for n, line in enumerate(code.splitlines(), start=1):
        for ch in line:
            if ch in "([{":
                stack.append((ch, n))
            elif ch in pairs:
                if not stack or stack[-1][0] != pairs[ch]:
                    return f"line {n}: unexpected '{ch}'"
                stack.pop()
    if stack:
        return f"line {stack[-1][1]}: '{stack[-1][0]}' is never closed"
    return None


def code_error(block: CodeBlock) -> str | None:
    """None when the block parses (or is in a language we do not check), else the parse error."""
    lang = block.lang or ("python" if _looks_python(block.code) else "")
    if lang in _PY_TAGS:
        try:
            ast.parse(_doctest_source(block.code))
        except SyntaxError as exc:
            return f"line {exc.lineno}: {exc.msg}"
        except ValueError as exc:  # e.g. null bytes
            return str(exc)
        return None
    if lang in _JSON_TAGS:
        try:
            json.loads(block.code)
        except json.JSONDecodeError as exc:
            return f"line {exc.lineno}: {exc.msg}"
        return None
    if lang in _BRACE_TAGS:
        return _brackets_balance(block.code)
    return None


# ---------------------------------------------------------------- scripts (languages)

_SCRIPTS: tuple[tuple[str, int, int, int], ...] = (
    # name, first, last code point, weight (a CJK character carries about a word)
    ("Latin", 0x41, 0x5A, 1), ("Latin", 0x61, 0x7A, 1), ("Latin", 0xC0, 0x24F, 1), ("Latin", 0x1E00, 0x1EFF, 1),
    ("Greek", 0x370, 0x3FF, 1), ("Cyrillic", 0x400, 0x4FF, 1), ("Hebrew", 0x590, 0x5FF, 1),
    ("Arabic", 0x600, 0x6FF, 1), ("Arabic", 0x750, 0x77F, 1), ("Devanagari", 0x900, 0x97F, 1),
    ("Thai", 0xE00, 0xE7F, 1), ("Hangul", 0x1100, 0x11FF, 3), ("Hangul", 0x3130, 0x318F, 3),
    ("Hangul", 0xAC00, 0xD7AF, 3), ("CJK", 0x3040, 0x30FF, 3), ("CJK", 0x3400, 0x4DBF, 3),
    ("CJK", 0x4E00, 0x9FFF, 3), ("CJK", 0xF900, 0xFAFF, 3),
)  # fmt: skip


def script_weights(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ch in text:
        cp = ord(ch)
        if cp < 0x41:
            continue
        for name, lo, hi, weight in _SCRIPTS:
            if lo <= cp <= hi:
                counts[name] = counts.get(name, 0) + weight
                break
    return counts


def dominant_script(text: str, minimum: int = 6) -> str | None:
    """The script of most of the text's letters (code removed), None if too little to tell."""
    counts = script_weights(prose(text))
    total = sum(counts.values())
    if total < minimum:
        return None
    name, weight = max(counts.items(), key=lambda kv: kv[1])
    return name if weight >= 0.6 * total else None


_SCRIPT_NAMES = {
    "CJK": "Chinese or Japanese",
    "Hangul": "Korean",
    "Latin": "a Latin-script language (English, ...)",
    "Cyrillic": "a Cyrillic-script language (Russian, ...)",
    "Arabic": "Arabic script",
    "Devanagari": "Devanagari (Hindi, ...)",
}
_TRANSLATION = re.compile(
    r"(?i)translat|\b(?:in|into|to) (?:english|chinese|mandarin|japanese|korean|french|german|spanish|"
    r"russian|italian|portuguese|arabic|hindi|dutch|greek|hebrew|thai)\b|翻译|译成|用英[文语]|用中文|英文回答"
)


# ---------------------------------------------------------------- words, echoes, meta replies

_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W\d_]+|\d+")


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text or "")]


def _shingles(tokens: list[str], n: int = 3) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(max(0, len(tokens) - n + 1))}


def echo_share(answer: str, prompts: Iterable[str]) -> float:
    """Share of the answer's word triples that occur in the prompts (0 when too short to judge)."""
    tokens = words(prose(answer))
    if len(tokens) < 6:
        return 0.0
    source: set[tuple[str, ...]] = set()
    for p in prompts:
        source |= _shingles(words(p))
    mine = _shingles(tokens)
    return len(mine & source) / len(mine) if mine else 0.0


# tasks whose right answer repeats most of their own text
_REWRITE = re.compile(
    r"(?i)\b(?:fix|correct|proofread|rewrite|rephrase|paraphrase|edit|format|reformat|clean up|repeat|copy|"
    r"quote|spell|grammar|punctuat|capitali[sz]e|sort|reorder)|改写|修改|纠正|重复"
)
_META = re.compile(
    r"(?i)\bas an ai\b|\bas an? (?:large )?language model\b|\bi(?:'m| am) (?:ready|here|happy|glad) to "
    r"(?:help|assist)|\bhow (?:can|may) i (?:help|assist)|\bplease (?:share|provide|send|give|paste|upload|"
    r"specify|clarify)\b|\b(?:could|can|would) you (?:please )?(?:share|provide|send|give|paste|upload|clarify|"
    r"specify)\b|\b(?:share|send|provide|paste|give me) (?:me )?(?:the|your) (?:json|plan|subtasks?|task|"
    r"details|image|file|input|data|question)\b|\bwhat would you like me to\b|"
    r"\bwhat (?:\w+ )?(?:task|question|problem|topic|request)s? (?:do|would|can) you\b|"
    r"\bwhat can i (?:do|help) (?:for|with) you\b|\b(?:let me know|tell me) (?:what|how|which|if)\b|"
    r"\bdo you have (?:a|any|another) (?:task|question|request)\b|\bi (?:cannot|can't|am unable "
    r"to|am not able to) (?:help|assist|answer|do that)\b|请(?:提供|分享|发送|给出)|我(?:已经)?准备好|"
    r"作为(?:一个)?(?:AI|人工智能|语言模型)|有什么(?:可以|能)帮|我可以帮助?你|"
    # promises instead of the answer, and the prompt's own instructions echoed back
    r"\bi(?:'ll| will) (?:be )?(?:providing|provide|do my best|help you|assist you|walk you)\b|"
    r"\bin this task,? i(?:'ll| will)\b|\byour (?:\w+ )?(?:response|answer|output) (?:should|must)\b|\b(?:criteria|instructions?) for your (?:answer|response)\b"
)
# a sentence that asks the user for input: with it, a smaller meta share is already a non-answer
_ASKS = re.compile(
    r"(?i)\bplease (?:go ahead|share|provide|send|give|paste|upload|specify|clarify|present|tell)\b|"
    r"\b(?:could|can|would) you (?:please )?(?:share|provide|send|give|paste|upload|clarify|specify)\b|"
    r"\b(?:let me know|tell me) (?:what|how|which|if)\b|\bwhat (?:\w+ )?(?:task|question|problem)s? (?:do|would|can) you\b|"
    r"请(?:提供|分享|发送|给出|告诉)"
)
_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]*")


def meta_share(answer: str) -> float:
    """Characters of sentences that talk about the conversation, over the answer's substance."""
    text = answer or ""
    body = prose(text)
    meta = sum(len(s) for s in _SENTENCE.findall(body) if _META.search(s))
    substance = len(re.sub(r"\s+", "", text))
    return meta / substance if substance else 0.0


# ---------------------------------------------------------------- sections the criteria ask for

SECTIONS: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {
    # name: (asked for in criteria, present in an answer)
    "example": (
        re.compile(r"(?i)\bexamples?\b|\bfor instance\b|\busage\b|例子|示例|举例"),
        re.compile(r"(?i)\bexample|\be\.g\.|\bfor instance\b|>>>|\busage\b|例|示例|比如"),
    ),
    "explanation": (
        re.compile(r"(?i)\bexplain|\bexplanation|\bhow it works\b|\bwhy\b|解释|说明|原因"),
        re.compile(r"."),  # checked by length below
    ),
    "tests": (
        re.compile(
            r"(?i)\bunit tests?\b|\btest cases?\b|\btests? for\b|\bwith tests\b|\bincludes? tests\b|"
            r"\bpytest\b|\bunittest\b|测试"
        ),
        re.compile(
            r"(?i)\bassert\b|\bdef test_|\bunittest\b|\bpytest\b|\bexpect\(|#\[test\]|@Test\b|"
            r"\btest\w*\s*\(|测试"
        ),
    ),
    "steps": (
        re.compile(r"(?i)\bsteps?\b|step-by-step|步骤"),
        re.compile(
            r"(?im)^\s*(?:\d+[.)]|step \d|[-*•])\s+\S[\s\S]*^\s*(?:\d+[.)]|step \d|[-*•])\s+\S|"
            r"\bfirst\b[\s\S]*\b(?:then|next|finally)\b|第[一二]步|首先[\s\S]*然后"
        ),
    ),
    "list": (
        re.compile(
            r"(?i)\bbullet(?:ed)?(?: points?| list)?\b|\bnumbered list\b|\b(?:a|as a|in a) list of\b|列出|列表"
        ),
        re.compile(r"(?m)(?:^\s*(?:\d+[.)]|[-*•])\s+\S.*\n?){2,}"),
    ),
    "table": (
        re.compile(r"(?i)\b(?:a|as a|in a|markdown) table\b|表格"),
        re.compile(r"(?m)^\s*\|.*\|.*\|\s*$"),
    ),
    "code": (
        re.compile(r"(?i)\bcode\b|\bfunction\b|\bimplementation\b|\bsnippet\b|\bscript\b|代码|函数|程序"),
        re.compile(r"."),  # checked by has_code below
    ),
}


def sections_asked(criteria: str) -> list[str]:
    """The sections a criteria text asks for, in SECTIONS order."""
    return [name for name, (asked, _) in SECTIONS.items() if asked.search(criteria or "")]


def section_present(name: str, answer: str) -> bool:
    if name == "code":
        return has_code(answer)
    if name == "explanation":
        return len(words(prose(answer))) >= 5
    return bool(SECTIONS[name][1].search(answer or ""))


# ---------------------------------------------------------------- arithmetic with one right answer

_ARITH = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?(?:\s*[-+*/×÷^]\s*\(?\s*\d+(?:\.\d+)?\s*\)?)+)(?![\w.])")
_ASKS_VALUE = re.compile(
    r"(?i)\b(?:what(?:'s| is)|calculate|compute|evaluate|how much is|solve)\b|=\s*\?|等于|是多少|计算"
)
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow}  # fmt: skip


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
            raise ValueError("too large")
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    raise ValueError("not arithmetic")


def expected_number(task: str) -> str | None:
    """The value of the one arithmetic expression a short question asks for, as text."""
    if len(task) > 160 or not _ASKS_VALUE.search(task):
        return None
    found = _ARITH.findall(task)
    if len(found) != 1:
        return None
    if re.fullmatch(r"[\d.]+(?:-[\d.]+)+", found[0]):
        return None  # 2026-11-26, 1-2-3, 555-1234: dates, ranges and numbers, not sums
    expr = found[0].replace("×", "*").replace("÷", "/").replace("^", "**")
    try:
        value = _evaluate(ast.parse(expr, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def _mentions_number(answer: str, number: str) -> bool:
    for token in re.findall(r"-?\d[\d,]*(?:\.\d+)?", answer or ""):
        try:
            if abs(float(token.replace(",", "")) - float(number)) < 1e-6 * max(1.0, abs(float(number))):
                return True
        except ValueError:
            continue
    return False


# ---------------------------------------------------------------- the checks


def check_answer(
    answer: str,
    *,
    task: str,
    subtask: str | None = None,
    description: str = "",
    acceptance: str = "",
    task_type: str | None = None,
) -> list[Check]:
    """Every deterministic check for one answer, in order; a failed `not_empty` stops the rest."""
    label = f"{subtask}: " if subtask else ""
    if not (answer or "").strip():
        return [Check.of("not_empty", subtask, f"{label}the answer is empty; answer the task")]
    checks = [Check.of("not_empty", subtask, None)]

    asked = sections_asked(acceptance)
    if task_type == "code" and "code" not in asked:
        asked.insert(0, "code")
    blocks = code_blocks(answer, unfenced="code" in asked)  # prose may start with "import ..." too
    errors = [(b, code_error(b)) for b in blocks]
    broken = [(b, e) for b, e in errors if e]
    if broken or blocks or task_type == "code":
        failure = None
        if broken:
            block, error = broken[0]
            failure = f"{label}the {block.lang or 'Python'} code does not parse ({error}); fix the code"
        checks.append(Check.of("code_parses", subtask, failure))

    share = meta_share(answer)
    meta = share >= 0.5 or (share >= 0.25 and _ASKS.search(prose(answer)))
    checks.append(
        Check.of(
            "not_meta_reply",
            subtask,
            f"{label}the answer talks about the conversation instead of answering; give the answer itself"
            if meta
            else None,
        )
    )

    echo = 0.0 if _REWRITE.search(task) else echo_share(answer, [task, description])
    checks.append(
        Check.of(
            "not_echo",
            subtask,
            f"{label}the answer repeats the task ({echo:.0%}); answer it instead" if echo >= 0.7 else None,
        )
    )

    want = None if _TRANSLATION.search(task) else dominant_script(task)
    got = dominant_script(answer, minimum=12)
    weights = script_weights(prose(answer)) if want and got and got != want else {}
    wrong_language = bool(weights) and weights.get(want, 0) < 0.3 * sum(weights.values())
    checks.append(
        Check.of(
            "same_language",
            subtask,
            f"{label}the task is written in {_SCRIPT_NAMES.get(want, want)} but the answer in "
            f"{_SCRIPT_NAMES.get(got, got)}; answer in the task's language"
            if wrong_language
            else None,
        )
    )

    if asked:
        missing = [name for name in asked if not section_present(name, answer)]
        checks.append(
            Check.of(
                "required_sections",
                subtask,
                f"{label}the acceptance criteria ask for {', '.join(missing)}, which the answer lacks; add it"
                if missing
                else None,
            )
        )

    # the sum a subtask asks for ("What is 2+2? Explain why." -> only s1 must state 4)
    number = expected_number(description or task) if task_type != "code" else None
    if number is not None:
        checks.append(
            Check.of(
                "computed_answer",
                subtask,
                None
                if _mentions_number(answer, number)
                else f"{label}the task's arithmetic has one right value and the answer does not state it; compute it",
            )
        )
    return checks


def feedback_for(subtask: str, feedback: list[str]) -> list[str]:
    """The feedback items for one subtask: its own check reasons and every unlabelled issue."""
    own = f"{subtask}: "
    return [f.removeprefix(own) for f in feedback if f.startswith(own) or not re.match(r"s\d+: ", f)]


def check_results(task: str, plan: list[dict[str, Any]], results: list[dict[str, Any]]) -> list[Check]:
    """The checks for every model-answered subtask of a run (limitation answers are skipped)."""
    by_id = {s["id"]: s for s in plan}
    checks: list[Check] = []
    for result in results:
        if result.get("limitation"):
            continue
        sub = by_id.get(result["subtask"], {})
        checks += check_answer(
            result.get("output") or "",
            task=task,
            subtask=result["subtask"],
            description=sub.get("description", ""),
            acceptance=sub.get("acceptance", ""),
            task_type=sub.get("task_type"),
        )
    return checks
