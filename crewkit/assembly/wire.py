"""Every model CrewAI builds comes from the role map: one resolver around CrewAI's constructors.

While a role map is bound (`with bound(role_map):`, entered by `crewkit run`, `crewkit crew` and
so by `crewai run` / main.py), each place where CrewAI makes a model asks `resolve(declared,
place)` instead of building its own default (OpenAI):

| where CrewAI builds it                                  | place      | role                      |
|---------------------------------------------------------|------------|---------------------------|
| `LLM(model=...)`: `create_llm`, an agent's `llm:`       | agent      | a role or model entry the |
| string, no llm at all (CrewAI's env/OpenAI default),    |            | string names, else        |
| `@llm` factories, Memory's and flows' model strings     |            | `default_role`            |
| an agent's llm built before the binding (`Agent`)       | agent      | `default_role`            |
| the hierarchical manager (`Crew._create_manager_agent`) | manager    | `manager`                 |
| `planning=True` (`CrewPlanner`)                         | planning   | `reasoning`               |
| a task's text `guardrail:` (`LLMGuardrail`)             | guardrail  | `reasoning`               |
| `memory: true` (`Memory`: its analysis llm)             | memory     | `default_role`            |
| every embedder (`build_embedder`, `Knowledge`)          | embedding  | `embedding`               |

An explicit choice is kept (memory aside, which CrewAI hands the agent's own llm): a string naming
a role or model entry (`llm: code`, `manager_llm="manager"`), a role's `RoleLLM` handed over by
crewkit code, or an LLM class of the user's own (a `BaseLLM` subclass outside CrewAI, as CrewAI's
own `llm_overlay` keeps it). A model string that names nothing in config/models.yaml
(`"gpt-4o-mini"`, CrewAI's defaults) runs on the place's role and is logged: nothing reaches a
provider the role map does not name. Outside a binding CrewAI behaves exactly as stock.

The same binding registers CrewAI's `INPUT` interception hook, so every crew kickoff (a stock
flow's `MyCrew().crew().kickoff()` included) is checked by `crewkit.assembly.inputs` first.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crewkit.models.registry import RoleMap

log = logging.getLogger(__name__)

_stack: list[RoleMap] = []  # process-wide: CrewAI runs steps and async tasks in threads of its own
_install_lock = threading.Lock()
_installed = False
# RoleLLMs made for a model string that named no role: a place with a role of its own
# (manager, planning) replaces them, unlike a role the user named.
_stand_ins: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()


def active() -> RoleMap | None:
    """The bound role map, or None (CrewAI then behaves as stock)."""
    return _stack[-1] if _stack else None


@contextmanager
def bound(role_map: RoleMap) -> Iterator[RoleMap]:
    """Put every model CrewAI builds inside the block on `role_map`."""
    install()
    _stack.append(role_map)
    try:
        yield role_map
    finally:
        _stack.pop()


def call(role_map: RoleMap, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)` inside `bound(role_map)` (e.g. a flow's kickoff in a worker thread)."""
    with bound(role_map):
        return function(*args, **kwargs)


def place_role(role_map: RoleMap, place: str) -> str:
    return {
        "manager": "manager",
        "planning": "reasoning",
        "guardrail": "reasoning",
    }.get(place, role_map.default_role)


def named_role(role_map: RoleMap, name: str) -> str | None:
    """The role a model string names (a role, or a model entry a role uses), else None."""
    name = name.strip()
    if name in role_map.settings.models.roles:
        return name
    for role, entry in role_map.settings.models.roles.items():
        if entry.model == name:
            return role
    return None  # a model no role uses runs on the place's role (agents.yaml refuses it up front)


def _is_users_own(llm: Any) -> bool:
    """A BaseLLM subclass written outside CrewAI and crewkit (the user's choice of class)."""
    from crewai.llms.base_llm import BaseLLM

    from crewkit.models.metered import RoleLLM

    if not isinstance(llm, BaseLLM) or isinstance(llm, RoleLLM):
        return False
    return not type(llm).__module__.startswith("crewai.")


