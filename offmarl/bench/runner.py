"""Run every (dataset, algorithm, seed) of a suite, resumably, on a local process pool or on Ray.

The suite directory's layout (suite.json, configs/, one run directory per (dataset, algorithm, seed) with
its lock, pin and log) is :mod:`offmarl.bench.layout`.

The one code path: a worker calls :func:`offmarl.train.experiment.run_experiment` exactly as ``offmarl train``
does (fit, final evaluation, eval.json), with ``resume=True`` when the run directory holds a checkpoint.

Resumability (what "nothing lost, nothing done twice" rests on):

* a run whose ``eval.json`` exists is finished and skipped (checked again by the worker under the run's
  lock, so two benches on the same directory never train one run twice);
* a half-done run resumes from ``checkpoints/last.pt`` (the fit loop restores weights, optimizer,
  sampler, RNGs and cuts ``metrics.csv`` back to the checkpoint, so no row appears twice); the updates
  since the last checkpoint are redone -- ``checkpoint_every`` bounds that loss;
* a run killed before its first checkpoint starts again from scratch (the fit loop rewrites its files);
* ``bench.json`` pins a started run to its dataset, algorithm config, steps and evaluation: a re-run of an
  edited suite that would continue (from a checkpoint) or skip (eval.json) such a run under other settings
  stops with an error naming the run directory, instead of mixing two experiments in one table;
* local workers exit when the bench process dies (a watchdog on the parent pid), so a killed bench leaves
  no orphan still writing into the runs a re-run is about to resume;
* a worker that dies mid-run (killed by the OS or a user, a Ray node lost) has its run started again, from
  the run's checkpoint, :data:`WORKER_DEATH_RETRIES` times at most (a fresh local pool; Ray's task retries);
* the temporary files that writers killed in the suite directory left behind are removed when a bench
  starts (:func:`offmarl.core.files.sweep_stale_temporaries`: a live writer's, e.g. another bench's on the
  same directory, stay);
* a failing run writes ``error.txt`` (its traceback) and the others go on; it is retried by the next
  bench (it has no eval.json), from its checkpoint when it has one.

Threads: W workers each run ``torch.set_num_threads(max(1, cores // W))`` (and OMP/MKL variables) -- a
run's numbers depend on its thread count (``offmarl.core.seeding``), which config.json records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from offmarl import __version__
from offmarl.bench.layout import (
    CONFIGS_DIR,
    LOCK_FILE,
    LOG_FILE,
    PIN_FILE,
    RECORDS_DIR,
    SUITE_RECORD,
    read_suite_record,
    run_dir_for,
    run_lock,
    run_order,
    suite_dir_name,
)
from offmarl.bench.records import REPORT_FILE, RecordSet
from offmarl.bench.suite import (
    AlgoEntry,
    DatasetEntry,
    Suite,
    check_algorithms,
    check_datasets,
    import_modules,
    learns_on,
    run_mode,
)
from offmarl.core.files import atomic_write_bytes, atomic_write_json, atomic_write_text, sweep_stale_temporaries
from offmarl.core.seeding import set_threads

STATUS_DONE, STATUS_FAILED, STATUS_SKIPPED, STATUS_BUSY = "done", "failed", "skipped", "busy"
BACKENDS = ("local", "ray")
WORKER_DEATH_RETRIES = 2  # a run whose worker process died is started again (resuming) at most this often
LOCK_WAIT_S = 10.0  # a run locked by a dying worker of a killed bench is free again within ~1 s


def cpu_count() -> int:
    """Cores this process may use (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


# ---- the unit of work -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs to train and evaluate one (dataset, algorithm, seed); picklable."""

    run_dir: str
    dataset: DatasetEntry
    algo: AlgoEntry
    seed: int
    steps: int
    eval_episodes: int
    eval_every: int
    checkpoint_every: int
    config_path: str | None
    imports: tuple[str, ...] = ()
    checkpoint: str = "last"
    threads: int = 1
    absolute_metric: bool = False

    @property
    def label(self) -> str:
        return f"{self.algo.label} · {self.dataset.label} · seed {self.seed}"

    def pin(self) -> dict[str, Any]:
        """What a started run is pinned to (``bench.json``); anything else may change between sessions."""
        return run_pin(self.dataset.to_dict(), self.algo.to_dict(), self.seed, self.steps, self.eval_episodes,
                       self.eval_every, self.checkpoint, self.absolute_metric)


def run_pin(dataset: dict[str, Any], algo: dict[str, Any], seed: int, steps: int, eval_episodes: int,
            eval_every: int, checkpoint: str, absolute_metric: bool) -> dict[str, Any]:
    """:meth:`RunTask.pin` from the entries' ``to_dict()`` (as a ``suite.json`` stores them)."""
    # the resolved steps are what counts; how many seeds an algorithm runs does not change any one run
    algo = {k: v for k, v in algo.items() if k not in ("steps", "seeds")}
    pin = {"dataset": dataset, "algorithm": algo, "seed": seed, "steps": steps,
           "eval_episodes": eval_episodes, "eval_every": eval_every}
    if checkpoint != "last":  # only when set: the pins of the runs that predate the key stay valid
        pin["checkpoint"] = checkpoint
    if absolute_metric:  # likewise
        pin["absolute_metric"] = True
    return pin


@dataclass
class RunOutcome:
    run_dir: str
    label: str
    status: str
    seconds: float = 0.0
    return_mean: float | None = None
    error: str | None = None  # one line; the traceback is in run_dir/error.txt


def _paths(run_dir: str | Path):
    from offmarl.train.run_dir import RunPaths

    return RunPaths(Path(run_dir))


def execute_run(task: RunTask) -> RunOutcome:
    """Train and evaluate one run in this process (a pool worker or a Ray task); never raises for a
    failing run -- its traceback goes to ``error.txt`` and the outcome says ``failed``."""
    import importlib

    set_threads(task.threads)
    started = time.perf_counter()
    paths = _paths(task.run_dir)
    with run_lock(paths.root, LOCK_WAIT_S) as locked:
        if not locked:
            return RunOutcome(task.run_dir, task.label, STATUS_BUSY,
                              error=f"another process holds {paths.root / LOCK_FILE}; it is running this run")
        if paths.eval.exists():  # finished by another bench while this one waited
            return RunOutcome(task.run_dir, task.label, STATUS_SKIPPED, return_mean=_return_of(paths.eval))
        log = open(paths.root / LOG_FILE, "a")
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                print(f"--- {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {task.label}, "
                      f"{task.threads} thread(s), resume={paths.checkpoint.exists()}", flush=True)
                for module in task.imports:
                    importlib.import_module(module)
                atomic_write_json(paths.root / PIN_FILE, task.pin())
                _train(task, paths)
            paths.error.unlink(missing_ok=True)  # a retry that succeeded: the old failure no longer applies
        except Exception as exc:  # noqa: BLE001 - any failure of one run is recorded, the bench goes on
            paths.record_error(traceback.format_exc())
            return RunOutcome(task.run_dir, task.label, STATUS_FAILED, time.perf_counter() - started,
                              error=f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500])
        finally:
            log.close()
    return RunOutcome(task.run_dir, task.label, STATUS_DONE, time.perf_counter() - started,
                      return_mean=_return_of(paths.eval))


