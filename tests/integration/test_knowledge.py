"""Knowledge and memory embed with the embedded ONNX model (never CrewAI's OpenAI default)."""

from __future__ import annotations

import pytest

from crewkit import assembly
from crewkit.models.metered import RoleLLM
from crewkit.models.registry import RoleMap
from tests.fakes import ScriptedLLM
from tests.unit.test_crews import make_crew

pytestmark = pytest.mark.integration


def test_crew_knowledge_source_is_embedded_offline_and_reaches_the_prompt(project, settings):
    folder = make_crew(project, "kb")
    code = (folder / "crew.py").read_text()
    code = "from crewai.knowledge.source.string_knowledge_source import StringKnowledgeSource\n" + code
    code = code.replace(
        "process=Process.sequential",
        "process=Process.sequential, knowledge_sources=[StringKnowledgeSource("
        "content='The crewkit mascot is a blue heron named Hugo. Hugo likes rivers.')]",
    )
    (folder / "crew.py").write_text(code)
    # CrewAI first asks the model to rewrite the task into a knowledge search query
    fake = ScriptedLLM(["crewkit mascot facts", "- Hugo is a heron.\n- Hugo likes rivers."])
    result = assembly.kickoff_crew(
        settings, RoleMap(settings, overrides={"reasoning": fake}), "kb", {"topic": "mascot"}
    )
    assert "Hugo" in result.raw
    assert len(fake.calls) == 2
    assert "blue heron named Hugo" in fake.calls[1].prompt  # retrieved by the ONNX embedder


def test_crew_memory_uses_the_role_map(project, settings):
    folder = make_crew(project, "mem")
    code = (
        (folder / "crew.py")
        .read_text()
        .replace("process=Process.sequential", "process=Process.sequential, memory=True")
    )
    (folder / "crew.py").write_text(code)
    role_map = RoleMap(settings)
    crew, _ = assembly.build_crew(settings, role_map, "mem")
    memory = crew._memory
    assert isinstance(memory.llm, RoleLLM) and memory.llm.role == role_map.default_role
    assert memory.embedder.wrapped is role_map.embedder()  # the embedding role, set while built
    vectors = memory.embedder(["hello world"])
    assert len(vectors[0]) == role_map.embedder().dimensions
