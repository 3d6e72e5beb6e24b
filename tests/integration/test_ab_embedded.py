"""Integration: an A/B experiment over real default-flow runs on the embedded model, no network.

With `routing-v2` enabled per run, each run is assigned an arm, runs under that arm's routing
policy (the record's `routing` entries name it), and its outcome is kept; `crewkit ab report`
reads them and says there is not enough data yet.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ARM_POLICY = {"control": "static", "treatment": "by-complexity"}


def _crewkit(project: Path, netless: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CREWKIT_PROJECT": str(project)}
    cmd = [*netless, sys.executable, "-m", "crewkit.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=project, timeout=300)


def test_runs_under_an_enabled_experiment_follow_their_arm_and_are_reported(project, netless):
    config = project / "config" / "experiments.yaml"
    text = config.read_text()
    text = text.replace("    enabled: false ", "    enabled: true  ", 1).replace(
        "    unit: tenant ", "    unit: user   ", 1
    )
    config.write_text(text)
    seen = {}
    for user in ("ana", "bo"):  # sticky by user: the arm follows from the key's hash
        assigned = _crewkit(project, netless, "ab", "assign", "routing-v2", user)
        assert assigned.returncode == 0, assigned.stderr
        arm = re.search(r"-> arm '([^']+)'", assigned.stdout).group(1)
        task = {"task": "Explain in two sentences why the sky is blue.", "user": user}
        proc = _crewkit(project, netless, "run", "--inputs", json.dumps(task), "--json")
        assert proc.returncode in (0, 1), proc.stderr[-2000:]
        line = json.loads(proc.stdout.strip().splitlines()[-1])
        record = json.loads(Path(line["output_file"]).read_text())
        assert record["experiment"] == {"name": "routing-v2", "arm": arm}
        if record.get("routing"):
            assert {r["policy"] for r in record["routing"]} == {ARM_POLICY[arm]}
        seen[user] = arm
    report = _crewkit(project, netless, "ab", "report", "routing-v2", "--format", "json")
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assigned = {a["arm"]: a["assigned"] for a in data["arms"]}
    for arm in set(seen.values()):
        assert assigned[arm] == list(seen.values()).count(arm)
    assert "not enough data yet" in json.dumps(data)
