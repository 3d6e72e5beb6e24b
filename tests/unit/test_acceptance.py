"""Deterministic acceptance checks: each fails an answer on its own, with a reason to act on."""

from __future__ import annotations

import pytest

from crewkit.governance.acceptance import check_answer, code_blocks, dominant_script, expected_number


def failed(answer: str, **kw) -> dict[str, str]:
    kw.setdefault("task", "Write a Python function that merges two sorted lists")
    return {c.check: c.reason for c in check_answer(answer, **kw) if not c.passed}


def test_python_block_that_does_not_parse_fails_with_its_line():
    answer = "```python\ndef merge(a, b):\n    return sorted(a + b\n```"
    reasons = failed(answer, subtask="s1", task_type="code")
    assert "code_parses" in reasons and reasons["code_parses"].startswith(
        "s1: the python code does not parse"
    )
    assert not failed("```python\ndef merge(a, b):\n    return sorted(a + b)\n```", task_type="code")


def test_untagged_python_and_unfenced_python_are_parsed_too():
    assert "code_parses" in failed("```\ndef merge(a, b)\n    return a\n```", task_type="code")
    assert "code_parses" in failed("def merge(a, b)\n    return a + b", task_type="code")
    assert not failed("def merge(a, b): return sorted(a + b)", task_type="code")


def test_json_block_must_parse_and_braces_must_balance():
    assert "code_parses" in failed('```json\n{"a": 1,}\n```', task="Give the config as JSON")
    assert "code_parses" in failed("```js\nfunction f(a) { return [a;\n}\n```", task="Write a JS function f")
    assert not failed('```json\n{"a": 1}\n```', task="Give the config as JSON")


def test_a_code_subtask_without_code_fails():
    assert "required_sections" in failed("You could merge them by sorting.", task_type="code")


@pytest.mark.parametrize(
    "answer",
    [
        "I'm ready to assist you. Please share the JSON plan so I can start.",
        "As an AI language model, I need more details. Could you provide the task?",
        "我准备好了，请提供JSON计划。",
        "I'm ready to assist. What task do you have in your mind?",
        "Sure! Let me know what you would like me to write.",
        # two answers the embedded model gave in real runs
        "\"I'm ready to assist you today. In this task, I'll be providing a detailed explanation of the "
        '[/INST] token in detail."\nYour ENTIRE response should contain exactly 3 paragraphs separated by '
        "markdown dividers: **********",
        '"This is the final criteria for your answer. Your best response must include a detailed explanation '
        "of each difference between TCP and UDP, including their differences in terms of data transfer rates, "
        'packet sizes, and error correction mechanisms."',
        "I'm ready to assist you with your problem. Please go ahead and present the scenario, and I'll do my "
        "best to provide a clear and concise answer that will help you understand the logic behind this "
        "puzzle.\n\nIn this case, we have two seemingly unrelated concepts: bat costs $1 more than ball (bat) "
        "and ball is twice as much as bat. This problem requires careful consideration of both sides of an "
        "equation and logical thinking in order to arrive at a solution.",
    ],
)
def test_meta_replies_fail(answer):
    assert "not_meta_reply" in failed(answer, task="What is the capital of France?")


def test_a_polite_opening_before_a_real_answer_passes():
    answer = "Happy to help! The capital of France is Paris, on the Seine."
    assert not failed(answer, task="What is the capital of France?")


def test_an_echo_of_the_task_fails():
    task = "Explain why the sky is blue during the day and red at sunset"
    assert "not_echo" in failed("Explain why the sky is blue during the day and red at sunset.", task=task)
    assert not failed("Air scatters blue light more than red, so the day sky looks blue.", task=task)


def test_a_chinese_task_answered_in_english_fails_and_in_chinese_passes():
    task = "为什么天空是蓝色的？"
    assert "same_language" in failed("The sky is blue because air scatters short wavelengths.", task=task)
    assert not failed("因为空气分子对短波长的蓝光散射更强，所以天空看起来是蓝色的。", task=task)
    assert not failed("Blue", task=task)  # too short to tell
    assert not failed("你好，世界", task="Translate 'hello world' into Chinese")  # asked for


def test_scripts_are_told_apart():
    assert dominant_script("Почему небо голубое?") == "Cyrillic"
    assert dominant_script("用Python写一个函数") == "CJK"
    assert dominant_script("x = 1") is None


@pytest.mark.parametrize(
    ("acceptance", "answer", "missing"),
    [
        ("Includes an example.", "Sorting merges them.", "example"),
        ("Explains how it works.", "```python\nx = 1\n```", "explanation"),
        ("Has unit tests.", "```python\ndef f(): return 1\n```", "tests"),
        ("Lists the steps.", "Just do it.", "steps"),
        ("Gives a bulleted list of causes.", "Rain.", "list"),
        ("Shows the result in a table.", "It is 3.", "table"),
    ],
)
def test_sections_the_criteria_ask_for_must_be_there(acceptance, answer, missing):
    reasons = failed(answer, task="Describe it", acceptance=acceptance)
    assert missing in reasons.get("required_sections", "")


def test_sections_present_pass():
    answer = (
        "It works by comparing ends.\n\nFor example:\n\n1. take the ends\n2. compare them\n\nassert f() == 1"
    )
    assert not failed(
        answer, task="Describe it", acceptance="Explains with an example, steps and tests for it."
    )


def test_arithmetic_has_one_right_answer():
    assert expected_number("What is 2+2?") == "4"
    assert expected_number("Calculate 17 * 3") == "51"
    assert expected_number("Write a story about 2 cats") is None
    assert "computed_answer" in failed("banana", task="What is 2+2?")
    assert not failed("2 + 2 = 4", task="What is 2+2?")


def test_empty_answer_fails_first_and_alone():
    checks = check_answer("  \n", task="What is 2+2?", subtask="s1")
    assert [(c.check, c.passed) for c in checks] == [("not_empty", False)]


def test_reasons_never_quote_the_answer():
    answer = "I'm ready to assist you. Please share the JSON plan. zebra-7731"
    for reason in failed(answer, task="为什么天空是蓝色的？").values():
        assert "zebra" not in reason


def test_unterminated_fence_is_a_block_to_the_end():
    (block,) = code_blocks("Here:\n```python\ndef f(:\n")
    assert block.lang == "python" and "def f(:" in block.code


def test_prose_that_starts_like_python_is_not_parsed_as_code():
    answer = "import duties are taxes on goods.\nclass sizes vary by school."
    assert not failed(answer, task="Explain import duties and class sizes")


def test_a_rewrite_task_may_repeat_its_text_and_dashes_are_not_sums():
    text = "the committee will meet on tuesday to discuss the budget for next year and its priorities"
    assert not failed(text.capitalize() + ".", task=f"Fix the capitalisation: {text}")
    assert expected_number("What is 2026-11-26?") is None
    assert expected_number("What is 10 - 4?") == "6"


def test_only_the_subtask_that_asks_for_the_sum_must_state_it():
    task = "What is 2+2? Explain why."
    assert "computed_answer" in failed("five", task=task, description="What is 2+2?")
    assert not failed("Adding two and two counts four items in all.", task=task, description="Explain why.")


def test_brackets_inside_strings_and_comments_do_not_count():
    js = "```js\nfetch('http://x.org/(').then((r) => r);  // don't close (\nfunction f() { return [1]; }\n```"
    assert "code_parses" not in failed(js, task="Write a JS function f")
