"""Model comparison: run a suite's cases on several models and keep one `CaseResult` per case.

`compare(settings, models, suite)` checks every model name first (unknown: one line with the
close match; embedding-only: refused; a missing API key or model file: one line naming the
model and the variable), before any call. Then, model by model, case by case, it calls the
model entry's own LLM (`RoleMap._model`, no role fallbacks: the comparison measures that model),
timing each call (`perf_counter`), reading its tokens (the per-call usage cell, else the change
in the LLM's token counters), and pricing them with the entry's price. Tool-use cases pass
`tools=` without `available_functions`, so the model returns its call instead of running it.
Time to first token: text cases on the embedded llama.cpp model are streamed (same prompt and
sampling as its `call`); other providers and constrained tool calls report None ("n/a").

Resume: every finished case is written at once to state.db (`eval_cases`, keyed by the suite's
hash, the model entry's hash and the case id), and a rerun skips them (`fresh=True` runs all
again). A changed suite or model entry gets new hashes, so it runs afresh. A failed call is a
row with score 0 and the redacted error, not a crash; error rows are not kept, so a rerun tries
them again. Ctrl-C stops between (or inside) calls: `Interrupted` (exit 130) says how many
finished cases are kept.

Rows not run carry `detail["skipped"]` (a reason), score 0: a drift case longer than the model's
context, a tool-use case for a model without the `tools` capability. They are not failures;
a report leaves them out of accuracy. With `repeat: N` a case is called N times: `latency_s` is
the median, `detail["latency_samples_s"]` holds every sample, tokens and cost are the totals,
the score is the mean and `passed` means every call passed.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from crewkit import redact
from crewkit.errors import CrewkitError, FatalModelError, UsageError
from crewkit.evaluation import scoring
from crewkit.evaluation.suite import Case, Suite

if TYPE_CHECKING:
    from crewkit.runtime.store import StateStore
    from crewkit.settings import ModelEntry, Settings


@dataclass(frozen=True)
class CaseResult:
    model: str
    case_id: str
    kind: Literal["reasoning", "tool_use", "drift"]
    role: str  # the role the case measures for: reasoning | code | vision | manager ...
    score: float  # 0..1
    passed: bool
    latency_s: float
    ttft_s: float | None  # time to first token where the provider streams; else None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    error: str | None  # redacted one-line error of a failed call (score 0)
    detail: dict[str, Any] = field(default_factory=dict)  # expected/got; drift {"length", "depth"}; "skipped"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Comparison:
    suite: Suite
    models: list[str]
    results: list[CaseResult]
    profile: str
    wall_s: float = 0.0  # this run's wall time (resumed cases cost nothing)
    resumed: int = 0  # cases taken from an earlier, interrupted run


class Interrupted(CrewkitError):
    """Ctrl-C during a comparison: the finished cases are kept for the next run."""

    exit_code = 130


Progress = Callable[[int, int, str], None]  # (done, total, "model: case") before each case and at the end


def model_hash(name: str, entry: ModelEntry) -> str:
    """Changes whenever the model entry's config does (provider, model, file, params, price...)."""
    text = json.dumps({"name": name, "entry": entry.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_models(settings: Settings, models: list[str], llms: dict[str, Any] | None = None) -> None:
    """Every name is a generative model entry usable here; else one line (UsageError / ModelUnavailable)."""
    from crewkit.errors import ModelUnavailable
    from crewkit.models.providers import PROVIDERS
    from crewkit.settings import env, suggest

    defined = settings.models.models
    if not models:
        raise UsageError(f"give at least one model with --models (defined: {', '.join(defined)})")
    seen = set()
    for name in models:
        if name in seen:
            raise UsageError(f"model '{name}' is named twice in --models; name each model once")
        seen.add(name)
        if name not in defined:
            raise UsageError(
                f"unknown model '{name}'{suggest(name, defined)}; the models are those under 'models:' in "
                f"config/models.yaml ({', '.join(defined)})"
            )
        entry = defined[name]
        if entry.can("embedding") and not entry.can("text"):
            raise UsageError(
                f"model '{name}' is an embedding model; eval compare needs generative models "
                f"({', '.join(n for n, e in defined.items() if not e.can('embedding'))})"
            )
        if llms and name in llms:
            continue
        provider = PROVIDERS[entry.provider]
        key = provider.key_env(entry)
        if key and not env(key) and (provider.key_required or entry.api_key_env):
            raise ModelUnavailable(
                f"{settings.where('models', name)}: model '{name}' needs {key}, which is not set; add {key}=... "
                f"to .env or the environment, or leave '{name}' out of --models"
            )
        problem = provider.missing("eval", name, entry)
        if problem:
            problem = problem.replace("role 'eval' uses model", "model").replace(
                "or map 'eval' to a local model in config/models.yaml", f"or leave '{name}' out of --models"
            )
            raise ModelUnavailable(f"{settings.where('models', name)}: {problem}")


def compare(
    settings: Settings,
    models: list[str],
    suite: Suite,
    *,
    llms: dict[str, Any] | None = None,
    progress: Progress | None = None,
    store: StateStore | None = None,
    fresh: bool = False,
) -> Comparison:
    """Run `suite` on each of `models` (entries of config/models.yaml); `llms` injects fakes by name."""
    check_models(settings, models, llms)
    if store is None:
        from crewkit.runtime.store import StateStore

        store = StateStore.open(settings.home)
    role_map = None
    hashes = {name: model_hash(name, settings.models.models[name]) for name in models}
    done_before = {} if fresh else _finished(store, suite, hashes)
    total = len(models) * len(suite.cases)
    results: list[CaseResult] = []
    started = time.perf_counter()
    resumed = 0
    try:
        for name in models:
            entry = settings.models.models[name]
            llm: Any = None
            fatal: str | None = None
            for case in suite.cases:
                if progress:
                    progress(len(results), total, f"{name}: {case.id}")
                kept = done_before.get((name, case.id))
                if kept is not None:
                    results.append(kept)
                    resumed += 1
                    continue
                skip = _skip_reason(case, entry)
                if skip:
                    results.append(_skipped(name, case, skip))
                    continue
                if fatal is not None:
                    results.append(_error(name, case, fatal))
                    continue
                if llm is None:
                    if llms and name in llms:
                        llm = llms[name]
                    else:
                        if role_map is None:
                            from crewkit.models.registry import RoleMap

                            role_map = RoleMap(settings)
                        try:
                            llm = role_map._model(name)
                        except Exception as exc:  # noqa: BLE001 - a model that cannot load: error rows
                            fatal = _one_line(exc)
                            results.append(_error(name, case, fatal))
                            continue
                result = run_case(name, entry, llm, case, suite.repeat)
                if result.error is None:
                    _keep(store, suite, name, hashes[name], result)
                elif result.detail.get("fatal"):
                    fatal = result.error
                results.append(result)
    except KeyboardInterrupt:
        kept = _count(store, suite, hashes)
        raise Interrupted(
            f"interrupted: {kept} finished case{'s' if kept != 1 else ''} kept; "
            "run the same command again to continue"
        ) from None
    if progress:
        progress(len(results), total, "done")
    return Comparison(
        suite=suite,
        models=list(models),
        results=results,
        profile=settings.profile_name,
        wall_s=time.perf_counter() - started,
        resumed=resumed,
    )


# Room a drift prompt needs beyond its nominal length: the length is estimated from characters
# (a tokenizer may count ~5% more) and the chat template and question add tokens. A prompt cut to
# fit the window could lose its needle, which would read as a recall failure.
DRIFT_MARGIN = 1.05
DRIFT_OVERHEAD = 64


def _skip_reason(case: Case, entry: ModelEntry) -> str | None:
    need = int(case.detail.get("length", 0) * DRIFT_MARGIN) + DRIFT_OVERHEAD + case.max_tokens
    if case.kind == "drift" and need > entry.context:
        return f"{case.detail['length']} tokens do not fit the model's {entry.context}-token context"
    if case.kind == "tool_use" and not entry.can("tools"):
        return "the model has no 'tools' capability"
    return None


def _refused_key(exc: BaseException) -> bool:
    """The provider refused the credentials: every further call of that model would be refused too."""
    from crewkit.models import provider_errors

    return provider_errors.classify(exc) == "auth"


def _one_line(exc: BaseException) -> str:
    from crewkit.models import provider_errors

    text = str(exc) if isinstance(exc, CrewkitError) else provider_errors.describe(exc)
    text = " ".join(redact.redact(text or type(exc).__name__).split())
    return text[:400]


def _base(name: str, case: Case, **kw: Any) -> CaseResult:
    fields: dict[str, Any] = {
        "model": name,
        "case_id": case.id,
        "kind": case.kind,
        "role": case.role,
        "score": 0.0,
        "passed": False,
        "latency_s": 0.0,
        "ttft_s": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": 0.0,
        "error": None,
        "detail": dict(case.detail),
    }
    fields.update(kw)
    return CaseResult(**fields)


def _skipped(name: str, case: Case, reason: str) -> CaseResult:
    return _base(name, case, detail={**case.detail, "skipped": reason})


def _error(name: str, case: Case, error: str) -> CaseResult:
    return _base(name, case, error=error)


@contextmanager
def _sampling(llm: Any, case: Case) -> Iterator[None]:
    """The case's `max_tokens` (and `temperature`, when the suite sets one) on the LLM for the
    calls inside, then the model's own values back. An LLM class without the field keeps its own."""
    wanted = {"max_tokens": case.max_tokens}
    if case.temperature is not None:
        wanted["temperature"] = case.temperature
    old: dict[str, Any] = {}
    try:
        for key, value in wanted.items():
            if hasattr(llm, key):
                old[key] = getattr(llm, key)
                object.__setattr__(llm, key, value)
        yield
    finally:
        for key, value in old.items():
            object.__setattr__(llm, key, value)


def _streams(llm: Any, case: Case) -> bool:
    """Text cases on the embedded llama.cpp model are streamed, to time the first token."""
    return case.kind != "tool_use" and getattr(llm, "llm_type", None) == "llamacpp" and hasattr(llm, "_fit")


def _call_streamed(llm: Any, case: Case) -> tuple[str, float, float | None, int, int]:
    """One text call on the embedded model through llama.cpp's streaming API, with the same
    prompt fitting, chat template and sampling params as `LlamaCppLLM.call` (which does not
    stream): (reply, seconds, time to first token, input tokens, output tokens). Output tokens
    are the reply re-tokenised (llama.cpp's stream carries no usage)."""
    from crewkit.models.llamacpp import _chat_messages, _count_tokens

    llama, lock = llm._model()  # loaded before the clock starts: a file load is not a call
    kwargs = llm.sampling(case.max_tokens)
    parts: list[str] = []
    ttft = None
    with lock:
        t0 = time.perf_counter()
        turns = llm._fit(llama, _chat_messages([dict(m) for m in case.messages]), case.max_tokens)
        llm._set_threads(llama)
        for chunk in llama.create_chat_completion(messages=turns, stream=True, **kwargs):
            text = chunk["choices"][0]["delta"].get("content")
            if text:
                ttft = ttft if ttft is not None else time.perf_counter() - t0
                parts.append(text)
        seconds = time.perf_counter() - t0
        tokens_in = _count_tokens(llama, turns)
    reply = "".join(parts)
    tokens_out = len(llama.tokenize(reply.encode("utf-8"), add_bos=False)) if reply else 0
    return reply, seconds, ttft, tokens_in, tokens_out


def _call(llm: Any, case: Case) -> tuple[Any, float, float | None, int, int]:
    """One model call: (reply, seconds, time to first token or None, input tokens, output tokens)."""
    from crewkit.models import usage_cell

    if _streams(llm, case):
        with _sampling(llm, case):
            return _call_streamed(llm, case)
    if getattr(llm, "llm_type", None) == "llamacpp" and hasattr(llm, "_model"):
        llm._model()  # load the file before the clock starts
    tools = case.openai_tools if case.kind == "tool_use" else None
    before = llm.get_token_usage_summary()
    with usage_cell.open_cell() as cell, _sampling(llm, case):
        t0 = time.perf_counter()
        reply = llm.call([dict(m) for m in case.messages], tools=tools)
        seconds = time.perf_counter() - t0
    if "input_tokens" in cell:
        tokens_in, tokens_out = int(cell["input_tokens"]), int(cell.get("output_tokens", 0))
    else:
        from crewkit.models.metered import usage_delta  # RoleLLM's reading of the counters

        usage = usage_delta(before, llm.get_token_usage_summary())
        tokens_in, tokens_out = usage["prompt_tokens"], usage["completion_tokens"]
    return reply, seconds, None, tokens_in, tokens_out


def score_reply(case: Case, reply: Any) -> scoring.Score:
    if case.kind == "tool_use":
        return scoring.check_tool_calls(case.expected, case.tools, reply)
    text = reply if isinstance(reply, str) else json.dumps(reply, default=str)
    assert case.answer is not None
    return scoring.check_answer(case.answer, text, case.detail.get("choices"))


def run_case(name: str, entry: ModelEntry, llm: Any, case: Case, repeat: int = 1) -> CaseResult:
    """Call the model `repeat` times on one case and score each reply."""
    latencies, ttfts, scores, passes = [], [], [], []
    tokens_in = tokens_out = 0
    detail: dict[str, Any] = dict(case.detail)
    for _ in range(repeat):
        try:
            reply, seconds, ttft, t_in, t_out = _call(llm, case)
        except Exception as exc:  # noqa: BLE001 - a failed call is a row, not a crash
            fatal = isinstance(exc, FatalModelError) or _refused_key(exc)
            return _base(
                name, case, error=_one_line(exc), detail={**case.detail, **({"fatal": True} if fatal else {})}
            )
        latencies.append(seconds)
        if ttft is not None:
            ttfts.append(ttft)
        tokens_in += t_in
        tokens_out += t_out
        result = score_reply(case, reply)
        scores.append(result.score)
        passes.append(result.passed)
        if len(scores) == 1:
            detail.update(result.detail)
    if repeat > 1:
        detail["latency_samples_s"] = latencies
        detail["scores"] = scores
    cost = (tokens_in * entry.price.input_per_mtok + tokens_out * entry.price.output_per_mtok) / 1_000_000
    return _base(
        name,
        case,
        score=sum(scores) / len(scores),
        passed=all(passes),
        latency_s=statistics.median(latencies),
        ttft_s=statistics.median(ttfts) if ttfts else None,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost_usd=cost,
        detail=detail,
    )


# --- state.db: finished cases ------------------------------------------------------------------
def _keep(store: StateStore, suite: Suite, name: str, mhash: str, result: CaseResult) -> None:
    with store.write() as conn:
        conn.execute(
            "INSERT INTO eval_cases (suite, suite_hash, model, model_hash, case_id, result, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (suite_hash, model_hash, case_id) DO UPDATE SET "
            "suite = excluded.suite, model = excluded.model, result = excluded.result, created = excluded.created",
            (
                suite.name,
                suite.hash,
                name,
                mhash,
                result.case_id,
                json.dumps(result.to_json(), default=str),
                time.time(),
            ),
        )


def _finished(store: StateStore, suite: Suite, hashes: dict[str, str]) -> dict[tuple[str, str], CaseResult]:
    out: dict[tuple[str, str], CaseResult] = {}
    for name, mhash in hashes.items():
        rows = store.read(
            "SELECT case_id, result FROM eval_cases WHERE suite_hash = ? AND model_hash = ?",
            (suite.hash, mhash),
        )
        for case_id, text in rows:
            data = json.loads(text)
            data["model"] = name
            out[(name, case_id)] = CaseResult.from_json(data)
    return out


def _count(store: StateStore, suite: Suite, hashes: dict[str, str]) -> int:
    ids = {c.id for c in suite.cases}
    n = 0
    for mhash in hashes.values():
        rows = store.read(
            "SELECT case_id FROM eval_cases WHERE suite_hash = ? AND model_hash = ?", (suite.hash, mhash)
        )
        n += sum(1 for (case_id,) in rows if case_id in ids)
    return n
