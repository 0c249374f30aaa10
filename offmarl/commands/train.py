"""``offmarl train`` and ``offmarl eval``.

``offmarl train ALGO --dataset PATH|RECIPE``:

1. resolves the dataset (a file, else a recipe built once into the recipe cache; ``offmarl.train.run_dir``);
2. builds the algorithm config, later sources overriding earlier ones: the algorithm's per-env defaults
   (``offmarl/algos/env_defaults/<algo>.yaml``, keyed by env name) < ``--config`` YAML < ``--set
   key=value`` < ``--ablation`` / ``--variant`` / ``--preset``; then ``steps`` = ``--steps``, or the
   config's steps × ``--scale``. Unknown keys are named in the error;
3. seeds everything, builds the algorithm and trains it with :func:`offmarl.train.fit` in the run
   directory (default ``runs/<dataset label>/<algo label>/seed<k>``), evaluating every ``--eval-every``
   steps for the learning curve;
4. saves the trained algorithm to ``RUN/model`` and evaluates it (``--eval-episodes``) in the dataset's
   env, writing ``RUN/eval.json``. A failure writes its traceback to ``RUN/error.txt``.

``offmarl eval RUN`` loads ``RUN/model`` (or, for a run that has not finished, the algorithm in
``RUN/checkpoints/last.pt``), evaluates it and rewrites ``RUN/eval.json``, keeping the training curve.

Checkpoint protocol (``--checkpoint``, eval.json's ``protocol.checkpoint``): ``last`` scores the weights at
the end of training; ``best`` the weights of the best evaluation during training (``RUN/best/``, kept by
the fit loop at every new best of the ``--eval-every`` curve, the final evaluation included). The best is
*selected* on the evaluation seed's episodes, so scoring it on the same episodes would report the maximum
of noisy estimates; ``best`` is therefore scored on held-out episodes (seed ``HELD_OUT_SEED``) unless a
seed is given.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import traceback
from pathlib import Path
from typing import Any, Sequence

import torch
import typer
import yaml

from offmarl.algos.base import Algorithm, build_config, get_algo_class, list_algos, load_algo
from offmarl.core.files import atomic_write_json
from offmarl.train.checkpoint import load_checkpoint
from offmarl.train.evaluate import evaluate_policy, write_eval_json
from offmarl.train.loop import TrainConfig, fit, keep_if_best
from offmarl.train.run_dir import CHECKPOINTS, RunPaths, algo_label, dataset_cards, default_run_dir, resolve_dataset
from offmarl.core.seeding import seed_everything

EVAL_SEED = 12345  # one evaluation seed for every run, so all seeds are scored on the same episodes
HELD_OUT_SEED = 54321  # episodes on which a best checkpoint (selected on EVAL_SEED's) is scored
ENV_DEFAULTS_DIR = Path(__file__).resolve().parent.parent / "algos" / "env_defaults"


# ---- algorithm configs -------------------------------------------------------------------------------
def env_defaults(algo: str, env_name: str) -> dict[str, Any]:
    """Per-env config defaults of ``algo`` from ``offmarl/algos/env_defaults/<algo>.yaml`` (may be empty)."""
    path = ENV_DEFAULTS_DIR / f"{algo}.yaml"
    if not path.exists():
        return {}
    table = yaml.safe_load(path.read_text()) or {}
    entry = table.get(env_name) or {}
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: entry {env_name!r} must be a mapping of config keys")
    return dict(entry)


def read_config_file(path: str | Path) -> dict[str, Any]:
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


def parse_sets(cls: type[Algorithm], sets: Sequence[str]) -> dict[str, Any]:
    """``["lr=3e-4", ...]`` → ``{"lr": "3e-4"}``; values of fields whose default is None are read as JSON
    (``null``, numbers, lists), the others are converted by the config's own coercion."""
    base = cls.Config()
    out: dict[str, Any] = {}
    for item in sets:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        if hasattr(base, key) and getattr(base, key) is None:
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass  # a plain string
        out[key] = value
    return out


