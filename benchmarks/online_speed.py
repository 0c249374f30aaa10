"""Online MARL learners on mpe2 ``simple_spread``: frames/s end to end, learner samples/s, return at equal frames.

    python benchmarks/online_speed.py config [--json cfg.json]        # print the common configuration
    python benchmarks/online_speed.py benchmarl [--algorithms mappo ippo] [--models mlp] [--seeds 0]
                                                [--frames 64000] [--json out.json] [--venv DIR] [...]
    python benchmarks/online_speed.py offmarl   [the same options]          # offmarl's own, this checkout

One configuration (:class:`OnlineConfig`, below) is shared by every library that this script runs, and one
result schema (:class:`RunResult`, ``SCHEMA``) is written for all of them, so that offmarl's own MAPPO/IPPO
(the ``offmarl`` subcommand, :func:`run_offmarl`) can be compared with BenchMARL's field by field.
Every field of ``OnlineConfig`` is also a command-line option (``--frames-per-batch 3200`` and so on).

Task: mpe2's ``simple_spread_v3`` with its defaults (N = 3 agents and 3 landmarks, ``local_ratio=0.5``,
``max_cycles=25``, discrete actions). Default hyperparameters: MAPPO's published MPE Spread configuration
(Yu et al. 2022, the authors' ``train_mpe_spread.sh`` and ``config.py``): 128 parallel envs x 25 steps = 3200
frames per on-policy batch, 10 epochs, 1 minibatch (3200 frames), Adam lr 7e-4 (actor and critic), eps 1e-5,
gradient-norm clip 10, gamma 0.99, GAE lambda 0.95, PPO clip 0.2, entropy 0.01, value-loss coefficient 1,
hidden size 64 (two 64-unit layers; ``--model gru``: 64 -> 64 then a 64-unit GRU, rMAPPO's layout), Tanh
(the published script passes ``--use_ReLU``, a store_false flag, so it runs Tanh), parameters shared by the
agents (actor and critic). MAPPO's critic sees the global state (mpe2's ``state()``: all agents'
observations concatenated, as MAPPO's ``share_obs``); IPPO's critic sees the agent's own observation.

Units. A *frame* is one step of one environment: a joint transition of all N agents (BenchMARL's unit);
agent-steps = frames x N. Timing is per on-policy iteration, on this script's own clock (wall and process
CPU time), split into *collection* (environment steps and policy inference, until the batch is in hand) and
*update* (everything after: advantages/GAE, buffer, ``epochs`` x minibatch gradient steps, weight sync).
The first ``--warmup-iters`` iterations are left out of the rates. Reported:

* end-to-end frames/s = measured frames / (collection + update time) (also in process CPU time);
* collection frames/s = measured frames / collection time;
* learner samples/s = frames_per_batch x epochs x iterations / update time: samples (frames) passed through
  one gradient epoch per second of the update phase, at the same batch for every library (x N for agent
  samples); learner frames/s = the same without the epochs factor;
* the return curve: after each iteration, the mean over the episodes that ended in that batch of the
  per-agent episode return averaged over the agents (BenchMARL's ``collection/reward/episode_reward_mean``;
  mpe2's per-agent reward is ``local_ratio`` x local + (1 - ``local_ratio``) x global), and ``final_return``,
  the mean of the last 5 iterations.

Threads: the runs set torch (and OMP/MKL/OpenBLAS) to ``--torch-threads`` threads, 1 by default, so that on a
shared 2-core machine a run measures one core.

BenchMARL runs in a virtual environment of its own outside the repository (``--venv``, default
``~/.cache/offmarl/benchmarl-venv``), created and filled on first use with the pinned versions of
``BENCHMARL_REQUIREMENTS``: BenchMARL 1.5.2 (the newest) needs torchrl < 0.12, so torchrl 0.11.1 and
tensordict 0.11.0, beside the project's torch 2.13.0 (CPU). BenchMARL itself is installed without its
dependencies: it lists torchvision (which does not import beside torch 2.13.0+cpu, and which the PPO path
never imports) and ``av`` (video logging). torchrl 0.11.1's compiled extension (``torchrl._torchrl``, used by
prioritized replay only) does not load with torch 2.13 (undefined symbol); PPO does not use it. mpe2 is a
separate package since PettingZoo 1.25, and torchrl 0.11's ``PettingZooEnv`` only looks in PettingZoo's own
registry, so the worker registers mpe2's ``simple_spread_v3`` there (``_register_mpe2``). BenchMARL gives all
its ``n_envs`` PettingZoo copies the same seed, so all of a batch's episodes start from one layout; by default
(``--distinct-env-seeds``) the worker gives env i the seed ``seed * n_envs + i`` (``_distinct_env_seeds``),
``--no-distinct-env-seeds`` keeps BenchMARL's behaviour. Each run is one subprocess of that venv's Python
(``_benchmarl-worker``); BenchMARL's own timers (``timers/collection_time``, ``timers/training_time``) are kept
in the JSON beside this script's.

Known differences from MAPPO's published implementation that BenchMARL 1.5.2 does not expose: no value
normalisation (ValueNorm), no advantage normalisation, no clipped value loss, L2 value loss (published:
Huber, delta 10, on normalised values), PyTorch's default initialisation (published: orthogonal, gain 0.01 on
the action layer), no input LayerNorm, episodes cut at ``max_cycles`` are bootstrapped as truncations, and the
GRU trains on whole 25-step rollouts (published: chunks of 10). BenchMARL's shared MAPPO critic reads the
state once per frame and gives one value, copied to the N agents (whose rewards differ by their local term);
IPPO's critic runs once per agent on its observation.

The full protocol is ``--frames 1000000 --seeds 0 1 2``; the default (64,000 frames, 20 iterations,
seed 0) is a quick check of the speed and that learning starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

SCHEMA = "offmarl.online_speed/1"
REPO = Path(__file__).resolve().parent.parent

# ----------------------------------------------------------------------------------------------------------------
# The common configuration and the result schema (shared by every library's runner).
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class OnlineConfig:
    """One run's configuration. Defaults: MAPPO's published MPE Spread settings (module docstring)."""

    # task: mpe2 simple_spread_v3 defaults
    task: str = field(default="simple_spread_v3", metadata={"help": "mpe2 task (simple_spread_v3 only)"})
    n_agents: int = field(default=3, metadata={"help": "N agents (and N landmarks)"})
    local_ratio: float = field(default=0.5, metadata={"help": "weight of the local (collision) reward"})
    max_cycles: int = field(default=25, metadata={"help": "episode length"})
    continuous_actions: bool = field(default=False, metadata={"help": "continuous actions (default discrete)"})
    distinct_env_seeds: bool = field(default=True, metadata={
        "help": "env i of the n_envs starts from seed * n_envs + i; no: all from `seed` (BenchMARL's stock "
                "behaviour with PettingZoo, where every batch's episodes start from one layout)"})
    # learner
    algorithm: str = field(default="mappo", metadata={"help": "mappo | ippo"})
    model: str = field(default="mlp", metadata={"help": "mlp | gru"})
    hidden_sizes: tuple[int, ...] = field(default=(64, 64), metadata={"help": "MLP hidden layers (mlp)"})
    gru_hidden: int = field(default=64, metadata={"help": "GRU hidden size (gru: MLP 64 -> 64, then GRU)"})
    activation: str = field(default="tanh", metadata={"help": "tanh | relu"})
    share_policy_params: bool = field(default=True, metadata={"help": "one actor shared by the agents"})
    share_critic_params: bool = field(default=True, metadata={"help": "one critic shared by the agents"})
    # on-policy loop
    n_envs: int = field(default=128, metadata={"help": "parallel environments (rollout threads)"})
    frames_per_batch: int = field(default=3200, metadata={"help": "frames collected per iteration"})
    epochs: int = field(default=10, metadata={"help": "PPO epochs over each batch"})
    minibatch_size: int = field(default=3200, metadata={"help": "frames per minibatch (3200 = 1 minibatch)"})
    lr: float = field(default=7e-4, metadata={"help": "Adam learning rate (actor and critic)"})
    adam_eps: float = field(default=1e-5, metadata={"help": "Adam epsilon"})
    max_grad_norm: float = field(default=10.0, metadata={"help": "gradient-norm clip"})
    gamma: float = field(default=0.99, metadata={"help": "discount"})
    gae_lambda: float = field(default=0.95, metadata={"help": "GAE lambda"})
    clip_epsilon: float = field(default=0.2, metadata={"help": "PPO ratio clip"})
    entropy_coef: float = field(default=0.01, metadata={"help": "entropy bonus coefficient"})
    critic_coef: float = field(default=1.0, metadata={"help": "value-loss coefficient"})
    critic_loss: str = field(default="l2", metadata={"help": "l2 | smooth_l1 (Huber, delta 1)"})
    # run
    frames: int = field(default=64_000, metadata={"help": "frame budget (full protocol: 1000000)"})
    warmup_iters: int = field(default=2, metadata={"help": "iterations left out of the rates"})
    seed: int = field(default=0, metadata={"help": "seed"})
    torch_threads: int = field(default=1, metadata={"help": "torch/OMP threads"})

    @property
    def rollout_len(self) -> int:
        return self.frames_per_batch // self.n_envs

    @property
    def n_minibatches(self) -> int:
        return -(-self.frames_per_batch // self.minibatch_size)

    @property
    def n_iters(self) -> int:
        return -(-self.frames // self.frames_per_batch)

    def validate(self) -> None:
        if self.algorithm not in ("mappo", "ippo"):
            raise ValueError(f"algorithm must be mappo or ippo, not {self.algorithm!r}")
        if self.model not in ("mlp", "gru"):
            raise ValueError(f"model must be mlp or gru, not {self.model!r}")
        if self.activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be tanh or relu, not {self.activation!r}")
        if self.frames_per_batch % self.n_envs:
            raise ValueError("frames_per_batch must be a multiple of n_envs")
        if self.model == "gru" and self.rollout_len % self.max_cycles:
            raise ValueError("with a GRU, frames_per_batch / n_envs must be a multiple of max_cycles")
        if self.n_iters <= self.warmup_iters:
            raise ValueError(f"frames={self.frames} gives {self.n_iters} iterations, not more than the "
                             f"{self.warmup_iters} warm-up iterations")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        out.update(rollout_len=self.rollout_len, n_minibatches=self.n_minibatches, n_iters=self.n_iters)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OnlineConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        if "hidden_sizes" in kwargs:
            kwargs["hidden_sizes"] = tuple(kwargs["hidden_sizes"])
        return cls(**kwargs)


@dataclass
class IterationRecord:
    """One on-policy iteration, on this script's clock (wall: perf_counter; cpu: process_time)."""

    iteration: int
    total_frames: int  # frames collected so far, this iteration's included
    collect_s: float
    update_s: float
    collect_cpu_s: float
    update_cpu_s: float
    mean_return: float | None  # per-agent episode return, mean over agents and the episodes ended in the batch
    env_s: float | None = None  # of collect_s, the wall time inside the env's step (where the library says)


