"""Policy contracts: per-agent (decentralized) policies and joint policies.

An :class:`AgentPolicy` sees only its own agent's observation, action mask and last reward; it may keep
state (a Decision Transformer's context and return-to-go, a GRU hidden state) per sub-env, which
``reset(B, mask)`` clears for the sub-envs in ``mask`` (all when ``mask`` is None).

A :class:`JointPolicy` acts for all agents from a whole :class:`~offmarl.envs.TimeStep` (so a scripted
expert or a centralized teacher may read ``ts.state``). :class:`DecentralizedPolicy` turns a list of
agent policies into a joint one, giving agent i only ``ts.obs[:, i]``, ``ts.avail_actions[:, i]`` and
``ts.reward[:, i]``, with one batched call per agent per step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from offmarl.envs.base import TimeStep


class AgentPolicy(ABC):
    """Acts for one agent on ``B`` sub-envs at once."""

    def reset(self, batch_size: int, mask: np.ndarray | None = None) -> None:
        """Start new episodes: for all ``batch_size`` sub-envs, or only where ``mask [B]`` is True."""

    @abstractmethod
    def act(self, obs: np.ndarray, avail: np.ndarray | None, last_reward: np.ndarray | None) -> np.ndarray:
        """``obs [B, obs_dim]``, ``avail [B, A]`` or None, ``last_reward [B]`` (None on the first step).

        Returns ``[B]`` int64 (discrete) or ``[B, act_dim]`` float32 (continuous)."""


class JointPolicy(ABC):
    """Acts for all agents of ``B`` sub-envs."""

    def reset(self, batch_size: int, mask: np.ndarray | None = None) -> None:
        """Start new episodes (see :meth:`AgentPolicy.reset`)."""

    @abstractmethod
    def act(self, ts: TimeStep, first: bool = False) -> np.ndarray:
        """Actions ``[B, n]`` int64 or ``[B, n, act_dim]`` float32 for TimeStep ``ts``.

        ``first`` is True on the first call after a full reset (``ts.reward`` is then not a real reward).
        After an auto-reset of some sub-envs the caller calls ``reset(B, mask)`` before ``act``."""


class DecentralizedPolicy(JointPolicy):
    """A joint policy made of independent per-agent policies (decentralized execution)."""

    def __init__(self, agents: Sequence[AgentPolicy]):
        self.agents = list(agents)
        self._fresh: np.ndarray | None = None  # [B] sub-envs whose last reward belongs to a previous episode

    def reset(self, batch_size: int, mask: np.ndarray | None = None) -> None:
        for agent in self.agents:
            agent.reset(batch_size, mask)
        if self._fresh is None or mask is None or self._fresh.shape[0] != batch_size:
            self._fresh = np.ones(batch_size, dtype=bool)
        else:
            self._fresh |= mask

    def act(self, ts: TimeStep, first: bool = False) -> np.ndarray:
        if ts.obs.shape[1] != len(self.agents):
            raise ValueError(f"DecentralizedPolicy has {len(self.agents)} agents, TimeStep has {ts.obs.shape[1]}")
        actions = []
        for i, agent in enumerate(self.agents):
            # A copy: envs may hand out one read-only mask array, which torch refuses to wrap without a warning.
            avail = None if ts.avail_actions is None else np.array(ts.avail_actions[:, i])
            if first:
                reward = None
            else:
                reward = ts.reward[:, i].copy()
                if self._fresh is not None:
                    reward[self._fresh] = 0.0  # the reward of an episode that just ended is not this one's
            actions.append(agent.act(ts.obs[:, i], avail, reward))
        if self._fresh is not None:
            self._fresh[:] = False
        return np.stack(actions, axis=1)