def resolve(declared: Any, place: str) -> Any:
    """The model `place` runs on, given what the code or YAML declared there (see the table)."""
    role_map = active()
    if role_map is None:
        return declared
    from crewkit.models.metered import RoleLLM

    if place == "memory" and not _is_users_own(declared):
        # CrewAI hands memory the agent's own llm (or its `llm:` string): memory is not that agent
        return role_map.llm(role_map.default_role)
    if isinstance(declared, str) and (role := named_role(role_map, declared)):
        return role_map.llm(role)
    if _is_users_own(declared):
        return declared
    explicit = isinstance(declared, RoleLLM) and _stand_ins.get(id(declared)) is not declared
    if explicit and place in ("agent", "manager", "planning"):
        return declared  # a role named explicitly
    role = place_role(role_map, place)
    if isinstance(declared, RoleLLM) and declared.role == role:
        return declared
    described = getattr(declared, "model", declared)
    if declared is not None and not isinstance(declared, RoleLLM):
        log.info("CrewAI model %r (%s) runs on role %r of the role map", described, place, role)
    llm = role_map.llm(role)
    if place == "agent":
        _stand_ins[id(llm)] = llm
    return llm


def _model_string(model: Any) -> Any:
    """`LLM(model=...)` while bound: the role map's model for that string."""
    return resolve(model if isinstance(model, str) and model.strip() else None, "agent")


# ---------------------------------------------------------------------------------------------
# The wrappers, installed once (they are no-ops while nothing is bound)