@dataclass
class RunResult:
    """One (library, algorithm, model, seed) run. The JSON file holds ``{"schema": SCHEMA, "runs": [...]}``."""

    library: str  # "benchmarl" | "offmarl"
    algorithm: str
    model: str
    seed: int
    config: dict[str, Any]  # OnlineConfig.to_dict()
    versions: dict[str, str]  # python, torch, the library and what it runs on
    machine: dict[str, Any]  # machine_info(): cpu, cores, load average, platform
    iterations: list[IterationRecord]
    summary: dict[str, Any]  # summarize()
    setup_s: float  # wall time from start to the first iteration (imports, env and model construction)
    library_timers: dict[str, list[float]] = field(default_factory=dict)  # the library's own, if any
    notes: list[str] = field(default_factory=list)
    schema: str = SCHEMA

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        data = dict(data)
        data["iterations"] = [IterationRecord(**it) for it in data["iterations"]]
        return cls(**data)


def summarize(cfg: OnlineConfig, iterations: list[IterationRecord]) -> dict[str, Any]:
    """The rates of a run, from its iteration records (the first ``cfg.warmup_iters`` left out)."""
    measured = iterations[cfg.warmup_iters:]
    before = iterations[cfg.warmup_iters - 1].total_frames if cfg.warmup_iters > 0 else 0
    frames = iterations[-1].total_frames - before
    collect = sum(it.collect_s for it in measured)
    update = sum(it.update_s for it in measured)
    collect_cpu = sum(it.collect_cpu_s for it in measured)
    update_cpu = sum(it.update_cpu_s for it in measured)
    samples = frames * cfg.epochs  # frames x epochs passed through gradient steps
    env_times = [it.env_s for it in measured if it.env_s is not None]
    returns = [it.mean_return for it in iterations if it.mean_return is not None]
    last = returns[-5:]
    return {
        "measured_iters": len(measured),
        "measured_frames": frames,
        "frames_per_s": frames / (collect + update),
        "frames_per_cpu_s": frames / (collect_cpu + update_cpu),
        "agent_steps_per_s": frames * cfg.n_agents / (collect + update),
        "collect_frames_per_s": frames / collect,
        "collect_frames_per_cpu_s": frames / collect_cpu,
        "learner_samples_per_s": samples / update,
        "learner_samples_per_cpu_s": samples / update_cpu,
        "learner_agent_samples_per_s": samples * cfg.n_agents / update,
        "learner_frames_per_s": frames / update,
        "collect_s_per_iter": collect / len(measured),
        "update_s_per_iter": update / len(measured),
        "collect_fraction": collect / (collect + update),
        "env_fraction": sum(env_times) / (collect + update) if len(env_times) == len(measured) else None,
        "total_frames": iterations[-1].total_frames,
        "train_wall_s": sum(it.collect_s + it.update_s for it in iterations),
        "returns": [[it.total_frames, it.mean_return] for it in iterations],
        "final_return": sum(last) / len(last) if last else None,
    }


