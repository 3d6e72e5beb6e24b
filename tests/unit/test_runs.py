"""Runs that persist: checkpoints, pause for a person (exit 75), resume without paying again, rollback.

A small CrewkitFlow written into the test project exercises the engine (it makes one model call
per work step, writes a file it registers in the undo log, and asks the release gate); the
default flow is exercised through the CLI at the end. Every model is a ScriptedLLM: a model call
the test did not script fails it, so "not paid again" is checked by the script running dry.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crewkit import cli
from crewkit.models.registry import RoleMap
from crewkit.runtime.store import StateStore
from tests.fakes import ScriptedLLM

STEPS_FLOW = """
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from crewai.flow.flow import listen, router, start
from pydantic import BaseModel, ConfigDict

from crewkit.errors import RunFailed, RunRejected
from crewkit.governance import risk
from crewkit.runtime import undo
from crewkit.runtime.flow import CrewkitFlow, RunState


class Inputs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str
    out: str


class State(RunState):
    task: str = ""
    out: str = ""
    notes: list[str] = []


class Steps(CrewkitFlow[State]):
    Inputs: ClassVar[type[BaseModel]] = Inputs
    RECORD_FIELDS: ClassVar[tuple[str, ...]] = ("notes",)

    def ask(self, what: str) -> str:
        return self.ctx.role_map.llm("reasoning").call([{"role": "user", "content": f"{what}: {self.state.task}"}])

    @start()
    def first(self) -> None:
        self.state.notes.append(self.ask("first"))

    @listen(first)
    def second(self) -> None:
        path = Path(self.state.out)
        previous = path.read_text() if path.exists() else None
        path.write_text("written by second")
        undo.record("file.restore", {"path": str(path), "previous": previous})
        self.state.notes.append(self.ask("second"))

    @router(second)
    def check(self) -> str:
        return "failed" if "give up" in self.state.task else "ok"

    @listen("failed")
    def give_up(self) -> None:
        self.state.status = "failed"
        self.state.error = "the check gave up"
        raise RunFailed(self.state.error)

    @listen("ok")
    def release(self) -> None:
        decision = self.gate("release", [("task", risk.assess_subtask(self.ctx.settings, self.state.task, "reasoning"))])
        if decision.rejected:
            self.state.status = "rejected"
            self.state.error = f"rejected: {decision.approval.note}"
            raise RunRejected(self.state.error)
        self.state.result = " | ".join(self.state.notes)
        self.state.status = "done"
"""

IBAN_TASK = "Pay the invoice: transfer 500 EUR to IBAN DE89 3704 0044 0532 0130 00"


def on_fakes(monkeypatch: pytest.MonkeyPatch, roles: dict) -> None:
    """The CLI's role map with these roles on scripted models; alice is who runs the commands."""

    def engine():
        from crewkit.runtime.startup import load_checked

        settings = load_checked()
        return settings, RoleMap(settings, overrides=roles)

    monkeypatch.setattr(cli, "_engine", engine)
    monkeypatch.setenv("CREWKIT_USER", "alice")