def _wrap(owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    original = owner.__dict__[name] if name in owner.__dict__ else getattr(owner, name)
    func = original.__func__ if isinstance(original, staticmethod | classmethod) else original
    wrapper = functools.wraps(func)(make(func))
    wrapper.__crewkit_original__ = func  # type: ignore[attr-defined]
    setattr(owner, name, staticmethod(wrapper) if isinstance(original, staticmethod) else wrapper)


def install() -> None:
    """Wrap CrewAI's model constructors (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _install_llms()
        _install_embedders()
        _install_kickoff_hook()
        _install_feedback_outcomes()
        _installed = True


def _install_llms() -> None:
    from crewai.agent.core import Agent
    from crewai.crew import Crew
    from crewai.llm import LLM
    from crewai.memory.unified_memory import Memory
    from crewai.tasks.llm_guardrail import LLMGuardrail
    from crewai.utilities.planning_handler import CrewPlanner

    def new(original: Callable[..., Any]) -> Callable[..., Any]:
        def __new__(cls: type, model: str = "", is_litellm: bool = False, **kwargs: Any) -> Any:
            if cls is LLM and active() is not None:
                return _model_string(model)  # not an LLM instance: Python skips LLM.__init__
            return original(cls, model, is_litellm, **kwargs)

        return __new__

    _wrap(LLM, "__new__", new)

    def agent_llm(original: Callable[..., Any]) -> Callable[..., Any]:
        def _resolved_overlay(self: Any, declared: Any) -> Any:
            llm = original(self, declared)
            if active() is None or llm is None:
                return llm
            return resolve(llm, "agent")

        return _resolved_overlay

    _wrap(Agent, "_resolved_overlay", agent_llm)

    def manager(original: Callable[..., Any]) -> Callable[..., Any]:
        def _create_manager_agent(self: Any) -> None:
            if active() is not None:
                if self.manager_agent is None:
                    self.manager_llm = resolve(self.manager_llm, "manager")
                else:
                    self.manager_agent.llm = resolve(self.manager_agent.llm, "manager")
            original(self)

        return _create_manager_agent

    _wrap(Crew, "_create_manager_agent", manager)

    def planner(original: Callable[..., Any]) -> Callable[..., Any]:
        def __init__(self: Any, tasks: Any, planning_agent_llm: Any = None) -> None:
            original(self, tasks, planning_agent_llm)
            self.planning_agent_llm = resolve(self.planning_agent_llm, "planning")

        return __init__

    _wrap(CrewPlanner, "__init__", planner)

    def guardrail(original: Callable[..., Any]) -> Callable[..., Any]:
        def __init__(self: Any, description: str, llm: Any) -> None:
            original(self, description, llm)
            self.llm = resolve(self.llm, "guardrail")

        return __init__

    _wrap(LLMGuardrail, "__init__", guardrail)

    def memory(original: Callable[..., Any]) -> Callable[..., Any]:
        def model_post_init(self: Any, context: Any) -> None:
            if active() is not None:
                self.llm = resolve(self.llm, "memory")
                spec = self.embedder
                if spec is None or (isinstance(spec, dict) and spec.get("provider") != "custom"):
                    self.embedder = _embedding_function()  # now, not lazily outside the binding
            original(self, context)

        return model_post_init

    _wrap(Memory, "model_post_init", memory)


def _embedding_function() -> Any:
    """The embedding role as the embedding function CrewAI's memory and knowledge call."""
    role_map = active()
    assert role_map is not None
    return role_map.embedder_config()["config"]["embedding_callable"]()


def _install_embedders() -> None:
    from crewai.knowledge.knowledge import Knowledge
    from crewai.rag.embeddings import factory

    def from_dict(original: Callable[..., Any]) -> Callable[..., Any]:
        def build_embedder_from_dict(spec: Any) -> Any:
            if active() is None or (isinstance(spec, dict) and spec.get("provider") == "custom"):
                return original(spec)  # the user's own embedding class (crewkit's is one too)
            log.info("CrewAI embedder %r runs on the embedding role", (spec or {}).get("provider"))
            return _embedding_function()

        return build_embedder_from_dict

    def from_provider(original: Callable[..., Any]) -> Callable[..., Any]:
        def build_embedder_from_provider(provider: Any) -> Any:
            from crewai.rag.embeddings.providers.custom.custom_provider import CustomProvider

            if active() is None or isinstance(provider, CustomProvider):
                return original(provider)
            log.info("CrewAI embedder %s runs on the embedding role", type(provider).__name__)
            return _embedding_function()

        return build_embedder_from_provider

    _wrap(factory, "build_embedder_from_dict", from_dict)
    _wrap(factory, "build_embedder_from_provider", from_provider)

    def knowledge(original: Callable[..., Any]) -> Callable[..., Any]:
        def __init__(self: Any, *args: Any, **data: Any) -> None:
            from crewkit.models.embedder import collection_for

            role_map = active()
            if role_map is not None and data.get("embedder") is None:
                data["embedder"] = role_map.embedder_config()  # CrewAI's default: Chroma's OpenAI
            spec = data.get("embedder")
            ours = role_map is not None and isinstance(spec, dict) and spec == role_map.embedder_config()
            if ours and data.get("storage") is None and isinstance(data.get("collection_name"), str):
                # one collection per embedding model: switching the role never meets old vectors
                data["collection_name"] = collection_for(data["collection_name"], role_map.embedder())
            original(self, *args, **data)

        return __init__

    _wrap(Knowledge, "__init__", knowledge)


def _install_feedback_outcomes() -> None:
    """`@human_feedback(emit=[...])`: feedback that names an outcome exactly routes there with no
    model call (CrewAI 1.15 asks a model even then); anything else is CrewAI's (on the role map)."""
    from crewai.flow.flow import Flow

    from crewkit.governance.feedback import exact_outcome

    def collapse(original: Callable[..., Any]) -> Callable[..., Any]:
        def _collapse_to_outcome(self: Any, feedback: str, outcomes: Any, llm: Any) -> str:
            named = exact_outcome(feedback, outcomes) if active() is not None else None
            return named if named is not None else original(self, feedback, outcomes, llm)

        return _collapse_to_outcome

    _wrap(Flow, "_collapse_to_outcome", collapse)


def _install_kickoff_hook() -> None:
    from crewai.hooks.dispatch import InterceptionPoint, register

    from crewkit.assembly import inputs as crew_inputs

    def before_interpolation(ctx: Any) -> None:
        role_map = active()
        crew = getattr(ctx, "crew", None)  # None when a lone agent kicks off (a text guardrail)
        if role_map is not None and crew is not None:
            crew_inputs.check(crew, ctx.payload, role_map.settings)

    register(InterceptionPoint.INPUT, before_interpolation)
