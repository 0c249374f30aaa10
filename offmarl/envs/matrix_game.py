"""The two-agent matrix game of MABCQ (Jiang & Lu), as a two-step MDP.

Paper: Jiang & Lu, *Offline Decentralized MARL*, §3.1, Table 1 (payoff ``[[1, 5], [6, 1]]``, behaviour policies
``[0.8, 0.2]`` for agent 1 and ``[0.4, 0.6]`` for agent 2; the optimum is the joint action ``(a_2, a_1)``
in the paper's 1-based action names, i.e. action indices ``(1, 0)``, payoff 6) and App. B. The paper's
agents get a shared reward ``r = R(s)`` that depends on the state only, and learn values of the *next*
state ``s'`` that the joint action leads to. So that deep value learners see that next state, one game
is an episode of two steps (below, a₁ and a₂ are agent 1's row index and agent 2's column index)::

    step 1: s₀ --(a₁, a₂)--> s′ = (a₁, a₂),  reward 0
    step 2: s′ --(any actions)--> end,       reward R(s′) = payoff[a₁][a₂] to both agents, terminated

Episodes never truncate (``episode_limit = 2``). Departure: the paper's game is one-shot (one
transition s → s′ with r = R(s′)); the extra step only delivers R(s′) as the reward *of* s′, so the
(undiscounted) return of a joint action is exactly its payoff. The payoff matrix may have any size
``m × k`` (agent 1 picks the row, agent 2 the column); entries must be ≥ 0 because MABCQ's value deviation
``1 + (V(s′) − E V) / |E V|`` assumes positive values.

Observation = state (both agents see the full state, as in the paper): a one-hot vector over every
``(step, a₁, a₂)`` the game can be in, ``obs_dim = state_dim = 1 + 2·m·k``::

    index 0                     s₀ (step 0)
    index 1 + a₁·k + a₂         s′ = (a₁, a₂) (step 1)
    index 1 + m·k + a₁·k + a₂   the end state after s′ = (a₁, a₂) (step 2; only in ``final_obs``)

Actions: one ``Discrete(max(m, k))`` space shared by both agents; ``avail_actions`` marks agent 1's
first m and agent 2's first k actions (all actions when the matrix is square). An unavailable action
raises ``ValueError``. The second step's actions are ignored but must still be available ones.

The behaviour distributions are env keyword arguments (stored in ``spec.kwargs``) so that
:class:`offmarl.policies.scripted.matrix_game.MatrixGameBehavior` and dataset cards carry them; the
dynamics do not use them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from offmarl.envs.base import BatchedEnv, EnvSpec, TimeStep
from offmarl.envs.rendering import BLACK, GREY, LIGHT_GREY, Canvas

DEFAULT_PAYOFF = [[1.0, 5.0], [6.0, 1.0]]
DEFAULT_BEHAVIOR = [[0.8, 0.2], [0.4, 0.6]]


def validate_payoff(payoff: Any) -> np.ndarray:
    """``payoff`` as a float64 ``[m, k]`` array; ``ValueError`` naming the problem otherwise."""
    try:
        matrix = np.asarray(payoff, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"matrix_game: payoff must be a matrix of numbers (list of equal-length lists), "
                         f"got {payoff!r}") from exc
    if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] < 1:
        raise ValueError(f"matrix_game: payoff must be a 2-D matrix (rows: agent 1's actions, columns: agent 2's), "
                         f"got shape {list(matrix.shape)}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"matrix_game: payoff entries must be finite, got {matrix.tolist()}")
    if (matrix < 0).any():
        row, col = (int(v) for v in np.argwhere(matrix < 0)[0])
        raise ValueError(f"matrix_game: payoff entries must be >= 0 (MABCQ's value deviation assumes positive "
                         f"values), got payoff[{row}][{col}] = {matrix[row, col]:g}")
    return matrix


def validate_behavior(behavior: Any, shape: tuple[int, int]) -> list[np.ndarray]:
    """Per-agent action distributions matching payoff ``shape = (m, k)``; ``ValueError`` otherwise."""
    if isinstance(behavior, (str, bytes)) or not hasattr(behavior, "__len__") or len(behavior) != 2:
        raise ValueError(f"matrix_game: behavior must be two action distributions [agent 1's, agent 2's], "
                         f"got {behavior!r}")
    dists = []
    for agent, (dist, size) in enumerate(zip(behavior, shape)):
        try:
            p = np.asarray(dist, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"matrix_game: behavior[{agent}] must be a list of probabilities, got {dist!r}") from exc
        if p.shape != (size,):
            raise ValueError(f"matrix_game: behavior[{agent}] must have {size} probabilities (agent {agent + 1} has "
                             f"{size} actions in the payoff matrix), got {np.asarray(dist).tolist()}")
        if (p < 0).any() or not np.isfinite(p).all():
            raise ValueError(f"matrix_game: behavior[{agent}] must hold probabilities >= 0, got {p.tolist()}")
        if abs(p.sum() - 1.0) > 1e-6:
            raise ValueError(f"matrix_game: behavior[{agent}] must sum to 1, got {p.tolist()} (sum {p.sum():g})")
        dists.append(p)
    return dists


def matrix_game_spec(payoff: Any = None, behavior: Any = None) -> EnvSpec:
    """The spec of ``MatrixGameEnv(**kwargs)``, its arguments checked, without building the env (the registry's
    ``env_spec``)."""
    matrix = validate_payoff(DEFAULT_PAYOFF if payoff is None else payoff)
    m, k = matrix.shape
    if behavior is None:
        behavior = DEFAULT_BEHAVIOR if (m, k) == (2, 2) else [[1.0 / m] * m, [1.0 / k] * k]
    dists = validate_behavior(behavior, (m, k))
    n_states = 1 + 2 * m * k
    return EnvSpec(
        name="matrix_game",
        n_agents=2,
        obs_dim=n_states,
        obs_dims=(n_states, n_states),
        state_dim=n_states,
        action_space=spaces.Discrete(max(m, k)),
        episode_limit=2,
        agent_types=("agent", "agent"),
        has_avail_actions=True,
        kwargs={"payoff": matrix.tolist(), "behavior": [p.tolist() for p in dists]},
    )


class MatrixGameEnv(BatchedEnv):
    """``num_envs`` copies of the two-step matrix game (module docstring).

    The game is deterministic: ``seed`` is accepted for the common factory signature and unused.

    Keyword arguments (stored in ``spec.kwargs``):
        payoff: ``m × k`` matrix of shared payoffs ≥ 0 (default MABCQ Table 1, ``[[1, 5], [6, 1]]``).
        behavior: ``[p₁, p₂]``, agent 1's distribution over its m actions and agent 2's over its k
            (default: Table 1's ``[[0.8, 0.2], [0.4, 0.6]]`` for a 2 × 2 payoff, uniform otherwise).
    """

    restorable = True
    state_attributes = ("_t", "_joint")

    def __init__(self, num_envs: int = 1, seed: int | None = None, payoff: Any = None, behavior: Any = None):
        self.spec = matrix_game_spec(payoff, behavior)
        self.payoff = np.asarray(self.spec.kwargs["payoff"], dtype=np.float64)
        self.behavior = [np.asarray(p, dtype=np.float64) for p in self.spec.kwargs["behavior"]]
        m, k = self.payoff.shape
        self.num_envs = int(num_envs)
        self.rows, self.cols = m, k
        avail = np.zeros((2, max(m, k)), dtype=bool)
        avail[0, :m] = True
        avail[1, :k] = True
        self._avail = avail  # [n, A]
        self._payoff32 = self.payoff.astype(np.float32)
        self._t = np.zeros(self.num_envs, dtype=np.int64)
        self._joint = np.zeros(self.num_envs, dtype=np.int64)  # a₁·k + a₂ of step 1

    # ---- contract --------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> TimeStep:
        B = self.num_envs
        self._t[:] = 0
        self._joint[:] = 0
        state = self._state()
        return TimeStep(obs=self._obs(state), state=state, reward=np.zeros((B, 2), np.float32),
                        terminated=np.zeros(B, bool), truncated=np.zeros(B, bool), avail_actions=self._avail_batch())

    def step(self, actions: np.ndarray) -> TimeStep:
        actions = self.check_actions(actions)  # [B, 2]
        if not self._avail[np.arange(2), actions].all():
            bad = np.argwhere(~self._avail[np.arange(2), actions])[0]
            raise ValueError(f"matrix_game: action {int(actions[bad[0], bad[1]])} of agent {bad[1]} "
                             f"(sub-env {bad[0]}) is not "
                             f"available: agent 0 has {self.rows} actions, agent 1 has {self.cols}")
        first = self._t == 0
        self._joint = np.where(first, actions[:, 0] * self.cols + actions[:, 1], self._joint)
        reward = np.where(first, 0.0, self._payoff32.reshape(-1)[self._joint]).astype(np.float32)  # [B]
        self._t += 1
        terminated = self._t >= 2
        state = self._state()
        final_obs = final_state = None
        if terminated.any():
            final_state = state.copy()
            final_obs = self._obs(final_state)
            self._t[terminated] = 0
            self._joint[terminated] = 0
            state = self._state()
        return TimeStep(obs=self._obs(state), state=state, reward=np.repeat(reward[:, None], 2, axis=1),
                        terminated=terminated, truncated=np.zeros(self.num_envs, bool),
                        avail_actions=self._avail_batch(), final_obs=final_obs, final_state=final_state)

    def render(self, index: int = 0) -> np.ndarray:
        return self.render_state(self._state()[index])

    def render_state(self, state: np.ndarray, width_px: int = 256) -> np.ndarray:
        """Frame of a state vector: the payoff grid (darker blue = larger payoff; rows = agent 1), three
        step markers on top (filled = current step), the chosen cell outlined at step 1 and filled
        orange at step 2 (payoff paid)."""
        m, k = self.rows, self.cols
        index = int(np.argmax(state))
        step = 0 if index == 0 else (1 if index <= m * k else 2)
        joint = (index - 1) % (m * k) if step else None
        canvas = Canvas(width_px, (-0.2, -0.2, k + 0.2, m + 1.0))
        top = float(self.payoff.max()) or 1.0
        for a1 in range(m):
            for a2 in range(k):
                level = self.payoff[a1, a2] / top  # 0 -> white, 1 -> dark blue
                color = tuple(int(round(255 - level * (255 - c))) for c in (40, 90, 180))
                lo, hi = (a2, m - 1 - a1), (a2 + 1, m - a1)
                canvas.rect(lo, hi, color)
                canvas.frame(lo, hi, GREY, width_px=1)
        if joint is not None:
            a1, a2 = divmod(joint, k)
            lo, hi = (a2 + 0.08, m - 1 - a1 + 0.08), (a2 + 0.92, m - a1 - 0.08)
            if step == 2:
                canvas.rect(lo, hi, (230, 159, 0))
            canvas.frame(lo, hi, (213, 94, 0), width_px=4)
        for s in range(3):
            centre = (k / 2 + (s - 1) * 0.35, m + 0.5)
            canvas.circle(centre, 0.13, BLACK if s == step else LIGHT_GREY)
        return canvas.to_array()

    # ---- internals -------------------------------------------------------------------------------
    def _state(self) -> np.ndarray:
        """One-hot ``[B, 1 + 2mk]`` of (step, a₁, a₂) (layout in the module docstring)."""
        B, mk = self.num_envs, self.rows * self.cols
        index = np.where(self._t == 0, 0, 1 + (self._t - 1) * mk + self._joint)
        state = np.zeros((B, 1 + 2 * mk), dtype=np.float32)
        state[np.arange(B), index] = 1.0
        return state

    def _obs(self, state: np.ndarray) -> np.ndarray:
        return np.repeat(state[:, None, :], 2, axis=1)

    def _avail_batch(self) -> np.ndarray:
        return np.broadcast_to(self._avail, (self.num_envs,) + self._avail.shape).copy()
