"""Behaviour cloning, one independent MLP per agent (``bc``).

Reference: Tseng et al., *Offline Multi-Agent RL with Knowledge Distillation*, App. B.2 and Table 5:
"a 3-layer MLP with hidden dimensions 128 ... takes a
series of local observations as input and predicts the action distribution, trained in a regressing
manner". The baseline row "BC" of Tables 1-3. With ``top_fraction < 1`` it is percentile behaviour cloning
(%BC: Chen et al., *Decision Transformer: Reinforcement Learning via Sequence Modeling*, §5.3).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from offmarl.algos.base import AlgoConfig, Algorithm, register_algo
from offmarl.core.optim import OptimizerWrapper
from offmarl.data.dataset import MultiAgentDataset
from offmarl.data.samplers import WindowSampler
from offmarl.envs.base import EnvSpec
from offmarl.nets.action_head import ActionHead
from offmarl.nets.mlp import MLP
from offmarl.policies.base import AgentPolicy, DecentralizedPolicy


@dataclasses.dataclass(frozen=True)
class Config(AlgoConfig):
    """Behaviour cloning of agent i from its own recent observations.

    Input of agent i at step t: its last H local observations, concatenated,
        h_t^i = [o_{t-H+1}^i, ..., o_t^i]           (zeros before the episode's first step),
    each cut to the agent's true width ``obs_dims[i]``. Agent i's network f_i (own weights) predicts
        discrete:    L^i = -log softmax(mask(f_i(h_t^i)))[a_t^i]       (unavailable actions masked)
        continuous:  L^i = || low + (high - low) (tanh f_i(h_t^i) + 1) / 2 - a_t^i ||^2 / act_dim
    and the update minimises sum_i E[L^i] (the sum keeps each agent's gradient its own).

    Fields (defaults: Tseng et al. Table 5; batch size from Tables 7-9, which give 128 for every method):
        steps: gradient steps (default 10,000). Departure: Table 5 counts "offline epochs" (1000 / 500)
            over datasets whose epoch size is not stated, so offmarl counts gradient steps instead.
        batch_size: windows per update (128).
        lr: AdamW learning rate, 2e-4 (Table 5: Grid-World, Highway, SMAC). ``offmarl train`` applies
            5e-4 on ``fill_in`` and ``equal_space`` from ``offmarl/algos/env_defaults/bc.yaml``.
        weight_decay: AdamW weight decay, 1e-4 (Table 5).
        history: H, observations per input. The paper says "a series of local observations" without a
            length; offmarl uses 20, the Decision Transformers' context K, so BC sees what they see.
        hidden: hidden width, 128 (App. B.2).
        n_layers: linear layers, 3 (App. B.2: in -> 128 -> 128 -> out).
        activation: between layers, ReLU (unstated in the paper).
        top_fraction: clone only the ⌈top_fraction · E⌉ episodes of highest team return (%BC, Chen et al.
            2021, §5.3); 1.0 (default) clones every episode. A control for methods that select good
            trajectories before imitating them (SIT's Eq. 7 replay): it selects by the true return.
    """

    steps: int = 10_000
    batch_size: int = 128
    lr: float = 2e-4
    weight_decay: float = 1e-4
    history: int = 20
    hidden: int = 128
    n_layers: int = 3
    activation: str = "relu"
    top_fraction: float = 1.0


@register_algo
class BC(Algorithm):
    """Decentralized behaviour cloning: agent i's network sees only agent i's observation history."""

    name = "bc"
    Config = Config
    decentralized_training = True
    contract_overrides = {"hidden": 16, "history": 2, "batch_size": 16, "lr": 3e-3}

    def __init__(self, spec: EnvSpec, config: Config, device: str | torch.device = "cpu"):
        super().__init__(spec, config, device)
        if not 0.0 < config.top_fraction <= 1.0:
            raise ValueError(f"bc: top_fraction must be in (0, 1], got {config.top_fraction}")
        self.head = ActionHead.for_spec(spec).to(self.device)
        self.nets = nn.ModuleList(
            MLP(config.history * d, config.hidden, self.head.out_dim, config.n_layers, config.activation)
            for d in spec.obs_dims
        ).to(self.device)
        self.optimizer = OptimizerWrapper(self.nets.parameters(), "adamw", config.lr, config.weight_decay)
        self.updates = 0

    def make_sampler(self, dataset: MultiAgentDataset, seed: int) -> WindowSampler:
        # Windows end at a uniformly drawn step t and are zero-padded before the episode start: exactly h_t^i.
        if self.config.top_fraction < 1.0:
            dataset = dataset.select_episodes(dataset.best_episodes(self.config.top_fraction))
        return WindowSampler(dataset, self.config.batch_size, seed, K=self.config.history)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        obs = batch["obs"].to(self.device)  # [B, H, n, d], zeros at pads
        actions = batch["actions"][:, -1].to(self.device)  # [B, n] or [B, n, act_dim]: the action at step t
        avail = batch["avail"][:, -1].to(self.device) if "avail" in batch else None  # [B, n, A]
        losses = []
        for i, (net, d) in enumerate(zip(self.nets, self.spec.obs_dims)):
            history = obs[:, :, i, :d].flatten(1)  # [B, H * d_i]: agent i's own observations only
            raw = net(history)  # [B, out_dim]
            losses.append(self.head.loss(raw, actions[:, i], None if avail is None else avail[:, i]).mean())
        loss = torch.stack(losses)  # [n]
        self.optimizer.minimize(loss.sum())
        self.updates += 1
        return {"loss": loss.detach().mean().item()}

    def agent_parameters(self, agent: int) -> list[torch.Tensor]:
        return list(self.nets[agent].parameters())

    def policies(self) -> DecentralizedPolicy:
        return DecentralizedPolicy([
            BCAgentPolicy(net, self.head, d, self.config.history, self.device)
            for net, d in zip(self.nets, self.spec.obs_dims)
        ])

    def state_dict(self) -> dict[str, Any]:
        return {"nets": self.nets.state_dict(), "optimizer": self.optimizer.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.nets.load_state_dict(state["nets"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])


class BCAgentPolicy(AgentPolicy):
    """Agent i's greedy BC policy; keeps the last H observations of each of the B sub-envs."""

    def __init__(self, net: nn.Module, head: ActionHead, obs_dim: int, history: int, device: torch.device):
        self.net, self.head, self.obs_dim, self.history, self.device = net, head, obs_dim, history, device
        self.buffer = torch.zeros(0, history, obs_dim, device=device)  # [B, H, d_i]

    def reset(self, batch_size: int, mask: np.ndarray | None = None) -> None:
        if mask is None or self.buffer.shape[0] != batch_size:
            self.buffer = torch.zeros(batch_size, self.history, self.obs_dim, device=self.device)
        else:
            self.buffer[torch.as_tensor(mask, device=self.device)] = 0.0

    @torch.no_grad()
    def act(self, obs: np.ndarray, avail: np.ndarray | None, last_reward: np.ndarray | None) -> np.ndarray:
        o = torch.as_tensor(obs[:, :self.obs_dim], dtype=torch.float32, device=self.device)  # [B, d_i]
        self.buffer = torch.cat([self.buffer[:, 1:], o[:, None]], dim=1)  # [B, H, d_i], newest last
        raw = self.net(self.buffer.flatten(1))
        mask = None if avail is None else torch.as_tensor(avail, device=self.device)
        return self.head.greedy(raw, mask).cpu().numpy()