def _train(task: RunTask, paths: Any) -> None:
    from offmarl.collect.recipes import get_recipe_dataset
    from offmarl.train.experiment import Experiment, build_pool, run_experiment

    entry, mode = task.dataset, run_mode(task.algo.name, task.dataset)
    source: dict[str, Any] = {}
    if entry.online:
        source = dict(env=entry.env, env_kwargs=entry.env_kwargs, num_envs=entry.num_envs)
    data = entry.data if mode != "env" else None
    if data is not None:  # a Ray node without the suite's datasets builds them into its own cache (same recipe)
        source["dataset"] = str(get_recipe_dataset(data.recipe, data.seed, data.scale, pool_provider=build_pool)
                                if data.recipe else data.path)
    record = run_experiment(Experiment(
        algo=task.algo.name, **source, dataset_label=entry.label, out=paths.root, seed=task.seed,
        steps=task.steps, config=task.config_path, ablation=task.algo.ablation, variant=task.algo.variant,
        preset=task.algo.preset, tag=task.algo.tag, resume=paths.checkpoint.exists(),
        eval_episodes=task.eval_episodes, eval_every=task.eval_every, checkpoint_every=task.checkpoint_every,
        checkpoint=task.checkpoint, absolute_metric=task.absolute_metric, progress=False))
    print(f"{record['label']} on {record['source_label']}, seed {task.seed}: {record['steps']} steps -> "
          f"{record['run_dir']}", flush=True)
    if not paths.eval.exists():
        raise RuntimeError(f"training finished but wrote no {paths.eval} (eval_episodes must be >= 1 in a bench)")


