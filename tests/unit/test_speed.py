"""What keeps the default flow close to a bare CrewAI crew's wall time (bench/e2e.py measures it)."""

from __future__ import annotations

import subprocess
import sys


def test_the_default_flow_creates_no_crewai_memory_and_imports_no_lancedb(project):
    """CrewAI gives every Flow a Memory unless told not to: a lancedb import, seconds per run."""
    code = (
        "import sys; from crewkit.settings import load_settings; from crewkit.runtime.preflight import load_flow_class\n"
        "flow = load_flow_class(load_settings(), 'default')()\n"
        "print(flow.memory is None, 'lancedb' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=project, timeout=300
    )
    assert out.stdout.split() == ["True", "False"], out.stderr[-2000:]
