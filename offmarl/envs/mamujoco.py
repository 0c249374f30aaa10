"""Multi-agent MuJoCo (SIT, Tian et al., App. C; MABCQ, Jiang & Lu, §4 and Table 6) on gymnasium-robotics.

``make_env(name, num_envs=B, seed=s, episode_limit=1000, agent_obs="local", agent_obsk=1)`` for

================================  ==================  ======  ==========  =====  =============
name                              MaMuJoCo scenario   agents  act/agent   state  obs_dims
================================  ==================  ======  ==========  =====  =============
``mamujoco_halfcheetah_2x3``      HalfCheetah 2x3     2       3           17     12, 12
``mamujoco_walker2d_2x3``         Walker2d 2x3        2       3           17     12, 12
``mamujoco_hopper_3x1``           Hopper 3x1          3       1           11     8, 9, 8
``mamujoco_ant_2x4``              Ant 2x4             2       4           27     21, 21
``mamujoco_ant_4x2``              Ant 4x2             4       2           27     18, 18, 18, 18
================================  ==================  ======  ==========  =====  =============

Agent partitions are MaMuJoCo's (``mamujoco_v1.parallel_env(scenario, agent_conf)``): HalfCheetah 2x3 and
Walker2d 2x3 are SIT's HalfCheetah_2l / Walker_2l (two agents of three joints, App. C Fig. 6) and, with
Hopper 3x1 and Ant 4x2, MABCQ's 2 / 2 / 3 / 4 agents (Table 6); Ant 2x4 is the two-agent Ant.

* **State** ``[state_dim]``: the single-agent Gymnasium MuJoCo (v5) observation -- positions without the
  root x coordinate, then velocities -- of MABCQ Table 6's sizes (17, 17, 11, 27). For Ant the 78
  external contact forces that Gymnasium's Ant-v5 appends by default are dropped
  (``include_cfrc_ext_in_observation=False``; MABCQ's 27 has none).
* **Observation** of agent i: ``agent_obs="local"`` (default): MaMuJoCo's local observation -- the
  positions and velocities of the agent's joints and of the joints within ``agent_obsk`` (1) hops, and the
  root's -- gathered from the MuJoCo positions and velocities with MaMuJoCo's own index map
  (``observation_factorization``; like MaMuJoCo, without the [−10, 10] velocity clipping that Walker2d's
  and Hopper's state applies); for Ant without the contact forces (local categories ``qpos, qvel | qpos``).
  Agents whose observations differ in width (Hopper 3x1: 8 / 9 / 8) are zero-padded to ``obs_dim`` and
  ``obs_dims`` says each true width. ``agent_obs="global"``: every agent observes the whole state
  (MABCQ §4.1: each agent "could get the state and reward of the robot").
* **Actions** ``[n, act_dim]`` in [−1, 1] (``Box``, the motors' control range), scattered to the robot's
  actuators by MaMuJoCo's partition.
* **Reward**: the single-agent env's reward (forward velocity + healthy bonus − control cost, Gymnasium
  v5 defaults) broadcast to every agent. **Termination**: the robot's own (Hopper, Walker2d and Ant end
  when unhealthy; HalfCheetah never); **truncation** after ``episode_limit`` steps -- 1000 by default (the
  MuJoCo standard and MABCQ's horizon T, Table 6); SIT uses 200 (``episode_limit=200``).

Behaviour policies: ``random`` only (uniform in [−1, 1]); the papers' medium / expert levels come from
trained SAC / FacMAC policies, which offmarl does not have yet, so ``--tier``, ``--composition`` and
``--per-agent`` (which derive their levels from an ``expert``) are not available for these envs until a
trained expert is registered. Rendering (``render(index)``) uses MuJoCo's offscreen renderer; without a
display the module selects ``MUJOCO_GL=egl`` unless the variable is already set.

Not restorable (:mod:`offmarl.envs._gym_batch`): a resume restarts the sub-envs' episodes.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import warnings
from typing import Any

import numpy as np
from gymnasium import spaces

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"  # headless: offscreen rendering through EGL (set before mujoco loads)
with contextlib.redirect_stderr(io.StringIO()):  # gymnasium-robotics prints a notice about its Adroit envs on import
    from gymnasium_robotics import mamujoco_v1  # noqa: E402  (ImportError here = the 'mamujoco' extra is missing)
import mujoco  # noqa: E402

from offmarl.envs._gym_batch import GymBatchEnv, SubEnv, SubStep  # noqa: E402
from offmarl.envs.base import EnvSpec  # noqa: E402


def _mujoco_warning(message: str) -> None:
    warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)


if mujoco.get_mju_user_warning() is None:
    # MuJoCo's default handler prints its warnings and appends them to MUJOCO_LOG.TXT in the working
    # directory (e.g. Gymnasium's half_cheetah.xml uses a deprecated attribute); make them Python warnings.
    mujoco.set_mju_user_warning(_mujoco_warning)

# registry name -> (MaMuJoCo scenario, agent_conf)
MAPS: dict[str, tuple[str, str]] = {
    "mamujoco_halfcheetah_2x3": ("HalfCheetah", "2x3"),
    "mamujoco_walker2d_2x3": ("Walker2d", "2x3"),
    "mamujoco_hopper_3x1": ("Hopper", "3x1"),
    "mamujoco_ant_2x4": ("Ant", "2x4"),
    "mamujoco_ant_4x2": ("Ant", "4x2"),
}
AGENT_OBS = ("local", "global")
DEFAULT_EPISODE_LIMIT = 1000


def build_multiagent(scenario: str, agent_conf: str, agent_obsk: int, episode_limit: int) -> Any:
    """A MaMuJoCo ``MultiAgentMujocoEnv`` without contact forces, truncating after ``episode_limit`` steps."""
    kwargs: dict[str, Any] = {"max_episode_steps": episode_limit, "render_mode": "rgb_array"}
    if scenario == "Ant":
        kwargs["include_cfrc_ext_in_observation"] = False
        depth = [["qpos", "qvel"], ["qpos"]]  # MaMuJoCo's Ant categories without "cfrc_ext"
        kwargs["local_categories"] = [depth[min(k, 1)] for k in range(agent_obsk + 1)]
    return mamujoco_v1.parallel_env(scenario, agent_conf, agent_obsk=agent_obsk, **kwargs)


class MaMuJoCoSubEnv(SubEnv):
    """One robot: its Gymnasium env stepped with the agents' actions scattered by ``action_index``.

    ``action_index [n, act_dim]``: actuator of agent i's j-th action. ``obs_index [n, obs_dim]``: entry of
    ``[qpos without the skipped root coordinates, qvel, 0]`` read by agent i's j-th observation (the last,
    zero entry pads). That vector is read from the MuJoCo data, as MaMuJoCo's local observations are: it
    equals the state except that Walker2d-v5 and Hopper-v5 clip the state's velocities to [−10, 10] and
    MaMuJoCo's local observations do not; ``global`` observations read the state itself."""

    def __init__(self, multiagent: Any, action_index: np.ndarray, obs_index: np.ndarray, from_state: bool):
        self.multiagent = multiagent
        self.env = multiagent.single_agent_env
        self.data = self.env.unwrapped.data
        self.skipped_qpos = int(self.env.unwrapped.observation_structure["skipped_qpos"])
        self.action_index = action_index.reshape(-1)
        self.obs_index = obs_index
        self.from_state = from_state
        self.n = obs_index.shape[0]
        self._action = np.zeros(self.action_index.size, dtype=np.float64)

    def reset(self, seed: int | None) -> SubStep:
        state, _ = self.env.reset(seed=seed)
        return self._view(state, 0.0)

    def step(self, action: np.ndarray) -> SubStep:
        self._action[self.action_index] = action.reshape(-1)
        state, reward, terminated, truncated, _ = self.env.step(self._action)
        view = self._view(state, float(reward))
        view.terminated, view.truncated = bool(terminated), bool(truncated)
        return view

    def render(self) -> np.ndarray:
        return np.asarray(self.env.render(), dtype=np.uint8)

    def close(self) -> None:
        self.env.close()

    def _view(self, state: np.ndarray, reward: float) -> SubStep:
        state = np.asarray(state, dtype=np.float32)
        source = state if self.from_state else np.concatenate([self.data.qpos[self.skipped_qpos:], self.data.qvel])
        padded = np.append(source.astype(np.float32), np.float32(0.0))  # [state_dim + 1]
        return SubStep(obs=padded[self.obs_index], state=state, reward=np.full(self.n, reward, np.float32))


