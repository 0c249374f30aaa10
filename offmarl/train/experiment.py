"""The experiment as a library API: what ``offmarl train``, ``offmarl eval`` and a bench worker do.

::

    from offmarl.train.experiment import Experiment, run_experiment, evaluate_run, load_run

    record = run_experiment(Experiment(algo="bc", dataset="tseng/fill_in", seed=0, steps=2_000))
    record["eval"]["return_mean"], record["run_dir"]
    algo, steps = load_run(record["run_dir"])            # the trained algorithm, for its policies
    evaluate_run(record["run_dir"], episodes=64)           # rewrites RUN/eval.json, returns it

Nothing here prints: every function returns records (dicts shaped like the files it writes) and raises
one-line errors; ``offmarl.commands`` parses options and prints, ``offmarl.bench`` runs suites of
experiments. An :class:`Experiment` holds the experiment's settings (what to learn from, the seed, the
budget, evaluation, the run directory), kept apart from the algorithm's own config (its ``Config``
dataclass, built by :func:`config_overrides` + :func:`offmarl.algos.base.build_config`).

What an algorithm learns from (``Algorithm.learns_from``: the modes it can train in; the experiment picks
the mode from what it names):

* ``"dataset"`` -- offline: ``Experiment.dataset`` names a file or a recipe; evaluation runs in the env of
  the dataset's card -- none for data imported from another library (``external:<task>``): its eval.json
  records the evaluation as skipped, with null scores. Steps count gradient updates.
* ``"env"`` -- online: ``Experiment.env`` (+ ``env_kwargs``, ``num_envs``) names the environment it
  interacts with through an :class:`offmarl.envs.registry.EnvSource`; evaluation runs in the same env.
  Steps count environment frames (one frame = one step of one sub-env).
* ``"dataset+env"`` -- a dataset stage then an env stage (finetuning, imitation with interaction): both
  are given; the env defaults to the dataset's.

Run, in order (:func:`run_experiment`):

1. resolve the source (dataset file or recipe, or env) and the algorithm config, later sources overriding
   earlier ones: per-env defaults (``offmarl/algos/env_defaults/<algo>.yaml``, keyed by env name) <
   ``config`` YAML < ``sets`` (``key=value``) < ``ablation`` / ``variant`` / ``preset``; then ``steps`` =
   ``Experiment.steps``, or the config's steps × ``scale``. Unknown keys are named in the error;
2. seed everything, build the algorithm and train it with :func:`offmarl.train.fit` in the run directory
   (default ``runs/<source label>/<algo label>/seed<k>``), evaluating every ``eval_every`` steps;
3. save the trained algorithm to ``RUN/model`` and evaluate it (``eval_episodes``), writing ``RUN/eval.json``.
   A failure writes its traceback to ``RUN/error.txt`` (removed when a later attempt succeeds).

Checkpoint protocol (``checkpoint``, eval.json's ``protocol.checkpoint``): ``last`` scores the weights at
the end of training; ``best`` the weights of the best evaluation during training (``RUN/best/``, kept by
the fit loop at every new best of the ``eval_every`` curve, the final evaluation included). The best is
*selected* on the evaluation seed's episodes, so scoring it on the same episodes would report the maximum
of noisy estimates; ``best`` is therefore scored on held-out episodes (seed :data:`HELD_OUT_SEED`).
The absolute metric (``absolute_metric``; Gorsane et al. 2022, "Towards a Standardised Performance
Evaluation Protocol for Cooperative MARL", the protocol it proposes) scores the best weights again on
:data:`ABSOLUTE_EPISODES_FACTOR` times ``eval_episodes`` held-out episodes, recorded beside the
``best`` score in eval.json (``absolute_return_mean``).

eval.json also carries the task's normalization returns (:func:`run_normalization`), so that the bench's
normalized scores need nothing but the eval.json files.
"""

from __future__ import annotations