def config_overrides(cls: type[Algorithm], env_name: str, config: str | Path | None, sets: Sequence[str],
                     ablation: str | None, variant: str | None, preset: str | None) -> dict[str, Any]:
    """The merged overrides of the algorithm config (module docstring, step 2)."""
    overrides = env_defaults(cls.name, env_name)
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


def algorithm_table() -> str:
    """One line per registered algorithm: name, action kinds, decentralized training, ablations, variants."""
    rows = [("name", "discrete", "continuous", "decentralized", "ablations", "variants")]
    for name in list_algos():
        cls = get_algo_class(name)
        yes = lambda flag: "yes" if flag else "-"  # noqa: E731
        rows.append((name, yes(cls.supports_discrete), yes(cls.supports_continuous), yes(cls.decentralized_training),
                     ",".join(cls.ablations) or "-", ",".join(cls.variants) or "-"))
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


# ---- policies ----------------------------------------------------------------------------------------
def make_policies(algo: Algorithm, target_return: float | None = None) -> Any:
    """``algo.policies()``, with ``target_return`` for algorithms whose policies take one."""
    if target_return is None:
        return algo.policies()
    params = inspect.signature(algo.policies).parameters
    if "target_return" not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise ValueError(f"algorithm {algo.name!r} is not return-conditioned; --target-return does not apply")
    return algo.policies(target_return=target_return)


def _eval_env(config_dataset: Any) -> tuple[str, dict[str, Any]]:
    card = config_dataset[0] if isinstance(config_dataset, list) else config_dataset
    return card["env_name"], dict(card["env_kwargs"])


def _with_final_point(curve: list[list[float]], step: int, result: dict[str, Any]) -> list[list[float]]:
    if curve and int(curve[-1][0]) == step:
        return curve
    return curve + [[step, result["return_mean"], result["return_std"]]]


