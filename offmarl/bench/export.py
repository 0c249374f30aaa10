"""A suite directory's runs in other tools' formats: ``offmarl bench export SUITE_DIR --format marl-eval``.

marl-eval (Gorsane et al. 2022, docs/references.md) aggregates one JSON document with its
``data_process_pipeline`` (``marl_eval/utils/data_processing_utils.py``); its README ("Data Structure for Raw
Experiment data") and its ``JsonLogger`` (``marl_eval/json_tools/json_logger.py``) give the layout::

    {environment: {task: {algorithm: {run: {"step_0": {"step_count": int, metric: [values], ...}, ...,
                                             "step_k": {...},
                                             "absolute_metrics": {metric: [values], ...}}}}}}

where each metric holds a list: one value (a rate over the evaluation's episodes) or one per episode. offmarl
fills it from the run directories' ``eval.json`` (and, for an offline run's environment, its ``config.json``):

============================  =====================================================================================
marl-eval                     offmarl
============================  =====================================================================================
environment                   the family of the run's environment (:func:`env_family`): the extra that provides it
                              (``smax``, ``mamujoco``, ``highway``), ``mpe`` for the MPE tasks, ``native`` for the
                              papers' own numpy tasks
task                          the dataset label (offline) or the environment label (online): a table's column
algorithm                     the algorithm label (``distill[no_kl]``): a table's row
run                           ``seed_<k>`` (the JsonLogger's name)
``step_<i>``                  the i-th evaluation of the learning curve (eval.json ``curve``); ``step_count`` its
                              step: gradient updates offline, environment frames online (``protocol.steps_unit``)
``mean_episode_return``       the evaluation's mean per-agent return (the papers' metric), one value: the curve
                              keeps no per-episode returns
``win_rate``                  the evaluation's win rate, in a run that recorded one at every evaluation and at
                              the final one (online runs of environments that report wins: ``win_curve``)
``absolute_metrics``          the absolute-metric evaluation when eval.json has one (``absolute_return_mean``),
                              else the final evaluation (of the ``last`` or ``best`` weights:
                              ``protocol.checkpoint``): ``mean_episode_return`` per episode (``returns``,
                              averaged over agents), ``win_rate`` as above
============================  =====================================================================================

A run that was not evaluated (``return_mean`` null: data imported from another library) has no metrics to
give; it is left out and listed in :attr:`MarlEvalExport.skipped`. marl-eval lower-cases every key and refuses
algorithm names with commas, so two labels that differ only in case, or a comma in a label, are an error here.
Its statistics also expect every algorithm of an environment to have the same tasks, runs and steps: the
document holds what the runs hold, and marl-eval's ``DiagnoseData(raw).check_data()`` tells what differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from offmarl.bench.records import EvalRecord, find_eval_files
from offmarl.core.files import atomic_write_json
from offmarl.envs.registry import get_env_entry
from offmarl.train.evaluate import has_environment
from offmarl.train.experiment import run_config, run_env

FORMATS = ("marl-eval",)
RETURN_METRIC = "mean_episode_return"
WIN_METRIC = "win_rate"
ABSOLUTE = "absolute_metrics"
#: Native environments grouped into a family of their own (the rest are ``native``), by factory module.
NATIVE_FAMILIES = {"offmarl.envs.mpe": "mpe"}


def env_family(env_name: str) -> str:
    """marl-eval's environment for offmarl's ``env_name`` (module docstring); ``external`` for imported data."""
    if not has_environment(env_name):
        return "external"
    entry = get_env_entry(env_name)
    if entry.source != "native":
        return entry.source
    return NATIVE_FAMILIES.get(entry.factory.partition(":")[0], "native")


@dataclass
class MarlEvalExport:
    """The marl-eval document of a folder of runs, the eval.json files it holds and those it left out."""

    document: dict[str, Any]
    runs: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _run_environment(eval_path: Path, record: dict[str, Any]) -> str:
    """The environment a run was evaluated in: eval.json's (online) or its config.json's dataset card's."""
    if record.get("env"):
        return record["env"]
    return run_env(run_config(eval_path.parent))[0]


