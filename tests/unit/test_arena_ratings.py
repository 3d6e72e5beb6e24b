"""Arena ratings: Bradley-Terry against a per-battle reference, Elo against FastChat's loop,
seeded bootstrap intervals, claimable ranks, degenerate data."""

from __future__ import annotations

import importlib.util
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from crewkit.errors import UsageError
from crewkit.evaluation import leaderboard as board_view
from crewkit.evaluation import ratings
from crewkit.evaluation.votes import Battle

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_arena", ROOT / "bench" / "arena.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = _bench()
WINNER = {1.0: "model_a", 0.0: "model_b", 0.5: "tie"}


def _battles(n: int, m: int, seed: int = 0) -> tuple[np.ndarray, list[Battle]]:
    true, a, b, score = BENCH.generate(n, m, seed)
    names = [f"m{i}" for i in range(m)]
    battles = [
        Battle(names[i], names[j], WINNER[s], float(t))
        for t, (i, j, s) in enumerate(zip(a.tolist(), b.tolist(), score.tolist(), strict=True))
    ]
    return true, battles


def _by_model(board: list[ratings.Rating], m: int) -> dict[str, ratings.Rating]:
    found = {r.model: r for r in board}
    assert len(found) == m
    return found


def test_bradley_terry_agrees_with_the_per_battle_reference_within_one_point():
    true, a, b, score = BENCH.generate(20_000, 10, seed=1)
    names = [f"m{i}" for i in range(10)]
    board = ratings.rate(ratings.Encoded(names, a, b, score), bootstrap=0)
    ours = np.array([_by_model(board, 10)[n].rating for n in names])
    reference = BENCH.reference_fit(a, b, score, 10)
    assert np.max(np.abs(ours - reference)) < 1.0
    assert abs(ours.mean() - 1000.0) < 1e-6  # the average model at 1000
    assert np.max(np.abs(ours - true)) < 40  # and it recovers the generating ratings


def _fastchat_online_elo(battles, K=4, SCALE=400, BASE=10, INIT_RATING=1000):  # noqa: N803
    """FastChat's compute_online_elo (fastchat/serve/monitor/elo_analysis.py), over dicts."""
    rating = defaultdict(lambda: INIT_RATING)
    for battle in battles:
        model_a, model_b, winner = battle["model_a"], battle["model_b"], battle["winner"]
        ra = rating[model_a]
        rb = rating[model_b]
        ea = 1 / (1 + BASE ** ((rb - ra) / SCALE))
        eb = 1 / (1 + BASE ** ((ra - rb) / SCALE))
        if winner == "model_a":
            sa = 1
        elif winner == "model_b":
            sa = 0
        elif winner == "tie" or winner == "tie (bothbad)":
            sa = 0.5
        else:
            raise Exception(f"unexpected vote {winner}")
        rating[model_a] += K * (sa - ea)
        rating[model_b] += K * (1 - sa - eb)
    return rating


def test_online_elo_is_fastchats_exactly_in_time_order():
    rng = np.random.default_rng(5)
    models = ["gpt-4", "claude", "vicuna", "alpaca"]
    winners = ["model_a", "model_b", "tie", "tie (bothbad)"]
    lines = []
    for t in range(60):
        i, j = rng.choice(4, 2, replace=False)
        lines.append(
            {"model_a": models[i], "model_b": models[j], "winner": winners[rng.integers(4)], "tstamp": t}
        )
    expected = _fastchat_online_elo(lines)
    shuffled = [lines[k] for k in rng.permutation(len(lines))]  # the leaderboard sorts by tstamp
    battles = [Battle(d["model_a"], d["model_b"], d["winner"], float(d["tstamp"])) for d in shuffled]
    board = ratings.leaderboard(battles, method="elo", bootstrap=0)
    assert {r.model: r.rating for r in board} == dict(expected)


def test_elo_bootstrap_replays_rounds_with_the_same_updates_as_the_point_estimate():
    """With every round forced to replay the battles in order, each equals online Elo."""
    _, battles = _battles(3000, 6)
    enc = ratings.encode(battles)

    class InOrder:
        drawn = 0

        def integers(self, low, high, size):
            rows = np.arange(self.drawn, self.drawn + size[0]) % high
            self.drawn += size[0]
            return np.broadcast_to(rows[:, None], size).copy()

    rounds = ratings._elo_bootstrap(enc, 4, InOrder())
    assert np.max(np.abs(rounds - ratings.elo_ratings(enc)[None, :])) < 1e-9


