"""Throughput of the grid environments: Fill-In and Grid-World at B = 4096.

Measures agent-steps per second (= B * n * steps / seconds) of ``env.step`` with uniformly random
actions (drawn before timing), single thread, auto-resets included; reports wall-clock and process-CPU
rates (on a shared machine the CPU figure is the less noisy one). The target is >= 400 k agent-steps/s
for each env. With ``--returns`` it also measures the mean per-agent episode return of the scripted
expert and of uniformly random actions (the calibration figures quoted in the env docstrings).

    .venv/bin/python benchmarks/env_grid_throughput.py [--num-envs 4096] [--steps 200] [--returns]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # single thread, before numpy is imported
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from offmarl import make_env  # noqa: E402
from offmarl.policies.registry import make_behavior_policy  # noqa: E402

ENVS = ("fill_in", "grid_world")
TARGET = 400_000


def throughput(name: str, num_envs: int, steps: int, seed: int = 0) -> tuple[float, float]:
    """(wall, cpu) agent-steps/s of ``steps`` random-action steps of ``num_envs`` sub-envs."""
    env = make_env(name, num_envs=num_envs, seed=seed)
    n = env.spec.n_agents
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, env.spec.n_actions, size=(steps, num_envs, n))
    env.reset()
    for a in actions[:5]:  # warm-up (allocations, first auto-reset paths)
        env.step(a)
    wall, cpu = time.perf_counter(), time.process_time()
    for a in actions:
        env.step(a)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    work = num_envs * n * steps
    return work / wall, work / cpu


def mean_return(name: str, policy: str, num_envs: int, seed: int = 0) -> tuple[float, float, int]:
    """Mean and std of the per-agent episode return over the first ``num_envs`` finished episodes."""
    env = make_env(name, num_envs=num_envs, seed=seed)
    n, rng = env.spec.n_agents, np.random.default_rng(seed + 1)
    expert = make_behavior_policy("expert", env.spec, seed=seed) if policy == "expert" else None
    ts = env.reset()
    running, done_returns = np.zeros((num_envs, n)), []
    finished = np.zeros(num_envs, dtype=bool)
    while not finished.all():
        actions = expert.act(ts) if expert is not None else rng.integers(0, env.spec.n_actions, size=(num_envs, n))
        ts = env.step(actions)
        running += ts.reward
        ended = ts.done & ~finished  # first episode of each sub-env only
        done_returns.append(running[ended].mean(1))
        finished |= ts.done
        running[ts.done] = 0.0
    returns = np.concatenate(done_returns)
    return float(returns.mean()), float(returns.std()), len(returns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--returns", action="store_true", help="also measure expert / random returns (B = 1024)")
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    print("| env | B | agent-steps/s (wall) | agent-steps/s (CPU) | target |")
    print("|---|---|---|---|---|")
    for name in ENVS:
        wall, cpu = throughput(name, args.num_envs, args.steps)
        print(f"| {name} | {args.num_envs} | {wall / 1e3:,.0f} k | {cpu / 1e3:,.0f} k | {TARGET / 1e3:,.0f} k |")
    if args.returns:
        print("\n| env | policy | per-agent return (mean +- std) | episodes |")
        print("|---|---|---|---|")
        for name in ENVS:
            for policy in ("expert", "random"):
                mean, std, count = mean_return(name, policy, 1024)
                print(f"| {name} | {policy} | {mean:.2f} +- {std:.2f} | {count} |")


if __name__ == "__main__":
    main()