def _absolute_metrics(record: dict[str, Any]) -> dict[str, list[float]]:
    if record.get("absolute_return_mean") is not None:
        return {RETURN_METRIC: [float(record["absolute_return_mean"])]}
    returns = record.get("returns")
    metrics = {RETURN_METRIC: ([float(np.mean(episode)) for episode in returns] if returns
                               else [float(record["return_mean"])])}
    if record.get("win_rate") is not None:
        metrics[WIN_METRIC] = [float(record["win_rate"])]
    return metrics


def run_entry(run: EvalRecord, record: dict[str, Any]) -> dict[str, Any]:
    """One run of the document (module docstring) from its eval.json: ``run`` as the tables read it, ``record``
    the whole file."""
    absolute = _absolute_metrics(record)
    wins = {int(step): float(rate) for step, rate in record.get("win_curve") or []}
    with_wins = WIN_METRIC in absolute and all(int(step) in wins for step, _, _ in run.curve)
    if not with_wins:
        absolute.pop(WIN_METRIC, None)
    entry = {f"step_{i}": {"step_count": int(step), RETURN_METRIC: [mean],
                           **({WIN_METRIC: [wins[int(step)]]} if with_wins else {})}
             for i, (step, mean, _) in enumerate(run.curve)}
    return {**entry, ABSOLUTE: absolute}


def _check_key(level: dict[str, Any], key: str, what: str, where: Path) -> None:
    """marl-eval lower-cases keys (and splits algorithm lists on commas): ``key`` must stay itself."""
    if what == "algorithm" and "," in key:
        raise ValueError(f"{where}: algorithm label {key!r} has a comma, which marl-eval refuses in algorithm names")
    clash = next((other for other in level if other.lower() == key.lower() and other != key), None)
    if clash is not None:
        raise ValueError(f"{where}: {what} {key!r} and {clash!r} differ only in case, and marl-eval lower-cases keys")


def marl_eval_export(runs_dir: str | Path) -> MarlEvalExport:
    """The marl-eval document of every run directory under ``runs_dir`` (a suite directory, or any folder of
    run directories: each eval.json with its config.json). Two runs of the same (environment, task,
    algorithm, seed) are an error naming both."""
    runs_dir = Path(runs_dir)
    files = find_eval_files(runs_dir)
    if not files:
        raise FileNotFoundError(f"no eval.json under {runs_dir}: nothing to export")
    export = MarlEvalExport(document={})
    seen: dict[tuple[str, ...], Path] = {}
    for path in files:
        run = EvalRecord.read(path)
        record = json.loads(path.read_text())
        if run.return_mean is None or not run.curve:
            export.skipped.append((path, record.get("skipped") or "no evaluation"))
            continue
        try:
            family = env_family(_run_environment(path, record))
        except KeyError as exc:  # an environment this offmarl does not know
            raise ValueError(f"{path}: {exc.args[0]}") from None
        keys = (family, run.dataset, run.algo, f"seed_{run.seed}")
        if keys in seen:
            raise ValueError(f"two eval.json files for {run.algo} on {run.dataset}, seed {run.seed}: {seen[keys]} "
                             f"and {path}; export their directories separately")
        seen[keys] = path
        level = export.document
        for key, what in zip(keys[:3], ("environment", "task", "algorithm")):
            _check_key(level, key, what, path)
            level = level.setdefault(key, {})
        level[keys[3]] = run_entry(run, record)
        export.runs.append(path)
    return export


def write_export(runs_dir: str | Path, out: str | Path, fmt: str = "marl-eval") -> MarlEvalExport:
    """Write the ``fmt`` document of the runs under ``runs_dir`` to ``out`` (JSON, atomically); returns it."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    export = marl_eval_export(runs_dir)
    if not export.runs:
        raise ValueError(f"no evaluated run under {runs_dir}: nothing to export "
                         f"({len(export.skipped)} not evaluated)")
    atomic_write_json(out, export.document)
    return export
