"""In-memory multi-agent dataset: episodes on one flat time axis (DESIGN.md, "Dataset").

Shapes (T steps over all episodes, E episodes, n agents):
    obs            [T, n, obs_dim] float32   observation *before* the action of step t (zero-padded)
    state          [T, state_dim]  float32   optional global state
    actions        [T, n] int64 | [T, n, act_dim] float32   absent (None) only when ``card.state_only``
    rewards        [T, n] float32            reward of step t, per agent (team rewards broadcast)
    terminals      [T] bool                  True only on the last step of an episode that terminated
    truncations    [T] bool                  True only on the last step of an episode cut by the time limit
    avail_actions  [T, n, A] bool            optional action masks
    episode_starts [E] int64                 canonical episode boundaries, strictly increasing, first = 0
    final_obs      [E, n, obs_dim] float32   observation after each episode's last step
    final_state    [E, state_dim] float32    state after each episode's last step (when ``state`` exists)
    behavior_levels [E, n] uint8             optional: each agent's behaviour level in each episode, an index
                                             into ``card.behavior_level_names`` (datasets built from
                                             compositions of scripted or policy-pool levels)

An episode that is neither terminated nor truncated on its last step is allowed only as the last
episode of a dataset (a rollout cut by the collector); the validators enforce the rest.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import time
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from offmarl.envs.base import EnvSpec

FORMAT_VERSION = 2  # 2: the card's random_return and reference_return, the optional behavior_levels field with
#                     the card's behavior_level_names (version-1 files load with None for all of them)


def _library_version() -> str:
    from offmarl import __version__

    return __version__


@dataclass
class DatasetCard:
    """Everything needed to interpret and regenerate a dataset.

    ``return_mean`` / ``return_std`` are the papers' metric: the per-agent average episode return
    (for each episode, the mean over agents of that agent's return), averaged over episodes.
    ``team_return_*`` use the sum over agents of per-agent returns. ``per_agent_return_*`` are ``[n]``.
    ``behavior`` describes the behaviour policy (a dict, e.g. ``{"policy": "expert", "noise": 0.1}``);
    ``recipe`` and ``extra`` hold whatever a collector needs to regenerate the file (tier rates, ...).
    ``random_return`` / ``reference_return`` are the inputs of normalized scores
    ``(R - R_random) / (R_reference - R_random)`` in the metric of ``return_mean``: a uniform random policy's
    mean return and the behaviour expert's (or, for data without one, the best episode's), measured at
    collection (``offmarl.collect.normalization``); None in cards of format version 1.
    ``behavior_level_names``: the names of the behaviour levels the dataset's ``behavior_levels [E, n]`` indexes
    (value k means ``behavior_level_names[k]``, e.g. ``["random", "medium", "expert"]``); present iff that
    field is, None otherwise (and in cards of format version 1).
    """

    env_name: str
    env_kwargs: dict[str, Any]
    env_spec: dict[str, Any]
    n_agents: int
    agent_types: list[str]
    obs_dims: list[int]
    action_kind: str  # "discrete" | "continuous"
    behavior: dict[str, Any] = field(default_factory=dict)
    quality_tier: str | None = None
    state_only: bool = False
    seed: int | None = None
    episodes: int = 0
    steps: int = 0
    return_mean: float = 0.0
    return_std: float = 0.0
    return_min: float = 0.0
    return_max: float = 0.0
    team_return_mean: float = 0.0
    team_return_std: float = 0.0
    team_return_min: float = 0.0
    team_return_max: float = 0.0
    per_agent_return_mean: list[float] = field(default_factory=list)
    per_agent_return_std: list[float] = field(default_factory=list)
    per_agent_return_min: list[float] = field(default_factory=list)
    per_agent_return_max: list[float] = field(default_factory=list)
    random_return: float | None = None
    reference_return: float | None = None
    behavior_level_names: list[str] | None = None
    recipe: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    created: str = ""
    offmarl_version: str = ""

    @property
    def spec(self) -> EnvSpec:
        return EnvSpec.from_dict(self.env_spec)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DatasetCard":
        """Build a card from a dict; raises ``ValueError`` naming the first bad or missing key."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"card has unknown key {unknown[0]!r}")
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        for key in required:
            if key not in d:
                raise ValueError(f"card is missing key {key!r}")
        hints = typing.get_type_hints(cls)
        for key, value in d.items():
            if not _conforms(value, hints[key]):
                raise ValueError(f"card key {key!r} must be {_describe(hints[key])}, got {_short(value)}")
        card = cls(**d)
        if card.action_kind not in ("discrete", "continuous"):
            raise ValueError(f"card key 'action_kind' must be 'discrete' or 'continuous', got {card.action_kind!r}")
        if not isinstance(card.n_agents, int) or card.n_agents < 1:
            raise ValueError(f"card key 'n_agents' must be a positive integer, got {card.n_agents!r}")
        try:
            spec = card.spec
        except (KeyError, TypeError, ValueError, OverflowError, AssertionError) as exc:  # gymnasium asserts
            raise ValueError(f"card key 'env_spec' is not a valid env spec: {type(exc).__name__}: {exc}") from exc
        if spec.n_agents != card.n_agents:
            raise ValueError(f"card key 'n_agents' ({card.n_agents}) disagrees with env_spec ({spec.n_agents})")
        return card


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a card value has the type of its field (numpy scalars and tuples pass: cards built in memory)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if origin is list:
        return isinstance(value, (list, tuple)) and all(_conforms(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(key, str) for key in value)
    if hint is bool:
        return isinstance(value, (bool, np.bool_))
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    """``list[int]`` -> ``"a list of int"``, ``str | None`` -> ``"str or null"`` (for error messages)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return "null"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if origin is list:
        return f"a list of {_describe(args[0])}"
    if origin is dict:
        return "an object with string keys"
    return getattr(hint, "__name__", str(hint))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class MultiAgentDataset:
    """Episodes of a multi-agent env on one time axis; see the module docstring for shapes."""

    obs: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    truncations: np.ndarray
    episode_starts: np.ndarray
    final_obs: np.ndarray
    card: DatasetCard
    actions: np.ndarray | None = None
    state: np.ndarray | None = None
    final_state: np.ndarray | None = None
    avail_actions: np.ndarray | None = None
    behavior_levels: np.ndarray | None = None

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def n_steps(self) -> int:
        return int(self.obs.shape[0])

    @property
    def n_agents(self) -> int:
        return int(self.obs.shape[1])

    @property
    def n_episodes(self) -> int:
        return int(self.episode_starts.shape[0])

    @property
    def spec(self) -> EnvSpec:
        return self.card.spec

    @property
    def state_only(self) -> bool:
        return self.actions is None

    @property
    def episode_ends(self) -> np.ndarray:
        """Exclusive end index of each episode ``[E]``."""
        return np.append(self.episode_starts[1:], self.n_steps).astype(np.int64)

    @property
    def episode_lengths(self) -> np.ndarray:
        return self.episode_ends - self.episode_starts

    @property
    def episode_index(self) -> np.ndarray:
        """Episode id of every step ``[T]``."""
        return np.repeat(np.arange(self.n_episodes, dtype=np.int64), self.episode_lengths)

    # ---- returns -----------------------------------------------------------------------------
    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every agent in every episode ``[E, n]``."""
        cums = np.concatenate([np.zeros((1, self.n_agents)), np.cumsum(self.rewards, axis=0, dtype=np.float64)])
        return (cums[self.episode_ends] - cums[self.episode_starts]).astype(np.float64)

    def best_episodes(self, fraction: float) -> np.ndarray:
        """Indices of the ⌈fraction · E⌉ episodes of highest team return (summed over agents), best first;
        equal returns keep the dataset's order."""
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"best_episodes needs a fraction in (0, 1], got {fraction}")
        team = self.episode_returns().sum(axis=1)  # [E]
        keep = math.ceil(round(fraction * self.n_episodes, 9))  # round: 0.005 * 1000 is 5, not 5.000000000000001
        return np.argsort(-team, kind="stable")[:keep]

    def compute_return_stats(self) -> dict[str, Any]:
        """Return statistics for the card (see :class:`DatasetCard`)."""
        ret = self.episode_returns()  # [E, n]
        if ret.shape[0] == 0:
            raise ValueError("dataset has no episodes")
        avg = ret.mean(axis=1)
        team = ret.sum(axis=1)
        return {
            "episodes": self.n_episodes,
            "steps": self.n_steps,
            "return_mean": float(avg.mean()),
            "return_std": float(avg.std()),
            "return_min": float(avg.min()),
            "return_max": float(avg.max()),
            "team_return_mean": float(team.mean()),
            "team_return_std": float(team.std()),
            "team_return_min": float(team.min()),
            "team_return_max": float(team.max()),
            "per_agent_return_mean": ret.mean(axis=0).tolist(),
            "per_agent_return_std": ret.std(axis=0).tolist(),
            "per_agent_return_min": ret.min(axis=0).tolist(),
            "per_agent_return_max": ret.max(axis=0).tolist(),
        }

    def refresh_card(self) -> None:
        """Recompute the card's statistics, creation time and library version from the arrays."""
        for key, value in self.compute_return_stats().items():
            setattr(self.card, key, value)
        self.card.state_only = self.actions is None
        self.card.created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.card.offmarl_version = _library_version()

    # ---- views -------------------------------------------------------------------------------
    def episode(self, e: int) -> dict[str, np.ndarray]:
        """Arrays of episode ``e`` (views, not copies)."""
        s, t = int(self.episode_starts[e]), int(self.episode_ends[e])
        out = {"obs": self.obs[s:t], "rewards": self.rewards[s:t], "terminals": self.terminals[s:t],
               "truncations": self.truncations[s:t], "final_obs": self.final_obs[e]}
        for name in ("actions", "state", "avail_actions"):
            arr = getattr(self, name)
            if arr is not None:
                out[name] = arr[s:t]
        if self.final_state is not None:
            out["final_state"] = self.final_state[e]
        if self.behavior_levels is not None:
            out["behavior_levels"] = self.behavior_levels[e]
        return out

    def select_episodes(self, idx: np.ndarray) -> "MultiAgentDataset":
        """A new dataset holding episodes ``idx`` (in that order), card statistics refreshed."""
        idx = np.asarray(idx, dtype=np.int64)
        starts, ends = self.episode_starts[idx], self.episode_ends[idx]
        steps = np.concatenate([np.arange(s, t) for s, t in zip(starts, ends)]) if len(idx) else np.zeros(0, np.int64)
        lengths = ends - starts
        new_starts = (np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(idx)
                      else np.zeros(0, np.int64))
        take = lambda a: None if a is None else a[steps]  # noqa: E731
        ds = MultiAgentDataset(
            obs=self.obs[steps], rewards=self.rewards[steps], terminals=self.terminals[steps],
            truncations=self.truncations[steps], episode_starts=new_starts, final_obs=self.final_obs[idx],
            card=dataclasses.replace(self.card), actions=take(self.actions), state=take(self.state),
            final_state=None if self.final_state is None else self.final_state[idx],
            avail_actions=take(self.avail_actions),
            behavior_levels=None if self.behavior_levels is None else self.behavior_levels[idx],
        )
        if len(idx):
            ds.refresh_card()
        return ds
