"""Equal Space (Tseng et al., NeurIPS 2022): agents spread out to equal, maximal distances.

Paper: Tseng et al. App. C ("Equal Space": 3 agents adapted from the multi-agent particle
envs, observation = relative positions of the other agents, continuous action ``[δx, δy]``) and App. E /
§4.2 (the best policy moves the agents to the corners and forms an
equilateral triangle). Table 12: the expert dataset's per-agent return is -2.25 ± 0.12.

Dynamics (``B`` sub-envs, ``n`` agents, arena ``[-h, h]²`` with ``h = half_width``)::

    p ← clip(p + max_step · clip(a, -1, 1), -h, h)          # a [B, n, 2]; agents are points, no collisions

Initial positions are uniform in the arena; an episode lasts ``episode_limit`` (25) steps and ends by
truncation (there is no terminal state). Everything is float32 numpy over ``[B, ...]`` arrays.

Observation of agent i (``obs_dim = 2n``): its own position followed by the relative positions of the
others in agent order, ``o_i = [p_i, p_j − p_i for j ≠ i]``. State (``state_dim = 2n + 1``): all positions
then the elapsed fraction of the episode ``t / episode_limit`` (0 on the first step of an episode) --
what the scripted expert reads.

Reward (one team reward, broadcast to every agent). Let ``ν_i`` be the distances from agent i to its
``k = min(2, n − 1)`` nearest other agents, ``m`` and ``s`` the mean and (population) standard deviation
of all ``n·k`` of them, and ``D*`` the side of the largest regular n-gon that fits in the arena
(:func:`largest_regular_polygon`; for n = 3 the largest inscribed equilateral triangle,
``D* = 2h / cos 15°``). Then::

    r_t = − reward_scale · ( s / D*  +  max(0, 1 − m / D*) )

* For n = 3 every agent's two neighbours are the two others, so ``s`` is the spread of the three pairwise
  distances: ``s = 0`` iff the triangle is equilateral.
* ``r_t ≤ 0``, and ``r_t = 0`` iff the neighbour distances are all equal and at least ``D*``; for n = 3
  that is exactly the largest equilateral triangle (no equilateral triangle of side > D* fits), which
  the paper's best policy forms with one agent in a corner.
* Collapsing onto one point gives ``s = 0, m = 0``, hence ``r_t = −reward_scale`` (its whole
  episode scores −25 · reward_scale, far below the expert).
* For n ≥ 4 the largest regular n-gon (e.g. the four corners for n = 4) reaches ``r_t = 0``; other
  formations with equal neighbour distances ≥ D* may reach it too (all optimal).

Calibration: with the defaults (``reward_scale = 0.75``, ``max_step = 0.1``, h = 1) the scripted expert
(:class:`offmarl.policies.scripted.equal_space.EqualSpaceExpert`) returns −2.16 ± 1.03 per agent over
2000 episodes (Table 12: −2.25 ± 0.12), a uniform-random policy −12.0 ± 2.6 and walking everyone to
the centre −17.9 ± 0.4. Our spread is larger than the paper's because episodes start from uniformly
random positions, so the cost of reaching the formation varies.

Departures: the paper publishes neither its reward formula, its arena, its step size nor its horizon;
this reward follows its description (equal distances, a triangle towards the corners) and its expert's
return scale, and the horizon is the particle envs' usual 25 steps.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from offmarl.envs.base import BatchedEnv, EnvSpec, TimeStep
from offmarl.envs.rendering import GREY, LIGHT_GREY, Canvas, agent_color

# The 8 symmetries of the square (rotations by k·90° and the 4 reflections), as 2x2 matrices.
_SQUARE_SYMMETRIES = np.array(
    [[[1, 0], [0, 1]], [[0, -1], [1, 0]], [[-1, 0], [0, -1]], [[0, 1], [-1, 0]],
     [[1, 0], [0, -1]], [[-1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1], [-1, 0]]],
    dtype=np.float64,
)


def largest_regular_polygon(n: int, half_width: float) -> tuple[float, np.ndarray]:
    """The largest regular n-gon that fits in the square ``[-h, h]²`` (``h = half_width``).

    Returns ``(side, formations)``: the distance between neighbouring vertices ``D*`` (for n = 2 the
    diagonal ``2√2 h``; for n = 3 ``2h / cos 15°``) and every distinct placement of that polygon obtained
    by the square's 8 symmetries, ``formations [K, n, 2]``, each with its vertices in counter-clockwise
    order around the polygon's centre (K = 4 for n = 3: one triangle per corner; K = 1 for n = 4).

    A unit-circumradius n-gon at rotation θ has bounding box ``w_x(θ) × w_y(θ)``; it fits with radius
    ``R(θ) = 2h / max(w_x, w_y)``. θ is searched over one symmetry period ``[0, 2π/n)`` on a coarse grid
    and then a fine grid around the best coarse value (error in D* below 1e-9·h).
    """
    if n < 2:
        raise ValueError(f"equal_space: n_agents must be >= 2, got {n}")

    def radius(theta: np.ndarray) -> np.ndarray:
        angles = theta[:, None] + 2 * np.pi * np.arange(n) / n  # [G, n]
        cos, sin = np.cos(angles), np.sin(angles)
        extent = np.maximum(cos.max(1) - cos.min(1), sin.max(1) - sin.min(1))
        return 2 * half_width / extent

    period = 2 * np.pi / n
    coarse = np.linspace(0.0, period, 4001)
    best = coarse[np.argmax(radius(coarse))]
    fine = np.linspace(best - period / 4000, best + period / 4000, 4001)
    theta = fine[np.argmax(radius(fine))]
    r = float(radius(np.array([theta]))[0])
    angles = theta + 2 * np.pi * np.arange(n) / n
    vertices = r * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # [n, 2]
    vertices -= (vertices.max(0) + vertices.min(0)) / 2  # centre the bounding box in the arena
    side = 2 * r * np.sin(np.pi / n)

    formations: list[np.ndarray] = []
    seen: set[tuple] = set()
    for sym in _SQUARE_SYMMETRIES:
        placed = vertices @ sym.T
        key = tuple(sorted(map(tuple, np.round(placed, 6))))
        if key in seen:
            continue
        seen.add(key)
        centre = placed.mean(0)
        order = np.argsort(np.arctan2(placed[:, 1] - centre[1], placed[:, 0] - centre[0]))
        formations.append(placed[order])
    return side, np.stack(formations).astype(np.float32)


def neighbour_count(n: int) -> int:
    """``k``: how many nearest others each agent's distances are measured to."""
    return min(2, n - 1)


