"""Arena battles on scripted models: anonymised, stored pending, one vote each (audited), redacted;
and the `crewkit arena` commands end to end."""

from __future__ import annotations

import io
import json
import random

import pytest

from crewkit.cli import main
from crewkit.errors import UsageError
from crewkit.evaluation import arena
from crewkit.runtime.store import StateStore
from tests.fakes import ScriptedLLM

SECRET = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2"


def _audit(store: StateStore) -> list[tuple[str, str, dict]]:
    rows = store.read("SELECT action, subject, detail FROM audit ORDER BY seq")
    return [(a, s, json.loads(d)) for a, s, d in rows]


class Swap(random.Random):
    """Shuffles a pair by reversing it (the battle's random order, made predictable)."""

    def shuffle(self, x):  # type: ignore[override]
        x.reverse()


def test_battle_asks_both_models_and_keeps_it_pending(settings):
    fakes = {"local-small": ScriptedLLM(["small says 4"]), "ollama-qwen": ScriptedLLM(["qwen says four"])}
    store = StateStore.open(settings.home)
    fight = arena.battle(settings, "What is 2+2?", ("local-small", "ollama-qwen"), llms=fakes, store=store,
                         rng=Swap())  # fmt: skip
    assert (fight.model_a, fight.model_b) == ("ollama-qwen", "local-small")  # shown in the shuffled order
    assert (fight.answer_a, fight.answer_b) == ("qwen says four", "small says 4")
    assert fakes["local-small"].calls[0].last == "What is 2+2?"
    assert fight.pending and arena.get(store, fight.id) == fight
    assert [b.id for b in arena.pending(store)] == [fight.id]
    assert arena.voted(store) == []
    assert _audit(store)[-1][:2] == ("arena.battle", fight.id)


def test_order_is_random(settings):
    seen = set()
    for seed in range(12):
        fakes = {"local-small": ScriptedLLM(["x"]), "ollama-qwen": ScriptedLLM(["y"])}
        fight = arena.battle(
            settings, "hi", ("local-small", "ollama-qwen"), llms=fakes, rng=random.Random(seed)
        )
        seen.add(fight.model_a)
    assert seen == {"local-small", "ollama-qwen"}


def test_secrets_in_prompt_and_answers_are_redacted_before_storage(settings):
    fakes = {"local-small": ScriptedLLM([f"the key is {SECRET}"]), "ollama-qwen": ScriptedLLM(["no"])}
    store = StateStore.open(settings.home)
    fight = arena.battle(
        settings, f"use {SECRET} please", ["local-small", "ollama-qwen"], llms=fakes, store=store
    )
    raw = json.dumps(store.read("SELECT * FROM arena_battles"))
    assert SECRET not in raw and "[REDACTED]" in raw
    assert fakes["local-small"].calls[0].last == f"use {SECRET} please"  # the model gets the real prompt
    assert SECRET not in (fight.prompt + (fight.answer_a or "") + (fight.answer_b or ""))


def test_vote_once_audited_and_revealed(settings):
    fakes = {"local-small": ScriptedLLM(["a"]), "ollama-qwen": ScriptedLLM(["b"])}
    store = StateStore.open(settings.home)
    fight = arena.battle(settings, "q", ["local-small", "ollama-qwen"], llms=fakes, store=store)
    done = arena.vote(store, fight.id, "bothbad", voter="ana")
    assert (done.winner, done.voter) == ("tie (bothbad)", "ana") and not done.pending
    action, subject, detail = _audit(store)[-1]
    assert (action, subject, detail["winner"]) == ("arena.vote", fight.id, "tie (bothbad)")
    with pytest.raises(UsageError, match=f"battle '{fight.id}' already has a vote"):
        arena.vote(store, fight.id, "a")
    assert arena.get(store, fight.id).winner == "tie (bothbad)"
    [battle] = arena.voted(store)
    assert (battle.model_a, battle.model_b, battle.winner) == (fight.model_a, fight.model_b, "tie (bothbad)")
    out = io.StringIO()
    assert arena.export(store, out) == 1
    line = json.loads(out.getvalue())
    assert line["winner"] == "tie (bothbad)" and line["question_id"] == fight.id and line["anony"] is True
    assert line["conversation_a"][0] == {"role": "user", "content": "q"}


