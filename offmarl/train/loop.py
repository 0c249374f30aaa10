"""The one fit loop: every algorithm trains through :func:`fit`, offline and online alike.

::

    algo.plan(total)                                   # the budget -> the stage schedule
    algo.check_source(source)                          # one compatibility check, before anything runs
    sampler = training_sampler(algo, source, cfg.seed)  # offline: algo.make_sampler; online: a RolloutSampler;
                                                        # dataset+env: a StagedSampler (offmarl.train.online)
    algo.on_fit_start(source)
    [resume: restore algo, sampler, global RNGs, loss window and curve from checkpoints/last.pt]
    algo.enter_stage(the stage of the steps done)
    while step < total:
        losses = algo.update(sampler.sample())         # under bf16 autocast when cfg.precision == "bf16"
        step += 1, or the env frames the sample took (an online sampler's ``last_sample_frames``; a dataset+env
                                             run counts 1 per dataset batch and the frames of each rollout)
        at a log boundary or a stage's end:  a metrics.csv row (window means of the losses, steps/s, wall time)
        at a stage's end (and the last step): algo.stage_check(stage, evaluate) -> diagnostics in that step's row
        at a stage's end:                    save what it hands over to <run>/<stage>/, enter the next stage
        at an eval boundary:                 evaluator(step) -> {"return_mean", "return_std", ...} appended to the
                                             curve; a new best return saves the weights to best/ (:func:`keep_if_best`)
        before the first update of a stage in ``algo.curve_starts`` (with evaluations): a curve point there too
        at a series boundary (and before the first update): the algorithm kept in checkpoints/series/
        at a checkpoint boundary, a stage's end and the last step: checkpoints/last.pt, written atomically

A boundary of every ``k`` steps is crossed when ``step // k`` grows (online, an update advances many frames).

Reproducibility: build the algorithm after ``seed_everything(seed)`` (``offmarl train`` does); the loop
re-seeds before building the sampler, so a run is a function of (seed, algorithm config, source, torch
thread count). The evaluator runs with the global RNG states saved and restored around it, so evaluating
during training never changes the training numbers (an algorithm's ``policies()`` must leave the
algorithm as it found it). A resumed run restores every RNG and counter: its weights, metrics.csv (but
for the two timing columns), curve and best checkpoint equal those of an uninterrupted run, whichever
step it was killed at -- a stage's hand-over is a checkpoint, so a resume never repeats or skips one.

Steps: ``cfg.steps`` (None → ``round(algo.total_steps * cfg.scale)``), divided among the algorithm's
stages by ``algo.plan``, so a scaled run trains every stage in proportion.
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

from offmarl.algos.base import source_mode
from offmarl.core.files import atomic_directory, atomic_write_json, atomic_write_text
from offmarl.core.machine import cpu_name
from offmarl.core.seeding import global_rng_state, seed_everything, set_global_rng_state
from offmarl.data.sources import source_record
from offmarl.train.checkpoint import load_checkpoint, save_checkpoint
from offmarl.train.loggers import BASE_COLUMNS, CSVLogger, LossWindow, TensorBoardLogger, tensorboard_available
from offmarl.train.online import training_sampler
from offmarl.train.run_dir import RunPaths

PRECISIONS = ("fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls run on bf16 hardware: any CUDA device this PyTorch supports bf16 on, or a CPU
    with AVX512-BF16 or AMX. Elsewhere (e.g. AVX2-only CPUs such as AMD Zen 3) oneDNN emulates them, about
    10x slower than fp32 (BENCHMARKS.md, "Decision Transformer training speed")."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
#: ``evaluator(step)`` scores the algorithm's policies; ``evaluator(step, policy)`` a given policy (stage checks)
Evaluator = Callable[..., dict]


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
    series_every: steps between the saved algorithms of the checkpoint series (0: none; see
        :func:`_keep_in_series`).
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
    series_every: int = 0
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
        if self.eval_every < 0 or self.eval_episodes < 0 or self.series_every < 0:
            raise ValueError("TrainConfig.eval_every, eval_episodes and series_every must be >= 0")
        if self.steps is not None and self.steps < 0:
            raise ValueError(f"TrainConfig.steps must be >= 0, got {self.steps}")
        if self.scale <= 0:
            raise ValueError(f"TrainConfig.scale must be > 0, got {self.scale}")

    def total_steps(self, algo: Any) -> int:
        return int(self.steps) if self.steps is not None else max(1, round(algo.total_steps * self.scale))


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def run_config(algo: Any, source: Any, cfg: TrainConfig, meta: dict[str, Any] | None) -> dict[str, Any]:
    """What ``config.json`` holds (everything needed to re-run or interpret the run)."""
    from offmarl import __version__

    return _jsonable({
        "algo": algo.name,
        "algo_config": algo.config_dict(),
        "train_config": dataclasses.asdict(cfg),
        **source_record(source),
        "env_spec": algo.spec.to_dict(),
        "offmarl_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "cpu": cpu_name(),
        "device": str(algo.device),
        "command": list(sys.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(meta or {}),
    })


def _source_fingerprint(config: dict[str, Any]) -> Any:
    cards = config.get("dataset")
    data = [{k: card.get(k) for k in ("env_name", "episodes", "steps", "return_mean")}
            for card in (cards if isinstance(cards, list) else [cards] if cards else [])]
    return {"dataset": data, "env_source": config.get("env_source")}


def run_fingerprint(config: dict[str, Any]) -> dict[str, Any]:
    """What makes two runs the same experiment: the algorithm, its config (the budget included), the seed
    and the source."""
    return {"algo": config["algo"], "algo_config": config["algo_config"],
            "seed": config["train_config"]["seed"], "source": _source_fingerprint(config)}


def _field_defaults(config: Any) -> dict[str, Any]:
    """The default of every field of a config dataclass that has one, as ``config.json`` writes it."""
    defaults = {}
    for field in dataclasses.fields(config):
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = field.default_factory()
    return _jsonable(defaults)


def _with_added_fields(stored: dict[str, Any], algo: Any) -> dict[str, Any]:
    """``stored`` (a run's ``config.json``, or a stage record's fingerprint) with the algorithm config fields
    added since it was written filled in with their defaults: a field added with a default keeps the behaviour
    the code had before it, so such a run resumes as the same experiment."""
    defaults = {k: v for k, v in _field_defaults(algo.config).items() if k not in stored.get("algo_config", {})}
    return {**stored, "algo_config": {**defaults, **stored.get("algo_config", {})}} if defaults else stored


def _check_same_run(stored: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """A resume must continue the same experiment: name the first setting that differs."""
    checks = [("algo", stored.get("algo"), current["algo"]),
              ("seed", stored.get("train_config", {}).get("seed"), current["train_config"]["seed"])]
    for key in sorted(set(stored.get("algo_config", {})) | set(current["algo_config"])):
        checks.append((f"algo config {key!r}", stored.get("algo_config", {}).get(key), current["algo_config"].get(key)))
    checks.append(("source", _source_fingerprint(stored), _source_fingerprint(current)))
    for what, old, new in checks:
        if old != new:
            raise ValueError(f"cannot resume {path.parent}: {what} was {old!r}, now {new!r}")


def _stage_check(algo: Any, stage: str, evaluator: Evaluator | None, step: int) -> dict[str, float]:
    """``algo.stage_check(stage, evaluate)`` with the global RNG states saved and restored around it; ``evaluate``
    scores a given policy with the run's evaluator (None without one)."""
    evaluate = None if evaluator is None else (lambda policy: evaluator(step, policy))
    state = global_rng_state()
    try:
        with torch.no_grad():
            return algo.stage_check(stage, evaluate)
    finally:
        set_global_rng_state(state)


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
    ``{"step", "return_mean", "return_std"}``. Written as one directory (:func:`atomic_directory`), so a kill
    leaves the old or the new best; a resumed run re-evaluates the same steps with the same seed and so re-selects
    the same weights. Returns whether it saved."""
    if not curve or any(point[1] >= curve[-1][1] for point in curve[:-1]):
        return False
    step, mean, std = curve[-1]
    with atomic_directory(paths.best) as staging:
        algo.save(staging)
        atomic_write_json(staging / "best.json",
                          {"step": int(step), "return_mean": float(mean), "return_std": float(std)})
    return True


SERIES_COLUMNS = ("step", "return_mean", "return_std", "win_rate", "path")


def _keep_in_series(algo: Any, paths: RunPaths, step: int, result: dict[str, Any] | None,
                    series: list[list[Any]]) -> None:
    """Save ``algo`` as ``checkpoints/series/<step>/`` and list it, with its evaluation (``result``; empty
    cells without an evaluator), in ``checkpoints/series.csv``, rewritten whole from ``series`` (kept in the
    checkpoint, so a resume cuts the list back to its step)."""
    target = paths.series / f"{step:012d}"
    with atomic_directory(target) as staging:
        algo.save(staging)
    score = [] if result is None else [result["return_mean"], result["return_std"], result.get("win_rate")]
    series.append([step, *(score or [None, None, None]), str(target.relative_to(paths.root))])
    _write_series(paths, series)


def _write_series(paths: RunPaths, series: list[list[Any]]) -> None:
    cell = lambda v: "" if v is None else repr(v) if isinstance(v, float) else str(v)  # noqa: E731
    lines = [",".join(SERIES_COLUMNS)] + [",".join(cell(v) for v in row) for row in series]
    atomic_write_text(paths.series_csv, "\n".join(lines) + "\n")


def _cut_series(paths: RunPaths, step: int, series: list[list[Any]]) -> None:
    """On resume: the series as the checkpoint at ``step`` knew it; saved algorithms past it are removed."""
    if paths.series.is_dir():
        for saved in paths.series.iterdir():
            if saved.name.isdigit() and int(saved.name) > step:
                shutil.rmtree(saved)
    if series or paths.series_csv.exists():
        _write_series(paths, series)


def _crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in ``(before, after]``."""
    return every > 0 and after // every > before // every


