"""SIT's partially observable MPE maps on mpe2's particle physics: CN_3ls3l, CN_4ls4l and PP_3p1p.

Reference: SIT (Tian et al., *Learning from Good Trajectories in Offline MARL*, AAAI 2023), App. C.1
(Table 3: what each agent sees) and C.2 (Table 5: return ranges of the random/medium/expert pools).
Physics: :mod:`offmarl.envs._particles`, a vectorized copy of mpe2 1.1.1's ``World.step`` (order of
updates and constants); ``tests/test_mpe_physics_vs_mpe2.py`` checks it against mpe2 step by step.

All three envs: ``B`` sub-envs, 5 discrete actions per agent (0 no-op, 1 left, 2 right, 3 down, 4 up,
mpe2's mapping; all always available, ``avail_actions`` is all True), 25 steps, never terminated (mpe2's
``terminate_on_success=False``), truncated at ``episode_limit`` and auto-reset (``offmarl.envs.base``).
Initial positions are drawn as mpe2's ``reset_world`` draws them (uniform, velocities 0) from the env's
own generator, so the same seed gives the same episodes; they are not mpe2's random streams.

**Cooperative navigation** (``mpe_cn_3ls3l``, ``mpe_cn_4ls4l``; mpe2 ``simple_spread``): ``N`` seekers
(size 0.15, accel 5, no speed limit, colliding with each other) and ``N`` landmarks (non-colliding),
all spawned uniformly in ``[-1, 1]^2``. Reward, computed on the positions after the step, as
mpe2's ``SimpleEnv`` mixes it::

    r_i = (1 - local_ratio) * g + local_ratio * c_i
    g   = - sum_l min_i |p_i - q_l|                    (simple_spread.global_reward)
    c_i = - #{j != i : |p_i - p_j| < 0.3}              (simple_spread.reward: -1 per colliding seeker)

With the default ``local_ratio = 0`` (SIT's "global reward game") the reward is the global team reward ``g``,
broadcast to every seeker, and the collision penalty has weight 0 -- as in mpe2 with ``local_ratio=0``
(collisions still push seekers apart physically). Observation of seeker ``i`` (``obs_dim`` 10 for
the Table 3 defaults, ``4 + 2 * (visible_landmarks + visible_seekers)`` in general)::

    [ v_i (2), p_i (2), q_(1) - p_i (2), q_(2) - p_i (2), p_(1) - p_i (2) ]

where ``q_(k)`` is the k-th nearest landmark and ``p_(1)`` the nearest other seeker (Table 3: "1
landmark seeker, 2 landmarks"). This is mpe2's ``simple_spread`` observation with
``num_landmark_neighbors=2, num_agent_neighbors=1`` (nearest first) without its trailing
communication slots (zeros: the seekers are silent).

**Predator-prey** (``mpe_pp_3p1p``; mpe2 ``simple_tag``): 3 controlled predators (size 0.075, accel 3,
max speed 1.0), 1 prey (size 0.05, accel 4, max speed 1.3) and ``num_obstacles`` (default 2)
obstacles (size 0.2, colliding, immovable); predators and prey spawn in ``[-1, 1]^2``, obstacles in
``[-0.9, 0.9]^2``, as simple_tag's ``reset_world``. Entities are ordered predators, prey, obstacles.

* The prey is a heuristic (SIT App. C.1: "movement direction is always away from the nearest
  predator"). It acts on the state before the step, as mpe2's scripted agents do: with ``u`` the unit
  vector from the nearest predator to the prey, it takes the axis action (left/right/down/up, never
  no-op) whose direction has the largest dot product with ``u`` -- the discrete action that moves it
  most directly away. mpe2 has no walls (simple_tag only penalises a learning prey for leaving
  ``[-1, 1]^2``), so a prey that only flees would leave the arena at its higher speed; our prey
  therefore never pushes outward along an axis where its coasting rest point
  ``p + v * dt / damping`` is already at or beyond ``PREY_ARENA = 1.0`` and slides along the
  boundary instead. Ties go to the lower action index.
* Team reward (our shaping; SIT does not give its formula), broadcast to the three predators::

      r = - reward_scale * sum_i |p_i - p_prey|        (after the step; reward_scale = 1 by default)

  so every return is negative, as in SIT Table 5, and a team that closes in on the prey from all
  sides scores best. ``info["prey_caught"] [B]`` says whether a predator touches the prey
  (``|p_i - p_prey| < 0.125``, simple_tag's ``is_collision``) after the step.
* Observation of predator ``i`` (Table 3: "1 predator, 1 prey"; ``obs_dim`` 10)::

      [ v_i (2), p_i (2), p_(1) - p_i (2), p_prey - p_i (2), v_prey (2) ]

  with ``p_(1)`` the nearest other predator. The prey's velocity is included as simple_tag includes
  the good agents' velocities. Obstacles are not observed (Table 3 lists none) but are in the state.

**State** (float32, what the scripted experts read): ``[positions of all agents (2A), velocities of
all agents (2A), landmark/obstacle positions (2L)]`` with agents in entity order (for PP the prey is
the last agent): ``state_dim`` 18 (CN_3ls3l), 24 (CN_4ls4l), 20 (PP_3p1p). :func:`unpack_state`
splits it.

Test hook: ``env.set_physical_state(positions, velocities, steps)`` puts every sub-env in a given physical
state (``[B, E, 2]``, mpe2's entity order); ``env.positions`` / ``env.velocities`` read it back. The
physics runs in float64 (as mpe2); observations, rewards and the state are computed from float32
copies of the positions (1.5x faster; they agree with mpe2's float64 values to ~1e-6).

Departures: SIT's returns (Table 5) are on their own scale, apparently summed over agents: our mean
per-agent returns times ``n`` fall in SIT's random pool for uniform actions (CN_3ls3l: -52 x 3 = -157)
and in its expert pool for the CN scripted expert (-14 x 3 = -41); see
``offmarl.policies.scripted.mpe``. The PP reward, the prey's rule and its arena boundary, and
leaving obstacles out of the observations are our choices (documented above); SIT states none of
them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from offmarl.envs._particles import ACTION_DIRECTIONS, DAMPING, DEFAULT_ACCEL, DT, N_ACTIONS, ParticleWorld
from offmarl.envs.base import BatchedEnv, EnvSpec, TimeStep

# simple_spread (mpe2): seeker size, collision distance is 2 * size.
SEEKER_SIZE = 0.15
LANDMARK_SIZE = 0.05  # mpe2's Entity default size (drawing only: simple_spread landmarks do not collide)
SEEKER_ACCEL = DEFAULT_ACCEL  # simple_spread agents have accel None -> sensitivity 5.0
# simple_tag (mpe2): adversaries are our predators, the good agent our prey.
PREDATOR_SIZE, PREDATOR_ACCEL, PREDATOR_MAX_SPEED = 0.075, 3.0, 1.0
PREY_SIZE, PREY_ACCEL, PREY_MAX_SPEED = 0.05, 4.0, 1.3
OBSTACLE_SIZE = 0.2
OBSTACLE_SPAWN = 0.9  # simple_tag draws landmark positions in [-0.9, 0.9]^2
PREY_ARENA = 1.0  # our prey's boundary (module docstring)


@dataclass(frozen=True)
class StateLayout:
    """Where things are in an MPE env's flat state: ``n_particles`` agents (incl. the prey), ``n_landmarks``."""

    n_particles: int
    n_landmarks: int

    @property
    def state_dim(self) -> int:
        return 4 * self.n_particles + 2 * self.n_landmarks


