"""The returns-to-go contract shared by training (samplers) and evaluation (policy wrappers).

Definition (undiscounted, as in the Decision Transformer and Tseng et al. 2022, *Offline Multi-Agent RL
with Knowledge Distillation*, Sec. 3): for step ``t`` of an episode that ends after step ``t_end - 1``,

    R_t = scale * sum_{t' = t}^{t_end - 1} r_{t'}

so ``R_t`` *includes* the reward of step ``t`` and the first value of an episode is its whole return
(times ``scale``). Evaluation starts from a target return ``G`` and, after receiving the reward ``r_t``
of step ``t``, conditions the next step on

    R_{t+1} = R_t - r_t.

Replaying a dataset episode from ``G = its return`` therefore reproduces the training sequence step for
step. d3rlpy#401 ("Differences in RTG computation between inference and training time") is the bug this
contract rules out: there training computed ``sum(r[t:]) - r_t`` (the return *after* step ``t``) while
inference started from the full target, so training and evaluation were one step apart.

Exactness: both sides compute in float64 and cast to float32 only at the end, after multiplying by
``scale``. Sums of float32 rewards are exact in float64 (in any order) unless the dataset's total absolute reward
exceeds about 2**29 times its smallest nonzero ``|reward|`` (e.g. 1e9 steps of reward 1, or rewards of
1e-6 next to a total of 1e3), so the two sides give bit-identical float32 values on real datasets.

Team returns-to-go are the sum over agents of the per-agent returns-to-go (equivalently, the
returns-to-go of the team reward ``sum_i r_t^i``); for team-reward environments whose reward is broadcast
to every agent that is ``n`` times the team reward, and a team tracker must then be fed the sum of the
per-agent rewards it receives.
"""

from __future__ import annotations

import numpy as np


def _check_episode_starts(episode_starts: np.ndarray, n_steps: int) -> np.ndarray:
    starts = np.asarray(episode_starts)
    if starts.ndim != 1 or not np.issubdtype(starts.dtype, np.integer):
        raise ValueError(f"episode_starts must be a 1-D integer array, got shape {list(starts.shape)} "
                         f"dtype {starts.dtype}")
    if n_steps == 0:
        if starts.size:
            raise ValueError(f"episode_starts has {starts.size} entries but there are no steps")
        return starts.astype(np.int64)
    if starts.size == 0 or starts[0] != 0:
        raise ValueError(f"episode_starts must begin with 0, got {starts[:1].tolist()}")
    if np.any(np.diff(starts) <= 0) or starts[-1] >= n_steps:
        raise ValueError(f"episode_starts must be strictly increasing and < the number of steps ({n_steps})")
    return starts.astype(np.int64)


def returns_to_go(rewards: np.ndarray, episode_starts: np.ndarray, scale: float | np.ndarray = 1.0) -> np.ndarray:
    """Undiscounted returns-to-go of every step, per column: ``[T]`` or ``[T, n]`` float32.

    ``out[t] = scale * sum(rewards[t : end_of_episode(t)])`` (module docstring); ``scale`` is one number or
    one per column ``[n]``. Vectorized: with the
    global prefix sum ``C[t] = sum(rewards[:t])`` (float64), ``out[t] = C[end(t)] - C[t]``; there is no
    Python loop over episodes.
    """
    rewards = np.asarray(rewards)
    if rewards.ndim not in (1, 2):
        raise ValueError(f"rewards must be [T] or [T, n], got shape {list(rewards.shape)}")
    n_steps = rewards.shape[0]
    starts = _check_episode_starts(episode_starts, n_steps)
    prefix = np.zeros((n_steps + 1,) + rewards.shape[1:], dtype=np.float64)  # [T + 1, (n)]
    np.cumsum(rewards, axis=0, dtype=np.float64, out=prefix[1:])
    ends = np.append(starts[1:], n_steps)
    end_of_step = np.repeat(ends, ends - starts)  # [T] exclusive end of each step's episode
    rtg = prefix[end_of_step] - prefix[:-1]
    return (rtg * np.asarray(scale, dtype=np.float64)).astype(np.float32)