def layout(multiagent: Any, agent_obs: str) -> tuple[np.ndarray, np.ndarray, tuple[int, ...], int]:
    """``(action_index [n, act_dim], obs_index [n, obs_dim], obs_dims, state_dim)`` of a MaMuJoCo env."""
    agents = multiagent.possible_agents
    action_index = np.array([[node.act_ids for node in partition] for partition in multiagent.agent_action_partitions],
                            dtype=np.int64)  # [n, act_dim]: every agent of these maps moves the same number of joints
    state_dim = int(multiagent.single_agent_env.observation_space.shape[0])
    if agent_obs == "global":
        rows = [np.arange(state_dim)] * len(agents)
    else:
        rows = [np.asarray(multiagent.observation_factorization[agent], dtype=np.int64) for agent in agents]
    obs_dims = tuple(len(row) for row in rows)
    obs_index = np.full((len(agents), max(obs_dims)), state_dim, dtype=np.int64)
    for i, row in enumerate(rows):
        obs_index[i, : len(row)] = row
    return action_index, obs_index, obs_dims, state_dim


def _first_sub_env(name: str, episode_limit: int, agent_obs: str,
                   agent_obsk: int) -> tuple[Any, np.ndarray, np.ndarray, EnvSpec]:
    """``(first sub-env's MaMuJoCo env, action_index, obs_index, spec)`` of map ``name``, the arguments checked."""
    if name not in MAPS:
        raise ValueError(f"unknown MaMuJoCo map {name!r}; known: {', '.join(MAPS)}")
    if not isinstance(episode_limit, (int, np.integer)) or isinstance(episode_limit, bool) or episode_limit < 1:
        raise ValueError(f"{name}: episode_limit must be an integer >= 1, got {episode_limit!r}")
    if agent_obs not in AGENT_OBS:
        raise ValueError(f"{name}: agent_obs must be one of {', '.join(AGENT_OBS)}, got {agent_obs!r}")
    if not isinstance(agent_obsk, (int, np.integer)) or isinstance(agent_obsk, bool) or agent_obsk < 0:
        raise ValueError(f"{name}: agent_obsk must be an integer >= 0, got {agent_obsk!r}")
    scenario, conf = MAPS[name]
    first = build_multiagent(scenario, conf, int(agent_obsk), int(episode_limit))
    action_index, obs_index, obs_dims, state_dim = layout(first, agent_obs)
    box = first.single_agent_env.action_space
    if not (np.all(box.low == -1.0) and np.all(box.high == 1.0)):  # the papers' [-1, 1] per joint
        raise RuntimeError(f"{name}: expected actions in [-1, 1], gymnasium gives [{box.low.min()}, {box.high.max()}]")
    n, act_dim = action_index.shape
    spec = EnvSpec(name=name, n_agents=n, obs_dim=max(obs_dims), obs_dims=obs_dims, state_dim=state_dim,
                   action_space=spaces.Box(-1.0, 1.0, shape=(act_dim,), dtype=np.float32),
                   episode_limit=int(episode_limit), agent_types=("agent",) * n,
                   kwargs={"episode_limit": int(episode_limit), "agent_obs": agent_obs, "agent_obsk": int(agent_obsk)})
    return first, action_index, obs_index, spec


