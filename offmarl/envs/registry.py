"""Environment registry: ``make_env(name, num_envs=B, seed=..., **kwargs)`` and ``env_spec(name, kwargs)``.

Entries are registered with a dotted path to their factory, so listing envs never imports an optional
package (highway-env, jax, mujoco); the import happens only in ``make_env`` and ``env_spec``.

An entry may also name a spec function, ``spec(**kwargs) -> EnvSpec``: the spec ``factory(**kwargs)`` would
have, its arguments checked as the env checks them, computed without building the env (no SMAX
compilation, no simulator). It takes exactly the factory's keyword arguments (``tests/test_env_registry.py``
holds every catalog entry to that), so it also says which ``env_kwargs`` an env accepts: the dataset loader
checks a card's environment with it (:func:`env_spec`). An entry without one is checked for its name and
keyword arguments only.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
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
    spec: str | None = None  # "module.path:callable", called as spec(**kwargs) (module docstring)


_REGISTRY: dict[str, EnvEntry] = {}
_BUILD_ARGUMENTS = ("num_envs", "seed")  # what make_env passes a factory besides the env's own kwargs


def register_env(name: str, factory: str, description: str, source: str = "native",
                 unavailable_reason: str | None = None, spec: str | None = None) -> None:
    if name in _REGISTRY:
        raise ValueError(f"environment {name!r} is registered twice")
    _REGISTRY[name] = EnvEntry(name, factory, description, source, unavailable_reason, spec)


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


def _import(entry: EnvEntry, path: str) -> Callable[..., Any]:
    """The callable at ``path`` of ``entry``; an ImportError names the extra to install."""
    try:
        return _resolve(path)
    except ImportError as exc:
        raise ImportError(
            f"environment {entry.name!r} needs the optional extra '{entry.source}': "
            f"pip install 'offmarl[{entry.source}]' ({exc})"
        ) from exc


def _buildable(name: str) -> EnvEntry:
    entry = get_env_entry(name)
    if entry.unavailable_reason:
        raise RuntimeError(f"environment {name!r} cannot be built: {entry.unavailable_reason}")
    return entry


def _check_kwargs(entry: EnvEntry, kwargs: Mapping[str, Any]) -> None:
    """A ValueError naming the first of ``kwargs`` that the env does not take (its spec function's keyword
    arguments, else its factory's; a factory that takes ``**kwargs`` and has no spec function takes any)."""
    parameters = inspect.signature(_import(entry, entry.spec or entry.factory)).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return
    accepted = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    accepted -= set(_BUILD_ARGUMENTS)
    for key in kwargs:
        if key not in accepted:
            raise ValueError(f"environment {entry.name!r} takes no argument {key!r} (its arguments: "
                             f"{', '.join(sorted(accepted)) or 'none'})")


def make_env(name: str, num_envs: int = 1, seed: int | None = None, **kwargs: Any) -> BatchedEnv:
    """Build ``num_envs`` copies of environment ``name`` (see ``offmarl envs`` for the list)."""
    entry = _buildable(name)
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    _check_kwargs(entry, kwargs)
    return _import(entry, entry.factory)(num_envs=num_envs, seed=seed, **kwargs)


def env_spec(name: str, kwargs: Mapping[str, Any] | None = None) -> EnvSpec | None:
    """The spec ``make_env(name, **kwargs)`` would have, computed without building the env (module docstring);
    None for an entry registered without a spec function.

    Raises ``KeyError`` for an unknown name, ``RuntimeError`` for an env that cannot be built, ``ImportError``
    naming the extra when the env's optional package is missing, ``ValueError`` naming an argument the env
    does not take, and whatever the env's own checks raise for the arguments' values.
    """
    entry = _buildable(name)
    kwargs = dict(kwargs or {})
    _check_kwargs(entry, kwargs)
    return None if entry.spec is None else _import(entry, entry.spec)(**kwargs)


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
