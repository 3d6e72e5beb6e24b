"""A CrewAI tool that checks Python source for syntax errors (no execution).

Give it to an agent in crew.py: `Agent(config=..., tools=[PythonSyntaxTool()])`.
"""

from __future__ import annotations

import ast

from crewai.tools import BaseTool
from pydantic import BaseModel, Field


class PythonSyntaxInput(BaseModel):
    code: str = Field(..., description="Python source code to check")


class PythonSyntaxTool(BaseTool):
    name: str = "check_python_syntax"
    description: str = "Check Python source code for syntax errors without running it."
    args_schema: type[BaseModel] = PythonSyntaxInput

    def _run(self, code: str) -> str:
        source = code.strip()
        if source.startswith("```"):
            source = source.strip("`")
            source = source[len("python") :] if source.startswith("python") else source
        try:
            ast.parse(source)
        except SyntaxError as exc:
            return f"syntax error at line {exc.lineno}, column {exc.offset}: {exc.msg}"
        return "ok: the code parses"
