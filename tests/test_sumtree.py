"""SumTree: totals, prefix-sum search, zero leaves, and sampling frequencies."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chisquare

from offmarl.data.sumtree import SumTree


def test_tiny_tree_by_hand():
    tree = SumTree(4)
    tree.update(np.arange(4), np.array([1.0, 2.0, 0.0, 3.0]))
    assert tree.total == 6.0
    # internal nodes: root 6 = (1 + 2) + (0 + 3)
    np.testing.assert_array_equal(tree._tree[1:4], [6.0, 3.0, 3.0])
    # prefix sums: [0, 1) -> 0, [1, 3) -> 1, [3, 3) empty -> 2 never, [3, 6) -> 3
    u = np.array([0.0, 0.999, 1.0, 2.999, 3.0, 5.999])
    np.testing.assert_array_equal(tree.sample(u), [0, 0, 1, 1, 3, 3])
    tree.update(1, 0.5)
    assert tree.total == 4.5
    np.testing.assert_array_equal(tree.sample(np.array([1.2, 1.5, 4.4])), [1, 3, 3])
    np.testing.assert_array_equal(tree.values, [1.0, 0.5, 0.0, 3.0])


def test_non_power_of_two_capacity_and_single_leaf():
    tree = SumTree(5)
    tree.update(np.arange(5), np.array([1.0, 1.0, 1.0, 1.0, 6.0]))
    assert tree.total == 10.0
    np.testing.assert_array_equal(tree.sample(np.array([3.5, 4.0, 9.99])), [3, 4, 4])
    one = SumTree(1)
    one.update(0, 2.5)
    assert one.total == 2.5
    np.testing.assert_array_equal(one.sample(np.array([0.0, 2.4])), [0, 0])


def test_repeated_index_last_value_wins_and_totals_do_not_drift():
    tree = SumTree(3)
    tree.update(np.array([0, 1, 0]), np.array([5.0, 1.0, 2.0]))
    np.testing.assert_array_equal(tree.values, [2.0, 1.0, 0.0])
    assert tree.total == 3.0
    rng = np.random.default_rng(0)
    big = SumTree(1000)
    for _ in range(50):
        idx = rng.integers(0, 1000, size=64)
        big.update(idx, rng.random(64))
    assert big.total == pytest.approx(big.values.sum(), rel=1e-12)


def test_zero_leaves_are_never_sampled():
    rng = np.random.default_rng(1)
    values = rng.random(37)
    values[rng.random(37) < 0.5] = 0.0
    values[[0, 36]] = 0.0  # zero leaves at both edges
    tree = SumTree(37)
    tree.update(np.arange(37), values)
    u = np.concatenate([rng.random(20000) * tree.total, [0.0, np.nextafter(tree.total, 0), tree.total]])
    drawn = tree.sample(u)
    assert set(np.unique(drawn)) <= set(np.flatnonzero(values))


def test_sampled_frequencies_match_values_chi_square():
    rng = np.random.default_rng(2)
    values = np.array([0.5, 3.0, 1.0, 0.0, 2.0, 0.25, 4.0, 1.5, 0.0, 0.75, 2.5])
    tree = SumTree(values.size)
    tree.update(np.arange(values.size), values)
    n = 20000
    counts = np.bincount(tree.sample(rng.random(n) * tree.total), minlength=values.size)
    positive = values > 0
    assert counts[~positive].sum() == 0
    expected = n * values[positive] / values.sum()
    assert chisquare(counts[positive], expected).pvalue > 0.001


def test_errors():
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        SumTree(0)
    tree = SumTree(3)
    with pytest.raises(IndexError, match=r"out of range \[0, 3\)"):
        tree.update(3, 1.0)
    with pytest.raises(ValueError, match="finite and >= 0"):
        tree.update(0, -1.0)
    with pytest.raises(ValueError, match="all zero"):
        tree.sample(np.array([0.0]))
