"""Sampling throughput of the data layer.

Builds in memory a dataset of 1,000,000 steps x 3 agents x 32-dim observations (discrete actions with
5-action masks, 48-dim state, episodes of 25 steps) and times batches of each sampler: median over
``--repeats`` timings of ``--batches`` batches, one torch thread. Prints a markdown table and the command.

    .venv/bin/python benchmarks/data_layer_sampling.py [--steps 1000000] [--batches 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

import numpy as np
import torch
from gymnasium import spaces

from offmarl.data.dataset import DatasetCard, MultiAgentDataset
from offmarl.data.samplers import EpisodeSampler, TransitionSampler, WindowSampler
from offmarl.envs.base import EnvSpec

N_AGENTS, OBS_DIM, STATE_DIM, N_ACTIONS, EPISODE_LEN = 3, 32, 48, 5, 25


def build_dataset(n_steps: int, seed: int = 0) -> MultiAgentDataset:
    rng = np.random.default_rng(seed)
    n_episodes = n_steps // EPISODE_LEN
    n_steps = n_episodes * EPISODE_LEN
    spec = EnvSpec(name="bench", n_agents=N_AGENTS, obs_dim=OBS_DIM, obs_dims=(OBS_DIM,) * N_AGENTS,
                   state_dim=STATE_DIM, action_space=spaces.Discrete(N_ACTIONS), episode_limit=EPISODE_LEN,
                   agent_types=("agent",) * N_AGENTS, has_avail_actions=True)
    card = DatasetCard(env_name="bench", env_kwargs={}, env_spec=spec.to_dict(), n_agents=N_AGENTS,
                       agent_types=list(spec.agent_types), obs_dims=list(spec.obs_dims), action_kind="discrete")
    starts = np.arange(n_episodes, dtype=np.int64) * EPISODE_LEN
    last = starts + EPISODE_LEN - 1
    terminals = np.zeros(n_steps, bool)
    truncations = np.zeros(n_steps, bool)
    terminals[last[::2]] = True
    truncations[last[1::2]] = True
    actions = rng.integers(0, N_ACTIONS, size=(n_steps, N_AGENTS))
    avail = rng.random((n_steps, N_AGENTS, N_ACTIONS)) < 0.8
    avail[np.arange(n_steps)[:, None], np.arange(N_AGENTS)[None, :], actions] = True
    return MultiAgentDataset(
        obs=rng.standard_normal((n_steps, N_AGENTS, OBS_DIM), dtype=np.float32),
        rewards=rng.standard_normal((n_steps, N_AGENTS), dtype=np.float32),
        terminals=terminals, truncations=truncations, episode_starts=starts,
        final_obs=rng.standard_normal((n_episodes, N_AGENTS, OBS_DIM), dtype=np.float32),
        card=card, actions=actions,
        state=rng.standard_normal((n_steps, STATE_DIM), dtype=np.float32),
        final_state=rng.standard_normal((n_episodes, STATE_DIM), dtype=np.float32),
        avail_actions=avail,
    )


def time_sampler(sample: Callable[[], dict], batches: int, repeats: int) -> tuple[float, float]:
    """Median wall-clock and process-CPU seconds per ``batches`` batches over ``repeats`` timings.

    CPU time is reported next to wall time because the benchmark machine is shared: wall time includes
    waiting for a core, CPU time does not."""
    sample()  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        begin, begin_cpu = time.perf_counter(), time.process_time()
        for _ in range(batches):
            sample()
        wall.append(time.perf_counter() - begin)
        cpu.append(time.process_time() - begin_cpu)
    return float(np.median(wall)), float(np.median(cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)

    begin = time.perf_counter()
    ds = build_dataset(args.steps)
    build_s = time.perf_counter() - begin
    cases = [
        ("TransitionSampler, joint", 256, lambda: TransitionSampler(ds, 256, seed=0)),
        ("TransitionSampler, per-agent (agent=0)", 256, lambda: TransitionSampler(ds, 256, seed=0, agent=0)),
        ("WindowSampler K=20, joint", 64, lambda: WindowSampler(ds, 64, seed=0, K=20)),
        ("WindowSampler K=20, per-agent (agent=0)", 64, lambda: WindowSampler(ds, 64, seed=0, K=20, agent=0)),
        ("EpisodeSampler L=25, joint", 32, lambda: EpisodeSampler(ds, 32, seed=0)),
    ]
    print(f"dataset: {ds.n_steps:,} steps x {ds.n_agents} agents x {OBS_DIM}-dim obs, state {STATE_DIM}, "
          f"{ds.n_episodes:,} episodes of {EPISODE_LEN} (built in {build_s:.1f} s); torch threads 1; "
          f"median of {args.repeats} x {args.batches} batches\n")
    print("| sampler | batch | setup s | batches/s | samples/s | ms/batch (wall) | ms/batch (CPU) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, batch, make in cases:
        begin = time.perf_counter()
        sampler = make()
        setup_s = time.perf_counter() - begin
        wall, cpu = time_sampler(sampler.sample, args.batches, args.repeats)
        per_s = args.batches / wall
        print(f"| {name} | {batch} | {setup_s:.2f} | {per_s:,.0f} | {per_s * batch:,.0f} | "
              f"{1000 * wall / args.batches:.2f} | {1000 * cpu / args.batches:.2f} |")
    print(f"\ncommand: .venv/bin/python benchmarks/{sys.argv[0].rsplit('/', 1)[-1]} "
          f"--steps {args.steps} --batches {args.batches} --repeats {args.repeats}")


if __name__ == "__main__":
    main()
