"""Data-class detectors: English and Chinese positives, ordinary tasks clean, checksums against noise."""

from __future__ import annotations

import random
import time
from typing import get_args

import pytest

from crewkit.governance import data_classes as dc
from crewkit.settings import DataClass


def _card(prefix: str, length: int, rng: random.Random) -> str:
    """A Luhn-valid number with this prefix (the check digit computed)."""
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        if dc.luhn(body + check):
            return body + check
    raise AssertionError("unreachable")


def _cn_id(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, dc._CN_ID_WEIGHTS, strict=True))
    return first17 + "10X98765432"[total % 11]


@pytest.mark.parametrize(
    ("text", "data_class"),
    [
        ("Charge card 4111 1111 1111 1111 for the order", "payment"),
        ("card 5500-0000-0000-0004, CVV 123", "payment"),
        ("CVC: 987", "payment"),
        ("信用卡 4111111111111111 安全码 123", "payment"),
        ("Transfer 500 EUR to DE89 3704 0044 0532 0130 00", "bank_details"),
        ("IBAN GB82WEST12345698765432", "bank_details"),
        ("account number 12345678, routing number 021000021", "bank_details"),
        ("sort code 12-34-56", "bank_details"),
        ("收款账户：6228480402564890018", "bank_details"),
        ("我的银行卡号是 6222 0202 0000 0000 123", "bank_details"),
        ("Transfer 500 EUR to my savings", "money_movement"),
        ("Pay $1,200 to John for the invoice", "money_movement"),
        ("wire 2,000 USD to the supplier", "money_movement"),
        ("Explain the refund policy and then refund $50 to the customer", "money_movement"),
        ("请给张三转账500元", "money_movement"),
        ("wire USD 500 to the supplier", "money_movement"),
        ("Send $500 to my friend", "money_movement"),
        ("Pay the invoice", "money_movement"),
        ("帮我支付这个订单 299 元", "money_movement"),
        ("把 5000 元转到我妈的卡上", "money_movement"),
        ("给供应商打款两万", "money_movement"),
        ("my address is 12 Rue de Rivoli, Paris", "personal_data"),
        ("passport number E12345678", "personal_data"),
        ("护照号码 G12345678", "personal_data"),
        ("Please transfer 1000 dollars to account 12345678", "bank_details"),
        ("My credit card number is 4532015112830366", "payment"),
        ("api key: abcd1234efgh", "credentials"),
        ("Message the team on Slack", "external_side_effect"),
        ("把报告发到张三的邮箱", "external_side_effect"),
        ("向这个账户汇款一万元", "money_movement"),
        ("付款 300 元给供应商", "money_movement"),
        ("key: sk-proj-abcdefghijklmnopqrstuv0123", "credentials"),
        ("AKIAABCDEFGHIJKLMNOP", "credentials"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE", "credentials"),
        ("my password is hunter2", "credentials"),
        ("密码是abc123", "credentials"),
        ("登录口令：Xy9#2024", "credentials"),
        ("密钥为 a8f5f167f44f4964e6c998dee827110c", "credentials"),
        ("Authorization: Bearer abcdefghijklmnop1234", "credentials"),
        ("Email the report to jane.doe@acme.com", "personal_data"),
        ("Call me at +44 20 7946 0958", "personal_data"),
        ("phone: (415) 555-0132", "personal_data"),
        ("手机号 13812345678", "personal_data"),
        ("SSN 123-45-6789", "personal_data"),
        ("身份证号 11010519491231002X", "personal_data"),
        ("He lives at 221 Baker Street, London", "personal_data"),
        ("地址：北京市海淀区中关村大街1号", "personal_data"),
        ("date of birth: 1990-05-17", "personal_data"),
        ("出生日期 1990年5月17日", "personal_data"),
        ("Send the newsletter to all subscribers", "external_side_effect"),
        ("Email the team about the outage", "external_side_effect"),
        ("Post the summary to Slack", "external_side_effect"),
        ("Delete the old backup files", "external_side_effect"),
        ("Save the results to a file", "external_side_effect"),
        ("Deploy the new version to production", "external_side_effect"),
        ("rm -rf /var/data", "external_side_effect"),
        ("发送邮件给客户", "external_side_effect"),
        ("给老板发邮件说明进度", "external_side_effect"),
        ("删除文件 /tmp/report.txt", "external_side_effect"),
        ("把服务部署到生产环境", "external_side_effect"),
    ],
)
def test_detects_each_data_class(text: str, data_class: str) -> None:
    assert data_class in dc.classes(text), dc.detect(text)


@pytest.mark.parametrize(
    "text",
    [
        "Write a palindrome function in Python",
        "Explain recursion with an example",
        "Summarise this article about bank fraud and IBAN scams",
        "Write a function that sends an email",
        "Write a Python script to delete old log files",
        "Write a function that validates credit card numbers with the Luhn algorithm",
        "Write a function that computes how much to pay, e.g. $5",
        "How do I transfer $100 between accounts in my banking app?",
        "Create a table comparing Python and Rust",
        "Remove duplicates from the list",
        "Improve the error message the user sees",
        "The password is required and must be long",
        "Write a password strength checker",
        "Translate 'good morning' into French",
        "Calculate 15% of 2000 dollars",
        "What is the difference between TCP and UDP?",
        "Explain how deployment pipelines work",
        "Order 1234 5678 9012 3456 shipped on 2024-01-15",
        "Use user@example.com as the sample address in the docs",
        "Version 1.2.3 was released in 2023",
        "How much should I pay for a $300 bike?",
        "Write a SQL query to delete rows older than 30 days",
        "Write a bash command to delete all log files",
        "Draft an email to the customer about the delay",
        "Explain what a CVV is and what an IBAN is",
        "Calculate compound interest on $1000 at 5% for 3 years",
        "Send me a poem about the sea",
        "He lives at the end of the street",
        "Explain the difference between passports and visas",
        "列出一千万个理由",
        "请写一个计算转账手续费的函数，转账金额 500 元",
        "写一个判断回文的函数",
        "解释一下递归",
        "写一个发送邮件的函数",
        "如何转账",
        "总结这篇关于转账诈骗的文章",
        "计算 1 到 100 的和",
    ],
)
def test_ordinary_tasks_are_clean(text: str) -> None:
    assert dc.detect(text) == []


def test_random_16_digit_numbers_failing_luhn_are_not_cards() -> None:
    rng = random.Random(7)
    checked = 0
    while checked < 300:
        number = str(rng.randint(4 * 10**15, 5 * 10**15 - 1))
        if dc.luhn(number):
            continue
        checked += 1
        assert "payment" not in dc.classes(f"reference {number}"), number


def test_luhn_valid_numbers_with_a_card_prefix_are_cards() -> None:
    rng = random.Random(11)
    for prefix, length in [("4", 16), ("51", 16), ("37", 15), ("62", 19), ("35", 16)]:
        number = _card(prefix, length, rng)
        hits = [h for h in dc.detect(f"pay with {number}") if h.data_class == "payment"]
        assert hits and hits[0].evidence == f"card ending {number[-4:]}"


def test_luhn_valid_numbers_without_a_card_prefix_or_repeated_digits_are_not_cards() -> None:
    rng = random.Random(3)
    assert not dc.is_card_number(_card("1", 16, rng))
    assert not dc.is_card_number(_card("9", 16, rng))
    assert not dc.is_card_number("4444444444444448"[:0] + "0" * 16)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("DE89370400440532013000", True),
        ("GB82WEST12345698765432", True),
        ("DE89370400440532013001", False),
        ("GB82WEST12345698765433", False),
        ("XX00", False),
    ],
)
def test_iban_checksum(value: str, valid: bool) -> None:
    assert dc.is_iban(value) is valid