def _return_of(eval_path: Path) -> float | None:
    try:
        return float(json.loads(eval_path.read_text())["return_mean"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ---- local process pool ---------------------------------------------------------------------------
def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)  # the bench died (e.g. SIGKILL): stop now, the next bench resumes this run
        time.sleep(0.25)


def _init_worker(threads: int, parent: int) -> None:
    set_threads(threads)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="offmarl-parent-watch").start()


def run_local(tasks: Sequence[RunTask], workers: int, on_done: Callable[[RunOutcome], None]) -> list[RunOutcome]:
    """Run ``tasks`` on ``workers`` spawned processes; ``on_done`` sees each outcome as it arrives.

    A worker that dies (killed by the OS, a crash in native code) breaks the pool: the unfinished runs go
    to a fresh pool, :data:`WORKER_DEATH_RETRIES` times at most; after that they are reported as failed."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    outcomes: list[RunOutcome] = []
    remaining = list(tasks)
    restarts = WORKER_DEATH_RETRIES
    threads = tasks[0].threads if tasks else 1
    while remaining:
        broken: list[RunTask] = []
        pool = ProcessPoolExecutor(max_workers=max(1, min(workers, len(remaining))),
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(threads, os.getpid()))
        try:
            futures = {pool.submit(execute_run, task): task for task in remaining}
            for future in as_completed(futures):
                task = futures[future]
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    broken.append(task)
                    continue
                except Exception as exc:  # noqa: BLE001 - e.g. an outcome that cannot be unpickled
                    outcome = RunOutcome(task.run_dir, task.label, STATUS_FAILED, error=f"{type(exc).__name__}: {exc}")
                outcomes.append(outcome)
                on_done(outcome)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        remaining = broken
        if broken and restarts == 0:
            for task in broken:
                outcome = RunOutcome(task.run_dir, task.label, STATUS_FAILED,
                                     error="its worker process died (killed by the OS, e.g. out of memory?)")
                outcomes.append(outcome)
                on_done(outcome)
            break
        restarts -= 1
    return outcomes


# ---- Ray ----------------------------------------------------------------------------------------------
def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError("--backend ray needs Ray: pip install 'offmarl[ray]'") from exc
    return ray


def ray_cpus(address: str | None) -> int:
    """Start (or connect to) Ray and return the cluster's CPU count."""
    ray = _import_ray()
    if not ray.is_initialized():
        # no address: a local Ray on this machine's cores; log_to_driver off because every run writes its
        # own bench.log (a cluster's runs need OUT on a file system every node shares)
        local = address is None and not os.environ.get("RAY_ADDRESS")
        ray.init(address=address, log_to_driver=False, include_dashboard=False,
                 **({"num_cpus": cpu_count()} if local else {}))
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def run_ray(tasks: Sequence[RunTask], on_done: Callable[[RunOutcome], None]) -> list[RunOutcome]:
    """The same runs as Ray tasks, each reserving ``task.threads`` CPUs (Ray caps the concurrency).

    A task whose worker process dies is run again by Ray (``max_retries``; a failing run is not, it returns its
    outcome); the retry takes the run's lock once the dead worker's is released and resumes from the run's
    checkpoint. Retries exhausted, the run is reported as failed."""
    ray = _import_ray()
    remote = ray.remote(execute_run)
    pending = {remote.options(num_cpus=task.threads, max_retries=WORKER_DEATH_RETRIES).remote(task): task
               for task in tasks}
    outcomes: list[RunOutcome] = []
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - the task's worker died
                outcome = RunOutcome(task.run_dir, task.label, STATUS_FAILED, error=f"{type(exc).__name__}: {exc}")
            outcomes.append(outcome)
            on_done(outcome)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return outcomes