@pytest.mark.parametrize("choice", ["A", "maybe", ""])
def test_vote_choices_are_checked(settings, choice):
    fakes = {"local-small": ScriptedLLM(["a"]), "ollama-qwen": ScriptedLLM(["b"])}
    store = StateStore.open(settings.home)
    fight = arena.battle(settings, "q", ["local-small", "ollama-qwen"], llms=fakes, store=store)
    if choice == "A":
        assert arena.vote(store, fight.id, choice).winner == "model_a"
    else:
        with pytest.raises(UsageError, match="is not one of a, b, tie, bothbad"):
            arena.vote(store, fight.id, choice)


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        (["local-smal", "ollama-qwen"], "unknown model 'local-smal' (did you mean 'local-small'?)"),
        (["local-small", "local-small"], "both models are 'local-small'"),
        (["local-small"], "a battle needs exactly two models, got 1"),
        (["local-small", "local-minilm"], "model 'local-minilm' is an embedder"),
    ],
)
def test_bad_model_names_are_usage_errors_and_nothing_is_stored(settings, models, expected):
    with pytest.raises(
        UsageError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")
    ):
        arena.battle(settings, "q", models, llms={})
    assert StateStore.open(settings.home).read("SELECT COUNT(*) FROM arena_battles") == [(0,)]


def test_a_failing_model_stores_nothing(settings):
    fakes = {
        "local-small": ScriptedLLM([RuntimeError("boom")]),
        "ollama-qwen": ScriptedLLM(["b"], allow_unused=True),
    }
    with pytest.raises(Exception, match="model 'local-small' failed to answer the battle prompt: boom"):
        arena.battle(settings, "q", ["local-small", "ollama-qwen"], llms=fakes, rng=random.Random(0))
    assert StateStore.open(settings.home).read("SELECT COUNT(*) FROM arena_battles") == [(0,)]


def test_unknown_battle_id(settings):
    with pytest.raises(UsageError, match="unknown battle 'ab-nope'"):
        arena.vote(StateStore.open(settings.home), "ab-nope", "a")


# --- the CLI ------------------------------------------------------------------------------------


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def models(project, monkeypatch):
    """Scripted models behind RoleMap._model, by model name."""
    from crewkit.models.registry import RoleMap

    fakes: dict[str, ScriptedLLM] = {}
    monkeypatch.setattr(RoleMap, "_model", lambda self, name: fakes[name])
    return fakes


def test_cli_battle_then_vote(models, capsys):
    models["local-small"] = ScriptedLLM(["answer from small"])
    models["ollama-qwen"] = ScriptedLLM(["answer from qwen"])
    code, out, err = run_cli(capsys, "arena", "battle", "Say hi", "--models", "local-small,ollama-qwen")
    assert code == 0
    assert "Model A" in out and "Model B" in out and "answer from small" in out and "answer from qwen" in out
    assert "local-small" not in out and "ollama-qwen" not in out  # anonymised until the vote
    battle_id = err.split("battle ")[1].split()[0]
    assert f"crewkit arena vote {battle_id}" in err
    code, out, _ = run_cli(capsys, "arena", "vote", battle_id, "b")
    assert code == 0 and f"vote recorded on {battle_id}: Model B" in out
    assert "Model A was" in out and "local-small" in out and "ollama-qwen" in out
    code, out, err = run_cli(capsys, "arena", "vote", battle_id, "a")
    assert code == 2 and out == "" and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "already has a vote" in err


def test_cli_battle_with_vote_and_export(models, capsys, tmp_path):
    for _ in range(2):
        models["local-small"] = ScriptedLLM(["s"])
        models["llama-server"] = ScriptedLLM(["l"])
        code, out, _ = run_cli(
            capsys, "arena", "battle", "q", "--models", "local-small,llama-server", "--vote", "tie"
        )
        assert code == 0 and "vote recorded" in out and ": a tie;" in out
    code, out, _ = run_cli(capsys, "arena", "export")
    lines = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and [x["winner"] for x in lines] == ["tie", "tie"]
    assert {x["model_a"] for x in lines} | {x["model_b"] for x in lines} == {"local-small", "llama-server"}
    code, _, err = run_cli(capsys, "arena", "export", "--out", str(tmp_path / "v.jsonl"))
    assert code == 0 and "wrote 2 battle(s)" in err
    code, out, err = run_cli(capsys, "arena", "leaderboard", "--format", "json", "--bootstrap", "10")
    assert code == 0 and [r["battles"] for r in json.loads(out)] == [2, 2]


