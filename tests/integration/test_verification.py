"""Integration: on the real embedded model, plans follow the task and a missing capability is stated.

These assert what the flow decides deterministically around a 135M model, so they hold whatever
the model writes: the plan's shape and types, which roles were called, what the record says.
"""

from __future__ import annotations

import pytest

from crewkit.models.registry import RoleMap
from crewkit.runtime.runner import run_flow

pytestmark = pytest.mark.integration


def test_a_vision_task_on_the_text_only_embedded_model_is_stated_not_invented(settings):
    task = "Describe what is in this photo of my cat"
    outcome = run_flow(settings, RoleMap(settings), "default", {"task": task})
    record = outcome.record
    assert record["status"] == "done", record.get("error")
    assert [(s["description"], s["task_type"]) for s in record["plan"]] == [(task, "vision")]
    assert set(record["usage"]) == {"reasoning"} and record["usage"]["reasoning"]["calls"] == 1  # the planner
    assert "role 'vision' runs 'local-small'" in record["result"]
    assert record["limitations"] and "not attempted" in record["verification"]["summary"]


def test_a_chinese_question_gets_one_reasoning_subtask_and_a_verdict_from_the_checks(settings):
    task = "为什么天空是蓝色的？"
    outcome = run_flow(settings, RoleMap(settings), "default", {"task": task})
    record = outcome.record
    assert [(s["description"], s["task_type"]) for s in record["plan"]] == [(task, "reasoning")]
    assert "code" not in record["usage"]  # no copied "Write the code for: ..." subtask
    verification = record["verification"]
    assert {c["check"] for c in verification["checks"]} >= {"not_empty", "not_meta_reply", "same_language"}
    if record["status"] == "done":  # then the checks passed: the answer is in Chinese
        assert verification["verdict"] == "passed"
    else:
        assert verification["verdict"] == "failed" and "verifier rejected" in record["error"]
