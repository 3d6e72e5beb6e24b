"""Plans follow the task: `crewkit.plan.normalise` over what a small planner model writes."""

from __future__ import annotations

import pytest

from crewkit.plan import Plan, normalise
from crewkit.task_profile import asks_for_code, profile, split_parts


def plan(*subs: tuple[str, str, str]) -> Plan:
    return Plan.model_validate(
        {"subtasks": [{"description": d, "task_type": t, "acceptance": a} for d, t, a in subs]}
    )


def copied_example(task: str) -> Plan:
    """What the planner wrote for nearly every task: its prompt's example, with the task pasted in."""
    return plan(
        (f"Write the code for: {task}"[:200], "code", "The answer contains working code."),
        (f"Explain the solution to: {task}"[:200], "reasoning", "The explanation covers how it works."),
    )


@pytest.mark.parametrize(
    "task",
    [
        "为什么天空是蓝色的？",
        "A bat and a ball cost $1.10 in total. The bat costs $1.00 more than the ball. How much does the ball cost?",
        "What is 2+2?",
    ],
)
def test_a_one_part_question_gets_one_reasoning_subtask_not_the_copied_example(task):
    subs = normalise(copied_example(task), task).subtasks
    assert len(subs) == 1
    assert subs[0].task_type == "reasoning"
    assert subs[0].description == task
    assert "code" not in subs[0].acceptance.lower()


def test_a_one_part_code_task_gets_one_code_subtask():
    task = "Write a Python function that merges two sorted lists"
    (sub,) = normalise(copied_example(task), task).subtasks
    assert sub.task_type == "code" and sub.description == task
    assert sub.acceptance == "The answer contains working code."  # the model's criterion, allowed here


def test_vision_only_when_the_task_is_about_an_image():
    task = "Describe what is shown in the attached photo of a street"
    (sub,) = normalise(copied_example(task), task).subtasks
    assert sub.task_type == "vision"
    text_task = "Describe the water cycle"
    assert (
        normalise(plan(("Describe the water cycle image", "vision", "Describes it.")), text_task)
        .subtasks[0]
        .task_type
        == "reasoning"
    )


def test_invented_subtasks_are_dropped_from_a_multi_part_plan():
    task = "Write a palindrome checker and explain it"
    model = plan(
        ("Write is_palindrome(s) in Python.", "code", "Has code."),
        ("Explain how the palindrome check works.", "reasoning", "Explains."),
        ("Design a database schema for users.", "reasoning", "Has a schema."),
        ("Create a vision model for cats.", "vision", "Sees cats."),
    )
    subs = normalise(model, task).subtasks
    assert [s.task_type for s in subs] == ["code", "reasoning"]
    assert [s.description for s in subs] == [model.subtasks[0].description, model.subtasks[1].description]


def test_a_plan_missing_the_asked_for_code_falls_back_to_the_tasks_parts():
    task = "Write a palindrome checker and explain it"
    subs = normalise(plan(("Explain how palindromes work.", "reasoning", "Explains.")), task).subtasks
    assert [(s.description, s.task_type) for s in subs] == [
        ("Write a palindrome checker", "code"),
        ("explain it", "reasoning"),
    ]


def test_an_unusable_plan_becomes_one_deterministic_subtask():
    task = "Summarise the causes of the French Revolution"
    (sub,) = normalise(None, task).subtasks
    assert (sub.description, sub.task_type) == (task, "reasoning")


def test_acceptance_asking_for_sections_the_task_never_asked_for_is_replaced():
    task = "Why is the sky blue?"
    model = plan(("Why is the sky blue?", "reasoning", "Includes unit tests and a table."))
    (sub,) = normalise(model, task).subtasks
    assert sub.acceptance == "Answers the task directly and correctly."


def test_a_long_one_part_task_points_at_the_overall_task():
    task = "Explain " + "the history of the printing press in Europe, " * 10
    (sub,) = normalise(None, task).subtasks
    assert sub.description == "Complete the overall task as stated."


@pytest.mark.parametrize(
    ("task", "parts"),
    [
        ("Write a Python function that checks whether a string is a palindrome, and explain it.", 2),
        ("What is 2+2?", 1),
        ("A bat and a ball cost $1.10. The bat costs $1 more. How much is the ball?", 1),
        ("1. Define entropy\n2. Give an example\n3. Explain why it grows", 3),
        ("Fix this: def f(d): return {'a': d['b']}  # and {placeholder} text", 1),
        ("用Python写一个函数，并解释它的原理。", 2),
    ],
)
def test_parts_of_a_task(task, parts):
    assert len(split_parts(task)) == parts


@pytest.mark.parametrize(
    ("task", "code"),
    [
        ("Write a Python function that merges two lists", True),
        ("Explain what the GIL in Python is", False),
        ("Fix this: def f(d): return d['b']", True),
        ("Write a poem about autumn", False),
        ("用Python写一个函数", True),
        ("为什么天空是蓝色的？", False),
    ],
)
def test_asks_for_code(task, code):
    assert asks_for_code(task) is code


def test_profile_main_type():
    assert profile("What does this screenshot show?").main_type == "vision"


@pytest.mark.parametrize("task", ["2+2?", "hi", "What is X? Why?"])
def test_very_short_tasks_and_parts_still_make_a_valid_plan(task):
    subs = normalise(copied_example(task), task).subtasks
    assert subs and all(len(s.description) >= 8 for s in subs)
    assert all(s.task_type == "reasoning" for s in subs)