def _save_stage_artifact(algo: Any, stage: str, step: int, paths: RunPaths, fingerprint: dict[str, Any]) -> None:
    """Save what ``stage`` hands over to ``<run>/<stage>/`` with ``stage.json``, as one directory
    (:func:`atomic_directory`)."""
    artifact = algo.stage_artifact(stage)
    if artifact is None:
        return
    with atomic_directory(paths.stage_artifact(stage)) as staging:
        artifact.save(staging)
        atomic_write_json(staging / "stage.json", {"stage": stage, "step": step, "run": fingerprint})


def _check_stage_artifacts(algo: Any, step: int, paths: RunPaths, fingerprint: dict[str, Any]) -> None:
    """On resume: the artifact of every finished stage must be this run's (its fingerprint equal), else the
    error names it; a missing one is written again from the restored state."""
    for stage in algo.schedule.names:
        end = algo.schedule.start(stage) + algo.schedule.length(stage)
        if end > step or end == algo.schedule.total or algo.stage_artifact(stage) is None:
            continue
        record = paths.stage_artifact(stage) / "stage.json"
        if not record.is_file():
            _save_stage_artifact(algo, stage, end, paths, fingerprint)
        elif _with_added_fields(json.loads(record.read_text()).get("run", {}), algo) != fingerprint:
            raise ValueError(f"{record.parent} does not belong to this run (it was handed over by another "
                             f"configuration, seed or dataset); delete it to resume")


