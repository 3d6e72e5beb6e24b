"""Benchmark: arena ratings on 1,000,000 votes over 100 models, against a straightforward reference.

Votes are generated (seeded) from known true ratings (normal, sd 150): each battle a random pair,
model_a wins with the Bradley-Terry probability; ties are drawn without changing either model's
expected score (a tie replaces equal shares of wins and losses), so ties-as-half-wins estimates the
true ratings.

Timed (wall seconds, perf_counter, after one small warm-up that pays the imports):
  crewkit bt         `ratings.rate(method="bt", bootstrap=R)` on the encoded votes: pair counts,
                     Newton fit, R multinomial bootstrap rounds          (target: < 10 s at R = 100)
  crewkit elo        `ratings.rate(method="elo", bootstrap=R)`: online Elo (K=4) on all votes plus
                     R bootstrap rounds replayed exactly (vectorised across rounds)
  encode             `ratings.encode` of 1M `votes.Battle` objects (what the CLI adds on top)
  file -> board      `votes.read_jsonl` of the votes written as a JSONL file, then `ratings.leaderboard`
                     (BT, R rounds, min_battles 2): the whole `crewkit arena leaderboard --votes` path
  reference bt       FastChat's `compute_mle_elo` written straight with numpy/scipy (no sklearn or
                     pandas here): one row per battle in a dense design matrix (+ln 10 for model_a,
                     -ln 10 for model_b; FastChat duplicates each row so a tie is one win and one
                     loss, which is the same likelihood as one row with target 0.5), logistic
                     regression without intercept by maximum likelihood (scipy.optimize L-BFGS on
                     the log-loss and its gradient), and its bootstrap by resampling rows and
                     rebuilding the matrix. `--reference-rounds K` runs K rounds and extrapolates
                     linearly to R (printed as such).
Reports the ratio reference / crewkit, and the largest difference between crewkit's and the
reference's point ratings and interval ends (both centred on a mean of 1000), and how far crewkit's
ratings are from the true ones. Writes bench/results/arena.json.

    .venv/bin/python bench/arena.py [--votes 1000000] [--models 100] [--rounds 100]
                                    [--reference-rounds 3] [--skip-elo] [--skip-reference] [--skip-file]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_S = 10.0
LN10 = math.log(10.0)


def generate(n: int, m: int, seed: int = 0, tie_share: float = 0.3) -> tuple[np.ndarray, ...]:
    """(true ratings, a, b, score): n battles over m models, model_a's score 1, 0.5 or 0."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0.0, 150.0, m)
    true -= true.mean()
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    p = 1.0 / (1.0 + 10.0 ** ((true[b] - true[a]) / 400.0))
    tie = tie_share * 2.0 * np.minimum(p, 1.0 - p)  # P(tie); wins p - tie/2, losses 1 - p - tie/2
    u = rng.random(n)
    score = np.where(u < p - tie / 2, 1.0, np.where(u < p + tie / 2, 0.5, 0.0))
    return true + 1000.0, a, b, score


def reference_fit(a: np.ndarray, b: np.ndarray, score: np.ndarray, m: int, dense: bool = True) -> np.ndarray:
    """FastChat's compute_mle_elo, one row per battle: ratings centred on a mean of 1000."""
    from scipy.optimize import minimize

    n = a.size
    if dense:
        x = np.zeros((n, m))
        rows = np.arange(n)
        x[rows, a] = LN10
        x[rows, b] = -LN10
    else:
        from scipy.sparse import csr_matrix

        x = csr_matrix(
            (np.r_[np.full(n, LN10), np.full(n, -LN10)], (np.r_[np.arange(n), np.arange(n)], np.r_[a, b])),
            shape=(n, m),
        )
    y = score

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        value = np.mean(np.logaddexp(0.0, z) - y * z)
        p = 0.5 * (1.0 + np.tanh(0.5 * z))
        return float(value), x.T @ (p - y) / n

    fit = minimize(
        loss,
        np.zeros(m),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 2000},
    )
    ratings = 400.0 * fit.x + 1000.0
    return ratings - ratings.mean() + 1000.0


def reference_bootstrap(
    a: np.ndarray, b: np.ndarray, score: np.ndarray, m: int, rounds: int, seed: int = 0, dense: bool = True
) -> np.ndarray:
    """FastChat's get_bootstrap_result: each round resamples the rows with replacement and refits."""
    rng = np.random.default_rng(seed)
    out = np.empty((rounds, m))
    for r in range(rounds):
        idx = rng.integers(0, a.size, a.size)
        out[r] = reference_fit(a[idx], b[idx], score[idx], m, dense)
    return out


def _timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - start, value


