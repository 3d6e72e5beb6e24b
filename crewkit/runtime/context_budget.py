"""The short-term context budget on the hook path: every model call's messages fit its budget.

`ContextBudget` is a hook-path subscriber (`crewkit.runtime.hooks`). Before each model attempt it
fits the call's messages into the budget with `crewkit.memory.context.fit` (settings:
`config/memory.yaml` `short_term`): system prompt and newest messages kept verbatim, older ones
summarised or trimmed by the policy, never cut mid-message. When they already fit nothing
changes (a byte bound decides most calls without tokenizing anything).

The budget, per call: `short_term.budget_tokens`, else the model's `context:` in
config/models.yaml (at most that context either way), minus the call's largest reply when
`reserve_output` (the embedded model: `max_tokens`, or `constrained_max_tokens` for a structured
or tool-call reply; other models: their `max_tokens` param, else 4096), minus a hosted model's
tool schemas. Tokens are counted with the embedded model's own tokenizer (the shared `Llama`
the role already loaded or is about to load: the call follows at once); hosted models and a
role scripted in tests are estimated.

Each fitted call is audited (`context.fitted`: agent, role, model, messages and tokens before and
after, how many messages were summarised or dropped; no text) when it finishes, and `summary(store,
run_id)` reads those back for the run record's `context_budget` section. A call whose kept part
alone is over budget is refused with `ContextBudgetExceeded` (one line naming the budget, the
tokens and the fix), audited as `context.over_budget`.

Subscribe it after the call journal (a replayed call is not fitted again) and before the budget
guard and the shields, so the cost estimate, the injection scan and PII masking see what is sent.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from crewkit.governance import audit
from crewkit.governance.budget import _json, _text_tokens, max_output_tokens
from crewkit.memory import context
from crewkit.models.context_fit import DEFAULT_CONSTRAINED_MAX_TOKENS, DEFAULT_MAX_TOKENS
from crewkit.runtime.hooks import ModelCall, ModelResult, Subscriber

log = logging.getLogger(__name__)
FITTED = "context.fitted"
OVER_BUDGET = "context.over_budget"


def short_term(settings: Any) -> Any:
    """`settings.memory.short_term`, else the defaults (`crewkit.memory.config.ShortTermConfig`)."""
    memory = getattr(settings, "memory", None)
    found = getattr(memory, "short_term", None)
    if found is not None:
        return found
    from crewkit.memory.config import ShortTermConfig

    return ShortTermConfig()


def _where(call: ModelCall) -> str:
    agent = f", agent '{call.agent}'" if call.agent else ""
    return f"role '{call.role}' (model '{call.model}'{agent})"


def _scripted(role: str, model: str) -> bool:
    """Whether the call goes to a test's scripted LLM (the bound role map overrides the role)."""
    from crewkit.assembly import wire

    role_map = wire.active()
    if role_map is None or role not in role_map.overrides:
        return False
    return role_map.settings.role(role).model == model