# ---- offmarl train -----------------------------------------------------------------------------------
def run_train(*, algo: str | None, dataset: str | None, out: Path | None = None, seed: int = 0,
              steps: int | None = None, scale: float = 1.0, config: Path | None = None, sets: Sequence[str] = (),
              ablation: str | None = None, variant: str | None = None, preset: str | None = None,
              precision: str = "fp32", resume: bool = False, eval_episodes: int = 32, eval_every: int = 0,
              checkpoint_every: int = 500, device: str = "cpu", threads: int | None = None,
              list_algos: bool = False, quiet: bool = False,
              dataset_label: str | None = None, tag: str | None = None,
              checkpoint: str = "last") -> dict[str, Any] | None:
    """Train ``algo`` on ``dataset`` (module docstring); returns the fit summary (+ ``eval`` and ``run_dir``).

    ``threads``: torch's CPU threads for this process (None: leave torch's default, one per core). On a
    machine shared with other jobs 1 is much faster than 2: OpenMP threads that wait for a busy core
    stall every operation (measured ~100x slower on a loaded 2-core machine).
    ``dataset_label`` replaces the dataset's label in config.json, eval.json and the default run directory
    (``offmarl bench`` passes the suite's dataset label for a recipe built at a non-default seed/scale).
    ``checkpoint``: which weights the final evaluation scores (module docstring; ``best`` needs
    ``eval_every``).
    ``tag`` is appended to the algorithm's label (``distill@long_teacher``) in config.json, eval.json and the
    default run directory, so runs of one algorithm with different overrides stay apart in a table."""
    if list_algos:
        typer.echo(algorithm_table())
        return None
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    if not algo:
        raise ValueError("name an algorithm: offmarl train ALGO --dataset PATH (see offmarl train --list)")
    cls = get_algo_class(algo)
    if dataset is None:
        raise ValueError("--dataset is required: a dataset file or a recipe name (see offmarl collect --list)")
    if steps is not None and steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    if scale <= 0:
        raise ValueError(f"--scale must be > 0, got {scale}")
    if eval_episodes < 0 or eval_every < 0:
        raise ValueError("--eval-episodes and --eval-every must be >= 0")
    check_checkpoint(checkpoint, eval_every if eval_episodes else 0)
    train_cfg = TrainConfig(seed=seed, checkpoint_every=checkpoint_every, eval_every=eval_every if eval_episodes else 0,
                            eval_episodes=eval_episodes, precision=precision, resume=resume, progress=not quiet)

    data, source = resolve_dataset(dataset)
    if dataset_label is not None:
        source = dataclasses.replace(source, label=dataset_label)
    card = dataset_cards(data)[0]
    spec = card.spec
    algo_config = build_config(cls, config_overrides(cls, spec.name, config, sets, ablation, variant, preset))
    total = steps if steps is not None else max(1, round(algo_config.steps * scale))
    algo_config = dataclasses.replace(algo_config, steps=total)
    label = algo_label(algo, algo_config.ablation, algo_config.variant, tag)
    paths = RunPaths(Path(out) if out is not None else default_run_dir(source.label, label, seed))
    if resume and not paths.checkpoint.exists():
        raise FileNotFoundError(f"--resume: {paths.checkpoint} does not exist (nothing to resume)")
    if not resume and paths.checkpoint.exists():
        raise ValueError(f"run directory {paths.root} already holds a run ({paths.checkpoint}); "
                         "pass --resume to continue it or choose another --out")
    train_cfg = dataclasses.replace(train_cfg, steps=total)

    seed_everything(seed)  # before building the algorithm: its initial weights come from this seed
    learner = cls(spec, algo_config, device=device)

    def evaluator(step: int) -> dict[str, Any]:
        return evaluate_policy(learner.policies(), card.env_name, card.env_kwargs, eval_episodes, EVAL_SEED)

    meta = {"algo_label": label, "dataset_source": source.to_dict(), "eval_seed": EVAL_SEED}
    try:
        summary = fit(learner, data, paths.root, train_cfg, evaluator if train_cfg.eval_every else None, meta)
        learner.save(paths.model)
        if eval_episodes:
            result = evaluator(summary["steps"])
            curve = _with_final_point(summary["curve"], summary["steps"], result)
            atomic_write_json(paths.curve, curve)
            if train_cfg.eval_every and len(curve) > len(summary["curve"]):  # a new final point may be the best
                keep_if_best(learner, paths, curve)
            scored_steps, eval_seed = summary["steps"], EVAL_SEED
            if checkpoint == "best":
                best, scored_steps = load_best(paths, device)
                eval_seed = HELD_OUT_SEED
                result = evaluate_policy(best.policies(), card.env_name, card.env_kwargs, eval_episodes, eval_seed)
            summary["eval"] = write_eval_json(paths.root, result, algo=label, dataset=source.label, seed=seed,
                                              curve=curve, checkpoint=checkpoint, steps=scored_steps,
                                              eval_seed=eval_seed)
    except Exception:
        paths.root.mkdir(parents=True, exist_ok=True)
        paths.error.write_text(traceback.format_exc())
        raise
    paths.error.unlink(missing_ok=True)
    summary["run_dir"] = str(paths.root)
    losses = ", ".join(f"{k} {v:.4g}" for k, v in summary["losses"].items())
    typer.echo(f"{label} on {source.label}, seed {seed}: {summary['steps']} steps ({losses}) -> {paths.root}")
    if "eval" in summary:
        _echo_eval(summary["eval"])
    return summary


def _echo_eval(record: dict[str, Any]) -> None:
    per_agent = ", ".join(f"{r:.3g}" for r in record["per_agent_return"])
    win = "" if record["win_rate"] is None else f", win rate {record['win_rate']:.3f}"
    typer.echo(f"eval: return {record['return_mean']:.4g} ± {record['return_std']:.3g} over {record['episodes']} "
               f"episodes (per agent: {per_agent}){win}")


