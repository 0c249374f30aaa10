"""Environment throughput: agent-steps per second of offmarl's native batched envs vs mpe2.

    .venv/bin/python benchmarks/env_throughput.py [--num-envs 4096] [--seconds 3]

Each native env runs ``num_envs`` sub-envs stepped together with uniform random actions (pre-sampled,
so the timing is the env's own); mpe2's ``simple_spread_v3`` parallel env (N = 3, discrete actions)
runs one env with random actions, as the reference point a per-env Python implementation gives.
numpy is pinned to one thread (offmarl's targets are single-threaded: equal_space and mpe_cn_3ls3l
≥ 2 M agent-steps/s, fill_in and grid_world ≥ 400 k agent-steps/s at B = 4096). Envs whose module is
not built yet (or whose extra is missing) are listed as skipped. Prints a markdown table.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import itertools  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

# A builder takes the batch size and returns (step function, agent-steps per call).
Builder = Callable[[int], tuple[Callable[[], None], int]]


def native(name: str, target: float, **kwargs) -> tuple[Builder, float, str]:
    """Builder of registered env ``name`` stepped with pre-sampled uniform random actions."""

    def build(num_envs: int):
        from offmarl.envs import get_env_entry, make_env
        from offmarl.policies.random import RandomPolicy

        module = get_env_entry(name).factory.partition(":")[0]
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"module {module} not built yet")
        env = make_env(name, num_envs=num_envs, seed=0, **kwargs)
        ts = env.reset()
        policy = RandomPolicy(env.spec, seed=0)
        # sampled against the first step's action masks: the envs measured here accept every action
        actions = itertools.cycle([policy.act(ts) for _ in range(16)])

        def step() -> None:
            env.step(next(actions))

        return step, num_envs * env.spec.n_agents

    return build, target, f"offmarl `{name}` (B sub-envs)"


def mpe2_simple_spread(num_envs: int):
    """mpe2 ``simple_spread_v3.parallel_env(N=3, continuous_actions=False)``, one env, random actions."""
    from mpe2 import simple_spread_v3

    env = simple_spread_v3.parallel_env(N=3, continuous_actions=False, max_cycles=25)
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def step() -> None:
        if not env.agents:
            env.reset()
        env.step({agent: int(rng.integers(5)) for agent in env.agents})

    return step, 3


BENCHMARKS: dict[str, tuple[Builder, float | None, str]] = {
    "equal_space": native("equal_space", 2e6),
    "mpe_cn_3ls3l": native("mpe_cn_3ls3l", 2e6),
    "fill_in": native("fill_in", 4e5),
    "grid_world": native("grid_world", 4e5),
    "mpe2 simple_spread_v3": (mpe2_simple_spread, None, "mpe2 parallel env, N=3, discrete (1 env)"),
}


def measure(step: Callable[[], None], seconds: float) -> tuple[float, int]:
    """Calls per second of ``step`` over about ``seconds`` (after a short warm-up)."""
    for _ in range(5):
        step()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            step()
        calls += 10
    return calls / elapsed, calls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=4096, help="sub-envs of the batched (native) envs")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per env")
    parser.add_argument("--only", nargs="*", help="names of the rows to run (default: all)")
    args = parser.parse_args(argv)

    print(f"command: {shlex.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.processor() or platform.machine()}, "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} (figures drop when other processes share the cores)\n")
    print("| env | setup | B | env steps/s | agent-steps/s | target | status |")
    print("|---|---|---:|---:|---:|---:|---|")
    for name, (builder, target, setup) in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        batch = 1 if name.startswith("mpe2") else args.num_envs
        try:
            step, agent_steps = builder(batch)
        except ImportError as exc:
            print(f"| {name} | {setup} | {batch} | - | - | {_fmt(target)} | skipped: {exc} |")
            continue
        try:
            rate, _ = measure(step, args.seconds)
        except Exception as exc:  # one broken env must not hide the others' figures
            print(f"| {name} | {setup} | {batch} | - | - | {_fmt(target)} | failed: {type(exc).__name__}: {exc} |")
            continue
        throughput = rate * agent_steps
        status = "-" if target is None else ("ok" if throughput >= target else "BELOW TARGET")
        print(f"| {name} | {setup} | {batch} | {rate:,.0f} | {_fmt(throughput)} | {_fmt(target)} | {status} |")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e6:.2f} M" if value >= 1e6 else f"{value / 1e3:.0f} k"


if __name__ == "__main__":
    main()
