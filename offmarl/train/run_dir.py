"""The run directory (DESIGN.md, "Run directory") and how `--dataset` becomes a dataset.

Layout of ``runs/<dataset>/<algo label>/seed<k>/`` (``offmarl train --out`` overrides the path)::

    config.json            algo name + config, train config, dataset card, env spec, versions, threads, command
    metrics.csv            one row per logging window (offmarl.train.loggers)
    curve.json             [[step, return_mean, return_std], ...] of the evaluations during training
    checkpoints/last.pt    everything needed to continue exactly (offmarl.train.checkpoint)
    checkpoints/series/    every ``series_every`` steps a numbered saved algorithm (<step>/algo.json, algo.pt),
    checkpoints/series.csv listed with its evaluation: the raw material of policy pools
    model/                 the trained algorithm (Algorithm.save: algo.json + algo.pt)
    eval.json              final evaluation (offmarl.train.evaluate.write_eval_json)
    best/                  the weights of the best evaluation during training + best.json (with --eval-every)
    <stage>/               what a finished stage hands over (Algorithm.stage_artifact, e.g. distill's teacher/):
                           algo.json + algo.pt + stage.json (the stage, its last step and the run's fingerprint)
    tensorboard/           TensorBoard events (when tensorboard is installed)
    error.txt              the traceback of a failed run (removed when the run later succeeds)

``--dataset`` names a file or a recipe (:func:`resolve_dataset`); recipe datasets are built once into
the recipe cache of ``offmarl.collect.recipes`` (``$OFFMARL_HOME/datasets``, default
``~/.cache/offmarl/datasets``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offmarl.core.files import atomic_write_text, sweep_stale_temporaries
from offmarl.data.sources import Dataset, PerAgentDatasets


@dataclass(frozen=True)
class RunPaths:
    """The files of run directory ``root``."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def curve(self) -> Path:
        return self.root / "curve.json"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def series(self) -> Path:
        """The checkpoint series: ``series/<step>/`` saved algorithms, listed in :attr:`series_csv`."""
        return self.root / "checkpoints" / "series"

    @property
    def series_csv(self) -> Path:
        return self.root / "checkpoints" / "series.csv"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def eval(self) -> Path:
        return self.root / "eval.json"

    @property
    def best(self) -> Path:
        """The weights of the best evaluation during training (``best/best.json`` says which)."""
        return self.root / "best"

    def stage_artifact(self, stage: str) -> Path:
        """What stage ``stage`` handed over (``Algorithm.stage_artifact``), e.g. ``teacher/``."""
        return self.root / stage

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def error(self) -> Path:
        return self.root / "error.txt"

    def prepare(self) -> None:
        """Create the run directory, removing the temporary files that writers killed in it left
        (:func:`~offmarl.core.files.sweep_stale_temporaries`; a live writer's stay)."""
        self.root.mkdir(parents=True, exist_ok=True)
        sweep_stale_temporaries(self.root, recursive=True)

    def record_error(self, text: str) -> None:
        """Write ``error.txt``, if the disk lets it: the failure being recorded (a full disk, say) is what
        the caller must report, not a second one about its record."""
        with contextlib.suppress(OSError):
            atomic_write_text(self.error, text)


TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
CHECKPOINTS = ("last", "best")  # which weights an eval.json scores (its protocol.checkpoint)


def check_tag(tag: str) -> str:
    """``tag`` when it can name a run directory, else a ValueError saying what may be in it."""
    if not TAG.match(tag):
        raise ValueError(f"tag {tag!r}: use letters, digits, '_', '-', '.', '+' (it names the run directory)")
    return tag


def algo_label(name: str, ablation: str | None = None, variant: str | None = None, tag: str | None = None) -> str:
    """The registry label of a run: ``distill``, ``distill[no_kl]``, ``sit[no_ardnem]``, ``x[a,b]``; a user's
    ``tag`` (runs of one algorithm that differ in config overrides, e.g. a longer teacher stage) is appended
    after ``@``: ``distill@long_teacher``, ``distill[no_kl]@long_teacher``."""
    parts = [p for p in (ablation, variant) if p]
    label = f"{name}[{','.join(parts)}]" if parts else name
    return label if tag is None else f"{label}@{check_tag(tag)}"


def label_algo_name(label: str) -> str:
    """The registered algorithm name of a label made by :func:`algo_label`: ``distill[no_kl]@long_teacher`` ->
    ``distill``."""
    return label.split("@", 1)[0].split("[", 1)[0].strip()


