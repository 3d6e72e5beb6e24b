"""Benchmark: from `crewkit resume RUN_ID` (a fresh process) to its first real step and first model call.

Target: the engine's part of a resume (from the command's start to the first step that runs for
real: checks, claim, checkpoints read, finished steps replayed) adds under 1 s to a fresh run's
(from the command's start to its first step). The whole process is reported too; on a busy
machine it is mostly the time Python takes to import CrewAI, the same for a run and a resume.

The default flow runs on scripted models (no real model: this measures the engine) in a copy of
the project with a temporary CREWKIT_HOME and `approvals.on_reject: rework`. Every measured
command is a whole child process (`crewkit.cli.main` behind a small driver that installs the
scripted models and notes wall-clock times):
  run      R fresh `crewkit run` of a medium-tier task (sampled at rate 1.0): plan, execute, verify, then the guard pauses
           it (exit 75). The baseline: time to its first step and first model call.
  approved half of those runs approved, then resumed: plan, execute and verify replayed, the
           guard is the first real step (no model call after it: the run ends done, exit 0).
  rework   the other half rejected (rework), then resumed: replayed, the guard sends the work
           back, the executor's call is the first model call (a new result pauses again, exit 75).
Times per child, from just before it is spawned (time.time(), the same clock in both processes):
  command          the runner is entered (CLI parsed, settings and role map built)
  kickoff          CrewAI starts the flow (flow module and CrewAI imported, crews' YAML checked,
                   the run claimed, its checkpoints read)
  first real step  the first step not replayed begins
  first model call the first call that reaches a model (a replayed call never does)
  returned         the command returned (record written, state.db updated)
  exit             the process has ended
The driver imports CrewAI before the command starts (its scripted models subclass CrewAI's
BaseLLM), where `crewkit resume` imports it inside the command: the engine's share below
excludes that import for a run and a resume alike. Runs alternate approved / rework after the
fresh runs. Writes bench/results/resume.json.

    .venv/bin/python bench/resume.py [-r 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import mmm, telemetry_off, write_results

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 1.0
# a medium-tier task (an external side effect) with `approvals.sample_rate: 1.0`: every run is
# sampled for a person at the release (sensitive work would pause before execution instead)
TASK = "Send an email to the team with the release date"
ANSWER = "Subject: Release date. Hello team, the release ships on Friday. Thanks, Ana"
REWORKED = "Subject: Release date. Hello team, version 2.0 ships on Friday 5 December. Thanks, Ana"

# The child: scripted roles for its mode, time marks, then the CLI. Marks go to BENCH_MARKS as JSON.
DRIVER = r"""
import time
MARKS = {"main": time.time()}
import atexit, json, os, sys

sys.path.insert(0, os.environ["BENCH_ROOT"])
atexit.register(lambda: open(os.environ["BENCH_MARKS"], "w").write(json.dumps(MARKS)))

from crewkit import cli
from crewkit.models.registry import RoleMap
from crewkit.runtime.checkpoints import CheckpointLog
from tests.fakes import ScriptedLLM, tool_call

MARKS["imported"] = time.time()  # crewkit's CLI and CrewAI (tests.fakes subclasses its BaseLLM)

TASK, ANSWER, REWORKED = json.loads(os.environ["BENCH_TEXTS"])
PLAN = {"subtasks": [{"description": TASK, "task_type": "reasoning", "acceptance": "An email draft."}]}
TRUSTED = [{"passed": False, "issues": ["banana is not 4"]}, {"passed": True, "issues": []}]
PASS = {"passed": True, "issues": []}
DELEGATE = tool_call("delegate_work_to_coworker", task=TASK, context="from the plan", coworker="Reasoning Specialist")


def noted(value):
    def reply(call):
        MARKS.setdefault("first_model_call", time.time())
        return value
    return reply


mode = os.environ["BENCH_MODE"]
calibrated = os.path.exists(os.path.join(os.environ["CREWKIT_HOME"], "reviewer_trust.json"))
script = {"reasoning": [], "manager": []}
if mode == "run":
    script = {"reasoning": [PLAN, ANSWER, *([] if calibrated else TRUSTED), PASS], "manager": [DELEGATE, ANSWER]}
elif mode == "rework":
    script = {"reasoning": [REWORKED, PASS], "manager": [DELEGATE, REWORKED]}
fakes = {role: ScriptedLLM([noted(v) for v in script.get(role, [])]) for role in ("reasoning", "code", "manager", "vision")}


