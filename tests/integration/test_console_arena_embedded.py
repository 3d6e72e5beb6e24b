"""Integration: a console arena battle on the real embedded model (llama.cpp + SmolLM2-135M).

The project gets a second contender as the arena page suggests (the same GGUF file at another
temperature); a random pair then draws the two in-process models, both answer for real, the vote
reveals them and the leaderboard rates them."""

from __future__ import annotations

import re

import pytest

from tests.web_support import TOKEN, anonymous, make_app

pytestmark = pytest.mark.integration


def test_random_pair_battle_and_vote_on_the_embedded_model(project, monkeypatch):
    from crewkit.web.pages.arena import SECOND_CONTENDER

    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    path = project / "config" / "models.yaml"
    text = path.read_text().replace("max_tokens: 256, seed: 42}", "max_tokens: 16, seed: 42}")
    second = SECOND_CONTENDER.replace("max_tokens: 256", "max_tokens: 16")
    path.write_text(
        text.replace("  # Embedded embedder (default)", second + "\n\n  # Embedded embedder (default)", 1)
    )
    app = make_app(project)
    client = anonymous(app)
    client.post("/signin", data={"csrf_token": client.csrf, "name": "bob", "token": TOKEN, "next": "/"})
    client.refresh_csrf("/arena")
    home = client.get("/arena").text
    assert 'id="second-contender"' not in home and 'data-model="local-small-warm"' in home

    answer = client.post(
        "/arena/battles", data=client.form(prompt="What is 2 + 2?", model_a="random", model_b="random")
    )
    assert answer.status_code == 303, answer.text[-2000:]
    battle = client.get(answer.headers["location"]).text
    texts = re.findall(r'<div class="text">([^<]*)</div>', battle)
    assert len(texts) == 2 and all(t.strip() and t != "(no answer)" for t in texts)
    assert "local-small" not in battle.split("<main>")[1]

    voted = client.post(answer.headers["location"] + "/vote", data=client.form(choice="a"))
    assert voted.status_code == 303
    revealed = client.get(voted.headers["location"]).text
    names = {re.search(rf'id="model-{side}-name">([^<]+)<', revealed).group(1) for side in "ab"}
    assert names == {"local-small", "local-small-warm"}
    board = client.get("/leaderboard?bootstrap=100", headers={"accept": "application/json"}).json()
    assert {r["model"] for r in board} == names and all(r["battles"] == 1 for r in board)
