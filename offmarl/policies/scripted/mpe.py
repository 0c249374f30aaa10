"""Scripted experts for the MPE maps (``offmarl.envs.mpe``): cooperative navigation and predator-prey.

Both are :class:`~offmarl.policies.base.JointPolicy` objects that read only ``ts.state`` (positions and
velocities of every particle, :func:`offmarl.envs.mpe.unpack_state`) and act for all ``B`` sub-envs at
once. They share one velocity-aware controller, :func:`planned_actions`: it rolls out all 25 two-step
action plans with mpe2's integration (``offmarl.envs._particles``: ``p' = p + v dt``,
``v' = (1 - damping) v + accel dt u(a)``, speed clipped) and takes the first action of the plan whose
next two positions and final coasting rest point (``v dt / damping`` more of travel) are nearest the
agent's target. Far from the target this accelerates flat out; near it, it brakes, so agents stop on
their goal instead of overshooting (a one-step "rest point" rule alone leaves them ~0.07 off the goal
because one action moves the rest point by ``accel dt^2 / damping`` = 0.2).

* :class:`CooperativeNavigationExpert`: seekers are assigned to landmarks by the assignment with the
  least total distance (all ``N!`` permutations scored at once, 6 for N = 3, 24 for N = 4), recomputed
  every step, and each steers to its landmark with the controller.
* :class:`PredatorPreyExpert`: predators are assigned (least total distance again) to three points
  spaced 120 degrees apart on a circle of radius ``surround_radius`` around the prey's predicted
  position ``p_prey + lead * v_prey``, the circle turned so that one point lies on the prey's side
  away from the predators' centroid (that predator cuts off the escape), and steer there with the
  controller. Closing in from three sides pins the fleeing prey (``offmarl.envs.mpe.prey_action``).

``noise`` (both experts): each agent's action is replaced, independently with probability ``noise``,
by a uniformly random one (the "medium" level of SIT-style policy pools and of the quality tiers).

Measured per-agent episode returns (mean ± std over 4096 episodes, seed 0;
``benchmarks/env_mpe_throughput.py --returns``; random = uniform actions, medium = ``noise=0.5``).
SIT's returns look like sums over the agents (``x n`` columns), and on that scale our random and
expert CN teams fall in SIT Table 5's random and expert pools; our predator-prey expert reaches only
SIT's medium pool (the faster prey is caught only when cornered):

============  ==============  ==============  ==============  ==========  ==========  ================================
env           random          expert          medium          random x n  expert x n  SIT Table 5:
                                                                                      random / medium / expert
============  ==============  ==============  ==============  ==========  ==========  ================================
mpe_cn_3ls3l  -52.20 ± 15.82  -13.70 ± 6.01   -25.20 ± 9.67   -156.6      -41.1       -174~-133 / -133~-78 / -78~-37
mpe_cn_4ls4l  -60.96 ± 16.15  -16.45 ± 6.33   -30.16 ± 9.77   -243.8      -65.8       -289~-214 / -214~-115 / -115~-41
mpe_pp_3p1p   -109.35 ± 26.67 -57.61 ± 19.31  -79.57 ± 23.98  -328.1      -172.8      -307~-231 / -231~-130 / -130~-55
============  ==============  ==============  ==============  ==========  ==========  ================================
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from offmarl.envs._particles import ACTION_DIRECTIONS, DAMPING, DT, N_ACTIONS
from offmarl.envs.base import EnvSpec, TimeStep
from offmarl.envs.mpe import PREDATOR_ACCEL, PREDATOR_MAX_SPEED, SEEKER_ACCEL, state_layout, unpack_state
from offmarl.policies.base import JointPolicy

_PLAN_HORIZON = 2
_PLANS = np.array(list(itertools.product(range(N_ACTIONS), repeat=_PLAN_HORIZON)), dtype=np.int64)  # [25, 2]


def planned_actions(pos: np.ndarray, vel: np.ndarray, target: np.ndarray, accel: float,
                    max_speed: float = np.inf) -> np.ndarray:
    """First action of the best two-step plan towards ``target`` (module docstring).

    ``pos``/``vel``/``target`` ``[B, n, 2]`` -> ``[B, n]`` int64 in ``[0, 5)``. Each of the 25 plans
    ``(a1, a2)`` is rolled out with mpe2's integration (contact forces ignored) and costs
    ``|p_{t+2} - g| + |p_{t+3} - g| + |rest - g|`` with ``rest = p_{t+3} + (1 - damping) v_{t+2} dt / damping``,
    where the agent comes to rest if it coasts after the plan (``p_{t+1}`` does not depend on the actions).
    """
    p = (pos + vel * DT)[:, :, None, :]  # [B, n, 1, 2]: p_{t+1} does not depend on the action
    v = vel[:, :, None, :]
    goal = target[:, :, None, :]
    cost = np.zeros(pos.shape[:2] + (len(_PLANS),))  # [B, n, 25]
    for k in range(_PLAN_HORIZON):  # loop over the 2 plan steps, not over agents or sub-envs
        v = (1.0 - DAMPING) * v + (accel * DT) * ACTION_DIRECTIONS[_PLANS[:, k]]  # [B, n, 25, 2]
        if np.isfinite(max_speed):
            speed = np.sqrt(v[..., 0] ** 2 + v[..., 1] ** 2)[..., None]
            v = np.where(speed > max_speed, v * (max_speed / np.maximum(speed, 1e-12)), v)
        p = p + v * DT
        cost += np.linalg.norm(p - goal, axis=-1)
    rest = p + v * ((1.0 - DAMPING) * DT / DAMPING)
    cost += np.linalg.norm(rest - goal, axis=-1)
    return _PLANS[np.argmin(cost, axis=-1), 0]


@functools.lru_cache(maxsize=None)
def _permutations(n: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(n))), dtype=np.int64)  # [n!, n]


def min_cost_assignment(cost: np.ndarray) -> np.ndarray:
    """Optimal assignment by enumeration: ``cost [B, n, n]`` (agent x goal) -> goal of each agent ``[B, n]``.

    Scores all ``n!`` permutations at once; meant for ``n <= 6``."""
    n = cost.shape[1]
    perms = _permutations(n)  # [P, n]
    totals = cost[:, np.arange(n)[None, :], perms].sum(axis=-1)  # [B, P]
    return perms[np.argmin(totals, axis=1)]


class _NoisyScriptedPolicy(JointPolicy):
    """Adds the ``noise`` option (uniform random action with probability ``noise``) to a scripted policy."""

    def __init__(self, spec: EnvSpec, seed: int = 0, noise: float = 0.0):
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"{type(self).__name__}: noise must be a probability in [0, 1], got {noise}")
        self.spec = spec
        self.layout = state_layout(spec)
        self.noise = float(noise)
        self._rng = np.random.default_rng(seed)

    def act(self, ts: TimeStep, first: bool = False) -> np.ndarray:
        actions = self._greedy(ts.state.astype(np.float64))
        if self.noise > 0.0:
            replace = self._rng.random(actions.shape) < self.noise
            actions = np.where(replace, self._rng.integers(0, N_ACTIONS, size=actions.shape), actions)
        return actions.astype(np.int64)

    def _greedy(self, state: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class CooperativeNavigationExpert(_NoisyScriptedPolicy):
    """Seekers go to their landmarks of the least-total-distance assignment (module docstring)."""

    def _greedy(self, state: np.ndarray) -> np.ndarray:
        pos, vel, landmarks = unpack_state(state, self.layout)  # [B, n, 2], [B, n, 2], [B, n, 2]
        gap = landmarks[:, None, :, :] - pos[:, :, None, :]  # [B, n, L, 2]
        goal = min_cost_assignment(np.sqrt(gap[..., 0] ** 2 + gap[..., 1] ** 2))  # [B, n]
        target = np.take_along_axis(landmarks, goal[..., None], axis=1)  # [B, n, 2]
        return planned_actions(pos, vel, target, SEEKER_ACCEL)


class PredatorPreyExpert(_NoisyScriptedPolicy):
    """Predators surround the prey's predicted position from three sides (module docstring).

    Args:
        surround_radius: radius of the circle of pursuit points around the prey.
        lead: seconds of prey motion to anticipate (``p_prey + lead * v_prey``).
    """

    def __init__(self, spec: EnvSpec, seed: int = 0, noise: float = 0.0, surround_radius: float = 0.15,
                 lead: float = 0.3):
        super().__init__(spec, seed=seed, noise=noise)
        self.surround_radius = float(surround_radius)
        self.lead = float(lead)

    def _greedy(self, state: np.ndarray) -> np.ndarray:
        pos, vel, _ = unpack_state(state, self.layout)
        n = self.spec.n_agents
        predators, predator_vel = pos[:, :n], vel[:, :n]  # [B, n, 2]
        prey = pos[:, n] + self.lead * vel[:, n]  # [B, 2]
        escape = prey - predators.mean(axis=1)  # [B, 2] the prey's way out
        base = np.arctan2(escape[:, 1], escape[:, 0])  # [B]
        angles = base[:, None] + 2.0 * np.pi * np.arange(n) / n  # [B, n]
        slots = prey[:, None, :] + self.surround_radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
        gap = slots[:, None, :, :] - predators[:, :, None, :]  # [B, n, n, 2]
        slot = min_cost_assignment(np.sqrt(gap[..., 0] ** 2 + gap[..., 1] ** 2))  # [B, n]
        target = np.take_along_axis(slots, slot[..., None], axis=1)  # [B, n, 2]
        return planned_actions(predators, predator_vel, target, PREDATOR_ACCEL, PREDATOR_MAX_SPEED)
