"""Algorithm contract and registry (DESIGN.md, "Algorithm").

An algorithm is one file in ``offmarl/algos/`` holding a frozen ``Config`` dataclass (docstring: the
math, the paper reference and every field) and a subclass of :class:`Algorithm` registered with
:func:`register_algo`. The one fit loop (``offmarl.train.fit``) drives it:

    algo.plan(total)                                  # the step budget -> the stage schedule
    algo.check_source(source)                         # one compatibility check, before training
    sampler = algo.make_sampler(source, seed)         # any object with sample() and state_dict()/load_state_dict()
    for step in range(total): losses = algo.update(sampler.sample())
    algo.policies()                                   # JointPolicy for evaluation

What an algorithm learns from (``learns_from``, the modes it can train in): a dataset (``"dataset"``: a
:class:`~offmarl.data.dataset.MultiAgentDataset`, or :class:`~offmarl.data.sources.PerAgentDatasets` where
``dataset_layouts`` admits them), an environment (``"env"``: an :class:`~offmarl.envs.registry.EnvSource`)
or both (``"dataset+env"``: a :class:`~offmarl.data.sources.DatasetAndEnv`); the source a run gives
picks the mode (``qmix`` learns offline from a dataset or online in an env). Offline steps count
gradient updates; online steps count environment frames (one frame = one step of one sub-env): an online
learner implements the rollout engine's :class:`~offmarl.data.trajectory.TrainingActor` and
``rollout_length``, and each ``update`` receives one :class:`~offmarl.data.trajectory.Trajectory` of
``rollout_length`` steps in every sub-env. A ``"dataset+env"`` learner trains each stage on one of the two
(:meth:`Algorithm.stage_source`): a dataset stage on the batches of its :meth:`~Algorithm.make_sampler`
over the dataset (one step per update), an env stage on rollouts (env frames); it keeps whatever else it
needs of the dataset (e.g. demonstrations) from :meth:`~Algorithm.on_fit_start`.

Stages. A multi-stage algorithm (a behaviour model, then the policy; a teacher, then students) declares
its stages with :meth:`Algorithm.stage_fractions`; :meth:`Algorithm.plan` divides the one step budget
among them (:class:`StageSchedule`), so every stage keeps its share whatever the budget (or, overriding
:meth:`Algorithm.stage_schedule`, gives a stage a fixed number of steps). The fit loop
enters each stage (:meth:`Algorithm.enter_stage`), logs the stage of every metrics row, checkpoints at
every hand-over and saves the artifact a stage hands over (:meth:`Algorithm.stage_artifact`: an algorithm,
e.g. the distillation teacher, or :class:`StageFiles`, e.g. SIT's reward decomposition) in the run directory.

``state_dict()`` must hold everything needed to continue exactly (weights, optimizers, counters) as
tensors / numbers / strings / lists / dicts, so a checkpoint is loadable with
``torch.load(weights_only=True)``. The current stage is not part of it: it follows from the step.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import pickle
import re
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch

from offmarl.data.sources import DatasetAndEnv, PerAgentDatasets, describe, incompatibility, source_dataset
from offmarl.envs.base import EnvSpec
from offmarl.envs.registry import EnvSource
from offmarl.errors import CheckpointError, one_line


@dataclasses.dataclass(frozen=True)
class AlgoConfig:
    """Fields every algorithm config has.

    steps: gradient steps of a full (paper-scale) run; ``--steps`` replaces it, ``--scale`` multiplies it.
    batch_size: samples per update (episodes, windows or transitions, as the algorithm documents).
    lr: learning rate of the main optimizer.
    ablation: name of an ablation switch set (algorithms that have none accept only None).
    variant: name of a variant (algorithms that have none accept only None).
    """

    steps: int = 10_000
    batch_size: int = 128
    lr: float = 1e-4
    ablation: str | None = None
    variant: str | None = None


@dataclasses.dataclass(frozen=True)
class StageSchedule:
    """Consecutive stages over a step budget: ``stages`` holds ``(name, length)`` pairs, each length >= 1."""

    stages: tuple[tuple[str, int], ...]

    @classmethod
    def from_fractions(cls, total: int, fractions: Sequence[tuple[str, float]]) -> "StageSchedule":
        """Stage k gets ``round(total * fraction_k)`` steps (at least 1; the last stage the rest).

        Every stage keeps at least one step, so ``total`` must be at least the number of stages."""
        names = [name for name, _ in fractions]
        if total < len(names):
            raise ValueError(f"a budget of {total} steps cannot train the {len(names)} stages {names}: "
                             f"give at least {len(names)} steps")
        stages, used = [], 0
        for k, (name, fraction) in enumerate(fractions):
            later = len(names) - k - 1
            length = total - used if not later else min(max(1, round(total * fraction)), total - used - later)
            stages.append((name, int(length)))
            used += length
        return cls(tuple(stages))

    @property
    def total(self) -> int:
        return sum(length for _, length in self.stages)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.stages]

    def start(self, name: str) -> int:
        """Steps done when stage ``name`` begins."""
        done = 0
        for stage, length in self.stages:
            if stage == name:
                return done
            done += length
        raise KeyError(f"no stage {name!r}; stages: {self.names}")

    def length(self, name: str) -> int:
        return dict(self.stages)[name] if name in self.names else 0

    def stage_at(self, step: int) -> str:
        """The stage the update after ``step`` steps belongs to (the last stage once the budget is spent)."""
        done = 0
        for stage, length in self.stages:
            done += length
            if step < done:
                return stage
        return self.stages[-1][0]


@dataclasses.dataclass
class StageFiles:
    """A stage's hand-over that is not an algorithm: a JSON record and tensors, saved as ``<name>.json`` and
    ``<name>.pt`` (loadable with ``torch.load(weights_only=True)``)."""

    name: str
    record: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    def save(self, path: str | Path) -> None:
        from offmarl.core.files import atomic_torch_save, atomic_write_json

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path / f"{self.name}.json", self.record)
        atomic_torch_save(self.tensors, path / f"{self.name}.pt")


class Algorithm(ABC):
    """Base of every learner. Subclasses set ``name``, ``Config`` and capability flags (module docstring)."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[AlgoConfig]] = AlgoConfig
    supports_discrete: ClassVar[bool] = True
    supports_continuous: ClassVar[bool] = True
    decentralized_training: ClassVar[bool] = False  # True: learner i sees only agent i's data
    #: the modes it can train in: "dataset" (offline), "env" (online), "dataset+env" (a dataset, then the env)
    learns_from: ClassVar[tuple[str, ...]] = ("dataset",)
    dataset_layouts: ClassVar[tuple[str, ...]] = ("joint",)  # "joint" and/or "per_agent" (PerAgentDatasets)
    needs_actions: ClassVar[bool] = True  # False: learns from state-only datasets too
    ablations: ClassVar[tuple[str, ...]] = ()
    variants: ClassVar[tuple[str, ...]] = ()
    #: config overrides that make the algorithm tiny (small networks and batches, updates of milliseconds):
    #: the algorithm contract test (tests/test_algorithm_contract.py) builds every registered algorithm with them
    contract_overrides: ClassVar[dict[str, Any]] = {}
    #: what a tiny run must improve in the contract test: a loss that :meth:`update` returns (it falls on a
    #: fixed batch), or, for a name ending in ``return`` (online learners' ``episode_return``), a logged
    #: return (it rises)
    progress_metric: ClassVar[str] = "loss"
    #: variants the contract test also runs through every check, each with its own extra overrides (over
    #: ``contract_overrides``); the default configuration is always checked
    contract_variants: ClassVar[dict[str, dict[str, Any]]] = {}
    #: stages whose first step is a point of the learning curve when the run evaluates during training (the fit
    #: loop evaluates there before the stage's first update): finetuning's online stage, whose curve starts at
    #: the offline policy's return
    curve_starts: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: EnvSpec, config: AlgoConfig, device: str | torch.device = "cpu"):
        if spec.discrete and not self.supports_discrete:
            raise ValueError(f"algorithm {self.name!r} does not support discrete actions (env {spec.name})")
        if not spec.discrete and not self.supports_continuous:
            raise ValueError(f"algorithm {self.name!r} does not support continuous actions (env {spec.name})")
        if config.ablation is not None and config.ablation not in self.ablations:
            raise ValueError(f"algorithm {self.name!r} has no ablation {config.ablation!r}; "
                             f"known: {list(self.ablations)}")
        if config.variant is not None and config.variant not in self.variants:
            raise ValueError(f"algorithm {self.name!r} has no variant {config.variant!r}; known: {list(self.variants)}")
        self.spec = spec
        self.config = config
        self.device = torch.device(device)
        self.precision = "fp32"  # set by the fit loop; "bf16" runs forward passes under CPU/CUDA autocast
        self._schedule: StageSchedule | None = None
        self._stage: str | None = None
        self.stage_schedule(int(config.steps))  # a budget every stage can share

    # ---- the step budget and its stages ----------------------------------------------------------
    def stage_fractions(self) -> Sequence[tuple[str, float]]:
        """The stages in order with their shares of the budget (one stage, ``main``, by default)."""
        return (("main", 1.0),)

    def stage_schedule(self, total_steps: int) -> StageSchedule:
        """The stages over a budget of ``total_steps``: :meth:`stage_fractions`' shares of it by default."""
        return StageSchedule.from_fractions(int(total_steps), self.stage_fractions())

    @classmethod
    def default_steps(cls, config: AlgoConfig, spec: EnvSpec) -> int:
        """The budget of a run at ``--scale 1`` on env ``spec`` (what ``--scale`` multiplies): ``config.steps``.
        An algorithm whose paper budget depends on the env or on another algorithm's (``finetune``: its offline
        algorithm's steps, then online frames) computes it."""
        return int(config.steps)

    def stage_source(self, name: str) -> str:
        """In a ``"dataset+env"`` run, what stage ``name`` trains on: ``"dataset"`` (batches of
        :meth:`make_sampler` over the dataset, one step each) or ``"env"`` (rollouts, env frames; the default)."""
        return "env"

    def plan(self, total_steps: int) -> StageSchedule:
        """Divide the budget ``total_steps`` among the stages; ``config.steps`` becomes the budget, so a saved
        algorithm records what it trained for. The fit loop calls it before training."""
        self._schedule = self.stage_schedule(int(total_steps))
        self.config = dataclasses.replace(self.config, steps=int(total_steps))
        return self._schedule

    @property
    def schedule(self) -> StageSchedule:
        """The stage schedule (planned over ``config.steps`` until the fit loop plans the budget)."""
        if self._schedule is None:
            self.plan(int(self.config.steps))
        return self._schedule

    @property
    def total_steps(self) -> int:
        return self.schedule.total

    @property
    def stage(self) -> str:
        """The running stage (the first until the fit loop enters another)."""
        return self._stage if self._stage is not None else self.schedule.names[0]

    def enter_stage(self, name: str) -> None:
        """Make ``name`` the running stage; called by the fit loop when a stage begins and after a resume, so
        it must derive everything from the algorithm's state (e.g. freeze a finished stage's network)."""
        if name not in self.schedule.names:
            raise ValueError(f"{self.name}: no stage {name!r}; stages: {self.schedule.names}")
        self._stage = name

    def stage_artifact(self, name: str) -> "Algorithm | StageFiles | None":
        """What stage ``name`` hands over, saved by the fit loop to ``<run>/<name>/`` when it ends (None: nothing)."""
        return None

    def stage_check(self, name: str, evaluate: Any) -> dict[str, float]:
        """Diagnostics of stage ``name``, measured by the fit loop when the stage ends (the last stage: at the
        last step) and logged in that step's ``metrics.csv`` row. ``evaluate(policy)`` scores a
        :class:`~offmarl.policies.base.JointPolicy` in the run's evaluation env (``{"return_mean", ...}``);
        None when the run has no evaluator. Runs with the global RNG states saved and restored around it, so
        it never changes the training numbers. Default: nothing."""
        return {}

    # ---- what the fit loop calls ---------------------------------------------------------------
    def check_source(self, source: Any) -> None:
        """Refuse a source this algorithm cannot learn from, with one error naming it and the reason."""
        if source_mode(source) not in self.learns_from:
            wanted = {"dataset": "a dataset (--dataset)", "env": "an environment (--env)",
                      "dataset+env": "a dataset and an environment"}
            wants = " or ".join(wanted[mode] for mode in self.learns_from)
            raise ValueError(f"{self.name} cannot train on {type(source).__name__}: it learns from {wants}")
        dataset = source_dataset(source)
        if dataset is None:
            return
        per_agent = isinstance(dataset, PerAgentDatasets)
        layout = "per_agent" if per_agent else "joint"
        reason = None
        if layout not in self.dataset_layouts:
            reason = ("it is a per-agent dataset (one group per agent); this algorithm trains on a joint one"
                      if per_agent else "it is a joint dataset; this algorithm trains on a per-agent one")
        elif per_agent and len(dataset) != self.spec.n_agents:
            reason = f"it has {len(dataset)} per-agent groups for {self.spec.n_agents} agents"
        else:
            groups = list(enumerate(dataset)) if per_agent else [(None, dataset)]
            for agent, ds in groups:
                reason = incompatibility(ds, self.spec, agent, self.needs_actions)
                if reason is not None:
                    reason = reason if agent is None else f"agent {agent}'s group: {reason}"
                    break
        if reason is not None:
            raise ValueError(f"{self.name} cannot train on the {describe(source)}: {reason}")

    def make_sampler(self, source: Any, seed: int) -> Any:
        """A sampler over the dataset ``source`` (already checked; in a ``"dataset+env"`` run, the source's
        dataset, for its dataset stages) whose ``sample()`` returns what :meth:`update` takes. An online
        learner has none: the fit loop builds its rollout sampler (``offmarl.train.online``) from its
        training-side contract (``rollout_length``, ``initial_hidden``, ``act_train``, ``bootstrap_value``:
        :class:`offmarl.data.trajectory.TrainingActor`)."""
        raise NotImplementedError(f"{self.name} learns from {' or '.join(self.learns_from)}: it has no dataset sampler")

    @abstractmethod
    def update(self, batch: Any) -> dict[str, float]:
        """One gradient step (or, online, one rollout's updates); returns the losses (floats) to log."""

    @abstractmethod
    def policies(self) -> Any:
        """A :class:`~offmarl.policies.base.JointPolicy` for evaluation (decentralized where the method is).

        Return-conditioned algorithms may accept optional keywords, e.g. ``policies(target_return=R)``
        (per-agent target return); ``offmarl eval --target-return`` passes it only to an algorithm whose
        ``policies`` has that parameter, and refuses the option for the others."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly (see module docstring)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        ...

    def on_fit_start(self, source: Any) -> None:
        """Hook after the sampler is built, before the first update (e.g. fit normalizers on the dataset)."""

    def agent_parameters(self, agent: int) -> list[torch.Tensor]:
        """What agent ``agent``'s learner owns (its weights, or its slices of stacked weights): a decentralized
        learner (``decentralized_training``) must say, so a test can prove no other agent's data reaches them."""
        raise NotImplementedError(f"{self.name} trains centrally: its agents own no separate parameters")

    # ---- persistence -----------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def saved_state(self) -> dict[str, Any]:
        """What :meth:`save` writes: :meth:`state_dict`, or less where it holds large training-only buffers
        (a replay of episodes) that a saved algorithm -- for evaluation and the checkpoint series -- does not
        need; ``load_state_dict`` must accept it. The fit loop's checkpoint keeps the whole state_dict."""
        return self.state_dict()

    def policy_state(self) -> dict[str, Any]:
        """The part of the state :meth:`policies` reads -- what a policy pool's checkpoint keeps (``save(...,
        policy_only=True)``). By default the whole :meth:`saved_state`; a learner whose nets, target nets and
        optimizer states outweigh its acting networks (the PPO family's actor, QMIX's agent network) returns
        only those."""
        return self.saved_state()

    def load_policy_state(self, state: dict[str, Any]) -> None:
        """Load what :meth:`policy_state` returned -- or a full :meth:`state_dict` / :meth:`saved_state`, of which
        it reads the same part. The rest of the algorithm keeps its freshly built values: it can act, not train.
        By default :meth:`load_state_dict` (the policy state is the whole state)."""
        self.load_state_dict(state)

    #: the file a policy-only algorithm was loaded from (:func:`load_algo`); None: a full algorithm
    policy_only_file: Path | None = None

    def check_trainable(self) -> None:
        """Refuse to train (update, fit, resume, start a finetuning) an algorithm loaded from a policy-only file: it
        holds the weights its policies act with, not its optimizers, target networks or counters."""
        if self.policy_only_file is not None:
            raise self._training_refused()

    def _training_refused(self) -> CheckpointError:
        return CheckpointError(f"{self.policy_only_file}: a policy-only saved {self.name} (the weights its policies "
                               "act with; no optimizer or training state) cannot be trained, resumed or finetuned; "
                               "train from the run's full model or checkpoint")

    def save(self, path: str | Path, policy_only: bool = False) -> None:
        """Save weights + config + library version to directory ``path`` (loadable by :func:`load_algo`).

        ``policy_only``: only :meth:`policy_state` (``algo.json`` records ``"state": "policy"``): the algorithm
        loads to act, not to train. An algorithm loaded from a policy-only file saves policy-only whatever is asked
        (it holds no training state to save)."""
        from offmarl import __version__
        from offmarl.core.files import atomic_torch_save, atomic_write_json

        policy_only = policy_only or self.policy_only_file is not None
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {"algo": self.name, "config": self.config_dict(), "env_spec": self.spec.to_dict(),
                "offmarl_version": __version__, "state": "policy" if policy_only else "full"}
        atomic_write_json(path / "algo.json", json.loads(json.dumps(meta, default=str)))
        atomic_torch_save(self.policy_state() if policy_only else self.saved_state(), path / "algo.pt")