def state_layout(spec: EnvSpec) -> StateLayout:
    """The :class:`StateLayout` of an env built by this module, read from its spec."""
    if spec.agent_types and spec.agent_types[0] == "predator":
        n_particles = spec.n_agents + 1  # + the heuristic prey
    elif spec.agent_types and spec.agent_types[0] == "seeker":
        n_particles = spec.n_agents
    else:
        raise ValueError(f"env {spec.name!r} is not an MPE env of offmarl.envs.mpe (agent types {spec.agent_types})")
    n_landmarks, rest = divmod(spec.state_dim - 4 * n_particles, 2)
    if rest or n_landmarks < 0:
        raise ValueError(f"env {spec.name!r}: state_dim {spec.state_dim} does not fit {n_particles} particles")
    return StateLayout(n_particles, n_landmarks)


def unpack_state(state: np.ndarray, layout: StateLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``state [B, state_dim]`` -> agent positions ``[B, A, 2]``, agent velocities ``[B, A, 2]``,
    landmark positions ``[B, L, 2]`` (views of ``state``)."""
    A, L = layout.n_particles, layout.n_landmarks
    if state.shape[-1] != layout.state_dim:
        raise ValueError(f"MPE state has width {state.shape[-1]}, expected {layout.state_dim} "
                         f"({A} agents, {L} landmarks)")
    B = state.shape[0]
    pos = state[:, : 2 * A].reshape(B, A, 2)
    vel = state[:, 2 * A : 4 * A].reshape(B, A, 2)
    landmarks = state[:, 4 * A :].reshape(B, L, 2)
    return pos, vel, landmarks


def _write_nearest(out: np.ndarray, dx: np.ndarray, dy: np.ndarray, dist2: np.ndarray) -> None:
    """Relative positions of the ``k`` nearest of ``M <= 8`` candidates, nearest first, into
    ``out [n, 2k, B]`` as ``x1, y1, x2, y2, ...``; ``dx``/``dy``/``dist2`` are C-contiguous ``[n, M, B]``.
    Callers ensure ``k`` does not exceed the number of real (finite-distance) candidates.

    Sort key: the bit pattern of ``dist2`` (non-negative floats order like their bit patterns) with
    its 3 lowest mantissa bits replaced by the candidate index, so one integer ``min`` over the
    candidate axis yields the nearest candidate *and* its index; exact ties (and, for float32,
    differences below 2^-20 relative) go to the lower index, as with mpe2's ``np.argsort``. ``argmin``
    over a middle axis is ~20x slower in numpy."""
    n, M, B = dist2.shape
    k = out.shape[1] // 2
    uint = np.uint32 if dist2.dtype == np.float32 else np.uint64
    low, sign_bit = uint(7), uint(8 * dist2.itemsize - 1)
    key = (dist2.view(uint) & ~low) | np.arange(M, dtype=uint)[None, :, None]  # [n, M, B]
    base = np.arange(n)[:, None] * (M * B) + np.arange(B)[None, :]  # [n, B] flat index of candidate 0
    for slot in range(k):  # loop over observation slots (k <= 2), not over agents
        nearest = key.min(axis=1)  # [n, B]
        flat = base + (nearest & low).astype(np.int64) * B
        out[:, 2 * slot] = dx.ravel()[flat]
        out[:, 2 * slot + 1] = dy.ravel()[flat]
        if slot + 1 < k:  # move the taken candidate behind every other one (the sign bit is 0 in all keys)
            key |= (key == nearest[:, None]).astype(uint) << sign_bit


def _relative(a: np.ndarray, b: np.ndarray, exclude_self: bool = False):
    """``a [n, 2, B]``, ``b [m, 2, B]`` -> ``dx, dy`` of ``b_j - a_i`` and squared distances, each ``[n, m, B]``.

    ``exclude_self`` (``a is b``): the self-distance is infinite, so nobody is its own nearest neighbour."""
    dx = b[None, :, 0] - a[:, None, 0]
    dy = b[None, :, 1] - a[:, None, 1]
    dist2 = dx * dx + dy * dy
    if exclude_self:
        diag = np.arange(a.shape[0])
        dist2[diag, diag] = np.inf
    return dx, dy, dist2


class ParticleTaskEnv(BatchedEnv):
    """Shared machinery of the MPE tasks: state buffers, reset/auto-reset, the test hook, rendering.

    Subclasses set ``spec``, ``world`` (:class:`ParticleWorld`), ``_spawn_half_width [E]`` and
    ``_colors``, and implement :meth:`_observe` (observation, reward and info of the current state)
    and, when the world has scripted agents, :meth:`_world_actions`. Physical state lives in
    ``_pos``/``_vel [E, 2, B]`` float64 (``offmarl.envs._particles`` layout); :attr:`positions` and
    :attr:`velocities` give ``[B, E, 2]`` copies. Restorable (``offmarl.envs.base``): the saved state is the
    physical state, the step counters and the spawn generator (the world itself holds constants only).
    """

    restorable = True
    state_attributes = ("_rng", "_pos", "_vel", "t")

    world: ParticleWorld
    _spawn_half_width: np.ndarray  # [E]: entity e spawns uniformly in [-w_e, w_e]^2
    _colors: list[tuple[int, int, int]]

    def _init_buffers(self, num_envs: int, seed: int | None) -> None:
        if num_envs < 1:
            raise ValueError(f"{self.spec.name}: num_envs must be >= 1, got {num_envs}")
        self.num_envs = int(num_envs)
        self._rng = np.random.default_rng(seed)
        E = self.world.n_entities
        self._pos = np.zeros((E, 2, num_envs))
        self._vel = np.zeros((E, 2, num_envs))  # landmarks keep 0
        self.t = np.zeros(num_envs, dtype=np.int64)  # steps taken in the current episode
        avail = np.ones((num_envs, self.spec.n_agents, N_ACTIONS), dtype=bool)
        avail.flags.writeable = False  # shared by every TimeStep: all 5 actions are always available
        self._avail = avail
        # A valid state before the first reset (so step, set_physical_state and render work), drawn from a child
        # stream of the seed: the first reset() still gives the same episodes as reset(seed=seed).
        self._spawn(slice(None), np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0]))

    @property
    def positions(self) -> np.ndarray:
        """Positions of all entities ``[B, E, 2]`` (a copy; mpe2 entity order)."""
        return self._pos.transpose(2, 0, 1).copy()

    @property
    def velocities(self) -> np.ndarray:
        """Velocities of all entities ``[B, E, 2]`` (a copy)."""
        return self._vel.transpose(2, 0, 1).copy()

    # ---- subclass hooks ----------------------------------------------------------------------------
    def _world_actions(self, actions: np.ndarray) -> np.ndarray:
        """Actions of the controlled agents ``[B, n]`` -> actions of every world agent ``[B, A]``."""
        return actions

    def _observe(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Observation ``[B, n, obs_dim] f32``, reward ``[B, n] f32`` and info of the current state."""
        raise NotImplementedError

    # ---- contract ----------------------------------------------------------------------------------
    def _spawn(self, rows: np.ndarray | slice, rng: np.random.Generator | None = None) -> None:
        """New episodes (mpe2's uniform spawn, velocities 0) in sub-envs ``rows``."""
        count = self.num_envs if isinstance(rows, slice) else int(np.count_nonzero(rows))
        E = self.world.n_entities
        unit = (self._rng if rng is None else rng).uniform(-1.0, 1.0, size=(count, E, 2))
        fresh = unit * self._spawn_half_width[None, :, None]  # [count, E, 2]
        self._pos[:, :, rows] = fresh.transpose(1, 2, 0)
        self._vel[:, :, rows] = 0.0
        self.t[rows] = 0

    def _state(self) -> np.ndarray:
        A, B = self.world.n_agents, self.num_envs
        rows = np.concatenate([self._pos[:A].reshape(-1, B), self._vel[:A].reshape(-1, B),
                               self._pos[A:].reshape(-1, B)], axis=0)  # [state_dim, B]
        return np.ascontiguousarray(rows.T, dtype=np.float32)

    def _timestep(self) -> TimeStep:
        obs, _, _ = self._observe()
        B, n = self.num_envs, self.spec.n_agents
        return TimeStep(obs=obs, state=self._state(), reward=np.zeros((B, n), np.float32),
                        terminated=np.zeros(B, bool), truncated=np.zeros(B, bool), avail_actions=self._avail)

    def reset(self, seed: int | None = None) -> TimeStep:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._spawn(slice(None))
        return self._timestep()

    def step(self, actions: np.ndarray) -> TimeStep:
        actions = self.check_actions(actions)
        self.world.step(self._pos, self._vel, self._world_actions(actions))
        self.t += 1
        obs, reward, info = self._observe()
        state = self._state()
        truncated = self.t >= self.spec.episode_limit
        final_obs, final_state = obs, state  # rows of sub-envs that did not end: the same arrays as obs/state
        if truncated.any():
            self._spawn(truncated)
            obs, _, _ = self._observe()
            state = self._state()
        return TimeStep(obs=obs, state=state, reward=reward, terminated=np.zeros(self.num_envs, bool),
                        truncated=truncated, avail_actions=self._avail, final_obs=final_obs,
                        final_state=final_state, info=info)

    def set_physical_state(self, positions: np.ndarray, velocities: np.ndarray | None = None,
                           steps: np.ndarray | int | None = None) -> TimeStep:
        """Test hook: put every sub-env in a given physical state and return its TimeStep.

        ``positions [B, E, 2]`` / ``velocities [B, E, 2]`` (default 0) of all entities in mpe2's order
        (world agents, then landmarks; for PP: predators, prey, obstacles); ``steps`` sets the step
        counter (default 0). Landmark velocities are ignored (landmarks never move).
        """
        shape = (self.num_envs, self.world.n_entities, 2)
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != shape:
            raise ValueError(f"{self.spec.name}.set_physical_state: positions must have shape {list(shape)}, "
                             f"got {list(positions.shape)}")
        velocities = np.zeros(shape) if velocities is None else np.asarray(velocities, dtype=np.float64)
        if velocities.shape != shape:
            raise ValueError(f"{self.spec.name}.set_physical_state: velocities must have shape {list(shape)}, "
                             f"got {list(velocities.shape)}")
        self._pos[:] = positions.transpose(1, 2, 0)
        self._vel[:] = velocities.transpose(1, 2, 0)
        self._vel[self.world.n_agents:] = 0.0
        self.t[:] = 0 if steps is None else steps
        return self._timestep()

    # ---- rendering ---------------------------------------------------------------------------------
    def render(self, index: int = 0) -> np.ndarray:
        """RGB frame ``[256, 256, 3] uint8`` of sub-env ``index`` (world window ``[-1.6, 1.6]^2``; the
        grey square is ``[-1, 1]^2``, where everything spawns)."""
        if not 0 <= index < self.num_envs:
            raise ValueError(f"{self.spec.name}.render: index must be in [0, {self.num_envs}), got {index}")
        return self._draw(self._pos[:, :, index])

    def render_state(self, state: np.ndarray) -> np.ndarray:
        """RGB frame of a flat state vector ``[state_dim]`` (e.g. a ``TimeStep.final_state`` row)."""
        layout = StateLayout(self.world.n_agents, self.world.n_entities - self.world.n_agents)
        pos, _, landmarks = unpack_state(np.asarray(state, dtype=np.float64)[None], layout)
        return self._draw(np.concatenate([pos[0], landmarks[0]], axis=0))

    def _draw(self, pos: np.ndarray) -> np.ndarray:
        """Frame of one sub-env's entity positions ``[E, 2]``."""
        from offmarl.envs.rendering import BLACK, Canvas

        canvas = Canvas(256, (-1.6, -1.6, 1.6, 1.6))
        canvas.frame((-1.0, -1.0), (1.0, 1.0), (220, 220, 220), width_px=1.0)
        for e in range(self.world.n_entities):  # mpe2's drawing order: agents, then landmarks on top
            canvas.circle(pos[e], self.world.sizes[e], BLACK)
            canvas.circle(pos[e], max(self.world.sizes[e] - 0.015, 0.005), self._colors[e])
        return canvas.to_array()


def _to_batch_major(obs: np.ndarray) -> np.ndarray:
    """``[n, obs_dim, B]`` -> contiguous ``[B, n, obs_dim]`` float32."""
    return np.ascontiguousarray(obs.transpose(2, 0, 1), dtype=np.float32)


def cooperative_navigation_spec(n_seekers: int, name: str, *, local_ratio: float = 0.0, visible_seekers: int = 1,
                                visible_landmarks: int = 2, episode_limit: int = 25) -> EnvSpec:
    """The spec of ``CooperativeNavigationEnv(n_seekers, name, **kwargs)``, its arguments checked, without building
    the env (the registry's ``env_spec``)."""
    if n_seekers < 2:
        raise ValueError(f"{name}: n_seekers must be >= 2, got {n_seekers}")
    if not 0.0 <= local_ratio <= 1.0:
        raise ValueError(f"{name}: local_ratio must lie in [0, 1] (mpe2's proportion), got {local_ratio}")
    if not 0 <= visible_seekers <= n_seekers - 1 or not 0 <= visible_landmarks <= n_seekers:
        raise ValueError(f"{name}: visible_seekers must be in [0, {n_seekers - 1}] and visible_landmarks in "
                         f"[0, {n_seekers}], got {visible_seekers} and {visible_landmarks}")
    if episode_limit < 1:
        raise ValueError(f"{name}: episode_limit must be >= 1, got {episode_limit}")
    n = int(n_seekers)
    obs_dim = 4 + 2 * (int(visible_landmarks) + int(visible_seekers))
    return EnvSpec(
        name=name, n_agents=n, obs_dim=obs_dim, obs_dims=(obs_dim,) * n, state_dim=6 * n,
        action_space=spaces.Discrete(N_ACTIONS), episode_limit=int(episode_limit),
        agent_types=("seeker",) * n, has_avail_actions=True,
        kwargs=dict(local_ratio=local_ratio, visible_seekers=visible_seekers,
                    visible_landmarks=visible_landmarks, episode_limit=episode_limit),
    )


class CooperativeNavigationEnv(ParticleTaskEnv):
    """mpe2 ``simple_spread`` with SIT's partial observability (module docstring).

    Args:
        n_seekers: ``N`` seekers and ``N`` landmarks.
        name: registry name stored in the spec.
        local_ratio: mpe2's mix of the global and the local (collision) reward; 0 = global team reward.
        visible_seekers / visible_landmarks: how many nearest other seekers / landmarks each seeker
            sees (SIT Table 3: 1 and 2).
        episode_limit: steps per episode (mpe2's ``max_cycles``, 25).
    """

    def __init__(self, n_seekers: int, name: str, num_envs: int = 1, seed: int | None = None, *,
                 local_ratio: float = 0.0, visible_seekers: int = 1, visible_landmarks: int = 2,
                 episode_limit: int = 25):
        self.spec = cooperative_navigation_spec(n_seekers, name, local_ratio=local_ratio,
                                                visible_seekers=visible_seekers, visible_landmarks=visible_landmarks,
                                                episode_limit=episode_limit)
        n = self.n_seekers = self.spec.n_agents
        self.local_ratio = float(local_ratio)
        self.visible_seekers, self.visible_landmarks = int(visible_seekers), int(visible_landmarks)
        self.world = ParticleWorld(
            n_agents=n, sizes=[SEEKER_SIZE] * n + [LANDMARK_SIZE] * n, collide=[True] * n + [False] * n,
            accel=[SEEKER_ACCEL] * n, max_speed=[np.inf] * n,
        )
        self._spawn_half_width = np.ones(2 * n)
        self._colors = [(89, 89, 217)] * n + [(64, 64, 64)] * n  # mpe2's colours * 255
        self._init_buffers(num_envs, seed)

    def _observe(self):
        n, B = self.n_seekers, self.num_envs
        pos = self._pos.astype(np.float32)  # observations and rewards are float32 (2x less memory traffic)
        seekers, landmarks = pos[:n], pos[n:]  # [n, 2, B], [L, 2, B]
        lm_dx, lm_dy, lm_dist2 = _relative(seekers, landmarks)  # [n, L, B]
        ag_dx, ag_dy, ag_dist2 = _relative(seekers, seekers, exclude_self=True)  # [n, n, B]
        team = -np.sqrt(lm_dist2).min(axis=0).sum(axis=0)  # [B]: - sum_l min_i |p_i - q_l|
        reward = np.empty((B, n), dtype=np.float32)
        if self.local_ratio > 0.0:
            collisions = (ag_dist2 < (2 * SEEKER_SIZE) ** 2).sum(axis=1)  # [n, B]
            reward[:] = (1.0 - self.local_ratio) * team[:, None] - self.local_ratio * collisions.T
        else:
            reward[:] = team[:, None]
        obs = np.zeros((n, self.spec.obs_dim, B), dtype=np.float32)
        obs[:, 0:2] = self._vel[:n]
        obs[:, 2:4] = seekers
        split = 4 + 2 * self.visible_landmarks
        _write_nearest(obs[:, 4:split], lm_dx, lm_dy, lm_dist2)
        _write_nearest(obs[:, split:], ag_dx, ag_dy, ag_dist2)
        return _to_batch_major(obs), reward, {}


def predator_prey_spec(name: str = "mpe_pp_3p1p", *, num_obstacles: int = 2, reward_scale: float = 1.0,
                       episode_limit: int = 25) -> EnvSpec:
    """The spec of ``PredatorPreyEnv(name, **kwargs)``, its arguments checked, without building the env (the
    registry's ``env_spec``)."""
    if num_obstacles < 0:
        raise ValueError(f"{name}: num_obstacles must be >= 0, got {num_obstacles}")
    if not reward_scale > 0:
        raise ValueError(f"{name}: reward_scale must be > 0, got {reward_scale}")
    if episode_limit < 1:
        raise ValueError(f"{name}: episode_limit must be >= 1, got {episode_limit}")
    n, L = PredatorPreyEnv.n_predators, int(num_obstacles)
    return EnvSpec(
        name=name, n_agents=n, obs_dim=10, obs_dims=(10,) * n, state_dim=4 * (n + 1) + 2 * L,
        action_space=spaces.Discrete(N_ACTIONS), episode_limit=int(episode_limit),
        agent_types=("predator",) * n, has_avail_actions=True,
        kwargs=dict(num_obstacles=num_obstacles, reward_scale=reward_scale, episode_limit=episode_limit),
    )


class PredatorPreyEnv(ParticleTaskEnv):
    """mpe2 ``simple_tag`` kinematics with a heuristic prey and SIT's partial observability (module docstring).

    Args:
        num_obstacles: obstacles (simple_tag's landmarks, default 2).
        reward_scale: ``c`` in the team reward ``-c * sum_i |p_i - p_prey|``.
        episode_limit: steps per episode (25).
    """

    n_predators = 3

    def __init__(self, name: str = "mpe_pp_3p1p", num_envs: int = 1, seed: int | None = None, *,
                 num_obstacles: int = 2, reward_scale: float = 1.0, episode_limit: int = 25):
        self.spec = predator_prey_spec(name, num_obstacles=num_obstacles, reward_scale=reward_scale,
                                       episode_limit=episode_limit)
        n, L = self.n_predators, int(num_obstacles)
        self.reward_scale = float(reward_scale)
        self.world = predator_prey_world(n, L)
        self._spawn_half_width = np.array([1.0] * (n + 1) + [OBSTACLE_SPAWN] * L)
        self._colors = [(217, 89, 89)] * n + [(89, 217, 89)] + [(64, 64, 64)] * L  # mpe2's colours * 255
        self._init_buffers(num_envs, seed)

    def _world_actions(self, actions: np.ndarray) -> np.ndarray:
        n = self.n_predators
        prey = prey_action(self._pos[:n], self._pos[n], self._vel[n])  # [B]
        return np.concatenate([actions, prey[:, None]], axis=1)

    def _observe(self):
        n, B = self.n_predators, self.num_envs
        pos = self._pos.astype(np.float32)  # observations and rewards are float32
        predators, prey = pos[:n], pos[n]  # [n, 2, B], [2, B]
        dx, dy, dist2 = _relative(predators, predators, exclude_self=True)  # [n, n, B]
        to_prey = prey[None] - predators  # [n, 2, B]
        obs = np.empty((n, 10, B), dtype=np.float32)
        obs[:, 0:2] = self._vel[:n]
        obs[:, 2:4] = predators
        _write_nearest(obs[:, 4:6], dx, dy, dist2)
        obs[:, 6:8] = to_prey
        obs[:, 8:10] = self._vel[n][None]
        dist = np.sqrt(to_prey[:, 0] ** 2 + to_prey[:, 1] ** 2)  # [n, B]
        reward = np.empty((B, n), dtype=np.float32)
        reward[:] = (-self.reward_scale * dist.sum(axis=0))[:, None]
        caught = (dist < PREDATOR_SIZE + PREY_SIZE).any(axis=0)
        return _to_batch_major(obs), reward, {"prey_caught": caught}


def predator_prey_world(n_predators: int = 3, num_obstacles: int = 2) -> ParticleWorld:
    """The physics of simple_tag with ``n_predators`` adversaries, 1 good agent and ``num_obstacles``
    landmarks (sizes, accels, max speeds of ``mpe2/simple_tag/simple_tag.py: make_world``); every
    entity collides."""
    n = n_predators
    return ParticleWorld(
        n_agents=n + 1,
        sizes=[PREDATOR_SIZE] * n + [PREY_SIZE] + [OBSTACLE_SIZE] * num_obstacles,
        collide=[True] * (n + 1 + num_obstacles),
        accel=[PREDATOR_ACCEL] * n + [PREY_ACCEL],
        max_speed=[PREDATOR_MAX_SPEED] * n + [PREY_MAX_SPEED],
    )


# The four moves the prey chooses from (left, right, down, up) and their directions.
_PREY_MOVES = np.array([1, 2, 3, 4])
_PREY_MOVE_DIRS = ACTION_DIRECTIONS[_PREY_MOVES]  # [4, 2]


def prey_action(predators: np.ndarray, prey: np.ndarray, prey_vel: np.ndarray) -> np.ndarray:
    """The heuristic prey's action (module docstring): ``predators [n, 2, B]``, ``prey [2, B]``,
    ``prey_vel [2, B]`` -> ``[B]`` in {1, 2, 3, 4}."""
    away = prey[None] - predators  # [n, 2, B]
    nearest = np.argmin(away[:, 0] ** 2 + away[:, 1] ** 2, axis=0)  # [B]
    flee = away[nearest, :, np.arange(prey.shape[1])]  # [B, 2]; same direction as the unit vector
    score = flee @ _PREY_MOVE_DIRS.T  # [B, 4]
    rest = (prey + prey_vel * (DT / DAMPING)).T  # [B, 2] where the prey would stop when coasting
    outward = (rest[:, None, :] * _PREY_MOVE_DIRS >= PREY_ARENA).any(axis=-1)  # [B, 4] pushes past the arena
    return _PREY_MOVES[np.argmax(np.where(outward, -np.inf, score), axis=1)]


# ---- registry factories (offmarl.envs.catalog) --------------------------------------------------------
def cn_3ls3l(num_envs: int = 1, seed: int | None = None, **kwargs: Any) -> CooperativeNavigationEnv:
    """SIT CN_3ls3l: 3 seekers, 3 landmarks; each sees 1 seeker and 2 landmarks."""
    return CooperativeNavigationEnv(3, "mpe_cn_3ls3l", num_envs, seed, **kwargs)


def cn_4ls4l(num_envs: int = 1, seed: int | None = None, **kwargs: Any) -> CooperativeNavigationEnv:
    """SIT CN_4ls4l: 4 seekers, 4 landmarks; each sees 1 seeker and 2 landmarks."""
    return CooperativeNavigationEnv(4, "mpe_cn_4ls4l", num_envs, seed, **kwargs)


def pp_3p1p(num_envs: int = 1, seed: int | None = None, **kwargs: Any) -> PredatorPreyEnv:
    """SIT PP_3p1p: 3 predators chase 1 heuristic prey; each sees 1 predator and the prey."""
    return PredatorPreyEnv("mpe_pp_3p1p", num_envs, seed, **kwargs)


# ---- their specs, computed without building them (the registry's env_spec) ------------------------------
cn_3ls3l_spec = functools.partial(cooperative_navigation_spec, 3, "mpe_cn_3ls3l")
cn_4ls4l_spec = functools.partial(cooperative_navigation_spec, 4, "mpe_cn_4ls4l")
pp_3p1p_spec = functools.partial(predator_prey_spec, "mpe_pp_3p1p")