def test_elo_bootstrap_equals_replaying_each_round_one_battle_at_a_time(monkeypatch):
    """Several chunks, several blocks, a short last block: each round's result is the one-by-one
    replay of the battles it drew, in the order drawn."""
    monkeypatch.setattr(ratings, "_BLOCK", 64)
    monkeypatch.setattr(ratings, "_CHUNK", 64 * 4 * 3)
    _, battles = _battles(1000, 5)
    enc = ratings.encode(battles)

    class Recording:
        def __init__(self) -> None:
            self.gen = np.random.default_rng(3)
            self.draws: list[np.ndarray] = []

        def integers(self, low, high, size):
            drawn = self.gen.integers(low, high, size=size)
            self.draws.append(drawn)
            return drawn

    rng = Recording()
    result = ratings._elo_bootstrap(enc, 4, rng)
    sequences = np.concatenate(rng.draws)
    assert sequences.shape == (1000, 4) and len(rng.draws) > 2
    for r in range(4):
        seq = sequences[:, r]
        one_by_one = ratings.elo_ratings(ratings.Encoded(enc.models, enc.a[seq], enc.b[seq], enc.score[seq]))
        assert np.max(np.abs(result[r] - one_by_one)) < 1e-9


@pytest.mark.parametrize("method", ["bt", "elo"])
def test_bootstrap_is_reproducible_with_a_seed(method):
    _, battles = _battles(3000, 6)
    one = ratings.leaderboard(battles, method=method, bootstrap=50, seed=7)
    two = ratings.leaderboard(battles, method=method, bootstrap=50, seed=7)
    other = ratings.leaderboard(battles, method=method, bootstrap=50, seed=8)
    assert list(one) == list(two)
    assert [(r.ci_lower, r.ci_upper) for r in one] != [(r.ci_lower, r.ci_upper) for r in other]
    assert all(r.ci_lower <= r.rating <= r.ci_upper for r in one)


def test_intervals_contain_the_true_ratings_for_most_models():
    true, battles = _battles(20_000, 10, seed=2)
    found = _by_model(ratings.leaderboard(battles, bootstrap=200, seed=0), 10)
    inside = [found[f"m{i}"].ci_lower <= true[i] <= found[f"m{i}"].ci_upper for i in range(10)]
    assert sum(inside) >= 8
    widths = [r.ci_upper - r.ci_lower for r in found.values()]
    assert 5 < np.median(widths) < 60  # 95% intervals from ~4,000 battles per model


def test_claimable_rank_is_one_plus_models_surely_better():
    lower = np.array([1100, 1090, 1000, 995, 800])
    upper = np.array([1150, 1120, 1080, 1010, 900])
    assert ratings.claimable_ranks(lower, upper).tolist() == [1, 1, 3, 3, 5]


def test_ranks_share_a_place_when_intervals_overlap():
    _, battles = _battles(2000, 4)
    board = ratings.leaderboard(battles, bootstrap=100)
    lower = {r.model: r.ci_lower for r in board}
    for r in board:
        assert r.rank == 1 + sum(lower[o.model] > r.ci_upper for o in board)
    assert [r.rank for r in board] == sorted(r.rank for r in board)


def test_a_model_in_a_single_battle_names_the_model_and_its_line(tmp_path):
    from crewkit.evaluation.votes import read_jsonl

    _, battles = _battles(200, 3)
    lines = [json.dumps(b.as_dict()) for b in battles]
    lines.insert(50, json.dumps({"model_a": "newbie", "model_b": "m1", "winner": "model_a", "tstamp": 1}))
    path = tmp_path / "v.jsonl"
    path.write_text("\n".join(lines) + "\n")
    read = read_jsonl(path)
    with pytest.raises(UsageError) as caught:
        ratings.leaderboard(read.battles, min_battles=2, bootstrap=0)
    message = str(caught.value)
    assert message.startswith(f"{path}:51: model 'newbie' appears in a single battle")
    assert "--min-battles 1" in message
    rated = ratings.leaderboard(read.battles, min_battles=1, bootstrap=0)
    assert "newbie" in {r.model for r in rated}


