"""The batched multi-agent environment contract (DESIGN.md, "Environment").

Every environment offmarl runs -- native numpy ones and adapters around other packages -- is a
:class:`BatchedEnv`: ``B`` independent copies stepped together, arrays shaped ``[B, n, ...]``.

Auto-reset: when sub-env ``b`` ends (terminated or truncated) inside :meth:`BatchedEnv.step`, the
returned ``obs[b]`` / ``state[b]`` / ``avail_actions[b]`` already belong to the *next* episode, and
``final_obs[b]`` / ``final_state[b]`` hold the observation reached by the last action (so a truncated
transition keeps its real next observation). ``reward[b]``, ``terminated[b]``, ``truncated[b]`` and
``info`` describe the step that just happened.

Saving and restoring (an online run's checkpoint, so that a resume after a kill continues bit-exactly):
an env whose class sets ``restorable = True`` implements :meth:`BatchedEnv.get_state` and
:meth:`BatchedEnv.set_state`. ``get_state()`` returns a dict of numpy arrays, numbers, strings, bools,
None, lists and dicts -- every sub-env's full state and random generator (a numpy ``Generator`` as its
``bit_generator.state``), plus the env's ``name``, ``num_envs`` and ``kwargs`` -- which
``offmarl.core.files.atomic_torch_save`` stores without pickling (arrays become tensors). ``set_state(s)``
on an env built the same way (same name, kwargs and ``num_envs``; otherwise a ``ValueError`` names the
difference) makes every later ``step(actions)`` return exactly, bit for bit, what the original env's
steps returned from the moment ``s`` was taken; it takes the arrays back as numpy arrays or as tensors
(what ``torch.load(weights_only=True)`` returns). Capturing costs nothing while stepping: it happens only
when asked. Native numpy envs list the attributes that hold their state in ``state_attributes`` (arrays,
numpy Generators, None before the first reset) and inherit the generic implementation; other restorable
envs (SMAX) override both methods. Envs that are not restorable (the adapters of external simulators:
highway-env, MaMuJoCo) raise ``NotImplementedError`` from both: a resume restarts their episodes.

This module imports nothing else of offmarl.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces


@dataclass(frozen=True)
class EnvSpec:
    """Static description of an environment, shared by all of its sub-envs.

    Fields:
        name: registry name (``make_env(name)``).
        n_agents: number of controlled agents ``n``.
        obs_dim: observation width (max over agents; smaller observations are zero-padded).
        obs_dims: each agent's true observation width ``[n]``.
        state_dim: global state width (0 when the env has none).
        action_space: one gymnasium ``Discrete`` or ``Box`` shared by all agents.
        episode_limit: maximum number of steps of an episode (truncation horizon).
        agent_types: a type name per agent ``[n]`` (e.g. ``"seeker"``, ``"marine"``).
        has_avail_actions: whether TimeSteps carry ``avail_actions`` (discrete envs only).
        kwargs: the keyword arguments the env was built with (so ``make_env(name, **kwargs)`` rebuilds it).
    """

    name: str
    n_agents: int
    obs_dim: int
    obs_dims: tuple[int, ...]
    state_dim: int
    action_space: spaces.Space
    episode_limit: int
    agent_types: tuple[str, ...]
    has_avail_actions: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.action_space, (spaces.Discrete, spaces.Box)):
            raise TypeError(f"EnvSpec {self.name}: action_space must be Discrete or Box, got {self.action_space!r}")
        if len(self.obs_dims) != self.n_agents or len(self.agent_types) != self.n_agents:
            raise ValueError(f"EnvSpec {self.name}: obs_dims and agent_types need one entry per agent "
                             f"({self.n_agents})")
        if max(self.obs_dims) != self.obs_dim:
            raise ValueError(f"EnvSpec {self.name}: obs_dim {self.obs_dim} != max(obs_dims) {max(self.obs_dims)}")

    @property
    def discrete(self) -> bool:
        return isinstance(self.action_space, spaces.Discrete)

    @property
    def n_actions(self) -> int:
        """Number of discrete actions ``A`` (discrete envs only)."""
        if not self.discrete:
            raise TypeError(f"env {self.name} has continuous actions; n_actions is undefined")
        return int(self.action_space.n)

    @property
    def act_dim(self) -> int:
        """Width of a continuous action (1 for discrete envs, where an action is one integer)."""
        return 1 if self.discrete else int(np.prod(self.action_space.shape))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in dataset cards and run configs)."""
        if self.discrete:
            action = {"kind": "discrete", "n": int(self.action_space.n)}
        else:
            action = {
                "kind": "continuous",
                "shape": list(self.action_space.shape),
                "low": np.asarray(self.action_space.low, dtype=float).tolist(),
                "high": np.asarray(self.action_space.high, dtype=float).tolist(),
            }
        return {
            "name": self.name,
            "n_agents": self.n_agents,
            "obs_dim": self.obs_dim,
            "obs_dims": list(self.obs_dims),
            "state_dim": self.state_dim,
            "action_space": action,
            "episode_limit": self.episode_limit,
            "agent_types": list(self.agent_types),
            "has_avail_actions": self.has_avail_actions,
            "kwargs": dict(self.kwargs),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EnvSpec":
        a = d["action_space"]
        if a["kind"] == "discrete":
            space: spaces.Space = spaces.Discrete(int(a["n"]))
        elif a["kind"] == "continuous":
            space = spaces.Box(
                low=np.asarray(a["low"], dtype=np.float32).reshape(a["shape"]),
                high=np.asarray(a["high"], dtype=np.float32).reshape(a["shape"]),
                dtype=np.float32,
            )
        else:
            raise ValueError(f"unknown action kind {a['kind']!r}")
        return cls(
            name=d["name"],
            n_agents=int(d["n_agents"]),
            obs_dim=int(d["obs_dim"]),
            obs_dims=tuple(int(x) for x in d["obs_dims"]),
            state_dim=int(d["state_dim"]),
            action_space=space,
            episode_limit=int(d["episode_limit"]),
            agent_types=tuple(d["agent_types"]),
            has_avail_actions=bool(d.get("has_avail_actions", False)),
            kwargs=dict(d.get("kwargs", {})),
        )


@dataclass
class TimeStep:
    """What a batched env returns from ``reset`` and ``step``.

    Shapes (B sub-envs, n agents):
        obs [B, n, obs_dim] float32, zero-padded beyond each agent's ``obs_dims[i]``
        state [B, state_dim] float32
        reward [B, n] float32 (per agent; a team reward is broadcast to every agent)
        terminated [B] bool, truncated [B] bool
        avail_actions [B, n, A] bool or None (discrete envs with action masks)
        final_obs [B, n, obs_dim] / final_state [B, state_dim]: for sub-envs that just ended
            (terminated | truncated) the observation/state reached by the last action; other rows
            are unspecified (copies of ``obs``). None after ``reset``.
        final_avail [B, n, A] bool: likewise the action mask at ``final_obs``, from envs whose masks change
            within an episode (SMAX, Highway); None where the env does not report it (its masks are fixed, or
            there are none) -- a learner then takes every action as available there.
        info: extra per-sub-env arrays, e.g. ``{"win": [B] bool}``.
    """

    obs: np.ndarray
    state: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    avail_actions: np.ndarray | None = None
    final_obs: np.ndarray | None = None
    final_state: np.ndarray | None = None
    final_avail: np.ndarray | None = None
    info: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated


class BatchedEnv(ABC):
    """``num_envs`` copies of one environment stepped together (see module docstring)."""

    spec: EnvSpec
    num_envs: int
    #: Whether :meth:`get_state` / :meth:`set_state` work (module docstring); False by default.
    restorable: ClassVar[bool] = False
    #: The attributes holding the sub-envs' full state, saved and restored by the generic
    #: :meth:`get_state` / :meth:`set_state`: numpy arrays, numpy Generators, or None (not yet reset).
    state_attributes: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def reset(self, seed: int | None = None) -> TimeStep:
        """Reset every sub-env; ``seed`` re-seeds the env's generator."""

    @abstractmethod
    def step(self, actions: np.ndarray) -> TimeStep:
        """Advance all sub-envs by one step; ``actions`` is ``[B, n]`` ints or ``[B, n, act_dim]`` floats.

        Sub-envs that end are auto-reset (module docstring)."""

    def render(self, index: int = 0) -> np.ndarray:
        """An RGB frame ``[H, W, 3] uint8`` of sub-env ``index``."""
        raise NotImplementedError(f"{self.spec.name} has no renderer")

    def close(self) -> None:
        """Release resources held by the env (native numpy envs hold none)."""

    def get_state(self) -> dict[str, Any]:
        """Everything the sub-envs need to continue exactly as they would have (module docstring):
        ``{"name", "num_envs", "kwargs", "attributes": {attribute: array | generator state | None}}``."""
        self._require_restorable()
        return {**self._identity(),
                "attributes": {name: _capture(getattr(self, name)) for name in self.state_attributes}}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from ``state``, a :meth:`get_state` of an env built the same way (arrays may come back
        as tensors). Everything is checked before anything changes: a refused state leaves the env as it was."""
        self._require_restorable()
        self._check_identity(state)
        saved = state.get("attributes")
        if not isinstance(saved, dict):
            raise ValueError(f"{self.spec.name}: the saved state has no attributes dict")
        missing = sorted(set(self.state_attributes) - saved.keys())
        if missing:
            raise ValueError(f"{self.spec.name}: the saved state lacks {missing}")
        restored = {name: _restore(f"{self.spec.name}: saved {name}", getattr(self, name), saved[name])
                    for name in self.state_attributes}
        for name, value in restored.items():
            setattr(self, name, value)

    def _check_identity(self, state: dict[str, Any]) -> None:
        """``ValueError`` (one line, naming the mismatch) unless ``state`` was taken from an env of this name,
        ``num_envs`` and kwargs."""
        name = self.spec.name
        if not isinstance(state, dict) or not {"name", "num_envs", "kwargs"} <= state.keys():
            raise ValueError(f"{name}: not an env state (a dict from get_state() with name, num_envs and kwargs)")
        if state["name"] != name:
            raise ValueError(f"{name}: the state was taken from env {state['name']!r}")
        if state["num_envs"] != self.num_envs:
            raise ValueError(f"{name}: the state holds {state['num_envs']} sub-envs, this env has {self.num_envs}")
        theirs, ours = state["kwargs"], self.spec.kwargs
        differing = sorted((key for key in theirs.keys() | ours.keys() if theirs.get(key) != ours.get(key)), key=str)
        if differing:
            described = ", ".join(f"{key}={theirs.get(key)!r} (here {ours.get(key)!r})" for key in differing)
            raise ValueError(f"{name}: the state was taken from an env built with other kwargs: {described}")

    def _identity(self) -> dict[str, Any]:
        """The part of a saved state that says which env it belongs to."""
        return {"name": self.spec.name, "num_envs": self.num_envs, "kwargs": copy.deepcopy(self.spec.kwargs)}

    def _require_restorable(self) -> None:
        if not self.restorable:
            raise NotImplementedError(f"{self.spec.name} cannot save or restore its state: "
                                      "a resume restarts its episodes")

    def check_actions(self, actions: np.ndarray) -> np.ndarray:
        """Validate the shape (and, for discrete envs, the range) of ``actions``; return them as an array."""
        actions = np.asarray(actions)
        spec = self.spec
        if spec.discrete:
            if actions.shape != (self.num_envs, spec.n_agents):
                raise ValueError(
                    f"{spec.name}: actions must have shape [B, n] = [{self.num_envs}, {spec.n_agents}], "
                    f"got {list(actions.shape)}"
                )
            if actions.size and (actions.min() < 0 or actions.max() >= spec.n_actions):
                raise ValueError(f"{spec.name}: discrete actions must lie in [0, {spec.n_actions}), "
                                 f"got {actions.min()}..{actions.max()}")
            return actions.astype(np.int64, copy=False)
        want = (self.num_envs, spec.n_agents, spec.act_dim)
        if actions.shape != want:
            raise ValueError(f"{spec.name}: actions must have shape [B, n, act_dim] = {list(want)}, "
                             f"got {list(actions.shape)}")
        return actions.astype(np.float32, copy=False)


def _capture(value: Any) -> Any:
    """A saved copy of one state attribute (see ``BatchedEnv.state_attributes``)."""
    if value is None:
        return None
    if isinstance(value, np.random.Generator):
        return value.bit_generator.state  # a fresh dict of ints and strings
    if isinstance(value, np.ndarray):
        return value.copy()
    raise TypeError(f"state attribute of type {type(value).__name__} cannot be saved (arrays, Generators, None)")


def _restore(what: str, current: Any, saved: Any) -> Any:
    """The value a state attribute takes back from ``saved``, checked against the env's ``current`` one
    (same kind, shape and dtype: a state of another version of the env is refused, not cast)."""
    if isinstance(current, np.random.Generator):
        generator = np.random.Generator(type(current.bit_generator)())
        try:
            generator.bit_generator.state = saved
        except (TypeError, ValueError, KeyError) as exc:
            kind = type(current.bit_generator).__name__
            raise ValueError(f"{what} is not a {kind} generator state ({exc})") from None
        return generator
    if saved is None:
        return None
    array = np.asarray(saved)  # a tensor from torch.load, or an array
    if current is None:
        return np.array(array, order="C")
    if array.shape != current.shape or array.dtype != current.dtype:
        raise ValueError(f"{what} is {array.dtype}{list(array.shape)}, "
                         f"the env holds {current.dtype}{list(current.shape)}")
    return np.array(array, order="C")
