"""Environment registry: ``make_env(name, num_envs=B, seed=..., **kwargs)``.

Entries are registered with a dotted path to their factory, so listing envs never imports an optional
package (highway-env, jax, mujoco); the import happens only in ``make_env``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from offmarl.envs.base import BatchedEnv, EnvSpec


@dataclass(frozen=True)
class EnvEntry:
    name: str
    factory: str  # "module.path:callable", called as factory(num_envs=..., seed=..., **kwargs)
    description: str
    source: str = "native"  # "native" or the extra that provides it (e.g. "highway")
    unavailable_reason: str | None = None  # set for envs that cannot be built (listed, never substituted)


_REGISTRY: dict[str, EnvEntry] = {}


def register_env(name: str, factory: str, description: str, source: str = "native",
                 unavailable_reason: str | None = None) -> None:
    if name in _REGISTRY:
        raise ValueError(f"environment {name!r} is registered twice")
    _REGISTRY[name] = EnvEntry(name, factory, description, source, unavailable_reason)


def list_envs() -> list[EnvEntry]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_env_entry(name: str) -> EnvEntry:
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown environment {name!r}; known: {known}")
    return _REGISTRY[name]


def _resolve(path: str) -> Callable[..., Any]:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def make_env(name: str, num_envs: int = 1, seed: int | None = None, **kwargs: Any) -> BatchedEnv:
    """Build ``num_envs`` copies of environment ``name`` (see ``offmarl envs`` for the list)."""
    entry = get_env_entry(name)
    if entry.unavailable_reason:
        raise RuntimeError(f"environment {name!r} cannot be built: {entry.unavailable_reason}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    try:
        factory = _resolve(entry.factory)
    except ImportError as exc:
        raise ImportError(
            f"environment {name!r} needs the optional extra '{entry.source}': "
            f"pip install 'offmarl[{entry.source}]' ({exc})"
        ) from exc
    return factory(num_envs=num_envs, seed=seed, **kwargs)


@dataclass(frozen=True)
class EnvSource:
    """The environment an online learner interacts with: ``num_envs`` sub-envs of ``env_name(**env_kwargs)``.

    What a dataset is to an offline learner, this is to an online one: ``algo.make_sampler(source, seed)``
    builds its rollout sampler with :meth:`make`, and config.json records :meth:`to_dict`."""

    env_name: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    num_envs: int = 8

    def __post_init__(self) -> None:
        if self.num_envs < 1:
            raise ValueError(f"EnvSource {self.env_name!r}: num_envs must be >= 1, got {self.num_envs}")
        object.__setattr__(self, "env_kwargs", dict(self.env_kwargs))

    def make(self, seed: int | None = None) -> BatchedEnv:
        return make_env(self.env_name, num_envs=self.num_envs, seed=seed, **self.env_kwargs)

    def spec(self) -> EnvSpec:
        """The env's spec (built from one sub-env, then closed)."""
        env = make_env(self.env_name, num_envs=1, **self.env_kwargs)
        try:
            return env.spec
        finally:
            env.close()

    def to_dict(self) -> dict[str, Any]:
        return {"env_name": self.env_name, "env_kwargs": dict(self.env_kwargs), "num_envs": self.num_envs}
