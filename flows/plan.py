"""Plan only: the planner crew splits a task into typed subtasks and prints them as JSON.

A stock CrewAI flow, written as `crewai create flow` writes one (a crew kicked off inside a
step, its output returned), to show the runner <-> flow contract (README, "Add a flow"):

    crewkit run plan --inputs '{"task": "Write a haiku about owls, then explain its rhythm"}'

crewkit runs the crew on the role map (the planner's `llm: reasoning`); the state has no
`result`, so the value `kickoff()` returns is the run's result.
"""

from typing import ClassVar

from crewai.flow.flow import Flow, start
from pydantic import BaseModel, ConfigDict, Field

from crews.planner.crew import PlannerCrew


class Inputs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=20_000)


class PlanState(BaseModel):
    task: str = ""


class PlanFlow(Flow[PlanState]):
    Inputs: ClassVar[type[BaseModel]] = Inputs
    CREWS: ClassVar[tuple[str, ...]] = ("planner",)
    EXAMPLE_INPUTS: ClassVar[dict[str, str]] = {"task": "Write a haiku about owls, then explain its rhythm"}

    @start()
    def make_plan(self) -> str:
        output = PlannerCrew().crew().kickoff(inputs={"task": self.state.task})
        return output.raw


FLOW = PlanFlow
