"""What a task asks for, read deterministically from its text: its parts, code, an image.

The planner's plan is checked against this profile (`crewkit.plan.normalise`): a one-part task
gets one subtask, a code subtask needs a task that asks for code, a vision subtask a task about
an image. The rules are plain keyword and sentence rules, in English and Chinese; they err
towards fewer parts and towards trusting the plan when a rule cannot tell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IMPERATIVE = (
    "write|explain|describe|document|add|include|give|show|list|compare|summari[sz]e|translate|provide|"
    "discuss|justify|analy[sz]e|illustrate|implement|create|build|fix|refactor|debug|calculate|compute|"
    "derive|prove|test|outline|draft|design|generate|convert|define|identify|suggest|recommend"
)
_STARTS_ASK = re.compile(rf"(?i)^\s*(?:please\s+|then\s+|also\s+)?(?:{_IMPERATIVE})\b")
# "..., and explain it" / "... and then write tests": a second ask inside one sentence
_AND_ASK = re.compile(
    rf"(?i)(?:,\s*(?:and\s+)?(?:then\s+)?|\s+and\s+(?:then\s+)?|;\s*)(?=(?:also\s+)?(?:{_IMPERATIVE})\b)"
)
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+(\S.*)$", re.M)
_SENTENCE = re.compile(r"[^.!?。！？\n]+(?:[.!?。！？]+|$)")
_CJK_ASK = re.compile(r"^\s*(?:请|写|编写|解释|说明|列出|给出|描述|翻译|比较|计算|实现|总结|分析)|[？?]\s*$")
_CJK_AND_ASK = re.compile(
    r"[，,；;]\s*(?:并且?|然后|再|同时)(?=\s*(?:写|编写|解释|说明|列出|给出|描述|翻译|比较|计算|实现|总结|分析))"
)

_CODE_VERB = re.compile(
    r"(?i)\b(?:write|implement|create|build|code|program|fix|debug|refactor|generate|complete|optimi[sz]e|"
    r"port|convert|make|develop|modify|rewrite|add)\b|编写|写|实现|修复|生成|改写"
)
_CODE_NOUN = re.compile(
    r"(?i)\b(?:code|function|method|class|script|program|snippet|implementation|regex|regular expression|"
    r"sql|query|algorithm|module|cli|api|endpoint|checker|parser|validator|unit tests?|decorator|"
    r"python|javascript|typescript|java|c\+\+|c#|golang|rust|kotlin|swift|ruby|php|bash|shell)\b|"
    r"代码|函数|程序|脚本|类|算法|正则"
)
_CODE_IN_TASK = re.compile(
    r"```|\bdef\s+\w+\s*\(|\bclass\s+\w+\s*[:(]|\bfunction\s*\w*\s*\(|^\s*import\s+\w", re.M
)
_IMAGE = re.compile(
    r"(?i)\b(?:image|images|picture|photo|photograph|screenshot|diagram|chart|figure|drawing|logo|icon|"
    r"scan|x-ray|visual)\b|\.(?:png|jpe?g|gif|webp|bmp|svg)\b|data:image/|图片|图像|照片|截图|图表|这张图"
)


@dataclass(frozen=True)
class TaskProfile:
    parts: tuple[str, ...]  # the separate things the task asks for, in order (at least one)
    asks_for_code: bool
    about_image: bool

    @property
    def main_type(self) -> str:
        if self.about_image:
            return "vision"
        return "code" if self.asks_for_code else "reasoning"


def asks_for_code(text: str) -> bool:
    """A request to write or change source code (not merely a question that names a language)."""
    if _CODE_IN_TASK.search(text) and re.search(
        r"(?i)\b(?:fix|debug|refactor|rewrite|improve|complete)\b|修复|改", text
    ):
        return True
    return bool(_CODE_VERB.search(text) and _CODE_NOUN.search(text))


def about_image(text: str) -> bool:
    return bool(_IMAGE.search(text))


def split_parts(task: str) -> list[str]:
    """The asks in a task: list items, else questions and imperative sentences (statements of
    context join the ask that follows them), with "..., and explain it" split in two."""
    items = [m.group(1).strip() for m in _LIST_ITEM.finditer(task)]
    if len(items) >= 2:
        return items
    cjk = bool(re.search(r"[\u3400-\u9fff]", task))
    asks: list[str] = []
    pending = ""
    for raw in _SENTENCE.findall(task):
        sentence = raw.strip()
        if not sentence:
            continue
        pieces = [p.strip() for p in (_CJK_AND_ASK if cjk else _AND_ASK).split(sentence) if p.strip()]
        for piece in pieces:  # a sentence split at "..., and explain" holds an ask in every piece
            is_ask = (
                len(pieces) > 1
                or piece.endswith(("?", "？"))
                or bool((_CJK_ASK if cjk else _STARTS_ASK).search(piece))
            )
            if is_ask:
                asks.append(f"{pending} {piece}".strip() if pending else piece)
                pending = ""
            else:
                pending = f"{pending} {piece}".strip()
    if pending:
        if asks:
            asks[-1] = f"{asks[-1]} {pending}"
        else:
            asks.append(pending)
    return asks or [task.strip()]


def profile(task: str) -> TaskProfile:
    return TaskProfile(tuple(split_parts(task)), asks_for_code(task), about_image(task))
