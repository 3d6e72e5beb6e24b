"""Prompt-injection scanner: the deterministic layer (no model, no network).

`scan(text)` reads a user input, a tool output or a retrieved document and returns a `Scan`:
`verdict` ("allow" | "review" | "block"), `score` in [0, 1] and short `reasons`.

How it works:
1. Normalise what obfuscation hides: Unicode tag characters are decoded (ASCII smuggling),
   zero-width and bidi controls dropped, HTML entities and %-escapes decoded, NFKC (fullwidth,
   mathematical letters), combining marks stripped, Cyrillic/Greek look-alikes mapped to Latin,
   case folded, traditional Chinese characters folded to simplified (a small table of the
   characters the patterns use), letters spaced apart ("i g n o r e") joined. A second view
   undoes leetspeak ("1gn0r3") in words that mix letters and digits. Runs that look like
   base64 are decoded and the plain text is scanned too.
2. Match weighted signals, English and Chinese: an intent verb with a target ("ignore" +
   "previous instructions", "reveal" + "your system prompt", 忽略 + 之前的指令), role-play
   jailbreaks (DAN, developer mode, "no rules"), text addressed to the model from inside
   content ("AI assistant reading this page:"), fake chat-role markers (<|im_start|>, [INST],
   "### System:"), exfiltration (a secret or the conversation sent to a URL or address),
   piped shell downloads. A keyword alone ("ignore", "system prompt", 忽略) weighs nothing.
3. Combine them as a noisy-OR (1 - prod(1 - w)), add a little when the text also hid itself
   (zero-width characters, homoglyphs, base64, an HTML comment), and damp signals that sit in
   quotes inside a text that discusses attacks ("how do I defend against 'ignore previous
   instructions'?"). score >= BLOCK_AT blocks, >= REVIEW_AT asks for review.

Every regex has bounded gaps and no nested unbounded quantifiers, so time stays linear in
the length of the text.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

__all__ = ["BLOCK_AT", "REVIEW_AT", "Scan", "scan"]

BLOCK_AT = 0.75
REVIEW_AT = 0.45

_QUOTE_CHARS = 40
_MAX_B64_RUNS = 16
_MAX_B64_LEN = 16_384
_MAX_DEPTH = 2


@dataclass(frozen=True, slots=True)
class Scan:
    verdict: Literal["allow", "review", "block"]
    score: float
    reasons: tuple[str, ...]


# --- normalisation -------------------------------------------------------------------------

_INVISIBLE = dict.fromkeys(
    [0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF, 0xFFA0]
    + list(range(0x200B, 0x2010))
    + list(range(0x202A, 0x202F))
    + list(range(0x2060, 0x2070))
    + list(range(0xFE00, 0xFE10)),
)
_TAGS = {cp: (cp - 0xE0000 if 0xE0020 <= cp <= 0xE007E else None) for cp in range(0xE0000, 0xE0080)}

_HOMOGLYPHS = str.maketrans(
    {
        # Cyrillic
        "а": "a",
        "в": "b",
        "е": "e",
        "ё": "e",
        "к": "k",
        "м": "m",
        "н": "h",
        "о": "o",
        "р": "p",
        "с": "c",
        "т": "t",
        "у": "y",
        "х": "x",
        "і": "i",
        "ї": "i",
        "ј": "j",
        "ѕ": "s",
        "ԁ": "d",
        "һ": "h",
        "ӏ": "l",
        "ԛ": "q",
        "ԝ": "w",
        "ɡ": "g",
        "ү": "y",
        "ѵ": "v",
        # Greek
        "α": "a",
        "β": "b",
        "γ": "y",
        "ε": "e",
        "η": "n",
        "ι": "i",
        "κ": "k",
        "μ": "u",
        "ν": "v",
        "ο": "o",
        "ρ": "p",
        "σ": "o",
        "τ": "t",
        "υ": "u",
        "χ": "x",
        "ω": "w",
        "ς": "s",
        "ϲ": "c",
        "ϳ": "j",
        # Latin look-alikes and IPA
        "ı": "i",
        "ɩ": "i",
        "ł": "l",
        "ø": "o",
        "ß": "ss",
        "ɑ": "a",
        "ʀ": "r",
        "ᴀ": "a",
        "ᴇ": "e",
        "ɪ": "i",
        "ᴏ": "o",
        "ꜱ": "s",
        "ᴛ": "t",
        "ᴜ": "u",
        "ɴ": "n",
        "ᴍ": "m",
        # punctuation variants of quotes and dashes are left alone (quotes matter for context)
    }
)

# Traditional -> simplified, for the characters the Chinese patterns use.
_T2S = str.maketrans(
    "無視說統規則設開發獄輸洩顯碼現對話記錄傳轉資網頁閱讀處郵訊請從沒違繞過蓋拋訴複給"
    "貼憑證鑰詞後個們這為與擬裝機約審準帳號銀變數刪執運檔將應該聽讓隱濾須條護權遊戲駭"
    "務標復關閉啟動歷內問題腳環檢篩選專業樣麼嗎麽時實際總結論寫頭體導譯擊禦範釋紹節戶"
    "會別當來於並製認識廢適區長學習屬嚴聯絡繫係點連鏈雲備遞匯鍵測試圍維隻紀舊報價單費"
    "語講畫圖書質義據構級層優態狀況幫壞惡騙詐盜竊進許聲稱謊劇還邊裡裏間隨縛擋攔礙斷續"
    "繼終載貝錢產負責頻門陸億萬驗蹤跡滅殺槍彈毀壓縮夾屆顧慮戰爭殘倫撥銷滿攝預諸憶興龍"
    "鳳兒貓週雙項順類風飛髮鬆鹽黃齊齒龜",
    "无视说统规则设开发狱输泄显码现对话记录传转资网页阅读处邮讯请从没违绕过盖抛诉复给"
    "贴凭证钥词后个们这为与拟装机约审准账号银变数删执运档将应该听让隐滤须条护权游戏骇"
    "务标复关闭启动历内问题脚环检筛选专业样么吗么时实际总结论写头体导译击御范释绍节户"
    "会别当来于并制认识废适区长学习属严联络系系点连链云备递汇键测试围维只纪旧报价单费"
    "语讲画图书质义据构级层优态状况帮坏恶骗诈盗窃进许声称谎剧还边里里间随缚挡拦碍断续"
    "继终载贝钱产负责频门陆亿万验踪迹灭杀枪弹毁压缩夹届顾虑战争残伦拨销满摄预诸忆兴龙"
    "凤儿猫周双项顺类风飞发松盐黄齐齿龟",
)

_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "$": "s", "@": "a", "!": "i", "|": "l"}
)

_LEET_ALL = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "$": "s"})
_TRIGGERS = (
    "ignor",
    "disregard",
    "forget",
    "overrid",
    "bypass",
    "instruct",
    "prompt",
    "system",
    "rule",
    "guideline",
    "restrict",
    "polic",
    "filter",
    "reveal",
    "repeat",
    "print",
    "secret",
    "password",
    "key",
    "credential",
    "token",
    "jailbr",
    "dan",
    "developer",
    "mode",
    "pretend",
    "act as",
    "role",
    "assistant",
    "model",
    "agent",
    "send",
    "forward",
    "upload",
    "conversation",
    "history",
    "your",
    "you",
    "previous",
    "prior",
    "above",
)
_SLANG_WORDS = {
    "ur": "your",
    "u": "you",
    "yr": "your",
    "pls": "please",
    "plz": "please",
    "n": "and",
    "r": "are",
}
_SLANG = re.compile(r"\b(?:ur|u|yr|pls|plz|n|r)\b")
_CJK = r"\u3400-\u9fff\uf900-\ufaff"
_SPACED_RUN = re.compile(r"(?<![^\W_])(?:[^\W_][ \t.\-_*·/\\|,]{1,3}){3,}[^\W_](?![^\W_])")
_SPACED_SEP = re.compile(r"[ \t.\-_*·/\\|,]+")
_WIDE_GAP = re.compile(r"[ \t]{2,}")
_CJK_SPACE = re.compile(rf"(?<=[{_CJK}])[ \t\u3000]+(?=[{_CJK}])")
_COMBINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_LEET_WORD = re.compile(r"(?<![\w$@!|])(?=[\w$@!|]*[a-z])(?=[\w$@!|]*[0-9$@!|])[\w$@!|]{3,}")
_HTML_ESCAPE = re.compile(r"&#?\w{1,8};")
_PCT_ESCAPE = re.compile(r"(?:%[0-9a-fA-F]{2}){2,}")
_B64_RUN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{20,}={0,2}(?![A-Za-z0-9+/=_-])")


@dataclass(slots=True)
class _View:
    text: str
    obfuscations: set[str]


def _normalise(raw: str) -> _View:
    found: set[str] = set()
    text = raw
    if any(0xE0000 <= ord(ch) <= 0xE007F for ch in text if ord(ch) > 0xFFFF):
        text = text.translate(_TAGS)
        found.add("hidden tag characters")
    stripped = text.translate(_INVISIBLE)
    if len(stripped) != len(text):
        found.add("zero-width characters")
    text = stripped
    if "&" in text and _HTML_ESCAPE.search(text):
        text = html.unescape(text)
    if "%" in text and _PCT_ESCAPE.search(text):
        text = unquote(text)
    nfkc = unicodedata.normalize("NFKC", text)
    if nfkc != text and any(0xFF21 <= ord(ch) <= 0xFF5A or 0x1D400 <= ord(ch) <= 0x1D7FF for ch in text):
        found.add("fullwidth or styled letters")
    text = nfkc
    if not text.isascii():
        decomposed = unicodedata.normalize("NFD", text)
        if _COMBINING.search(decomposed):
            text = unicodedata.normalize("NFC", _COMBINING.sub("", decomposed))
    text = text.casefold()
    if not text.isascii():
        mapped = text.translate(_HOMOGLYPHS)
        if mapped != text and _mixes_scripts(text):
            found.add("look-alike letters")
        text = mapped.translate(_T2S)
        text = _CJK_SPACE.sub("", text)
    joined = _SPACED_RUN.sub(_join_run, text)
    if joined != text:
        found.add("spaced-out letters")
        text = joined
    if "  " in text or "\t" in text:
        text = _WIDE_GAP.sub(" ", text)
    return _View(text, found)


def _join_run(match: re.Match[str]) -> str:
    run = match.group(0)
    # words inside a spaced run are separated by wider gaps ("i g n o r e   a l l")
    if re.search(r"[ \t]{2,}", run):
        return " ".join(_SPACED_SEP.sub("", word) for word in re.split(r"[ \t]{2,}", run))
    return _SPACED_SEP.sub("", run)


def _mixes_scripts(text: str) -> bool:
    """Latin letters next to Cyrillic/Greek ones inside one word: a homoglyph disguise."""
    return re.search(r"[a-z][\u0370-\u03ff\u0400-\u04ff]|[\u0370-\u03ff\u0400-\u04ff][a-z]", text) is not None


# --- signals ----------------------------------------------------------------------------------

W = r"[\s\W_]{0,3}"  # a word gap: spaces, punctuation, or none (joined spaced-out letters)
_ANY = r"[^.!?\n。！？]"  # stays inside one sentence


def _rx(pattern: str) -> _Prefiltered:
    return _Prefiltered(re.compile(pattern.replace("~", W), re.S))


class _Prefiltered:
    """A compiled pattern that is tried only on texts holding one of its required strings.

    `required` is a set of literal strings every match contains one of, read off the parsed
    pattern (`_required`); a text with none of them cannot match, and a substring test is far
    cheaper than the regex engine trying each position of a long alternation. Patterns with no
    such set (None) are always tried. The verdicts are the same either way (a test scans the
    labelled sets both ways)."""

    __slots__ = ("pattern", "required")

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.required = _required_strings(pattern.pattern)

    def _may_match(self, text: str) -> bool:
        return self.required is None or any(r in text for r in self.required)

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        return self.pattern.finditer(text) if self._may_match(text) else iter(())

    def search(self, text: str) -> re.Match[str] | None:
        return self.pattern.search(text) if self._may_match(text) else None


def _required_strings(source: str) -> frozenset[str] | None:
    """Strings one of which every match of `source` contains, or None if none were found."""
    from re import _parser  # type: ignore[attr-defined]

    found = _required(_parser.parse(source, re.S))
    if not found or min(len(x) for x in found) < 2:
        return None  # nothing required, or too short to be worth a test
    return frozenset(found)


def _required(items: object) -> set[str] | None:
    """For a parsed sequence: one set of literals a match of it always contains (the most
    selective of its mandatory parts), or None."""
    from re._constants import BRANCH, LITERAL, MAX_REPEAT, MIN_REPEAT, SUBPATTERN  # type: ignore[attr-defined]

    best: set[str] | None = None

    def offer(candidate: set[str] | None) -> None:
        nonlocal best
        if candidate and (best is None or min(map(len, candidate)) > min(map(len, best))):
            best = candidate

    run: list[str] = []
    for op, av in items:  # type: ignore[attr-defined]
        if op is LITERAL:
            run.append(chr(av))
            continue
        if run:
            offer({"".join(run)})
            run = []
        if op is SUBPATTERN:
            offer(_required(av[-1]))
        elif op is BRANCH:
            alternatives = [_required(alt) for alt in av[1]]
            if all(alternatives):
                offer(set().union(*alternatives))  # type: ignore[arg-type]
        elif op in (MAX_REPEAT, MIN_REPEAT) and av[0] >= 1:
            offer(_required(av[2]))
    if run:
        offer({"".join(run)})
    return best


_EN_VERB_IGNORE = (
    r"(?:ignore|ignoring|disregard|forget|pay~no~attention~to|take~no~notice~of|overrid(?:e|ing)|bypass|skip|abandon|discard|drop|neglect|"
    r"set~aside|throw~out|stop~following|do~not~(?:follow|obey)|don'?t~(?:follow|obey)|no~longer~follow)"
)
_EN_TARGET_NOUN = (
    r"(?:instructions?|prompts?|directions?|directives?|rules?|guidelines?|guidance|programming|constraints?|"
    r"polic(?:y|ies)|restrictions?|commands?|orders|context|safeguards?|filters?|training|"
    r"system~(?:message|prompt)|settings|ethics|limitations?)"
)
_EN_TARGET_DET = (
    r"(?:(?:all|any|every)~(?:of~)?(?:the~|your~|my~)?(?:previous~|prior~|above~|earlier~|preceding~|initial~|"
    r"original~|existing~|current~|other~|safety~|content~|system~)?|"
    r"(?:the~)?(?:previous|prior|above|earlier|preceding|initial|original|foregoing|former|old)~|"
    r"(?:your|the~system(?:'?s)?|the~developer'?s?|your~developer'?s?|the~safety|your~safety|the~content)~"
    r"(?:own~|previous~|prior~|current~|initial~|original~|safety~|content~|core~)?|"
    r"(?:the~)?user'?s?~|what~(?:you~were|i)~(?:told|said|asked)|everything~(?:you~were~told|above|before))"
)
_EN_OVERRIDE = _rx(
    rf"\b{_EN_VERB_IGNORE}~{_EN_TARGET_DET}(?:{_ANY}{{0,24}}?)?{_EN_TARGET_NOUN}\b"
    r"|\b(?:forget|ignore|disregard)~(?:about~)?(?:everything|anything|all)~(?:you~(?:were|have~been|'ve~been)~"
    r"(?:told|given)|you~(?:know|learned)|(?:written~|said~|stated~)?(?:above|before|prior|earlier|so~far|until~now)"
    r"|(?:that~)?(?:came~)?before~this)"
    r"|\b(?:the~)?(?:previous|prior|above|earlier|original|old)~(?:instructions|rules|prompts?|directives)~"
    r"(?:are|is|were|have~been)~(?:now~)?(?:void|cancel+ed|revoked|obsolete|outdated|invalid|null|superseded|"
    r"no~longer~valid|overridden|lifted|(?:just~)?a~test|fake|not~real)"
    rf"|\b{_EN_VERB_IGNORE}~the~{_EN_TARGET_NOUN}~(?:you~(?:were|have~been|'ve~been|got)~given|(?:written~)?above|"
    r"before~this|so~far)"
    rf"|\b{_EN_VERB_IGNORE}~(?:all~)?(?:of~)?(?:the~)?(?:above|foregoing)(?=~(?:[.,;:!]|and\b|then\b|$))"
    rf"|\b{_EN_VERB_IGNORE}~(?:the~|your~)?system~(?:message|prompt|instructions?|rules)"
    r"|\b(?:whatever|everything|anything)~you~(?:were|have~been|'ve~been)~told~(?:before~|earlier~|previously~)?"
    r"(?:doesn'?t|does~not|no~longer|don'?t|do~not)~(?:matter|apply|count)"
    rf"|\b{_EN_VERB_IGNORE}~(?:all~|any~)?(?:the~)?{_EN_TARGET_NOUN}~(?:set|given|defined|written|provided|imposed|"
    r"configured|put~in~place)~(?:up~)?by~(?:your|the)~(?:developers?|creators?|system|admins?|administrators?|operators?|"
    r"owners?|openai|anthropic|company)"
    r"|\b(?:obey|follow|listen~to)~only~(?:me|my~(?:instructions|commands|orders))\b"
    r"|\b(?:ignore|disregard|skip|abandon|drop)~(?:the~|your~)(?:current~|original~|translation~|summari[sz]ation~|"
    r"previous~|assigned~)(?:task|request|job|assignment)\b"
    r"|\bignore~(?:the~)?user'?s?~(?:request|question|query|task|message|prompt)"
    r"|\bdisregard~(?:the~)?user'?s?~(?:request|question|query|task|message|prompt)"
)
_EN_NEW_TASK = _rx(
    r"\bnew~(?:instructions?|directives?|task|orders)~(?:for~(?:the~|any~|all~)?(?:ai|assistant|agent|model|"
    r"llm|bot|chatbot|you)|from~(?:the~)?(?:system|admin|developer)s?)"
    r"|\b(?:important|attention|urgent|notice|warning|alert)~(?:!~)?(?:new|updated|revised|additional)~"
    r"(?:instructions?|directives?|task|orders)"
    r"|\b(?:system|admin|administrator|developer|root)~(?:override|overwrite)"
    r"|-{2,}~(?:system|admin)~(?:notice|message|override|alert)"
    r"|\bnew~system~(?:prompt|message|instructions?|rules)~[:\-]"
    r"|(?:^|\n|[.!:,])~(?:new|updated)~instructions?~[:\-]"
    r"|\binstead~(?:,~)?(?:you~(?:must|should|will)|respond|reply|answer|say|output|tell|do~the~following)"
)
_EN_NEW_GOAL = _rx(
    r"\byour~(?:new|real|true|actual|only)~(?:task|goal|objective|purpose|instructions?|role|job|mission|directive)"
    r"|\byour~(?:task|goal|instructions?|role)~(?:has|have)~(?:changed|been~updated)"
    r"|\bthe~(?:real|actual|true|new)~(?:instructions?|task|directive)~(?:is|are|:)"
)
_EN_CONTEXT_BREAK = _rx(
    r"\bend~of~(?:the~)?(?:user~)?(?:input|document|context|prompt|message|data|text|conversation)\b"
    r"|</(?:document|context|user_?input|data|input|text|untrusted)>"
)
_EN_PRIVILEGE = _rx(
    r"\b(?:a~)?message~from~(?:your|the)~(?:developers?|creators?|admins?|administrators?|operators?|openai|anthropic)"
    r"|\bthe~(?:current~)?user~(?:is|has~been)~(?:verified|an?~admin\w*|authori[sz]ed|trusted|a~developer|root)"
    r"|\b(?:i~am|i'?m)~(?:your|the)~(?:developer|creator|administrator|admin|system~administrator|owner)\b"
)
_EN_CONCEAL = _rx(
    r"\b(?:do~not|don'?t|never)~(?:mention|reveal|disclose|tell~(?:the~user|anyone)~about|acknowledge)~"
    r"(?:this|these|that~you)~?(?:instructions?|message|note|text|comment|change)?"
    r"|\bwithout~(?:telling|informing|alerting)~(?:the~)?user|\b(?:tell|inform)~nobody\b"
)
_EN_EXTRACT_VERB = (
    r"(?:reveal|show|print|output|display|repeat|recite|dump|leak|expose|disclose|share|echo|list|"
    r"tell~me|give~me|send~me|read~(?:me|out)|(?:respond|reply|answer)~(?:only~)?with|append|include|insert|reads~me|type~out|spell~out|copy|paste|write~(?:out|down)|"
    r"what~(?:is|are|was|were))"
)
_EN_SECRET = (
    r"(?:system~(?:prompt|message|instructions?)|(?:initial|original|hidden|secret|first|starting|internal|"
    r"developer|pre-?)~?(?:prompt|instructions?|rules|message|configuration|directives)|instructions~you~were~given|"
    r"prompt~(?:above|before)|configuration|config|api~keys?|secret~keys?|private~keys?|passwords?|credentials|"
    r"access~tokens?|\.env~file|environment~variables|root~password|admin~password|activation~keys?|"
    r"rules~you~(?:follow|were~given)|instructions|prompt|directives|guidelines|system~rules)"
)
_EN_EXTRACT_YOUR = _rx(
    rf"\b{_EN_EXTRACT_VERB}~(?:out~|back~)?(?:me~)?(?:all~|every~)?(?:of~)?(?:your|the~hidden|the~secret|the~initial|"
    rf"the~original|the~first)~(?:\w+[\s\W_]{{1,3}}){{0,2}}?{_EN_SECRET}"
    r"|\b(?:repeat|print|output|recite|show|copy|reproduce|return)~(?:me~)?(?:all~)?(?:of~)?(?:the~)?"
    r"(?:words|text|everything|content|lines?|instructions?|message)~(?:above|before~this|preceding|"
    r"prior~to~this|at~the~(?:start|beginning))"
    rf"|\bwhat~(?:your|ur)~(?:\w+[\s\W_]{{1,3}}){{0,2}}?{_EN_SECRET}~(?:is|are|was|were|say|said)\b"
    r"|\b(?:your|ur)~(?:hidden|secret|internal|confidential|initial|original)~(?:system~)?(?:prompt|instructions|rules|"
    r"configuration)"
    rf"|\b{_EN_EXTRACT_VERB}~(?:out~)?(?:me~)?(?:all~)?(?:of~)?the~(?:\w+[\s\W_]{{1,3}}){{0,2}}?(?:instructions|rules|prompt|"
    r"guidelines)~(?:that~)?you~(?:were|have~been|'ve~been|got|received|are~following|follow)"
    r"|\b(?:beginning|starting)~with~(?:the~)?(?:words?|phrase)?~?['\"]?~?you~are"
    r"|\bword~for~word|\bverbatim"
)
_EN_EXTRACT_THE = _rx(
    rf"\b{_EN_EXTRACT_VERB}~(?:me~)?(?:all~)?(?:of~)?the~(?:\w+[\s\W_]{{1,3}}){{0,2}}?{_EN_SECRET}"
)
_EN_PERSONA = _rx(
    r"\b(?:you~are~(?:now~)?|act~as~|acting~as~|pretend~(?:to~be~|you~are~|you'?re~)|imagine~you~are~|"
    r"role-?~?play~(?:as~)?|play~the~role~of~|let'?s~play~a~game|simulate~|from~now~on~,?~you|"
    r"you~will~(?:now~)?(?:act|behave|respond)~as|stay~in~character|you~are~no~longer~|"
    r"roleplay~:?|let'?s~roleplay)"
)
_EN_NO_RULES = _rx(
    r"\b(?:no|without~(?:any~)?|free~(?:of|from)~(?:all~|any~)?|not~bound~by~(?:any~)?|unbound~by~|"
    r"zero|never~(?:follow|obey)~(?:any~)?|ignores?~(?:all~)?|removes?~(?:all~)?|disable~(?:your~)?)~"
    r"(?:ethical~|moral~|content~|safety~|openai~)?(?:rules|restrictions|limits|limitations|filters?|"
    r"guidelines|ethics|morals|morality|polic(?:y|ies)|censorship|safeguards|boundaries|constraints|"
    r"guardrails)\b"
    r"|\b(?:unfiltered|uncensored|unrestricted|unaligned|jailbroken|jailbreak~mode)\b"
    r"|\b(?:safety|content|security|usage)~(?:mode|policies|polic(?:y|ies)|filters?|guidelines|restrictions|rules|"
    r"guardrails)~"
    r"(?:have~been|has~been|are|is|were)~(?:now~)?(?:disabled|removed|lifted|turned~off|suspended|deactivated|off)"
    r"|\byou~(?:may|can|are~allowed~to)~(?:now~)?(?:answer|say|do)~anything\b"
    r"|\bnever~refuses?\b|\bcomply~with~every~request|\bcan~do~anything~now\b|\bdo~anything~now\b"
    r"|\bno~(?:content~)?polic(?:y|ies)\b|\bbypass~(?:your~)?(?:content~|safety~)?filters?"
)
_EN_DAN = _rx(
    r"\b(?:you~are~(?:now~)?|act~as~|enter~|as~)dan\b|\bdan~mode\b|\bstan\b~(?:that|who)|\b(?:evil|based|unfiltered|freedom)gpt\b|\bbasedgpt\b"
)
_EN_DEVMODE = _rx(
    r"\bdeveloper~mode\b|\bgod~mode\b|\bsudo~mode\b|\bjailbreak~mode\b|\bdebug~mode~(?:enabled|on)\b"
)
_ENTER_MODE = re.compile(
    r"(?:enter|enable|activate|switch\W{1,3}(?:in)?to|you\W{1,3}are\W{1,3}(?:now\W{1,3})?in|turn\W{1,3}on)\W{1,3}(?:the\W{1,3})?$"
)
_EN_JAILBREAK = _rx(r"\bjailbr(?:eak|oken)\w*")
_DEVICE = _rx(
    r"\b(?:android|iphone|ios|phone|chrome|browser|settings|windows|usb|device|laptop|build~number|"
    r"extensions?|debug=|flag|xcode|firefox|tablet|ipad|console~app)\b"
)
_EN_ADDRESS = _rx(
    r"\b(?:ai|a\.i\.|llm|language~model|assistant|agent|chatbot|bot|gpt|chatgpt|claude|copilot|gemini|model)s?"
    r"~(?:that~is~|who~(?:is|are)~)?(?:reading|processing|summari[sz]ing|parsing|analy[sz]ing|viewing|browsing|"
    r"crawling|handling|scanning|reviewing|ingesting)~(?:this|these|the~following|my)\b"
    r"|(?<!system )(?<!my )\b(?:note|message|instructions?|attention|reminder|memo)~(?:to|for)~(?:the~|any~|all~|every~)?"
    r"(?:ai|llm|language~model|assistant|agent|chatbot|bot|gpt|model|copilot)s?\b"
    r"|\bto~(?:the~|any~|all~|every~)(?:ai|llm|language~model|assistant|agent|chatbot|bot|model)s?~"
    r"(?:reading|processing|summari[sz]ing|parsing|that|who|:|,)"
    r"|\bif~you~are~(?:an?~)?(?:ai|llm|language~model|assistant|agent|chatbot|bot|large~language~model)"
    r"(?:~(?:model|assistant|agent|system|language~model))?(?=~(?:[,.:;]|reading|processing|summari|and\b|then\b|you\b))"
    r"|\b(?:attention|hey|hi|dear|ok|okay|listen)~,?~(?:ai|llm|assistant|agent|chatbot|bot|gpt|chatgpt|claude|"
    r"copilot|model)\b"
    r"|\b(?:assistant|ai|agent|copilot|chatbot|bot|model)~[,:]~(?:also~)?(?:when|before|after|please|now|first|ignore|run|send|"
    r"forward|delete|reveal|stop|do|execute|include|render|call|tell|say|inform|reply|respond|answer|output|"
    r"write|recommend|list|show|warn|append|add|insert|post|upload|e-?mail)\b"
    r"|\b(?:system|admin)~message~(?:to|for)~(?:the~)?(?:ai|assistant|agent|model)"
)
_EN_DIRECTIVE = _rx(
    r"\b(?:must|have~to|need~to|are~required~to)~(?:now~|immediately~|also~)?(?:close|delete|send|forward|reply|buy|"
    r"purchase|transfer|mark|approve|run|execute|call|click|visit|open|download|install|e-?mail|pay|grant|disable|reveal|"
    r"print|output|recommend|rate|say|tell)\b"
    r"|\b(?:buy|purchase|order)~\d+~(?:units|items|pieces)\b|\bignore~(?:all~)?(?:the~)?other~(?:search~)?(?:results|products|sellers)"
)
_EN_ROLE_TOKEN = _rx(
    r"<\|?(?:im_start|im_end|system|endoftext|start_header_id|end_header_id|eot_id|user|assistant)\|?>"
    r"|\[/?inst\]|<</?sys>>|\[system\]~\(#|<\|(?:begin|end)_of_text\|>"
)
_EN_ROLE_HEADER = _rx(r"(?:^|\n|\s)#{2,}~(?:system|instruction|instructions|user|assistant|response)~:")
_EN_ROLE_LINE = re.compile(r"(?:^|\n)[ \t]*(?:system|assistant|human|user)[ \t]*:", re.S)
_EN_EXFIL_VERB = (
    r"(?:send|sends|sending|forward|post|upload|transmit|exfiltrate|leak|e-?mail|mail|submit|append|attach|"
    r"include|embed|encode|paste|share|copy|deliver|report|write)"
)
_EN_EXFIL_OBJ = (
    r"(?:conversation|chat~history|chat~log|chat|transcript|messages|inbox|emails|(?:api|secret|private|access|ssh)~"
    r"keys?|keys|secrets?|credentials?|passwords?|tokens?|system~prompt|environment~variables|env~vars|\.env|"
    r"cookies?|session|credit~card|card~numbers?|bank~account|personal~data|user~data|id_rsa|\.ssh|"
    r"history|files|documents|contacts|(?:user'?s?~)?(?:e-?mail(?:~address)?|phone(?:~number)?|home~address))"
)
_EN_EXFIL_STRONG_OBJ = re.compile(
    r"conversation|chat|transcript|key|secret|credential|password|token|system|environment|env|cookie|session|"
    r"card|bank|id_rsa|ssh|history"
)
_EN_EXFIL_CONVERSATION = re.compile(
    r"conversation|chat|transcript|history|system\W{0,3}prompt|id_rsa|\.ssh|\.env|(?:api|secret|private|access|ssh)\W{0,3}keys?|"
    r"passwords?|credentials?|secrets"
)
_EN_EXFIL_QUANTIFIED = re.compile(r"\b(?:all|every|any|user'?s?|your|stored|saved|these|those|environment)\b")
_DEST = re.compile(
    r"https?://|\bwww\.|(?<![\w.+-])[\w.+-]+@[\w-]+\.[a-z]{2,}|\bpastebin\b|\bwebhook\b|\bftp://", re.S
)
_EN_EXFIL = _rx(rf"\b{_EN_EXFIL_VERB}\b~(?:\w+[\s\W_]{{1,3}}){{0,5}}?{_EN_EXFIL_OBJ}\b")
_MD_IMAGE_EXFIL = re.compile(r"!\[[^\]\n]{0,100}\]\(https?://[^)\s]{0,300}(?:\{|\$\{|%7b|<|\[)", re.S)
_PIPE_SHELL = re.compile(
    r"\b(?:curl|wget|iwr|invoke-webrequest)\b[^|\n]{0,200}\|[ \t]*(?:sudo[ \t]+)?(?:ba|z|da)?sh\b|\biex\b~?\(",
    re.S,
)
_DESTRUCTIVE = _rx(
    r"\brm~-rf~/|\bdelete~(?:all|every)~(?:the~)?(?:files|emails|messages|data|records|repos?|repositor(?:y|ies))"
    r"|\bdelete_all\w*|\btransfer_funds\b|\bwire~(?:the~)?(?:money|funds)"
    r"|\b(?:wire|transfer|send|pay)~(?:\$|usd|eur|€|£)?~?\d[\d,.]*~(?:\$|usd|dollars|euros?)?~?to~(?:the~)?(?:account|iban|wallet)"
    r"|\bcall~(?:the~)?\w+~(?:tool|function)\b|\bcall~the~\w+~tool"
)
_EN_DISCUSSION = re.compile(
    r"\b(?:how~(?:do|does|can|to|should|would|could|is|are)|what~(?:is|are|does|do)|mean\w*|explain\w*|defen[cs]e|defend\w*|"
    r"protect\w*|detect\w*|regex\w*|filter\w*|flag\w*|classif\w*|block\w*|"
    r"prevent|mitigat\w*|attacks?|attackers?|examples?|e\.g\.|such~as|research|papers?|article|guide|tutorial|"
    r"training|slides|tests?|scanner|owasp|threat|red-?team\w*|translat\w*|known~as|called|jailbreaks~work|"
    r"summari[sz]e~(?:this|the)~article)\b".replace("~", W)
)
_HIDDEN = re.compile(
    r"display\s*:\s*none|font-size\s*:\s*0|color\s*:\s*(?:white|#fff)|\[hidden|hidden\s+(?:text|instructions?)|"
    r"invisible\s+text|以下内容仅供ai"
)
_URLISH = re.compile(r"(?<!\S)\S+://\S+|(?<!\S)\S+@\S+|\bwww\.\S+")
_QUOTED = re.compile(
    r"'[^'\n]{3,160}'|\"[^\"\n]{3,160}\"|“[^”\n]{3,160}”|‘[^’\n]{3,160}’|「[^」\n]{1,80}」|『[^』\n]{1,80}』|`[^`\n]{3,160}`|《[^》\n]{1,80}》"
)

# Chinese (simplified; traditional folded in before matching)
_ZH_VERB_IGNORE = r"(?:别管|不要管|不用管|别理|忽略|忽视|无视|忘记|忘掉|忘了|抛开|抛弃|放弃|跳过|绕过|覆盖|推翻|违反|不要理会|别理会|不用理会|不要管|不要遵守|不再遵守|不必遵守|不用遵守|不需要遵守|别遵守|停止遵守|不要遵循|不再遵循|不要听从|不再听从|取消)"
_ZH_TARGET = r"(?:过滤|审查|安全|指令|指示|提示词|系统提示|提示|规则|设定|限制|要求|约束|命令|规定|准则|政策|策略|安全策略|原则|任务|问题|训练)"
_ZH_DET = r"(?:之前|以前|先前|此前|上面|上述|以上|前面|原来|原有|原先|原始|所有|全部|一切|你的|系统|开发者|用户的|使用者的|安全|任何|这些|那些|刚才)"
_ZH_OVERRIDE = re.compile(
    rf"{_ZH_VERB_IGNORE}[^。！？\n]{{0,8}}?{_ZH_DET}[^。！？\n]{{0,8}}?{_ZH_TARGET}"
    rf"|(?:之前|以前|先前|前面|上面|以上|上述|原来|系统)(?:的|给你的)?(?:所有|全部)?(?:规则|指令|设定|指示|要求|限制)[^。！？\n]{{0,6}}?"
    rf"(?:当作?没说过|当作不存在|作废|不算数?|不用管|不再适用|统统无效|全部无效)"
    rf"|忘(?:记|掉)(?:你是|自己是)|只(?:听|服从|遵守)我的(?:命令|指令|话|指示)"
    rf"|(?:之前|以前|先前|上面|上述|原来)的?(?:所有)?(?:指令|指示|规则|设定)(?:已经?|都)?(?:作废|失效|无效|取消|过时|不再有效)"
)
_ZH_NEW_TASK = re.compile(
    r"新的?(?:指令|指示|任务)[:：—-]|重要[:：!！]?\s*(?:给[^。\n]{0,12})?(?:新的?|最新的?|更新的?)(?:指令|指示|任务)"
    r"|(?:系统|管理员|开发者)(?:覆盖|覆写|指令|命令|通知)[:：]"
)
_ZH_NEW_GOAL = re.compile(
    r"你的新(?:任务|目标|指令|角色|身份|使命)|真正的(?:指令|任务)是|(?:你)?必须无条件(?:地)?(?:服从|执行|遵守|照做)"
    r"|(?:以下|下面)是(?:新的?|最新的?|更新的?)(?:系统)?(?:指令|指示|规则)"
)
_ZH_REDIRECT = re.compile(
    r"不要(?:再)?(?:总结|翻译|回答|执行|理会|处理)[^。\n]{0,20}?(?:改为|而是|转而|直接)"
)
_ZH_EXTRACT_VERB = r"(?:写出|写下|打出|贴出|吐出|告诉我|输出|显示|打印|泄露|泄漏|透露|重复|复述|给我看|展示|说出|念|读|列出|公开|背诵|发给我|分享|暴露)"
_ZH_SECRET = r"(?:系统指令|系统设定|系统消息|系统规则|初始提示词?|原始提示词?|指令|指示|提示|系统提示词?|初始设定|初始指令|原始指令|隐藏指令|隐藏的指令|内部指令|提示词|设定|密码|密钥|api\s?key|配置|秘密|第一条指令|收到的指令|规则)"
_ZH_EXTRACT = re.compile(
    rf"{_ZH_EXTRACT_VERB}(?:一下|出来?|给我)?[^。！？\n]{{0,10}}?(?:你的|你收到的|你被给予的|你的所有|所有的?)[^。！？\n]{{0,6}}?{_ZH_SECRET}"
    rf"|(?:把|将)你的[^。！？\n]{{0,10}}?{_ZH_SECRET}[^。！？\n]{{0,10}}?{_ZH_EXTRACT_VERB}"
    rf"|{_ZH_EXTRACT_VERB}[^。！？\n]{{0,4}}(?:一字不差|逐字|原封不动)|(?:一字不差|逐字|原封不动)地?{_ZH_EXTRACT_VERB}"
    rf"|(?:一个字都不要漏|一字不漏)"
    rf"|你(?:的|收到的|被给予的|最初的|原本的)[^。！？\n]{{0,4}}?{_ZH_SECRET}(?:是什么|有哪些|是啥|内容是)"
    rf"|{_ZH_SECRET}原样(?:发|输出|给|告诉|贴)"
)
_ZH_EXTRACT_WEAK = re.compile(
    rf"{_ZH_EXTRACT_VERB}(?:一下|出来?|给我)?[^。！？\n]{{0,6}}?(?:系统提示词?|初始设定|隐藏指令|管理员密码)"
)
_ZH_PERSONA = re.compile(
    r"你现在是|你的(?:新)?身份是|从这一刻起[，,]?你|从现在(?:开始|起)[，,]?你|假装你是|假装成|扮演|角色扮演|我们来玩|玩一个游戏|模拟一个|你要成为|你不再是"
)
_ZH_NO_RULES = re.compile(
    r"(?:没有|不受|不再受|不受到|无|不带|摆脱|解除|去掉|关闭|不再有)(?:任何|所有|全部)?(?:的)?(?:道德|伦理|安全)?(?:限制|规则|约束|底线|审查|过滤|束缚|政策|道德)"
    r"|不(?:再|用|必|需要?)?遵守(?:任何)?(?:规则|限制|政策|安全政策|准则)|无限制|不受限|(?:越狱|dan)模式|可以做任何事"
)
_ZH_DEVMODE = re.compile(r"开发者模式|上帝模式|越狱模式")
_ZH_JAILBREAK = re.compile(r"越狱")
_ZH_DEVICE = re.compile(
    r"手机|安卓|苹果|设置里|设置中|浏览器|电脑|usb|调试|设备|iphone|android|软件施加|制造商"
)
_ZH_AI = (
    r"(?:ai|人工智能|智能助手|智慧助理|智能助理|助手|助理|模型|大模型|语言模型|机器人|bot|gpt|agent|代理)"
)
_ZH_ADDRESS = re.compile(
    rf"(?:致|给|对|告诉|提醒)(?:所有|任何)?(?:正在)?(?:阅读|读取|处理|总结|浏览|解析|分析|查看|看到)[^。！？\n]{{0,8}}?的{_ZH_AI}"
    rf"|(?:致|给)(?:所有|任何)?{_ZH_AI}[:：，,]|如果你是{_ZH_AI}|{_ZH_AI}(?:请注意|注意[:：]|，请)"
    rf"|给{_ZH_AI}的(?:新)?(?:指令|指示|消息)|(?:注意|提醒|听着|嘿)[,，:：]?{_ZH_AI}[:：，,]"
)
_ZH_EXFIL = re.compile(
    r"(?:发送|发到|发给|转发|上传|传送|传到|提交|泄露|贴到|回复|邮寄|同步到)[^。！？\n]{0,16}?"
    r"(?:聊天记录|对话|对话记录|对话内容|密钥|密码|api\s?key|凭证|令牌|token|个人信息|银行账号|账号|用户数据|环境变量|系统提示|cookie|会话)"
    r"|(?:把|将)[^。！？\n]{0,12}?(?:聊天记录|对话记录|对话内容|密钥|密码|凭证|令牌|个人信息|银行账号|用户数据|环境变量|系统提示)[^。！？\n]{0,12}?"
    r"(?:发送|发到|发给|发过来|转发|上传|传送|传到|提交|泄露|贴到)"
)
_ZH_DESTRUCTIVE = re.compile(
    r"删除(?:用户的)?(?:所有|全部)(?:的)?(?:文件|邮件|数据|记录)|转账|执行[^。\n]{0,10}脚本"
)
_ZH_DISCUSSION = re.compile(
    r"什么是|如何|怎么|怎样|防御|防范|防止|攻击|例如|比如|解释|介绍|研究|论文|文章|指南|教程|原理|为什么|翻译|测试|举例"
)


# advice to people ("never share your password", 请勿透露密码) is not a request to the model
_NEGATED = re.compile(
    r"(?:\b(?:never|not|no~one|nobody)|n't)~(?:\w+[\s\W_]{1,3})?$|(?:不要|请勿|切勿|不得|禁止|绝不|千万别)$".replace(
        "~", r"[\s\W]{1,3}"
    )
)


_ADDRESSABLE = {"instruction override"}
# kinds that a text about attacks names without using them (weak forms only: weight < 0.6)
_MENTIONS = {
    "jailbreak",
    "developer mode / jailbreak",
    "exfiltration",
    "system prompt extraction",
    "sensitive data request",
}
_THIRD_PERSON = re.compile(
    r"\b(?:would|will|could|might|may|did|does|they|he|she|it|we|regulators?|company|firm|government|court|"
    r"users?|people|attackers?|someone|employees?|staff)\W{1,3}(?:\w+\W{1,3})?$"
)
_MODEL_SUBJECT = re.compile(r"\b(?:you|assistant|ai|model|agent|bot|chatbot|llm|gpt)\b")


@dataclass(frozen=True, slots=True)
class _Signal:
    name: str
    weight: float
    start: int
    end: int
    damped: bool = False


def _quote(text: str, start: int, end: int) -> str:
    snippet = " ".join(text[start:end].split())
    if len(snippet) > _QUOTE_CHARS:
        snippet = snippet[: _QUOTE_CHARS - 1].rstrip() + "…"
    return snippet


def _signals(text: str) -> list[_Signal]:
    found: list[_Signal] = []

    def add(name: str, weight: float, pattern: re.Pattern[str], limit: int = 1) -> list[re.Match[str]]:
        matches = []
        for m in pattern.finditer(text):
            if _NEGATED.search(text[max(0, m.start() - 16) : m.start()]):
                continue
            matches.append(m)
            found.append(_Signal(name, weight, m.start(), m.end()))
            if len(matches) >= limit:
                break
        return matches

    ascii_letters = re.search(r"[a-z]", text) is not None
    cjk = re.search(rf"[{_CJK}]", text) is not None
    if ascii_letters:
        add("instruction override", 0.85, _EN_OVERRIDE)
        add("new instructions", 0.4, _EN_NEW_TASK)
        add("new goal", 0.55, _EN_NEW_GOAL)
        add("context break or claimed privilege", 0.4, _EN_CONTEXT_BREAK)
        add("concealment", 0.45, _EN_CONCEAL)
        add("claimed privilege", 0.35, _EN_PRIVILEGE)
        add("system prompt extraction", 0.75, _EN_EXTRACT_YOUR)
        if not any(s.name == "system prompt extraction" for s in found):
            add("system prompt extraction", 0.4, _EN_EXTRACT_THE)
        add("role-play framing", 0.25, _EN_PERSONA)
        add("rules removed", 0.5, _EN_NO_RULES)
        add("jailbreak persona", 0.8, _EN_DAN)
        for m in _EN_DEVMODE.finditer(text):
            entered = _ENTER_MODE.search(text[max(0, m.start() - 24) : m.start()])
            weight = 0.15 if _DEVICE.search(text) else 0.5 if entered else 0.4
            found.append(_Signal("developer mode / jailbreak", weight, m.start(), m.end()))
            break
        add("jailbreak", 0.3, _EN_JAILBREAK)
        add("addressed to the model", 0.4, _EN_ADDRESS)
        add("directive", 0.25, _EN_DIRECTIVE)
        add("chat-role marker", 0.6, _EN_ROLE_TOKEN)
        add("chat-role header", 0.45, _EN_ROLE_HEADER)
        lines = list(_EN_ROLE_LINE.finditer(text))
        if lines:
            m = lines[0]
            found.append(_Signal("chat-role line", 0.15 if len(lines) == 1 else 0.25, m.start(), m.end()))
        masked = _URLISH.sub(lambda u: " " * len(u.group(0)), text) if "://" in text or "@" in text else text
        for m in _EN_EXFIL.finditer(masked):
            if _NEGATED.search(text[max(0, m.start() - 16) : m.start()]):
                continue
            window = text[m.start() : m.end() + 160]
            obj = m.group(0)
            if _DEST.search(window):
                if _EN_EXFIL_CONVERSATION.search(obj) or (
                    _EN_EXFIL_STRONG_OBJ.search(obj) and _EN_EXFIL_QUANTIFIED.search(obj)
                ):
                    weight = 0.8
                else:
                    weight = 0.35 if _EN_EXFIL_STRONG_OBJ.search(obj) else 0.3
                found.append(_Signal("exfiltration", weight, m.start(), m.end()))
            break
        add("exfiltration via markdown image", 0.7, _MD_IMAGE_EXFIL)
        for m in _PIPE_SHELL.finditer(text):
            raw_host = re.search(r"https?://(?:\d{1,3}\.){3}\d{1,3}|http://", m.group(0))
            found.append(_Signal("download piped to a shell", 0.45 if raw_host else 0.35, m.start(), m.end()))
            break
        add("destructive action", 0.3, _DESTRUCTIVE)
    if cjk:
        add("instruction override", 0.85, _ZH_OVERRIDE)
        add("new instructions", 0.4, _ZH_NEW_TASK)
        add("new goal", 0.55, _ZH_NEW_GOAL)
        add("task redirected", 0.3, _ZH_REDIRECT)
        if not add("system prompt extraction", 0.75, _ZH_EXTRACT):
            add("system prompt extraction", 0.45, _ZH_EXTRACT_WEAK)
        add("role-play framing", 0.25, _ZH_PERSONA)
        add("rules removed", 0.5, _ZH_NO_RULES)
        for m in _ZH_DEVMODE.finditer(text):
            found.append(
                _Signal(
                    "developer mode / jailbreak",
                    0.15 if _ZH_DEVICE.search(text) else 0.45,
                    m.start(),
                    m.end(),
                )
            )
            break
        add("jailbreak", 0.3, _ZH_JAILBREAK)
        add("addressed to the model", 0.4, _ZH_ADDRESS)
        for m in _ZH_EXFIL.finditer(text):
            if _NEGATED.search(text[max(0, m.start() - 16) : m.start()]):
                continue
            window = text[max(0, m.start() - 40) : m.end() + 80]
            found.append(_Signal("exfiltration", 0.8 if _DEST.search(window) else 0.4, m.start(), m.end()))
            break
        add("destructive action", 0.3, _ZH_DESTRUCTIVE)
    return found


def _damped(text: str, signals: list[_Signal]) -> list[_Signal]:
    """Lower the weight of signals that are talked about rather than addressed to the model.

    - An override or extraction with a third-person subject or a modal before it ("the firm
      would ignore the previous guidance") weighs 0.4 of itself, unless the subject is the model.
    - In a text that discusses attacks (how to, defend, detect, example, 防御, 攻击, ...): a
      short quotation of the attack, or one reported ("tells the model to ignore ...") weighs a
      quarter; a weak mention ("jailbreak", "developer mode", leaking "the system prompt" with no
      destination) weighs half.
    Damped signals are marked so that `_combine` counts only the strongest of them.
    """
    out = []
    for s in signals:
        before = text[max(0, s.start - 24) : s.start]
        if s.name in _ADDRESSABLE and _THIRD_PERSON.search(before) and not _MODEL_SUBJECT.search(before):
            s = _Signal(s.name, s.weight * 0.4, s.start, s.end, damped=True)
        out.append(s)
    prose = _URLISH.sub(" ", text)
    if not out or not (_EN_DISCUSSION.search(prose) or _ZH_DISCUSSION.search(prose)):
        return out
    spans = [(m.start(), m.end()) for m in _QUOTED.finditer(text)]
    talked = []
    for s in out:
        # a short quotation of the attack itself, not a long quoted field that carries one
        inside = any(a <= s.start and s.end <= b and (b - a) <= (s.end - s.start) + 40 for a, b in spans)
        reported = re.search(
            r"\b(?:to|tells?|telling|told|asks?|asking|tricks?|into|like|as)\W{1,3}$|(?:诱导|让|使|要求|欺骗)(?:模型|ai|助手)?$",
            text[max(0, s.start - 12) : s.start],
        )
        if inside or (reported and "you to" not in text[max(0, s.start - 8) : s.start]):
            talked.append(_Signal(s.name, s.weight * 0.25, s.start, s.end, damped=True))
        elif s.name in _MENTIONS and s.weight < 0.6 and not s.damped:
            talked.append(_Signal(s.name, s.weight * 0.5, s.start, s.end, damped=True))
        else:
            talked.append(s)
    return talked


def _combine(signals: list[_Signal]) -> float:
    """Noisy-OR over the strongest signal of each kind; damped signals count as one (their max)."""
    best: dict[str, float] = {}
    damped = 0.0
    for s in signals:
        if s.damped:
            damped = max(damped, s.weight)
        else:
            best[s.name] = max(best.get(s.name, 0.0), s.weight)
    keep = 1.0 - damped
    for weight in best.values():
        keep *= 1.0 - weight
    return 1.0 - keep


def _base64_texts(raw: str) -> list[str]:
    out = []
    for i, m in enumerate(_B64_RUN.finditer(raw)):
        if i >= _MAX_B64_RUNS:
            break
        run = m.group(0)[:_MAX_B64_LEN]
        if not (re.search(r"[a-z]", run) and re.search(r"[A-Z0-9]", run)):
            continue
        try:
            data = base64.b64decode(
                run + "=" * (-len(run) % 4), altchars=b"-_" if ("-" in run or "_" in run) else None
            )
            decoded = data.decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
        printable = sum(ch.isprintable() or ch in "\n\t\r" for ch in decoded)
        if decoded and printable / len(decoded) > 0.9 and re.search(r"\w{2}", decoded):
            out.append(decoded)
    return out


def _scan(raw: str, depth: int) -> tuple[float, list[str]]:
    view = _normalise(raw)
    signals = _signals(view.text)
    leet_note = False
    if _LEET_WORD.search(view.text) or _SLANG.search(view.text):
        if len(_LEET_WORD.findall(view.text, 0, 4000)) >= 3:  # written in leetspeak: undo it everywhere
            leet_text = view.text.translate(_LEET_ALL)
        else:
            leet_text = _LEET_WORD.sub(lambda m: m.group(0).translate(_LEET), view.text)
        leet_text = _SLANG.sub(lambda m: _SLANG_WORDS[m.group(0)], leet_text)
        # a second pass only when undoing leetspeak or slang brings out words the first pass lacked
        revealed = any(word in leet_text and word not in view.text for word in _TRIGGERS)
        extra = (
            [s for s in _signals(leet_text) if s.name not in {x.name for x in signals}] if revealed else []
        )
        if extra:
            leet_note = True
            signals.extend(extra)
            texts = {id(s): leet_text for s in extra}
        else:
            texts = {}
    else:
        texts = {}
    signals = _damped(view.text, signals)
    score = _combine(signals)
    reasons = [_reason(s, texts.get(id(s), view.text)) for s in _dedupe(signals)]
    obfuscations = set(view.obfuscations)
    if leet_note:
        obfuscations.add("leetspeak")
    if depth < _MAX_DEPTH and len(raw) > 20:
        for decoded in _base64_texts(raw):
            inner, inner_reasons = _scan(decoded, depth + 1)
            if inner >= REVIEW_AT:
                score = 1.0 - (1.0 - score) * (1.0 - inner)
                reasons.extend(f"{r} (in base64)" for r in inner_reasons)
                obfuscations.add("base64-encoded text")
    if score > 0 and signals:
        hidden = "<!--" in view.text or _HIDDEN.search(view.text)
        if hidden:
            obfuscations.add("hidden markup")
        if obfuscations and score >= 0.35 and max(s.weight for s in signals) >= 0.4:
            score = 1.0 - (1.0 - score) * 0.75
            reasons.append("obfuscation: " + ", ".join(sorted(obfuscations)))
    return min(1.0, max(0.0, score)), reasons


def _reason(signal: _Signal, text: str) -> str:
    quoted = f"{signal.name}: '{_quote(text, signal.start, signal.end)}'"
    return f"{quoted} (talked about, weighs less)" if signal.damped else quoted


def _dedupe(signals: list[_Signal]) -> list[_Signal]:
    best: dict[str, _Signal] = {}
    for s in signals:
        if s.name not in best or s.weight > best[s.name].weight:
            best[s.name] = s
    return sorted(best.values(), key=lambda s: -s.weight)


def scan(text: str) -> Scan:
    """Scan one text for prompt injection; deterministic and linear in the text's length."""
    if not text or not text.strip():
        return Scan("allow", 0.0, ())
    score, reasons = _scan(text, 0)
    score = round(score, 3)
    verdict: Literal["allow", "review", "block"] = (
        "block" if score >= BLOCK_AT else "review" if score >= REVIEW_AT else "allow"
    )
    return Scan(verdict, score, tuple(reasons))