import dataclasses
import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from offmarl.algos.base import (  # noqa: F401  (env_defaults, parse_sets: re-exported, the experiment API's)
    AlgoConfig,
    Algorithm,
    build_config,
    env_defaults,
    get_algo_class,
    load_algo,
    parse_sets,
    policies_take,
    source_mode,
)
from offmarl.collect.pools import Pool, PoolSpec, bin_pool, find_pool
from offmarl.collect.recipes import env_normalization
from offmarl.core.files import atomic_write_json, file_lock
from offmarl.core.seeding import seed_everything
from offmarl.data.sources import DatasetAndEnv, dataset_cards
from offmarl.envs.base import EnvSpec
from offmarl.envs.registry import EnvSource
from offmarl.train.checkpoint import load_checkpoint
from offmarl.train.evaluate import evaluate_policy, has_environment, skipped_evaluation, write_eval_json
from offmarl.train.loop import TrainConfig, fit, keep_if_best
from offmarl.train.run_dir import CHECKPOINTS, RunPaths, algo_label, default_run_dir, resolve_dataset

EVAL_SEED = 12345  # one evaluation seed for every run, so all seeds are scored on the same episodes
HELD_OUT_SEED = 54321  # episodes on which a best checkpoint (selected on EVAL_SEED's) is scored
ABSOLUTE_EPISODES_FACTOR = 10  # the absolute metric's episodes, in eval_episodes (Gorsane et al. 2022)
LEARNS_FROM = ("dataset", "env", "dataset+env")
SERIES_EVERY_ONLINE = 100_000  # frames between the saved algorithms of an online run's checkpoint series


# ---- algorithm configs -------------------------------------------------------------------------------
def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping of config keys in YAML file ``path`` (``--config``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"--config {path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def config_overrides(cls: type[Algorithm], env_name: str, config: str | Path | None = None, sets: Sequence[str] = (),
                     ablation: str | None = None, variant: str | None = None,
                     preset: str | None = None, online: bool = False) -> dict[str, Any]:
    """The merged overrides of the algorithm config (module docstring, step 1); ``online``, an algorithm
    with presets that also learns online starts there from its ``online_preset``."""
    overrides = env_defaults(cls.name, env_name)
    if online and getattr(cls, "online_preset", None) is not None:
        overrides["preset"] = cls.online_preset
    if config is not None:
        overrides.update(read_config_file(config))
    overrides.update(parse_sets(cls, sets))
    if ablation is not None:
        overrides["ablation"] = ablation
    if variant is not None:
        overrides["variant"] = variant
    if preset is not None:
        if "preset" not in {f.name for f in dataclasses.fields(cls.Config)}:
            raise ValueError(f"algorithm {cls.name!r} has no presets (its config has no 'preset' key); "
                             f"drop --preset {preset}")
        overrides["preset"] = preset
    return overrides