# ---- planning -----------------------------------------------------------------------------------------
def prepare_datasets(suite: Suite, echo: Callable[[str], None]) -> dict[str, Path]:
    """Build (or find in the cache) every recipe dataset of the suite; ``{label: file}``."""
    from offmarl.collect.recipes import cache_recipe_dataset, recipe_dataset_path
    from offmarl.train.experiment import build_pool

    files: dict[str, Path] = {}
    for column in suite.datasets:
        entry = column.data  # an env entry's demonstrations, if it has any
        if entry is None:
            continue
        entry = dataclasses.replace(entry, label=column.label)
        if entry.recipe is None:
            files[entry.label] = Path(entry.path)
            echo(f"dataset {entry.label}: {entry.path}")
            continue
        files[entry.label] = recipe_dataset_path(entry.recipe, entry.seed, entry.scale)
        if not files[entry.label].exists():
            echo(f"dataset {entry.label}: building {entry.describe()} into the cache ...")
        t0 = time.perf_counter()
        # or finds another process's build; a trained recipe's pools are trained first where missing
        built = cache_recipe_dataset(entry.recipe, entry.seed, entry.scale, pool_provider=build_pool)
        how = f"built in {time.perf_counter() - t0:.1f} s" if built else "cached"
        echo(f"dataset {entry.label}: {entry.describe()} -> {files[entry.label]} ({how})")
    return files


def _env_of(path: Path) -> tuple[str, dict[str, Any]]:
    """The env (name, kwargs) of a dataset file's card."""
    from offmarl.data.io import dataset_info

    info = dataset_info(path)
    card = info["agents"][0]["card"] if info["per_agent"] else info["card"]
    return card["env_name"], dict(card.get("env_kwargs") or {})


def write_override_files(suite: Suite, suite_dir: Path) -> dict[str, Path | None]:
    """``configs/<algo label>.yaml`` of every algorithm with overrides (passed as ``offmarl train --config``)."""
    import yaml

    files: dict[str, Path | None] = {}
    for entry in suite.algorithms:
        if not entry.overrides:
            files[entry.label] = None
            continue
        path = suite_dir / CONFIGS_DIR / f"{entry.label}.yaml"
        text = f"# config overrides of {entry.label} in suite {suite.name} ({suite.source})\n"
        atomic_write_text(path, text + yaml.safe_dump(entry.overrides, sort_keys=True))
        files[entry.label] = path
    return files


def resolve_steps(suite: Suite, entry: AlgoEntry, env_name: str, config_path: Path | None, scale: float,
                  online: bool = False, env_kwargs: dict[str, Any] | None = None) -> int:
    """The budget of ``entry`` on an env -- gradient steps offline, env frames online: the entry's or the
    suite's ``steps`` (``frames``) × ``scale``, or the algorithm's own default (per-env defaults and overrides
    applied, as ``offmarl train``; ``Algorithm.default_steps`` on the env ``env_name(**env_kwargs)`` where the
    algorithm computes it) × ``train_scale`` × ``scale``. Bad override keys or values fail here, before any run
    starts."""
    from offmarl.algos.base import Algorithm, build_config, get_algo_class
    from offmarl.envs.registry import EnvSource
    from offmarl.train.experiment import config_overrides

    cls = get_algo_class(entry.name)
    try:
        config = build_config(cls, config_overrides(cls, env_name, config_path, [], entry.ablation,
                                                    entry.variant, entry.preset))
    except ValueError as exc:
        raise ValueError(f"{suite.source}: algorithm {entry.label} on env {env_name}: {exc}") from None
    given = (entry.frames, suite.frames) if online else (entry.steps, suite.steps)
    budget = next((x for x in given if x is not None), None)
    if budget is not None:
        return max(1, round(budget * scale))
    if suite.train_scale is None and online:
        raise ValueError(f"{suite.source}: algorithm {entry.label} learns online: give the suite's 'frames' (env "
                         "frames per online run), the algorithm's 'frames', or 'train_scale'")
    if suite.train_scale is None:
        raise ValueError(f"{suite.source}: algorithm {entry.label} learns offline: give the suite's 'steps' (gradient "
                         "steps per offline run), the algorithm's 'steps', or 'train_scale'")
    default = config.steps
    if cls.default_steps.__func__ is not Algorithm.default_steps.__func__:  # depends on the env (finetune)
        default = cls.default_steps(config, EnvSource(env_name, env_kwargs or {}, 1).spec())
    return max(1, round(default * suite.train_scale * scale))


