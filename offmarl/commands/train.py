"""``offmarl train`` and ``offmarl eval``: parse, run the library's experiment, print.

What they do is :mod:`offmarl.train.experiment` (its docstring: sources, config precedence, run directory,
checkpoint protocol); this module only turns options into an :class:`~offmarl.train.experiment.Experiment`
and prints the records it returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import typer

from offmarl.algos.base import get_algo_class, list_algos
from offmarl.commands.envs import parse_env_set
from offmarl.core.seeding import set_threads
from offmarl.train.experiment import Experiment, evaluate_run, run_experiment


def algorithm_table() -> str:
    """One line per registered algorithm: name, learns from, action kinds, decentralized, ablations, variants."""
    rows = [("name", "learns_from", "discrete", "continuous", "decentralized", "ablations", "variants")]
    for name in list_algos():
        cls = get_algo_class(name)
        yes = lambda flag: "yes" if flag else "-"  # noqa: E731
        rows.append((name, "|".join(cls.learns_from), yes(cls.supports_discrete), yes(cls.supports_continuous),
                     yes(cls.decentralized_training), ",".join(cls.ablations) or "-", ",".join(cls.variants) or "-"))
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def run_train(*, algo: str | None, dataset: str | None = None, env: str | None = None, env_set: Sequence[str] = (),
              num_envs: int = 8, out: Path | None = None, seed: int = 0, steps: int | None = None,
              scale: float = 1.0, config: Path | None = None, sets: Sequence[str] = (), ablation: str | None = None,
              variant: str | None = None, preset: str | None = None, precision: str = "fp32", resume: bool = False,
              eval_episodes: int = 32, eval_every: int = 0, checkpoint_every: int = 500, device: str = "cpu",
              threads: int | None = None, list_algos: bool = False, quiet: bool = False, tag: str | None = None,
              checkpoint: str = "last", series_every: int | None = None) -> dict[str, Any] | None:
    """``offmarl train``: the experiment's record (None for ``--list``)."""
    if list_algos:
        typer.echo(algorithm_table())
        return None
    if threads is not None:
        set_threads(threads)
    record = run_experiment(Experiment(
        algo=algo or "", dataset=dataset, env=env, env_kwargs=parse_env_set(env_set), num_envs=num_envs, out=out,
        seed=seed, steps=steps, scale=scale, config=config, sets=tuple(sets), ablation=ablation, variant=variant,
        preset=preset, tag=tag, precision=precision, device=device, resume=resume, eval_episodes=eval_episodes,
        eval_every=eval_every, checkpoint=checkpoint, checkpoint_every=checkpoint_every, progress=not quiet,
        series_every=series_every))
    losses = ", ".join(f"{k} {v:.4g}" for k, v in record["losses"].items())
    typer.echo(f"{record['label']} on {record['source_label']}, seed {seed}: {record['steps']} steps ({losses}) "
               f"-> {record['run_dir']}")
    if "eval" in record:
        echo_eval(record["eval"])
    return record


def echo_eval(record: dict[str, Any]) -> None:
    if record.get("skipped"):
        typer.echo(f"eval: skipped: {record['skipped']}")
        return
    per_agent = ", ".join(f"{r:.3g}" for r in record["per_agent_return"])
    win = "" if record["win_rate"] is None else f", win rate {record['win_rate']:.3f}"
    typer.echo(f"eval: return {record['return_mean']:.4g} ± {record['return_std']:.3g} over {record['episodes']} "
               f"episodes (per agent: {per_agent}){win}")


def run_eval(*, run_dir: Path, episodes: int = 32, seed: int | None = None, target_return: float | None = None,
             render: Path | None = None, checkpoint: str = "last") -> dict[str, Any]:
    """``offmarl eval``: evaluate a run and rewrite its eval.json (:func:`offmarl.train.experiment.evaluate_run`)."""
    record = evaluate_run(run_dir, episodes=episodes, seed=seed, target_return=target_return, render=render,
                          checkpoint=checkpoint)
    echo_eval(record)
    if render is not None:
        typer.echo(f"wrote {render}")
    return record