class ContextBudget(Subscriber):
    """Fits each model call's messages into its context budget before it is sent."""

    def __init__(self, settings: Any, store: Any = None, run_id: str | None = None) -> None:
        self.settings = settings
        self.config = short_term(settings)
        self.store = store
        self.run_id = run_id
        self._counters: dict[tuple[str, bool], Any] = {}
        self._open: dict[int, tuple[ModelCall, context.Fitted]] = {}
        self._lock = threading.Lock()

    # -- the budget ----------------------------------------------------------------------------

    def _counter(self, name: str, entry: Any, scripted: bool) -> Any:
        key = (name, scripted)
        counter = self._counters.get(key)
        if counter is None:
            if entry.provider == "llamacpp" and not scripted:
                from crewkit.models.providers import PROVIDERS

                # the same LlamaCppLLM settings the role map builds: gguf.load hands back the
                # process's one Llama for this file (loaded now or by the call that follows)
                counter = context.LlamaCounter(PROVIDERS["llamacpp"].build(name, entry))
            else:
                counter = context.EstimateCounter()
            self._counters[key] = counter
        return counter

    def reply_tokens(self, call: ModelCall, entry: Any) -> int:
        """The most tokens this call's reply may take (what the model reserves for it)."""
        if entry.provider != "llamacpp":
            return max_output_tokens(entry.params, entry.context)
        text = int(entry.params.get("max_tokens") or DEFAULT_MAX_TOKENS)
        messages = call.messages
        after_tool = isinstance(messages, list) and bool(messages) and messages[-1].get("role") == "tool"
        if call.response_model is not None or (call.tools and not after_tool):  # a constrained reply
            return max(
                text, int(entry.params.get("constrained_max_tokens") or DEFAULT_CONSTRAINED_MAX_TOKENS)
            )
        return text

    def budget(self, call: ModelCall, entry: Any) -> int:
        """The call's prompt budget in tokens (see the module docstring)."""
        cfg = self.config
        budget = min(cfg.budget_tokens, entry.context) if cfg.budget_tokens else entry.context
        if cfg.reserve_output:
            budget -= self.reply_tokens(call, entry)
        if call.tools and entry.provider != "llamacpp":  # sent as schemas; the embedded model's are a grammar
            budget -= _text_tokens(_json(call.tools))
        return budget

    def explain(self, call: ModelCall, entry: Any) -> str:
        """How `budget` was reached, for an error: "short_term.budget_tokens 700 - 640 reserved ..."."""
        cfg = self.config
        how = [
            f"short_term.budget_tokens {cfg.budget_tokens:,}"
            if cfg.budget_tokens and cfg.budget_tokens <= entry.context
            else f"the model's {entry.context:,}-token context"
        ]
        if cfg.reserve_output:
            how.append(f"{self.reply_tokens(call, entry):,} reserved for the reply")
        if call.tools and entry.provider != "llamacpp":
            how.append(f"{_text_tokens(_json(call.tools)):,} for tool schemas")
        return " - ".join(how)

    # -- the hooks -----------------------------------------------------------------------------

    def before_model(self, call: ModelCall) -> None:
        entry = self.settings.models.models.get(call.model)
        if entry is None or not call.messages:
            return None
        budget = max(self.budget(call, entry), 0)
        counter = self._counter(call.model, entry, _scripted(call.role, call.model))
        cfg = self.config
        try:
            try:
                fitted = context.fit(
                    call.messages, budget, counter, keep_recent=cfg.keep_recent, policy=cfg.policy
                )
            except context.ContextBudgetExceeded:
                raise
            except Exception:  # noqa: BLE001 - a model file that cannot load: the call itself says why
                if not counter.exact:
                    raise
                log.debug(
                    "context budget: tokenizer of %s unavailable, estimating", call.model, exc_info=True
                )
                fitted = context.fit(
                    call.messages,
                    budget,
                    context.EstimateCounter(),
                    keep_recent=cfg.keep_recent,
                    policy=cfg.policy,
                )
        except context.ContextBudgetExceeded as exc:
            raise self._refused(call, entry, exc) from None
        if fitted.changed:
            call.messages = fitted.messages
            with self._lock:
                self._open[id(call)] = (call, fitted)
            log.info(
                "context budget: %s: %d messages summarised, %d dropped (%s -> %s tokens, budget %s)",
                _where(call), fitted.summarised, fitted.dropped, fitted.tokens_before, fitted.tokens_after, budget,
            )  # fmt: skip
        return None

    def _refused(
        self, call: ModelCall, entry: Any, exc: context.ContextBudgetExceeded
    ) -> context.ContextBudgetExceeded:
        """The one-line error for a call whose kept part alone is over budget (audited)."""
        about = "" if exc.exact else "about "
        error = context.ContextBudgetExceeded(
            f"{_where(call)}: what is always kept ({exc.kept}) is {about}{exc.tokens:,} tokens, over its "
            f"{exc.budget:,}-token context budget ({self.explain(call, entry)}); lower "
            "short_term.keep_recent or raise short_term.budget_tokens in config/memory.yaml, or map role "
            f"'{call.role}' to a model with a larger context in config/models.yaml",
            exc.kept, exc.tokens, exc.budget, exc.exact,
        )  # fmt: skip
        if self.store is not None:
            detail = {**self._about(call), "kept": exc.kept, "tokens": exc.tokens, "budget": exc.budget}
            audit.record(
                self.store, audit.Entry(OVER_BUDGET, call.agent or call.role, detail, run_id=self.run_id)
            )
        return error

    def after_model(self, result: ModelResult) -> None:
        with self._lock:
            entry = self._open.pop(id(result.call), None)
        if entry is None or entry[0] is not result.call:
            return
        call, fitted = entry
        if self.store is None:
            return
        detail = {**self._about(call), **fitted.as_dict(), "sent": result.not_run != "refused"}
        audit.record(self.store, audit.Entry(FITTED, call.agent or call.role, detail, run_id=self.run_id))

    @staticmethod
    def _about(call: ModelCall) -> dict[str, Any]:
        return {"agent": call.agent, "role": call.role, "model": call.model, "stage": call.stage}


def from_settings(settings: Any, store: Any = None, run_id: str | None = None) -> ContextBudget:
    """The run's context-budget subscriber under `settings.memory.short_term`."""
    return ContextBudget(settings, store, run_id)


# -- the run record ----------------------------------------------------------------------------------


def summary(store: Any, run_id: str) -> dict[str, Any] | None:
    """The run record's `context_budget` section: every fitted call of the run (all its segments),
    totals and per agent; None when no call needed fitting."""
    import json

    rows = store.read(
        "SELECT detail FROM audit WHERE run_id = ? AND action = ? ORDER BY seq", (run_id, FITTED)
    )
    calls: list[dict[str, Any]] = []
    for (text,) in rows:
        try:
            detail = json.loads(text)
        except (TypeError, ValueError):
            continue
        if isinstance(detail, dict):
            detail.pop("run_id", None)
            calls.append(detail)
    if not calls:
        return None
    keys = ("summarised", "dropped", "context_parts")

    def tokens_saved(c: dict[str, Any]) -> int:
        return max(0, int(c.get("tokens_before") or 0) - int(c.get("tokens_after") or 0))

    by_agent: dict[str, dict[str, int]] = {}
    for c in calls:
        agent = by_agent.setdefault(
            str(c.get("agent") or c.get("role") or ""),
            {"calls": 0, "summarised": 0, "dropped": 0, "context_parts": 0, "tokens_saved": 0},
        )
        agent["calls"] += 1
        for k in keys:
            agent[k] += int(c.get(k) or 0)
        agent["tokens_saved"] += tokens_saved(c)
    return {
        "fitted_calls": len(calls),
        "messages_summarised": sum(int(c.get("summarised") or 0) for c in calls),
        "messages_dropped": sum(int(c.get("dropped") or 0) for c in calls),
        "context_parts": sum(int(c.get("context_parts") or 0) for c in calls),
        "tokens_saved": sum(tokens_saved(c) for c in calls),
        "by_agent": by_agent,
        "calls": calls,
    }