def machine_info() -> dict[str, Any]:
    """The CPU as /proc/cpuinfo names it (model name, family/model/stepping, AVX-512), cores, load average."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model", "stepping", "cpu MHz", "flags") and key not in info:
                    info[key] = value.strip()
                if not line.strip() and info:
                    break  # the first processor is enough
    except OSError:
        pass
    flags = info.get("flags", "").split()
    return {
        "cpu": info.get("model name", platform.processor() or platform.machine()),
        "cpu_family_model_stepping": "/".join(info.get(k, "?") for k in ("cpu family", "model", "stepping")),
        "cpu_mhz": info.get("cpu MHz"),
        "simd": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags],
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def set_threads(n: int) -> None:
    """Before torch is imported: the thread pools of OpenMP, MKL, OpenBLAS (torch's own is set after import)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)


# ----------------------------------------------------------------------------------------------------------------
# BenchMARL: its private virtual environment, and the worker that runs inside it.
# ----------------------------------------------------------------------------------------------------------------

DEFAULT_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "offmarl" / "benchmarl-venv"
# torch first and pinned to the project's CPU build, so that nothing pulls another torch.
BENCHMARL_REQUIREMENTS = (
    "torch==2.13.0",
    "torchrl==0.11.1",
    "tensordict==0.11.0",
    "mpe2==1.1.1",
    "pettingzoo==1.27.0",
    "hydra-core==1.3.8",
    "tqdm",
    "numpy",
)
BENCHMARL_NO_DEPS = ("benchmarl==1.5.2",)  # without its torchvision and av (module docstring)
VERSION_PACKAGES = ("benchmarl", "torchrl", "tensordict", "torch", "mpe2", "pettingzoo", "gymnasium", "numpy",
                    "hydra-core")


def ensure_benchmarl_venv(venv: Path, base_python: str, reinstall: bool = False) -> Path:
    """The venv's python; creates the venv and installs the pinned packages when they are missing or changed."""
    venv = venv.expanduser().resolve()
    if venv == REPO or REPO in venv.parents:
        raise SystemExit(f"--venv {venv} is inside the repository; put it elsewhere (default {DEFAULT_VENV})")
    python = venv / "bin" / "python"
    stamp = venv / ".offmarl-benchmarl.json"
    wanted = {"requirements": list(BENCHMARL_REQUIREMENTS), "no_deps": list(BENCHMARL_NO_DEPS)}
    if not reinstall and python.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return python
    if not python.exists():
        print(f"creating {venv} with {base_python}", flush=True)
        subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    print(f"installing into {venv}: {' '.join(BENCHMARL_REQUIREMENTS)}; --no-deps {' '.join(BENCHMARL_NO_DEPS)}",
          flush=True)
    subprocess.run([*pip, *BENCHMARL_REQUIREMENTS], check=True)
    subprocess.run([*pip, "--no-deps", *BENCHMARL_NO_DEPS], check=True)
    stamp.write_text(json.dumps(wanted))
    return python


def _register_mpe2() -> None:
    """Let torchrl 0.11's PettingZooEnv find mpe2's simple_spread_v3 (PettingZoo >= 1.25 has no MPE).

    torchrl looks tasks up in ``pettingzoo.utils.all_modules.all_environments``; with PettingZoo 1.27 that
    module fails to import (it imports the Atari envs) and torchrl's fallback imports ``pettingzoo.mpe``, which
    raises. A registry module holding mpe2's task is put in its place, before torchrl asks for it."""
    import types

    from mpe2 import simple_spread_v3

    registry = types.ModuleType("pettingzoo.utils.all_modules")
    registry.all_environments = {"mpe/simple_spread_v3": simple_spread_v3}
    sys.modules["pettingzoo.utils.all_modules"] = registry


def _distinct_env_seeds() -> None:
    """Give each of BenchMARL's PettingZoo envs its own seed (seed * num_envs + i, in the order they are made).

    BenchMARL 1.5.2 makes every copy of a PettingZoo task with the same ``seed`` and torchrl's SerialEnv keeps
    it; each copy resets its own RNG from that seed once, so all n_envs copies draw the same initial layouts
    and every batch holds n_envs episodes from one start. Patched on the class: BenchMARL pickles the task."""
    import itertools

    from benchmarl.environments.pettingzoo.common import PettingZooClass

    stock = PettingZooClass.get_env_fun

    def get_env_fun(self, num_envs, continuous_actions, seed, device):
        counter = itertools.count()

        def make():
            i = next(counter)
            return stock(self, num_envs, continuous_actions, None if seed is None else seed * num_envs + i, device)()

        return make

    PettingZooClass.get_env_fun = get_env_fun


def _versions(extra: dict[str, str] | None = None) -> dict[str, str]:
    """python, the main packages (VERSION_PACKAGES) first, then every other installed distribution."""
    from importlib import metadata

    installed = {d.metadata["Name"].lower(): d.version for d in metadata.distributions() if d.metadata["Name"]}
    out = {"python": platform.python_version()}
    out.update({name: installed[name] for name in VERSION_PACKAGES if name in installed})
    out.update(extra or {})
    out.update({name: v for name, v in sorted(installed.items()) if name not in out})
    return out


def benchmarl_worker(cfg: OnlineConfig, out: Path) -> None:
    """Runs in BenchMARL's venv: one BenchMARL experiment with ``cfg``, its RunResult written to ``out``."""
    started = time.perf_counter()
    set_threads(cfg.torch_threads)
    os.environ.setdefault("TQDM_DISABLE", "1")
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    import torch
    from torch import nn

    torch.set_num_threads(cfg.torch_threads)
    torch.set_num_interop_threads(1)
    _register_mpe2()
    if cfg.distinct_env_seeds:
        _distinct_env_seeds()
    from benchmarl.algorithms import IppoConfig, MappoConfig
    from benchmarl.environments import PettingZooTask
    from benchmarl.experiment import Experiment, ExperimentConfig
    from benchmarl.models import GruConfig, MlpConfig, SequenceModelConfig

    notes = []
    try:
        import torchrl._torchrl  # noqa: F401
    except Exception as exc:  # ABI mismatch with this torch: only prioritized replay needs it
        notes.append(f"torchrl's C++ extension does not load ({str(exc)[-80:]}); PPO does not use it")

    exp = ExperimentConfig.get_from_yaml()
    exp.sampling_device = exp.train_device = exp.buffer_device = "cpu"
    exp.share_policy_params = cfg.share_policy_params
    exp.prefer_continuous_actions = cfg.continuous_actions
    exp.collect_with_grad = False
    exp.parallel_collection = False  # SerialEnv: the n_envs mpe2 envs step one after the other in this process
    exp.gamma = cfg.gamma
    exp.lr = cfg.lr
    exp.adam_eps = cfg.adam_eps
    exp.clip_grad_norm = True
    exp.clip_grad_val = cfg.max_grad_norm
    exp.max_n_iters = None
    exp.max_n_frames = cfg.frames
    exp.on_policy_collected_frames_per_batch = cfg.frames_per_batch
    exp.on_policy_n_envs_per_worker = cfg.n_envs
    exp.on_policy_n_minibatch_iters = cfg.epochs  # each "minibatch iter" is one pass over the batch: an epoch
    exp.on_policy_minibatch_size = cfg.minibatch_size
    exp.evaluation = False
    exp.render = False
    exp.loggers = []
    exp.create_json = False
    exp.checkpoint_interval = 0
    exp.checkpoint_at_end = False

    task = PettingZooTask.SIMPLE_SPREAD.get_from_yaml()
    task.config.update(task=cfg.task, N=cfg.n_agents, local_ratio=cfg.local_ratio, max_cycles=cfg.max_cycles)

    algo_cls = {"mappo": MappoConfig, "ippo": IppoConfig}[cfg.algorithm]
    algo = algo_cls.get_from_yaml()
    algo.share_param_critic = cfg.share_critic_params
    algo.clip_epsilon = cfg.clip_epsilon
    algo.entropy_coef = cfg.entropy_coef
    algo.critic_coef = cfg.critic_coef
    algo.loss_critic_type = cfg.critic_loss
    algo.lmbda = cfg.gae_lambda
    algo.minibatch_advantage = False

    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[cfg.activation]
    if cfg.model == "mlp":
        model = MlpConfig(num_cells=list(cfg.hidden_sizes), layer_class=nn.Linear, activation_class=act)
    else:  # rMAPPO: MLP base (two layers), GRU, linear head (BenchMARL's Gru with no MLP after it)
        model = SequenceModelConfig(
            model_configs=[
                MlpConfig(num_cells=list(cfg.hidden_sizes[:-1]), layer_class=nn.Linear, activation_class=act),
                GruConfig(hidden_size=cfg.gru_hidden, n_layers=1, bias=True, dropout=0.0, compile=False,
                          mlp_num_cells=[], mlp_layer_class=nn.Linear, mlp_activation_class=act),
            ],
            intermediate_sizes=[cfg.hidden_sizes[-1]],
        )

    clock: dict[str, list[float]] = {"end_wall": [], "end_cpu": [], "got_wall": [], "got_cpu": []}
    records: list[IterationRecord] = []
    timers: dict[str, list[float]] = {}

    seen: dict[str, Any] = {}

    def batch_collected(batch) -> None:  # right after BenchMARL's collection (and its return logging)
        clock["got_wall"].append(time.perf_counter())
        clock["got_cpu"].append(time.process_time())
        seen["frames"] = experiment.total_frames
        ret = float(experiment.mean_return)
        seen["return"] = ret if ret == ret else None  # NaN: no episode ended in this batch
        on_batch_collected(batch)

    with tempfile.TemporaryDirectory(prefix="benchmarl-run-") as folder:
        exp.save_folder = folder
        # critic_model_config=None: BenchMARL uses a copy of model_config for the critic
        experiment = Experiment(task=task, algorithm_config=algo, model_config=model, seed=cfg.seed, config=exp)
        log = experiment.logger.log
        on_batch_collected = experiment._on_batch_collected
        experiment._on_batch_collected = batch_collected

        def log_and_time(values: dict, step: int | None = None) -> None:
            log(values, step=step)
            if "timers/iteration_time" not in values:
                return
            wall, cpu = time.perf_counter(), time.process_time()  # end of the iteration
            for key, value in values.items():
                if key.startswith("timers/"):
                    timers.setdefault(key.split("/", 1)[1], []).append(float(value))
            start_wall = clock["end_wall"][-1] if clock["end_wall"] else run_start[0]
            start_cpu = clock["end_cpu"][-1] if clock["end_cpu"] else run_start[1]
            records.append(IterationRecord(
                iteration=len(records), total_frames=int(seen["frames"]),
                collect_s=clock["got_wall"][-1] - start_wall, update_s=wall - clock["got_wall"][-1],
                collect_cpu_s=clock["got_cpu"][-1] - start_cpu, update_cpu_s=cpu - clock["got_cpu"][-1],
                mean_return=seen["return"]))
            clock["end_wall"].append(wall)
            clock["end_cpu"].append(cpu)
            it = records[-1]
            ret = "-" if it.mean_return is None else f"{it.mean_return:.2f}"
            print(f"  iter {it.iteration:3d}  frames {it.total_frames:8d}  collect {it.collect_s:6.2f} s  "
                  f"update {it.update_s:6.2f} s  return {ret}", flush=True)

        experiment.logger.log = log_and_time
        run_start = (time.perf_counter(), time.process_time())
        setup_s = run_start[0] - started
        experiment.run()

    import benchmarl

    result = RunResult(
        library="benchmarl", algorithm=cfg.algorithm, model=cfg.model, seed=cfg.seed, config=cfg.to_dict(),
        versions=_versions({"benchmarl": benchmarl.__version__, "torch": torch.__version__,
                            "torch_threads": str(torch.get_num_threads())}),
        machine=machine_info(), iterations=records, summary=summarize(cfg, records), setup_s=setup_s,
        library_timers=timers, notes=notes)
    out.write_text(json.dumps(dataclasses.asdict(result)))


def run_benchmarl(configs: list[OnlineConfig], args: argparse.Namespace) -> list[RunResult]:
    """Each config in its own subprocess of BenchMARL's venv (so that every run starts alike)."""
    python = args.python or str(ensure_benchmarl_venv(Path(args.venv), args.base_python, args.reinstall))
    results = []
    for cfg in configs:
        print(f"\nBenchMARL {cfg.algorithm.upper()} ({cfg.model}), seed {cfg.seed}, {cfg.frames} frames "
              f"({cfg.n_iters} iterations)", flush=True)
        with tempfile.TemporaryDirectory(prefix="online-speed-") as tmp:
            out = Path(tmp) / "result.json"
            env = dict(os.environ)
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                env[var] = str(cfg.torch_threads)
            subprocess.run([python, str(Path(__file__).resolve()), "_benchmarl-worker",
                            "--config-json", json.dumps(cfg.to_dict()), "--out", str(out)], check=True, env=env)
            results.append(RunResult.from_dict(json.loads(out.read_text())))
    return results


def offmarl_settings(cfg: OnlineConfig) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """offmarl's env name, env kwargs and algorithm config for ``cfg``: ``mpe_cn_3ls3l`` made into mpe2's
    ``simple_spread`` (every seeker sees all landmarks and the other seekers, ``local_ratio``, ``max_cycles``;
    offmarl's observation leaves out mpe2's always-zero communication channels), MAPPO's layers (two
    ``hidden_sizes`` layers, the GRU after them with ``model == "gru"``, trained on whole rollouts like
    BenchMARL's) and the common optimisation settings."""
    if cfg.task != "simple_spread_v3" or cfg.n_agents != 3 or cfg.continuous_actions:
        raise ValueError("the offmarl runner maps simple_spread_v3 with 3 agents and discrete actions only")
    env_kwargs = {"local_ratio": cfg.local_ratio, "visible_seekers": cfg.n_agents - 1,
                  "visible_landmarks": cfg.n_agents, "episode_limit": cfg.max_cycles}
    algo = {"rollout_length": cfg.rollout_len, "ppo_epochs": cfg.epochs, "num_minibatches": cfg.n_minibatches,
            "lr": cfg.lr, "critic_lr": cfg.lr, "adam_eps": cfg.adam_eps, "max_grad_norm": cfg.max_grad_norm,
            "gamma": cfg.gamma, "gae_lambda": cfg.gae_lambda, "clip": cfg.clip_epsilon,
            "entropy_coef": cfg.entropy_coef, "value_coef": cfg.critic_coef, "hidden": cfg.hidden_sizes[0],
            "fc_layers": len(cfg.hidden_sizes), "recurrent": cfg.model == "gru", "chunk_length": cfg.rollout_len}
    if cfg.algorithm == "ippo":
        algo["share_parameters"] = cfg.share_policy_params
    return "mpe_cn_3ls3l", env_kwargs, algo


def run_offmarl(configs: list[OnlineConfig], args: argparse.Namespace) -> list[RunResult]:
    """offmarl's own IPPO / MAPPO (this checkout), in this process, on the same configuration."""
    import torch

    import offmarl
    from offmarl.algos import make_algo
    from offmarl.core.seeding import seed_everything
    from offmarl.envs.registry import EnvSource
    from offmarl.train.online import RolloutSampler

    results = []
    for cfg in configs:
        set_threads(cfg.torch_threads)
        torch.set_num_threads(cfg.torch_threads)
        started = time.perf_counter()
        env_name, env_kwargs, overrides = offmarl_settings(cfg)
        source = EnvSource(env_name, env_kwargs, cfg.n_envs)
        seed_everything(cfg.seed)
        algo = make_algo(cfg.algorithm, source.spec(), steps=cfg.frames, **overrides)
        sampler = RolloutSampler(algo, source, cfg.seed)
        algo.on_fit_start(source)
        setup_s = time.perf_counter() - started
        print(f"\noffmarl {cfg.algorithm.upper()} ({cfg.model}), seed {cfg.seed}, {cfg.frames} frames "
              f"({cfg.n_iters} iterations)", flush=True)
        records, total = [], 0
        for i in range(cfg.n_iters):
            w0, c0, env0 = time.perf_counter(), time.process_time(), sampler.engine.env_seconds
            rollout = sampler.sample()
            w1, c1 = time.perf_counter(), time.process_time()
            algo.update(rollout)
            w2, c2 = time.perf_counter(), time.process_time()
            total += rollout.frames
            returns = rollout.episode_returns
            records.append(IterationRecord(i, total, w1 - w0, w2 - w1, c1 - c0, c2 - c1,
                                           float(returns.mean()) if returns.size else None,
                                           env_s=sampler.engine.env_seconds - env0))
        sampler.close()
        results.append(RunResult(
            library="offmarl", algorithm=cfg.algorithm, model=cfg.model, seed=cfg.seed, config=cfg.to_dict(),
            versions=_versions({"offmarl": offmarl.__version__, "torch": torch.__version__,
                                "torch_threads": str(torch.get_num_threads())}),
            machine=machine_info(), iterations=records, summary=summarize(cfg, records), setup_s=setup_s,
            notes=[f"env {env_name} {env_kwargs} (mpe2 physics; no communication channels in the observation); "
                   f"algorithm overrides {overrides}; offmarl's MAPPO details (ValueNorm, advantage normalization, "
                   "clipped Huber value loss, orthogonal init, input LayerNorm, ReLU) as in its docs"]))
    return results


# ----------------------------------------------------------------------------------------------------------------
# Command line. A library's runner takes the configs and the parsed options and returns RunResults.
# ----------------------------------------------------------------------------------------------------------------

RUNNERS: dict[str, Callable[[list[OnlineConfig], argparse.Namespace], list[RunResult]]] = {
    "benchmarl": run_benchmarl,
    "offmarl": run_offmarl,
}


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """Every OnlineConfig field as ``--field-name`` (algorithm, model and seed also as lists, below)."""
    group = parser.add_argument_group("configuration (OnlineConfig; defaults: MAPPO's published MPE Spread)")
    for f in dataclasses.fields(OnlineConfig):
        if f.name in ("algorithm", "model", "seed"):
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        helptext = f"{f.metadata.get('help', '')} (default {default})"
        if isinstance(default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=helptext)
        elif isinstance(default, tuple):
            group.add_argument(flag, type=int, nargs="+", default=list(default), help=helptext)
        else:
            group.add_argument(flag, type=type(default), default=default, help=helptext)
    group.add_argument("--algorithms", nargs="+", default=["mappo", "ippo"], choices=["mappo", "ippo"],
                       help="algorithms to run (default mappo ippo)")
    group.add_argument("--models", nargs="+", default=["mlp"], choices=["mlp", "gru"],
                       help="policy/critic networks to run (default mlp)")
    group.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds (default 0; full protocol 0 1 2)")


def configs_from_args(args: argparse.Namespace) -> list[OnlineConfig]:
    base = {f.name: getattr(args, f.name) for f in dataclasses.fields(OnlineConfig)
            if f.name not in ("algorithm", "model", "seed")}
    base["hidden_sizes"] = tuple(base["hidden_sizes"])
    configs = [OnlineConfig(**base, algorithm=a, model=m, seed=s)
               for m in args.models for a in args.algorithms for s in args.seeds]
    for cfg in configs:
        cfg.validate()
    return configs


def print_config(cfg: OnlineConfig) -> None:
    d = cfg.to_dict()
    print("common configuration (every library runs with it):")
    print(f"  task: mpe2 {cfg.task}, N={cfg.n_agents}, local_ratio={cfg.local_ratio}, max_cycles={cfg.max_cycles}, "
          f"{'continuous' if cfg.continuous_actions else 'discrete'} actions; env seeds "
          f"{'seed * n_envs + i' if cfg.distinct_env_seeds else 'all equal (BenchMARL stock)'}")
    print(f"  collection: {cfg.n_envs} envs x {cfg.rollout_len} steps = {cfg.frames_per_batch} frames "
          f"({cfg.frames_per_batch * cfg.n_agents} agent-steps) per iteration")
    print(f"  update: {cfg.epochs} epochs x {cfg.n_minibatches} minibatch(es) of {cfg.minibatch_size} frames; "
          f"Adam lr {cfg.lr}, eps {cfg.adam_eps}; grad-norm clip {cfg.max_grad_norm}")
    print(f"  PPO: gamma {cfg.gamma}, GAE lambda {cfg.gae_lambda}, clip {cfg.clip_epsilon}, "
          f"entropy {cfg.entropy_coef}, value coef {cfg.critic_coef} ({cfg.critic_loss})")
    print(f"  networks: mlp = {' x '.join(map(str, cfg.hidden_sizes))} {cfg.activation}; gru = "
          f"{' x '.join(map(str, cfg.hidden_sizes[:-1]))} -> {cfg.hidden_sizes[-1]} then GRU {cfg.gru_hidden}; "
          f"shared actor {cfg.share_policy_params}, shared critic {cfg.share_critic_params}")
    print(f"  run: {cfg.frames} frames = {d['n_iters']} iterations, {cfg.warmup_iters} warm-up, "
          f"{cfg.torch_threads} torch thread(s)")


def env_share(summary: dict[str, Any]) -> str:
    """The env's share of the wall time, where the library reports it."""
    share = summary.get("env_fraction")
    return "-" if share is None else f"{100 * share:.0f} %"


def print_results(results: list[RunResult]) -> None:
    m = results[0].machine
    print(f"\nCPU: {m['cpu']} (family/model/stepping {m.get('cpu_family_model_stepping')}, "
          f"{' '.join(m.get('simd', []))}), {m['cores']} cores; load average at the start of the first run "
          f"{m['load_average'][0]:.2f}, of the last {results[-1].machine['load_average'][0]:.2f}")
    v = results[0].versions
    print("versions: " + ", ".join(f"{k} {v[k]}" for k in ("python", *VERSION_PACKAGES, "torch_threads") if k in v))
    print("\n| library | algorithm | model | seed | frames/s (wall) | frames/s (CPU) | agent-steps/s | "
          "collect frames/s | learner samples/s | learner samples/s (CPU) | collect / update s per iter | "
          "collect share (env step) | return @ frames |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        s = r.summary
        ret = "-" if s["final_return"] is None else f"{s['final_return']:.2f} @ {s['total_frames']:,}"
        print(f"| {r.library} {r.versions.get(r.library, '')} | {r.algorithm} | {r.model} | {r.seed} | "
              f"{s['frames_per_s']:,.0f} | {s['frames_per_cpu_s']:,.0f} | {s['agent_steps_per_s']:,.0f} | "
              f"{s['collect_frames_per_s']:,.0f} | {s['learner_samples_per_s']:,.0f} | "
              f"{s['learner_samples_per_cpu_s']:,.0f} | {s['collect_s_per_iter']:.2f} / {s['update_s_per_iter']:.2f} | "
              f"{100 * s['collect_fraction']:.0f} % ({env_share(s)}) | {ret} |")
    print("\nreturn curves (frames: mean per-agent episode return):")
    for r in results:
        pts = r.summary["returns"]
        step = max(1, len(pts) // 10)
        shown = pts[::step] + ([pts[-1]] if (len(pts) - 1) % step else [])
        curve = ", ".join(f"{f // 1000}k: {ret:.1f}" for f, ret in shown if ret is not None)
        print(f"  {r.library} {r.algorithm} {r.model} seed {r.seed}: {curve}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Each subcommand has its own --help (options: OnlineConfig's fields).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{config,benchmarl,offmarl}")

    p_cfg = sub.add_parser("config", help="print the common configuration (and write it as JSON)")
    add_config_options(p_cfg)
    p_cfg.add_argument("--json", default=None, help="write the configs to this JSON file")

    p_bm = sub.add_parser("benchmarl", help="run BenchMARL's MAPPO/IPPO in its own venv and time them",
                          description="Run BenchMARL's MAPPO/IPPO on mpe2 simple_spread in a private venv; "
                          "see the module docstring (python benchmarks/online_speed.py --help) for the metrics.")
    add_config_options(p_bm)
    p_bm.add_argument("--json", default=None, help="write the results (schema %s) to this file" % SCHEMA)
    p_bm.add_argument("--venv", default=str(DEFAULT_VENV),
                      help=f"BenchMARL's virtual environment, created on first use (default {DEFAULT_VENV}); "
                      "never inside the repository")
    p_bm.add_argument("--base-python", default=sys.executable,
                      help="the Python 3.11 that creates the venv (default: this one)")
    p_bm.add_argument("--reinstall", action="store_true", help="reinstall the pinned packages into the venv")
    p_bm.add_argument("--python", default=None, help="use this Python (with BenchMARL installed) instead of the venv")

    p_off = sub.add_parser("offmarl", help="run offmarl's own MAPPO/IPPO (this checkout) and time them",
                           description="Run offmarl's MAPPO/IPPO on the same task and configuration, in this "
                           "process; see the module docstring for the metrics.")
    add_config_options(p_off)
    p_off.add_argument("--json", default=None, help="write the results (schema %s) to this file" % SCHEMA)

    p_w = sub.add_parser("_benchmarl-worker")  # internal: one run inside BenchMARL's venv
    p_w.add_argument("--config-json", required=True)
    p_w.add_argument("--out", required=True)

    if argv is None:
        argv = sys.argv[1:]
    if not argv:
        parser.print_help()
        return
    args = parser.parse_args(argv)

    if args.command == "_benchmarl-worker":
        benchmarl_worker(OnlineConfig.from_dict(json.loads(args.config_json)), Path(args.out))
        return

    configs = configs_from_args(args)
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print_config(configs[0])
    if args.command == "config":
        if args.json:
            Path(args.json).write_text(json.dumps({"schema": SCHEMA, "configs": [c.to_dict() for c in configs]},
                                                  indent=1))
        return

    started = time.perf_counter()
    results = RUNNERS[args.command](configs, args)
    print_results(results)
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"schema": SCHEMA, "runs": [dataclasses.asdict(r) for r in results]},
                                              indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
