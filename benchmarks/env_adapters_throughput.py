"""highway-env and MaMuJoCo adapters: env-steps/s next to the raw packages, and the Highway policies' returns.

    python benchmarks/env_adapters_throughput.py [--seconds 10] [--only highway|mamujoco]
        [--returns EPISODES] [--tiers EPISODES]   (--only none: skip the throughput table)

Needs the extras: ``pip install -e ".[highway,mamujoco]" torch==2.13.0``.

Throughput (sub-env steps per second, wall clock and CPU time of this process; the CPU figure is robust
to other load on a shared machine), uniform random actions, episodes restarted when they end:

* raw highway-env: one ``HighwayEnv`` / ``HighwayEnvFast`` with the adapter's multi-agent config
  (3 controlled cars, MultiAgentObservation of Kinematics, MultiAgentAction of DiscreteMetaAction),
  stepped with a tuple of actions and reset when highway-env ends the episode;
* offmarl ``highway`` at B = 1 and B = 8, with and without ``expert_hints`` (the IDM/MOBIL advice);
* raw MaMuJoCo: ``mamujoco_v1.parallel_env(scenario, conf)`` (the adapter's settings: no contact
  forces, 1000 steps) stepped through its own PettingZoo API with a dict of actions, reset when it ends;
  offmarl ``mamujoco_*`` at B = 1 and B = 16.

``--returns N``: per-agent return (mean ± std over N episodes, seed 0) of the IDM/MOBIL expert and of
uniform random available actions on ``highway`` with ``fast=True`` (the recipes' setting), next to
Tseng Table 11. ``--tiers N``: collects the normal and poor tiers with N episodes (and N pilot episodes,
instead of the recipes' 1000 and 256) and prints the achieved normalized scores and mixing rates.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

from offmarl.envs import make_env  # noqa: E402

MAMUJOCO = ("mamujoco_halfcheetah_2x3", "mamujoco_walker2d_2x3", "mamujoco_hopper_3x1", "mamujoco_ant_2x4",
            "mamujoco_ant_4x2")
TABLE_11 = "good 26.89 ± 1.92, normal 20.91 ± 1.39, poor 18.71 ± 1.53"


def row(label: str, step: Callable[[], int], seconds: float) -> tuple[str, float, float]:
    """One table row, printed as soon as it is measured."""
    wall, cpu = rate(step, seconds)
    print(f"| {label} | {wall:,.1f} | {cpu:,.1f} |", flush=True)
    return label, wall, cpu


def rate(step: Callable[[], int], seconds: float) -> tuple[float, float]:
    """(sub-env steps per wall second, per CPU second of this process) of repeated ``step()`` calls."""
    step()  # warm-up (first reset, lazy imports)
    done, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < seconds:
        done += step()
    return done / (time.perf_counter() - wall0), done / max(time.process_time() - cpu0, 1e-9)


# ---- highway -------------------------------------------------------------------------------------------
def raw_highway(fast: bool) -> Callable[[], int]:
    from highway_env.envs import HighwayEnv, HighwayEnvFast

    from offmarl.envs.highway import highway_config

    config = highway_config(fast, 3, None, None, None, 5)
    env = (HighwayEnvFast if fast else HighwayEnv)(config=config)
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def step() -> int:
        _, _, terminated, truncated, _ = env.step(tuple(int(a) for a in rng.integers(0, 5, 3)))
        if terminated or truncated:
            env.reset()
        return 1

    return step


def adapter(name: str, num_envs: int, **kwargs) -> Callable[[], int]:
    env = make_env(name, num_envs=num_envs, seed=0, **kwargs)
    ts = env.reset()
    rng = np.random.default_rng(0)
    spec = env.spec

    def step() -> int:
        nonlocal ts
        if spec.discrete:
            actions = np.where(ts.avail_actions, rng.random(ts.avail_actions.shape), -1.0).argmax(-1)
        else:
            actions = rng.uniform(-1, 1, (num_envs, spec.n_agents, spec.act_dim)).astype(np.float32)
        ts = env.step(actions)
        return num_envs

    return step


def highway_throughput(seconds: float) -> list[tuple[str, float, float]]:
    rows = []
    for fast in (False, True):
        setting = "highway-fast" if fast else "highway-v0"
        rows.append(row(f"raw highway-env ({setting})", raw_highway(fast), seconds))
        for num_envs, hints in ((1, False), (1, True), (8, True)):
            label = f"offmarl highway fast={fast} B={num_envs}{' +expert hints' if hints else ''}"
            rows.append(row(label, adapter("highway", num_envs, fast=fast, expert_hints=hints), seconds))
    return rows


def highway_returns(episodes: int) -> None:
    from offmarl.collect.rollout import rollout
    from offmarl.policies.registry import make_behavior_policy

    env = make_env("highway", num_envs=min(episodes, 32), seed=0, fast=True)
    print(f"\nhighway (fast=True) per-agent return over {episodes} episodes, seed 0 (Tseng Table 11: {TABLE_11})")
    for name in ("expert", "random"):
        start = time.perf_counter()
        ds = rollout(env, make_behavior_policy(name, env.spec, seed=0), episodes, 0, progress=False,
                     behavior={"policy": name})
        returns = ds.episode_returns()
        lengths = np.diff(np.append(ds.episode_starts, ds.n_steps))
        print(f"  {name:7s} {returns.mean():7.3f} ± {returns.std():.3f}   episode length {lengths.mean():5.1f}   "
              f"crashes {ds.terminals.sum()}/{episodes}   ({time.perf_counter() - start:.0f} s)")


def highway_tiers(episodes: int) -> None:
    from offmarl.collect.tiers import collect_tier
    from offmarl.policies.registry import make_behavior_policy

    env = make_env("highway", num_envs=min(episodes, 32), seed=0, fast=True)
    print(f"\nhighway (fast=True) tiers with {episodes} episodes and {episodes} pilot episodes")
    for tier in ("normal", "poor"):
        start = time.perf_counter()
        ds = collect_tier(env, lambda s: make_behavior_policy("expert", env.spec, seed=s), tier, episodes, 0,
                          pilot_episodes=episodes, progress=False)
        cal = ds.card.extra["tier"]
        print(f"  {tier:6s} return {ds.card.return_mean:.3f} ± {ds.card.return_std:.3f}   "
              f"score {cal['achieved_score']:.3f} "
              f"(target {cal['target']:.2f})   rate {cal['rate']:.3f}   R_random {cal['r_random']:.3f}   "
              f"R_expert {cal['r_expert']:.3f}   ({time.perf_counter() - start:.0f} s)")


# ---- mamujoco ------------------------------------------------------------------------------------------
def raw_mamujoco(name: str) -> Callable[[], int]:
    from offmarl.envs.mamujoco import MAPS, build_multiagent

    env = build_multiagent(*MAPS[name], agent_obsk=1, episode_limit=1000)  # the adapter's settings (no contact forces)
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def step() -> int:
        actions = {a: rng.uniform(-1, 1, env.action_space(a).shape).astype(np.float32) for a in env.possible_agents}
        env.step(actions)
        if not env.agents:  # MaMuJoCo empties its agent list when the episode ends
            env.reset()
        return 1

    return step


def mamujoco_throughput(seconds: float) -> list[tuple[str, float, float]]:
    rows = []
    for name in MAMUJOCO:
        rows.append(row(f"raw MaMuJoCo {name.removeprefix('mamujoco_')}", raw_mamujoco(name), seconds))
        for num_envs in (1, 16):
            rows.append(row(f"offmarl {name} B={num_envs}", adapter(name, num_envs), seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="timing window per row")
    parser.add_argument("--only", choices=("highway", "mamujoco", "none"), default=None,
                        help="throughput of one package only, or none (then only --returns / --tiers run)")
    parser.add_argument("--returns", type=int, default=0, help="episodes for the highway returns (0: skip)")
    parser.add_argument("--tiers", type=int, default=0, help="episodes for the highway tier check (0: skip)")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}")
    if args.only != "none":
        print("\n| env | sub-env steps/s (wall) | steps/s (CPU) |\n|---|---:|---:|")
    if args.only in (None, "highway"):
        highway_throughput(args.seconds)
    if args.only in (None, "mamujoco"):
        mamujoco_throughput(args.seconds)
    if args.returns:
        highway_returns(args.returns)
    if args.tiers:
        highway_tiers(args.tiers)


if __name__ == "__main__":
    main()
