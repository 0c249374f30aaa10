"""MPE maps (offmarl.envs.mpe): agent-steps/s at B sub-envs vs mpe2, and the behaviour policies' returns.

    .venv/bin/python benchmarks/env_mpe_throughput.py [--num-envs 4096] [--seconds 3] [--returns]

Throughput: each env steps ``num_envs`` sub-envs at once with pre-sampled uniform random actions (so the
timing is the env's own: physics, observations, rewards, auto-resets), in wall-clock and in CPU time
of this process (the latter is robust to other load on a shared machine). offmarl's target is
mpe_cn_3ls3l >= 2 M agent-steps/s at B = 4096, single-threaded (numpy is pinned to one thread here).
The reference is mpe2's ``simple_spread_v3.parallel_env(N=3, local_ratio=0, continuous_actions=False)``,
one env stepped from Python, the way mpe2 runs.

``--returns`` adds the mean per-agent episode return (± std over episodes) of uniform random actions,
of the scripted expert and of the expert with ``noise=0.5`` ("medium"), from ``num_envs`` episodes
(seed 0), next to SIT Table 5's policy-pool ranges. SIT's returns look like sums over agents (our
random CN_3ls3l x 3 agents falls in its random pool, our expert x 3 in its expert pool), so the table
also gives ours times ``n``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

from offmarl.envs import make_env  # noqa: E402
from offmarl.policies.registry import make_behavior_policy  # noqa: E402

TARGETS = {"mpe_cn_3ls3l": 2e6}
# SIT (Tian et al. 2023) Table 5 (App. C.2): random / medium / expert pool return ranges.
SIT_POOLS = {
    "mpe_cn_3ls3l": "-174.41~-133.28 / -133.28~-78.44 / -78.44~-37.32",
    "mpe_cn_4ls4l": "-288.89~-214.47 / -214.47~-115.24 / -115.24~-40.81",
    "mpe_pp_3p1p": "-306.57~-231.08 / -231.08~-130.44 / -130.44~-54.96",
}


def native_stepper(name: str, num_envs: int) -> tuple[Callable[[], None], int]:
    env = make_env(name, num_envs=num_envs, seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, 5, size=(num_envs, env.spec.n_agents)) for _ in range(16)]
    counter = iter(range(10**12))

    def step() -> None:
        env.step(actions[next(counter) % len(actions)])

    return step, num_envs * env.spec.n_agents


def mpe2_stepper() -> tuple[Callable[[], None], int]:
    from mpe2 import simple_spread_v3

    env = simple_spread_v3.parallel_env(N=3, local_ratio=0.0, max_cycles=25, continuous_actions=False)
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def step() -> None:
        if not env.agents:
            env.reset()
        env.step({agent: int(rng.integers(5)) for agent in env.agents})

    return step, 3


def measure(step: Callable[[], None], seconds: float) -> tuple[float, float]:
    """Calls of ``step`` per wall-clock second and per CPU second of this process, over about ``seconds``.

    On a shared machine (load above the core count) the wall-clock rate drops with the other processes'
    load; the CPU-time rate is this single thread's own throughput."""
    for _ in range(5):
        step()
    calls, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            step()
        calls += 10
    return calls / elapsed, calls / (time.process_time() - cpu_start)


def episode_returns(name: str, policy_name: str | None, num_envs: int, **kwargs) -> np.ndarray:
    """Per-agent-average returns of ``num_envs`` episodes (uniform random actions when ``policy_name`` is None)."""
    env = make_env(name, num_envs=num_envs, seed=0)
    ts = env.reset()
    policy = None if policy_name is None else make_behavior_policy(policy_name, env.spec, seed=0, **kwargs)
    rng = np.random.default_rng(1)
    total = np.zeros(num_envs)
    for _ in range(env.spec.episode_limit):
        actions = rng.integers(0, 5, size=(num_envs, env.spec.n_agents)) if policy is None else policy.act(ts)
        ts = env.step(actions)
        total += ts.reward.mean(axis=1)
    return total


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e6:.2f} M" if value >= 1e6 else f"{value / 1e3:.1f} k"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=4096,
                        help="sub-envs of offmarl's envs (and episodes for --returns)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per row")
    parser.add_argument("--returns", action="store_true", help="also measure random / expert / medium returns")
    args = parser.parse_args(argv)

    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores\n")
    print("| env | B | env steps/s | agent-steps/s (wall) | agent-steps/s (CPU time) | target | status (wall / CPU) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name in ("mpe_cn_3ls3l", "mpe_cn_4ls4l", "mpe_pp_3p1p"):
        step, agent_steps = native_stepper(name, args.num_envs)
        wall, cpu = measure(step, args.seconds)
        target = TARGETS.get(name)
        status = "-" if target is None else " / ".join(
            "ok" if rate * agent_steps >= target else "below" for rate in (wall, cpu))
        print(f"| offmarl `{name}` | {args.num_envs} | {wall:,.0f} | {_fmt(wall * agent_steps)} | "
              f"{_fmt(cpu * agent_steps)} | {_fmt(target)} | {status} |")
    try:
        step, agent_steps = mpe2_stepper()
    except ImportError as exc:
        print(f"| mpe2 `simple_spread_v3` (N=3) | 1 | - | - | - | - | skipped: {exc} |")
    else:
        wall, cpu = measure(step, args.seconds)
        print(f"| mpe2 `simple_spread_v3` (N=3) | 1 | {wall:,.0f} | {_fmt(wall * agent_steps)} | "
              f"{_fmt(cpu * agent_steps)} | - | - |")

    if not args.returns:
        return
    print(f"\nPer-agent episode return, mean ± std over {args.num_envs} episodes (seed 0); "
          "'x n' = mean times the number of agents (SIT's scale)\n")
    print("| env | random | expert | medium (expert, noise 0.5) | random x n | expert x n | "
          "SIT Table 5 pools (random / medium / expert) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name in ("mpe_cn_3ls3l", "mpe_cn_4ls4l", "mpe_pp_3p1p"):
        n = make_env(name).spec.n_agents
        rand = episode_returns(name, None, args.num_envs)
        expert = episode_returns(name, "expert", args.num_envs)
        medium = episode_returns(name, "expert", args.num_envs, noise=0.5)
        cells = [f"{r.mean():.2f} ± {r.std():.2f}" for r in (rand, expert, medium)]
        print(f"| {name} | {' | '.join(cells)} | {n * rand.mean():.1f} | {n * expert.mean():.1f} | {SIT_POOLS[name]} |")


if __name__ == "__main__":
    main()
