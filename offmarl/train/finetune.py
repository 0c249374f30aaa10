"""``offmarl finetune RUN``: the experiment that continues an offline run online (the library side; the command
only parses and prints).

:func:`finetune_experiment` reads RUN's config.json and returns the :class:`~offmarl.train.experiment.Experiment`
of the ``finetune`` learner (:mod:`offmarl.algos.finetune`) that starts at its online stage from RUN's weights:

* the offline algorithm (the variant) and its whole config are RUN's (``offline`` lists every field, so the
  networks match RUN's exactly) and it has no offline stage (``offline_steps=0``);
* the dataset is RUN's (its file or recipe, under RUN's label), and so the environment is its card's;
* the weights are RUN's ``last`` (its trained model, or its last checkpoint) or ``best`` ones
  (``Experiment.init_run`` / ``init_weights``), loaded once before training (not again on ``--resume``);
* the budget ``steps`` is environment frames (default: the online part of ``finetune``'s paper budget, Table
  10's online epochs), evaluated every tenth of it unless ``eval_every`` says otherwise, and step 0 of the curve
  is the offline policy's evaluation;
* the seed is RUN's unless given; the run directory defaults to ``finetune[<algo>]/seed<k>`` beside RUN's
  ``<algo>/seed<k>``.

Errors are one line naming the problem: RUN is not a run directory, RUN trained an algorithm that is not
finetuned (only distill, idt, madt and bc are), RUN learned from data offmarl has no environment for,
``--steps`` below 1, an ``--algo`` other than mappo.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

from offmarl.algos.base import build_config, get_algo_class, parse_sets, set_text
from offmarl.envs.base import EnvSpec
from offmarl.train.evaluate import has_environment
from offmarl.train.experiment import Experiment, run_config, run_env

ONLINE_ALGOS = ("mappo",)  # the online algorithms that finetune (Tseng et al. §4.3: MAPPO)
FINETUNED = ("distill", "idt", "madt", "bc")  # the offline algorithms they continue (offmarl.algos.finetune)
CURVE_POINTS = 10  # evaluations over the budget when eval_every is not given


def finetune_experiment(run: str | Path, *, algo: str = "mappo", steps: int | None = None, out: Path | None = None,
                        seed: int | None = None, weights: str = "last", sets: Sequence[str] = (),
                        eval_every: int | None = None, **experiment: Any) -> Experiment:
    """The experiment that finetunes trained run ``run`` online with ``algo`` for ``steps`` env frames (module
    docstring); ``experiment`` sets the other :class:`~offmarl.train.experiment.Experiment` fields (num_envs,
    eval_episodes, checkpoint_every, resume, progress, device, tag, config)."""
    if algo not in ONLINE_ALGOS:
        raise ValueError(f"--algo {algo!r}: offmarl finetunes with {', '.join(ONLINE_ALGOS)} (Tseng et al. §4.3)")
    if steps is not None and steps < 1:
        raise ValueError(f"--steps must be >= 1 (environment frames), got {steps}")
    run = Path(run)
    config = run_config(run)  # "... is not a run directory (no config.json)"
    offline = config["algo"]
    if offline not in FINETUNED:
        raise ValueError(f"{run} is a run of {offline}: offmarl finetune continues a run of {', '.join(FINETUNED)}")
    env_name, _ = run_env(config)
    if not has_environment(env_name):
        raise ValueError(f"{run} learned from data of {env_name}: offmarl has no environment to finetune it in")
    source = config["dataset_source"]
    settings = [set_text(key, value) for key, value in config["algo_config"].items()]
    sets = (f"offline={json.dumps(settings)}", "offline_steps=0", *sets)
    seed = int(config["train_config"]["seed"]) if seed is None else seed
    if eval_every is None:
        cls = get_algo_class("finetune")
        overrides = {**parse_sets(cls, sets), "variant": offline}
        default = cls.default_steps(build_config(cls, overrides), EnvSpec.from_dict(config["env_spec"]))
        eval_every = max(1, (steps or default) // CURVE_POINTS)
    if out is None:
        out = run.parent.parent / f"finetune[{offline}]" / run.name
    return dataclasses.replace(
        Experiment(algo="finetune", dataset=source["recipe"] or source["path"], dataset_label=source["label"],
                   variant=offline, steps=steps, out=out, seed=seed, sets=sets, eval_every=eval_every,
                   init_run=run, init_weights=weights),
        **experiment)
