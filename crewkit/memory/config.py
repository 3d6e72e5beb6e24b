"""`config/memory.yaml` as typed objects: the short-term context budget and the long-term store.

`crewkit.settings.load_settings` validates the file once into `Settings.memory` (a missing file
gives the defaults below, the same as the shipped `config/memory.yaml`); everything inward reads
these frozen models. Numbers are strict: `k: "5"` or `shards: true` is an error, not a coercion.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PositiveInt = Annotated[int, Field(gt=0, strict=True)]
StepName = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COLLECTION = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShortTermConfig(_Strict):
    """The per-run context budget (what happens before each model call)."""

    budget_tokens: PositiveInt | None = None  # None: the model's context window
    policy: Literal["summarise", "trim"] = "summarise"
    keep_recent: Annotated[int, Field(ge=0, strict=True)] = 4  # newest messages never touched
    reserve_output: Annotated[bool, Field(strict=True)] = True  # keep room for the call's max output


class RecallConfig(_Strict):
    """What the flow recalls for its steps."""

    k: Annotated[int, Field(ge=1, le=100, strict=True)] = 5
    min_score: Annotated[float, Field(ge=-1, le=1, strict=True, allow_inf_nan=False)] = 0.25
    steps: list[StepName] = Field(default_factory=lambda: ["plan", "execute"])


class LongTermConfig(_Strict):
    """The long-term store: Qdrant embedded under CREWKIT_HOME, or a server."""

    enabled: Annotated[bool, Field(strict=True)] = True
    backend: Literal["embedded", "server"] = "embedded"
    engine: Literal["edge", "local"] = "edge"  # embedded engine (edge: HNSW; local: exact scan)
    path: str = Field("qdrant", min_length=1)  # relative to CREWKIT_HOME (or absolute)
    url: str | None = None  # server: http(s)://host:6333
    api_key_env: str | None = None  # server: the env var holding the key, never the key
    shards: PositiveInt = 1
    replication: PositiveInt = 1
    collection: str = "crewkit_memory"
    max_chars: PositiveInt = 8000  # longer text is refused
    recall: RecallConfig = RecallConfig()
    learn: Annotated[bool, Field(strict=True)] = True  # store what a finished run learned

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^https?://[^\s/]+", url):
            raise ValueError(f"url '{url}' is not an http(s) URL such as http://localhost:6333")
        return url

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_NAME.match(name):
            raise ValueError(
                f"api_key_env '{name}' is not an environment variable name; name the variable that "
                "holds the key (e.g. QDRANT_API_KEY), never the key itself"
            )
        return name

    @field_validator("collection")
    @classmethod
    def _collection_name(cls, name: str) -> str:
        if not _COLLECTION.match(name):
            raise ValueError(f"collection '{name}' must be 1-128 letters, digits, '_' or '-'")
        return name

    @model_validator(mode="after")
    def _server_has_url(self) -> LongTermConfig:
        if self.backend == "server" and self.url is None:
            raise ValueError("backend 'server' needs a url (e.g. url: http://localhost:6333)")
        return self


class MemoryConfig(_Strict):
    """`config/memory.yaml`."""

    short_term: ShortTermConfig = ShortTermConfig()
    long_term: LongTermConfig = LongTermConfig()