@pytest.fixture
def steps(project: Path, monkeypatch: pytest.MonkeyPatch):
    """The CLI on the test project with the `steps` flow; returns the reasoning role's fake."""
    (project / "flows" / "steps.py").write_text(STEPS_FLOW)
    fake = ScriptedLLM([])

    on_fakes(monkeypatch, {"reasoning": fake})
    return fake


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def json_line(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def start(capsys, task: str, out: Path) -> tuple[int, dict, str]:
    code, stdout, stderr = run_cli(
        capsys, "run", "steps", "--inputs", json.dumps({"task": task, "out": str(out)}), "--json"
    )
    return code, json_line(stdout), stderr


def store(project: Path) -> StateStore:
    from crewkit.settings import load_settings

    return StateStore.open(load_settings(project).home)


def test_a_low_risk_run_checkpoints_every_step_and_finishes(project, steps, capsys, tmp_path):
    steps.add("one", "two")
    code, line, _ = start(capsys, "Explain recursion", tmp_path / "f.txt")
    assert code == 0 and line["status"] == "done"
    assert "approval_id" not in line
    cps = store(project).checkpoints(line["run_id"])
    assert [cp.step for cp in cps] == ["first", "second", "check", "release"]
    assert cps[2].output == "ok"  # a router's label is kept, so a resumed run takes the same branch
    assert [cp.stable for cp in cps] == [True, False, False, False]
    record = json.loads(Path(line["output_file"]).read_text())
    assert record["result"] == "one | two"
    assert record["usage"]["reasoning"]["calls"] == 2


def test_a_sensitive_run_pauses_with_exit_75_and_resumes_without_paying_again(
    project, steps, capsys, tmp_path
):
    steps.add("one", "two")  # exactly two model calls for the whole run, pause and resume included
    code, line, err = start(capsys, IBAN_TASK, tmp_path / "f.txt")
    assert code == 75, err
    assert line["status"] == "paused" and line["approval_id"].startswith("ap-")
    approval_id = line["approval_id"]
    assert approval_id in err  # the person reading the terminal learns the id too
    record = json.loads(Path(line["output_file"]).read_text())
    assert record["status"] == "paused" and record["approval_id"] == approval_id
    subject = store(project).get_approval(approval_id).subject
    assert "3704 0044 0532" not in json.dumps(subject)  # what a person reads: bank details masked
    assert subject["tier"] == "sensitive" and subject["who_may_decide"]

    code, out, _ = run_cli(capsys, "approvals", "list", "--format", "json")
    listed = json.loads(out)
    assert [a["id"] for a in listed] == [approval_id]
    assert listed[0]["tier"] == "sensitive"

    # the requester may not approve their own sensitive run
    code, _, err = run_cli(capsys, "approvals", "approve", approval_id)
    assert code == 2 and "alice" in err
    code, out, _ = run_cli(capsys, "approvals", "approve", approval_id, "--by", "bob", "--note", "checked")
    assert code == 0 and "approved" in out

    code, out, err = run_cli(capsys, "resume", line["run_id"], "--json")
    assert code == 0, err
    resumed = json_line(out)
    assert resumed["status"] == "done" and resumed["run_id"] == line["run_id"]
    assert len(steps.calls) == 2  # nothing finished before the pause ran again
    record = json.loads(Path(resumed["output_file"]).read_text())
    assert record["resumed"]["replayed_steps"] == ["first", "second", "check"]
    assert record["usage"]["reasoning"]["calls"] == 2  # both segments, counted once
    assert [cp.step for cp in store(project).checkpoints(line["run_id"])] == [
        "first",
        "second",
        "check",
        "release",
    ]


def test_resume_while_the_approval_is_pending_exits_75_again_and_changes_nothing(
    project, steps, capsys, tmp_path
):
    steps.add("one", "two")
    _, line, _ = start(capsys, IBAN_TASK, tmp_path / "f.txt")
    before = store(project).get_run(line["run_id"])
    code, _, err = run_cli(capsys, "resume", line["run_id"])
    assert code == 75
    assert line["approval_id"] in err and "approvals approve" in err
    assert store(project).get_run(line["run_id"]) == before


def test_a_rejected_run_ends_rejected_and_its_side_effects_are_undone(project, steps, capsys, tmp_path):
    out = tmp_path / "f.txt"
    out.write_text("before the run")
    steps.add("one", "two")
    _, line, _ = start(capsys, IBAN_TASK, out)
    assert out.read_text() == "written by second"
    code, _, err = run_cli(capsys, "approvals", "reject", line["approval_id"])
    assert code == 2  # a rejection needs a reason (click: missing option)
    code, _, _ = run_cli(
        capsys, "approvals", "reject", line["approval_id"], "--by", "bob", "--reason", "wrong payee"
    )
    assert code == 0
    code, stdout, err = run_cli(capsys, "resume", line["run_id"], "--json")
    assert code == 1
    assert json_line(stdout)["status"] == "rejected"
    assert f"crewkit runs rerun {line['run_id']}" in err and "crewkit resume" not in err  # not resumable
    record = json.loads(Path(json_line(stdout)["output_file"]).read_text())
    assert "wrong payee" in record["error"]
    assert record["rollback"]["to_step"] == "first"
    assert out.read_text() == "before the run"  # the file the run wrote is restored
    code, _, err = run_cli(capsys, "resume", line["run_id"])
    assert code == 2 and "rejected" in err  # a finished run is not resumed


def test_a_failing_run_rolls_back_to_its_last_stable_checkpoint_and_can_be_resumed(
    project, steps, capsys, tmp_path
):
    out = tmp_path / "f.txt"
    steps.add("one", "two")
    code, line, _ = start(capsys, "Explain recursion, or give up", out)
    assert code == 1 and line["status"] == "failed"
    record = json.loads(Path(line["output_file"]).read_text())
    assert record["rollback"]["to_step"] == "first" and record["rollback"]["to_checkpoint"] == 1
    assert not out.exists()  # written in `second`, after the stable checkpoint: undone
    assert [cp.step for cp in store(project).checkpoints(line["run_id"])] == ["first"]
    # resuming continues after `first`: only `second` asks the model again
    steps.add("two again")
    code, stdout, _ = run_cli(capsys, "resume", line["run_id"], "--json")
    assert code == 1  # the same task gives up again, and rolls back again
    assert [c.last for c in steps.calls][-1].startswith("second:")
    assert len(steps.calls) == 3


def test_rollback_by_hand_to_a_named_step(project, steps, capsys, tmp_path):
    out = tmp_path / "f.txt"
    steps.add("one", "two")
    _, line, _ = start(capsys, "Explain recursion", out)
    assert out.exists()
    code, _, err = run_cli(capsys, "rollback", line["run_id"], "--to", "secnd")
    assert code == 2 and "did you mean 'second'" in err
    assert out.exists()  # nothing changed
    code, stdout, _ = run_cli(capsys, "rollback", line["run_id"], "--to", "first")
    assert code == 0 and "first" in stdout
    assert not out.exists()
    assert store(project).get_run(line["run_id"]).status == "rolled_back"
    steps.add("two again")
    code, stdout, _ = run_cli(capsys, "resume", line["run_id"], "--json")
    assert code == 0 and json_line(stdout)["status"] == "done"
    assert out.exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["resume", "20990101-000000-deadbeef"], "unknown run"),
        (["approvals", "show", "ap-0000000000"], "unknown approval"),
        (["approvals", "approve", "ap-0000000000", "--by", "bob"], "unknown approval"),
        (["runs", "show", "nope"], "unknown run"),
        (["rollback", "nope"], "unknown run"),
    ],
)
def test_unknown_ids_are_one_line_exit_2(project, steps, capsys, argv, expected):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert expected in err and len(err.strip().splitlines()) == 1


