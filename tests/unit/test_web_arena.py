"""The console's arena room and leaderboard: battles on scripted models, one vote each (audited,
names revealed after it), bad input refused with nothing stored, ratings the CLI would give."""

from __future__ import annotations

import html as markup
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from crewkit.cli import main
from crewkit.evaluation import arena, leaderboard, ratings
from crewkit.web.pages.arena import Contender, ci_plot, nice_ticks, pick_pair
from tests import web_support
from tests.fakes import ScriptedLLM
from tests.web_support import Client, anonymous, make_app

PAIR = ("local-small", "gpt-4o")  # gpt-4o has no key offline: usable only when injected


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def app(project: Path) -> Any:
    return make_app(project)


def sign_in(app: Any, name: str = "bob") -> Client:
    return web_support.signed_in(app, name, page="/arena")


def inject(app: Any, **replies: list[Any]) -> dict[str, ScriptedLLM]:
    """Scripted models for the battles, by model name (`gpt_4o` for gpt-4o)."""
    fakes = {name.replace("_", "-"): ScriptedLLM(list(answers)) for name, answers in replies.items()}
    app.state.arena_llms = fakes
    return fakes


def rows(app: Any) -> list[tuple[Any, ...]]:
    return app.state.store.read(
        "SELECT id, model_a, model_b, winner, voter FROM arena_battles ORDER BY tstamp"
    )


def audit(app: Any) -> list[tuple[str, str, str]]:
    return app.state.store.read("SELECT actor, action, subject FROM audit ORDER BY seq")


def start(client: Client, prompt: str = "What is 2+2?", a: str = PAIR[0], b: str = PAIR[1]) -> Any:
    return client.post("/arena/battles", data=client.form(prompt=prompt, model_a=a, model_b=b))


def new_battle(app: Any, client: Client) -> str:
    inject(app, local_small=["small says 4"], gpt_4o=["big says four"])
    answer = start(client)
    assert answer.status_code == 303, answer.text[-2000:]
    found = re.fullmatch(r"/arena/battles/(ab-[0-9a-f]+)", answer.headers["location"])
    assert found, answer.headers["location"]
    return found.group(1)


def error_line(html: str) -> str:
    found = re.search(r'id="error-message">([^<]*)<', html)
    assert found, html[-2000:]
    return markup.unescape(found.group(1))


# --- the arena page ---------------------------------------------------------------------------------


def test_arena_page_lists_text_models_and_says_how_to_get_a_second_contender(app):
    html = sign_in(app).get("/arena").text
    models = re.findall(r'class="contender" data-model="([^"]+)"', html)
    assert models[:2] == ["local-small", "gpt-4o"] and "local-use-multilingual" not in models  # no embedders
    gpt = html.split('data-model="gpt-4o"')[1].split("</tr>")[0]
    assert "unavailable" in gpt and "OPENAI_API_KEY" in gpt
    assert re.search(r'<option value="gpt-4o" disabled>gpt-4o \(unavailable\)', html)
    assert 'id="second-contender"' in html and "local-small-warm:" in html  # one ready model as shipped
    assert 'id="no-pending"' in html


def test_second_contender_note_goes_once_two_models_are_ready(app):
    inject(app, local_small=[], gpt_4o=[])
    html = sign_in(app).get("/arena").text
    assert 'id="second-contender"' not in html
    assert '<option value="gpt-4o">gpt-4o</option>' in html


def test_anonymous_reader_sees_the_arena_without_a_battle_form(app):
    html = anonymous(app).get("/arena").text
    assert 'id="battle-form"' not in html and "/signin?next=/arena" in html


# --- a battle and its vote ----------------------------------------------------------------------