def mamujoco_spec(name: str, *, episode_limit: int = DEFAULT_EPISODE_LIMIT, agent_obs: str = "local",
                  agent_obsk: int = 1) -> EnvSpec:
    """The spec of ``make_mamujoco(name, **kwargs)``, its arguments checked (the registry's ``env_spec``).

    MaMuJoCo's observation factorization is known only from the robot's model: this loads it (no simulation
    step, no sub-env of a batch) and closes it."""
    first, _, _, spec = _first_sub_env(name, episode_limit, agent_obs, agent_obsk)
    first.close()
    return spec


def make_mamujoco(name: str, num_envs: int = 1, seed: int | None = None, *,
                  episode_limit: int = DEFAULT_EPISODE_LIMIT, agent_obs: str = "local",
                  agent_obsk: int = 1) -> GymBatchEnv:
    """``num_envs`` copies of MaMuJoCo map ``name`` (module docstring for the arguments)."""
    first, action_index, obs_index, spec = _first_sub_env(name, episode_limit, agent_obs, agent_obsk)
    scenario, conf = MAPS[name]

    def make_sub(index: int) -> MaMuJoCoSubEnv:
        multiagent = first if index == 0 else build_multiagent(scenario, conf, int(agent_obsk), int(episode_limit))
        return MaMuJoCoSubEnv(multiagent, action_index, obs_index, from_state=agent_obs == "global")

    return GymBatchEnv(spec, make_sub, num_envs, seed)


def _map_factory(name: str):
    def factory(num_envs: int = 1, seed: int | None = None, **kwargs: Any) -> GymBatchEnv:
        return make_mamujoco(name, num_envs=num_envs, seed=seed, **kwargs)

    factory.__name__ = factory.__qualname__ = name.removeprefix("mamujoco_")
    factory.__doc__ = f"``make_env({name!r}, ...)``: MaMuJoCo {' '.join(MAPS[name])} (see the module docstring)."
    return factory


halfcheetah_2x3 = _map_factory("mamujoco_halfcheetah_2x3")
walker2d_2x3 = _map_factory("mamujoco_walker2d_2x3")
hopper_3x1 = _map_factory("mamujoco_hopper_3x1")
ant_2x4 = _map_factory("mamujoco_ant_2x4")
ant_4x2 = _map_factory("mamujoco_ant_4x2")

# their specs (the registry's env_spec)
halfcheetah_2x3_spec = functools.partial(mamujoco_spec, "mamujoco_halfcheetah_2x3")
walker2d_2x3_spec = functools.partial(mamujoco_spec, "mamujoco_walker2d_2x3")
hopper_3x1_spec = functools.partial(mamujoco_spec, "mamujoco_hopper_3x1")
ant_2x4_spec = functools.partial(mamujoco_spec, "mamujoco_ant_2x4")
ant_4x2_spec = functools.partial(mamujoco_spec, "mamujoco_ant_4x2")
