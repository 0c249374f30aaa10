"""Write + load throughput of the HDF5 dataset format (figures in BENCHMARKS.md).

Dataset: 1,000,000 steps x 3 agents x 32-dim obs (agent 2 observes 28 features, zero-padded), discrete
actions (5, with avail masks), 48-dim state, episodes of 25 steps (40,000 episodes). Values are random
normals, so the compression ratio of obs/state is a worst case (real observations compress better).

Timed: ``save_dataset`` (includes its validation and the fsync before the atomic rename) uncompressed
and with lzf; ``load_dataset`` (median of 3, includes validation; the file was just written, so reads
come from the page cache); ``load_dataset(validate=False)``; ``validate_dataset`` alone. Run with

    .venv/bin/python benchmarks/data_layer_io.py [--steps N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from gymnasium import spaces

from offmarl.data.dataset import DatasetCard, MultiAgentDataset
from offmarl.data.io import load_dataset, save_dataset
from offmarl.data.validate import validate_dataset
from offmarl.envs.base import EnvSpec

N_AGENTS, OBS_DIM, STATE_DIM, N_ACTIONS, EPISODE_LEN = 3, 32, 48, 5, 25


def build(steps: int, seed: int = 0) -> MultiAgentDataset:
    rng = np.random.default_rng(seed)
    obs_dims = (OBS_DIM, OBS_DIM, OBS_DIM - 4)
    spec = EnvSpec(name="bench_env", n_agents=N_AGENTS, obs_dim=OBS_DIM, obs_dims=obs_dims, state_dim=STATE_DIM,
                   action_space=spaces.Discrete(N_ACTIONS), episode_limit=EPISODE_LEN,
                   agent_types=("a",) * N_AGENTS, has_avail_actions=True)
    episodes = steps // EPISODE_LEN
    T = episodes * EPISODE_LEN
    starts = np.arange(0, T, EPISODE_LEN, dtype=np.int64)
    obs = rng.standard_normal((T, N_AGENTS, OBS_DIM), dtype=np.float32)
    obs[:, 2, obs_dims[2]:] = 0.0
    final_obs = rng.standard_normal((episodes, N_AGENTS, OBS_DIM), dtype=np.float32)
    final_obs[:, 2, obs_dims[2]:] = 0.0
    avail = rng.random((T, N_AGENTS, N_ACTIONS)) < 0.7
    avail[..., 0] = True
    scores = rng.random((T, N_AGENTS, N_ACTIONS))
    scores[~avail] = -1.0
    truncations = np.zeros(T, dtype=bool)
    truncations[starts + EPISODE_LEN - 1] = True
    card = DatasetCard(env_name="bench_env", env_kwargs={}, env_spec=spec.to_dict(), n_agents=N_AGENTS,
                       agent_types=list(spec.agent_types), obs_dims=list(obs_dims), action_kind="discrete",
                       behavior={"policy": "random"}, seed=seed)
    ds = MultiAgentDataset(
        obs=obs, rewards=rng.standard_normal((T, N_AGENTS), dtype=np.float32), terminals=np.zeros(T, dtype=bool),
        truncations=truncations, episode_starts=starts, final_obs=final_obs, card=card,
        actions=scores.argmax(axis=-1).astype(np.int64),
        state=rng.standard_normal((T, STATE_DIM), dtype=np.float32),
        final_state=rng.standard_normal((episodes, STATE_DIM), dtype=np.float32), avail_actions=avail,
    )
    ds.refresh_card()
    return ds


def timed(fn: Callable[[], object], repeats: int = 1) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="Directory for the files (default: a temp dir).")
    args = parser.parse_args()

    ds = build(args.steps)
    in_memory = sum(a.nbytes for a in (ds.obs, ds.rewards, ds.terminals, ds.truncations, ds.episode_starts,
                                       ds.final_obs, ds.actions, ds.state, ds.final_state, ds.avail_actions))
    validate_s = timed(lambda: validate_dataset(ds), repeats=3)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for compression in (None, "lzf"):
            path = Path(tmp) / f"bench_{compression or 'none'}.h5"
            save_s = timed(lambda: save_dataset(ds, path, compression=compression))
            load_s = timed(lambda: load_dataset(path), repeats=3)
            raw_s = timed(lambda: load_dataset(path, validate=False), repeats=3)
            rows.append((compression or "none", save_s, load_s, raw_s, path.stat().st_size))
            path.unlink()

    mib = 1 << 20
    print(f"dataset: {ds.n_steps:,} steps x {N_AGENTS} agents x {OBS_DIM}-dim obs, state {STATE_DIM}, "
          f"{N_ACTIONS} discrete actions + avail, {ds.n_episodes:,} episodes; {in_memory / mib:.0f} MiB in memory")
    print(f"validate_dataset (in memory, median of 3): {validate_s:.3f} s\n")
    print("| compression | save (s) | load + validate (s, median of 3) | load, validate=False (s) | file size (MiB) | "
          "load throughput (MiB/s) |")
    print("|---|---|---|---|---|---|")
    for name, save_s, load_s, raw_s, size in rows:
        print(f"| {name} | {save_s:.2f} | {load_s:.2f} | {raw_s:.2f} | {size / mib:.0f} | "
              f"{in_memory / mib / load_s:.0f} |")
    print(f"\ncommand: .venv/bin/python benchmarks/data_layer_io.py --steps {args.steps}")


if __name__ == "__main__":
    main()