# ---- the experiment ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Experiment:
    """One training run's settings (the algorithm's own config is built from ``config``/``sets``/...).

    algo: registered algorithm name (``offmarl train --list``).
    dataset: a dataset file or a recipe name; needed by algorithms that learn from a dataset.
    env, env_kwargs, num_envs: the environment an online algorithm interacts with (``num_envs`` sub-envs
        stepped together); ``dataset+env`` learners default to the dataset's env.
    out: the run directory (None: ``runs/<source label>/<algo label>/seed<k>``).
    seed: seed of everything (initial weights, sampling, the env).
    steps / scale: the step budget (gradient updates offline, env frames online); None: the config's
        ``steps`` × ``scale``.
    config, sets, ablation, variant, preset: sources of the algorithm config (module docstring, step 1).
    tag: appended to the algorithm's label (``distill@long_teacher``) so runs that differ in overrides stay
        apart in tables; dataset_label replaces the source's label (a bench's recipe at another seed/scale).
    precision: ``fp32`` or ``bf16`` (autocast). device: ``cpu`` or ``cuda``.
    resume: continue the run directory's last checkpoint (it must exist).
    eval_episodes: episodes of the final evaluation (0: none); eval_every: steps between evaluations for the
        learning curve (0: the end only); checkpoint: which weights the final evaluation scores (``last`` |
        ``best``; ``best`` needs ``eval_every``); absolute_metric: also score the best weights on
        :data:`ABSOLUTE_EPISODES_FACTOR` x ``eval_episodes`` episodes (needs ``checkpoint="best"``).
    checkpoint_every: steps between checkpoints. progress: show a progress bar.
    series_every: steps between the saved algorithms of the checkpoint series (``checkpoints/series/``,
        listed with their evaluations in ``checkpoints/series.csv``: the raw material of policy pools); None:
        every :data:`SERIES_EVERY_ONLINE` frames for an online learner, none for an offline one; 0: none.
    init_run, init_weights: a trained run whose weights the algorithm starts from (its ``initialize_from``;
        ``finetune`` takes an offline run of its offline algorithm: ``offmarl finetune``), and which of them
        (``last`` | ``best``); recorded in config.json as ``init_run``. Not read again on ``resume``.
    """

    algo: str
    dataset: str | None = None
    env: str | None = None
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    num_envs: int = 8
    out: Path | None = None
    seed: int = 0
    steps: int | None = None
    scale: float = 1.0
    config: Path | None = None
    sets: tuple[str, ...] = ()
    ablation: str | None = None
    variant: str | None = None
    preset: str | None = None
    tag: str | None = None
    dataset_label: str | None = None
    precision: str = "fp32"
    device: str = "cpu"
    resume: bool = False
    eval_episodes: int = 32
    eval_every: int = 0
    checkpoint: str = "last"
    absolute_metric: bool = False
    checkpoint_every: int = 500
    progress: bool = True
    series_every: int | None = None
    init_run: Path | None = None
    init_weights: str = "last"

    def __post_init__(self) -> None:
        if not self.algo:
            raise ValueError("name an algorithm: offmarl train ALGO --dataset PATH (see offmarl train --list)")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {self.steps}")
        if self.scale <= 0:
            raise ValueError(f"--scale must be > 0, got {self.scale}")
        if self.num_envs < 1:
            raise ValueError(f"--num-envs must be >= 1, got {self.num_envs}")
        if self.eval_episodes < 0 or self.eval_every < 0 or (self.series_every or 0) < 0:
            raise ValueError("--eval-episodes, --eval-every and --series-every must be >= 0")
        check_checkpoint(self.checkpoint, self.eval_every if self.eval_episodes else 0)
        check_checkpoint(self.init_weights)
        if self.absolute_metric and self.checkpoint != "best":
            raise ValueError("the absolute metric re-evaluates the best checkpoint: it needs checkpoint best "
                             f"(and evaluations during training), not {self.checkpoint!r}")
        object.__setattr__(self, "sets", tuple(self.sets))
        object.__setattr__(self, "env_kwargs", dict(self.env_kwargs))


@dataclass(frozen=True)
class _Resolved:
    """What an experiment trains on: the fit loop's source, the spec, the label and the evaluation env."""

    source: Any
    spec: EnvSpec
    label: str
    eval_env: tuple[str, dict[str, Any]]
    meta: dict[str, Any]


def _mode(exp: Experiment, cls: type[Algorithm]) -> str:
    """The mode the experiment trains ``cls`` in, from what it names (``--dataset``, ``--env`` or both)."""
    modes = cls.learns_from
    unknown = [m for m in modes if m not in LEARNS_FROM]
    if unknown:
        raise ValueError(f"algorithm {cls.name!r} declares learns_from {unknown}; expected modes of {LEARNS_FROM}")
    if exp.dataset is not None and exp.env is not None and "dataset+env" in modes:
        return "dataset+env"
    if exp.dataset is not None and "dataset+env" in modes and "dataset" not in modes:
        return "dataset+env"  # the env defaults to the dataset's
    if exp.env is not None and "env" in modes:
        if exp.dataset is not None:
            raise ValueError(f"algorithm {cls.name!r} learns online from --env; it takes no --dataset")
        return "env"
    if exp.dataset is not None and "dataset" in modes:
        if exp.env is not None:
            raise ValueError(f"algorithm {cls.name!r} learns offline from --dataset; it takes no --env")
        return "dataset"
    if modes == ("env",):
        raise ValueError(f"algorithm {cls.name!r} learns online: name its environment with --env (see offmarl envs)")
    if exp.env is not None:
        raise ValueError(f"algorithm {cls.name!r} learns offline from --dataset; it takes no --env")
    raise ValueError("--dataset is required: a dataset file or a recipe name (see offmarl collect --list)"
                     + (" -- or --env to learn online" if "env" in modes else ""))


