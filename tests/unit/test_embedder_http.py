"""The embedding role on an embeddings endpoint (OpenAI's API shape: Ollama, OpenAI, vLLM, ...).

A real HTTP server on loopback stands in for Ollama; nothing leaves the machine.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from crewkit.errors import ModelUnavailable
from crewkit.models.embedder import HttpEmbedder, build_embedder
from crewkit.models.registry import RoleMap
from crewkit.settings import ModelEntry, load_settings


class Server:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.width = 4
        self.shuffle = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                )
                if server.status != 200:
                    self.send_response(server.status)
                    self.end_headers()
                    self.wfile.write(b'{"error": "model \\"bge-m3\\" not found, try pulling it first"}')
                    return
                rows = [
                    {"index": i, "embedding": [float(len(t))] + [float(i)] * (server.width - 1)}
                    for i, t in enumerate(body["input"])
                ]
                if server.shuffle:
                    rows.reverse()
                payload = json.dumps({"data": rows, "model": body["model"]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def entry(url: str, **kw: Any) -> ModelEntry:
    fields: dict[str, Any] = {
        "provider": "ollama",
        "model": "bge-m3",
        "base_url": url,
        "capabilities": ["embedding"],
        "params": {"dimensions": 4},
    }
    fields.update(kw)
    return ModelEntry(**fields)


def test_posts_texts_and_returns_vectors_in_input_order(server: Server) -> None:
    server.shuffle = True  # a server may answer out of order; `index` says where each belongs
    embedder = build_embedder("ollama-bge-m3", entry(server.url))
    assert isinstance(embedder, HttpEmbedder) and embedder.dimensions == 4
    vectors = embedder.embed_documents(["a", "bbb", ""])
    assert [v[0] for v in vectors] == [1.0, 3.0, 1.0]  # "" goes out as " "
    assert server.requests[0]["path"] == "/v1/embeddings"
    assert server.requests[0]["body"] == {"model": "bge-m3", "input": ["a", "bbb", " "]}
    assert server.requests[0]["auth"] is None  # no key for a keyless local server
    assert embedder.embed_query("cc")[0] == 2.0


def test_large_inputs_go_in_batches(server: Server) -> None:
    embedder = build_embedder("e", entry(server.url))
    embedder.batch = 2
    assert len(embedder.embed_documents(["x"] * 5)) == 5
    assert [len(r["body"]["input"]) for r in server.requests] == [2, 2, 1]


def test_a_key_is_sent_only_from_the_named_variable(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBED_KEY", "k-123")
    embedder = build_embedder("e", entry(server.url, provider="openai_compatible", api_key_env="EMBED_KEY"))
    embedder.embed_query("hi")
    assert server.requests[-1]["auth"] == "Bearer k-123"
    monkeypatch.delenv("EMBED_KEY")
    with pytest.raises(ModelUnavailable, match="EMBED_KEY is not set"):
        build_embedder("e", entry(server.url, provider="openai_compatible", api_key_env="EMBED_KEY"))


def test_the_size_is_declared_and_checked(server: Server) -> None:
    with pytest.raises(ModelUnavailable, match="needs params.dimensions"):
        build_embedder("e", entry(server.url, params={}))
    server.width = 6
    with pytest.raises(ModelUnavailable, match="gives 6-d vectors but its entry says params.dimensions: 4"):
        build_embedder("e", entry(server.url)).embed_query("hi")


def test_server_errors_are_one_line(server: Server) -> None:
    server.status = 404
    with pytest.raises(ModelUnavailable) as err:
        build_embedder("ollama-bge-m3", entry(server.url)).embed_query("hi")
    assert "\n" not in str(err.value)
    assert "HTTP 404" in str(err.value) and "not found, try pulling it" in str(err.value)
    down = entry("http://127.0.0.1:9/v1")  # discard port: nothing listens
    with pytest.raises(ModelUnavailable, match=r"unreachable .*start the server or fix 'base_url:'"):
        build_embedder("ollama-bge-m3", down).embed_query("hi")


def test_the_embedding_role_can_run_on_a_server(project: Path, server: Server) -> None:
    """Before: RoleMap built the ollama entry's chat model and handed it out as the embedder."""
    path = project / "config" / "models.yaml"
    text = path.read_text().replace(
        "embedding: {model: local-use-multilingual}", "embedding: {model: ollama-bge-m3}"
    )
    path.write_text(
        text.replace("    model: bge-m3\n", f"    model: bge-m3\n    base_url: {server.url}\n", 1)
    )
    role_map = RoleMap(load_settings(project))
    embedder = role_map.embedder()
    assert isinstance(embedder, HttpEmbedder) and embedder.dimensions == 1024
    server.width = 1024
    assert len(embedder.embed_query("你好")) == 1024
    assert server.requests[0]["body"]["model"] == "bge-m3"
