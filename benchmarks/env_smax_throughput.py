"""SMAC maps on SMAX (offmarl.envs.smax): env-steps/s at B = 1 and B = 256 next to raw SMAX, and returns.

    python benchmarks/env_smax_throughput.py [--maps 3s_vs_3z 2s3z 8m] [--batch 1 256]
        [--seconds 6] [--returns [--episodes 256]]

Throughput (env-steps/s = sub-env steps per second = B x calls/s). Both rows step with the same
pre-sampled uniform random actions (over all actions; unavailable attacks are no-ops in SMAX):

* offmarl: ``make_env("smac_<map>", num_envs=B).step(actions)`` -- numpy in, numpy out: the compiled
  vmapped step (SMAC reward, win flag, auto-reset with final obs/state, avail_actions) plus the host
  transfers and the ``TimeStep`` assembly.
* raw SMAX: ``jax.jit(jax.vmap(HeuristicEnemySMAX.step))`` (jaxmarl's own auto-reset) with the actions
  already on the device, keys split inside the same jitted call, ``block_until_ready`` after every call
  (what a Python loop that reads each step's results pays at least), no avail_actions.

Each stepper is timed in ``--rounds`` alternating windows and keeps its best (the machine may be shared).
The last column is the wall time of the first call: tracing + XLA compilation, or tracing + a load
from jax's persistent compilation cache when an earlier run filled it (the header line names the
cache directory).

``--returns`` adds, per map, the per-agent episode return (SMAC scale: a won episode returns 20) and the
win rate of the uniform random policy and of the ``expert`` (SMAX's heuristic for the allies) against
SMAX's heuristic enemy: ``--episodes`` episodes, the first episode of each sub-env (the evaluation
protocol of ``offmarl.train.evaluate``), seed 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Callable

import numpy as np

DEFAULT_MAPS = ("3s_vs_3z", "2s3z", "8m", "3s5z")


def adapter_stepper(map_name: str, batch: int) -> tuple[Callable[[], None], float]:
    """``step()`` of offmarl's env with pre-sampled actions, and the wall time of the first (compiling) call."""
    from offmarl.envs import make_env

    env = make_env(f"smac_{map_name}", num_envs=batch, seed=0)
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, env.spec.n_actions, size=(batch, env.spec.n_agents)) for _ in range(16)]
    start = time.perf_counter()
    env.reset()
    compile_s = time.perf_counter() - start
    counter = iter(range(10**12))

    def step() -> None:
        env.step(actions[next(counter) % len(actions)])

    return step, compile_s


def raw_stepper(map_name: str, batch: int) -> tuple[Callable[[], None], float]:
    """``step()`` of jaxmarl's HeuristicEnemySMAX, jitted and vmapped, and the first call's wall time."""
    import jax
    import jax.numpy as jnp

    from offmarl.envs.smax import jaxmarl_env

    env = jaxmarl_env(map_name)
    n = env.num_allies

    def step(keys, state, actions):
        keys = jax.vmap(lambda k: jax.random.split(k)[0])(keys)
        obs, state, rewards, dones, infos = jax.vmap(env.step)(
            keys, state, {a: actions[:, i] for i, a in enumerate(env.agents)})
        return keys, state, obs, rewards, dones

    step = jax.jit(step)
    keys = jax.random.split(jax.random.PRNGKey(0), batch)
    _, state = jax.jit(jax.vmap(env.reset))(keys)
    rng = np.random.default_rng(0)
    actions = [jnp.asarray(rng.integers(0, env.num_ally_actions, size=(batch, n)), dtype=jnp.int32) for _ in range(16)]
    carry = {"keys": keys, "state": state}
    counter = iter(range(10**12))

    def call() -> None:
        out = step(carry["keys"], carry["state"], actions[next(counter) % len(actions)])
        jax.block_until_ready(out)
        carry["keys"], carry["state"] = out[0], out[1]

    start = time.perf_counter()
    call()
    return call, time.perf_counter() - start


def measure(step: Callable[[], None], seconds: float) -> float:
    """Calls per second of ``step`` over about ``seconds`` (after a warm-up)."""
    for _ in range(3):
        step()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(5):
            step()
        calls += 5
    return calls / elapsed


def best_of_alternating(steps: list[Callable[[], None]], seconds: float, rounds: int) -> list[float]:
    """The best calls/s of each stepper over ``rounds`` alternating windows (a shared, loaded machine
    slows whichever runs at a bad moment; alternating and keeping the best treats them alike)."""
    best = [0.0] * len(steps)
    for _ in range(rounds):
        for i, step in enumerate(steps):
            best[i] = max(best[i], measure(step, seconds / rounds))
    return best


def returns_row(map_name: str, episodes: int) -> str:
    from offmarl.envs import make_env
    from offmarl.policies.registry import make_behavior_policy
    from offmarl.train.evaluate import evaluate_policy

    spec = make_env(f"smac_{map_name}").spec
    cells = []
    for policy in ("random", "expert"):
        result = evaluate_policy(make_behavior_policy(policy, spec, seed=0), spec.name, {}, episodes, seed=0)
        returns = np.asarray(result["returns"]).mean(axis=1)
        cells.append(f"{returns.mean():.2f} ± {returns.std():.2f} | {100 * result['win_rate']:.1f} %")
    return f"| smac_{map_name} | {' | '.join(cells)} |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", nargs="+", default=list(DEFAULT_MAPS), help="SMAC map names (without smac_)")
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 256], help="numbers of sub-envs B")
    parser.add_argument("--seconds", type=float, default=6.0, help="timing per row and stepper")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing windows (the best counts)")
    parser.add_argument("--returns", action="store_true", help="also measure random / expert returns and win rates")
    parser.add_argument("--episodes", type=int, default=256, help="episodes per policy for --returns")
    parser.add_argument("--no-throughput", action="store_true", help="skip the throughput table")
    args = parser.parse_args(argv)

    import jax
    import jaxmarl

    import offmarl.envs.smax  # noqa: F401  (first: silences jaxmarl's import message, sets the compilation cache)

    cache = jax.config.jax_compilation_cache_dir
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"python {platform.python_version()}, jax {jax.__version__}, jaxmarl {jaxmarl.__version__}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, devices {jax.devices()}, compilation cache {cache}\n")
    if not args.no_throughput:
        print("| map | B | offmarl env-steps/s | raw SMAX env-steps/s | offmarl / raw | first call offmarl / raw (s) |")
        print("|---|---:|---:|---:|---:|---:|")
        for map_name in args.maps:
            for batch in args.batch:
                ours, ours_compile = adapter_stepper(map_name, batch)
                raw, raw_compile = raw_stepper(map_name, batch)
                ours_rate, raw_rate = (batch * r for r in best_of_alternating([ours, raw], args.seconds, args.rounds))
                print(f"| smac_{map_name} | {batch} | {ours_rate:,.0f} | {raw_rate:,.0f} | "
                      f"{ours_rate / raw_rate:.2f} | {ours_compile:.1f} / {raw_compile:.1f} |", flush=True)
    if args.returns:
        print(f"\nPer-agent episode return (mean ± std over {args.episodes} episodes, seed 0; a won episode "
              "returns 20) and win rate against SMAX's heuristic enemy\n")
        print("| env | random: return | random: win rate | expert: return | expert: win rate |")
        print("|---|---:|---:|---:|---:|")
        for map_name in args.maps:
            print(returns_row(map_name, args.episodes), flush=True)


if __name__ == "__main__":
    main()