def plan_runs(suite: Suite, suite_dir: Path, seeds: Sequence[int], scale: float,
              dataset_files: dict[str, Path]) -> list[RunTask]:
    """Every (dataset, algorithm, seed) of the suite as a task (threads are set when the backend is known).

    In :func:`offmarl.bench.layout.run_order` (seeds outermost). A run directory whose ``bench.json`` pins
    other settings is an error naming the directory."""
    config_files = write_override_files(suite, suite_dir)
    envs = {dataset.label: (dataset.env, dict(dataset.env_kwargs)) if dataset.online
            else _env_of(dataset_files[dataset.label]) for dataset in suite.datasets}
    tasks = []
    for seed, dataset, algo in run_order(seeds, suite.datasets, suite.algorithms):
        if not learns_on(algo.name, dataset) or not algo.runs_seed(seed, seeds):
            continue
        env_name, env_kwargs = envs[dataset.label]
        steps = resolve_steps(suite, algo, env_name, config_files[algo.label], scale,
                              run_mode(algo.name, dataset) != "dataset", env_kwargs)
        run_dir = run_dir_for(suite_dir, dataset.label, algo.label, seed)
        config = config_files[algo.label]
        task = RunTask(run_dir=str(run_dir), dataset=dataset, algo=algo, seed=seed, steps=steps,
                       eval_episodes=suite.eval_episodes, eval_every=suite.eval_every,
                       checkpoint_every=suite.checkpoint_every, config_path=None if config is None else str(config),
                       imports=suite.imports, checkpoint=suite.checkpoint, absolute_metric=suite.absolute_metric)
        _check_pin(run_dir, task.pin())
        tasks.append(task)
    return tasks


def _pin_difference(stored: dict[str, Any], pin: dict[str, Any]) -> str | None:
    """``"<key> = <stored value>, the suite now asks <value>"`` for the first key of ``pin`` whose value
    ``stored`` does not share (compared as JSON), None when none differs."""
    current = json.loads(json.dumps(pin))
    for key in current:
        if stored.get(key) != current[key]:
            return f"{key} = {json.dumps(stored.get(key))}, the suite now asks {json.dumps(current[key])}"
    return None


def _check_pin(run_dir: Path, pin: dict[str, Any]) -> None:
    """A run with something to reuse (a checkpoint or eval.json) must keep the settings it was started with;
    one without (failed before its first checkpoint) simply starts again under the new settings."""
    path, paths = run_dir / PIN_FILE, _paths(run_dir)
    if not path.exists() or not (paths.checkpoint.exists() or paths.eval.exists()):
        return
    difference = _pin_difference(json.loads(path.read_text()), pin)
    if difference:
        raise ValueError(f"{run_dir} was started with {difference}; use another --out (or --scale), or delete "
                         "that run directory to redo it")


def restore_runs(tasks: Sequence[RunTask], results_dir: Path, scale: float, suite_dir: Path) -> list[RunTask]:
    """Give back to the ``tasks`` without an eval.json the runs a results folder recorded (its ``records/``,
    written by the report): eval.json (and metrics.csv where recorded) from the record, bench.json from the
    pin the recording suite gave the run; the commands that made them join ``suite_dir``'s suite.json (the
    table's footer quotes them). A runs directory lost with a machine need not be retrained: a run is a
    function of its pinned settings and seed. A record whose suite pinned other settings than the task's is a
    one-line error naming the record. Returns the tasks restored."""
    records_dir = Path(results_dir) / RECORDS_DIR
    if not (records_dir / REPORT_FILE).is_file():
        raise FileNotFoundError(f"--restore: {results_dir} is not a results folder (no {records_dir / REPORT_FILE})")
    recorded = RecordSet.from_records(records_dir)
    stored = recorded.suite_record
    if stored is None:
        raise ValueError(f"--restore: the runs in {records_dir} were not made by a bench, so nothing pins their "
                         "settings")
    if stored.get("scale", 1.0) != scale:
        raise ValueError(f"--restore: {records_dir} holds runs at --scale {stored.get('scale', 1.0):g}, this bench "
                         f"runs at --scale {scale:g}")
    suite = stored["suite"]
    datasets = {d["label"]: d for d in suite["datasets"]}
    algos = {a["label"]: a for a in suite["algorithms"]}
    by_run = {(r.dataset, r.algo, r.seed): r for r in recorded.records}
    restored = []
    for task in tasks:
        record = by_run.get((task.dataset.label, task.algo.label, task.seed))
        paths = _paths(task.run_dir)
        if record is None or paths.eval.exists():
            continue
        # keys a suite record may predate take the defaults they had then
        pin = run_pin(datasets.get(task.dataset.label), algos.get(task.algo.label), record.seed, record.steps,
                      suite.get("eval_episodes"), suite.get("eval_every"), suite.get("checkpoint", "last"),
                      suite.get("absolute_metric", False))
        difference = _pin_difference(pin, task.pin())
        if difference:
            raise ValueError(f"--restore: {record.path} was run with {difference}")
        paths.root.mkdir(parents=True, exist_ok=True)
        if Path(record.metrics_csv).is_file():
            atomic_write_bytes(paths.metrics, Path(record.metrics_csv).read_bytes())
        atomic_write_json(paths.root / PIN_FILE, pin)
        atomic_write_bytes(paths.eval, Path(record.path).read_bytes())  # last: an eval.json marks a finished run
        restored.append(task)
    suite_json = read_suite_record(suite_dir)
    if restored and suite_json is not None:
        earlier = [c for c in stored.get("commands", []) if c not in suite_json["commands"]]
        atomic_write_json(suite_dir / SUITE_RECORD, {**suite_json, "commands": earlier + suite_json["commands"]})
    return restored