def engine():
    from crewkit.runtime.startup import load_checked

    settings = load_checked()
    return settings, RoleMap(settings, overrides=fakes)


cli._engine = engine
replay = CheckpointLog.replay


def timed_replay(self, step):
    MARKS.setdefault("kickoff", time.time())
    done = replay(self, step)
    if done is None:
        MARKS.setdefault("first_real_step", time.time())
    return done


CheckpointLog.replay = timed_replay
from crewkit.runtime import runner

for name in ("run_flow", "resume_run"):
    def entered(*args, _real=getattr(runner, name), **kwargs):
        MARKS.setdefault("command", time.time())
        return _real(*args, **kwargs)

    setattr(runner, name, entered)
code = cli.main(sys.argv[1:])
MARKS["returned"] = time.time()
left = {role: len(f.replies) for role, f in fakes.items() if f.replies}
MARKS.update(code=code, unused_replies=left, calls={role: len(f.calls) for role, f in fakes.items()})
sys.exit(code)
"""


def child(work: Path, mode: str, *argv: str) -> dict[str, Any]:
    """One whole process; its marks as seconds since just before it was spawned, its exit and stdout."""
    marks_file = work / "marks.json"
    marks_file.unlink(missing_ok=True)
    env = {
        **os.environ,
        "BENCH_ROOT": str(ROOT),
        "BENCH_MODE": mode,
        "BENCH_MARKS": str(marks_file),
        "BENCH_TEXTS": json.dumps([TASK, ANSWER, REWORKED]),
    }
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, str(work / "driver.py"), *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=work / "proj",
        timeout=600,
    )
    end = time.time()
    marks = json.loads(marks_file.read_text()) if marks_file.exists() else {}
    out: dict[str, Any] = {"mode": mode, "exit_status": proc.returncode, "exit_s": round(end - t0, 3)}
    for name in ("main", "imported", "command", "kickoff", "first_real_step", "first_model_call", "returned"):
        if name in marks:
            out[f"{name}_s"] = round(marks[name] - t0, 3)
    out["model_calls"] = marks.get("calls")
    if marks.get("unused_replies"):
        out["unused_replies"] = marks["unused_replies"]
    if proc.returncode not in (0, 75):
        out["stderr_tail"] = proc.stderr[-1500:]
    lines = proc.stdout.strip().splitlines()
    out["line"] = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    return out


def cli_quiet(*argv: str) -> None:
    """A cheap CLI command (no model, no CrewAI) in this process."""
    from crewkit import cli

    code = cli.main(list(argv))
    if code != 0:
        raise SystemExit(f"`crewkit {' '.join(argv)}` exited {code}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--runs", type=int, default=3, help="resumes per kind (approved, rework)")
    args = parser.parse_args()
    R = args.runs

    telemetry_off()
    work = Path(tempfile.mkdtemp(prefix="crewkit-bench-resume-"))
    try:
        proj = work / "proj"
        for folder in ("config", "crews", "flows", "tools"):
            shutil.copytree(ROOT / folder, proj / folder, ignore=shutil.ignore_patterns("__pycache__"))
        gov = proj / "config" / "governance.yaml"
        gov.write_text(
            gov.read_text()
            .replace("on_reject: end", "on_reject: rework")
            .replace("sample_rate: 0.5", "sample_rate: 1.0")
        )
        os.environ.update(
            CREWKIT_HOME=str(work / "home"),
            CREWAI_STORAGE_DIR=str(work / "home" / "crewai"),
            CREWKIT_PROJECT=str(proj),
            CREWKIT_USER="alice",
        )
        (work / "driver.py").write_text(DRIVER)
        sys.path.insert(0, str(ROOT))

        print(f"{2 * R} fresh runs of the default flow on scripted models (each pauses at the guard)...")
        fresh = []
        for _ in range(2 * R):
            ran = child(work, "run", "run", "--inputs", json.dumps({"task": TASK}), "--json")
            fresh.append(ran)
            if ran["exit_status"] != 75 or not ran["line"]:
                print(json.dumps(ran, indent=2))
                raise SystemExit("a fresh run did not pause at the guard (exit 75)")
        kinds = []
        for i, ran in enumerate(fresh):
            kind = "approved" if i % 2 == 0 else "rework"
            approval = ran["line"]["approval_id"]
            if kind == "approved":
                cli_quiet("approvals", "approve", approval, "--by", "bob")
            else:
                cli_quiet("approvals", "reject", approval, "--by", "bob", "--reason", "add the reference")
            kinds.append(kind)
        print(f"{2 * R} resumes, alternating approved / rework...")
        resumed = [
            child(work, kind, "resume", ran["line"]["run_id"], "--json")
            for kind, ran in zip(kinds, fresh, strict=True)
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    approved = [r for r in resumed if r["mode"] == "approved"]
    rework = [r for r in resumed if r["mode"] == "rework"]
    expected_ok = (
        all(r["exit_status"] == 0 and r["line"]["status"] == "done" for r in approved)
        and all(r["exit_status"] == 75 for r in rework)
        and all(not r.get("unused_replies") for r in fresh + resumed)
        and all(sum((r["model_calls"] or {}).values()) == 0 for r in approved)
        and all("first_real_step_s" in r for r in fresh + resumed)
        and all("first_model_call_s" in r for r in fresh + rework)
    )
    if not expected_ok:
        print(json.dumps({"fresh": fresh, "resumed": resumed}, indent=2))

    def figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in (
            "main",
            "imported",
            "command",
            "kickoff",
            "first_real_step",
            "first_model_call",
            "returned",
            "exit",
        ):
            values = [r[f"{name}_s"] for r in rows if f"{name}_s" in r]
            if values:
                out[f"{name}_s"] = mmm(values, 3)
        for name, start, end in (
            ("replay_s", "kickoff_s", "first_real_step_s"),  # CrewAI's first step to the first real one
            ("engine_to_first_real_step_s", "command_s", "first_real_step_s"),
            ("engine_to_first_model_call_s", "command_s", "first_model_call_s"),
        ):
            values = [r[end] - r[start] for r in rows if start in r and end in r]
            if values:
                out[name] = mmm(values, 3)
        return out

    summary = {"run": figures(fresh), "approved": figures(approved), "rework": figures(rework)}
    base = summary["run"]["engine_to_first_real_step_s"]["median"]
    added = {
        k: round(summary[k]["engine_to_first_real_step_s"]["median"] - base, 3)
        for k in ("approved", "rework")
    }
    worst = max(added.values())
    ok = expected_ok and worst < TARGET_S
    print("seconds from spawning the process (min / median / max):")
    labels = {
        "main_s": "interpreter up",
        "imported_s": "CrewAI and crewkit's CLI imported",
        "command_s": "command starts (CLI parsed, engine built)",
        "kickoff_s": "flow kicked off",
        "replay_s": "  replay (kickoff -> first real step)",
        "first_real_step_s": "first real step",
        "first_model_call_s": "first model call",
        "returned_s": "command returned (record written)",
        "exit_s": "exit",
        "engine_to_first_real_step_s": "engine: command -> first real step",
        "engine_to_first_model_call_s": "engine: command -> first model call",
    }
    for kind, title in (
        ("run", f"crewkit run (fresh, n={len(fresh)})"),
        ("approved", f"crewkit resume, approved (n={len(approved)}): the guard is the first real step"),
        ("rework", f"crewkit resume, rejected -> rework (n={len(rework)}): execute calls a model"),
    ):
        print(f"  {title}")
        for key, label in labels.items():
            m = summary[kind].get(key)
            if m:
                print(f"    {label:44s} {m['min']:7.3f} {m['median']:7.3f} {m['max']:7.3f}")
    resume_engine = summary["rework"]["engine_to_first_model_call_s"]["median"]
    verdict = (
        f"{'PASS' if ok else 'FAIL'}: the engine's time from `crewkit resume` to the first real step adds "
        f"{added['approved']:+.3f} s (approved) and {added['rework']:+.3f} s (rework) to a fresh run's time to "
        f"its first step (median; target < {TARGET_S:.1f} s); to the first model call {resume_engine:.3f} s; "
        f"the whole process to its first model call "
        f"{summary['rework']['first_model_call_s']['median']:.1f} s, mostly importing CrewAI"
        + ("" if expected_ok else "; some child did not end as expected (see above)")
    )
    print(verdict)
    write_results(
        "resume",
        {
            "target": {
                "metric": "median resume->first real step minus fresh run->first step",
                "lt_s": TARGET_S,
            },
            "summary": summary,
            "added_vs_fresh_run_s": added,
            "fresh_runs": fresh,
            "resumes": resumed,
            "passed": ok,
            "verdict": verdict,
        },
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