def test_battle_shows_both_answers_without_names_until_the_vote(app):
    client = sign_in(app)
    fakes = inject(app, local_small=["small says 4"], gpt_4o=["big says four"])
    answer = start(client, prompt="  What is 2+2?  ")
    assert answer.status_code == 303
    battle_id = answer.headers["location"].rsplit("/", 1)[1]
    assert fakes["local-small"].calls[0].last == "What is 2+2?" == fakes["gpt-4o"].calls[0].last
    [(found_id, model_a, model_b, winner, voter)] = rows(app)
    assert found_id == battle_id and {model_a, model_b} == set(PAIR) and winner is None and voter is None
    assert audit(app)[-1] == ("bob", "arena.battle", battle_id)

    html = client.get(answer.headers["location"]).text
    assert "small says 4" in html and "big says four" in html
    assert "Model A" in html and "Model B" in html
    assert "local-small" not in html and "gpt-4o" not in html  # anonymised
    assert 'id="vote-form"' in html and all(f'id="vote-{c}"' in html for c in ("a", "b", "tie", "bothbad"))
    side_a = html.split('id="answer-a"')[1].split("</section>")[0]
    assert ("small says 4" if model_a == "local-small" else "big says four") in side_a
    assert battle_id in client.get("/arena").text  # listed as waiting for a vote


def test_vote_records_the_winner_reveals_the_names_and_is_audited(app):
    client = sign_in(app, "carol")
    battle_id = new_battle(app, client)
    answer = client.post(f"/arena/battles/{battle_id}/vote", data=client.form(choice="b"))
    assert answer.status_code == 303 and answer.headers["location"] == f"/arena/battles/{battle_id}"
    [(_, model_a, model_b, winner, voter)] = rows(app)
    assert (winner, voter) == ("model_b", "carol")
    assert audit(app)[-1] == ("carol", "arena.vote", battle_id)

    html = client.get(answer.headers["location"]).text
    assert f"vote recorded: Model B ({model_b}) won" in html  # the flash
    assert re.search(rf'id="model-a-name">{model_a}<', html) and re.search(
        rf'id="model-b-name">{model_b}<', html
    )
    assert 'id="vote-form"' not in html and 'id="battle-voter">carol<' in html
    assert battle_id not in client.get("/arena").text.split('id="recent-votes"')[0]  # no longer waiting


@pytest.mark.parametrize(
    ("choice", "winner"), [("a", "model_a"), ("tie", "tie"), ("bothbad", "tie (bothbad)")]
)
def test_each_choice_is_stored_as_fastchat_winner(app, choice, winner):
    client = sign_in(app)
    battle_id = new_battle(app, client)
    assert client.post(f"/arena/battles/{battle_id}/vote", data=client.form(choice=choice)).status_code == 303
    assert rows(app)[0][3] == winner


def test_a_console_vote_is_what_the_cli_exports_and_a_cli_vote_shows_in_the_console(app, capsys):
    client = sign_in(app)
    first = new_battle(app, client)
    client.post(f"/arena/battles/{first}/vote", data=client.form(choice="a"))
    assert main(["arena", "export"]) == 0
    [line] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert line["question_id"] == first and line["winner"] == "model_a"

    second = new_battle(app, client)
    assert main(["arena", "vote", second, "tie"]) == 0
    html = client.get(f"/arena/battles/{second}").text
    assert 'id="battle-outcome"><strong>a tie<' in html and 'id="vote-form"' not in html


# --- bad input: a clear line, the right status, nothing stored ------------------------------------


def test_second_vote_is_a_conflict_and_changes_nothing(app):
    client = sign_in(app)
    battle_id = new_battle(app, client)
    client.post(f"/arena/battles/{battle_id}/vote", data=client.form(choice="a"))
    before, trail = rows(app), audit(app)
    answer = client.post(f"/arena/battles/{battle_id}/vote", data=client.form(choice="b"))
    assert answer.status_code == 409
    assert "already has a vote" in error_line(answer.text)
    assert rows(app) == before and audit(app) == trail


