"""Benchmark suites: which datasets, algorithms, seeds and training scale a table is made of.

A suite is a YAML file -- a built-in one under ``offmarl/bench/suites/`` (``offmarl bench list``) or any
user file -- with these keys (every other key is an error that names the key and the file)::

    name: quick                      # required; letters, digits, "_", "-", "."; names OUT/<name>/
    description: >                   # required; one paragraph (shown by `offmarl bench list`)
      ...
    cpu_scale: >                     # optional; how big the suite is on a CPU and how that was estimated
      ...
    imports: [my_package.my_algos]   # optional; modules imported before the algorithms are looked up
                                     # (they register user algorithms; importable on every worker)
    datasets:                        # required, non-empty; each exactly one of recipe / path
      - recipe: tseng/equal_space    # a named recipe (`offmarl collect --list`), built once into the cache
        scale: 0.05                  #   recipe episodes x scale (default 1)
        seed: 0                      #   collection seed (default 0)
        label: equal_space           #   column name (default: the recipe without its paper prefix,
                                     #   "/" -> "_": tseng/grid_world/good -> grid_world_good); one recipe
                                     #   listed at several scales (distinct labels) is a dataset-size sweep
                                     #   (offmarl.bench.sweeps: the report plots return vs size)
      - path: data/mine.h5           # a dataset file; relative paths are relative to the suite file;
                                     #   label defaults to the file's stem
      - env: smac_3s_vs_3z           # an environment, for the algorithms that learn online (ippo, mappo, ...)
        kwargs: {episode_limit: 150} #   env kwargs (default none); label defaults to the env name
        num_envs: 8                  #   sub-envs stepped together (default 8)
        demonstrations:              #   optional: a dataset (recipe / path, scale, seed as above) for the
          recipe: dm2/smac_3s_vs_3z/cotrained/trained  # learners that learn from a dataset and the env (dm2, ...),
                                     #   which then run in this column beside the online learners
    algorithms:                      # required, non-empty; a registry name, or a mapping
      - bc
      - name: distill
        ablation: no_kl              # optional: row label distill[no_kl]
        variant: null                # optional
        preset: null                 # optional (algorithms whose config has a "preset" key)
        overrides: {hidden: 64}      # optional: config keys (see the algorithm's Config docstring)
        steps: 600                   # optional: replaces the suite's steps for this algorithm
        frames: 2000000              # optional (online algorithms): replaces the suite's frames
        seeds: 3                     # optional: this algorithm runs on the first 3 of the bench's seeds only
        tag: long_teacher            # optional: row label distill@long_teacher (to keep apart rows of
                                     #   one algorithm that differ only in overrides or steps)
    seeds: 3                         # N (seeds 0..N-1) or a list [3, 7]; default 3
    steps: 300                       # gradient steps per offline run ...
    frames: 2000000                  # ... env frames per online run (one frame: one step of one sub-env) ...
    train_scale: 0.01                # ... or a multiplier of each algorithm's paper-default budget
                                     #   (offline runs need steps or train_scale, online ones frames or
                                     #   train_scale; steps and frames exclude train_scale)
    eval_episodes: 32                # final evaluation episodes per run (default 32)
    eval_every: 0                    # steps between evaluations for the learning curve (0: end only)
    checkpoint: last                 # the weights scored in eval.json: last (default) or best (the best
                                     #   eval_every evaluation, scored on held-out episodes; needs eval_every)
    absolute_metric: false           # true: the absolute metric (Gorsane et al. 2022) -- the best checkpoint
                                     #   re-evaluated on 10 x eval_episodes, what the tables report (needs
                                     #   checkpoint: best)
    stat: std                        # the table's ± and the learning curves' bands: std (over seeds, the
                                     #   papers'), sem (standard error) or iqm (IQM with a 95 % bootstrap CI;
                                     #   offmarl.bench.statistics)
    checkpoint_every: 500            # steps between checkpoints (a killed run resumes from the last one)
    metric_curves: [value_diff]      # optional: metrics.csv columns plotted vs training step per dataset
                                     #   (metric_<metric>_<dataset>.png, mean ± std over seeds) and their
                                     #   last logged value tabled under table.md (offmarl.bench.run_metrics)

An algorithm runs on the entries it learns from (:func:`run_mode`): offline ones on the ``recipe`` / ``path``
entries, online ones on the ``env`` entries, and those that learn from a dataset *and* the env
(``"dataset+env"``: ``dm2``, ``ma_gail``, ...) on the ``recipe`` / ``path`` entries -- in the dataset's env --
and on the ``env`` entries that give ``demonstrations`` (a table cell of any other pair stays empty and is
not a missing run). Online and dataset+env runs count env frames (``frames``).

Parsing (:func:`load_suite`) checks the structure only; :func:`check_algorithms` resolves the algorithm
names through the registry when a bench starts, so an algorithm added later needs no change here. Row
labels are the registry labels (:func:`offmarl.train.run_dir.algo_label`): ``distill[no_kl]``, with a
``tag`` after ``@``: ``distill@long_teacher``.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from offmarl.bench.layout import SUITE_FOLDERS

BUILTIN_DIR = Path(__file__).resolve().parent / "suites"
DEFAULT_SEEDS = 3
DEFAULT_EVAL_EPISODES = 32
DEFAULT_CHECKPOINT_EVERY = 500

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_SUITE_KEYS = ("name", "description", "cpu_scale", "imports", "datasets", "algorithms", "seeds", "steps", "frames",
               "train_scale", "eval_episodes", "eval_every", "checkpoint_every", "metric_curves", "checkpoint",
               "absolute_metric", "stat")
_DATASET_KEYS = ("recipe", "path", "env", "kwargs", "num_envs", "scale", "seed", "label", "demonstrations")
_ALGO_KEYS = ("name", "ablation", "variant", "preset", "overrides", "steps", "frames", "tag", "seeds")
DEFAULT_NUM_ENVS = 8
STATS = ("std", "sem", "iqm")


@dataclass(frozen=True)
class DatasetEntry:
    """One column of the suite: a recipe built at ``scale``/``seed``, a file at ``path`` (absolute), or an
    environment ``env`` (``env_kwargs``, ``num_envs`` sub-envs) for online learners, with optional
    ``demonstrations`` (a recipe or file entry) for the learners that learn from a dataset and the env."""

    label: str
    recipe: str | None = None
    path: str | None = None
    scale: float = 1.0
    seed: int = 0
    env: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    num_envs: int = DEFAULT_NUM_ENVS
    demonstrations: "DatasetEntry | None" = None

    @property
    def online(self) -> bool:
        return self.env is not None

    @property
    def data(self) -> "DatasetEntry | None":
        """The entry whose dataset a run on this column reads: itself, or an env entry's demonstrations."""
        return self.demonstrations if self.online else self

    def describe(self) -> str:
        if self.env is not None:
            kwargs = ", ".join(f"{k}={v}" for k, v in self.env_kwargs.items())
            demos = f" with demonstrations {self.demonstrations.describe()}" if self.demonstrations else ""
            return f"env {self.env}({kwargs}) x {self.num_envs} sub-envs{demos}"
        if self.recipe is not None:
            return f"{self.recipe} (seed {self.seed}, scale {self.scale:g})"
        return str(self.path)

    def to_dict(self) -> dict[str, Any]:
        out = {"label": self.label, "recipe": self.recipe, "path": self.path, "scale": self.scale, "seed": self.seed}
        if self.env is not None:  # only then: the pins (bench.json) of dataset runs stay as they were
            out.update(env=self.env, env_kwargs=dict(self.env_kwargs), num_envs=self.num_envs)
        if self.demonstrations is not None:  # likewise
            out["demonstrations"] = self.demonstrations.to_dict()
        return out


