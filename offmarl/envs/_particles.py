"""A batched particle world with mpe2's physics (the core of offmarl's MPE tasks, ``offmarl.envs.mpe``).

The world holds ``B`` independent copies of ``E`` circular entities on the plane: the first ``A`` are
agents (movable, driven by discrete actions), the remaining ``E - A`` are landmarks (immovable), the
order mpe2's ``World.entities`` uses (``agents + landmarks``). One :meth:`ParticleWorld.step` is
mpe2 1.1.1's ``World.step`` (``mpe2/_mpe_utils/core.py``) for all ``B`` copies at once, in its order:

1. **Action force** (``SimpleEnv._set_action`` in ``mpe2/_mpe_utils/simple_env.py`` and
   ``World.apply_action_force``): discrete action ``a`` in {0: no-op, 1: left (-x), 2: right (+x),
   3: down (-y), 4: up (+y)} gives the unit vector ``u(a)``, times the agent's sensitivity
   (``accel``, 5.0 when an agent has none): ``F_i = accel_i * u(a_i)``. No motor noise (mpe2's
   ``u_noise`` is None in both scenarios).
2. **Environment force** (``World.apply_environment_force`` / ``get_collision_force``): for every
   pair of *colliding* entities ``a != b`` with ``delta = p_a - p_b``, ``dist = |delta|`` and
   ``dist_min = size_a + size_b``, a soft contact force

       penetration = k * log(1 + exp(-(dist - dist_min) / k)),   k = contact_margin = 1e-3
       f_ab = contact_force * delta / dist * penetration,          contact_force = 100

   is added to ``a`` (``+f_ab``) and to ``b`` (``-f_ab``) when they are movable. Every pair gets the
   force, touching or not (it decays like ``exp(-gap / k)``). We evaluate the ``P`` pairs of colliding
   entities that involve an agent at once (``[P, 2, B]``) and scatter them onto the agents with a fixed
   ``[A, P]`` incidence matrix (+1 for ``a``, -1 for ``b``, 0 for immovable entities). Departures, all
   below 1e-16 in a force: ``log(1 + e)`` replaces ``np.logaddexp(0, .)`` (6x faster); exponents
   below -50 (gaps over 0.05, forces below 1e-22) are raised to -50; forces are summed in a different
   order than mpe2's pair loop.
3. **Integration** (``World.integrate_state``), for each movable entity, in this order::

       p <- p + v * dt                         dt = 0.1  (the *old* velocity moves the particle)
       v <- v * (1 - damping)                  damping = 0.25
       v <- v + (F / mass) * dt                mass = 1
       if |v| > max_speed: v <- v / |v| * max_speed   (only entities with a max_speed)

Layout: entity-major, batch-last -- ``pos``/``vel`` are ``[E, 2, B]`` float64 (landmark velocities stay
0), so that every vector operation runs over contiguous rows of ``B`` numbers (a ``[B, E, 2]`` layout is
2-3x slower in numpy because of its length-2 innermost axis). ``actions`` are ``[B, A]`` integers in
``[0, 5)``. Float64 like mpe2 (``np.random.Generator.uniform`` draws float64), so a run started from
mpe2's state reproduces mpe2's trajectory to rounding error (``tests/test_mpe_physics_vs_mpe2.py``
checks 1e-4 over 25 steps and sees ~1e-15). Float32 would drift under the stiff contact force
(``contact_force / contact_margin = 1e5``).
"""

from __future__ import annotations

import numpy as np

# mpe2 World defaults (core.py: World.__init__) and SimpleEnv._set_action's default sensitivity.
DT = 0.1
DAMPING = 0.25
CONTACT_FORCE = 1e2
CONTACT_MARGIN = 1e-3
DEFAULT_ACCEL = 5.0
_FAR = -50.0  # contact exponent below which the soft contact force (< 1e-22) is taken at this value

