"""Environment registry: ``make_env(name, num_envs=B, seed=..., **kwargs)``.

Entries are registered with a dotted path to their factory, so listing envs never imports an optional
package (highway-env, jax, mujoco); the import happens only in ``make_env``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from offmarl.envs.base import BatchedEnv


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
            f"environment {name!r} needs the optional extra '{entry.source}': pip install 'offmarl[{entry.source}]' ({exc})"
        ) from exc
    return factory(num_envs=num_envs, seed=seed, **kwargs)
