"""Building a policy pool: train online, keeping a checkpoint series, then bin it (:mod:`offmarl.collect.pools`).

One training path: :func:`build_pool` runs the :class:`~offmarl.train.experiment.Experiment` that
``offmarl train --env`` would, into the pool's cache directory, then bins its series. Built once: a pool
already in the cache is returned as it is; a half-trained run resumes from its checkpoint; concurrent
builders of one pool wait on a lock.
"""

from __future__ import annotations

from offmarl.collect.pools import Pool, PoolSpec, bin_pool
from offmarl.core.files import file_lock
from offmarl.train.experiment import Experiment, run_experiment


def build_pool(spec: PoolSpec, progress: bool = True) -> Pool:
    """The pool ``spec`` names, trained and binned if the cache does not hold it yet (module docstring)."""
    root = spec.cache_dir()
    with file_lock(root.parent / f".{root.name}.lock"):
        if (spec.pool_dir / "pool.json").is_file():
            return Pool.load(spec.pool_dir)
        run = root / "run"
        if not (run / "eval.json").is_file():
            run_experiment(Experiment(
                algo=spec.algo, env=spec.env, env_kwargs=spec.env_kwargs, num_envs=spec.num_envs, out=run,
                seed=spec.seed, steps=spec.steps, sets=spec.sets, preset=spec.preset,
                eval_episodes=spec.eval_episodes, series_every=spec.series_every, progress=progress,
                # an online learner's checkpoint holds its replay (QMIX: up to 5000 episodes), so not every
                # 500 frames as the offline default; resume is exact at any cadence, so it is not in the key
                checkpoint_every=max(1, spec.series_every // 5),
                resume=(run / "checkpoints" / "last.pt").is_file()))
        return bin_pool(run, spec.pool_dir, split=spec.split, episodes=spec.episodes, seed=spec.seed,
                        epsilon=spec.epsilon, progress=progress)
