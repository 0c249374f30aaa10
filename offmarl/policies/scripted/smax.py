"""The ``expert`` behaviour policy of the SMAX maps (``offmarl.envs.smax``): SMAX's heuristic, for the allies.

jaxmarl ships a scripted micromanagement policy (``jaxmarl/environments/smax/heuristic_enemy.py``,
``create_heuristic_policy``); SMAX's built-in enemy is that policy for team 1. :class:`SMAXHeuristicExpert`
runs the same policy for team 0 (our agents), from each ally's own observation only (so it is a
decentralized expert):

* if an enemy is visible and within the unit's attack range, attack -- the enemy it attacked last if
  that one is still in range, else the closest one (``attack_mode="closest"``, SMAX's default; or a
  random one with ``attack_mode="random"``);
* otherwise move (the one of the four move actions best aligned with the direction) towards a random
  visible enemy, or, seeing none, towards the point opposite its spawn position across the map centre
  (which leads through the middle of the map into the enemy's half).

The policy state (the walking target and the last attacked enemy, per sub-env and agent) is cleared by
``reset(B, mask)``. All ``B x n`` decisions are one jitted, vmapped call per step; its randomness comes
from a JAX key seeded by ``seed``. An action the env does not allow (``ts.avail_actions``: a dead ally
may only stop; an enemy on the rim of the attack range can differ between the policy's distance,
recovered from the scaled observation, and the env's) is replaced by stop (our only change), so
every action is available, and so is every action of the collect package's mixtures (``MixedPolicy``,
``PerAgentLevelPolicy`` draw their random actions among the available ones).

Measured against SMAX's heuristic enemy (``benchmarks/env_smax_throughput.py --no-throughput --returns``;
256 episodes per row, the first episode of each of 256 sub-envs, seed 0, SMAX's 100-step limit):
per-agent episode return on the SMAC scale (a win returns 20), mean ± std, and win rate. The
heuristics are evenly matched on the symmetric maps; where the allies are outnumbered it rarely wins
-- unlike the papers' trained MAPPO/QMIX experts it neither kites (stalkers against zealots) nor focus-
fires. Uniform random play returns 1.4–5.5 and never wins.

=================  ==============  ======  ==============  ======
map                random          wins    expert          wins
=================  ==============  ======  ==============  ======
smac_3s_vs_3z      5.45 ± 2.37     0 %     14.71 ± 3.88    33.6 %
smac_3s_vs_4z      4.09 ± 1.58     0 %     6.83 ± 0.68     0 %
smac_3s_vs_5z      3.32 ± 1.18     0 %     4.61 ± 0.40     0 %
smac_2s3z          3.24 ± 1.11     0 %     16.68 ± 3.55    50.4 %
smac_3s5z          3.30 ± 1.00     0 %     16.92 ± 2.85    41.0 %
smac_3s5z_vs_3s6z  2.86 ± 0.81     0 %     10.63 ± 1.10    0 %
smac_8m            2.05 ± 0.60     0 %     15.46 ± 4.51    48.4 %
smac_8m_vs_9m      1.82 ± 0.55     0 %     9.30 ± 1.80     1.2 %
smac_5m_vs_6m      1.38 ± 0.54     0 %     6.93 ± 1.06     0 %
smac_10m_vs_11m    1.98 ± 0.56     0 %     10.74 ± 2.44    4.3 %
=================  ==============  ======  ==============  ======

Departure: the papers' SMAC data come from trained policies (Tseng: MADT's MAPPO data, 2s3z 19.93 ±
0.09; SIT: QMIX policy pools of returns 0–6 / 6–14 / 14–20, Table 4; DM²: IPPO/QMIX demonstrations).
This heuristic is the stand-in "expert" level: on the symmetric maps it lies in SIT's expert pool
(14–20), on the asymmetric ones in its medium pool or below.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

# after offmarl.envs.smax, which imports jaxmarl with its import-time printing contained
from jaxmarl.environments.smax.heuristic_enemy import HeuristicPolicyState, create_heuristic_policy  # noqa: E402

from offmarl.envs.base import EnvSpec, TimeStep
from offmarl.envs.smax import STOP_ACTION, jaxmarl_env, map_of_spec
from offmarl.policies.base import JointPolicy

ATTACK_MODES = ("closest", "random")


class SMAXHeuristicExpert(JointPolicy):
    """SMAX's heuristic policy for every ally of ``B`` sub-envs (module docstring).

    Args:
        spec: the spec of a ``smac_<map>`` env.
        seed: seed of the policy's JAX key.
        attack_mode: ``"closest"`` (SMAX's default) or ``"random"`` target among the enemies in range.
    """

    def __init__(self, spec: EnvSpec, seed: int = 0, attack_mode: str = "closest"):
        if attack_mode not in ATTACK_MODES:
            raise ValueError(f"SMAXHeuristicExpert: attack_mode must be one of {ATTACK_MODES}, got {attack_mode!r}")
        self.spec = spec
        self._act_fn = _compiled_policy(map_of_spec(spec), attack_mode)
        self._key = jax.random.PRNGKey(seed)
        self._target: np.ndarray | None = None  # [B, n, 2] where each ally walks when it sees no enemy
        self._last_attacked: np.ndarray | None = None  # [B, n] int32, -1 = none

    def reset(self, batch_size: int, mask: np.ndarray | None = None) -> None:
        n = self.spec.n_agents
        if mask is None or self._target is None or self._target.shape[0] != batch_size:
            self._target = np.zeros((batch_size, n, 2), np.float32)
            self._last_attacked = np.full((batch_size, n), -1, np.int32)
            return
        # the policy's "initial state": target (0, 0) is recomputed from the first observation
        self._target[mask] = 0.0
        self._last_attacked[mask] = -1

    def act(self, ts: TimeStep, first: bool = False) -> np.ndarray:
        B = ts.obs.shape[0]
        if self._target is None or self._target.shape[0] != B:
            self.reset(B)
        avail = ts.avail_actions if ts.avail_actions is not None else np.ones(
            (B, self.spec.n_agents, self.spec.n_actions), bool)
        self._key, out = self._act_fn(self._key, self._target, self._last_attacked, ts.obs, avail)
        actions, target, last_attacked = out
        self._target, self._last_attacked = np.array(target), np.array(last_attacked)
        return np.array(actions, dtype=np.int64)


@functools.lru_cache(maxsize=None)
def _compiled_policy(map_name: str, attack_mode: str):
    """``act(key, target [B, n, 2], last_attacked [B, n], obs [B, n, d], avail [B, n, A]) -> (key, (actions,
    target, last_attacked))``, jitted and vmapped over sub-envs and agents; built once per map and mode
    (jax compiles it once per ``B``)."""
    env = jaxmarl_env(map_name)
    heuristic = jax.vmap(jax.vmap(create_heuristic_policy(env, 0, shoot=True, attack_mode=attack_mode)))

    def act(key, target, last_attacked, obs, avail):
        key, sub = jax.random.split(key)
        B, n = obs.shape[:2]
        keys = jax.random.split(sub, B * n).reshape(B, n, -1)
        state = HeuristicPolicyState(default_target=target, last_attacked_enemy=last_attacked)
        actions, state = heuristic(keys, state, obs)
        allowed = jnp.take_along_axis(avail, actions[..., None], axis=-1)[..., 0]
        actions = jnp.where(allowed, actions, STOP_ACTION)
        return key, (actions, state.default_target, state.last_attacked_enemy.astype(jnp.int32))

    return jax.jit(act)