def policies_take(algo: "Algorithm | type[Algorithm]", keyword: str) -> bool:
    """Whether ``algo.policies`` (an algorithm or its class) accepts ``keyword`` (e.g. ``target_return`` of a
    return-conditioned method, ``sample_seed`` of a policy-gradient learner's sampled execution)."""
    params = inspect.signature(algo.policies).parameters
    return keyword in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def source_mode(source: Any) -> str:
    """The mode a source trains an algorithm in: ``"dataset"``, ``"env"`` or ``"dataset+env"``."""
    if isinstance(source, EnvSource):
        return "env"
    return "dataset+env" if isinstance(source, DatasetAndEnv) else "dataset"


# ---- registry ------------------------------------------------------------------------------------
_ALGOS: dict[str, type[Algorithm]] = {}


def register_algo(cls: type[Algorithm]) -> type[Algorithm]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _ALGOS:
        raise ValueError(f"algorithm {cls.name!r} registered twice")
    _ALGOS[cls.name] = cls
    return cls


def _ensure_loaded() -> None:
    import offmarl.algos  # noqa: F401  (importing the package registers every algorithm file)


def list_algos() -> list[str]:
    _ensure_loaded()
    return sorted(_ALGOS)


def get_algo_class(name: str) -> type[Algorithm]:
    _ensure_loaded()
    if name not in _ALGOS:
        raise KeyError(f"unknown algorithm {name!r}; known: {', '.join(sorted(_ALGOS))}")
    return _ALGOS[name]


