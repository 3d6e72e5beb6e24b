"""The arena in a browser: start a battle, read the anonymous answers, vote, see the names and the
leaderboard change (scripted models injected through app.state.arena_llms)."""

from __future__ import annotations

import random

import pytest

from crewkit.evaluation import arena
from tests.browser.conftest import shot, sign_in
from tests.fakes import ScriptedLLM


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def board(page) -> dict[str, tuple[str, int]]:
    """model -> (rating as shown, battles) from the leaderboard table."""
    found = {}
    for row in page.locator("tr.rating-row").all():
        model = row.get_attribute("data-model")
        found[model] = (row.locator("td.rating").inner_text(), int(row.locator("td.battles").inner_text()))
    return found


def test_vote_in_the_arena_and_see_the_leaderboard_change(project, console, page):
    app = console.app
    # one earlier vote, cast through the engine as `crewkit arena battle` would: local-small won
    fakes = {"local-small": ScriptedLLM(["4"]), "gpt-4o": ScriptedLLM(["four"])}
    earlier = arena.battle(app.state.settings, "2+2?", ("local-small", "gpt-4o"), llms=fakes,
                           store=console.store, rng=random.Random(0), voter="alice")  # fmt: skip
    arena.vote(console.store, earlier.id, "a" if earlier.model_a == "local-small" else "b", voter="alice")

    sign_in(page, console.url, "bob")
    page.goto(console.url + "/leaderboard")
    before = board(page)
    assert before == {"local-small": (before["local-small"][0], 1), "gpt-4o": (before["gpt-4o"][0], 1)}
    assert page.locator("#ci-plot circle.rating-point").count() == 2
    assert float(before["local-small"][0]) > float(before["gpt-4o"][0])

    app.state.arena_llms = {
        "local-small": ScriptedLLM(["Blue, mostly."]),
        "gpt-4o": ScriptedLLM(["The sky looks blue because air scatters short wavelengths more."]),
    }
    page.click("nav >> text=Arena")
    page.fill("#prompt", "Why is the sky blue?")
    page.select_option("#model_a", "local-small")
    page.select_option("#model_b", "gpt-4o")
    page.click("#start-battle")
    page.wait_for_selector("#vote-form")
    assert page.inner_text("#battle-prompt") == "Why is the sky blue?"
    answers = page.inner_text("#answer-a") + page.inner_text("#answer-b")
    assert "Blue, mostly." in answers and "scatters short wavelengths" in answers
    assert "local-small" not in page.inner_text("main") and "gpt-4o" not in page.inner_text("main")
    shot(page, "arena-battle")

    # vote for gpt-4o's answer, whichever side it landed on
    side = "a" if "scatters" in page.inner_text("#answer-a") else "b"
    page.click(f"#vote-{side}")
    page.wait_for_selector("#battle-outcome")
    assert page.inner_text(f"#model-{side}-name") == "gpt-4o"
    assert "vote recorded" in page.inner_text(".flash")
    assert page.inner_text("#battle-voter") == "bob"
    shot(page, "arena-voted")

    page.click("nav >> text=Leaderboard")
    page.wait_for_selector("#leaderboard")
    after = board(page)
    assert after["local-small"][1] == 2 and after["gpt-4o"][1] == 2
    assert after["gpt-4o"][0] != before["gpt-4o"][0]
    assert float(after["gpt-4o"][0]) == pytest.approx(float(after["local-small"][0]))  # one win each
    page.select_option("#method", "elo")
    page.fill("#bootstrap", "100")
    page.click("#rate")
    page.wait_for_selector("#leaderboard-title")
    assert "online Elo" in page.inner_text("#leaderboard-title")
    assert page.locator("#ci-plot line.ci-bar").count() == 2
    shot(page, "arena-leaderboard")


def test_a_bad_vote_shows_one_line_and_changes_nothing(project, console, page):
    console.app.state.arena_llms = {"local-small": ScriptedLLM(["a"]), "gpt-4o": ScriptedLLM(["b"])}
    sign_in(page, console.url, "bob")
    page.goto(console.url + "/arena")
    page.fill("#prompt", "Say hi")
    page.select_option("#model_a", "gpt-4o")
    page.select_option("#model_b", "local-small")
    page.click("#start-battle")
    page.wait_for_selector("#vote-form")
    battle_url = page.url
    # the battle is voted from another tab meanwhile (here: through the engine)
    battle_id = page.get_attribute("#battle-id", "data-battle-id")
    arena.vote(console.store, battle_id, "tie", voter="carol")
    page.click("#vote-a")
    assert "already has a vote" in page.inner_text("#error-message")
    page.goto(battle_url)
    assert page.inner_text("#battle-voter") == "carol"
    assert "a tie" in page.inner_text("#battle-outcome")