# ---- offmarl eval ------------------------------------------------------------------------------------
def check_checkpoint(checkpoint: str, eval_every: int | None = None) -> None:
    """A known ``--checkpoint``; for training (``eval_every`` given) ``best`` needs evaluations to select from."""
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"--checkpoint must be one of {', '.join(CHECKPOINTS)}, got {checkpoint!r}")
    if checkpoint == "best" and eval_every is not None and eval_every < 1:
        raise ValueError("--checkpoint best needs evaluations during training to select from (--eval-every N)")


def load_best(paths: RunPaths, device: str = "cpu") -> tuple[Algorithm, int]:
    """The run's best-evaluated weights (``RUN/best``) and the step they are from."""
    record = paths.best / "best.json"
    if not record.exists():
        raise FileNotFoundError(f"{paths.root} has no best checkpoint ({paths.best}): it was trained without "
                                "evaluations during training (--eval-every) or by an offmarl that did not keep one")
    return load_algo(paths.best, device=device), int(json.loads(record.read_text())["step"])


def load_trained(paths: RunPaths, config: dict[str, Any], device: str = "cpu") -> tuple[Algorithm, int]:
    """The run's trained algorithm and its step count: ``model/`` when training finished, else the last
    checkpoint (built from config.json's algorithm name, config and env spec)."""
    from offmarl.envs.base import EnvSpec

    if (paths.model / "algo.json").exists():
        algo = load_algo(paths.model, device=device)
        return algo, int(algo.config.steps)
    if not paths.checkpoint.exists():
        raise FileNotFoundError(f"{paths.root} has neither a trained model ({paths.model}) nor a checkpoint")
    cls = get_algo_class(config["algo"])
    algo = cls(EnvSpec.from_dict(config["env_spec"]), build_config(cls, config["algo_config"]), device=device)
    ckpt = load_checkpoint(paths.checkpoint)
    algo.load_state_dict(ckpt["algo"])
    return algo, int(ckpt["step"])


def run_eval(*, run_dir: Path, episodes: int = 32, seed: int | None = None, target_return: float | None = None,
             render: Path | None = None, checkpoint: str = "last") -> dict[str, Any]:
    """Evaluate run ``run_dir``'s policies and rewrite its eval.json (module docstring). ``seed`` None:
    ``EVAL_SEED`` for the last weights, ``HELD_OUT_SEED`` for the best ones."""
    paths = RunPaths(Path(run_dir))
    if not paths.config.is_file():
        raise FileNotFoundError(f"{paths.root} is not a run directory (no config.json)")
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    check_checkpoint(checkpoint)
    config = json.loads(paths.config.read_text())
    if checkpoint == "best":
        algo, steps = load_best(paths)
    else:
        algo, steps = load_trained(paths, config)
    if seed is None:
        seed = HELD_OUT_SEED if checkpoint == "best" else EVAL_SEED
    env_name, env_kwargs = _eval_env(config["dataset"])
    try:
        result = evaluate_policy(make_policies(algo, target_return), env_name, env_kwargs, episodes, seed,
                                 render_path=render)
    except NotImplementedError as exc:  # the env has no renderer
        raise RuntimeError(f"--render: {exc}") from exc
    curve = json.loads(paths.curve.read_text()) if paths.curve.exists() else []
    source = config.get("dataset_source", {})
    record = write_eval_json(paths.root, result, algo=config.get("algo_label", config["algo"]),
                             dataset=source.get("label", env_name), seed=int(config["train_config"]["seed"]),
                             curve=curve, checkpoint=checkpoint, target_return=target_return, steps=steps,
                             eval_seed=seed)
    _echo_eval(record)
    if render is not None:
        typer.echo(f"wrote {render}")
    return record
