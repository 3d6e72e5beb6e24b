"""The Planner: one agent that turns the user's task into a typed plan (reasoning role)."""

from crewai import Agent, Crew, Process, Task
from crewai.project import CrewBase, agent, before_kickoff, crew, task

from crewkit.plan import Plan


@CrewBase
class PlannerCrew:
    agents_config = "config/agents.yaml"
    tasks_config = "config/tasks.yaml"

    @before_kickoff
    def memory_optional(self, inputs: dict | None) -> dict:
        """`{memory}` (what the flow recalled) is empty when a caller has none to give."""
        return {"memory": "", **(inputs or {})}

    @agent
    def planner(self) -> Agent:
        return Agent(config=self.agents_config["planner"])

    @task
    def plan_task(self) -> Task:
        return Task(config=self.tasks_config["plan_task"], output_pydantic=Plan)

    @crew
    def crew(self) -> Crew:
        return Crew(agents=self.agents, tasks=self.tasks, process=Process.sequential)