def test_a_decided_approval_cannot_be_decided_again(project, steps, capsys, tmp_path):
    steps.add("one", "two")
    _, line, _ = start(capsys, IBAN_TASK, tmp_path / "f.txt")
    assert run_cli(capsys, "approvals", "approve", line["approval_id"], "--by", "bob")[0] == 0
    code, _, err = run_cli(
        capsys, "approvals", "reject", line["approval_id"], "--by", "carol", "--reason", "no"
    )
    assert code == 2 and "already approved by bob" in err
    assert store(project).get_approval(line["approval_id"]).status == "approved"


def test_resuming_a_done_run_or_one_whose_flow_changed_is_refused(project, steps, capsys, tmp_path):
    steps.add("one", "two")
    _, done, _ = start(capsys, "Explain recursion", tmp_path / "a.txt")
    code, _, err = run_cli(capsys, "resume", done["run_id"])
    assert code == 2 and "is done" in err and "runs rerun" in err

    steps.add("one", "two")
    _, paused, _ = start(capsys, IBAN_TASK, tmp_path / "b.txt")
    run_cli(capsys, "approvals", "approve", paused["approval_id"], "--by", "bob")
    flow_file = project / "flows" / "steps.py"
    flow_file.write_text(flow_file.read_text() + "\n# edited\n")
    before = store(project).get_run(paused["run_id"])
    code, _, err = run_cli(capsys, "resume", paused["run_id"])
    assert code == 2 and "flows/steps.py changed" in err
    assert store(project).get_run(paused["run_id"]) == before


