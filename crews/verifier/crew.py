"""The Verifier: checks a result against its task and the plan's acceptance criteria.

The model's review is gated by crewkit's deterministic acceptance checks (`after_kickoff`): an
empty result, a meta-reply, code that does not parse or a wrong sum fails whatever the model
says, also when the crew is run on its own (`crewkit crew verifier --inputs ...`). The model's
own verdict stays in the task's output (`tasks_output[-1]`).
"""

from typing import Any

from crewai import Agent, Crew, Process, Task
from crewai.project import CrewBase, after_kickoff, agent, before_kickoff, crew, task

from crewkit.governance.reviewer import gate, model_review
from crewkit.plan import Review


@CrewBase
class VerifierCrew:
    agents_config = "config/agents.yaml"
    tasks_config = "config/tasks.yaml"

    @before_kickoff
    def keep_inputs(self, inputs: dict[str, Any] | None) -> dict[str, Any] | None:
        self._inputs = dict(inputs or {})
        return inputs

    @after_kickoff
    def apply_checks(self, output: Any) -> Any:
        review = gate(model_review(output), getattr(self, "_inputs", {}))
        output.pydantic, output.raw, output.json_dict = review, review.model_dump_json(), None
        return output

    @agent
    def verifier(self) -> Agent:
        return Agent(config=self.agents_config["verifier"])

    @task
    def review_task(self) -> Task:
        return Task(config=self.tasks_config["review_task"], output_pydantic=Review)

    @crew
    def crew(self) -> Crew:
        return Crew(agents=self.agents, tasks=self.tasks, process=Process.sequential)