class ReturnToGoTracker:
    """Evaluation-side return-to-go of ``B`` parallel episodes (see the module docstring).

    ``target`` is the return to condition on, in reward units (unscaled): a float (one value per
    episode, e.g. one agent's or the team's target) or an array ``[n]`` (one per agent). ``current`` is
    the scaled value to feed the model, ``[B]`` or ``[B, n]`` float32, exactly what training's
    :func:`returns_to_go` gives for the same reward sequence and ``scale``.

    Usage per step: feed ``current`` to the model, act, then ``update(reward)`` with that step's
    (unscaled) reward; after an episode ends, ``reset(mask)`` the finished rows.
    """

    def __init__(self, target: float | np.ndarray, batch_size: int, scale: float | np.ndarray = 1.0):
        target_arr = np.asarray(target, dtype=np.float64)
        if target_arr.ndim > 1:
            raise ValueError(f"target must be a float or a per-agent array [n], got shape {list(target_arr.shape)}")
        if not np.all(np.isfinite(target_arr)):
            raise ValueError(f"target return must be finite, got {target_arr.tolist()}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.target = target_arr
        self.batch_size = int(batch_size)
        self.scale = np.asarray(scale, dtype=np.float64)  # one number, or one per agent [n] like the target
        if (self.scale.ndim > target_arr.ndim
                or np.broadcast_shapes(self.scale.shape, target_arr.shape) != target_arr.shape):
            raise ValueError(f"scale of shape {list(self.scale.shape)} does not match the target's "
                             f"{list(target_arr.shape)}")
        self._remaining = np.broadcast_to(target_arr, (self.batch_size,) + target_arr.shape).copy()  # [B] | [B, n]

    @property
    def current(self) -> np.ndarray:
        """Scaled return-to-go to condition the next action on: ``[B]`` or ``[B, n]`` float32."""
        return (self._remaining * self.scale).astype(np.float32)

    def update(self, reward: np.ndarray) -> None:
        """``R <- R - r`` with the (unscaled) rewards ``[B]`` / ``[B, n]`` of the step just taken."""
        reward = np.asarray(reward)
        if reward.shape != self._remaining.shape:
            raise ValueError(f"reward must have shape {list(self._remaining.shape)}, got {list(reward.shape)}")
        self._remaining -= reward.astype(np.float64)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Set the rows in ``mask [B]`` (all rows when None) back to the target."""
        if mask is None:
            self._remaining[...] = self.target
            return
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.batch_size,):
            raise ValueError(f"mask must have shape [{self.batch_size}], got {list(mask.shape)}")
        self._remaining[mask] = self.target


def discounted_returns(rewards: np.ndarray, episode_starts: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted returns-to-go of every step, per column: ``[T]`` or ``[T, n]`` float32,

        out[t] = sum_{t' = t}^{end(t) - 1} gamma^(t' - t) rewards[t']

    within each episode (``gamma = 1`` gives :func:`returns_to_go` with scale 1). SIT's Monte-Carlo return of
    the decomposed rewards (Tian et al., "Decomposed Prioritized Experience Replay", Eq. 6) is this with
    ``gamma`` its discount. Computed in float64 by the backward recursion ``g_t = r_t + gamma g_{t+1}``, one
    vectorized step per position of the longest episode (episodes padded to it; no loop over episodes).
    """
    rewards = np.asarray(rewards)
    if rewards.ndim not in (1, 2):
        raise ValueError(f"rewards must be [T] or [T, n], got shape {list(rewards.shape)}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    n_steps = rewards.shape[0]
    starts = _check_episode_starts(episode_starts, n_steps)
    lengths = np.diff(np.append(starts, n_steps))  # [E]
    episode = np.repeat(np.arange(starts.size), lengths)  # [T]
    position = np.arange(n_steps) - np.repeat(starts, lengths)  # [T]
    padded = np.zeros((starts.size, int(lengths.max(initial=0)) + 1) + rewards.shape[1:], dtype=np.float64)
    padded[episode, position] = rewards  # [E, L + 1, (n)]; the column after each episode's end stays 0
    for t in range(padded.shape[1] - 2, -1, -1):
        padded[:, t] += gamma * padded[:, t + 1]
    return padded[episode, position].astype(np.float32)
