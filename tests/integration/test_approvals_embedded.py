"""Integration: a sensitive task on the real embedded model pauses, is approved elsewhere, resumes.

Each step is its own process, as a person would run them from different shells: the run is
started through `kickoff` (the console script `crewai run` / `uv run kickoff` calls), which
exits 75 with the approval id in its `--json` line; `crewkit approvals approve ID --by bob`
decides it; `crewkit resume RUN_ID --json` finishes the run. The resumed segment pays for
nothing finished before the pause: the plan, execute and verify calls in the final record are
the very rows written before the pause, and usage does not change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
# a one-part code task (the 135M model passes its checks) carrying bank details: sensitive
TASK = "Write a Python function that checks the IBAN DE89 3704 0044 0532 0130 00"


def run(project: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CREWKIT_PROJECT": str(project), "CREWKIT_USER": "alice"}
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=project, timeout=300)


def json_line(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_a_sensitive_task_pauses_75_is_approved_by_another_person_and_resumes_without_paying_again(project):
    for script in ("kickoff", "crewkit"):
        if not (BIN / script).exists():
            pytest.skip(f"{BIN / script} is not installed (uv sync installs the project's scripts)")

    started = run(project, str(BIN / "kickoff"), "--inputs", json.dumps({"task": TASK}), "--json")
    assert started.returncode == 75, started.stderr[-3000:]
    line = json_line(started.stdout)
    assert line["status"] == "paused" and line["approval_id"].startswith("ap-")
    run_id, approval_id = line["run_id"], line["approval_id"]
    assert f"crewkit resume {run_id}" in started.stderr and "Traceback" not in started.stderr
    before = json.loads(Path(line["output_file"]).read_text())
    assert before["status"] == "paused" and before["approval_id"] == approval_id
    assert any(sub["risk"] == "sensitive" for sub in before["plan"])
    paid = [s for s in before["steps"] if s.get("input_tokens")]
    assert {s["step"] for s in paid} == {"plan"}  # planned, and nothing executed before a person decides

    listed = run(project, str(BIN / "crewkit"), "approvals", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    (pending,) = json.loads(listed.stdout)
    assert pending["id"] == approval_id and pending["tier"] == "sensitive" and pending["status"] == "pending"

    own = run(project, str(BIN / "crewkit"), "approvals", "approve", approval_id)  # alice started the run
    assert own.returncode == 2 and len(own.stderr.strip().splitlines()) == 1, own.stderr
    approved = run(project, str(BIN / "crewkit"), "approvals", "approve", approval_id, "--by", "bob")
    assert approved.returncode == 0, approved.stderr

    resumed = run(project, str(BIN / "crewkit"), "resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = json_line(resumed.stdout)
    assert done["run_id"] == run_id and done["status"] == "done"
    after = json.loads(Path(done["output_file"]).read_text())
    assert after["resumed"]["replayed_steps"] == ["plan"]
    assert after["approvals"][0]["outcome"] == "approved" and after["approvals"][0]["decided_by"] == "bob"
    # the plan's model calls are the rows written before the pause (not paid again); the work
    # after the approval was done once, in the resumed segment
    assert [s for s in after["steps"] if s["step"] == "plan"] == [
        s for s in before["steps"] if s["step"] == "plan"
    ]
    assert after["usage"]["reasoning"]["calls"] >= before["usage"]["reasoning"]["calls"]
    assert any(s["step"] == "execute" and s.get("input_tokens") for s in after["steps"])