def _resolve_source(exp: Experiment, cls: type[Algorithm]) -> _Resolved:
    mode = _mode(exp, cls)
    if mode == "env":
        source = EnvSource(exp.env, exp.env_kwargs, exp.num_envs)
        return _Resolved(source, source.spec(), exp.dataset_label or exp.env, (exp.env, dict(exp.env_kwargs)),
                         {"source_label": exp.dataset_label or exp.env})
    data, dataset_source = resolve_dataset(exp.dataset, pool_provider=build_pool)
    if exp.dataset_label is not None:
        dataset_source = dataclasses.replace(dataset_source, label=exp.dataset_label)
    card = dataset_cards(data)[0]
    meta = {"dataset_source": dataset_source.to_dict(), "source_label": dataset_source.label}
    if mode == "dataset":
        return _Resolved(data, card.spec, dataset_source.label, (card.env_name, dict(card.env_kwargs)), meta)
    env = EnvSource(exp.env or card.env_name, exp.env_kwargs if exp.env else card.env_kwargs, exp.num_envs)
    if exp.env is not None:  # the run belongs to the env's column (a bench's env entry with demonstrations)
        meta["normalized_by"] = "env"
    return _Resolved(DatasetAndEnv(data, env), card.spec, dataset_source.label, (env.env_name, dict(env.env_kwargs)),
                     meta)


def build_algorithm(exp: Experiment, spec: EnvSpec, online: bool = False) -> Algorithm:
    """The algorithm of ``exp`` for env ``spec``, seeded (its initial weights come from ``exp.seed``), with
    ``config.steps`` the experiment's budget (``online``: it learns in the env)."""
    cls = get_algo_class(exp.algo)
    config = build_config(cls, config_overrides(cls, spec.name, exp.config, exp.sets, exp.ablation, exp.variant,
                                                exp.preset, online))
    config = dataclasses.replace(config, steps=budget(exp, cls.default_steps(config, spec)))
    seed_everything(exp.seed)
    return cls(spec, config, device=exp.device)


def budget(exp: Experiment, default: int) -> int:
    """The step budget: ``exp.steps``, or the algorithm's ``default`` budget (``Algorithm.default_steps``: its
    config's steps) × ``exp.scale`` (at least 1)."""
    return exp.steps if exp.steps is not None else max(1, round(default * exp.scale))


