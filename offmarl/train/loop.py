"""The one fit loop: every offline algorithm trains through :func:`fit`.

::

    sampler = algo.make_sampler(dataset, cfg.seed)
    algo.on_fit_start(dataset, run_dir)
    [resume: restore algo, sampler, global RNGs, loss window and curve from checkpoints/last.pt]
    for step in (done + 1) .. total:
        losses = algo.update(sampler.sample())        # under bf16 autocast when cfg.precision == "bf16"
        algo.on_step_end(step, run_dir)
        every log_every:        a metrics.csv row (window means of the losses, steps/s, wall time)
        every eval_every:       evaluator(step) -> {"return_mean", "return_std", ...} appended to the curve;
                                a new best return saves the weights to best/ (:func:`keep_if_best`)
        every checkpoint_every: checkpoints/last.pt, written atomically (and at the last step)

Reproducibility: build the algorithm after ``seed_everything(seed)`` (``offmarl train`` does); the loop
re-seeds before building the sampler, so a run is a function of (seed, algorithm config, dataset,
torch thread count). The evaluator runs with the global RNG states saved and restored around it, so
evaluating during training never changes the training numbers (an algorithm's ``policies()`` must leave
the algorithm as it found it: a policy that puts modules in eval mode puts them back). A resumed run
restores every RNG and counter, so its final weights equal those of an uninterrupted run bit for bit.

Steps: ``cfg.steps`` (None → ``round(algo.total_steps * cfg.scale)``). A multi-stage algorithm splits
its own ``config.steps`` among its stages; ``offmarl train --steps/--scale`` therefore rewrites the
algorithm config's ``steps`` and passes the same number here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import platform
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from offmarl.core.files import atomic_write_json
from offmarl.train.checkpoint import load_checkpoint, save_checkpoint
from offmarl.train.loggers import BASE_COLUMNS, CSVLogger, LossWindow, TensorBoardLogger, tensorboard_available
from offmarl.train.run_dir import RunPaths, dataset_cards
from offmarl.core.seeding import global_rng_state, seed_everything, set_global_rng_state

PRECISIONS = ("fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls run on bf16 hardware: any CUDA device this PyTorch supports bf16 on, or a CPU
    with AVX512-BF16 or AMX. Elsewhere (e.g. AVX2-only CPUs such as AMD Zen 3) oneDNN emulates them, about
    10x slower than fp32 (BENCHMARKS.md, "Decision Transformer training speed")."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
Evaluator = Callable[[int], dict]


@dataclass(frozen=True)
class TrainConfig:
    """How to run training (kept apart from the algorithm's own config).

    steps: gradient steps in total; None → ``round(algo.total_steps * scale)``.
    scale: multiplier of the algorithm's default steps when ``steps`` is None.
    seed: seed of the sampler and of the global RNGs.
    log_every: steps per metrics.csv row (the row holds the window's mean losses).
    checkpoint_every: steps between checkpoints (one is always written at the last step).
    eval_every: steps between evaluations for the learning curve (0: none; needs an evaluator).
    eval_episodes: episodes per evaluation (recorded in config.json; the evaluator runs them).
    precision: "fp32", or "bf16" to run ``algo.update`` under bfloat16 autocast.
    resume: continue from ``run_dir/checkpoints/last.pt``.
    progress: show a progress bar with the running losses and steps/s.
    tensorboard: also log to ``run_dir/tensorboard`` when the tensorboard package is installed.
    """

    steps: int | None = None
    scale: float = 1.0
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    eval_every: int = 0
    eval_episodes: int = 0
    precision: str = "fp32"
    resume: bool = False
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_every < 0 or self.eval_episodes < 0:
            raise ValueError("TrainConfig.eval_every and eval_episodes must be >= 0")
        if self.steps is not None and self.steps < 0:
            raise ValueError(f"TrainConfig.steps must be >= 0, got {self.steps}")
        if self.scale <= 0:
            raise ValueError(f"TrainConfig.scale must be > 0, got {self.scale}")

    def total_steps(self, algo: Any) -> int:
        return int(self.steps) if self.steps is not None else max(1, round(algo.total_steps * self.scale))


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def run_config(algo: Any, dataset: Any, cfg: TrainConfig, meta: dict[str, Any] | None) -> dict[str, Any]:
    """What ``config.json`` holds (everything needed to re-run or interpret the run)."""
    from offmarl import __version__

    cards = dataset_cards(dataset)
    return _jsonable({
        "algo": algo.name,
        "algo_config": algo.config_dict(),
        "train_config": dataclasses.asdict(cfg),
        "dataset": [card.to_dict() for card in cards] if isinstance(dataset, (list, tuple)) else cards[0].to_dict(),
        "env_spec": algo.spec.to_dict(),
        "offmarl_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "device": str(algo.device),
        "command": list(sys.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(meta or {}),
    })


def _check_same_run(stored: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """A resume must continue the same experiment: name the first setting that differs."""
    checks = [("algo", stored.get("algo"), current["algo"]),
              ("seed", stored.get("train_config", {}).get("seed"), current["train_config"]["seed"])]
    for key in sorted(set(stored.get("algo_config", {})) | set(current["algo_config"])):
        checks.append((f"algo config {key!r}", stored.get("algo_config", {}).get(key), current["algo_config"].get(key)))
    fingerprint = lambda d: [{k: c.get(k) for k in ("env_name", "episodes", "steps", "return_mean")}  # noqa: E731
                             for c in (d if isinstance(d, list) else [d or {}])]
    checks.append(("dataset", fingerprint(stored.get("dataset")), fingerprint(current["dataset"])))
    for what, old, new in checks:
        if old != new:
            raise ValueError(f"cannot resume {path.parent}: {what} was {old!r}, now {new!r}")


def _isolated(evaluator: Evaluator, step: int) -> dict:
    """Run ``evaluator(step)`` without touching the global RNG streams training uses."""
    state = global_rng_state()
    try:
        return evaluator(step)
    finally:
        set_global_rng_state(state)


def keep_if_best(algo: Any, paths: RunPaths, curve: list[list[float]]) -> bool:
    """Save ``algo``'s weights to ``paths.best`` when the curve's last point is its best so far (a strictly
    higher mean return than every earlier point: ties keep the earlier weights). ``best/best.json`` holds
    ``{"step", "return_mean", "return_std"}``. Written to ``best.tmp`` and renamed, so a kill leaves either
    the old or the new best; a resumed run re-evaluates the same steps with the same seed and so re-selects
    the same weights. Returns whether it saved."""
    if not curve or any(point[1] >= curve[-1][1] for point in curve[:-1]):
        return False
    step, mean, std = curve[-1]
    staging = paths.root / "best.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    algo.save(staging)
    atomic_write_json(staging / "best.json", {"step": int(step), "return_mean": float(mean), "return_std": float(std)})
    shutil.rmtree(paths.best, ignore_errors=True)
    staging.rename(paths.best)
    return True


def fit(algo: Any, dataset: Any, run_dir: str | Path | None, cfg: TrainConfig,
        evaluator: Evaluator | None = None, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``algo`` on ``dataset`` (see the module docstring); ``run_dir=None`` writes nothing.

    ``meta`` adds keys to config.json (the CLI records the algo label and the dataset's source).
    Returns ``{"steps", "losses" (last window means), "curve", "wall_time", "steps_per_s"}``.
    """
    if cfg.resume and run_dir is None:
        raise ValueError("resume needs a run directory")
    total = cfg.total_steps(algo)
    algo.precision = cfg.precision
    seed_everything(cfg.seed)
    sampler = algo.make_sampler(dataset, cfg.seed)
    algo.on_fit_start(dataset, run_dir)

    paths = RunPaths(Path(run_dir)) if run_dir is not None else None
    step, wall_before, curve, window, keep_rows = 0, 0.0, [], LossWindow(), None
    if paths is not None:
        paths.root.mkdir(parents=True, exist_ok=True)
        config = run_config(algo, dataset, cfg, meta)
        if cfg.resume:
            ckpt = load_checkpoint(paths.checkpoint)
            if paths.config.exists():
                stored = json.loads(paths.config.read_text())
                _check_same_run(stored, config, paths.config)
                config = {**stored, "resumes": stored.get("resumes", []) + [
                    {"step": int(ckpt["step"]), "command": config["command"], "created": config["created"],
                     "torch_threads": config["torch_threads"]}]}
            algo.load_state_dict(ckpt["algo"])
            sampler.load_state_dict(ckpt["sampler"])
            set_global_rng_state(ckpt["rng"])
            step, wall_before = int(ckpt["step"]), float(ckpt["metrics"]["wall_time"])
            window.load_state_dict(ckpt["metrics"]["window"])
            curve = [list(point) for point in ckpt["curve"]]
            keep_rows = int(ckpt["metrics"]["rows"])
        elif paths.checkpoint.exists():
            raise ValueError(f"run directory {paths.root} already holds a run ({paths.checkpoint}); "
                             "pass --resume to continue it or choose another --out")
        atomic_write_json(paths.config, config)
        atomic_write_json(paths.curve, curve)
        csv_log = CSVLogger(paths.metrics, keep_rows=keep_rows if cfg.resume else None)
        tb_log = (TensorBoardLogger(paths.tensorboard, purge_step=step + 1 if cfg.resume else None)
                  if cfg.tensorboard and tensorboard_available() else None)

    session_start = time.perf_counter()

    def wall_time() -> float:
        """Seconds since the run began (earlier sessions' time included), checkpoints and evaluations too."""
        return wall_before + time.perf_counter() - session_start

    def write_row(row_step: int) -> dict[str, Any]:
        row = window.row(row_step, wall_time())
        if paths is not None:
            csv_log.log(row)
            if tb_log is not None:
                tb_log.log(row)
        window.clear()
        return row

    def checkpoint() -> None:
        save_checkpoint(paths.checkpoint, {
            "step": step, "algo": algo.state_dict(), "sampler": sampler.state_dict(), "rng": global_rng_state(),
            "metrics": {"rows": csv_log.rows, "window": window.state_dict(), "wall_time": wall_time()},
            "curve": curve,
        })

    autocast = (torch.autocast(algo.device.type, dtype=torch.bfloat16) if cfg.precision == "bf16"
                else contextlib.nullcontext())
    if cfg.precision == "bf16" and not native_bf16(algo.device):
        warnings.warn(f"--precision bf16 on a {algo.device.type} without native bf16 (no AVX512-BF16 or AMX on a CPU): "
                      "its bf16 matmuls are emulated and train several times slower than fp32", stacklevel=2)
    bar = tqdm(total=total, initial=step, disable=not cfg.progress, dynamic_ncols=True, unit="step",
               desc=algo.name)
    first_step, session_time, last_row = step, 0.0, {}
    try:
        while step < total:
            t0 = time.perf_counter()
            stage = algo.stage  # the stage this update belongs to (on_step_end may switch it)
            if window.count and window.stage != stage:
                last_row = write_row(step)  # a stage's last partial window gets its own row
            with autocast:
                losses = algo.update(sampler.sample())
            step += 1
            algo.on_step_end(step, run_dir)
            dt = time.perf_counter() - t0
            window.add(losses, stage, dt)
            session_time += dt
            bar.update(1)
            if step % cfg.log_every == 0 or step == total:
                last_row = write_row(step)
                bar.set_postfix({k: f"{v:.4g}" for k, v in last_row.items() if k not in BASE_COLUMNS}, refresh=False)
            if evaluator is not None and cfg.eval_every and step % cfg.eval_every == 0:
                result = _isolated(evaluator, step)
                curve.append([step, float(result["return_mean"]), float(result["return_std"])])
                if paths is not None:
                    atomic_write_json(paths.curve, curve)
                    keep_if_best(algo, paths, curve)
                    if tb_log is not None:
                        tb_log.log({"step": step, "return_mean": curve[-1][1], "return_std": curve[-1][2]}, "eval")
                bar.write(f"step {step}: eval return {curve[-1][1]:.4g} ± {curve[-1][2]:.3g}")
            if paths is not None and (step % cfg.checkpoint_every == 0 or step == total):
                checkpoint()
    finally:
        bar.close()
        if paths is not None:
            csv_log.close()
            if tb_log is not None:
                tb_log.close()
    return {"steps": step, "losses": {k: v for k, v in last_row.items() if k not in BASE_COLUMNS},
            "curve": curve, "wall_time": wall_time(),
            "steps_per_s": (step - first_step) / session_time if step > first_step else 0.0}

