"""Assembling crews: YAML checks (`spec`), importing user code (`loader`), building crews
(`build`) and putting every model CrewAI makes on the role map (`wire`).

The names other modules use are re-exported here: `from crewkit import assembly`, then
`assembly.load_spec(...)`, `assembly.build_crew(...)`, `assembly.kickoff(...)`.
"""

from crewkit.assembly.build import (
    build_crew,
    crew_method,
    guardrail_failure,
    instantiate,
    kickoff,
    kickoff_crew,
    prepare_tasks_config,
    user_errors,
)
from crewkit.assembly.loader import import_project_module, load_crew_class, user_frame
from crewkit.assembly.spec import CrewSpec, agent_keys, crew_module_file, discover, load_spec, task_keys

__all__ = [
    "CrewSpec",
    "agent_keys",
    "build_crew",
    "crew_method",
    "crew_module_file",
    "discover",
    "guardrail_failure",
    "import_project_module",
    "instantiate",
    "kickoff",
    "kickoff_crew",
    "load_crew_class",
    "load_spec",
    "prepare_tasks_config",
    "task_keys",
    "user_errors",
    "user_frame",
]