def run_experiment(exp: Experiment) -> dict[str, Any]:
    """Train and evaluate ``exp`` (module docstring). Returns the fit summary (``steps``, ``losses``, ``curve``,
    ``wall_time``, ``steps_per_s``) with ``run_dir``, ``label``, ``source_label`` and, when evaluated,
    ``eval`` (the eval.json record)."""
    cls = get_algo_class(exp.algo)
    resolved = _resolve_source(exp, cls)
    learner = build_algorithm(exp, resolved.spec, online=source_mode(resolved.source) == "env")
    label = algo_label(exp.algo, learner.config.ablation, learner.config.variant, exp.tag)
    paths = RunPaths(Path(exp.out) if exp.out is not None else default_run_dir(resolved.label, label, exp.seed))
    if exp.resume and not paths.checkpoint.exists():
        raise FileNotFoundError(f"--resume: {paths.checkpoint} does not exist (nothing to resume)")
    if not exp.resume and paths.checkpoint.exists():
        raise ValueError(f"run directory {paths.root} already holds a run ({paths.checkpoint}); "
                         "pass --resume to continue it or choose another --out")
    env_name, env_kwargs = resolved.eval_env
    in_env = has_environment(env_name)
    if not in_env and exp.checkpoint == "best":
        raise ValueError(f"--checkpoint best needs evaluations, and offmarl has no environment for {env_name}")
    eval_every = exp.eval_every if exp.eval_episodes and in_env else 0
    online = source_mode(resolved.source) != "dataset"
    series_every = exp.series_every if exp.series_every is not None else (SERIES_EVERY_ONLINE if online else 0)
    train_cfg = TrainConfig(steps=learner.total_steps, seed=exp.seed, checkpoint_every=exp.checkpoint_every,
                            eval_every=eval_every, eval_episodes=exp.eval_episodes, series_every=series_every,
                            precision=exp.precision, resume=exp.resume, progress=exp.progress)

    def evaluator(step: int, policy: Any = None) -> dict[str, Any]:
        return evaluate_policy(learner.policies() if policy is None else policy, env_name, env_kwargs,
                               exp.eval_episodes, EVAL_SEED)

    meta = {"algo_label": label, "eval_seed": EVAL_SEED, **resolved.meta}
    if exp.init_run is not None:
        meta["init_run"] = {"run": str(exp.init_run), "weights": exp.init_weights}
        if not exp.resume:
            initialize(learner, exp.init_run, exp.init_weights, exp.device)
    try:
        # an evaluator also when nothing is evaluated during training: the stage checks may score a policy
        evaluates = in_env and exp.eval_episodes
        summary = fit(learner, resolved.source, paths.root, train_cfg, evaluator if evaluates else None, meta)
        learner.save(paths.model)
        if exp.eval_episodes and in_env:
            summary["eval"] = _final_evaluation(exp, learner, paths, summary, evaluator, label, resolved)
        elif exp.eval_episodes:
            summary["eval"] = write_eval_json(paths.root, skipped_evaluation(env_name), algo=label,
                                              dataset=resolved.label, seed=exp.seed, curve=[], steps=summary["steps"])
    except Exception:
        paths.record_error(traceback.format_exc())
        raise
    paths.error.unlink(missing_ok=True)
    return {**summary, "run_dir": str(paths.root), "label": label, "source_label": resolved.label}


def initialize(learner: Algorithm, run_dir: str | Path, weights: str = "last", device: str = "cpu") -> None:
    """Start ``learner`` from the trained run ``run_dir``'s weights (``weights``: last or best), through its
    ``initialize_from``; an algorithm without one is named in the error."""
    if not hasattr(learner, "initialize_from"):
        raise ValueError(f"algorithm {learner.name!r} cannot start from another run's weights (--init-run)")
    trained, _ = load_run(run_dir, weights, device)
    trained.check_trainable()  # a policy-only model holds no optimizer state to continue from
    learner.initialize_from(trained)


def _final_evaluation(exp: Experiment, learner: Algorithm, paths: RunPaths, summary: dict[str, Any],
                      evaluator: Any, label: str, resolved: _Resolved) -> dict[str, Any]:
    """Score the last (or best) weights and write eval.json; the final point joins the curve."""
    result = evaluator(summary["steps"])
    curve, win_curve = summary["curve"], summary["win_curve"]
    if not curve or int(curve[-1][0]) != summary["steps"]:
        curve = curve + [[summary["steps"], result["return_mean"], result["return_std"]]]
        if result.get("win_rate") is not None:
            win_curve = win_curve + [[summary["steps"], result["win_rate"]]]
        atomic_write_json(paths.curve, curve)
        if exp.eval_every:  # the new final point may be the best
            keep_if_best(learner, paths, curve)
    scored_steps, eval_seed, absolute = summary["steps"], EVAL_SEED, None
    if exp.checkpoint == "best":
        best, scored_steps = load_run(paths.root, "best", exp.device)
        eval_seed = HELD_OUT_SEED
        result = evaluate_policy(best.policies(), *resolved.eval_env, exp.eval_episodes, eval_seed)
        if exp.absolute_metric:
            absolute = evaluate_policy(best.policies(), *resolved.eval_env,
                                       ABSOLUTE_EPISODES_FACTOR * exp.eval_episodes, eval_seed)
    online = source_mode(resolved.source) != "dataset"
    env_name, env_kwargs = resolved.eval_env
    return write_eval_json(paths.root, result, algo=label, dataset=resolved.label, seed=exp.seed, curve=curve,
                           checkpoint=exp.checkpoint, steps=scored_steps, eval_seed=eval_seed,
                           env=env_name if online else None, env_kwargs=env_kwargs, win_curve=win_curve,
                           normalization=run_normalization(run_config(paths.root)), absolute=absolute)