def build_config(cls: type[Algorithm], overrides: dict[str, Any]) -> AlgoConfig:
    """``cls.Config`` with ``overrides`` applied; unknown keys and wrongly typed values are named in the error."""
    fields = {f.name: f for f in dataclasses.fields(cls.Config)}
    for key in overrides:
        if key not in fields:
            raise ValueError(f"algorithm {cls.name!r} has no config key {key!r}; known: {', '.join(sorted(fields))}")
    base = cls.Config()
    coerced = {}
    for key, value in overrides.items():
        default = getattr(base, key)
        coerced[key] = _coerce(key, value, default)
    return dataclasses.replace(base, **coerced)


ENV_DEFAULTS_DIR = Path(__file__).resolve().parent / "env_defaults"


def env_defaults(algo: str, env_name: str) -> dict[str, Any]:
    """Per-env config defaults of ``algo`` from ``offmarl/algos/env_defaults/<algo>.yaml`` (may be empty)."""
    import yaml

    path = ENV_DEFAULTS_DIR / f"{algo}.yaml"
    if not path.exists():
        return {}
    table = yaml.safe_load(path.read_text()) or {}
    entry = table.get(env_name) or {}
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: entry {env_name!r} must be a mapping of config keys")
    return dict(entry)


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


def set_text(key: str, value: Any) -> str:
    """``key=value`` as :func:`parse_sets` and :func:`build_config` read it back to ``value`` (a config field's
    value: None, a bool, a number, a string, a tuple or list)."""
    if value is None or isinstance(value, (bool, list, tuple)):
        return f"{key}={json.dumps(list(value) if isinstance(value, tuple) else value)}"
    return f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Convert ``--set key=value`` strings to the type of the field's default."""
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(default, tuple) and isinstance(value, list):
            return tuple(value)
        return value
    try:
        if isinstance(default, bool):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            return int(float(value)) if float(value).is_integer() else int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, (tuple, list)):
            return type(default)(json.loads(value))
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"config key {key!r}: cannot read {value!r} as {type(default).__name__}") from exc
    return value