# ---- the bench ----------------------------------------------------------------------------------------
@dataclass
class BenchResult:
    suite_dir: Path
    tasks: list[RunTask]
    skipped: list[RunTask]
    outcomes: list[RunOutcome]
    seconds: float

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status in (STATUS_FAILED, STATUS_BUSY)]

    @property
    def eval_files(self) -> list[Path]:
        return [_paths(t.run_dir).eval for t in self.tasks if _paths(t.run_dir).eval.exists()]


def bench_command(suite: str, seeds: str | None, workers: int | None, backend: str, address: str | None,
                  out: Path, scale: float | None) -> str:
    """The ``offmarl bench run`` command line equivalent to these arguments (recorded in suite.json)."""
    parts = ["offmarl", "bench", "run", str(suite)]
    for flag, value in (("--seeds", seeds), ("--workers", workers), ("--address", address), ("--scale", scale)):
        if value is not None:
            parts += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    if backend != "local":
        parts += ["--backend", backend]
    parts += ["--out", str(out)]
    return " ".join(shlex.quote(p) for p in parts)


def write_suite_record(suite_dir: Path, suite: Suite, seeds: Sequence[int], scale: float, command: str,
                       tasks: Sequence[RunTask]) -> None:
    """``suite.json``: the resolved suite, the training scale, the planned runs (an algorithm runs only on the
    entries it learns from) and every command that ran it (tables quote them)."""
    commands: list[str] = (read_suite_record(suite_dir) or {}).get("commands", [])
    if command not in commands:
        commands.append(command)
    runs = [[task.dataset.label, task.algo.label, task.seed] for task in tasks]
    atomic_write_json(suite_dir / SUITE_RECORD, {"suite": suite.to_dict(), "scale": scale, "seeds": list(seeds),
                                                 "runs": runs, "commands": commands, "offmarl_version": __version__,
                                                 "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def first_runs(tasks: Sequence[RunTask], suite: Suite, labels: Sequence[str]) -> list[RunTask]:
    """``tasks`` with the runs ``labels`` name moved to the front, each part in its order: a run comes first when
    its algorithm label is among the named algorithm labels (or none is named) and its dataset label among the
    named dataset labels (or none is named). An unknown label is a one-line error listing the suite's."""
    algos = {a.label for a in suite.algorithms}
    datasets = {d.label for d in suite.datasets}
    unknown = [label for label in labels if label not in algos | datasets]
    if unknown:
        raise ValueError(f"--first: {unknown[0]!r} is neither an algorithm nor a dataset label of suite {suite.name} "
                         f"(algorithms: {', '.join(sorted(algos))}; datasets: {', '.join(sorted(datasets))})")
    named_algos, named_datasets = algos.intersection(labels), datasets.intersection(labels)
    named = [(not named_algos or t.algo.label in named_algos)
             and (not named_datasets or t.dataset.label in named_datasets) for t in tasks]
    return [t for t, n in zip(tasks, named) if n] + [t for t, n in zip(tasks, named) if not n]


def run_suite(suite: Suite, *, seeds: Sequence[int] | None = None, workers: int | None = None,
              backend: str = "local", address: str | None = None, out: Path = Path("runs"),
              scale: float = 1.0, command: str | None = None, first: Sequence[str] = (),
              restore: Path | None = None, echo: Callable[[str], None] = print, progress: bool = True,
              threads: int | None = None) -> BenchResult:
    """Build the suite's datasets, then run every pending (dataset, algorithm, seed) on ``backend``
    (``threads`` torch threads per run; default: the cores shared out among the workers), the runs ``first``
    names before the others (:func:`first_runs`), after restoring the runs the results folder ``restore``
    recorded (:func:`restore_runs`)."""
    from tqdm.auto import tqdm

    if backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if address is not None and backend != "ray":
        raise ValueError("--address is a Ray cluster address; it needs --backend ray")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    if not scale > 0:
        raise ValueError(f"--scale must be > 0, got {scale}")
    if suite.eval_episodes < 1:
        raise ValueError(f"{suite.source}: eval_episodes must be >= 1 in a bench (tables are built from eval.json)")
    started = time.perf_counter()
    seeds = tuple(suite.seeds if seeds is None else seeds)
    suite_home = str(Path(suite.source).resolve().parent)
    if suite.imports and suite_home not in sys.path:
        sys.path.insert(0, suite_home)  # a suite's imports may sit beside it (spawned workers inherit sys.path)
    import_modules(suite)
    check_algorithms(suite)
    check_datasets(suite)

    suite_dir = Path(out) / suite_dir_name(suite.name, scale)
    suite_dir.mkdir(parents=True, exist_ok=True)
    removed = sweep_stale_temporaries(suite_dir, recursive=True)
    if removed:
        echo(f"removed {len(removed)} temporary file(s) that killed writers left in {suite_dir}")
    files = prepare_datasets(suite, echo)
    tasks = plan_runs(suite, suite_dir, seeds, scale, files)
    write_suite_record(suite_dir, suite, seeds, scale, command or f"offmarl bench run {suite.source}", tasks)
    if restore is not None:
        restored = restore_runs(tasks, restore, scale, suite_dir)
        echo(f"restored {len(restored)} finished run(s) from {Path(restore) / RECORDS_DIR}")
    skipped = [t for t in tasks if _paths(t.run_dir).eval.exists()]
    pending = first_runs([t for t in tasks if not _paths(t.run_dir).eval.exists()], suite, first)

    if backend == "ray" and pending:
        cores = ray_cpus(address)
    else:
        cores = cpu_count()
    n_workers = workers or cores
    threads = threads or max(1, cores // n_workers)
    pending = [dataclasses.replace(t, threads=threads) for t in pending]
    echo(f"suite {suite.name}: {len(tasks)} runs ({len(suite.datasets)} datasets or envs x {len(suite.algorithms)} "
         f"algorithms x {len(seeds)} seeds, each algorithm on what it learns from) in {suite_dir}; "
         f"{len(skipped)} already done, {len(pending)} to run on "
         f"{backend} with {min(n_workers, max(len(pending), 1))} worker(s) x {threads} torch thread(s)")

    bar = tqdm(total=len(tasks), initial=len(skipped), unit="run", desc=suite.name, disable=not progress,
               dynamic_ncols=True)

    def on_done(outcome: RunOutcome) -> None:
        bar.update(1)
        if outcome.status == STATUS_DONE:
            result = "not evaluated" if outcome.return_mean is None else f"return {outcome.return_mean:.4g}"
            bar.write(f"done    {outcome.label}: {result} ({outcome.seconds:.0f} s)")
        elif outcome.status == STATUS_SKIPPED:
            bar.write(f"skipped {outcome.label}: finished by another bench")
        else:
            bar.write(f"FAILED  {outcome.label}: {outcome.error} ({Path(outcome.run_dir) / 'error.txt'})"
                      if outcome.status == STATUS_FAILED else f"BUSY    {outcome.label}: {outcome.error}")
    try:
        if not pending:
            outcomes: list[RunOutcome] = []
        elif backend == "ray":
            outcomes = run_ray(pending, on_done)
        else:
            outcomes = run_local(pending, n_workers, on_done)
    finally:
        bar.close()
    return BenchResult(suite_dir=suite_dir, tasks=tasks, skipped=skipped, outcomes=outcomes,
                       seconds=time.perf_counter() - started)