# ---- trained runs ----------------------------------------------------------------------------------------
def check_checkpoint(checkpoint: str, eval_every: int | None = None) -> None:
    """A known ``checkpoint``; for training (``eval_every`` given) ``best`` needs evaluations to select from."""
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"--checkpoint must be one of {', '.join(CHECKPOINTS)}, got {checkpoint!r}")
    if checkpoint == "best" and eval_every is not None and eval_every < 1:
        raise ValueError("--checkpoint best needs evaluations during training to select from (--eval-every N)")


def run_config(run_dir: str | Path) -> dict[str, Any]:
    """A run directory's config.json; a directory without one is named in the error."""
    paths = RunPaths(Path(run_dir))
    if not paths.config.is_file():
        raise FileNotFoundError(f"{paths.root} is not a run directory (no config.json)")
    return json.loads(paths.config.read_text())


def run_normalization(config: dict[str, Any]) -> dict[str, float | None]:
    """The normalization returns of a run's task (``random_return``, ``reference_return``) from its config.json:
    its dataset card's (None in a card of format version 1), or, for a run that learned online -- or that learned
    from a dataset in an env it named (``--env``: ``normalized_by`` env, a bench's env entry with demonstrations,
    whose column the online runs share) -- its env's (measured once per env:
    :func:`offmarl.collect.recipes.env_normalization`)."""
    keys = ("random_return", "reference_return")
    cards = config.get("dataset")
    if cards and config.get("normalized_by") != "env":
        card = cards[0] if isinstance(cards, list) else cards
        return {key: card.get(key) for key in keys}
    source = config["env_source"]
    measured = env_normalization(source["env_name"], source["env_kwargs"])
    return {key: measured[key] for key in keys}


def load_run(run_dir: str | Path, checkpoint: str = "last", device: str = "cpu") -> tuple[Algorithm, int]:
    """A run's trained algorithm and the step its weights are from -- the one way to load a run's policies.

    ``last``: ``RUN/model`` when training finished, else the last checkpoint (built from config.json's
    algorithm, config and env spec). ``best``: ``RUN/best`` (kept with ``eval_every``)."""
    check_checkpoint(checkpoint)
    paths = RunPaths(Path(run_dir))
    if checkpoint == "best":
        record = paths.best / "best.json"
        if not record.exists():
            raise FileNotFoundError(f"{paths.root} has no best checkpoint ({paths.best}): it was trained without "
                                    "evaluations during training (--eval-every) or by an offmarl that did not keep one")
        return load_algo(paths.best, device=device), int(json.loads(record.read_text())["step"])
    if (paths.model / "algo.json").exists():
        algo = load_algo(paths.model, device=device)
        return algo, int(algo.config.steps)
    if not paths.config.is_file():
        raise FileNotFoundError(f"{paths.root} is not a trained run directory: it has neither {paths.model} nor "
                                "config.json (both written by `offmarl train`)")
    config = run_config(paths.root)
    if not paths.checkpoint.exists():
        raise FileNotFoundError(f"{paths.root} has neither a trained model ({paths.model}) nor a checkpoint")
    cls = get_algo_class(config["algo"])
    algo = cls(EnvSpec.from_dict(config["env_spec"]), build_config(cls, config["algo_config"]), device=device)
    ckpt = load_checkpoint(paths.checkpoint)
    algo.load_state_dict(ckpt["algo"])
    return algo, int(ckpt["step"])