# u(a) of SimpleEnv._set_action (discrete): no-op, left, right, down, up.
ACTION_DIRECTIONS = np.array([[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])  # [5, 2]
N_ACTIONS = 5


class ParticleWorld:
    """mpe2's physics for ``B`` copies of one entity layout (module docstring).

    Args:
        n_agents: ``A``, the number of movable, action-driven entities (the first ``A`` entities).
        sizes: ``[E]`` radii of all entities (agents first, then landmarks).
        collide: ``[E]`` whether each entity takes part in contact forces.
        accel: ``[A]`` action sensitivity per agent (mpe2's ``agent.accel``; None there means 5.0).
        max_speed: ``[A]`` speed limit per agent; ``np.inf`` for none (mpe2's ``max_speed = None``).
    """

    def __init__(self, n_agents: int, sizes, collide, accel, max_speed):
        self.sizes = np.asarray(sizes, dtype=np.float64)  # [E]
        self.collide = np.asarray(collide, dtype=bool)  # [E]
        self.n_entities = int(self.sizes.shape[0])
        self.n_agents = int(n_agents)
        self.accel = np.asarray(accel, dtype=np.float64)  # [A]
        self.max_speed = np.asarray(max_speed, dtype=np.float64)  # [A]
        if self.collide.shape != (self.n_entities,):
            raise ValueError(f"ParticleWorld: collide needs one entry per entity ({self.n_entities}), "
                             f"got {self.collide.shape}")
        if self.accel.shape != (self.n_agents,) or self.max_speed.shape != (self.n_agents,):
            raise ValueError(f"ParticleWorld: accel and max_speed need one entry per agent ({self.n_agents})")
        if not 0 < self.n_agents <= self.n_entities:
            raise ValueError(f"ParticleWorld: n_agents must be in [1, {self.n_entities}], got {self.n_agents}")
        self._limit_speed = bool(np.isfinite(self.max_speed).any())
        # accel_i * u(a) per component, flattened [A * 5], looked up at a + 5 i
        self._force_x = (self.accel[:, None] * ACTION_DIRECTIONS[None, :, 0]).ravel()
        self._force_y = (self.accel[:, None] * ACTION_DIRECTIONS[None, :, 1]).ravel()
        self._table_offset = N_ACTIONS * np.arange(self.n_agents)[:, None]  # [A, 1]

        # Pairs (a < b) of colliding entities in mpe2's loop order, minus landmark-landmark pairs (their
        # forces act on nothing that moves), and their incidence on agents.
        colliders = np.flatnonzero(self.collide)
        first, second = np.triu_indices(len(colliders), k=1)
        moves = colliders[first] < self.n_agents  # a < b, so a pair with a movable entity has a movable a
        self.pair_a = colliders[first][moves]  # [P]
        self.pair_b = colliders[second][moves]  # [P]
        self.pair_dist_min = (self.sizes[self.pair_a] + self.sizes[self.pair_b])[:, None]  # [P, 1]
        incidence = np.zeros((self.n_agents, len(self.pair_a)))  # [A, P]; landmarks are immovable
        for p, (a, b) in enumerate(zip(self.pair_a, self.pair_b)):  # built once, not per step
            if a < self.n_agents:
                incidence[a, p] += 1.0
            if b < self.n_agents:
                incidence[b, p] -= 1.0
        self.incidence = incidence

    def action_force(self, actions: np.ndarray) -> np.ndarray:
        """``[B, A]`` discrete actions -> ``[A, 2, B]`` forces ``accel_i * u(a_i)``."""
        index = actions.T + self._table_offset  # [A, B]
        return np.stack([self._force_x[index], self._force_y[index]], axis=1)

    def contact_force(self, pos: np.ndarray) -> np.ndarray:
        """Sum of mpe2's soft contact forces on each agent: ``pos [E, 2, B]`` -> ``[A, 2, B]``."""
        B = pos.shape[-1]
        if len(self.pair_a) == 0:
            return np.zeros((self.n_agents, 2, B))
        delta = pos[self.pair_a] - pos[self.pair_b]  # [P, 2, B]
        dist = np.sqrt(delta[:, 0] ** 2 + delta[:, 1] ** 2)  # [P, B]
        # mpe2: np.logaddexp(0, x) * k with x = -(dist - dist_min) / k. log(1 + exp(x)) is 6x faster (SIMD
        # exp/log) and within 1e-16 of it (absolute, x <= dist_min / k <= 400, so exp cannot overflow);
        # clipping x at -50 (a force below 1e-22) keeps exp out of its slow underflow path for the many
        # far-apart pairs.
        soft = np.exp(np.maximum(-(dist - self.pair_dist_min) / CONTACT_MARGIN, _FAR))  # [P, B]
        soft += 1.0
        penetration = np.log(soft, out=soft) * CONTACT_MARGIN
        pair_force = CONTACT_FORCE * delta / dist[:, None] * penetration[:, None]  # [P, 2, B]
        P = len(self.pair_a)
        return (self.incidence @ pair_force.reshape(P, 2 * B)).reshape(self.n_agents, 2, B)

    def step(self, pos: np.ndarray, vel: np.ndarray, actions: np.ndarray) -> None:
        """Advance ``pos``/``vel [E, 2, B]`` in place by one mpe2 ``World.step`` under ``actions [B, A]``."""
        A = self.n_agents
        force = self.contact_force(pos)  # [A, 2, B]
        force += self.action_force(actions)
        agent_pos = pos[:A]
        agent_vel = vel[:A]
        agent_pos += agent_vel * DT
        agent_vel *= 1.0 - DAMPING
        agent_vel += force * DT  # mass = 1
        if self._limit_speed:
            speed = np.sqrt(agent_vel[:, 0] ** 2 + agent_vel[:, 1] ** 2)  # [A, B]
            too_fast = speed > self.max_speed[:, None]
            if too_fast.any():
                scale = np.where(too_fast, self.max_speed[:, None] / np.where(too_fast, speed, 1.0), 1.0)
                agent_vel *= scale[:, None, :]
