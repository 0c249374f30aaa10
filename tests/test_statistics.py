"""offmarl.bench.statistics against values computed by hand (Agarwal et al. 2021's definitions)."""

from __future__ import annotations

import numpy as np
import pytest

from offmarl.bench import statistics as st

# Three tasks with different numbers of runs (normalized scores):
A = [0.0, 0.5, 1.0, 1.5]
B = [0.2, 0.6]
C = [0.9, 1.2, 3.0]


@pytest.mark.parametrize("scores, expected", [
    ([3.0, 1.0, 2.0], 2.0),               # 3 runs: floor(3/4) = 0 cut, the mean
    ([4.0, 1.0, 3.0, 2.0], 2.5),          # 4 runs: 1 cut from each end, mean of 2 and 3
    ([10.0, 1.0, 4.0, 2.0, 3.0], 3.0),    # 5 runs: mean of 2, 3, 4 (the outlier 10 is cut)
    ([5.0, 0.0, 7.0, 1.0, 6.0, 2.0, 3.0, 4.0], 3.5),  # 8 runs: 2 cut each end, mean of 2, 3, 4, 5
])
def test_iqm_is_the_trimmed_mean_of_the_middle_half(scores, expected):
    assert st.iqm(np.array(scores)) == pytest.approx(expected)


def test_iqm_reduces_the_last_axis_only():
    curve = np.array([[3.0, 1.0, 2.0], [30.0, 10.0, 20.0]])  # two evaluation steps x three runs
    assert st.iqm(curve).tolist() == [2.0, 20.0]


def test_standard_error_and_normalized_score():
    # std with ddof 1 of 1, 2, 3 is 1; over sqrt(3)
    assert st.standard_error(np.array([1.0, 2.0, 3.0])) == pytest.approx(1 / np.sqrt(3))
    assert np.isnan(st.standard_error(np.array([4.0])))
    # (5 - 1) / (9 - 1)
    assert st.normalized_scores(np.array([5.0, 1.0, 9.0]), 1.0, 9.0).tolist() == [0.5, 0.0, 1.0]
    with pytest.raises(ValueError, match="reference return equals the random return"):
        st.normalized_scores(np.array([1.0]), 2.0, 2.0)


def test_aggregates_across_tasks():
    # pooled and sorted: 0.0 0.2 0.5 0.6 0.9 1.0 1.2 1.5 3.0 -> 9 runs, 2 cut each end: (0.5+0.6+0.9+1.0+1.2)/5
    assert st.aggregate_iqm([A, B, C]) == pytest.approx(4.2 / 5)
    # task means 0.75, 0.4, 1.7
    assert st.aggregate_mean([A, B, C]) == pytest.approx(2.85 / 3)
    assert st.aggregate_median([A, B, C]) == pytest.approx(0.75)
    # max(1 - x, 0): A 1 + 0.5 + 0 + 0, B 0.8 + 0.4, C 0.1 + 0 + 0 = 2.8 over 9 runs
    assert st.optimality_gap([A, B, C]) == pytest.approx(2.8 / 9)


def test_probability_of_improvement_counts_ties_as_half():
    # task 1: X 1, 3, 5 vs Y 2, 3: pairs won 0, 0, 1, 0.5 (tie), 1, 1 -> 3.5 / 6 = 7/12
    # task 2: X 0, 0 vs Y 0, 1: each X run ties Y's 0 (0.5) and loses to 1 -> 1 / 4
    x, y = [[1.0, 3.0, 5.0], [0.0, 0.0]], [[2.0, 3.0], [0.0, 1.0]]
    assert st.probability_of_improvement(x, y) == pytest.approx((7 / 12 + 1 / 4) / 2)
    assert st.probability_of_improvement(y, x) == pytest.approx(1 - (7 / 12 + 1 / 4) / 2)
    assert st.probability_of_improvement([[2.0, 2.0]], [[2.0, 2.0]]) == 0.5


def test_score_distribution_counts_runs_strictly_above_each_threshold():
    # 5 runs: above 0: all; above 0.5: 0.9 and 1.2; above 1.0: 1.2
    profile = st.score_distribution([[0.1, 0.5], [0.5, 0.9, 1.2]], np.array([0.0, 0.5, 1.0]))
    assert profile.tolist() == pytest.approx([1.0, 0.4, 0.2])


def test_bootstrap_of_two_runs_has_the_exact_percentiles():
    # the mean of two resampled runs of [0, 1] is 0, 0.5 or 1 (probabilities 1/4, 1/2, 1/4): the 2.5 and
    # 97.5 percentiles of its distribution are 0 and 1
    est = st.bootstrap(st.aggregate_mean, [np.array([0.0, 1.0])], min_runs=1)
    assert est.point == 0.5 and (est.low, est.high) == (0.0, 1.0)