def make_algo(name: str, spec: EnvSpec, device: str | torch.device = "cpu", **overrides: Any) -> Algorithm:
    """Build algorithm ``name`` for env ``spec`` with config ``overrides`` (the papers' defaults otherwise)."""
    cls = get_algo_class(name)
    return cls(spec, build_config(cls, overrides), device=device)


def load_torch_file(path: str | Path, what: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` of a file offmarl wrote; ``what`` names the file in errors.

    Only tensors and plain data are unpickled. A file that needs more -- a pickle that would import and call
    something (``os.system``, a class) -- is refused as unsafe before any of it runs; a torn, truncated or
    foreign file (garbage, a raw pickle) is unreadable. Both raise :class:`~offmarl.errors.CheckpointError`
    naming the file, and torch's warnings about such files are silenced (the error says it all). A missing
    file is a ``FileNotFoundError``.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: {what} is a directory, not a file")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such {what}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4" before a raw pickle fails
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if unsafe:
            raise CheckpointError(f"{path}: {what} refused as unsafe: loading it would import and call "
                                  f"{unsafe.group(1)} (only tensors and plain data are loaded)") from None
        raise CheckpointError(f"{path}: {what} unreadable: not written by torch.save, or corrupted (invalid "
                              "pickle data)") from None
    except Exception as exc:  # torch raises RuntimeError, OSError, EOFError, ... on torn or foreign files
        raise CheckpointError(f"{path}: {what} unreadable (torn, truncated or not written by torch.save): "
                              f"{type(exc).__name__}: {one_line(exc)}") from None


def load_algo(path: str | Path, device: str | torch.device = "cpu") -> Algorithm:
    """Load an algorithm saved with :meth:`Algorithm.save` (weights read with ``weights_only=True``).

    A policy-only file (``algo.json``: ``"state": "policy"``) loads through :meth:`Algorithm.load_policy_state`:
    the algorithm acts as the saved one did, and refuses to train (its ``update`` and the fit loop raise
    :meth:`Algorithm.check_trainable`'s error naming the file).

    A saved algorithm that cannot be rebuilt -- ``algo.json`` unreadable or without its keys, ``algo.pt``
    refused or unreadable (:func:`load_torch_file`) or not the state of that algorithm -- raises
    :class:`~offmarl.errors.CheckpointError` naming the file."""
    path = Path(path)
    meta_path, weights_path = path / "algo.json", path / "algo.pt"
    if meta_path.is_dir():
        raise CheckpointError(f"{meta_path}: saved algorithm's algo.json is a directory, not a file")
    try:
        meta = json.loads(meta_path.read_bytes().decode("utf-8"))
        cls = get_algo_class(meta["algo"])
        config = dataclasses.replace(cls.Config(),
                                     **{k: _restore(v, getattr(cls.Config(), k)) for k, v in meta["config"].items()})
        spec = EnvSpec.from_dict(meta["env_spec"])
    except FileNotFoundError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # JSON, UTF-8, missing or wrong keys
        raise CheckpointError(f"{meta_path}: saved algorithm's algo.json is not valid: "
                              f"{type(exc).__name__}: {one_line(exc)}") from None
    state = load_torch_file(weights_path, "model file", map_location=device)
    algo = cls(spec, config, device=device)
    if not isinstance(state, dict):
        raise CheckpointError(f"{weights_path}: model file holds a {type(state).__name__}, not an algorithm's state")
    kept = meta.get("state", "full")  # files saved before policy-only ones existed are full
    if kept not in ("full", "policy"):
        raise CheckpointError(f"{meta_path}: saved algorithm's algo.json says state {kept!r}; known: full, policy")
    try:
        if kept == "policy":
            algo.load_policy_state(state)
        else:
            algo.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"{weights_path}: model file is not the {'policy ' if kept == 'policy' else ''}state of "
                              f"{meta['algo']!r} as configured in {meta_path.name}: {type(exc).__name__}: "
                              f"{one_line(exc)}") from None
    if kept == "policy":
        algo.policy_only_file = weights_path
        algo.update = _refusing_update(algo)  # type: ignore[method-assign]
    return algo


def _refusing_update(algo: Algorithm) -> Any:
    """What a policy-only algorithm's ``update`` is: the one-line refusal of :meth:`Algorithm.check_trainable`."""
    def update(batch: Any) -> dict[str, float]:
        raise algo._training_refused()
    return update


def _restore(value: Any, default: Any) -> Any:
    return tuple(value) if isinstance(default, tuple) and isinstance(value, list) else value
