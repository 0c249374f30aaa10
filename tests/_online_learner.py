"""A test-only online learner: independent tabular policy gradient on the matrix game (not library code).

It proves the experiment API's online seam (``learns_from = ("env",)``): the fit loop builds a rollout sampler
over an :class:`~offmarl.envs.registry.EnvSource` from the learner's training-side contract
(:class:`~offmarl.data.trajectory.TrainingActor`); each rollout of ``rollout_length`` = 2 steps is one whole
game in every sub-env (the matrix game always lasts two steps), and the budget counts env frames.

Agent i keeps a table of logits ``θ_i[s, a]`` over the one-hot observation index s; it acts by sampling
``softmax(θ_i[s])`` over its available actions and learns with REINFORCE on the episode's return,
``∇ J_i = E[(G − b) ∇ log π_i(a_i | s)]`` with the batch mean as baseline b (Williams, *Simple statistical
gradient-following algorithms for connectionist reinforcement learning*, 1992). Agent i's update reads
only agent i's observations, actions and rewards.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch

from offmarl.algos.base import AlgoConfig, Algorithm
from offmarl.core.optim import OptimizerWrapper
from offmarl.data.trajectory import ActStep, Trajectory
from offmarl.envs.base import EnvSpec
from offmarl.policies.base import AgentPolicy

NAME = "test_tabular_pg"


@dataclasses.dataclass(frozen=True)
class TabularPGConfig(AlgoConfig):
    """steps: env frames. lr: Adam's learning rate on the logits."""

    steps: int = 2_000
    lr: float = 0.1


class GreedyTablePolicy(AgentPolicy):
    def __init__(self, logits: torch.Tensor):
        self.logits = logits.detach().clone()  # [S, A]

    def act(self, obs, avail, last_reward):
        scores = self.logits[torch.as_tensor(obs.argmax(axis=-1))].numpy().copy()
        if avail is not None:
            scores[~avail.astype(bool)] = -np.inf
        return scores.argmax(axis=-1).astype(np.int64)


class TabularPG(Algorithm):
    name: ClassVar[str] = NAME
    Config: ClassVar[type[AlgoConfig]] = TabularPGConfig
    supports_continuous: ClassVar[bool] = False
    decentralized_training: ClassVar[bool] = True
    learns_from: ClassVar[tuple[str, ...]] = ("env",)
    progress_metric: ClassVar[str] = "episode_return"

    def __init__(self, spec: EnvSpec, config: TabularPGConfig, device: str | torch.device = "cpu"):
        super().__init__(spec, config, device)
        self.logits = torch.zeros(spec.n_agents, spec.obs_dim, spec.n_actions, requires_grad=True)  # [n, S, A]
        self.optimizer = OptimizerWrapper([self.logits], "adam", config.lr)

    @property
    def rollout_length(self) -> int:
        return self.spec.episode_limit  # one whole game per rollout

    def initial_hidden(self, batch_size: int) -> None:
        return None

    def scores(self, obs: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
        """Agent i's logits ``θ_i[s]`` at the one-hot observations ``obs [..., n, S]`` → ``[..., n, A]``."""
        scores = self.logits[torch.arange(self.spec.n_agents), obs.argmax(dim=-1)]
        return scores if avail is None else scores.masked_fill(~avail, -torch.inf)

    def act_train(self, obs, state, avail, hidden, generator) -> ActStep:
        probs = torch.softmax(self.scores(obs, avail), dim=-1)  # [B, n, A]
        action = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator).reshape(probs.shape[:-1])
        zeros = torch.zeros(action.shape)
        return ActStep(action=action, log_prob=zeros, value=zeros, hidden=None)

    def bootstrap_value(self, obs, state, avail, hidden) -> torch.Tensor:
        return torch.zeros(obs.shape[:-1])

    def update(self, batch: Trajectory) -> dict[str, float]:
        returns = batch.rewards.sum(dim=0)  # [B, n]: each rollout is one whole game
        advantage = returns - returns.mean(dim=0)  # [B, n]
        log_probs = torch.log_softmax(self.scores(batch.obs, None), dim=-1)  # [T, B, n, A]
        taken = log_probs.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)  # [T, B, n]
        loss = -(advantage * taken).sum(dim=0).mean(dim=0).sum()  # agents' losses add: no coupling
        self.optimizer.minimize(loss)
        return {"loss": loss.item(), "episode_return": returns.mean().item()}

    def agent_parameters(self, agent: int) -> list[torch.Tensor]:
        return [self.logits[agent]]

    def policies(self) -> list[GreedyTablePolicy]:
        return [GreedyTablePolicy(self.logits[i]) for i in range(self.spec.n_agents)]

    def state_dict(self) -> dict[str, Any]:
        return {"logits": self.logits.detach().clone(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.logits.copy_(state["logits"])
        self.optimizer.load_state_dict(state["optimizer"])
