"""The base class crewkit flows build on: a flow file holds only its steps and their logic.

    class MyFlow(CrewkitFlow[MyState]):
        @start()
        def draft(self) -> None:
            self.state.result = self.run_crew("writer", {"topic": self.state.topic}).raw

What the engine gives a step (`self.`):
- `ctx`: the run context (settings, role map, run id, progress, store);
- `run_crew(name, inputs)`: a crew from crews/ built on the role map and kicked off, its model
  calls labelled with the step's name in the run record;
- `pin(task, tool, arguments)`: delegation pinned for this run (see `crewkit.runtime.pins`);
- `route(subtask, task_type, role, description)`: which model of the role's chain answers a
  subtask first (`crewkit.models.routing`: the routing policy, a complexity estimate, the
  budget left), audited; `routed({task_id: route}, into=...)` applies routes to a crew's tasks
  while it runs and adds what happened to a list for the run record (`crewkit.runtime.routes`);
- `gate(step, items)`: risk tiers -> a person's approval when the policy asks for one (the run
  is checkpointed and pauses, exit 75, until `crewkit approvals approve|reject`);
- `recall(query)` / `remember(text)`: long-term memory (crewkit.memory: Qdrant with the role
  map's embedder, versioned in state.db) in the run's scope: the inputs' `tenant` and `user`.
  CrewAI's own Flow.recall/remember names, crewkit's store (never CrewAI's default memory and
  its OpenAI embedder). Recalled text has passed the injection guard; a write inside a run is in
  its undo log, so rolling the run back removes it;
- checkpoints: after every finished step the state is saved to state.db; `crewkit resume`
  replays finished steps from their checkpoints (not run, not paid again) and continues.

Class attributes the runner reads: `Inputs` (pydantic model for --inputs), `EXAMPLE_INPUTS`,
`CREWS` (checked before the run), `RECORD_FIELDS` (extra state fields in the run record),
`STABLE_STEPS` (where an automatic rollback may return to; default: the start steps).
State fields the runner reads when present: plan, results, result, status, error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

from crewai.flow.flow import Flow
from pydantic import BaseModel, Field, PrivateAttr

from crewkit import assembly
from crewkit.errors import GuardrailBlocked, RunFailed, RunRejected
from crewkit.observability import ledger
from crewkit.runtime import pins, routes
from crewkit.runtime.context import RunContext, tenant_of
from crewkit.runtime.record import jsonable


class RunState(BaseModel):
    """The fields the runner reads into the run record; extend it with your own."""

    plan: list[dict[str, Any]] = Field(default_factory=list)
    results: list[dict[str, Any]] = Field(default_factory=list)
    result: str | None = None
    status: str = "running"
    error: str | None = None


S = TypeVar("S", bound=BaseModel)


class CrewkitFlow(Flow[S]):
    CREWS: ClassVar[tuple[str, ...]] = ()
    RECORD_FIELDS: ClassVar[tuple[str, ...]] = ()
    STABLE_STEPS: ClassVar[tuple[str, ...] | None] = None  # None: the flow's start steps
    # failures that mean the work itself is bad (or a person refused it): the run rolls back to
    # its last stable checkpoint, undoing side effects
    ROLLBACK_ON: ClassVar[tuple[type[BaseException], ...]] = (RunFailed, GuardrailBlocked, RunRejected)
    _skip_auto_memory: bool = True  # no flow-level CrewAI memory unless a flow asks for it
    _ctx: Any = PrivateAttr(default=None)

    @property
    def ctx(self) -> RunContext:
        if self._ctx is None:
            raise RuntimeError("this flow runs through crewkit (`crewkit run`), which sets its run context")
        return self._ctx

    def stable_steps(self) -> set[str]:
        """Checkpoints an automatic rollback may return to: `STABLE_STEPS`, else the start steps."""
        if self.STABLE_STEPS is not None:
            return set(self.STABLE_STEPS)
        return {str(name) for name in self._start_method_names()}

    # -- what steps use --------------------------------------------------------------------------

    def memory_scope(self, agent: str | None = None) -> Any:
        """The run's memory scope: its inputs' tenant (else 'default') and user."""
        from crewkit.memory.store import Scope

        return Scope(self._tenant(), self._state_value("user") or None, agent).checked()

    def _state_value(self, key: str) -> Any:
        state = self._state
        return state.get(key) if isinstance(state, dict) else getattr(state, key, None)

    def _tenant(self) -> str:
        """The run's tenant: its inputs' `tenant`, else 'default'."""
        return tenant_of({"tenant": self._state_value("tenant")})

    def memory_store(self) -> Any:
        """The long-term memory store (`crewkit.memory.store.MemoryStore`), or None when
        long-term memory is off."""
        if not self.ctx.settings.memory.long_term.enabled:
            return None
        from crewkit.memory.store import MemoryStore

        return MemoryStore.open(self.ctx.settings)

    def recall(self, query: str, *, agent: str | None = None, **_: Any) -> list[Any]:  # type: ignore[override]
        """Memories relevant to `query` in the run's scope (config/memory.yaml `recall`: k and
        min_score), as `crewkit.memory.store.Recalled`; [] when long-term memory is off."""
        store = self.memory_store()
        return [] if store is None else store.recall(query, self.memory_scope(agent))

    def remember(self, content: str, *, agent: str | None = None, **_: Any) -> Any:  # type: ignore[override]
        """Store `content` as a new memory in the run's scope (versioned, audited, undone with the
        run); returns its `MemoryRecord`, or None when long-term memory is off."""
        store = self.memory_store()
        if store is None:
            return None
        return store.add(content, self.memory_scope(agent), source="flow", run_id=self.ctx.run_id)

    def run_crew(self, name: str, inputs: dict[str, Any] | None = None, *, stage: str | None = None) -> Any:
        """Build crew `name` on the role map and kick it off; its calls are labelled with the step."""
        crew, _ = assembly.build_crew(self.ctx.settings, self.ctx.role_map, name)
        with ledger.stage(stage or _current_step()):
            return assembly.kickoff(crew, inputs if inputs is not None else {})

    def pin(self, task_id: Any, tool: str, arguments: dict[str, Any], *, relay: bool = False) -> None:
        pins.pin(task_id, tool, arguments, answer_with_tool_result=relay)

    def route(self, subtask: str, task_type: str, role: str, description: str) -> Any:
        """Route a subtask (`crewkit.models.routing.decide` under the active policy, with the budget
        left for a call of `role` in this run) and audit the decision ("route"); returns the Route."""
        from crewkit.governance import audit
        from crewkit.models import routing

        ctx = self.ctx
        left = None
        if ctx.store is not None:
            left = routing.budget_left(ctx.settings, ctx.store, ctx.run_id, self._tenant(), role)
        decided = routing.decide(
            ctx.settings, role, task_type, description, budget_left=left, subtask=subtask
        )
        if ctx.store is not None:
            detail = {**decided.as_record(), "budget_left": None if left is None else round(left, 9)}
            with ctx.store.write() as conn:
                audit.append(conn, audit.Entry("route", subtask, detail, run_id=ctx.run_id))
        return decided

    @contextmanager
    def routed(
        self, by_task: dict[Any, Any], *, into: list[dict[str, Any]] | None = None, **extra: Any
    ) -> Iterator[None]:
        """Apply routes to the crew tasks they are keyed by ({task id: Route}) while the block runs;
        then add each route's record (with the models that answered, `answered_by`, and `extra`)
        to `into`."""
        with routes.routed(by_task) as table:
            try:
                yield
            finally:
                if into is not None:
                    into.extend(table.records(**extra))

    def gate(self, step: str, items: list[tuple[str, Any]], *, content: str | None = None) -> Any:
        """Ask the run's approval gate about `items` ([(id, risk Assessment)]); may pause the run.

        `content` (the result to release) is shown to the person, and different content is a
        new decision. Returns a `Decision` (outcome "auto", "approved" or "rejected").
        """
        if self.ctx.gate is None:
            raise RuntimeError("no approval gate: run this flow through crewkit")
        return self.ctx.gate.check_step(step, items, content=content)

    # -- checkpoints and replay (CrewAI calls this for every step it runs) -----------------------

    async def _execute_method(self, method_name: Any, method: Any, *args: Any, **kwargs: Any) -> Any:
        log = self._ctx.checkpoints if self._ctx is not None else None
        if log is None:
            return await super()._execute_method(method_name, method, *args, **kwargs)
        done = log.replay(str(method_name))
        if done is not None:  # finished before the pause or crash: its output, not its body
            self._completed_methods.add(method_name)
            self._method_outputs.append({"method": str(method_name), "output": done.output})
            self._method_execution_counts[method_name] = self._method_execution_counts.get(method_name, 0) + 1
            self.ctx.progress(f"{method_name}: finished earlier (checkpoint {done.seq}), not run again")
            return done.output, None
        state = log.take_restore()
        if state is not None:
            self.restore(state)
        with ledger.stage(str(method_name)):
            result, event_id = await super()._execute_method(method_name, method, *args, **kwargs)
        await asyncio.to_thread(log.add, str(method_name), jsonable(result), self.dump_state())
        return result, event_id

    def dump_state(self) -> dict[str, Any]:
        state = self._state
        if isinstance(state, BaseModel):
            return state.model_dump(mode="json")
        return dict(state) if isinstance(state, dict) else {}

    def restore(self, state: dict[str, Any]) -> None:
        self._restore_state(state)


def _current_step() -> str:
    from crewai.flow.flow_context import current_flow_method_name

    return str(current_flow_method_name.get() or "")
