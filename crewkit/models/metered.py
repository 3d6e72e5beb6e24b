"""The one path every model call takes: `RoleLLM`, a CrewAI `BaseLLM` bound to a role.

Whichever agent, manager, planner or guardrail makes a call, it reaches `RoleLLM.call`, which
checks the call against the model's capabilities, tries the role's model and then its
fallbacks in order, and records role, model, agent, tokens, cost and latency into the current
run's `UsageLedger`. Budgets, audit and caching plug in here later; keep it small and fast.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from crewai.llms.base_llm import BaseLLM, call_stop_override
from pydantic import BaseModel, PrivateAttr

from crewkit.errors import CapabilityError, CrewkitError, ModelCallFailed
from crewkit.models import usage_cell
from crewkit.observability import ledger

log = logging.getLogger(__name__)


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

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1_000_000


class RoleLLM(BaseLLM):
    """A role's model with its fallbacks, metered. Built by `crewkit.models.registry`."""

    llm_type: str = "crewkit-role"
    provider: str = "crewkit"
    role: str
    candidates: list[Candidate]

    _built: dict[str, BaseLLM] = PrivateAttr(default_factory=dict)

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
        return self._llm(self.primary).get_input_tokens_count(messages, tools, response_model)

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
        for candidate in self.candidates:
            if needs_vision and "vision" not in candidate.capabilities:
                errors.append(f"{candidate.name}: no vision capability")
                continue
            llm = self._llm(candidate)
            before = llm.get_token_usage_summary()
            started = time.time()
            t0 = time.perf_counter()
            try:
                with usage_cell.open_cell() as cell, call_stop_override(llm, list(self.stop_sequences)):
                    result = llm.call(
                        messages,
                        tools=tools,
                        callbacks=callbacks,
                        available_functions=available_functions,
                        from_task=from_task,
                        from_agent=from_agent,
                        response_model=response_model,
                    )
            except CrewkitError:
                raise
            except Exception as exc:  # a crashed call: try the next model, remember why
                seconds = time.perf_counter() - t0
                ledger.record_call(
                    self.role, candidate.name, agent, started, seconds, 0, 0, 0.0, error=str(exc)
                )
                log.warning("role %s: model %s failed: %s", self.role, candidate.name, exc)
                errors.append(f"{candidate.name}: {type(exc).__name__}: {exc}")
                continue
            seconds = time.perf_counter() - t0
            if "input_tokens" in cell:
                tokens_in, tokens_out = cell["input_tokens"], cell.get("output_tokens", 0)
            else:
                delta = llm.get_token_usage_summary()
                tokens_in = delta.prompt_tokens - before.prompt_tokens
                tokens_out = delta.completion_tokens - before.completion_tokens
            cost = candidate.cost(tokens_in, tokens_out)
            relayed = bool(cell.get("relayed"))
            ledger.record_call(
                self.role,
                candidate.name,
                agent,
                started,
                seconds,
                tokens_in,
                tokens_out,
                cost,
                relayed=relayed,
            )
            return result
        if needs_vision and all("no vision capability" in e for e in errors):
            raise CapabilityError(
                f"role '{self.role}' got an image, but its models ({', '.join(c.name for c in self.candidates)}) "
                "are text-only; map the role to a model with 'vision' in config/models.yaml"
            )
        raise ModelCallFailed(f"role '{self.role}': every model failed: {'; '.join(errors)}")
