"""Highway (Tseng et al., *Offline Multi-Agent RL with Knowledge Distillation*, App. C) on highway-env.

``make_env("highway", num_envs=B, seed=s, fast=False, ...)``: highway-env's ``HighwayEnv`` in its
multi-agent setting -- ``controlled_vehicles`` (3) cars among the package's built-in IDM/MOBIL traffic
(``MultiAgentObservation`` of ``Kinematics``, ``MultiAgentAction`` of ``DiscreteMetaAction``). Each of the
B sub-envs is one highway-env object, stepped in a loop by :class:`~offmarl.envs._gym_batch.GymBatchEnv`.

**Observation** of agent i (``obs_dim`` = 5 × ``observed_vehicles`` = 25): highway-env's normalized
``Kinematics`` rows ``[presence, x, y, vx, vy]`` of its own car, then of the ``observed_vehicles − 1``
closest cars ahead of it (sorted by distance, absent rows zero; the other cars' x, y, vx, vy relative to
its own; each feature mapped to [−1, 1] by highway-env's ranges), flattened vehicle by vehicle -- the
paper's ``o = [F_self, F_close]`` with ``F = [L, x_pos, y_pos, v_x, v_y]``. Departure: the paper's L is
"whether a car is still alive"; highway-env's presence says whether the row holds a car (an episode ends at
the first crash of a controlled car, so a live episode never holds a dead controlled car).
**State** (``state_dim`` = n × obs_dim = 75): the agents' observations concatenated (highway-env has no
global state of its own; Tseng's centralized teacher sees all agents' observations).

**Actions** (``Discrete(5)``), in the paper's order: 0 no-op, 1 slow down, 2 accelerate, 3 lane left,
4 lane right. highway-env's own ``DiscreteMetaAction`` order is LANE_LEFT, IDLE, LANE_RIGHT, FASTER,
SLOWER; :data:`TO_HIGHWAY` / :data:`FROM_HIGHWAY` translate. Speeds are the package's target speeds
20 / 25 / 30 m/s of ``MDPVehicle``. **avail_actions** are highway-env's ``get_available_actions``:
lane left / right are unavailable on the leftmost / rightmost lane, accelerate at the top target speed
and slow down at the lowest (each of them would be a no-op there); no-op is always available.

**Reward** of agent i (computed per controlled car, since highway-env's own reward is one scalar for
car 0): ``r_i = 25 · r_collision,i + 0.2 · r_high_speed,i`` with ``r_collision,i = −1`` when car i
crashed, else 0, and ``r_high_speed,i`` highway-env's ``high_speed_reward`` term: the car's forward speed
``v cos(heading)`` mapped linearly from ``reward_speed_range`` = [20, 30] m/s to [0, 1] and clipped
(not the raw speed in m/s: with raw speed a 30-step episode at ~25 m/s would return ≈ 150 per agent,
five times Table 11's good data). With ``normalize_reward=True`` (the default, as highway-env's own
``normalize_reward`` default) the reward is then mapped by highway-env's normalization from
[−25, 0.2] to [0, 1], ``(r_i + 25) / 25.2``: ≈ 1 per step while the car drives, ≈ 0 on a crash. A
crash-free episode thus returns ≈ its number of steps (29.8–30 for the 30-step ``fast`` episodes), on
the scale of Tseng's Table 11 (good 26.89 ± 1.92); ``normalize_reward=False`` gives the raw weighted
sum (≤ 0.2 per step, −25 on a crash). highway-env's ``right_lane_reward`` and ``on_road_reward`` terms
are not used (the paper's reward has neither).

**Episodes** end (``terminated``) when any controlled car crashes (highway-env only checks car 0),
and are truncated after ``duration`` steps (one decision per simulated second,
``policy_frequency`` = 1 Hz; ``episode_limit`` = ``duration``).

**Settings** ``fast=False``: highway-env's ``highway-v0`` (4 lanes, 50 cars, 15 Hz simulation, 40 s
episodes); ``fast=True``: ``highway-fast-v0`` (3 lanes, 20 cars, 5 Hz simulation, 30 s, collisions
checked only for controlled cars), about 7× faster per step (``benchmarks/env_adapters_throughput.py``:
≈ 3 vs ≈ 20 sub-env steps per CPU second; highway-env simulates every car in Python). The recipes
``tseng/highway/*`` use ``fast=True``. ``duration``, ``vehicles_count`` and ``lanes_count`` override the
setting's values.

**Expert hints** (``expert_hints=True``): ``info["expert_action"] [B, n]`` holds, for the returned
observation, the meta-action highway-env's IDM/MOBIL driver model advises each controlled car
(:func:`idm_mobil_action`); the scripted expert ``offmarl.policies.scripted.highway`` plays it. It is
computed per sub-env and car on every step (≈ 15 % of a highway-fast step; ``expert_hints=False``
skips it). ``info["crashed"] [B, n]`` and ``info["speed"] [B, n]`` (forward speed, m/s) describe the step.

Not restorable (:mod:`offmarl.envs._gym_batch`): a resume restarts the sub-envs' episodes.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np
from gymnasium import spaces

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import highway_env  # noqa: E402,F401  (ImportError here = the 'highway' extra is missing)
from highway_env.envs import HighwayEnv, HighwayEnvFast  # noqa: E402
from highway_env.vehicle.behavior import IDMVehicle  # noqa: E402

from offmarl.envs._gym_batch import GymBatchEnv, SubEnv, SubStep  # noqa: E402
from offmarl.envs.base import EnvSpec  # noqa: E402

NAME = "highway"
ACTIONS = ("no-op", "slow down", "accelerate", "lane left", "lane right")
NOOP, SLOWER, FASTER, LANE_LEFT, LANE_RIGHT = range(5)
# offmarl action -> highway-env DiscreteMetaAction index (ACTIONS_ALL = LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER)
TO_HIGHWAY = np.array([1, 4, 3, 0, 2], dtype=np.int64)
FROM_HIGHWAY = np.argsort(TO_HIGHWAY)  # highway-env index -> offmarl action: [3, 0, 4, 2, 1]
FEATURES = ("presence", "x", "y", "vx", "vy")
COLLISION_WEIGHT = 25.0
SPEED_WEIGHT = 0.2
REWARD_SPEED_RANGE = (20.0, 30.0)  # highway-env's default reward_speed_range [m/s]
# IDM/MOBIL advice: the fastest target speed at which IDM would brake at most this hard behind the car ahead
# (highway-env's bound on the braking a lane change may impose, reused as the comfortable braking limit)
MAX_ADVISED_BRAKING = IDMVehicle.LANE_CHANGE_MAX_BRAKING_IMPOSED  # [m/s^2]


def scaled_speed(forward_speed: np.ndarray) -> np.ndarray:
    """highway-env's ``high_speed_reward`` term: forward speed mapped from [20, 30] m/s to [0, 1], clipped."""
    low, high = REWARD_SPEED_RANGE
    return np.clip((np.asarray(forward_speed, dtype=np.float64) - low) / (high - low), 0.0, 1.0)


