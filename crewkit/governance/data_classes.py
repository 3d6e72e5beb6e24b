"""Which kinds of sensitive data a text holds: deterministic detectors, English and Chinese.

`detect(text)` returns `Hit(data_class, evidence)` for each finding, the evidence a short line
with the sensitive value masked (`card ending 1111`, `IBAN DE89…3000`). The risk policy
(`crewkit.governance.risk`) turns data classes into tiers. The classes:

- `payment`: payment card numbers (Luhn check, card-network prefix), CVV/CVC codes;
- `bank_details`: IBANs (mod-97 check), account / routing (ABA check) / sort codes, SWIFT;
- `money_movement`: an order to transfer, wire, pay or refund an amount (转账/汇款/付款 + 金额);
- `credentials`: API keys and tokens of known formats, private keys, `password: ...`, 密码是...;
- `personal_data`: e-mail addresses, phone numbers, national ids (US SSN, Chinese resident id
  with its check digit, UK NI number), postal addresses, dates of birth;
- `external_side_effect`: sending mail or messages, posting, writing or deleting files,
  deploying (发送邮件/发邮件, 删除文件, 部署).

Values (a card number, an IBAN) count wherever they appear. Intents (money movement, side
effects) do not count in a clause that asks for code or an explanation ("write a function that
sends an email", "如何转账"): such a task produces text, it moves nothing. Checksums keep
ordinary numbers out: a random 16-digit number is not a card unless it passes Luhn.

The secret-format patterns and the Luhn check are shared with the output guardrails
(`crewkit.governance.guardrails` imports them from here).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

DATA_CLASSES: tuple[str, ...] = (
    "payment",
    "bank_details",
    "money_movement",
    "credentials",
    "personal_data",
    "external_side_effect",
)

# How a reason line names each class ("mentions a bank account (IBAN DE89…3000)").
DESCRIPTIONS: dict[str, str] = {
    "payment": "mentions payment card data",
    "bank_details": "mentions a bank account",
    "money_movement": "moves money",
    "credentials": "contains credentials",
    "personal_data": "contains personal data",
    "external_side_effect": "has an external side effect",
}


@dataclass(frozen=True)
class Hit:
    data_class: str
    evidence: str  # short, the sensitive value masked


# --- shared with the output guardrails ------------------------------------------------------

SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    "OpenAI-style API key": re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    "private key block": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    "password or secret assignment": re.compile(
        r"(?i)\b(?:password|passwd|secret|api[_-]?key|token)\s*[:=]\s*['\"]?[^\s'\"]{8,}"
    ),
}
CARD_CANDIDATE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")


def luhn(digits: str) -> bool:
    """The Luhn check digit test (payment cards)."""
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# --- checksums ------------------------------------------------------------------------------


def is_card_number(digits: str) -> bool:
    """13-19 digits, a card network's leading digit (2-6: Mastercard, Visa, Amex, Discover,
    JCB, UnionPay, Diners), not one repeated digit, and the Luhn check."""
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and len(set(digits)) > 1 and luhn(digits)


def is_iban(compact: str) -> bool:
    """ISO 13616: country, check digits, account; mod 97 of the rearranged number is 1."""
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def is_cn_resident_id(value: str) -> bool:
    """GB 11643: 17 digits (area, birth date, sequence) and an ISO 7064 MOD 11-2 check char."""
    value = value.upper()
    if not re.fullmatch(r"[1-9]\d{16}[\dX]", value):
        return False
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    if not 1900 <= born.year <= date.today().year:
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _CN_ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == value[17]


def is_aba_routing(digits: str) -> bool:
    if len(digits) != 9 or len(set(digits)) == 1:
        return False
    d = [int(c) for c in digits]
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 0


# --- masking --------------------------------------------------------------------------------


def mask(value: str, head: int = 4, tail: int = 4) -> str:
    """`DE89…3000`: enough to recognise, not enough to use. Short values keep only the tail."""
    value = value.strip()
    if len(value) <= head + tail + 2:
        return "…" + value[-min(tail, max(len(value) // 3, 1)) :]
    return f"{value[:head]}…{value[-tail:]}"


def _mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}…@{domain}"


# --- value detectors ------------------------------------------------------------------------

_CVV = re.compile(
    r"(?i)(?:\b(?:cvv2?|cvc2?|cid|card security code|security code)\b|安全码|卡背后?三位数?)"
    r"\s*(?:is|是|为|[:：=#])?\s*(\d{3,4})(?!\d)"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_ACCOUNT = re.compile(
    r"(?i)(?:\b(?:bank\s+)?(?:account|acct|a/c)(?:\s*(?:number|no\.?|num|#))?|"
    r"银行卡号?|银行账[号户]|帐号|账号|账户|卡号|收款账户)"
    r"\s*(?:is|是|为|[:：#])?\s*(\d(?:[ -]?\d){5,29})(?![\d-])"
)
_ROUTING = re.compile(
    r"(?i)\b(?:routing|aba|transit)(?:\s*(?:number|no\.?|#))?\s*(?:is)?\s*[:#]?\s*(\d{9})(?!\d)"
)
_SORT_CODE = re.compile(r"(?i)\bsort\s*code\s*(?:is)?\s*[:#]?\s*(\d{2}-\d{2}-\d{2})\b")
_SWIFT = re.compile(
    r"(?i)(?:\b(?:swift|bic)(?:\s*code)?|银行代码)\s*(?:is|是|为|[:：#])?\s*"
    r"([A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?)\b"
)
_SECRET_WORD = re.compile(
    r"(?i)(?P<word>\b(?:password|passcode|passphrase|passwd|pwd|pin(?:\s*code)?|secret(?:\s*key)?|"
    r"api[\s_-]?key|access[\s_-]?key|token)\b|密码|口令|密钥|私钥|秘钥|令牌|支付密码|登录密码)"
    r"\s*(?:is|was|是|为|[:：=])\s*[\"'“‘]?(?P<value>[^\s\"'”’，。,;；]{4,})"
)
_BEARER = re.compile(r"(?i)\bBearer\s+([A-Za-z0-9._\-]{16,})")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]++@(?:[A-Za-z0-9-]++\.)+[A-Za-z]{2,}+(?![A-Za-z0-9-])"
)
_EXAMPLE_DOMAIN = re.compile(r"(?i)(?:^|\.)(?:example\.(?:com|org|net)|test|invalid|localhost|example)$")
_PHONE_CN = re.compile(r"(?<![\d+])(?:(?:\+|00)?86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}(?!\d)")
_PHONE_INTL = re.compile(r"(?<![\w+])\+[1-9]\d{0,2}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}(?!\d)")
_PHONE_US = re.compile(r"(?<![\w.-])\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}(?![\d.-])")
_PHONE_WORD = re.compile(
    r"(?i)(?:\b(?:phone|tel|telephone|mobile|cell)(?:\s*(?:number|no\.?|#))?|手机号?码?|电话号?码?|联系电话)"
    r"\s*(?:is|是|为|[:：#])?\s*(\+?\d(?:[\s-]?\d){6,14})(?!\d)"
)
_SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")
_CN_ID = re.compile(r"(?<![\dA-Za-z])[1-9]\d{16}[\dXx](?![\dA-Za-z])")
_UK_NI = re.compile(
    r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)
_ADDRESS_EN = re.compile(
    r"\b\d{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|"
    r"Court|Ct|Way|Place|Pl|Terrace|Square|Sq)\b\.?"
)
_ADDRESS_WORD = re.compile(  # a keyword, then something with a house number within 40 characters
    r"(?i)(?:\b(?:(?:home|postal|mailing|street|billing|shipping|delivery|my|his|her|their|your)\s+address"
    r"(?:\s+is|\s*[:：])|lives\s+at)|(?:家庭住址|住址|收货地址|地址)\s*(?:是|为|[:：]))"
    r"\s*(?=[^\n。；;]{0,40}\d)(\S[^\n。；;]{5,})"
)
_PASSPORT = re.compile(
    r"(?i)(?:\b(?:passport|driver'?s?\s+licen[cs]e|driving\s+licen[cs]e)(?:\s*(?:number|no\.?|#))?|护照号?码?|驾驶证号?码?)"
    r"\s*(?:is|是|为|[:：#])?\s*([A-Z0-9]{6,12})\b"
)
_ADDRESS_CN = re.compile(
    r"[\u4e00-\u9fa5]{2,8}(?:省|市)[\u4e00-\u9fa5]{1,8}(?:区|县|市)[\u4e00-\u9fa5\d]{1,12}(?:路|街|道|巷)\d+号"
)
_DATE = (
    r"(?:\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}日?|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|"
    r"\d{1,2}\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{4}|"
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2},?\s+\d{4})"
)
_BIRTH = re.compile(
    rf"(?i)(?:\b(?:date\s+of\s+birth|d\.?o\.?b\.?|birth\s*date|birthday|born\s+on)\b|出生日期|出生年月日?|生日|出生于)"
    rf"\s*(?:is|是|为|[:：])?\s*({_DATE})"
)


def _payment(text: str) -> Iterator[Hit]:
    for m in CARD_CANDIDATE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if is_card_number(digits) and not is_cn_resident_id(digits):
            yield Hit("payment", f"card ending {digits[-4:]}")
    if _CVV.search(text):
        yield Hit("payment", "card security code ***")


def _bank(text: str) -> Iterator[Hit]:
    for m in _IBAN.finditer(text):
        compact = m.group().replace(" ", "")
        if is_iban(compact):
            yield Hit("bank_details", f"IBAN {mask(compact)}")
    for m in _ACCOUNT.finditer(text):
        digits = re.sub(r"\D", "", m.group(1))
        if len(digits) >= 6:
            yield Hit("bank_details", f"account number {mask(digits, 2, 4)}")
    for m in _ROUTING.finditer(text):
        if is_aba_routing(m.group(1)):
            yield Hit("bank_details", f"routing number {mask(m.group(1), 2, 2)}")
    for m in _SORT_CODE.finditer(text):
        yield Hit("bank_details", f"sort code {mask(m.group(1), 2, 2)}")
    for m in _SWIFT.finditer(text):
        yield Hit("bank_details", f"SWIFT/BIC {m.group(1)[:4].upper()}…")


def _credentials(text: str) -> Iterator[Hit]:
    for name, pattern in SECRET_PATTERNS.items():
        if name != "password or secret assignment" and pattern.search(text):
            yield Hit("credentials", f"{name} ***")
    for m in _SECRET_WORD.finditer(text):
        if _looks_secret(m.group("value")):
            yield Hit("credentials", f"{' '.join(m.group('word').lower().split())} ***")
    if _BEARER.search(text) or _JWT.search(text):
        yield Hit("credentials", "bearer token ***")


_COMMON_WORDS = frozenset(
    {
        "required",
        "needed",
        "incorrect",
        "invalid",
        "wrong",
        "correct",
        "missing",
        "empty",
        "expired",
        "changed",
        "reset",
        "strong",
        "weak",
        "secure",
        "hidden",
        "stored",
        "encrypted",
        "hashed",
        "optional",
        "mandatory",
        "long",
        "short",
        "different",
        "same",
    }
)


def _looks_secret(value: str) -> bool:
    """A value, not a word: 'hunter2', '123456', 'Tr0ub4dor&3', '密码是abc123'; not 'required'."""
    if value.lower().rstrip(".!") in _COMMON_WORDS or "*" in value or value.startswith(("<", "{", "$")):
        return False
    return bool(
        re.search(r"\d", value) or re.search(r"[^\w\s]", value) or re.fullmatch(r"[A-Za-z]{12,}", value)
    )


def _personal(text: str) -> Iterator[Hit]:
    for m in _EMAIL.finditer(text):
        if not _EXAMPLE_DOMAIN.search(m.group().rpartition("@")[2]):
            yield Hit("personal_data", f"e-mail {_mask_email(m.group())}")
    phones = {
        re.sub(r"\D", "", m.group()) for p in (_PHONE_CN, _PHONE_INTL, _PHONE_US) for m in p.finditer(text)
    }
    phones |= {re.sub(r"\D", "", m.group(1)) for m in _PHONE_WORD.finditer(text)}
    for digits in sorted(phones):
        if not is_card_number(digits):
            yield Hit("personal_data", f"phone number {mask(digits, 0, 4)}")
    for m in _SSN.finditer(text):
        yield Hit("personal_data", f"US social security number ***-**-{m.group()[-4:]}")
    for m in _CN_ID.finditer(text):
        if is_cn_resident_id(m.group()):
            yield Hit("personal_data", f"resident id number {mask(m.group(), 2, 2)}")
    for m in _UK_NI.finditer(text):
        yield Hit("personal_data", f"national insurance number {mask(m.group().replace(' ', ''), 2, 1)}")
    for m in _PASSPORT.finditer(text):
        if re.search(r"\d", m.group(1)):
            yield Hit("personal_data", f"passport or licence number {mask(m.group(1), 1, 2)}")
    if _ADDRESS_EN.search(text) or _ADDRESS_WORD.search(text) or _ADDRESS_CN.search(text):
        yield Hit("personal_data", "postal address ***")
    if _BIRTH.search(text):
        yield Hit("personal_data", "date of birth ***")


# --- intent detectors -----------------------------------------------------------------------

# A clause that asks for code or an explanation describes an action; it does not take it.
_CLAUSE_SPLIT = re.compile(
    r"[.!?;\n。！？；]+|,?\s+(?:and\s+)?then\s+|,\s*and\s+|[，,]\s*(?:然后|再|并且?|接着)"
)
_DESCRIBES_EN = re.compile(
    r"(?i)\b(?:function|method|class|script|program|code|snippet|regex|algorithm|module|api|library|sql|"
    r"query|queries|command|cron ?job|"
    r"unit tests?|tests? for|example|tutorial|explain|describe|summari[sz]e|translate|what (?:is|are|does)|"
    r"how|why|essay|story|poem|article|definition|difference between)\b"
)
# Chinese puts the noun last ("写一个发送邮件的函数"): code nouns count anywhere in the clause,
# the other markers only before the match.
_CODE_CN = re.compile(r"函数|脚本|程序|代码|算法|正则|示例|例子|教程")
_DESCRIBES_CN = re.compile(
    r"测试|解释|说明|描述|总结|概括|翻译|什么是|什么叫|如何|怎么|怎样|为什么|介绍|文章|故事|诗"
)

_AMOUNT = (
    r"(?:(?:[$€£¥￥]|\b(?:usd|eur|gbp|cny|rmb|jpy|chf|hkd)\s?)\s?\d[\d,]*+(?:\.\d++)?(?:\s?(?:k|m|million|thousand|万|千))?"
    r"|(?<![\d,.])\d[\d,]*+(?:\.\d++)?\s?(?:k|m|million|thousand|万|千|百)?\s?"
    r"(?:usd|eur|gbp|cny|rmb|jpy|chf|cad|aud|hkd|sgd|dollars?|euros?|pounds?|yuan|yen|francs?|bucks|btc|eth|"
    r"bitcoins?|元|块钱?|美元|欧元|英镑|日元|港币|港元|人民币)(?![A-Za-z])"
    r"|(?<![零〇一二两三四五六七八九十百千万亿])[零〇一二两三四五六七八九十百千万亿]++\s*(?:元|块钱?|美元|欧元|英镑|日元)"
    r"|(?<![零〇一二两三四五六七八九十百千万亿\d])(?:\d++(?:\.\d++)?|[零〇一二两三四五六七八九十百千]++)\s?[万千亿](?![\w\u4e00-\u9fff]))"
)
_MONEY_EN = re.compile(
    rf"(?i)\b(?:transfer|wire|remit|send|pay|refund|withdraw|deposit|charge|move|payout|"
    rf"make\s+an?\s+(?:payment|transfer|deposit|withdrawal|wire)\s+of)\b(?:\s+[\w'@.-]+){{0,5}}?\s+({_AMOUNT})"
    rf"|\b(?:transfer|wire|send|move|remit)\s+(?:the\s+|some\s+|all\s+(?:the\s+)?)?(?:funds|money|payment)\b"
    rf"|\bpay\s+(?:the|this|that|my|our|an?)\s+(?:\w+\s+)?(?:invoice|bill|vendor|supplier|contractor|salary|salaries|fee)"
)
_MONEY_CN_VERB = r"(?:转账|转帐|汇款|付款|支付|打款|转给|汇给|转钱|退款|提现|充值|打钱|划款|划转|缴费|转入|转出|付给|汇入|转到|汇到|打到)"
_MONEY_CN = re.compile(
    rf"{_MONEY_CN_VERB}[^，。；,;.!?！？\n]{{0,12}}?({_AMOUNT})|({_AMOUNT})[^，。；,;.!?！？\n]{{0,8}}?{_MONEY_CN_VERB}"
    rf"|(?:转账|转帐|汇款|打款|打钱)(?:给|到|至)"
)

_SIDE_EFFECTS_EN: list[tuple[str, re.Pattern[str]]] = [
    (
        "sends a message",
        re.compile(
            r"(?i)\bsend(?:ing)?\s+(?:\w+\s+){0,3}?(?:e-?mails?|mails?|messages?|sms|texts?|newsletters?|"
            r"notifications?|invites?|invitations?|replies|reply|dms?)\b"
            r"|\b(?:message|ping|dm)\s+(?:[\w'-]+\s+){0,3}?on\s+(?:slack|teams|discord|wechat|whatsapp|telegram)\b"
            r"|(?:^\s*|\b(?:then|and|please|also)\s+)(?:e-?mail|notify)\s+"
            r"(?:the|our|all|each|every|him|her|them|me|us|(?-i:[A-Z][a-z]+))\b"
        ),
    ),
    (
        "posts or publishes",
        re.compile(
            r"(?i)\b(?:post|publish|tweet|share|upload)\s+(?:[\w'-]+\s+){0,4}?(?:to|on|onto)\s+(?:the\s+|our\s+|my\s+)?"
            r"(?:twitter|x|slack|linkedin|facebook|instagram|reddit|discord|teams|wechat|weibo|blog|website|site|"
            r"social media|channel|forum|github|s3|bucket|server|production|pypi|npm)\b"
            r"|\b(?:publish|tweet)\s+(?:the|this|a|an|our|my)\s+"
        ),
    ),
    (
        "writes or deletes files or data",
        re.compile(
            r"(?i)\b(?:delete|remove|erase|wipe|purge|drop|destroy|overwrite|truncate)\s+(?:[\w'-]+\s+){0,3}?"
            r"(?:files?|folders?|director(?:y|ies)|records?|rows?|tables?|databases?|backups?|buckets?|"
            r"repos?|repositor(?:y|ies)|branch(?:es)?|accounts?|users?|customers?|logs?|data)\b"
            r"|\b(?:write|save|store|dump|export)\s+(?:[\w'-]+\s+){0,3}?(?:to|into|in)\s+(?:a\s+|the\s+)?"
            r"(?:[\w.-]+\s+)?(?:files?|disk|folder|directory|database|bucket)\b"
            r"|\b(?:create|write|overwrite)\s+(?:a\s+|the\s+)?(?:new\s+)?files?\b"
            r"|\brm\s+-[a-z]*[rf]|\bdrop\s+(?:table|database)\b|\btruncate\s+table\b"
        ),
    ),
    (
        "deploys or pushes",
        re.compile(
            r"(?i)\b(?:re)?deploy\b|\bgit\s+push\b|\bpush\s+(?:\w+\s+){0,2}?to\s+(?:main|master|prod(?:uction)?|origin|remote)\b"
            r"|\broll\s*out\s+(?:\w+\s+){0,3}?to\s+(?:prod(?:uction)?|users|customers)\b"
        ),
    ),
]
_SIDE_EFFECTS_CN: list[tuple[str, re.Pattern[str]]] = [
    (
        "sends a message",
        re.compile(
            r"发送.{0,6}?(?:邮件|短信|消息|通知|微信)|发(?:邮件|短信|消息|微信|通知)|群发|发[给到][^，。；,;\n]{0,8}?邮箱"
        ),
    ),
    ("posts or publishes", re.compile(r"发布(?!会)|发帖|推送到|上传到|发到(?:群|朋友圈|微博|网站)")),
    (
        "writes or deletes files or data",
        re.compile(
            r"(?:删除|删掉|清空|清除|抹掉|覆盖)[^，。；,;\n]{0,8}?(?:文件|目录|文件夹|数据库|数据|记录|表|账号|账户|用户|备份|仓库|分支|日志)"
            r"|(?:写入|保存到|存到|导出到)[^，。；,;\n]{0,8}?(?:文件|磁盘|硬盘|目录|数据库)"
        ),
    ),
    ("deploys or pushes", re.compile(r"部署|上线|推送到(?:生产|线上|主分支)")),
]


def _clauses(text: str) -> list[str]:
    return [c for c in _CLAUSE_SPLIT.split(text) if c and c.strip()]


def _describes(clause: str, start: int) -> bool:
    before = clause[:start]
    return bool(_DESCRIBES_EN.search(before) or _DESCRIBES_CN.search(before) or _CODE_CN.search(clause))


def _intents(text: str) -> Iterator[Hit]:
    for clause in _clauses(text):
        for pattern in (_MONEY_EN, _MONEY_CN):
            m = pattern.search(clause)
            if m and not _describes(clause, m.start()):
                yield Hit("money_movement", f"'{_short(m.group())}'")
        for what, pattern in (*_SIDE_EFFECTS_EN, *_SIDE_EFFECTS_CN):
            m = pattern.search(clause)
            if m and not _describes(clause, m.start()):
                yield Hit("external_side_effect", f"{what}: '{_short(m.group())}'")


def _short(phrase: str, limit: int = 32) -> str:
    phrase = " ".join(phrase.split())
    return phrase if len(phrase) <= limit else phrase[: limit - 1] + "…"


_DETECTORS: tuple[Callable[[str], Iterator[Hit]], ...] = (_payment, _bank, _credentials, _personal, _intents)


def detect(text: str) -> list[Hit]:
    """Every finding in `text`, deduplicated, in the order of `DATA_CLASSES`."""
    if not text or not isinstance(text, str):
        return []
    hits: dict[Hit, None] = {}
    for detector in _DETECTORS:
        for hit in detector(text):
            hits.setdefault(hit, None)
    return sorted(hits, key=lambda h: DATA_CLASSES.index(h.data_class))


def classes(text: str) -> tuple[str, ...]:
    """The data classes found in `text`, in the order of `DATA_CLASSES`."""
    found = {hit.data_class for hit in detect(text)}
    return tuple(c for c in DATA_CLASSES if c in found)


def mask_values(text: str) -> str:
    """`text` with card numbers, card codes, secrets and national ids masked (for approval
    subjects a person reads and the state store keeps). Bank and contact details stay readable:
    whoever approves a transfer needs to see where it goes."""
    if not text or not isinstance(text, str):
        return text

    def card(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group())
        return f"[card ending {digits[-4:]}]" if is_card_number(digits) else m.group()

    text = CARD_CANDIDATE.sub(card, text)
    text = _CVV.sub(lambda m: m.group()[: m.start(1) - m.start()] + "***", text)
    text = _SECRET_WORD.sub(
        lambda m: (
            m.group()[: m.start("value") - m.start()] + "***"
            if _looks_secret(m.group("value"))
            else m.group()
        ),
        text,
    )
    for pattern in (
        *(p for n, p in SECRET_PATTERNS.items() if n != "password or secret assignment"),
        _BEARER,
        _JWT,
    ):
        text = pattern.sub("***", text)
    text = _CN_ID.sub(lambda m: mask(m.group(), 2, 2) if is_cn_resident_id(m.group()) else m.group(), text)
    return _SSN.sub(lambda m: "***-**-" + m.group()[-4:], text)
