"""API keys: never borrowed from another variable, placeholders refused, and what reaches the wire.

The wire tests point CrewAI's real OpenAI client at a loopback HTTP server (the only address the
no-network fixture allows) and read what it received: path (base_url), Authorization header.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from crewkit.cli import main
from crewkit.errors import ModelAuthError, ModelUnavailable
from crewkit.models.providers import PROVIDERS
from crewkit.models.registry import RoleMap
from crewkit.observability import ledger
from crewkit.settings import ModelEntry, load_settings

OPENAI_VALUE = "sk-proj-OPENAIkeyThatMustNotLeave000000"


class _Server:
    """A loopback OpenAI-compatible endpoint: records requests, answers with `status` and `body`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.statuses: list[int] = []  # statuses for the next requests, then `status`
        self.body: dict[str, Any] = {
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": "qwen2.5",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
        }
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length") or 0)
                server.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": json.loads(self.rfile.read(length)),
                    }
                )
                status = server.statuses.pop(0) if server.statuses else server.status
                error = {
                    "error": {"message": "Incorrect API key provided" if status == 401 else "upstream failed"}
                }
                payload = json.dumps(server.body if status == 200 else error).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _add_model(project, entry: str, role: str = "reasoning", model: str = "extra") -> None:
    path = project / "config" / "models.yaml"
    text = path.read_text()
    text = text.replace("\nroles:\n", f"\n  {model}:\n{entry}\nroles:\n", 1)
    text = text.replace(f"{role}: {{model: local-small", f"{role}: {{model: {model}", 1)
    path.write_text(text)


@pytest.mark.parametrize("provider", ["openai_compatible", "ollama"])
def test_local_server_gets_base_url_and_never_openai_api_key(project, monkeypatch, server, provider):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_VALUE)
    _add_model(
        project,
        f"    provider: {provider}\n    model: qwen2.5\n    base_url: {server.url}\n"
        "    capabilities: [text]\n    params: {max_retries: 0}\n",
    )
    role_map = RoleMap(load_settings(project))
    assert role_map.check() == []
    llm = role_map.llm("reasoning")
    with ledger.open_ledger() as book:
        assert llm.call([{"role": "user", "content": "2+2?"}]) == "4"
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"  # base_url reached the client
    assert request["body"]["model"] == "qwen2.5"
    assert OPENAI_VALUE not in json.dumps(request["headers"])
    assert (book.calls[0].input_tokens, book.calls[0].output_tokens) == (12, 1)


def test_openai_compatible_with_its_own_key_sends_that_key(project, monkeypatch, server):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_VALUE)
    monkeypatch.setenv("GATEWAY_API_KEY", "gw-key-1234567890abcdef")
    _add_model(
        project,
        f"    provider: openai_compatible\n    model: qwen2.5\n    base_url: {server.url}\n"
        "    api_key_env: GATEWAY_API_KEY\n    params: {max_retries: 0}\n",
    )
    assert RoleMap(load_settings(project)).llm("reasoning").call("2+2?") == "4"
    assert server.requests[0]["headers"].get("Authorization") == "Bearer gw-key-1234567890abcdef"