def equal_space_reward(positions: np.ndarray, side: float, reward_scale: float) -> np.ndarray:
    """Team reward of positions ``[..., n, 2]`` -> ``[...]`` (formula in the module docstring)."""
    n = positions.shape[-2]
    rel_others = positions[..., _others_index(n), :] - positions[..., :, None, :]  # [..., n, n-1, 2]
    to_others = np.sqrt(rel_others[..., 0] ** 2 + rel_others[..., 1] ** 2)
    return _reward_from_distances(to_others, side, reward_scale)


def _others_index(n: int) -> np.ndarray:
    """``[n, n-1]``: row i lists every j ≠ i in increasing order."""
    return np.array([[j for j in range(n) if j != i] for i in range(n)], dtype=np.int64)


def _observation_index(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column indices building ``obs`` from padded flat positions ``[x0, y0, ..., x_{n-1}, y_{n-1}, 0]``.

    ``obs_flat = padded[:, plus] − padded[:, minus]`` where agent i's block is ``[x_i − 0, y_i − 0]``
    followed by ``[x_j − x_i, y_j − y_i]`` for each j ≠ i; ``rel_x`` lists the columns of the relative
    x-coordinates (the y-coordinate follows each).
    """
    zero = 2 * n
    plus, minus, rel_x = [], [], []
    for i, others in enumerate(_others_index(n)):
        plus += [2 * i, 2 * i + 1]
        minus += [zero, zero]
        for j in others:
            rel_x.append(len(plus))
            plus += [2 * j, 2 * j + 1]
            minus += [2 * i, 2 * i + 1]
    return np.array(plus), np.array(minus), np.array(rel_x)


def _reward_from_distances(to_others: np.ndarray, side: float, reward_scale: float) -> np.ndarray:
    """``to_others [..., n, n-1]`` (distance from i to each other agent) -> team reward ``[...]``."""
    n = to_others.shape[-2]
    k = neighbour_count(n)
    nearest = to_others if k == n - 1 else np.partition(to_others, k - 1, axis=-1)[..., :k]  # [..., n, k]
    flat = nearest.reshape(nearest.shape[:-2] + (n * k,))
    # mean and population std as products with a weight vector (much faster than .mean/.std on short rows)
    weights = np.full(n * k, 1.0 / (n * k), dtype=flat.dtype)
    mean = flat @ weights
    deviation = flat - mean[..., None]
    spread = np.sqrt((deviation * deviation) @ weights)
    penalty = spread / side + np.maximum(0.0, 1.0 - mean / side)
    return (-reward_scale * penalty).astype(np.float32)


def equal_space_spec(n_agents: int = 3, half_width: float = 1.0, max_step: float = 0.1, episode_limit: int = 25,
                     reward_scale: float = 0.75) -> EnvSpec:
    """The spec of ``EqualSpaceEnv(**kwargs)``, its arguments checked, without building the env (the registry's
    ``env_spec``)."""
    if n_agents < 2:
        raise ValueError(f"equal_space: n_agents must be >= 2, got {n_agents}")
    for key, value in (("half_width", half_width), ("max_step", max_step), ("reward_scale", reward_scale)):
        if not value > 0:
            raise ValueError(f"equal_space: {key} must be > 0, got {value}")
    if episode_limit < 1:
        raise ValueError(f"equal_space: episode_limit must be >= 1, got {episode_limit}")
    n = int(n_agents)
    return EnvSpec(
        name="equal_space",
        n_agents=n,
        obs_dim=2 * n,
        obs_dims=(2 * n,) * n,
        state_dim=2 * n + 1,
        action_space=spaces.Box(low=-1.0, high=1.0, shape=(2,), dtype=np.float32),
        episode_limit=int(episode_limit),
        agent_types=("agent",) * n,
        kwargs={"n_agents": n, "half_width": float(half_width), "max_step": float(max_step),
                "episode_limit": int(episode_limit), "reward_scale": float(reward_scale)},
    )


class EqualSpaceEnv(BatchedEnv):
    """``num_envs`` Equal Space arenas stepped together (module docstring: dynamics, observation, reward).

    Keyword arguments (stored in ``spec.kwargs``):
        n_agents: number of agents n (default 3, the paper's).
        half_width: the arena is ``[-half_width, half_width]²`` (default 1.0).
        max_step: displacement per unit of action along each axis (default 0.1); actions are clipped to
            ``[-1, 1]`` per component, so an agent moves at most ``max_step`` along x and along y.
        episode_limit: steps per episode (default 25, the paper's).
        reward_scale: multiplies the formation penalty (default 0.75, calibrated to Table 12's scale).
    """

    restorable = True
    state_attributes = ("_rng", "_pos", "_t")

    def __init__(self, num_envs: int = 1, seed: int | None = None, n_agents: int = 3, half_width: float = 1.0,
                 max_step: float = 0.1, episode_limit: int = 25, reward_scale: float = 0.75):
        self.spec = equal_space_spec(n_agents, half_width, max_step, episode_limit, reward_scale)
        n = self.spec.n_agents
        self.num_envs = int(num_envs)
        self.n_agents = n
        self.half_width = self.spec.kwargs["half_width"]
        self.max_step = self.spec.kwargs["max_step"]
        self.episode_limit = self.spec.episode_limit
        self.reward_scale = self.spec.kwargs["reward_scale"]
        self.side, self.formations = largest_regular_polygon(n, self.half_width)
        self._obs_plus, self._obs_minus, self._rel_x = _observation_index(n)
        self._rng = np.random.default_rng(seed)
        self._pos = np.zeros((self.num_envs, n, 2), dtype=np.float32)
        self._t = np.zeros(self.num_envs, dtype=np.int64)

    # ---- contract --------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> TimeStep:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._pos = self._initial_positions(self.num_envs)
        self._t[:] = 0
        obs, dist = self._observe(self._pos)
        B, n = self.num_envs, self.n_agents
        return TimeStep(obs=obs, state=self._state(), reward=np.zeros((B, n), np.float32),
                        terminated=np.zeros(B, bool), truncated=np.zeros(B, bool))

    def step(self, actions: np.ndarray) -> TimeStep:
        actions = self.check_actions(actions)  # [B, n, 2]
        h = self.half_width
        self._pos = np.clip(self._pos + self.max_step * np.clip(actions, -1.0, 1.0), -h, h).astype(np.float32)
        self._t += 1
        obs, to_others = self._observe(self._pos)
        reward = _reward_from_distances(to_others, self.side, self.reward_scale)  # [B]
        truncated = self._t >= self.episode_limit
        terminated = np.zeros(self.num_envs, dtype=bool)
        final_obs = final_state = None
        state = self._state()
        if truncated.any():
            final_obs, final_state = obs.copy(), state.copy()
            self._pos[truncated] = self._initial_positions(int(truncated.sum()))
            self._t[truncated] = 0
            obs, _ = self._observe(self._pos)
            state = self._state()
        return TimeStep(obs=obs, state=state, reward=np.repeat(reward[:, None], self.n_agents, axis=1),
                        terminated=terminated, truncated=truncated, final_obs=final_obs, final_state=final_state)

    def render(self, index: int = 0) -> np.ndarray:
        return self.render_state(self._state()[index])

    def render_state(self, state: np.ndarray, width_px: int = 256) -> np.ndarray:
        """Frame of a state vector ``[state_dim]``: the arena, the links between agents and the agents
        (agent i drawn in ``agent_color(i)``)."""
        h, n = self.half_width, self.n_agents
        margin = 0.06 * h
        canvas = Canvas(width_px, (-h - margin, -h - margin, h + margin, h + margin))
        canvas.rect((-h, -h), (h, h), LIGHT_GREY)
        canvas.frame((-h, -h), (h, h), GREY, width_px=2)
        pos = np.asarray(state[: 2 * n], dtype=np.float64).reshape(n, 2)
        for i in range(n):
            for j in range(i + 1, n):
                canvas.line(pos[i], pos[j], GREY, width_px=1.5)
        for i in range(n):
            canvas.circle(pos[i], 0.05 * h, agent_color(i))
        return canvas.to_array()

    # ---- internals -------------------------------------------------------------------------------
    def _initial_positions(self, count: int) -> np.ndarray:
        h = self.half_width
        return self._rng.uniform(-h, h, size=(count, self.n_agents, 2)).astype(np.float32)

    def _observe(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``obs [B, n, 2n]`` and the distances to the others ``[B, n, n-1]`` of positions ``[B, n, 2]``.

        The observations are built with one gather-and-subtract over flat columns (``_obs_plus`` minus
        ``_obs_minus``, see ``_observation_index``): fancy indexing along a short axis of a 3-D array and
        reductions over a length-2 axis are several times slower in numpy.
        """
        B, n = pos.shape[0], self.n_agents
        padded = np.zeros((B, 2 * n + 1), dtype=np.float32)  # [x0, y0, x1, y1, ..., 0]
        padded[:, : 2 * n] = pos.reshape(B, 2 * n)
        obs = padded[:, self._obs_plus] - padded[:, self._obs_minus]  # [B, n·2n]
        dx, dy = obs[:, self._rel_x], obs[:, self._rel_x + 1]  # [B, n(n-1)]
        to_others = np.sqrt(dx * dx + dy * dy).reshape(B, n, n - 1)
        return obs.reshape(B, n, 2 * n), to_others

    def _state(self) -> np.ndarray:
        B = self.num_envs
        elapsed = (self._t / self.episode_limit).astype(np.float32)[:, None]
        return np.concatenate([self._pos.reshape(B, -1), elapsed], axis=1)