def test_vote_on_an_unknown_battle_is_404(app):
    client = sign_in(app)
    battle_id = new_battle(app, client)
    trail = audit(app)
    answer = client.post("/arena/battles/ab-0000000000/vote", data=client.form(choice="a"))
    assert answer.status_code == 404 and "unknown battle 'ab-0000000000'" in error_line(answer.text)
    assert client.get("/arena/battles/ab-0000000000").status_code == 404
    assert (
        client.post("/arena/battles/ab-0000000000/vote", data=client.form(choice="maybe")).status_code == 404
    )
    assert rows(app)[0][3] is None and audit(app) == trail
    assert battle_id


@pytest.mark.parametrize("choice", ["c", "", "model_a", "a" * 500, None])
def test_bad_choice_is_422_and_nothing_is_stored(app, choice):
    client = sign_in(app)
    battle_id = new_battle(app, client)
    trail = audit(app)
    fields = client.form() if choice is None else client.form(choice=choice)
    answer = client.post(f"/arena/battles/{battle_id}/vote", data=fields)
    assert answer.status_code == 422
    assert "choose one of A, B, Tie or Both bad" in error_line(answer.text)
    assert rows(app)[0][3] is None and audit(app) == trail


def test_empty_or_oversized_prompt_is_refused_before_any_model_is_asked(app):
    client = sign_in(app)
    fakes = inject(app, local_small=[], gpt_4o=[])
    empty = start(client, prompt="   ")
    assert empty.status_code == 422 and "the prompt is empty" in error_line(empty.text)
    long = start(client, prompt="x" * 8001)
    assert long.status_code == 413 and "at most 8,000" in error_line(long.text)
    assert (
        start(client, prompt="y" * 8000).status_code == 502
    )  # the limit itself is accepted (no replies left)
    assert rows(app) == [] and audit(app) == []
    assert len(fakes["local-small"].calls) + len(fakes["gpt-4o"].calls) == 1


def test_not_signed_in_cannot_start_or_vote(app):
    client = sign_in(app)
    battle_id = new_battle(app, client)
    before, trail = rows(app), audit(app)
    stranger = anonymous(app)
    inject(app, local_small=[], gpt_4o=[])
    answer = stranger.post(
        "/arena/battles", data=stranger.form(prompt="hi", model_a=PAIR[0], model_b=PAIR[1])
    )
    assert answer.status_code == 401 and "sign in" in error_line(answer.text)
    answer = stranger.post(f"/arena/battles/{battle_id}/vote", data=stranger.form(choice="a"))
    assert answer.status_code == 401
    assert rows(app) == before and audit(app) == trail


def test_missing_csrf_token_is_403(app):
    client = sign_in(app)
    battle_id = new_battle(app, client)
    answer = client.post(f"/arena/battles/{battle_id}/vote", data={"choice": "a"})
    assert answer.status_code == 403 and rows(app)[0][3] is None


def test_a_failing_model_gives_502_keeps_the_prompt_and_stores_nothing(app):
    client = sign_in(app)
    inject(app, local_small=["fine"], gpt_4o=[ConnectionError("connection refused by api.example")])
    app.state.arena_llms["local-small"].allow_unused = True  # asked second, or not at all
    answer = start(client, prompt="Name a colour")
    assert answer.status_code == 502
    line = error_line(answer.text)
    assert (
        "model 'gpt-4o' failed to answer" in line
        and "connection refused" in line
        and "nothing was stored" in line
    )
    assert ">Name a colour</textarea>" in answer.text  # the prompt is kept for another try
    assert rows(app) == [] and audit(app) == []


def test_a_json_client_gets_the_refusal_as_json(app):
    client = sign_in(app)
    inject(app, local_small=[RuntimeError("boom")], gpt_4o=[RuntimeError("boom")])
    app.state.arena_llms["local-small"].allow_unused = app.state.arena_llms["gpt-4o"].allow_unused = True
    answer = client.post(
        "/arena/battles",
        data=client.form(prompt="hi", model_a=PAIR[0], model_b=PAIR[1]),
        headers={"accept": "application/json"},
    )
    assert answer.status_code == 502 and "failed to answer the battle prompt: boom" in answer.json()["error"]
    assert rows(app) == []