def test_runs_list_show_and_rerun(project, steps, capsys, tmp_path):
    steps.add("one", "two")
    _, line, _ = start(capsys, "Explain recursion", tmp_path / "f.txt")
    code, out, _ = run_cli(capsys, "runs", "list", "--format", "json")
    assert code == 0 and [r["run_id"] for r in json.loads(out)] == [line["run_id"]]
    code, out, _ = run_cli(capsys, "runs", "list", "--status", "paused", "--format", "json")
    assert json.loads(out) == []
    code, out, _ = run_cli(capsys, "runs", "show", line["run_id"], "--format", "json")
    shown = json.loads(out)
    assert shown["status"] == "done" and [c["step"] for c in shown["checkpoints"]][0] == "first"
    assert shown["usage"]["reasoning"]["calls"] == 2 and len(shown["steps"]) == 2
    steps.add("uno", "dos")
    code, out, _ = run_cli(capsys, "runs", "rerun", line["run_id"], "--json")
    again = json_line(out)
    assert code == 0 and again["run_id"] != line["run_id"]
    assert store(project).get_run(again["run_id"]).inputs == store(project).get_run(line["run_id"]).inputs


def test_a_medium_task_is_sampled_as_configured_and_the_draw_is_recorded(project, steps, capsys, tmp_path):
    gov = project / "config" / "governance.yaml"
    medium_task = "Send an email to the team with the summary"  # an external side effect: medium
    gov.write_text(gov.read_text().replace("sample_rate: 0.5", "sample_rate: 0.0"))
    steps.add("one", "two")
    code, line, _ = start(capsys, medium_task, tmp_path / "a.txt")
    assert code == 0
    items = json.loads(Path(line["output_file"]).read_text())
    assert items["status"] == "done"
    gov.write_text(gov.read_text().replace("sample_rate: 0.0", "sample_rate: 1.0"))
    steps.add("one", "two")
    code, line, _ = start(capsys, medium_task, tmp_path / "b.txt")
    assert code == 75
    approval = store(project).get_approval(line["approval_id"])
    assert approval.tier == "medium"
    item = approval.subject["items"][0]
    assert item["human"] is True and item["rate"] == 1.0 and 0.0 <= item["draw"] < 1.0


def test_the_default_flow_asks_a_person_before_sensitive_work_is_done_and_resumes_without_paying_again(
    project, capsys, monkeypatch
):
    """The whole default flow on scripted roles: the plan of a sensitive task waits for a person
    before anything is executed; after approval the resumed run replays the plan (not paid again)
    and does the work."""
    from tests.unit.test_default_flow import PASS, TRUSTED, delegate

    task = "Transfer 250 EUR to IBAN DE89 3704 0044 0532 0130 00 and write a one-line confirmation"
    plan = {
        "subtasks": [{"description": task, "task_type": "reasoning", "acceptance": "A confirmation line."}]
    }
    answer = "Confirmation: 250 EUR go to the account ending 3000 once a person approves the transfer."
    fakes = {
        "reasoning": ScriptedLLM([plan, answer, *TRUSTED, PASS]),
        "code": ScriptedLLM([]),
        "manager": ScriptedLLM([delegate("Reasoning Specialist", task), answer]),
        "vision": ScriptedLLM([]),
    }

    on_fakes(monkeypatch, fakes)
    code, out, err = run_cli(capsys, "run", "--inputs", json.dumps({"task": task}), "--json")
    assert code == 75, err
    line = json_line(out)
    record = json.loads(Path(line["output_file"]).read_text())
    assert record["status"] == "paused" and record["result"] is None
    assert record["plan"][0]["risk"] == "sensitive"
    approval = store(project).get_approval(line["approval_id"])
    assert approval.step == "approve" and "Plan:" in approval.subject["content"]
    # nothing was executed before the person decided: only the planner ran
    assert len(fakes["reasoning"].calls) == 1 and fakes["manager"].calls == []

    assert run_cli(capsys, "approvals", "approve", line["approval_id"], "--by", "bob")[0] == 0
    code, out, err = run_cli(capsys, "resume", line["run_id"], "--json")
    assert code == 0, err
    planner_calls = [c for c in fakes["reasoning"].calls if c.agent == "Planner"]
    assert len(planner_calls) == 1  # the plan was not paid again
    record = json.loads(Path(json_line(out)["output_file"]).read_text())
    assert record["status"] == "done" and record["result"].startswith("Confirmation")
    assert record["approvals"][0]["outcome"] == "approved" and record["approvals"][0]["decided_by"] == "bob"
    assert record["approvals"][-1]["step"] is None  # the release: sensitive work was approved already
    assert record["resumed"]["replayed_steps"] == ["plan"]