def test_a_key_the_server_refuses_stops_with_the_variable_to_fix(project, monkeypatch, server):
    """The real OpenAI SDK's AuthenticationError, through CrewAI's native class, from a real 401."""
    monkeypatch.setenv("GATEWAY_API_KEY", "gw-key-1234567890abcdef")
    server.status = 401
    _add_model(
        project,
        f"    provider: openai_compatible\n    model: qwen2.5\n    base_url: {server.url}\n"
        "    api_key_env: GATEWAY_API_KEY\n    params: {max_retries: 0}\n",
    )
    with pytest.raises(
        ModelAuthError, match="role 'reasoning': model 'extra' refused the credentials.*GATEWAY_API_KEY"
    ):
        RoleMap(load_settings(project)).llm("reasoning").call("2+2?")
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("entry", "variable"),
    [
        ("    provider: anthropic\n    model: claude-sonnet-4-5\n", "ANTHROPIC_API_KEY"),
        ("    provider: gemini\n    model: gemini-2.5-flash\n", "GEMINI_API_KEY"),
        ("    provider: openai\n    model: gpt-4o\n    api_key_env: TEAM_OPENAI_KEY\n", "TEAM_OPENAI_KEY"),
        (
            "    provider: openai_compatible\n    model: q\n    base_url: http://127.0.0.1:9/v1\n"
            "    api_key_env: GATEWAY_API_KEY\n",
            "GATEWAY_API_KEY",
        ),
        (
            "    provider: ollama\n    model: llama3.2\n    api_key_env: OLLAMA_API_KEY\n",
            "OLLAMA_API_KEY",
        ),
    ],
)
def test_a_missing_key_never_falls_back_to_openai_api_key(project, monkeypatch, entry, variable):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_VALUE)
    for name in (
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "TEAM_OPENAI_KEY",
        "GATEWAY_API_KEY",
        "OLLAMA_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    _add_model(project, entry)
    role_map = RoleMap(load_settings(project))
    (problem,) = role_map.check()
    assert "role 'reasoning'" in problem and f"{variable} is not set" in problem
    with pytest.raises(ModelUnavailable, match=f"{variable} is not set"):
        role_map.llm("reasoning").call("x")  # built on first use: refuses instead of borrowing a key


@pytest.mark.parametrize(
    "value", ["sk-...", "sk-xxx", "your-api-key", "changeme", "<your key>", "...", "xxx"]
)
def test_models_check_flags_placeholder_keys(project, monkeypatch, capsys, value):
    monkeypatch.setenv("OPENAI_API_KEY", value)
    path = project / "config" / "models.yaml"
    path.write_text(path.read_text().replace("code:      {model: local-small}", "code:      {model: gpt-4o}"))
    code = main(["models", "check"])
    err = capsys.readouterr().err
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("error: config/models.yaml:")
    assert (
        "role 'code'" in line and "OPENAI_API_KEY holds a placeholder" in line and "put the real key" in line
    )


def test_real_looking_keys_are_not_placeholders(project, monkeypatch):
    for value in ("sk-proj-abcDEF1234567890abcdef", "sk-ant-api03-AbC_xyz-1234567890", "from-dotenv"):
        monkeypatch.setenv("ANTHROPIC_API_KEY", value)
        assert (
            PROVIDERS["anthropic"].missing("code", "claude", ModelEntry(provider="anthropic", model="c"))
            is None
        )


def test_every_api_key_env_in_the_config_is_redacted(project, monkeypatch):
    from crewkit import redact

    monkeypatch.setenv("TEAM_LLM_CREDENTIAL", "team-credential-value-42")  # no secret-looking name
    _add_model(project, "    provider: openai\n    model: gpt-4o\n    api_key_env: TEAM_LLM_CREDENTIAL\n")
    assert redact.redact("x team-credential-value-42 y") == "x team-credential-value-42 y"  # not yet known
    RoleMap(load_settings(project))
    assert redact.redact("x team-credential-value-42 y") == f"x {redact.MARK} y"


@pytest.mark.parametrize(
    ("model", "url"),
    [("ollama-qwen", "http://localhost:11434/v1"), ("llama-server", "http://localhost:8080/v1")],
)
def test_shipped_local_server_examples_are_a_one_line_switch(project, monkeypatch, model, url):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_VALUE)
    path = project / "config" / "models.yaml"
    text = path.read_text()
    assert f"reasoning: {{model: {model}}}" in text  # the comment shows the line to write
    path.write_text(
        text.replace("reasoning: {model: local-small, fallbacks: []}", f"reasoning: {{model: {model}}}")
    )
    role_map = RoleMap(load_settings(project))
    assert role_map.check() == []
    llm = role_map.llm("reasoning")
    built = llm._llm(llm.primary)
    client = built._get_sync_client()  # the openai.OpenAI client CrewAI will send with
    assert str(client.base_url).rstrip("/") == url and client.api_key != OPENAI_VALUE


def test_a_local_server_that_is_not_running_is_named(project):
    from crewkit.errors import ModelCallFailed

    _add_model(
        project,
        "    provider: ollama\n    model: qwen2.5\n    base_url: http://127.0.0.1:9/v1\n    params: {max_retries: 0}\n",
    )
    with pytest.raises(ModelCallFailed, match=r"is the server at http://127.0.0.1:9/v1 running\?"):
        RoleMap(load_settings(project)).llm("reasoning").call("x")


def test_a_server_error_that_the_fallback_recovers_prints_nothing(project, server, capfd, caplog):
    """CrewAI's OpenAI class logs "OpenAI API call failed" at ERROR: kept at DEBUG for a recovered call."""
    import logging

    caplog.set_level(logging.DEBUG)
    server.statuses = [500]  # the primary's request fails, the fallback's succeeds
    entry = (
        f"    provider: openai_compatible\n    model: qwen2.5\n    base_url: {server.url}\n"
        "    params: {max_retries: 0}\n"
    )
    _add_model(project, entry, model="primary-server")
    _add_model(project, entry, role="-", model="backup-server")
    path = project / "config" / "models.yaml"
    text = path.read_text().replace(
        "{model: primary-server, fallbacks: []}", "{model: primary-server, fallbacks: [backup-server]}"
    )
    path.write_text(text)
    with ledger.open_ledger() as book:
        assert RoleMap(load_settings(project)).llm("reasoning").call("2+2?") == "4"
    assert [c.model for c in book.calls] == ["primary-server", "backup-server"]
    assert "500" in (book.calls[0].error or "")
    assert capfd.readouterr().err == ""
    assert any("API call failed" in r.getMessage() for r in caplog.records)  # CrewAI did log it...
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []  # ...at DEBUG