def test_an_unavailable_or_unknown_model_is_422(app):
    client = sign_in(app)
    app.state.arena_llms = {"local-small": ScriptedLLM([], allow_unused=True)}
    answer = start(client)  # gpt-4o without OPENAI_API_KEY
    line = error_line(answer.text)
    assert answer.status_code == 422 and "model 'gpt-4o' (openai), but OPENAI_API_KEY is not set" in line
    assert line.endswith("or pick another model (nothing was stored)") and "map 'arena'" not in line
    answer = start(client, b="gpt-5")
    assert answer.status_code == 422 and "unknown model 'gpt-5'" in error_line(answer.text)
    answer = start(client, b="local-small")
    assert answer.status_code == 422 and "two different models" in error_line(answer.text)
    answer = start(client, b="local-use-multilingual")
    assert answer.status_code == 422 and "embedder" in error_line(answer.text)
    assert rows(app) == [] and audit(app) == []


def test_random_pair_takes_two_ready_models(app):
    client = sign_in(app)
    inject(app, local_small=["one"], gpt_4o=["two"])
    answer = start(client, a="random", b="random")
    assert answer.status_code == 303
    [(_, model_a, model_b, _, _)] = rows(app)
    assert {model_a, model_b} == set(PAIR)  # the server entries (ollama, llama-server) need a server


def test_random_pair_with_one_ready_model_asks_for_a_second(app):
    client = sign_in(app)
    app.state.arena_llms = {"local-small": ScriptedLLM([], allow_unused=True)}
    ready = [Contender("local-small", "llamacpp")]
    with pytest.raises(Exception, match="two text models"):
        pick_pair(ready, "random", "random")
    assert pick_pair(ready, "random", "gpt-4o") == ["local-small", "gpt-4o"]
    assert set(pick_pair([*ready, Contender("q", "ollama", server="http://localhost:11434")], "random", "random",
                         random.Random(1))) == {"local-small", "q"}  # fmt: skip
    assert client.get("/arena").status_code == 200


# --- the leaderboard -----------------------------------------------------------------------------


def vote_many(app: Any, outcomes: list[tuple[str, str, str]]) -> None:
    """Battles made and voted through the engine: (first model, second model, choice)."""
    settings, store = app.state.settings, app.state.store
    for first, second, choice in outcomes:
        fakes = {first: ScriptedLLM(["x"]), second: ScriptedLLM(["y"])}
        fight = arena.battle(settings, "q", (first, second), llms=fakes, store=store, rng=random.Random(0))
        wanted = {
            "first": "a" if fight.model_a == first else "b",
            "second": "b" if fight.model_a == first else "a",
        }
        arena.vote(store, fight.id, wanted.get(choice, choice), voter="dave")


def test_leaderboard_is_empty_before_any_vote(app):
    html = anonymous(app).get("/leaderboard").text
    assert 'id="leaderboard-empty"' in html and 'id="ci-plot"' not in html


def test_leaderboard_table_and_plot_match_the_cli_ratings(app):
    vote_many(app, [("local-small", "gpt-4o", "first"), ("local-small", "gpt-4o", "second"),
                    ("local-small", "ollama-qwen", "first"), ("gpt-4o", "ollama-qwen", "first"),
                    ("gpt-4o", "ollama-qwen", "tie")])  # fmt: skip
    html = anonymous(app).get("/leaderboard?method=bt&bootstrap=200&seed=3").text
    expected = ratings.leaderboard(arena.voted(app.state.store), method="bt", bootstrap=200, seed=3)
    shown = re.findall(r'class="rating-row" data-model="([^"]+)"', html)
    assert shown == [r.model for r in expected] and len(shown) == 3
    for r in expected:
        row = html.split(f'data-model="{r.model}"')[1].split("</tr>")[0]
        assert f">{r.rating:.1f}<" in row and f">{r.ci_lower:.1f}<" in row and f">{r.ci_upper:.1f}<" in row
        assert f'class="num battles">{r.battles}<' in row and f'class="num rank">{r.rank}<' in row
    assert "200 bootstrap rounds (seed 3)" in html and "5 voted battles" in html
    svg = html.split('<svg id="ci-plot"')[1].split("</svg>")[0]
    assert svg.count('class="rating-point"') == 3 and svg.count('class="ci-bar"') == 3
    assert "<script" not in html and 'id="thin-models"' not in html
    assert "crewkit arena leaderboard --method bt --bootstrap 200 --seed 3 --min-battles 1" in html