def test_iban_failing_mod_97_is_not_bank_details() -> None:
    assert "bank_details" not in dc.classes("send it to DE89 3704 0044 0532 0130 01")


def test_chinese_resident_id_check_digit_and_birth_date() -> None:
    good = _cn_id("44030419900101123")
    assert dc.is_cn_resident_id(good)
    wrong_check = good[:17] + ("0" if good[17] != "0" else "1")
    assert not dc.is_cn_resident_id(wrong_check)
    assert not dc.is_cn_resident_id(_cn_id("44030419901301123"))  # month 13
    assert "personal_data" in dc.classes(f"身份证 {good}")
    assert dc.classes(f"编号 {wrong_check}") == ()


def test_aba_routing_checksum() -> None:
    assert dc.is_aba_routing("021000021")
    assert not dc.is_aba_routing("021000022")
    assert "bank_details" not in dc.classes("routing number 021000022")


def test_evidence_masks_the_sensitive_value() -> None:
    text = (
        "Pay with 4111 1111 1111 1111 to DE89 3704 0044 0532 0130 00, my password is hunter2, "
        "身份证号 11010519491231002X, SSN 123-45-6789"
    )
    evidence = " | ".join(h.evidence for h in dc.detect(text))
    for secret in ("4111 1111 1111 1111", "4111111111111111", "DE89370400440532013000", "hunter2",
                   "11010519491231002X", "123-45-6789"):  # fmt: skip
        assert secret not in evidence
    assert "IBAN DE89…3000" in evidence and "card ending 1111" in evidence


def test_mask_values_hides_cards_secrets_and_ids_but_keeps_bank_details_readable() -> None:
    text = "card 4111 1111 1111 1111 CVV 123, password: hunter2!, 身份证 11010519491231002X, IBAN DE89370400440532013000"
    masked = dc.mask_values(text)
    assert "4111 1111" not in masked and "[card ending 1111]" in masked
    assert "hunter2" not in masked and "123," not in masked
    assert "11010519491231002X" not in masked
    assert "DE89370400440532013000" in masked


def test_settings_and_detectors_name_the_same_data_classes() -> None:
    assert tuple(get_args(DataClass)) == dc.DATA_CLASSES
    assert set(dc.DESCRIPTIONS) == set(dc.DATA_CLASSES)


def test_hits_are_deduplicated_and_ordered_by_class() -> None:
    hits = dc.detect("Email jane.doe@acme.com. Transfer 500 EUR now. Email jane.doe@acme.com again.")
    assert [h.data_class for h in hits] == sorted((h.data_class for h in hits), key=dc.DATA_CLASSES.index)
    assert len(hits) == len(set(hits))


@pytest.mark.parametrize(
    "text",
    [
        "1" * 100_000,
        "a." * 50_000,
        "1-" * 50_000,
        "1," * 50_000,
        "$1 " * 30_000,
        "转账1" * 20_000,
        "a@a." * 30_000,
    ],
)
def test_detection_stays_linear_on_long_adversarial_text(text: str) -> None:
    started = time.perf_counter()
    dc.detect(text)
    dc.mask_values(text)
    assert time.perf_counter() - started < 3.0


def test_a_sentence_with_the_word_text_is_not_a_message() -> None:
    assert dc.detect("Use planning and text guardrails (guardrail: no_pii) on the task") == []
    assert "external_side_effect" in dc.classes("Please email Bob the minutes")
