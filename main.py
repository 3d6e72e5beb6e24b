"""CrewAI entry points (`crewai run`, `uv run kickoff`, ...): thin calls into crewkit."""