def _by_index(board, models: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    where = {r.model: r for r in board}
    rows = [where[name] for name in models]
    return (
        np.array([r.rating for r in rows]),
        np.array([r.ci_lower for r in rows]),
        np.array([r.ci_upper for r in rows]),
    )


def main() -> int:
    from _common import telemetry_off, write_results

    from crewkit.evaluation import ratings
    from crewkit.evaluation.votes import Battle

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=100, help="bootstrap rounds")
    parser.add_argument(
        "--reference-rounds", type=int, default=3, help="reference bootstrap rounds actually run"
    )
    parser.add_argument("--reference-matrix", choices=["dense", "sparse"], default="dense")
    parser.add_argument("--skip-elo", action="store_true")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument(
        "--skip-file", action="store_true", help="skip timing the JSONL file -> leaderboard path"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    telemetry_off()
    n, m, rounds = args.votes, args.models, args.rounds
    true, a, b, score = generate(n, m, args.seed)
    names = [f"model-{i:03d}" for i in range(m)]
    enc = ratings.Encoded(names, a, b, score)
    print(f"{n:,} votes over {m} models, {rounds} bootstrap rounds (seed {args.seed})")

    ratings.rate(ratings.Encoded(names, a[:2000], b[:2000], score[:2000]), bootstrap=2)  # warm-up: imports
    ratings.rate(ratings.Encoded(names, a[:2000], b[:2000], score[:2000]), method="elo", bootstrap=2)
    payload: dict = {"votes": n, "models": m, "rounds": rounds, "seed": args.seed, "target_s": TARGET_S}

    bt_s, board = _timed(ratings.rate, enc, method="bt", bootstrap=rounds, seed=args.seed)
    point, lower, upper = _by_index(board, names)
    inside = float(np.mean((lower <= true) & (true <= upper)))
    print(f"crewkit bt:   {bt_s:7.2f} s  (fit + {rounds} bootstrap rounds); target < {TARGET_S:g} s: "
          f"{'PASS' if bt_s < TARGET_S else 'FAIL'}")  # fmt: skip
    print(f"              max |rating - true| {np.max(np.abs(point - true)):.2f} points; "
          f"true rating inside the 95% interval for {inside:.0%} of models")  # fmt: skip
    payload["crewkit_bt_s"] = round(bt_s, 3)
    payload["bt_max_abs_error_vs_true"] = round(float(np.max(np.abs(point - true))), 3)
    payload["bt_ci_coverage_of_true"] = round(inside, 3)

    battles = [
        Battle(names[i], names[j], ("model_b", "tie", "model_a")[int(2 * s)], float(k))
        for k, (i, j, s) in enumerate(zip(a[:n].tolist(), b[:n].tolist(), score[:n].tolist(), strict=True))
    ]
    enc_s, _ = _timed(ratings.encode, battles)
    del battles
    print(f"encode:       {enc_s:7.2f} s  ({n:,} Battle objects -> arrays; the CLI's extra step)")
    payload["encode_s"] = round(enc_s, 3)

    if not args.skip_file:
        import tempfile

        from crewkit.evaluation.votes import read_jsonl

        winners = ("model_b", "tie", "model_a")
        with tempfile.TemporaryDirectory(prefix="crewkit-bench-arena-") as tmp:
            path = Path(tmp) / "votes.jsonl"
            with path.open("w", encoding="utf-8") as out:
                for k, (i, j, s) in enumerate(zip(a.tolist(), b.tolist(), score.tolist(), strict=True)):
                    out.write(
                        f'{{"model_a": "{names[i]}", "model_b": "{names[j]}", "winner": "{winners[int(2 * s)]}", '
                        f'"tstamp": {1.7e9 + k}, "anony": true}}\n'
                    )
            start = time.perf_counter()
            read = read_jsonl(path)
            read_s = time.perf_counter() - start
            ratings.leaderboard(read.battles, bootstrap=rounds, seed=args.seed, min_battles=2)
            file_s = time.perf_counter() - start
        print(f"file -> board:{file_s:7.2f} s  (what `crewkit arena leaderboard --votes FILE --bootstrap {rounds}` "
              f"computes; reading the JSONL {read_s:.2f} s)")  # fmt: skip
        payload["file_to_board_s"] = round(file_s, 3)
        payload["read_jsonl_s"] = round(read_s, 3)

    if not args.skip_elo:
        point_s, _ = _timed(ratings.elo_ratings, enc)
        elo_s, _ = _timed(ratings.rate, enc, method="elo", bootstrap=rounds, seed=args.seed)
        print(f"crewkit elo:  {elo_s:7.2f} s  (online Elo alone {point_s:.2f} s; + {rounds} exact bootstrap "
              f"rounds); {'within' if elo_s < TARGET_S else 'OVER'} {TARGET_S:g} s")  # fmt: skip
        payload["crewkit_elo_s"] = round(elo_s, 3)
        payload["crewkit_elo_point_s"] = round(point_s, 3)

    if not args.skip_reference:
        dense = args.reference_matrix == "dense"
        k = max(0, min(args.reference_rounds, rounds))
        reference_fit(a[:2000], b[:2000], score[:2000], m, dense)  # warm-up: imports
        fit_s, ref_point = _timed(reference_fit, a, b, score, m, dense)
        boot_s, ref_boot = _timed(reference_bootstrap, a, b, score, m, k, args.seed, dense)
        per_round = boot_s / k if k else fit_s
        ref_total = fit_s + per_round * rounds
        how = "measured" if k == rounds else f"{k} round(s) run, {rounds} extrapolated linearly"
        diff = float(np.max(np.abs(point - ref_point)))
        print(f"reference bt: {ref_total:7.2f} s  ({args.reference_matrix} design matrix; fit {fit_s:.2f} s + "
              f"{per_round:.2f} s per bootstrap round; {how})")  # fmt: skip
        print(f"ratio reference / crewkit bt: {ref_total / bt_s:.0f}x")
        print(f"max |crewkit - reference| point rating: {diff:.4f} points (must be < 1): "
              f"{'PASS' if diff < 1 else 'FAIL'}")  # fmt: skip
        payload.update(
            reference_matrix=args.reference_matrix,
            reference_fit_s=round(fit_s, 3),
            reference_round_s=round(per_round, 3),
            reference_rounds_run=k,
            reference_total_s=round(ref_total, 3),
            reference_extrapolated=k != rounds,
            ratio_reference_over_crewkit=round(ref_total / bt_s, 1),
            max_abs_rating_diff_vs_reference=round(diff, 6),
        )
        if k:
            # interval ends are percentiles of few reference rounds: shown, not judged
            payload["reference_rounds_sd_of_ratings_median"] = round(
                float(np.median(ref_boot.std(axis=0))), 3
            )
        ok = bt_s < TARGET_S and diff < 1
    else:
        ok = bt_s < TARGET_S
    write_results("arena", payload)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