@dataclass(frozen=True)
class AlgoEntry:
    """One row of the suite: a registered algorithm with its ablation/variant/preset and config overrides."""

    name: str
    ablation: str | None = None
    variant: str | None = None
    preset: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    steps: int | None = None
    tag: str | None = None
    frames: int | None = None
    seeds: int | None = None  # run on the first ``seeds`` of the bench's seeds only (None: all of them)

    def runs_seed(self, seed: int, bench_seeds: Sequence[int]) -> bool:
        """Whether this algorithm runs seed ``seed`` of the bench's ``bench_seeds``."""
        return self.seeds is None or seed in list(bench_seeds)[:self.seeds]

    @property
    def label(self) -> str:
        from offmarl.train.run_dir import algo_label

        return algo_label(self.name, self.ablation, self.variant, self.tag)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "label": self.label, "ablation": self.ablation, "variant": self.variant,
               "preset": self.preset, "overrides": dict(self.overrides), "steps": self.steps}
        if self.tag is not None:  # only when set: the pins (bench.json) of untagged runs stay as they were
            out["tag"] = self.tag
        if self.frames is not None:
            out["frames"] = self.frames
        if self.seeds is not None:
            out["seeds"] = self.seeds
        return out


@dataclass(frozen=True)
class Suite:
    """A parsed suite file (module docstring); ``source`` is the file it came from."""

    name: str
    description: str
    source: str
    datasets: tuple[DatasetEntry, ...]
    algorithms: tuple[AlgoEntry, ...]
    seeds: tuple[int, ...] = tuple(range(DEFAULT_SEEDS))
    steps: int | None = None
    train_scale: float | None = None
    frames: int | None = None
    eval_episodes: int = DEFAULT_EVAL_EPISODES
    eval_every: int = 0
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    cpu_scale: str = ""
    imports: tuple[str, ...] = ()
    metric_curves: tuple[str, ...] = ()
    checkpoint: str = "last"
    absolute_metric: bool = False
    stat: str = "std"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "source": self.source,
                "cpu_scale": self.cpu_scale, "imports": list(self.imports),
                "datasets": [d.to_dict() for d in self.datasets],
                "algorithms": [a.to_dict() for a in self.algorithms], "seeds": list(self.seeds),
                "steps": self.steps, "frames": self.frames, "train_scale": self.train_scale,
                "eval_episodes": self.eval_episodes,
                "eval_every": self.eval_every, "checkpoint_every": self.checkpoint_every,
                "metric_curves": list(self.metric_curves), "checkpoint": self.checkpoint,
                "absolute_metric": self.absolute_metric, "stat": self.stat}


