"""The A/B report's statistics against textbook values and scipy."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats

from crewkit.evaluation import ab_report as r


def test_wilson_interval_matches_newcombes_example():
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion": 81/263
    lo, hi = r.wilson(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)
    assert r.wilson(0, 10)[0] == pytest.approx(0.0) and r.wilson(10, 10)[1] == pytest.approx(1.0)
    assert r.wilson(0, 0) is None


@pytest.mark.parametrize(
    ("k1", "n1", "k2", "n2", "expected"),
    [
        (56, 70, 48, 80, (0.0524, 0.3339)),  # Newcombe (1998) "Interval estimation for the difference
        (9, 10, 3, 10, (0.1705, 0.8090)),  # between independent proportions", method 10, examples a, b
    ],
)
def test_newcombe_interval_matches_the_paper(k1, n1, k2, n2, expected):
    lo, hi = r.newcombe(k1, n1, k2, n2)
    assert (round(lo, 4), round(hi, 4)) == expected


def test_two_proportion_z_test_equals_the_uncorrected_chi_square():
    test, p = r.proportion_test(60, 100, 45, 100)
    expected = stats.chi2_contingency([[60, 40], [45, 55]], correction=False)[1]
    assert test == "z" and p == pytest.approx(expected, rel=1e-9)


def test_small_counts_use_fishers_exact_test():
    test, p = r.proportion_test(9, 10, 3, 10)  # expected failures per arm: 4 < 5
    assert test == "fisher"
    assert p == pytest.approx(stats.fisher_exact([[9, 1], [3, 7]]).pvalue)


def test_cohens_h():
    assert r.cohens_h(0.5, 0.25) == pytest.approx(math.pi / 6)
    assert r.cohens_h(0.3, 0.3) == 0


def test_welch_difference_interval_and_p_equal_scipys():
    rng = random.Random(7)
    a = [rng.gauss(1.0, 0.5) for _ in range(40)]
    b = [rng.gauss(1.3, 1.2) for _ in range(25)]
    diff, (lo, hi), p = r.welch(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert diff == pytest.approx(sum(a) / 40 - sum(b) / 25)
    assert p == pytest.approx(ref.pvalue, rel=1e-9)
    assert (lo, hi) == (pytest.approx(ci.low, rel=1e-9), pytest.approx(ci.high, rel=1e-9))


def test_welch_without_spread_is_exact():
    assert r.welch([0.0, 0.0, 0.0], [0.0, 0.0]) == (0.0, (0.0, 0.0), 1.0)
    diff, ci, p = r.welch([1.0, 1.0], [2.0, 2.0])
    assert diff == -1.0 and ci == (-1.0, -1.0) and p == 0.0


def test_hedges_g_corrects_cohens_d_for_small_samples():
    g = r.hedges_g([1, 2, 3, 4, 5], [3, 4, 5, 6, 7])
    d = -2 / math.sqrt(2.5)
    assert g == pytest.approx(d * (1 - 3 / (4 * 10 - 9)))
    assert round(g, 4) == -1.1425
    assert r.hedges_g([1.0, 1.0], [1.0, 1.0]) is None


def test_holm_adjusts_in_the_given_order():
    assert r.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert r.holm([0.5]) == [0.5]
    assert r.holm([0.6, 0.7]) == [1.0, 1.0]
