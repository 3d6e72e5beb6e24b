"""The default flow: Planner -> Executor -> Verifier -> Guard.

- plan:    the planner crew (reasoning role) writes a typed `Plan` of subtasks with task types.
- execute: a hierarchical crew; its manager (manager role) delegates each subtask to the
           specialist whose role matches the subtask's task type. The delegation is pinned for
           the embedded model (coworker and task are fixed by the plan, see
           crewkit.models.llamacpp.pin_tool_arguments); hosted models follow the task text.
- verify:  deterministic checks, then the verifier crew reviews against the acceptance criteria;
           a failed review sends the work back with the issues, at most `verifier.max_rounds`.
- guard:   the output guardrails from config/governance.yaml; a block fails the run cleanly.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from crewai.flow.flow import Flow, listen, or_, router, start
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from crewkit import crews
from crewkit.errors import GuardrailBlocked, RunFailed
from crewkit.governance import guardrails
from crewkit.models.llamacpp import clear_pins, pin_tool_arguments
from crewkit.observability import ledger
from crewkit.plan import Plan, Review

DELEGATE_TOOL = "Delegate work to coworker"


class Inputs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=20_000)
    tenant: str | None = None
    user: str | None = None


class RunState(BaseModel):
    task: str = ""
    tenant: str | None = None
    user: str | None = None
    plan: list[dict[str, Any]] = Field(default_factory=list)
    results: list[dict[str, Any]] = Field(default_factory=list)
    feedback: list[str] = Field(default_factory=list)
    rounds: int = 0
    review: dict[str, Any] | None = None
    guard_steps: list[dict[str, Any]] = Field(default_factory=list)
    result: str | None = None
    status: str = "running"
    error: str | None = None


class DefaultFlow(Flow[RunState]):
    Inputs: ClassVar[type[BaseModel]] = Inputs
    CREWS: ClassVar[tuple[str, ...]] = ("planner", "executor", "verifier")
    EXAMPLE_INPUTS: ClassVar[dict[str, str]] = {
        "task": "Write a Python function that checks whether a string is a palindrome, and explain it."
    }
    _ctx: Any = PrivateAttr(default=None)

    @property
    def ctx(self) -> Any:
        return self._ctx

    @start()
    def plan(self) -> None:
        self.ctx.progress("Planner: writing the plan")
        with ledger.stage("plan"):
            crew, _ = crews.build_crew(self.ctx.settings, self.ctx.role_map, "planner")
            output = crews.kickoff(crew, {"task": self.state.task})
        plan = output.pydantic if isinstance(output.pydantic, Plan) else Plan.model_validate_json(output.raw)
        self.state.plan = [
            {"id": f"s{i}", **sub.model_dump()} for i, sub in enumerate(plan.normalised().subtasks, start=1)
        ]

    @listen(or_(plan, "retry"))
    def execute(self) -> None:
        self.state.rounds += 1
        self.ctx.progress(f"Executor: {len(self.state.plan)} subtask(s), round {self.state.rounds}")
        settings, role_map = self.ctx.settings, self.ctx.role_map
        instance, spec = crews.instantiate(settings, role_map, "executor")
        with crews.user_errors(settings, "executor"):
            specialists = instance.specialists()
        by_role: dict[str, Any] = {}
        for specialist in specialists:
            by_role.setdefault(spec.role_of(specialist, role_map), specialist)
        values = []
        for n, sub in enumerate(self.state.plan, start=1):
            specialist = by_role.get(sub["task_type"]) or by_role.get(role_map.default_role) or specialists[0]
            description = sub["description"]
            if self.state.feedback:
                description += " Fix: " + "; ".join(self.state.feedback)
            values.append(
                {
                    **sub,
                    "description": description,
                    "task": self.state.task,
                    "number": n,
                    "count": len(self.state.plan),
                    "specialist": specialist.role,
                }
            )
        with crews.user_errors(settings, "executor"):
            crew = instance.crew_for(values, manager_llm=role_map.llm("manager"))
        crew = crews.wire(crew, spec, role_map)
        task_ids = [str(t.id) for t in crew.tasks]
        for task, v in zip(crew.tasks, values, strict=True):
            pin_tool_arguments(
                task.id,
                DELEGATE_TOOL,
                {"coworker": v["specialist"], "task": f"{v['description']} (part of: {v['task']})"},
                answer_with_tool_result=True,
            )
        try:
            with ledger.stage("execute"):
                output = crews.kickoff(crew)
        finally:
            clear_pins(task_ids)
        self.state.results = [
            {"subtask": v["id"], "specialist": v["specialist"], "output": t.raw}
            for v, t in zip(values, output.tasks_output, strict=True)
        ]
        self.state.result = "\n\n".join(r["output"].strip() for r in self.state.results)

    @router(execute)
    def verify(self) -> Literal["passed", "retry", "failed"]:
        self.ctx.progress("Verifier: checking the acceptance criteria")
        empty = [r["subtask"] for r in self.state.results if not (r["output"] or "").strip()]
        if empty:
            review = Review(passed=False, issues=[f"subtask {s} has no output" for s in empty])
        else:
            criteria = "\n".join(f"- {s['id']}: {s['acceptance']}" for s in self.state.plan)
            with ledger.stage("verify"):
                crew, _ = crews.build_crew(self.ctx.settings, self.ctx.role_map, "verifier")
                output = crews.kickoff(
                    crew, {"task": self.state.task, "criteria": criteria, "result": self.state.result or ""}
                )
            review = (
                output.pydantic
                if isinstance(output.pydantic, Review)
                else Review.model_validate_json(output.raw)
            )
        self.state.review = review.model_dump()
        if review.passed:
            return "passed"
        if self.state.rounds < self.ctx.settings.governance.verifier.max_rounds:
            self.state.feedback = [i for i in review.issues if i.strip()][:3]
            return "retry"
        return "failed"

    @listen("failed")
    def give_up(self) -> None:
        issues = "; ".join((self.state.review or {}).get("issues") or []) or "no reason given"
        self.state.status = "failed"
        self.state.error = (
            f"verifier rejected the result after {self.state.rounds} round(s): {issues}; "
            "see the run record, or raise verifier.max_rounds in config/governance.yaml"
        )
        raise RunFailed(self.state.error)

    @listen("passed")
    def guard(self) -> None:
        self.ctx.progress("Guard: output guardrails")
        names = self.ctx.settings.governance.output_guardrails
        verdicts = guardrails.run_all(names, self.state.result or "")
        self.state.guard_steps = [
            {"step": "guard", "agent": "Guard", "role": None, "model": None, "seconds": 0.0,
             "verdicts": [v.as_dict() for v in verdicts]}
        ]  # fmt: skip
        blocked = [v for v in verdicts if not v.allowed]
        if blocked:
            self.state.status = "failed"
            self.state.error = f"guardrail '{blocked[0].guardrail}' blocked the result: {blocked[0].reason}"
            raise GuardrailBlocked(self.state.error)
        self.state.status = "done"


FLOW = DefaultFlow