# ---- parsing -------------------------------------------------------------------------------------------
class _Where:
    """Builds error messages that name the file and the key path: ``quick.yaml: datasets[1].scale: ...``."""

    def __init__(self, source: str):
        self.source = source

    def error(self, where: str, message: str) -> ValueError:
        return ValueError(f"{self.source}: {where}: {message}" if where else f"{self.source}: {message}")

    def keys(self, data: dict[str, Any], known: tuple[str, ...], where: str) -> None:
        for key in data:
            if key not in known:
                at = f"{where}: " if where else ""
                raise ValueError(f"{self.source}: {at}unknown key {key!r} (known keys: {', '.join(known)})")

    def integer(self, value: Any, where: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(where, f"expected an integer, got {value!r}")
        if value < minimum:
            raise self.error(where, f"must be >= {minimum}, got {value}")
        return value

    def positive(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(where, f"expected a number, got {value!r}")
        if not value > 0:
            raise self.error(where, f"must be > 0, got {value}")
        return float(value)

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(where, f"expected a non-empty string, got {value!r}")
        return value

    def optional_text(self, value: Any, where: str) -> str | None:
        return None if value is None else self.text(value, where)

    def label(self, value: Any, where: str) -> str:
        value = self.text(value, where)
        if not _NAME.match(value):
            raise self.error(where, f"{value!r} is not a valid name (letters, digits, '_', '-', '.', '+'; "
                                    "it names a directory)")
        return value


def parse_seeds(value: Any, where: str = "--seeds") -> tuple[int, ...]:
    """``5`` / ``"5"`` → seeds 0..4; ``[3, 7]`` / ``"3,7"`` → (3, 7). Seeds are distinct and >= 0."""
    if isinstance(value, str):
        text = value.strip()
        parts = [p.strip() for p in text.split(",")]
        try:
            numbers = [int(p) for p in parts if p]
        except ValueError:
            raise ValueError(f"{where}: expected N or a comma-separated list of seeds like 3,7, "
                             f"got {value!r}") from None
        if not numbers:
            raise ValueError(f"{where}: no seeds in {value!r}")
        value = numbers[0] if "," not in text else numbers
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected N or a list of seeds, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{where}: the number of seeds must be >= 1, got {value}")
        return tuple(range(value))
    if isinstance(value, (list, tuple)) and value:
        seeds = []
        for s in value:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise ValueError(f"{where}: seeds must be integers >= 0, got {s!r}")
            seeds.append(s)
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{where}: seed list {seeds} repeats a seed")
        return tuple(seeds)
    raise ValueError(f"{where}: expected N or a non-empty list of seeds, got {value!r}")


def default_dataset_label(recipe: str) -> str:
    """``tseng/equal_space`` → ``equal_space``; ``tseng/grid_world/good`` → ``grid_world_good``."""
    parts = recipe.split("/")
    return "_".join(parts[1:] if len(parts) > 1 else parts)


def _parse_dataset(entry: Any, i: int, base_dir: Path, w: _Where, where: str | None = None) -> DatasetEntry:
    where = where or f"datasets[{i}]"
    if not isinstance(entry, dict):
        raise w.error(where, f"expected a mapping with 'recipe' or 'path', got {entry!r}")
    w.keys(entry, _DATASET_KEYS, where)
    recipe, path, env = entry.get("recipe"), entry.get("path"), entry.get("env")
    if sum(x is not None for x in (recipe, path, env)) != 1:
        raise w.error(where, "give exactly one of 'recipe' (a named recipe), 'path' (a dataset file) or 'env' "
                             "(an environment, for online learners)")
    if env is None:
        for key in ("kwargs", "num_envs", "demonstrations"):
            if key in entry:
                raise w.error(f"{where}.{key}", "applies to env entries only")
    if env is not None:
        for key in ("scale", "seed"):
            if key in entry:
                raise w.error(f"{where}.{key}", "applies to recipes only; an env entry takes kwargs and num_envs")
        env = w.text(env, f"{where}.env")
        kwargs = entry.get("kwargs") or {}
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise w.error(f"{where}.kwargs", f"expected a mapping of env keyword arguments, got {kwargs!r}")
        demos = entry.get("demonstrations")
        if demos is not None:
            if not isinstance(demos, dict) or "env" in demos or "demonstrations" in demos:
                raise w.error(f"{where}.demonstrations", f"expected a mapping with 'recipe' or 'path' (and scale, "
                                                         f"seed), got {demos!r}")
            demos = _parse_dataset({"label": "demonstrations", **demos}, i, base_dir, w, f"{where}.demonstrations")
        return DatasetEntry(label=w.label(entry.get("label", env), f"{where}.label"), env=env, env_kwargs=dict(kwargs),
                            num_envs=w.integer(entry.get("num_envs", DEFAULT_NUM_ENVS), f"{where}.num_envs", 1),
                            demonstrations=demos)
    if path is not None:
        for key in ("scale", "seed"):
            if key in entry:
                raise w.error(f"{where}.{key}", "applies to recipes only; a dataset file is used as it is")
        file = Path(w.text(path, f"{where}.path")).expanduser()
        file = file if file.is_absolute() else (base_dir / file)
        label = w.label(entry.get("label", file.stem), f"{where}.label")
        return DatasetEntry(label=label, path=str(file.resolve()))
    recipe = w.text(recipe, f"{where}.recipe")
    scale = w.positive(entry.get("scale", 1.0), f"{where}.scale")
    seed = w.integer(entry.get("seed", 0), f"{where}.seed", 0)
    label = w.label(entry.get("label", default_dataset_label(recipe)), f"{where}.label")
    return DatasetEntry(label=label, recipe=recipe, scale=scale, seed=seed)


def _parse_algo(entry: Any, i: int, w: _Where) -> AlgoEntry:
    where = f"algorithms[{i}]"
    if isinstance(entry, str):
        return AlgoEntry(name=w.text(entry, where))
    if not isinstance(entry, dict):
        raise w.error(where, f"expected an algorithm name or a mapping with 'name', got {entry!r}")
    w.keys(entry, _ALGO_KEYS, where)
    if "name" not in entry:
        raise w.error(where, "missing 'name' (a registered algorithm, see `offmarl train --list`)")
    overrides = entry.get("overrides") or {}
    if not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides):
        raise w.error(f"{where}.overrides", f"expected a mapping of config keys, got {overrides!r}")
    for reserved in ("steps", "ablation", "variant", "preset"):
        if reserved in overrides:
            raise w.error(f"{where}.overrides.{reserved}", f"set {reserved!r} on the algorithm entry itself, "
                                                           "not in its overrides")
    steps, frames = entry.get("steps"), entry.get("frames")
    tag = entry.get("tag")
    if tag is not None:
        from offmarl.train.run_dir import check_tag

        try:
            check_tag(w.text(tag, f"{where}.tag"))
        except ValueError as exc:
            raise w.error(f"{where}.tag", str(exc)) from None
    return AlgoEntry(name=w.text(entry["name"], f"{where}.name"),
                     ablation=w.optional_text(entry.get("ablation"), f"{where}.ablation"),
                     variant=w.optional_text(entry.get("variant"), f"{where}.variant"),
                     preset=w.optional_text(entry.get("preset"), f"{where}.preset"),
                     overrides=dict(overrides),
                     steps=None if steps is None else w.integer(steps, f"{where}.steps", 1), tag=tag,
                     frames=None if frames is None else w.integer(frames, f"{where}.frames", 1),
                     seeds=None if entry.get("seeds") is None else w.integer(entry["seeds"], f"{where}.seeds", 1))


def _parse_metric_curves(value: Any, w: _Where) -> tuple[str, ...]:
    """Distinct metrics.csv column names (not ``step``, the x axis); a run's columns are only known once it
    has logged, so a name no run logs is not an error here -- the plot skips it."""
    if not isinstance(value, list):
        raise w.error("metric_curves", f"expected a list of metrics.csv column names like [value_diff], got {value!r}")
    for i, name in enumerate(value):
        if not isinstance(name, str) or not name.strip():
            raise w.error(f"metric_curves[{i}]", f"expected a metrics.csv column name, got {name!r}")
        if name == "step":
            raise w.error(f"metric_curves[{i}]", "'step' is the x axis of every curve, not a metric")
        if not _NAME.match(name):
            raise w.error(f"metric_curves[{i}]", f"{name!r} is not a valid column name (letters, digits, '_', '-', "
                                                 "'.', '+'; it names the plot file)")
    repeated = sorted({x for x in value if value.count(x) > 1})
    if repeated:
        raise w.error("metric_curves", f"{repeated[0]!r} appears more than once")
    return tuple(value)


def parse_suite(data: Any, source: str, base_dir: Path | None = None) -> Suite:
    """A :class:`Suite` from the YAML mapping ``data`` read from ``source`` (named in every error)."""
    w = _Where(source)
    if not isinstance(data, dict):
        raise w.error("", f"a suite is a mapping of keys ({', '.join(_SUITE_KEYS)}), got {type(data).__name__}")
    w.keys(data, _SUITE_KEYS, "")
    for key in ("name", "description", "datasets", "algorithms"):
        if key not in data:
            raise w.error("", f"missing required key {key!r}")
    base_dir = Path(source).resolve().parent if base_dir is None else base_dir

    datasets_raw, algos_raw = data["datasets"], data["algorithms"]
    if not isinstance(datasets_raw, list) or not datasets_raw:
        raise w.error("datasets", "expected a non-empty list")
    if not isinstance(algos_raw, list) or not algos_raw:
        raise w.error("algorithms", "expected a non-empty list")
    datasets = tuple(_parse_dataset(d, i, base_dir, w) for i, d in enumerate(datasets_raw))
    algorithms = tuple(_parse_algo(a, i, w) for i, a in enumerate(algos_raw))
    for what, labels in (("datasets", [d.label for d in datasets]), ("algorithms", [a.label for a in algorithms])):
        repeated = sorted({x for x in labels if labels.count(x) > 1})
        if repeated:
            hint = "give each a distinct 'label'" if what == "datasets" else \
                "rows are labelled name[ablation,variant]@tag; give each a distinct 'tag'"
            raise w.error(what, f"label {repeated[0]!r} appears more than once ({hint})")
    for i, dataset in enumerate(datasets):
        if dataset.label in SUITE_FOLDERS:
            raise w.error(f"datasets[{i}].label", f"{dataset.label!r} names a folder of the suite directory itself "
                                                  "(its runs would mix with it); give the dataset another 'label'")

    offline = any(not d.online for d in datasets)
    if "train_scale" in data and ("steps" in data or "frames" in data):
        raise w.error("", "'train_scale' multiplies each algorithm's default budget; give it or 'steps' / 'frames'")
    if offline and not ("steps" in data or "train_scale" in data or "frames" in data):
        raise w.error("", "give 'steps' (gradient steps per offline run) or 'train_scale' (multiplier of each "
                          "algorithm's default steps)")  # frames alone: the dataset entries' learners interact
    steps = w.integer(data["steps"], "steps", 1) if "steps" in data else None
    frames = w.integer(data["frames"], "frames", 1) if "frames" in data else None
    train_scale = w.positive(data["train_scale"], "train_scale") if "train_scale" in data else None
    imports = data.get("imports") or []
    if not isinstance(imports, list) or not all(isinstance(m, str) and m for m in imports):
        raise w.error("imports", f"expected a list of module names, got {imports!r}")
    metric_curves = _parse_metric_curves([] if data.get("metric_curves") is None else data["metric_curves"], w)
    try:
        seeds = parse_seeds(data.get("seeds", DEFAULT_SEEDS), "seeds")
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    from offmarl.train.run_dir import CHECKPOINTS

    checkpoint = data.get("checkpoint", "last")
    if checkpoint not in CHECKPOINTS:
        raise w.error("checkpoint", f"expected {' or '.join(CHECKPOINTS)}, got {checkpoint!r}")
    eval_every = w.integer(data.get("eval_every", 0), "eval_every", 0)
    if checkpoint == "best" and eval_every < 1:
        raise w.error("checkpoint", "best needs evaluations during training to select from: set eval_every")
    absolute_metric = data.get("absolute_metric", False)
    if not isinstance(absolute_metric, bool):
        raise w.error("absolute_metric", f"expected true or false, got {absolute_metric!r}")
    if absolute_metric and checkpoint != "best":
        raise w.error("absolute_metric", "re-evaluates the best checkpoint: it needs 'checkpoint: best' (and "
                                         "eval_every > 0)")
    stat = data.get("stat", "std")
    if stat not in STATS:
        raise w.error("stat", f"expected {', '.join(STATS)}, got {stat!r}")
    return Suite(
        name=w.label(data["name"], "name"),
        description=" ".join(w.text(data["description"], "description").split()),
        source=source, datasets=datasets, algorithms=algorithms, seeds=seeds, steps=steps, frames=frames,
        train_scale=train_scale,
        eval_episodes=w.integer(data.get("eval_episodes", DEFAULT_EVAL_EPISODES), "eval_episodes", 0),
        eval_every=eval_every, checkpoint=checkpoint, absolute_metric=absolute_metric, stat=stat,
        checkpoint_every=w.integer(data.get("checkpoint_every", DEFAULT_CHECKPOINT_EVERY), "checkpoint_every", 1),
        cpu_scale=" ".join(str(data.get("cpu_scale") or "").split()),
        imports=tuple(imports), metric_curves=metric_curves,
    )


def builtin_suites() -> list[str]:
    """Names of the built-in suites (files under ``offmarl/bench/suites``)."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def suite_path(name_or_path: str | Path) -> Path:
    """The file of a built-in suite name, or ``name_or_path`` itself when it is a file."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_file():
        return candidate
    builtin = BUILTIN_DIR / f"{name_or_path}.yaml"
    if builtin.is_file():
        return builtin
    if candidate.suffix in (".yaml", ".yml") or len(candidate.parts) > 1:
        raise FileNotFoundError(f"suite file {candidate} does not exist")
    raise ValueError(f"unknown suite {str(name_or_path)!r}: neither a built-in ({', '.join(builtin_suites())}) "
                     "nor a YAML file")


def load_suite(name_or_path: str | Path) -> Suite:
    """Read and parse a built-in suite or a suite file; errors name the file and the offending key."""
    path = suite_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    suite = parse_suite(data, str(path))
    if path.parent.resolve() == BUILTIN_DIR and suite.name != path.stem:
        raise ValueError(f"{path}: built-in suite name {suite.name!r} differs from its file name {path.stem!r}")
    return suite


# ---- resolution through the registries (when a bench starts) ----------------------------------------------
def import_modules(suite: Suite) -> None:
    """Import the suite's ``imports`` (user modules that register algorithms)."""
    for module in suite.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(f"{suite.source}: imports: cannot import {module!r}: {exc}") from exc


def check_algorithms(suite: Suite) -> None:
    """Every algorithm of ``suite`` exists in the registry, with the ablation / variant it names.

    Raises ``ValueError`` naming the suite file, the entry and the registered choices."""
    from offmarl.algos import get_algo_class, list_algos

    known = list_algos()
    for i, entry in enumerate(suite.algorithms):
        where = f"{suite.source}: algorithms[{i}]"
        if entry.name not in known:
            raise ValueError(f"{where}: unknown algorithm {entry.name!r}; registered: {', '.join(known)}")
        cls = get_algo_class(entry.name)
        for kind, value, choices in (("ablation", entry.ablation, cls.ablations),
                                     ("variant", entry.variant, cls.variants)):
            if value is not None and value not in choices:
                raise ValueError(f"{where}: algorithm {entry.name!r} has no {kind} {value!r}; "
                                 f"known: {', '.join(choices) or 'none'}")


def run_mode(algo_name: str, entry: DatasetEntry) -> str | None:
    """How the registered algorithm ``algo_name`` learns on ``entry`` (module docstring): ``"dataset"`` (offline,
    a dataset entry), ``"env"`` (online, an env entry), ``"dataset+env"`` (a dataset entry in its env, or an env
    entry with demonstrations), or None: it does not run there."""
    from offmarl.algos import get_algo_class

    modes = get_algo_class(algo_name).learns_from
    own = "env" if entry.online else "dataset"
    if own in modes:
        return own
    if "dataset+env" in modes and entry.data is not None:
        return "dataset+env"
    return None


def learns_on(algo_name: str, entry: DatasetEntry) -> bool:
    """Whether the registered algorithm ``algo_name`` runs on ``entry`` (:func:`run_mode`)."""
    return run_mode(algo_name, entry) is not None


def check_datasets(suite: Suite) -> None:
    """Every recipe and env is known, every dataset file exists, and every algorithm has an entry it learns
    from (named in the error)."""
    from offmarl.algos import get_algo_class
    from offmarl.collect.recipes import is_recipe
    from offmarl.envs.registry import get_env_entry

    for i, algo in enumerate(suite.algorithms):
        if not any(learns_on(algo.name, entry) for entry in suite.datasets):
            modes = get_algo_class(algo.name).learns_from
            kind = ("a dataset entry or an 'env' entry with demonstrations" if "dataset+env" in modes
                    else "an 'env' entry" if "dataset" not in modes else "a dataset entry")
            raise ValueError(f"{suite.source}: algorithms[{i}]: {algo.label} has nothing to learn from in this suite "
                             f"(it needs {kind})")
    for i, entry in enumerate(suite.datasets):
        if entry.env is not None:
            try:
                get_env_entry(entry.env)
            except KeyError as exc:
                raise ValueError(f"{suite.source}: datasets[{i}].env: {exc.args[0]}") from None
        data, where = entry.data, f"datasets[{i}]" + (".demonstrations" if entry.online else "")
        if data is not None and data.recipe is not None and not is_recipe(data.recipe):
            raise ValueError(f"{suite.source}: {where}.recipe: unknown recipe {data.recipe!r}; "
                             "see `offmarl collect --list`")
        if data is not None and data.path is not None and not Path(data.path).is_file():
            raise FileNotFoundError(f"{suite.source}: {where}.path: {data.path} does not exist")