def test_bootstrap_is_stratified_by_task():
    # resampling within tasks keeps one task at 0 and the other at 10: the mean over tasks never moves
    est = st.bootstrap(st.aggregate_mean, [np.zeros(5), np.full(5, 10.0)])
    assert (est.point, est.low, est.high) == (5.0, 5.0, 5.0)


def test_bootstrap_interval_contains_the_estimate_narrows_with_seeds_and_is_reproducible():
    widths = []
    for runs in (5, 20, 80):  # the same spread of scores, more seeds of it
        scores = [np.linspace(1.0, 2.0, runs), np.linspace(0.0, 1.0, runs)]
        est = st.bootstrap(st.aggregate_iqm, scores)
        assert est.low <= est.point <= est.high
        assert st.bootstrap(st.aggregate_iqm, scores) == est  # a seeded generator: same data, same interval
        widths.append(est.high - est.low)
    assert widths[0] > widths[1] > widths[2]


def test_no_interval_below_five_runs():
    est = st.bootstrap(st.aggregate_iqm, [np.arange(5.0), np.arange(4.0)])
    assert not est.has_interval and est.point == pytest.approx(st.aggregate_iqm([np.arange(5.0), np.arange(4.0)]))


def test_independent_bootstrap_of_a_pair_and_of_a_curve():
    x, y = [np.array([3.0, 4.0, 5.0, 6.0, 7.0])], [np.array([0.0, 1.0, 2.0, 3.0, 4.0])]
    est = st.bootstrap(st.probability_of_improvement, x, y)
    # pairs: 3 beats 0, 1, 2 and ties 3 (3.5); 4: 4.5; 5, 6, 7: 5 each -> 23 / 25
    assert est.point == pytest.approx(23 / 25) and 0.0 <= est.low <= est.point <= est.high <= 1.0
    curve = [np.array([[0.0, 1.0, 2.0, 3.0, 4.0], [10.0, 11.0, 12.0, 13.0, 14.0]])]  # 2 steps x 5 runs
    est = st.bootstrap(st.aggregate_iqm, curve)
    assert est.point.tolist() == [2.0, 12.0] and est.low.shape == (2,) and np.all(est.low < est.point)


def test_t_quantiles_match_scipy_and_the_paired_interval_is_by_hand():
    scipy_stats = pytest.importorskip("scipy.stats", reason="scipy (the test extra) checks the t quantiles")
    for df in (1, 2, 3, 4, 10, 30, 31, 60, 200):
        assert st.t_quantile_975(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), abs=1e-3)
    with pytest.raises(ValueError, match="at least 1 degree of freedom"):
        st.t_quantile_975(0)
    est = st.paired_difference(np.array([1.0, 2.0, 6.0]))  # mean 3, sd sqrt(7), t(0.975, 2) = 4.3027
    half = 4.3027 * np.sqrt(7.0) / np.sqrt(3.0)
    assert (est.point, est.low, est.high) == pytest.approx((3.0, 3.0 - half, 3.0 + half))
    assert not st.paired_difference(np.array([2.5])).has_interval
    with pytest.raises(ValueError, match="non-empty vector"):
        st.paired_difference(np.zeros((2, 2)))


def test_paired_against_the_best_other_row_picks_it_task_by_task():
    """``X:@best`` pairs X, on each task, with the other row of highest mean there (SIT's "beats every
    baseline"), at the seeds both ran; a task where X ran alone is skipped."""
    from offmarl.bench.aggregates import BEST_OTHER, paired_differences
    from offmarl.bench.records import Cell, EvalRecord, Table

    def cell(algo: str, task: str, returns: list[float]) -> Cell:
        return Cell([EvalRecord(path="", algo=algo, dataset=task, seed=s, return_mean=r, episodes=1, steps=1,
                                checkpoint="", target_return=None, curve=(), metrics_csv="")
                     for s, r in enumerate(returns)])

    returns = {("sit", "a"): [5.0, 6.0, 7.0], ("bc", "a"): [4.0, 4.0, 4.0], ("qmix", "a"): [1.0, 9.0, 3.0],
               ("sit", "b"): [1.0, 1.0, 1.0], ("bc", "b"): [2.0, 3.0], ("qmix", "b"): [0.0, 0.0, 0.0],
               ("sit", "c"): [0.0]}
    table = Table(algos=["sit", "bc", "qmix"], datasets=["a", "b", "c"],
                  cells={key: cell(*key, r) for key, r in returns.items()})
    a, b = paired_differences(table, "sit", BEST_OTHER)
    assert (a.y, a.task, a.differences.tolist()) == ("qmix", "a", [4.0, -3.0, 4.0])  # mean 13/3 > bc's 4
    assert (b.y, b.task, b.seeds, b.differences.tolist()) == ("bc", "b", (0, 1), [-1.0, -2.0])
    with pytest.raises(ValueError, match="stands for the Y of a pair"):
        paired_differences(table, BEST_OTHER, "sit")