def test_a_model_with_one_battle_is_rated_and_flagged(app):
    vote_many(app, [("local-small", "gpt-4o", "first"), ("local-small", "ollama-qwen", "first")])
    html = anonymous(app).get("/leaderboard").text
    assert re.findall(r'class="rating-row" data-model="([^"]+)"', html)[0] == "local-small"
    assert re.search(
        r'id="thin-models">Rated on a single battle: (gpt-4o, ollama-qwen|ollama-qwen, gpt-4o)\.', html
    )


def test_leaderboard_json_is_the_cli_json_and_elo_works(app):
    vote_many(app, [("local-small", "gpt-4o", "first"), ("local-small", "gpt-4o", "first"),
                    ("local-small", "gpt-4o", "second")])  # fmt: skip
    client = anonymous(app)
    for method in ("bt", "elo"):
        answer = client.get(
            f"/leaderboard?method={method}&bootstrap=50", headers={"accept": "application/json"}
        )
        board = ratings.leaderboard(arena.voted(app.state.store), method=method, bootstrap=50, seed=0)
        assert answer.status_code == 200 and answer.json() == leaderboard.as_json(board)
    html = client.get("/leaderboard?method=elo&bootstrap=0").text
    assert "online Elo (K=4), no bootstrap" in html


def test_the_leaderboard_changes_with_a_vote(app):
    vote_many(app, [("local-small", "gpt-4o", "first")])
    client = anonymous(app)
    before = client.get("/leaderboard?bootstrap=0", headers={"accept": "application/json"}).json()
    vote_many(app, [("gpt-4o", "local-small", "first"), ("gpt-4o", "local-small", "first")])
    after = client.get("/leaderboard?bootstrap=0", headers={"accept": "application/json"}).json()
    assert [r["model"] for r in before] == ["local-small", "gpt-4o"]
    assert [r["model"] for r in after] == ["gpt-4o", "local-small"] and after[0]["battles"] == 3


@pytest.mark.parametrize(
    ("query", "message"),
    [("method=glicko", "is not one of elo, bt"), ("bootstrap=5", "give 0 (no intervals) or 10 to 2000"),
     ("bootstrap=5000", "10 to 2000"), ("bootstrap=many", "not a whole number"), ("seed=x", "not a whole number")],
)  # fmt: skip
def test_bad_leaderboard_options_are_422(app, query, message):
    answer = anonymous(app).get(f"/leaderboard?{query}")
    assert answer.status_code == 422 and message in error_line(answer.text)


def test_ci_plot_places_points_inside_their_bars_best_on_top():
    board = ratings.Leaderboard(
        [ratings.Rating(1, "a", 1100, 1050, 1160, 9), ratings.Rating(2, "<b>", 900, 820, 990, 9)],
        method="bt", bootstrap=100,
    )  # fmt: skip
    plot = ci_plot(board)
    top, low = plot.rows
    assert top.y < low.y and top.label == "1. a"
    for row in plot.rows:
        assert plot.left <= row.x_lower <= row.x <= row.x_upper <= plot.right
    assert plot.reference is not None and low.x < plot.reference < top.x
    assert nice_ticks(812.0, 1168.0) == [850.0, 900.0, 950.0, 1000.0, 1050.0, 1100.0, 1150.0]
