"""The Verifier: checks the executor's result against the plan's acceptance criteria."""

from crewai import Agent, Crew, Process, Task
from crewai.project import CrewBase, agent, crew, task

from crewkit.plan import Review


@CrewBase
class VerifierCrew:
    agents_config = "config/agents.yaml"
    tasks_config = "config/tasks.yaml"

    @agent
    def verifier(self) -> Agent:
        return Agent(config=self.agents_config["verifier"])

    @task
    def review_task(self) -> Task:
        return Task(config=self.tasks_config["review_task"], output_pydantic=Review)

    @crew
    def crew(self) -> Crew:
        return Crew(agents=self.agents, tasks=self.tasks, process=Process.sequential)
