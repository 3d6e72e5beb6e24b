"""The Executor: a hierarchical crew whose manager delegates each subtask to its specialist.

Agents come from config/agents.yaml; config/tasks.yaml holds one task template (`subtask`)
that the flow instantiates once per plan subtask with `tasks_for(...)`.
"""

from typing import Any

from crewai import Agent, Crew, Process, Task
from crewai.project import CrewBase, agent


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@CrewBase
class ExecutorCrew:
    agents_config = "config/agents.yaml"
    tasks_config = "config/tasks.yaml"

    @agent
    def reasoning_specialist(self) -> Agent:
        return Agent(config=self.agents_config["reasoning_specialist"])

    @agent
    def code_specialist(self) -> Agent:
        return Agent(config=self.agents_config["code_specialist"])

    @agent
    def vision_specialist(self) -> Agent:
        return Agent(config=self.agents_config["vision_specialist"])

    def specialists(self) -> list[Agent]:
        return [getattr(self, key)() for key in self.agents_config]

    def tasks_for(self, subtasks: list[dict[str, Any]]) -> list[Task]:
        template = self.tasks_config["subtask"]
        tasks = []
        for values in subtasks:
            config = dict(template)
            config["description"] = template["description"].format_map(_Blank(values))
            config["expected_output"] = template["expected_output"].format_map(_Blank(values))
            tasks.append(Task(config=config))
        return tasks

    def crew_for(self, subtasks: list[dict[str, Any]], manager_llm: Any = None) -> Crew:
        return Crew(
            agents=self.specialists(),
            tasks=self.tasks_for(subtasks),
            process=Process.hierarchical,
            manager_llm=manager_llm,
        )
