"""Algorithm contract and registry (DESIGN.md, "Algorithm").

An algorithm is one file in ``offmarl/algos/`` holding a frozen ``Config`` dataclass (docstring: the
math, the paper reference and every field) and a subclass of :class:`Algorithm` registered with
:func:`register_algo`. The one fit loop (``offmarl.train.fit``) drives it:

    sampler = algo.make_sampler(dataset, seed)       # any object with sample() and state_dict()/load_state_dict()
    for step in range(algo.total_steps): losses = algo.update(sampler.sample())
    algo.policies()                                  # JointPolicy for evaluation

``state_dict()`` must hold everything needed to continue exactly (weights, optimizers, schedulers,
counters, the current stage of a multi-stage algorithm) as tensors / numbers / strings / lists / dicts,
so a checkpoint is loadable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch

from offmarl.envs.base import EnvSpec


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


class Algorithm(ABC):
    """Base of every offline learner. Subclasses set ``name``, ``Config`` and capability flags."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[AlgoConfig]] = AlgoConfig
    supports_discrete: ClassVar[bool] = True
    supports_continuous: ClassVar[bool] = True
    decentralized_training: ClassVar[bool] = False  # True: learner i sees only agent i's data
    learns_from: ClassVar[str] = "dataset"  # "dataset" (offline) | "env" (online) | "dataset+env" (both, staged)
    ablations: ClassVar[tuple[str, ...]] = ()
    variants: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: EnvSpec, config: AlgoConfig, device: str | torch.device = "cpu"):
        if spec.discrete and not self.supports_discrete:
            raise ValueError(f"algorithm {self.name!r} does not support discrete actions (env {spec.name})")
        if not spec.discrete and not self.supports_continuous:
            raise ValueError(f"algorithm {self.name!r} does not support continuous actions (env {spec.name})")
        if config.ablation is not None and config.ablation not in self.ablations:
            raise ValueError(f"algorithm {self.name!r} has no ablation {config.ablation!r}; known: {list(self.ablations)}")
        if config.variant is not None and config.variant not in self.variants:
            raise ValueError(f"algorithm {self.name!r} has no variant {config.variant!r}; known: {list(self.variants)}")
        self.spec = spec
        self.config = config
        self.device = torch.device(device)
        self.precision = "fp32"  # set by the fit loop; "bf16" runs forward passes under CPU/CUDA autocast

    # ---- what the fit loop calls ---------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        return int(self.config.steps)

    @abstractmethod
    def make_sampler(self, dataset: Any, seed: int) -> Any:
        """A sampler over ``dataset`` whose ``sample()`` returns what :meth:`update` takes."""

    @abstractmethod
    def update(self, batch: Any) -> dict[str, float]:
        """One gradient step; returns the losses (floats) to log."""

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

    def on_fit_start(self, dataset: Any, run_dir: Path | None) -> None:
        """Hook before the first update (e.g. fit normalizers on ``dataset``; reuse artifacts in ``run_dir``)."""

    def on_step_end(self, step: int, run_dir: Path | None) -> None:
        """Hook after every update (e.g. write a stage's artifact when the stage ends)."""

    @property
    def stage(self) -> str:
        """Name of the running stage of a multi-stage algorithm (``"main"`` for single-stage ones)."""
        return "main"

    # ---- persistence -----------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def save(self, path: str | Path) -> None:
        """Save weights + config + library version to directory ``path`` (loadable by :func:`load_algo`)."""
        from offmarl import __version__
        from offmarl.core.files import atomic_torch_save

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {"algo": self.name, "config": self.config_dict(), "env_spec": self.spec.to_dict(),
                "offmarl_version": __version__}
        (path / "algo.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        atomic_torch_save(self.state_dict(), path / "algo.pt")


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


def load_algo(path: str | Path, device: str | torch.device = "cpu") -> Algorithm:
    """Load an algorithm saved with :meth:`Algorithm.save` (weights read with ``weights_only=True``)."""
    path = Path(path)
    meta = json.loads((path / "algo.json").read_text())
    cls = get_algo_class(meta["algo"])
    config = dataclasses.replace(cls.Config(), **{k: _restore(v, getattr(cls.Config(), k)) for k, v in meta["config"].items()})
    algo = cls(EnvSpec.from_dict(meta["env_spec"]), config, device=device)
    algo.load_state_dict(torch.load(path / "algo.pt", map_location=device, weights_only=True))
    return algo


def _restore(value: Any, default: Any) -> Any:
    return tuple(value) if isinstance(default, tuple) and isinstance(value, list) else value