PAYER_CREW = """
from pathlib import Path
from typing import ClassVar

from crewai import Agent, Crew, Process, Task
from crewai.project import CrewBase, agent, crew, task
from crewai.tools import BaseTool


class PayTool(BaseTool):
    name: str = "pay_invoice"
    description: str = "Pay an invoice."
    risk_tier: ClassVar[str] = "sensitive"

    def _run(self, invoice: str) -> str:
        with open(Path(__file__).with_name("paid.log"), "a") as fh:
            fh.write(invoice + "\\n")
        return f"paid {invoice}"


@CrewBase
class PayerCrew:
    agents_config = "config/agents.yaml"
    tasks_config = "config/tasks.yaml"

    @agent
    def clerk(self) -> Agent:
        return Agent(config=self.agents_config["clerk"], tools=[PayTool()])

    @task
    def pay(self) -> Task:
        return Task(config=self.tasks_config["pay"])

    @crew
    def crew(self) -> Crew:
        return Crew(agents=self.agents, tasks=self.tasks, process=Process.sequential)
"""


def test_a_sensitive_tool_is_gated_before_it_runs_and_runs_once_after_approval(project, capsys, monkeypatch):
    from tests.fakes import tool_call

    folder = project / "crews" / "payer"
    (folder / "config").mkdir(parents=True)
    (folder / "crew.py").write_text(PAYER_CREW)
    (folder / "config" / "agents.yaml").write_text(
        "clerk:\n  role: Clerk\n  goal: Pay invoices\n  backstory: Careful.\n"
    )
    (folder / "config" / "tasks.yaml").write_text(
        "pay:\n  description: Pay invoice {invoice}.\n  expected_output: What was paid.\n  agent: clerk\n"
    )
    fake = ScriptedLLM([tool_call("pay_invoice", invoice="INV-7"), "Paid INV-7."])

    on_fakes(monkeypatch, {"reasoning": fake})
    paid = folder / "paid.log"
    code, out, err = run_cli(capsys, "crew", "payer", "--inputs", '{"invoice": "INV-7"}', "--json")
    assert code == 75, err
    line = json_line(out)
    assert not paid.exists()  # gated BEFORE it ran
    approval = store(project).get_approval(line["approval_id"])
    assert approval.tier == "sensitive" and "pay_invoice" in approval.subject["what"]
    assert len(fake.calls) == 1

    assert run_cli(capsys, "approvals", "approve", line["approval_id"], "--by", "bob")[0] == 0
    code, out, err = run_cli(capsys, "resume", line["run_id"], "--json")
    assert code == 0, err
    assert paid.read_text() == "INV-7\n"  # ran exactly once
    assert len(fake.calls) == 2  # the first model call (the tool decision) was replayed, not paid again
    record = json.loads(Path(json_line(out)["output_file"]).read_text())
    assert record["status"] == "done" and record["result"] == "Paid INV-7."
    assert [s.get("replayed", False) for s in record["steps"]] == [False, True, False]


REVIEW_FLOW = """
from typing import ClassVar

from crewai.flow.flow import Flow, listen, start
from crewai.flow.human_feedback import human_feedback
from pydantic import BaseModel


class State(BaseModel):
    task: str = ""
    draft: str = ""
    result: str | None = None


class Review(Flow[State]):
    @start()
    @human_feedback(message="Publish this draft?", emit=["approved", "rejected"], llm="gpt-4o-mini")
    def write(self) -> str:
        self.state.draft = self._ctx.role_map.llm("reasoning").call([{"role": "user", "content": self.state.task}])
        return self.state.draft

    @listen("approved")
    def publish(self) -> None:
        self.state.result = "published: " + self.state.draft

    @listen("rejected")
    def shelve(self) -> None:
        self.state.result = "shelved"
"""


