"""A test-only online learner: independent tabular policy gradient on the matrix game (not library code).

It proves the experiment API's online seam (``learns_from = "env"``): the fit loop builds its sampler from
an :class:`~offmarl.envs.registry.EnvSource`, each ``sample()`` plays one whole episode in every sub-env and
says how many env frames that took (``last_sample_frames``), and the budget counts frames.

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
from offmarl.envs.base import EnvSpec
from offmarl.envs.registry import EnvSource
from offmarl.policies.base import AgentPolicy

NAME = "test_tabular_pg"


@dataclasses.dataclass(frozen=True)
class TabularPGConfig(AlgoConfig):
    """steps: env frames. lr: Adam's learning rate on the logits."""

    steps: int = 2_000
    lr: float = 0.1


class EpisodeSampler:
    """Plays one episode in each of the source's sub-envs per ``sample()`` with the learner's stochastic
    policies; the env's episodes all have ``episode_limit`` steps (the matrix game's two)."""

    def __init__(self, algo: "TabularPG", source: EnvSource, seed: int):
        self.algo = algo
        self.env = source.make(seed=seed)
        self.horizon = self.env.spec.episode_limit
        self.last_sample_frames = source.num_envs * self.horizon  # every sample() plays whole episodes
        self.rng = np.random.default_rng(seed)
        self.ts = self.env.reset(seed=seed)

    def sample(self) -> dict[str, np.ndarray]:
        obs, actions, rewards = [], [], []
        for _ in range(self.horizon):
            state = self.ts.obs.argmax(axis=-1)  # [B, n] one-hot index
            probs = self.algo.action_probs(state, self.ts.avail_actions)  # [B, n, A]
            u = self.rng.random(probs.shape[:2])[..., None]
            action = (probs.cumsum(axis=-1) < u).sum(axis=-1).clip(max=probs.shape[-1] - 1)  # [B, n]
            self.ts = self.env.step(action)
            obs.append(state)
            actions.append(action)
            rewards.append(self.ts.reward)
        assert self.ts.done.all(), "every sub-env ends its episode within the horizon"
        return {"obs": np.stack(obs, 1), "actions": np.stack(actions, 1), "returns": np.sum(rewards, axis=0)}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


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
    learns_from: ClassVar[str] = "env"
    progress_metric: ClassVar[str] = "return"

    def __init__(self, spec: EnvSpec, config: TabularPGConfig, device: str | torch.device = "cpu"):
        super().__init__(spec, config, device)
        self.logits = torch.zeros(spec.n_agents, spec.obs_dim, spec.n_actions, requires_grad=True)  # [n, S, A]
        self.optimizer = OptimizerWrapper([self.logits], "adam", config.lr)

    def make_sampler(self, source: EnvSource, seed: int) -> EpisodeSampler:
        return EpisodeSampler(self, source, seed)

    def action_probs(self, state: np.ndarray, avail: np.ndarray | None) -> np.ndarray:
        """``π_i(· | s)`` for ``state [B, n]`` -> ``[B, n, A]`` (unavailable actions get probability 0)."""
        with torch.no_grad():
            scores = self.logits[torch.arange(self.spec.n_agents), torch.as_tensor(state)]  # [B, n, A]
            if avail is not None:
                scores = scores.masked_fill(~torch.as_tensor(avail, dtype=torch.bool), -torch.inf)
            return torch.softmax(scores, dim=-1).double().numpy()

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        obs, actions = torch.as_tensor(batch["obs"]), torch.as_tensor(batch["actions"])  # [B, T, n]
        returns = torch.as_tensor(batch["returns"], dtype=torch.float32)  # [B, n]
        advantage = returns - returns.mean(dim=0)  # [B, n]
        agents = torch.arange(self.spec.n_agents)
        log_probs = torch.log_softmax(self.logits[agents, obs], dim=-1)  # [B, T, n, A]
        taken = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # [B, T, n]
        loss = -(advantage.unsqueeze(1) * taken).sum(dim=1).mean(dim=0).sum()  # agents' losses add: no coupling
        self.optimizer.minimize(loss)
        return {"loss": loss.item(), "return": returns.mean().item()}

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
