"""What online learning passes around: one step of a learner's stochastic policy (:class:`ActStep`), the
learner's training-side contract (:class:`TrainingActor`) and a rollout (:class:`Trajectory`).

The rollout engine (:mod:`offmarl.collect.engine`) produces trajectories by calling a ``TrainingActor``;
online learners (``offmarl.algos``) implement the contract and train on the trajectories. Both import these
types from here, below either of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch


@dataclass
class ActStep:
    """What a learner's :meth:`TrainingActor.act_train` returns for one step of ``B`` sub-envs."""

    action: torch.Tensor  # [B, n] int64 | [B, n, act_dim]
    log_prob: torch.Tensor  # [B, n]
    value: torch.Tensor  # [B, n]
    hidden: torch.Tensor | None  # [B, ...] after this step


class TrainingActor(Protocol):
    """The training-side contract of an online learner (its evaluation policies stay ``policies()``)."""

    def initial_hidden(self, batch_size: int) -> torch.Tensor | None:
        """The hidden state ``[B, ...]`` at an episode's start (None for a feed-forward learner)."""

    def act_train(self, obs: torch.Tensor, state: torch.Tensor, avail: torch.Tensor | None,
                  hidden: torch.Tensor | None, generator: torch.Generator) -> ActStep:
        """Sample actions for ``obs [B, n, d]`` (global ``state [B, S]``, masks ``avail [B, n, A]``)."""

    def bootstrap_value(self, obs: torch.Tensor, state: torch.Tensor, avail: torch.Tensor | None,
                        hidden: torch.Tensor | None) -> torch.Tensor:
        """``V [B, n]`` of observations reached with ``hidden`` (the state the step into them left)."""

    # Optional (the rollout engine calls it where the learner has it): ``carry_hidden(hidden [B, ...], rewards
    # [B, n]) -> hidden``, the hidden state the next step starts from once the step's rewards are known -- a
    # return-conditioned actor subtracts them from its return-to-go. The engine zeroes it where episodes ended.


@dataclass
class Trajectory:
    """``T`` steps of ``B`` sub-envs, time-major (module docstring for the fields' meaning)."""

    obs: torch.Tensor  # [T, B, n, d]
    state: torch.Tensor  # [T, B, S]
    avail: torch.Tensor | None  # [T, B, n, A] bool
    actions: torch.Tensor  # [T, B, n] | [T, B, n, act_dim]
    log_probs: torch.Tensor  # [T, B, n]
    values: torch.Tensor  # [T, B, n]
    rewards: torch.Tensor  # [T, B, n]
    terminated: torch.Tensor  # [T, B] bool
    truncated: torch.Tensor  # [T, B] bool
    bootstrap: torch.Tensor  # [T, B, n]: V(final_obs) where the step truncated, else 0
    final_obs: torch.Tensor  # [T, B, n, d]: where the step ended its episode, the observation it reached; else 0
    final_state: torch.Tensor  # [T, B, S]: likewise the state
    starts: torch.Tensor  # [T, B] bool: the step is an episode's first
    active: torch.Tensor  # [T, B, n] bool: the agent is alive
    hidden: torch.Tensor | None  # [T, B, ...]: the hidden state each step started from
    last_values: torch.Tensor  # [B, n]
    last_obs: torch.Tensor  # [B, n, d]: the observations the rollout stopped at
    episode_returns: np.ndarray  # [E] per-agent average return of each episode that ended
    episode_wins: np.ndarray | None  # [E] bool, where the env reports wins
    # [T, B, n, A] bool: where the step ended its episode, the action mask at final_obs (all True where the env
    # does not report it, and on steps that did not end); None without masks
    final_avail: torch.Tensor | None = None

    @property
    def frames(self) -> int:
        return int(self.rewards.shape[0] * self.rewards.shape[1])