@pytest.mark.parametrize(("decision", "expected"), [("approve", "published: a draft"), ("reject", "shelved")])
def test_a_stock_human_feedback_step_waits_on_the_approval_queue_not_the_console(
    project, steps, capsys, decision, expected
):
    """CrewAI's @human_feedback would block on input(); under crewkit it pauses (exit 75), and the
    decision routes to its outcome with no model asked to interpret it."""
    (project / "flows" / "review.py").write_text(REVIEW_FLOW)
    steps.add("a draft")  # the step's one model call; the outcome is not asked of any model
    code, out, err = run_cli(capsys, "run", "review", "--inputs", '{"task": "Write a draft"}', "--json")
    assert code == 75, err
    line = json_line(out)
    approval = store(project).get_approval(line["approval_id"])
    assert approval.subject["content"] == "a draft" and "Publish this draft?" in approval.reason
    args = ["--reason", "not now"] if decision == "reject" else []
    assert run_cli(capsys, "approvals", decision, line["approval_id"], "--by", "bob", *args)[0] == 0
    code, out, err = run_cli(capsys, "resume", line["run_id"], "--json")
    assert code == 0, err
    record = json.loads(Path(json_line(out)["output_file"]).read_text())
    assert record["result"] == expected
    assert len(steps.calls) == 1  # replayed from the journal on resume


def test_a_crew_task_labelled_sensitive_in_tasks_yaml_waits_for_a_person_before_its_result_is_released(
    project, capsys, monkeypatch
):
    from tests.sample_project import add_crew

    folder = add_crew(project)
    tasks = folder / "config" / "tasks.yaml"
    text = tasks.read_text()
    first_task = text.split(":", 1)[0].strip()
    tasks.write_text(text.replace(f"{first_task}:\n", f"{first_task}:\n  risk: sensitive\n", 1))
    fake = ScriptedLLM(allow_unused=True)
    fake.add(*["the crew's answer"] * 3)

    on_fakes(monkeypatch, {"reasoning": fake})
    code, out, err = run_cli(capsys, "crew", "echo", "--inputs", '{"topic": "owls"}', "--json")
    assert code == 75, err
    line = json_line(out)
    assert "the crew's answer" not in out  # not released
    approval = store(project).get_approval(line["approval_id"])
    assert approval.tier == "sensitive" and approval.step == "release"
    calls = len(fake.calls)
    assert run_cli(capsys, "approvals", "approve", line["approval_id"], "--by", "bob")[0] == 0
    code, out, err = run_cli(capsys, "resume", line["run_id"], "--json")
    assert code == 0, err
    assert len(fake.calls) == calls  # the crew's calls were replayed
    assert "the crew's answer" in out


def test_a_bad_risk_label_in_tasks_yaml_is_one_line_at_its_line(project, capsys):
    from tests.sample_project import add_crew

    folder = add_crew(project)
    tasks = folder / "config" / "tasks.yaml"
    text = tasks.read_text()
    first_task = text.split(":", 1)[0].strip()
    tasks.write_text(text.replace(f"{first_task}:\n", f"{first_task}:\n  risk: sensitiv\n", 1))
    code, _, err = run_cli(capsys, "crew", "echo")
    assert code == 2
    assert "tasks.yaml:2" in err and "did you mean 'sensitive'" in err