def default_run_dir(dataset_label: str, label: str, seed: int, root: str | Path = "runs") -> Path:
    """``runs/<dataset label>/<algo label>/seed<k>`` (a recipe ``tseng/fill_in`` nests one level deeper)."""
    return Path(root) / dataset_label / label / f"seed{seed}"


@dataclass(frozen=True)
class DatasetSource:
    """How a run got its dataset: ``label`` names it in run paths and tables."""

    label: str
    path: str
    recipe: str | None = None
    per_agent: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "path": self.path, "recipe": self.recipe, "per_agent": self.per_agent}


def resolve_dataset(name: str, pool_provider: Any = None) -> tuple[Dataset, DatasetSource]:
    """``(dataset, DatasetSource)`` for ``--dataset NAME``: an existing path, else a recipe name.

    A file's label is its stem (``data/small.h5`` → ``small``); a recipe's label is the recipe name and
    its file comes from the recipe cache (:func:`offmarl.collect.recipes.get_recipe_dataset`, seed 0,
    scale 1; a trained recipe's pools come from ``pool_provider``: the cache only when None,
    :func:`offmarl.train.experiment.build_pool` to train what is missing). A per-agent file (one group per
    agent, MABCQ) gives :class:`PerAgentDatasets`.
    """
    from offmarl.data.io import dataset_info, load_dataset

    path = Path(name).expanduser()
    recipe = None
    if not path.exists():  # a directory goes on to the loader, which names it
        from offmarl.collect.recipes import cached_pool, get_recipe_dataset, is_recipe, list_recipes

        if not is_recipe(name):
            raise FileNotFoundError(f"dataset {name!r} is neither an existing file nor a recipe; recipes: "
                                    f"{', '.join(r for r, _ in list_recipes())}")
        recipe, path = name, get_recipe_dataset(name, pool_provider=pool_provider or cached_pool)
    info = dataset_info(path)
    if info["per_agent"]:
        dataset: Dataset = PerAgentDatasets(tuple(load_dataset(path, agent=i) for i in range(info["n_groups"])))
    else:
        dataset = load_dataset(path)
    source = DatasetSource(label=recipe or path.stem, path=str(path), recipe=recipe, per_agent=info["per_agent"])
    return dataset, source


TIMING_COLUMNS = ("steps_per_s", "wall_time")  # measured time: differs between any two runs of one experiment
EVAL_SCORES = ("return_mean", "return_std", "win_rate", "curve", "win_curve", "protocol")


def metrics_without_timing(path: Path) -> list[list[str]]:
    """metrics.csv as rows of cells, the timing columns left out (every other cell must match to the byte)."""
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    keep = [k for k, column in enumerate(table[0]) if column not in TIMING_COLUMNS] if table else []
    return [[row[k] for k in keep] for row in table]


def same_state(a: Any, b: Any) -> bool:
    """Whether two states (nested dicts, lists, tensors, NumPy arrays, numbers) are equal, NaN equal to NaN."""
    import numpy as np
    import torch

    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same_state, a, b))
    return a == b or (a != a and b != b)


def run_differences(run: str | Path, reference: str | Path) -> list[str]:
    """What differs between two run directories of one experiment (e.g. a resumed run and an uninterrupted
    one): metrics.csv but for its timing columns, curve.json, the checkpoint series' list, every stage
    hand-over's record, the best and final weights and eval.json's scores. Empty when they agree; weights
    are compared as tensors (a zip's bytes follow the name it was first written under)."""
    import torch

    run, reference = Path(run), Path(reference)
    differences = []

    def present(name: str) -> bool:
        if (run / name).exists() != (reference / name).exists():
            differences.append(f"{name}: only in {'the reference' if (reference / name).exists() else 'the run'}")
            return False
        return (reference / name).exists()

    if present("metrics.csv") and metrics_without_timing(run / "metrics.csv") != metrics_without_timing(
            reference / "metrics.csv"):
        differences.append("metrics.csv")
    handovers = sorted({str(p.relative_to(root)) for root in (run, reference) for p in root.glob("*/stage.json")})
    for name in ["curve.json", "best/best.json", "checkpoints/series.csv", *handovers]:
        if present(name) and (run / name).read_bytes() != (reference / name).read_bytes():
            differences.append(name)
    for name in ("best/algo.pt", "model/algo.pt"):
        if present(name) and not same_state(*(torch.load(root / name, weights_only=True) for root in (run, reference))):
            differences.append(f"{name} (weights)")
    if present("eval.json"):
        scores = [json.loads((root / "eval.json").read_text()) for root in (run, reference)]
        differences += [f"eval.json {key}" for key in EVAL_SCORES if scores[0].get(key) != scores[1].get(key)]
    return differences
