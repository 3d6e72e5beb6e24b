"""The one path every model call takes: `RoleLLM`, a CrewAI `BaseLLM` bound to a role.

Whichever agent, manager, planner or guardrail makes a call, it reaches `RoleLLM.call`, which
checks the call against the model's capabilities and tries the role's model and then its
fallbacks in order. Each attempt goes through the run's hook path (`crewkit.runtime.hooks`):
`before_model` may answer it (a journalled answer on resume: no model call), refuse it (a
`CrewkitError`) or pause the run (`RunPaused`); `after_model` sees role, model, agent, tokens,
cost, latency and error (the usage ledger is its first subscriber). Budgets, audit and metrics
are further subscribers, never edits here; keep this small and fast.

Routing and cooldowns: a call made for a routed subtask (`crewkit.runtime.routes`, decided by
`crewkit.models.routing`) tries the route's model first, then the rest of the chain in order.
A model cooling down after repeated transient failures (`crewkit.models.cooldown`, LiteLLM's
router semantics) is skipped: no call, a "cooling down" step in the ledger and the audit log;
when every model of the chain is cooling down they are all tried anyway, in order.

Failures (see `provider_errors`): a timeout, rate limit, connection or server error moves on
to the next fallback, quietly (the ledger keeps an error step) and counts towards the model's
cooldown; a refused key or request stops
at once with a `FatalModelError` naming the role, the model and the fix, which CrewAI does not
retry (`crewkit.models.fatal`). Provider text is redacted before it is recorded or raised.
The tokens of each successful call also feed CrewAI's own counters, so a crew's
`CrewOutput.token_usage` equals the ledger's totals.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from crewai.llms.base_llm import BaseLLM, call_stop_override
from pydantic import BaseModel, PrivateAttr

from crewkit import redact
from crewkit.errors import (
    CapabilityError,
    CrewkitError,
    FatalModelError,
    ModelAuthError,
    ModelCallFailed,
    ModelRequestError,
    ModelUnavailable,
)
from crewkit.models import cooldown, fatal, provider_errors, usage_cell
from crewkit.models.routing import Cooldown
from crewkit.observability import ledger
from crewkit.runtime import hooks, routes

log = logging.getLogger(__name__)
_LOCATED = re.compile(r"^\S+:\d+: ")  # a message that already starts with FILE:LINE


def _has_images(messages: Any) -> bool:
    if isinstance(messages, str):
        return False
    for msg in messages:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") in ("image_url", "image", "input_image") for p in content
        ):
            return True
    return False


class Candidate(BaseModel):
    """One model a role may use: its config name, capabilities, prices and a lazy builder."""

    name: str
    capabilities: list[str]
    context: int
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    build: Callable[[], BaseLLM]
    key_env: str | None = None  # the variable holding its API key, for the fix in an auth error
    where: str = ""  # its entry in the config ("config/models.yaml:27"), for one-line errors
    server: str | None = None  # the local server it calls (Ollama, llama-server), for a hint

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1_000_000


class RoleLLM(BaseLLM):
    """A role's model with its fallbacks, metered. Built by `crewkit.models.registry`.

    Give each agent its own `RoleLLM` (`RoleMap.llm` does; the models behind it are shared):
    CrewAI sums every agent's `llm.get_token_usage_summary()`, so a shared instance would be
    counted once per agent.
    """

    llm_type: str = "crewkit-role"
    provider: str = "crewkit"
    role: str
    candidates: list[Candidate]
    cooldown: Cooldown = Cooldown()  # routing.cooldown of config/models.yaml
    cooldowns: Any = None  # the cooldown registry; None: the process's (`cooldown.REGISTRY`)

    _built: dict[str, BaseLLM] = PrivateAttr(default_factory=dict)
    # A model that failed fatally outside a call (CrewAI's token-count preflight, whose errors
    # it swallows) is not tried again by the call that follows: no second load of a bad file.
    _fatal: dict[str, FatalModelError] = PrivateAttr(default_factory=dict)

    def _llm(self, candidate: Candidate) -> BaseLLM:
        llm = self._built.get(candidate.name)
        if llm is None:
            llm = self._built[candidate.name] = candidate.build()
        return llm

    @property
    def primary(self) -> Candidate:
        return self.candidates[0]

    def supports_function_calling(self) -> bool:
        return "tools" in self.primary.capabilities

    def supports_stop_words(self) -> bool:
        return True

    def supports_multimodal(self) -> bool:
        return "vision" in self.primary.capabilities

    def get_context_window_size(self) -> int:
        return self.primary.context

    def get_input_tokens_count(self, messages: Any, tools: Any = None, response_model: Any = None) -> int:
        try:
            return self._llm(self.primary).get_input_tokens_count(messages, tools, response_model)
        except FatalModelError as exc:
            self._fatal[self.primary.name] = exc
            raise

    def call(
        self,
        messages: str | list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Any | None = None,
        from_agent: Any | None = None,
        response_model: type[BaseModel] | None = None,
    ) -> str | Any:
        agent = str(getattr(from_agent, "role", "") or "").strip() or self.role
        needs_vision = _has_images(messages)
        errors: list[str] = []
        path = hooks.current()
        stage = ledger.current_stage()
        route = routes.for_call(from_task, self.role)  # None unless the call is for a routed subtask
        candidates = self.candidates if route is None else self._routed(route.route.model)
        registry = self.cooldowns or cooldown.REGISTRY
        cooling = self._cooling(registry, candidates, needs_vision, errors)
        attempt = -1
        for candidate in candidates:
            if needs_vision and "vision" not in candidate.capabilities:
                errors.append(f"{candidate.name}: no vision capability")
                continue
            if cooling and candidate.name in cooling:  # skipped: a record says so, no call
                text = cooldown.describe(cooling[candidate.name], self.cooldown)
                errors.append(f"{candidate.name}: {text}")
                skipped = hooks.ModelCall(
                    self.role, candidate.name, agent, stage, messages, tools, response_model, attempt + 1
                )
                path.after_model(
                    hooks.ModelResult(
                        skipped, None, 0, 0, 0.0, time.time(), 0.0, error=text, not_run="cooling down"
                    )
                )
                if route is not None:
                    routes.note(route, candidate.name, skipped=True)
                continue
            attempt += 1
            stop = tuple(self.stop_sequences)
            hook_call = hooks.ModelCall(
                self.role, candidate.name, agent, stage, messages, tools, response_model, attempt, stop
            )
            started = time.time()
            t0 = time.perf_counter()
            try:
                replay = path.before_model(hook_call)  # RunPaused (a BaseException) passes through
            except CrewkitError as exc:  # refused: no model call; the after hooks see why
                exc.crewkit_refused = True  # type: ignore[attr-defined]  # final: CrewAI does not retry it
                text = redact.redact(str(exc))
                path.after_model(
                    hooks.ModelResult(
                        hook_call,
                        None,
                        0,
                        0,
                        0.0,
                        started,
                        time.perf_counter() - t0,
                        error=text,
                        not_run="refused",
                    )
                )
                raise
            if replay is not None:
                path.after_model(
                    hooks.ModelResult(
                        hook_call,
                        replay.value,
                        0,
                        0,
                        0.0,
                        started,
                        time.perf_counter() - t0,
                        replayed=True,
                        replay_source=replay.source,
                        replay_detail=replay.detail,
                    )
                )
                return replay.value
            try:
                if candidate.name in self._fatal:
                    raise self._fatal[candidate.name]
                llm = self._llm(candidate)
                before = llm.get_token_usage_summary()
                with (
                    usage_cell.open_cell() as cell,
                    call_stop_override(llm, list(self.stop_sequences)),
                    fatal.provider_logs_quiet(),
                ):
                    result = llm.call(
                        hook_call.messages,  # a before hook may have masked or withheld parts
                        tools=tools,
                        callbacks=callbacks,
                        available_functions=available_functions,
                        from_task=from_task,
                        from_agent=from_agent,
                        response_model=response_model,
                    )
            except Exception as exc:
                seconds = time.perf_counter() - t0
                text = redact.redact(
                    str(exc) if isinstance(exc, CrewkitError) else provider_errors.describe(exc)
                )
                path.after_model(hooks.ModelResult(hook_call, None, 0, 0, 0.0, started, seconds, error=text))
                if isinstance(exc, ModelUnavailable) and candidate.where and not _LOCATED.match(text):
                    raise ModelUnavailable(f"{candidate.where}: {text}") from None  # FILE:LINE of the entry
                if isinstance(exc, CrewkitError):
                    raise
                kind = provider_errors.classify(exc)
                if kind == "auth":
                    raise ModelAuthError(self._auth_message(candidate, text)) from None
                if kind == "request" and not _context_length(exc):
                    raise ModelRequestError(self._request_message(candidate, text)) from None
                if kind != "transient":  # not ours to judge (context length, a bug): CrewAI's as raised
                    _redact_exception(exc)
                    raise
                log.debug("role %s: model %s failed, trying the next: %s", self.role, candidate.name, text)
                if registry.failure(candidate.name, self.cooldown):
                    log.warning(
                        "model %s cools down for %g s (more than %d transient failure(s) in %g s): %s",
                        candidate.name, self.cooldown.cooldown_s, self.cooldown.allowed_fails,
                        self.cooldown.window_s, text,
                    )  # fmt: skip
                hint = f" (is the server at {candidate.server} running?)" if candidate.server else ""
                errors.append(f"{candidate.name}: {text}{hint}")
                continue
            seconds = time.perf_counter() - t0
            relayed = bool(cell.get("relayed"))
            registry.success(candidate.name)
            if route is not None and not relayed:
                routes.note(route, candidate.name)
            if "input_tokens" in cell:
                usage = {
                    "prompt_tokens": cell["input_tokens"],
                    "completion_tokens": cell.get("output_tokens", 0),
                }
            else:
                usage = usage_delta(before, llm.get_token_usage_summary())
            tokens_in, tokens_out = usage["prompt_tokens"], usage["completion_tokens"]
            if not relayed:  # CrewAI's counters: what `CrewOutput.token_usage` sums over agents
                self._track_token_usage_internal(usage)
            path.after_model(
                hooks.ModelResult(
                    hook_call,
                    result,
                    tokens_in,
                    tokens_out,
                    candidate.cost(tokens_in, tokens_out),
                    started,
                    seconds,
                    relayed=relayed,
                    not_run=cell.get("not_run"),
                )
            )
            return result
        if needs_vision and all("no vision capability" in e for e in errors):
            raise CapabilityError(
                f"role '{self.role}' got an image, but its models ({', '.join(c.name for c in self.candidates)}) "
                "are text-only; map the role to a model with 'vision' in config/models.yaml"
            )
        raise ModelCallFailed(f"role '{self.role}': every model failed: {'; '.join(errors)}")

    def _routed(self, model: str) -> list[Candidate]:
        """The chain with the route's model first, the rest in their order."""
        first = next((c for c in self.candidates if c.name == model), None)
        if first is None or first is self.candidates[0]:
            return self.candidates
        return [first, *(c for c in self.candidates if c is not first)]

    def _cooling(
        self, registry: cooldown.Cooldowns, candidates: list[Candidate], needs_vision: bool, errors: list[str]
    ) -> dict[str, float] | None:
        """Seconds left per cooling candidate, to skip; None when none cools, or when every usable
        one does (then all are tried anyway, in order, and `errors` says so)."""
        cooling = None
        for c in candidates:
            left = registry.cooling(c.name)
            if left is not None:
                if cooling is None:
                    cooling = {}
                cooling[c.name] = left
        if cooling is None:
            return None
        usable = [c.name for c in candidates if not (needs_vision and "vision" not in c.capabilities)]
        if usable and all(n in cooling for n in usable):
            note = f"every model of role '{self.role}' is cooling down ({', '.join(usable)}); trying them anyway, in order"
            log.warning("%s", note)
            errors.append(note)
            return None
        return cooling

    def _where(self, candidate: Candidate) -> str:
        return f"{candidate.where}: " if candidate.where else ""

    def _auth_message(self, candidate: Candidate, text: str) -> str:
        fix = (
            f"check {candidate.key_env} in .env or the environment (a valid key with access to this model)"
            if candidate.key_env
            else f"set 'api_key_env:' on model '{candidate.name}' in config/models.yaml and that variable in .env"
        )
        return f"{self._where(candidate)}role '{self.role}': model '{candidate.name}' refused the credentials ({text}); {fix}"

    def _request_message(self, candidate: Candidate, text: str) -> str:
        return (
            f"{self._where(candidate)}role '{self.role}': model '{candidate.name}' refused the request ({text}); "
            f"check 'model:' and 'params:' of '{candidate.name}' in config/models.yaml"
        )


def usage_delta(before: Any, after: Any) -> dict[str, int]:
    """What one call added to an LLM's lifetime counters, as a provider usage dict."""
    fields = (
        "prompt_tokens",
        "completion_tokens",
        "cached_prompt_tokens",
        "reasoning_tokens",
        "cache_creation_tokens",
    )
    return {f: max(0, int(getattr(after, f, 0) or 0) - int(getattr(before, f, 0) or 0)) for f in fields}


def _context_length(exc: BaseException) -> bool:
    """CrewAI's own test: a context overflow is CrewAI's to handle (it summarises and retries)."""
    from crewai.utilities.exceptions.context_window_exceeding_exception import LLMContextLengthExceededError

    return isinstance(
        exc, LLMContextLengthExceededError
    ) or LLMContextLengthExceededError._is_context_length_exceeded_error(exc)


def _redact_exception(exc: BaseException) -> None:
    """Redact secrets in an exception that goes on as raised (its args and `message`)."""
    try:
        exc.args = tuple(redact.redact(a) if isinstance(a, str) else a for a in exc.args)
        if isinstance(getattr(exc, "message", None), str):
            exc.message = redact.redact(exc.message)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - an exception type with read-only fields keeps its text
        pass


fatal.install()