def make_policies(algo: Algorithm, target_return: float | None = None) -> Any:
    """``algo.policies()``, with ``target_return`` for algorithms whose policies take one."""
    if target_return is None:
        return algo.policies()
    if not policies_take(algo, "target_return"):
        raise ValueError(f"algorithm {algo.name!r} is not return-conditioned; --target-return does not apply")
    return algo.policies(target_return=target_return)


def run_env(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The environment (name, kwargs) a run is evaluated in, from its config.json."""
    if "env_source" in config:
        return config["env_source"]["env_name"], dict(config["env_source"]["env_kwargs"])
    card = config["dataset"][0] if isinstance(config["dataset"], list) else config["dataset"]
    return card["env_name"], dict(card["env_kwargs"])


def evaluate_run(run_dir: str | Path, episodes: int = 32, seed: int | None = None,
                 target_return: float | None = None, render: str | Path | None = None,
                 checkpoint: str = "last") -> dict[str, Any]:
    """Evaluate a run's policies and rewrite its eval.json, keeping the training curve; returns the record.

    ``seed`` None: :data:`EVAL_SEED` for the last weights, :data:`HELD_OUT_SEED` for the best ones.
    ``render``: also write a GIF of the first episode there."""
    config = run_config(run_dir)
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    env_name, env_kwargs = run_env(config)
    if not has_environment(env_name):
        raise ValueError(f"{run_dir} learned from data of {env_name}: offmarl has no environment to evaluate it in")
    algo, steps = load_run(run_dir, checkpoint)
    if seed is None:
        seed = HELD_OUT_SEED if checkpoint == "best" else EVAL_SEED
    try:
        result = evaluate_policy(make_policies(algo, target_return), env_name, env_kwargs, episodes, seed,
                                 render_path=render)
    except NotImplementedError as exc:  # the env has no renderer
        raise RuntimeError(f"--render: {exc}") from exc
    paths = RunPaths(Path(run_dir))
    curve = json.loads(paths.curve.read_text()) if paths.curve.exists() else []
    label = config.get("source_label") or config.get("dataset_source", {}).get("label", env_name)
    online = "env_source" in config  # the run interacted with its env (alone, or after / beside a dataset)
    win_curve = json.loads(paths.eval.read_text()).get("win_curve") if online and paths.eval.exists() else None
    return write_eval_json(paths.root, result, algo=config.get("algo_label", config["algo"]), dataset=label,
                           seed=int(config["train_config"]["seed"]),
                           curve=curve, checkpoint=checkpoint, target_return=target_return, steps=steps,
                           eval_seed=seed, env=env_name if online else None, env_kwargs=env_kwargs, win_curve=win_curve,
                           normalization=run_normalization(config))


def build_pool(spec: PoolSpec, progress: bool = True) -> Pool:
    """The policy pool ``spec`` names, trained and binned if the cache does not hold it yet.

    One training path: the :class:`Experiment` that ``offmarl train --env`` would run, into the pool's cache
    directory, keeping a checkpoint series; then :func:`offmarl.collect.pools.bin_pool`. Built once: a pool
    already in the cache, else among the shipped pools, is returned as it is (:func:`~offmarl.collect.pools.find_pool`);
    a half-trained run resumes from its checkpoint; concurrent builders of one pool wait on a lock. (Here rather
    than in a module of its own: resolving a trained recipe's dataset builds its pools, so :func:`run_experiment`
    needs it and it needs :func:`run_experiment`.)
    """
    found = find_pool(spec)
    if found is not None:
        return found
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
                        epsilon=spec.epsilon, progress=progress, spec=spec)