def test_cli_unknown_model_is_one_line_exit_2(models, capsys):
    code, out, err = run_cli(capsys, "arena", "battle", "q", "--models", "local-small,gpt4o")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "unknown model 'gpt4o' (did you mean 'gpt-4o'?)" in err


def _votes(tmp_path, extra: list[str] = ()) -> str:
    rng = random.Random(0)
    lines = []
    for t in range(300):
        a, b = rng.sample(["x", "y", "z"], 2)
        lines.append(json.dumps({"model_a": a, "model_b": b, "winner": rng.choice(["model_a", "model_b", "tie"]),
                                 "tstamp": t, "anony": True}))  # fmt: skip
    lines[10:10] = list(extra)
    path = tmp_path / "votes.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_cli_leaderboard_from_a_file(project, capsys, tmp_path):
    path = _votes(tmp_path)
    code, out, err = run_cli(capsys, "arena", "leaderboard", "--votes", path, "--bootstrap", "50")
    assert code == 0 and "Bradley-Terry" in out and "95% CI" in out and "rank" in out
    code, out, _ = run_cli(capsys, "arena", "leaderboard", "--votes", path, "--method", "elo", "--bootstrap", "20",
                           "--format", "json", "--plot", str(tmp_path / "lb.png"))  # fmt: skip
    rows = json.loads(out)
    assert code == 0 and {r["model"] for r in rows} == {"x", "y", "z"}
    assert (tmp_path / "lb.png").stat().st_size > 1000


def test_cli_malformed_votes_fail_or_skip_with_line_numbers(project, capsys, tmp_path):
    path = _votes(tmp_path, ['{"model_a": "x", "model_b": "y", "winner": "model_c", "tstamp": 1}', "nope"])
    code, out, err = run_cli(capsys, "arena", "leaderboard", "--votes", path, "--bootstrap", "0")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {path}:11: 'winner' is \"model_c\"") and "--on-bad-line skip" in err
    code, out, err = run_cli(capsys, "arena", "leaderboard", "--votes", path, "--bootstrap", "0",
                             "--on-bad-line", "skip", "--format", "json")  # fmt: skip
    assert code == 0 and len(json.loads(out)) == 3
    assert f"{path}: skipped 2 malformed line(s): 11, 12" in err


def test_cli_single_battle_model_exit_2_naming_it(project, capsys, tmp_path):
    path = _votes(tmp_path, ['{"model_a": "solo", "model_b": "y", "winner": "model_a", "tstamp": 5}'])
    code, out, err = run_cli(capsys, "arena", "leaderboard", "--votes", path, "--bootstrap", "0")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"{path}:11: model 'solo' appears in a single battle" in err and "--min-battles 1" in err
    code, out, _ = run_cli(capsys, "arena", "leaderboard", "--votes", path, "--bootstrap", "0",
                           "--min-battles", "1", "--format", "json")  # fmt: skip
    assert code == 0 and "solo" in {r["model"] for r in json.loads(out)}


def test_cli_leaderboard_without_votes_says_so(project, capsys):
    code, out, err = run_cli(capsys, "arena", "leaderboard")
    assert code == 2 and out == "" and "no voted battles in state.db" in err


def test_cli_battle_asks_for_the_vote_on_a_terminal(models, capsys, monkeypatch):
    import sys

    models["local-small"] = ScriptedLLM(["s"])
    models["ollama-qwen"] = ScriptedLLM(["q"])
    monkeypatch.setattr(sys, "stdin", io.StringIO("bothbad\n"))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    code, out, _ = run_cli(capsys, "arena", "battle", "q", "--models", "local-small,ollama-qwen")
    assert code == 0 and "Which is better?" in out and "vote recorded" in out and ": both bad;" in out
