"""Array-based sum tree for proportional sampling (Schaul et al. 2016, "Prioritized Experience Replay",
App. B.2.1; SIT (Tian et al. 2023) uses it for its decomposed prioritized replay, Sec.
"Decomposed Prioritized Experience Replay").

Layout: ``C`` = capacity rounded up to a power of two; node 1 is the root, node ``k`` has children
``2k`` and ``2k + 1``, and leaf ``i`` is node ``C + i``. Every internal node holds the sum of its two
children, recomputed from them on every update (never incremented), so totals do not drift.
``update`` and ``sample`` walk one root-leaf path per index: O(log N) each, vectorized over arrays of
indices (one numpy operation per tree level).
"""

from __future__ import annotations

import numpy as np


class SumTree:
    """Non-negative values ``[capacity]`` with O(log N) update and prefix-sum search."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"SumTree capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self._leaf0 = 1 << max(0, (self.capacity - 1).bit_length())  # first leaf node
        self._depth = self._leaf0.bit_length() - 1  # levels below the root
        self._tree = np.zeros(2 * self._leaf0, dtype=np.float64)  # node 0 unused

    def __len__(self) -> int:
        return self.capacity

    @property
    def total(self) -> float:
        """Sum of all values."""
        return float(self._tree[1])

    @property
    def values(self) -> np.ndarray:
        """A copy of the leaf values ``[capacity]`` float64."""
        return self._tree[self._leaf0 : self._leaf0 + self.capacity].copy()

    def update(self, idx: np.ndarray | int, value: np.ndarray | float) -> None:
        """Set ``values[idx] = value`` (arrays broadcast together; for a repeated index the last wins)."""
        idx, value = np.broadcast_arrays(np.asarray(idx, dtype=np.int64), np.asarray(value, dtype=np.float64))
        idx, value = idx.ravel(), value.ravel()
        if idx.size == 0:
            return
        if idx.min() < 0 or idx.max() >= self.capacity:
            raise IndexError(f"SumTree index out of range [0, {self.capacity}): {idx.min()}..{idx.max()}")
        if not np.all(np.isfinite(value)) or value.min() < 0:
            raise ValueError(f"SumTree values must be finite and >= 0, got min {value.min()}")
        # keep the last occurrence of each index so repeated indices have a defined result
        _, last = np.unique(idx[::-1], return_index=True)
        idx, value = idx[::-1][last], value[::-1][last]
        node = idx + self._leaf0
        self._tree[node] = value
        for _ in range(self._depth):
            node = np.unique(node >> 1)
            self._tree[node] = self._tree[2 * node] + self._tree[2 * node + 1]

    def sample(self, u: np.ndarray) -> np.ndarray:
        """Indices ``i`` with ``prefix(i) <= u < prefix(i) + values[i]`` for ``u`` in ``[0, total)``.

        ``prefix(i) = sum(values[:i])``. Drawing ``u ~ Uniform[0, total)`` samples index ``i`` with
        probability ``values[i] / total``. The walk never enters a zero-valued subtree (a guard against
        float rounding near subtree boundaries), so zero-valued leaves are never returned; ``u`` at or
        beyond ``total`` lands on the last positive leaf.
        """
        if self.total <= 0.0:
            raise ValueError("cannot sample from a SumTree whose values are all zero")
        u = np.array(u, dtype=np.float64, copy=True).ravel()
        node = np.ones(u.shape[0], dtype=np.int64)
        tree = self._tree
        for _ in range(self._depth):
            left = tree[2 * node]
            right = tree[2 * node + 1]
            go_right = ((u >= left) & (right > 0.0)) | (left <= 0.0)
            u -= np.where(go_right, left, 0.0)
            node = 2 * node + go_right
        return node - self._leaf0