def test_a_model_that_won_every_battle_gets_a_finite_rating_and_a_note():
    _, battles = _battles(600, 4)
    battles += [Battle("champ", f"m{i}", "model_a", 1e6 + i) for i in range(4)]
    board = ratings.leaderboard(battles, bootstrap=20)
    champ = next(r for r in board if r.model == "champ")
    assert champ.rank == 1 and np.isfinite(champ.rating) and champ.rating < 3000
    assert any("champ won every battle" in n and "L2 penalty" in n for n in board.notes)


def test_ordinary_data_has_no_notes():
    _, battles = _battles(2000, 5)
    assert ratings.leaderboard(battles, bootstrap=10).notes == []


def test_a_disconnected_comparison_graph_is_said():
    _, one = _battles(400, 3)
    two = [Battle(b.model_a.replace("m", "x"), b.model_b.replace("m", "x"), b.winner, b.tstamp) for b in one]
    board = ratings.leaderboard(one + two, bootstrap=0)
    assert any("2 groups that never met" in n for n in board.notes)


def test_no_battles_give_an_empty_board_with_a_note():
    board = ratings.leaderboard([], bootstrap=10)
    assert list(board) == [] and board.notes == ["no voted battles to rate"]


def test_leaderboard_json_has_the_designs_shape():
    _, battles = _battles(2000, 5)
    rows = board_view.as_json(ratings.leaderboard(battles, bootstrap=20))
    assert [list(r) for r in rows] == [["rank", "model", "rating", "ci_lower", "ci_upper", "battles"]] * 5
    for r in rows:
        assert isinstance(r["rank"], int) and isinstance(r["battles"], int) and isinstance(r["model"], str)
        assert all(
            isinstance(r[k], float) and round(r[k], 2) == r[k] for k in ("rating", "ci_lower", "ci_upper")
        )
    assert [r["rating"] for r in rows] == sorted((r["rating"] for r in rows), reverse=True)
    assert sum(r["battles"] for r in rows) == 2 * 2000
    json.dumps(rows)


def test_plot_writes_png_and_self_contained_html(tmp_path):
    _, battles = _battles(1000, 4)
    board = ratings.leaderboard(battles, bootstrap=20)
    png = board_view.plot(board, tmp_path / "lb.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = board_view.plot(board, tmp_path / "lb.html").read_text()
    assert "data:image/png;base64," in page and "<script" not in page and "m0" in page
    with pytest.raises(UsageError, match="ending in .png or .html"):
        board_view.plot(board, tmp_path / "lb.pdf")


def test_a_group_that_never_lost_to_another_group_is_said():
    """No single model won or lost everything, yet p and q never lost to r or s: no finite MLE."""
    pairs = [("p", "q", "model_a"), ("q", "p", "model_a"), ("r", "s", "model_a"), ("s", "r", "model_a")] * 3
    pairs += [(top, low, "model_a") for top in "pq" for low in "rs"] * 2
    battles = [Battle(a, b, w, float(t)) for t, (a, b, w) in enumerate(pairs)]
    board = ratings.leaderboard(battles, bootstrap=0)
    assert any("never lost (or never won) against another group" in n for n in board.notes)
    top = {r.model: r.rating for r in board}
    assert min(top["p"], top["q"]) > max(top["r"], top["s"]) and all(np.isfinite(list(top.values())))


def test_elo_rating_with_a_bootstrap_lies_inside_its_interval():
    """The online rating in time order can fall outside the shuffled rounds' interval (a model
    that improved over time); with a bootstrap the rating is the rounds' median, inside it."""
    import random

    rnd = random.Random(3)
    battles = []
    for t in range(3000):
        a, b = rnd.sample(["early", "late", "flat"], 2)
        late_phase = t > 1500
        strong = "late" if late_phase else "early"
        if strong in (a, b):
            winner = "model_a" if a == strong else "model_b"
        else:
            winner = rnd.choice(["model_a", "model_b"])
        battles.append(Battle(a, b, winner, float(t), {}))
    board = ratings.leaderboard(battles, method="elo", bootstrap=50, seed=1)
    for row in board:
        assert row.ci_lower <= row.rating <= row.ci_upper, row
    online = {r.model: r.rating for r in ratings.leaderboard(battles, method="elo", bootstrap=0)}
    assert any(not (r.ci_lower <= online[r.model] <= r.ci_upper) for r in board)  # the case it guards