def fit(algo: Any, source: Any, run_dir: str | Path | None, cfg: TrainConfig,
        evaluator: Evaluator | None = None, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``algo`` on ``source`` (a dataset, per-agent datasets, an env, or both; see the module
    docstring); ``run_dir=None`` writes nothing.

    ``meta`` adds keys to config.json (the experiment records the algo label and the source's label).
    Returns ``{"steps", "losses" (last window means), "curve", "win_curve" ([[step, win rate], ...] where the
    env reports wins), "wall_time", "steps_per_s"}``.
    """
    if cfg.resume and run_dir is None:
        raise ValueError("resume needs a run directory")
    algo.check_trainable()  # a policy-only saved algorithm acts, it does not train
    total = cfg.total_steps(algo)
    schedule = algo.plan(total)
    algo.check_source(source)
    algo.precision = cfg.precision
    seed_everything(cfg.seed)
    online = source_mode(source) != "dataset"
    sampler = training_sampler(algo, source, cfg.seed)
    algo.on_fit_start(source)

    paths = RunPaths(Path(run_dir)) if run_dir is not None else None
    step, wall_before, curve, win_curve, window, keep_rows = 0, 0.0, [], [], LossWindow(), None
    series: list[list[Any]] = []
    if paths is not None:
        paths.prepare()
        config = run_config(algo, source, cfg, meta)
        fingerprint = run_fingerprint(config)
        if cfg.resume:
            ckpt = load_checkpoint(paths.checkpoint)
            if paths.config.exists():
                stored = _with_added_fields(json.loads(paths.config.read_text()), algo)
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
            win_curve = [list(point) for point in ckpt.get("win_curve", [])]
            series = [list(row) for row in ckpt.get("series", [])]
            _cut_series(paths, step, series)
            keep_rows = int(ckpt["metrics"]["rows"])
            _check_stage_artifacts(algo, step, paths, fingerprint)
        elif paths.checkpoint.exists():
            raise ValueError(f"run directory {paths.root} already holds a run ({paths.checkpoint}); "
                             "pass --resume to continue it or choose another --out")
        atomic_write_json(paths.config, config)
        atomic_write_json(paths.curve, curve)
        csv_log = CSVLogger(paths.metrics, keep_rows=keep_rows if cfg.resume else None)
        tb_log = (TensorBoardLogger(paths.tensorboard, purge_step=step + 1 if cfg.resume else None)
                  if cfg.tensorboard and tensorboard_available() else None)
    algo.enter_stage(schedule.stage_at(step))

    session_start = time.perf_counter()

    def wall_time() -> float:
        """Seconds since the run began (earlier sessions' time included), checkpoints and evaluations too."""
        return wall_before + time.perf_counter() - session_start

    def write_row(row_step: int, checks: dict[str, float] | None = None) -> dict[str, Any]:
        row = {**window.row(row_step, wall_time()), **(checks or {})}
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
            "curve": curve, "win_curve": win_curve, "series": series,
        })

    autocast = (torch.autocast(algo.device.type, dtype=torch.bfloat16) if cfg.precision == "bf16"
                else contextlib.nullcontext())
    if cfg.precision == "bf16" and not native_bf16(algo.device):
        warnings.warn(f"--precision bf16 on a {algo.device.type} without native bf16 (no AVX512-BF16 or AMX on a CPU): "
                      "its bf16 matmuls are emulated and train several times slower than fp32", stacklevel=2)
    bar = tqdm(total=total, initial=step, disable=not cfg.progress, dynamic_ncols=True,
               unit="frame" if online else "step", desc=algo.name)
    postfix: dict[str, str] = {}  # the progress bar's latest losses and evaluation return
    first_step, session_time, last_row = step, 0.0, {}
    if paths is not None and step == 0 and cfg.series_every > 0 and not series:
        # the series starts with the untrained algorithm: a policy pool's lowest level is binned from it
        _keep_in_series(algo, paths, 0, None if evaluator is None else _isolated(evaluator, 0), series)
    def evaluate(at: int) -> dict[str, Any]:
        """Evaluate the algorithm's policies at step ``at``: a point of the curve (and maybe the best weights)."""
        result = _isolated(evaluator, at)
        curve.append([at, float(result["return_mean"]), float(result["return_std"])])
        if result.get("win_rate") is not None:
            win_curve.append([at, float(result["win_rate"])])
        if paths is not None:
            atomic_write_json(paths.curve, curve)
            keep_if_best(algo, paths, curve)
            if tb_log is not None:
                tb_log.log({"step": at, "return_mean": curve[-1][1], "return_std": curve[-1][2]}, "eval")
        if cfg.progress:
            won = f", win rate {win_curve[-1][1]:.0%}" if result.get("win_rate") is not None else ""
            bar.write(f"step {at}: eval return {curve[-1][1]:.4g} ± {curve[-1][2]:.3g}{won}")
            postfix["eval"] = f"{curve[-1][1]:.4g}"  # the latest evaluation return
            bar.set_postfix(postfix, refresh=False)
        return result

    try:
        while step < total:
            stage = algo.stage
            if (evaluator is not None and cfg.eval_every and stage in algo.curve_starts
                    and step == schedule.start(stage) and not (curve and int(curve[-1][0]) == step)):
                evaluate(step)  # the curve starts where the stage does (finetuning: at the offline policy's return)
            t0 = time.perf_counter()
            with autocast:
                losses = algo.update(sampler.sample())
            before, step = step, min(total, step + int(getattr(sampler, "last_sample_frames", 1)))
            dt = time.perf_counter() - t0
            window.add(losses, stage, dt, step - before)
            session_time += dt
            bar.update(step - before)
            stage_ends = step < total and schedule.stage_at(step) != stage
            checks = _stage_check(algo, stage, evaluator, step) if stage_ends or step == total else {}
            if _crossed(before, step, cfg.log_every) or step == total or stage_ends:
                last_row = write_row(step, checks)
                postfix.update({k: f"{v:.4g}" for k, v in last_row.items() if k not in BASE_COLUMNS})
                bar.set_postfix(postfix, refresh=False)
            if stage_ends:
                if paths is not None:
                    _save_stage_artifact(algo, stage, step, paths, fingerprint)
                algo.enter_stage(schedule.stage_at(step))
            result = None
            if evaluator is not None and _crossed(before, step, cfg.eval_every):
                result = evaluate(step)
            if paths is not None and _crossed(before, step, cfg.series_every):
                if result is None and evaluator is not None:
                    result = _isolated(evaluator, step)
                _keep_in_series(algo, paths, step, result, series)
            if paths is not None and (_crossed(before, step, cfg.checkpoint_every) or step == total or stage_ends):
                checkpoint()
    finally:
        bar.close()
        if hasattr(sampler, "close"):
            sampler.close()
        if paths is not None:
            csv_log.close()
            if tb_log is not None:
                tb_log.close()
    return {"steps": step, "losses": {k: v for k, v in last_row.items() if k not in BASE_COLUMNS},
            "curve": curve, "win_curve": win_curve, "wall_time": wall_time(),
            "steps_per_s": (step - first_step) / session_time if step > first_step else 0.0}