def agent_rewards(crashed: np.ndarray, forward_speed: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Per-agent reward ``25 · r_collision + 0.2 · r_high_speed`` (module docstring), optionally normalized.

    ``crashed [..., n]`` bool, ``forward_speed [..., n]`` m/s -> ``[..., n]`` float32."""
    reward = -COLLISION_WEIGHT * np.asarray(crashed, dtype=np.float64) + SPEED_WEIGHT * scaled_speed(forward_speed)
    if normalize:  # highway-env's lmap(reward, [collision_reward, high_speed_reward], [0, 1])
        reward = (reward + COLLISION_WEIGHT) / (COLLISION_WEIGHT + SPEED_WEIGHT)
    return reward.astype(np.float32)


def idm_mobil_action(env: HighwayEnv, vehicle: Any) -> int:
    """The meta-action (offmarl index) highway-env's IDM/MOBIL driver model advises controlled ``vehicle``.

    A highway-env ``IDMVehicle`` is built at the car's state (``IDMVehicle.create_from``) with the top
    target speed as its desired speed, and takes the car's place on the road while it is queried (so the
    neighbour searches do not find the car itself):

    * lateral (MOBIL, ``IDMVehicle.mobil``): when no lane change is under way, each reachable side lane
      that MOBIL accepts (an acceleration gain ≥ 0.2 m/s² for the car without imposing more than
      2 m/s² of braking on the new follower); when both do, the last one (highway-env's own loop order);
    * longitudinal (IDM, ``IDMVehicle.acceleration``): the fastest of the car's target speeds at which
      IDM would brake at most ``MAX_ADVISED_BRAKING`` = 2 m/s² behind the car ahead in its lane (and in
      the lane it is moving into, as ``IDMVehicle.act`` checks both during a lane change).

    The advice is the lane change MOBIL recommends unless that speed is below the car's current target
    speed *and* IDM at the car's current speed would brake harder than its comfortable deceleration
    (``IDMVehicle.COMFORT_ACC_MIN`` = −5 m/s²: then braking comes first); otherwise "slow down" when the
    speed is below the current target speed, "accelerate" when above, else no-op. Departure: IDM
    controls acceleration continuously; the meta-actions can only step the target speed among
    20 / 25 / 30 m/s once per second, so the advice quantizes IDM's choice of speed.
    """
    road = env.road
    proxy = IDMVehicle.create_from(vehicle)
    proxy.target_speed = float(vehicle.target_speeds[-1])
    slot = next(k for k, v in enumerate(road.vehicles) if v is vehicle)
    road.vehicles[slot] = proxy
    try:
        lanes = [proxy.lane_index]
        lateral = None
        if vehicle.lane_index == vehicle.target_lane_index:
            for lane in road.network.side_lanes(vehicle.lane_index):
                if road.network.get_lane(lane).is_reachable_from(vehicle.position) and proxy.mobil(lane):
                    lateral = LANE_LEFT if lane[2] < vehicle.lane_index[2] else LANE_RIGHT
        else:
            lanes.append(vehicle.target_lane_index)
        fronts = [road.neighbour_vehicles(proxy, lane)[0] for lane in lanes]
        now = min(proxy.acceleration(proxy, front) for front in fronts)  # IDM at the car's current speed
        wanted = 0
        for k, target in enumerate(vehicle.target_speeds):
            proxy.speed = float(target)
            if min(proxy.acceleration(proxy, front) for front in fronts) >= -MAX_ADVISED_BRAKING:
                wanted = k
    finally:
        road.vehicles[slot] = vehicle
    if lateral is not None and (wanted >= vehicle.speed_index or now >= IDMVehicle.COMFORT_ACC_MIN):
        return lateral  # overtake rather than brake, unless IDM needs more than its comfortable deceleration
    if wanted < vehicle.speed_index:
        return SLOWER
    return FASTER if wanted > vehicle.speed_index else NOOP


class HighwaySubEnv(SubEnv):
    """One highway-env ``HighwayEnv`` / ``HighwayEnvFast`` with ``controlled_vehicles`` agents."""

    def __init__(self, config: dict[str, Any], fast: bool, normalize_reward: bool, expert_hints: bool):
        cls = HighwayEnvFast if fast else HighwayEnv
        self.env = cls(config=copy.deepcopy(config), render_mode="rgb_array")
        self.n = int(config["controlled_vehicles"])
        self.normalize_reward = normalize_reward
        self.expert_hints = expert_hints

    def reset(self, seed: int | None) -> SubStep:
        obs, _ = self.env.reset(seed=seed)
        return self._view(obs, np.zeros(self.n, np.float32), np.zeros(self.n, bool), np.zeros(self.n, np.float32))

    def step(self, action: np.ndarray) -> SubStep:
        obs, _, _, truncated, _ = self.env.step(tuple(int(a) for a in TO_HIGHWAY[action]))
        cars = self.env.controlled_vehicles
        crashed = np.array([car.crashed for car in cars], dtype=bool)  # [n]
        speed = np.array([car.speed * np.cos(car.heading) for car in cars], dtype=np.float32)  # [n] forward
        view = self._view(obs, agent_rewards(crashed, speed, self.normalize_reward), crashed, speed)
        view.terminated = bool(crashed.any())
        view.truncated = bool(truncated)
        return view

    def render(self) -> np.ndarray:
        return np.asarray(self.env.render(), dtype=np.uint8)

    def close(self) -> None:
        self.env.close()

    def _view(self, obs: tuple, reward: np.ndarray, crashed: np.ndarray, speed: np.ndarray) -> SubStep:
        flat = np.stack([np.asarray(o, dtype=np.float32).reshape(-1) for o in obs])  # [n, obs_dim]
        avail = np.zeros((self.n, len(ACTIONS)), dtype=bool)
        for i, action_type in enumerate(self.env.action_type.agents_action_types):
            avail[i, FROM_HIGHWAY[action_type.get_available_actions()]] = True
        info: dict[str, Any] = {"crashed": crashed, "speed": speed}
        if self.expert_hints:
            info["expert_action"] = [idm_mobil_action(self.env, car) for car in self.env.controlled_vehicles]
        return SubStep(obs=flat, state=flat.reshape(-1), reward=reward, avail=avail, info=info)


def highway_config(fast: bool, controlled_vehicles: int, duration: int | None, vehicles_count: int | None,
                   lanes_count: int | None, observed_vehicles: int) -> dict[str, Any]:
    """The highway-env config of the adapter (``None`` entries keep the setting's own values)."""
    config: dict[str, Any] = {
        "controlled_vehicles": controlled_vehicles,
        "observation": {"type": "MultiAgentObservation",
                        "observation_config": {"type": "Kinematics", "vehicles_count": observed_vehicles,
                                               "features": list(FEATURES)}},
        "action": {"type": "MultiAgentAction", "action_config": {"type": "DiscreteMetaAction"}},
        "policy_frequency": 1,
    }
    for key, value in (("duration", duration), ("vehicles_count", vehicles_count), ("lanes_count", lanes_count)):
        if value is not None:
            config[key] = value
    base = (HighwayEnvFast if fast else HighwayEnv).default_config()
    return {**{k: base[k] for k in ("duration", "vehicles_count", "lanes_count", "simulation_frequency")}, **config}


def highway_spec(*, fast: bool = False, controlled_vehicles: int = 3, duration: int | None = None,
                 vehicles_count: int | None = None, lanes_count: int | None = None, observed_vehicles: int = 5,
                 normalize_reward: bool = True, expert_hints: bool = True) -> EnvSpec:
    """The spec of ``make_highway(**kwargs)``, its arguments checked, without building the env (the registry's
    ``env_spec``); ``spec.kwargs`` holds the setting's values where an argument is None."""
    for key, value, low in (("controlled_vehicles", controlled_vehicles, 1), ("duration", duration, 1),
                            ("vehicles_count", vehicles_count, 0), ("lanes_count", lanes_count, 1),
                            ("observed_vehicles", observed_vehicles, 1)):
        if value is not None and (not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low):
            raise ValueError(f"{NAME}: {key} must be an integer >= {low}, got {value!r}")
    config = highway_config(bool(fast), int(controlled_vehicles), duration, vehicles_count, lanes_count,
                            int(observed_vehicles))
    n, obs_dim = int(controlled_vehicles), len(FEATURES) * int(observed_vehicles)
    kwargs = {"fast": bool(fast), "controlled_vehicles": n, "duration": int(config["duration"]),
              "vehicles_count": int(config["vehicles_count"]), "lanes_count": int(config["lanes_count"]),
              "observed_vehicles": int(observed_vehicles), "normalize_reward": bool(normalize_reward),
              "expert_hints": bool(expert_hints)}
    return EnvSpec(name=NAME, n_agents=n, obs_dim=obs_dim, obs_dims=(obs_dim,) * n, state_dim=n * obs_dim,
                   action_space=spaces.Discrete(len(ACTIONS)), episode_limit=int(config["duration"]),
                   agent_types=("car",) * n, has_avail_actions=True, kwargs=kwargs)


def make_highway(num_envs: int = 1, seed: int | None = None, *, fast: bool = False, controlled_vehicles: int = 3,
                 duration: int | None = None, vehicles_count: int | None = None, lanes_count: int | None = None,
                 observed_vehicles: int = 5, normalize_reward: bool = True, expert_hints: bool = True) -> GymBatchEnv:
    """``num_envs`` highway-env sub-envs (module docstring for every argument).

    Args:
        fast: highway-fast-v0 settings instead of highway-v0.
        controlled_vehicles: number of agents n (the paper: 3).
        duration: steps per episode (= seconds); None = 40 (30 with ``fast``).
        vehicles_count, lanes_count: traffic cars and lanes; None = the setting's (50 / 4, fast 20 / 3).
        observed_vehicles: Kinematics rows per observation (own car + closest others), 5.
        normalize_reward: map the reward to [0, 1] per step as highway-env does (module docstring).
        expert_hints: compute ``info["expert_action"]`` (the IDM/MOBIL advice the scripted expert plays).
    """
    spec = highway_spec(fast=fast, controlled_vehicles=controlled_vehicles, duration=duration,
                        vehicles_count=vehicles_count, lanes_count=lanes_count, observed_vehicles=observed_vehicles,
                        normalize_reward=normalize_reward, expert_hints=expert_hints)
    k = spec.kwargs
    config = highway_config(k["fast"], k["controlled_vehicles"], k["duration"], k["vehicles_count"], k["lanes_count"],
                            k["observed_vehicles"])
    n = spec.n_agents
    info_fields: dict[str, tuple[Any, tuple[int, ...]]] = {"crashed": (bool, (n,)), "speed": (np.float32, (n,))}
    if expert_hints:
        info_fields["expert_action"] = (np.int64, (n,))
    return GymBatchEnv(spec, lambda index: HighwaySubEnv(config, bool(fast), bool(normalize_reward),
                                                         bool(expert_hints)), num_envs, seed, info_fields=info_fields,
                       state_info=("expert_action",) if expert_hints else ())
