"""``offmarl finetune RUN``: parse, run the library's experiment (:func:`offmarl.train.finetune.finetune_experiment`),
print."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import typer

from offmarl.commands.train import echo_eval
from offmarl.core.seeding import set_threads
from offmarl.train.experiment import run_experiment
from offmarl.train.finetune import finetune_experiment


def run_finetune(*, run: Path, algo: str = "mappo", steps: int | None = None, out: Path | None = None,
                 seed: int | None = None, weights: str = "last", num_envs: int = 8, config: Path | None = None,
                 sets: Sequence[str] = (), eval_episodes: int = 32, eval_every: int | None = None,
                 checkpoint_every: int = 500, resume: bool = False, device: str = "cpu", threads: int | None = None,
                 quiet: bool = False, tag: str | None = None) -> dict[str, Any]:
    """``offmarl finetune``: the finetuning run's record."""
    if threads is not None:
        set_threads(threads)
    exp = finetune_experiment(run, algo=algo, steps=steps, out=out, seed=seed, weights=weights, sets=sets,
                              eval_every=eval_every, num_envs=num_envs, config=config, eval_episodes=eval_episodes,
                              checkpoint_every=checkpoint_every, resume=resume, device=device, progress=not quiet,
                              tag=tag)
    record = run_experiment(exp)
    curve = record["curve"]
    start = f" (step 0, the offline policy: {curve[0][1]:.4g})" if curve and curve[0][0] == 0 else ""
    typer.echo(f"{record['label']} from {run}, seed {exp.seed}: {record['steps']} frames{start} -> {record['run_dir']}")
    if "eval" in record:
        echo_eval(record["eval"])
    return record