def test_a_rejection_sends_the_work_back_when_on_reject_is_rework(project, capsys, monkeypatch):
    """A sampled medium-tier result (sample_rate 1.0) is rejected with rework: the reason goes back
    to the executor and the new result needs a new decision."""
    from tests.unit.test_default_flow import PASS, TRUSTED, delegate

    gov = project / "config" / "governance.yaml"
    text = (
        gov.read_text()
        .replace("on_reject: end", "on_reject: rework")
        .replace("sample_rate: 0.5", "sample_rate: 1.0")
    )
    gov.write_text(text)
    task = "Send an email to the team with the release date"
    plan = {"subtasks": [{"description": task, "task_type": "reasoning", "acceptance": "An email draft."}]}
    first = "Subject: Release date. Hello team, the release ships on Friday. Thanks, Ana"
    second = "Subject: Release date. Hello team, version 2.0 ships on Friday 5 December. Thanks, Ana"
    fakes = {
        "reasoning": ScriptedLLM([plan, first, *TRUSTED, PASS, second, PASS]),
        "code": ScriptedLLM([]),
        "manager": ScriptedLLM(
            [delegate("Reasoning Specialist", task), first, delegate("Reasoning Specialist", task), second]
        ),
        "vision": ScriptedLLM([]),
    }

    on_fakes(monkeypatch, fakes)
    code, out, err = run_cli(capsys, "run", "--inputs", json.dumps({"task": task}), "--json")
    assert code == 75, err
    line = json_line(out)
    approval = store(project).get_approval(line["approval_id"])
    assert approval.step == "guard" and approval.tier == "medium" and approval.subject["content"] == first
    run_cli(capsys, "approvals", "reject", line["approval_id"], "--by", "bob", "--reason", "name the version")
    code, out, err = run_cli(capsys, "resume", line["run_id"], "--json")
    assert code == 75, err  # reworked, and the new result needs a new decision
    again = json_line(out)
    assert again["approval_id"] != line["approval_id"]
    assert "name the version" in fakes["manager"].calls[2].prompt  # the reason reached the executor
    assert store(project).get_approval(again["approval_id"]).subject["content"] == second
    run_cli(capsys, "approvals", "approve", again["approval_id"], "--by", "bob")
    code, out, err = run_cli(capsys, "resume", line["run_id"], "--json")
    assert code == 0, err
    record = json.loads(Path(json_line(out)["output_file"]).read_text())
    assert record["status"] == "done" and "2.0" in record["result"]


def test_rollback_to_the_start_undoes_everything_and_the_record_says_so(project, steps, capsys, tmp_path):
    out = tmp_path / "f.txt"
    steps.add("one", "two")
    _, line, _ = start(capsys, "Explain recursion", out)
    code, _, err = run_cli(capsys, "rollback", line["run_id"], "--to", "start")
    assert code == 0, err
    assert not out.exists() and store(project).checkpoints(line["run_id"]) == []
    record = json.loads(Path(line["output_file"]).read_text())
    assert record["status"] == "rolled_back" and record["rollback"]["to_checkpoint"] == 0
    steps.add("uno", "dos")  # every step runs again
    code, stdout, _ = run_cli(capsys, "resume", line["run_id"], "--json")
    assert (
        code == 0 and json.loads(Path(json_line(stdout)["output_file"]).read_text())["result"] == "uno | dos"
    )


def test_bad_status_filters_are_usage_errors(project, steps, capsys):
    code, _, err = run_cli(capsys, "runs", "list", "--status", "finished")
    assert code == 2 and "'finished' is not one of" in err
    code, _, err = run_cli(capsys, "approvals", "list", "--status", "open")
    assert code == 2 and "'open' is not one of" in err


def test_runs_list_says_when_the_process_holding_a_run_is_gone(project, steps, capsys):
    from crewkit.runtime.store import StateStore

    s = store(project)
    s.create_run("20990101-000000-aaaaaaaa", "steps", {"task": "x", "out": "y"}, "fp", "alice")
    with s._write() as conn:  # the process that held it died (no such pid)
        conn.execute("UPDATE runs SET pid = 999999999 WHERE run_id = '20990101-000000-aaaaaaaa'")
    code, out, _ = run_cli(capsys, "runs", "list", "--format", "json")
    assert code == 0 and json.loads(out)[0]["process_gone"] is True
    code, out, _ = run_cli(capsys, "runs", "list")
    assert "running (process gone)" in out
    assert isinstance(s, StateStore)


def test_with_no_declared_identity_the_same_login_can_approve_from_another_shell(
    project, steps, capsys, tmp_path, monkeypatch
):
    """No CREWKIT_USER and no `user` input: the run has no declared requester, so the person at the
    same login approves it (four-eyes needs declared identities); a declared `user` is refused."""
    monkeypatch.delenv("CREWKIT_USER", raising=False)
    steps.add("one", "two")
    code, line, _ = start(capsys, IBAN_TASK, tmp_path / "f.txt")
    assert code == 75
    assert store(project).get_run(line["run_id"]).requester is None
    code, _, err = run_cli(capsys, "approvals", "approve", line["approval_id"])
    assert code == 0, err
    code, out, err = run_cli(capsys, "resume", line["run_id"], "--json")
    assert code == 0 and json_line(out)["status"] == "done", err
