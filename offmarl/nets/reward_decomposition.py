"""An ensemble of team-reward decomposition networks: SIT's ARDNEM (Tian et al., *Learning from Good Trajectories
in Offline MARL*, "Attention-Based Reward Decomposition Network with Ensemble Mechanism", Eq. 1-3, Table 10)
and the QMIX-style alternative of App. E.1 (Eq. 15).

Every member m (``members`` = M of them, one batched call: :mod:`offmarl.nets.ensemble`) has

* a per-agent reward network ``r_{i,m} = f_m(o_i, a_i)``, shared by all agents (SIT: "the reward network
  parameters of different agents are shared"; no agent id enters, so the same behaviour earns the same
  reward whoever shows it): an MLP ``[obs + action] -> H -> H -> 1`` (``reward_hidden`` H = 64, Table 10);
* weights ``λ_{i,m}`` over the agents, by ``weighting``:

  - ``attention`` (Eq. 1, the differentiable key-value memory of Oh et al. 2016): MLPs ``[S] -> D -> D`` and
    ``[obs + action] -> D -> D`` (``attention_hidden`` D = 64) embed the state e_s and each agent's pair e_i;
    ``λ_{i,m} = softmax_i( (W_q e_s)ᵀ (W_k e_i) )`` with ``W_q``, ``W_k [D, D]`` without bias (as printed: no
    1/√D scaling);
  - ``uniform``: ``λ_{i,m} = 1`` (SIT Fig. 4a "w/o attention");
  - ``monotonic`` (App. E.1, Eq. 15, "MNC"): the total is QMIX's mixer over the agents' rewards,
    ``r_tot = f_mix(r_1, …, r_n; s)`` (:class:`~offmarl.nets.mixers.QMixer`: hypernetworks of s with absolute
    weights, so ∂r_tot/∂r_i ≥ 0; embedding and hypernetwork width D, two-layer hypernetworks). Fig. 7a, which
    draws SIT's hypernetwork, is missing from our copy: this is pymarl's QMIX mixer. Its per-agent credit is
    the local slope times the reward, ``λ_{i,m} = ∂r_tot/∂r_{i,m}`` (the first-order share of r_i in r_tot;
    the mixer's bias V(s) and its curvature are nobody's).

Outputs (:class:`Decomposition`): the weighted rewards ``λ_{i,m} r_{i,m}`` ``[M, ..., n]``, the predicted team
reward ``r̂_tot,m`` ``[M, ...]`` (Eq. 2: ``Σ_i λ_{i,m} r_{i,m}``; MNC: the mixer's output), the weights and
the unweighted rewards ``r_{i,m}``.
This module imports nothing of offmarl but the other ``offmarl.nets`` modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from offmarl.nets.ensemble import EnsembleLinear, EnsembleMLP
from offmarl.nets.mixers import QMixer

WEIGHTINGS = ("attention", "uniform", "monotonic")


@dataclass
class Decomposition:
    """What :class:`RewardDecomposition` predicts for inputs with leading dims ``[...]``."""

    weighted: torch.Tensor  # [M, ..., n]  λ_{i,m} r_{i,m}
    total: torch.Tensor  # [M, ...]  the predicted team reward r̂_tot,m
    weights: torch.Tensor  # [M, ..., n]  λ_{i,m}
    rewards: torch.Tensor  # [M, ..., n]  r_{i,m} = f_m(o_i, a_i), before weighting


class RewardDecomposition(nn.Module):
    """M reward-decomposition networks in one module (module docstring).

    ``forward(obs [..., n, d], actions [..., n, a], state [..., S])`` -> :class:`Decomposition`; ``actions``
    are one-hot (discrete) or the action vectors (continuous).
    """

    def __init__(self, members: int, obs_dim: int, action_dim: int, state_dim: int, n_agents: int,
                 reward_hidden: int = 64, attention_hidden: int = 64, weighting: str = "attention"):
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {weighting!r}; known: {', '.join(WEIGHTINGS)}")
        if members < 1:
            raise ValueError(f"RewardDecomposition needs members >= 1, got {members}")
        self.members, self.weighting, self.n_agents = members, weighting, n_agents
        pair = obs_dim + action_dim
        self.reward = EnsembleMLP(members, pair, reward_hidden, 1, n_layers=3)
        if weighting == "attention":
            self.state_embed = EnsembleMLP(members, state_dim, attention_hidden, attention_hidden)
            self.pair_embed = EnsembleMLP(members, pair, attention_hidden, attention_hidden)
            self.query = EnsembleLinear(members, attention_hidden, attention_hidden, bias=False, std=None)
            self.key = EnsembleLinear(members, attention_hidden, attention_hidden, bias=False, std=None)
        elif weighting == "monotonic":
            self.mixers = nn.ModuleList(QMixer(n_agents, state_dim, embed_dim=attention_hidden, hypernet_layers=2,
                                               hypernet_hidden=attention_hidden) for _ in range(members))

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, state: torch.Tensor) -> Decomposition:
        pair = torch.cat([obs, actions.to(obs.dtype)], dim=-1).unsqueeze(0)  # [1, ..., n, d + a], shared by members
        rewards = self.reward(pair).squeeze(-1)  # [M, ..., n]
        if self.weighting == "monotonic":
            totals, weights = [], []
            for member, mixer in enumerate(self.mixers):
                totals.append(mixer(rewards[member], state).squeeze(-1))  # [...]
                weights.append(mixer.agent_weights(rewards[member], state))  # [..., n]  ∂r_tot/∂r_i
            weights = torch.stack(weights)
            return Decomposition(weights * rewards, torch.stack(totals), weights, rewards)
        if self.weighting == "uniform":
            weights = torch.ones_like(rewards)
        else:
            query = self.query(self.state_embed(state.unsqueeze(0)))  # [M, ..., D]
            keys = self.key(self.pair_embed(pair))  # [M, ..., n, D]
            scores = torch.matmul(keys, query.unsqueeze(-1)).squeeze(-1)  # [M, ..., n]  (W_q e_s)ᵀ (W_k e_i)
            weights = torch.softmax(scores, dim=-1)  # Eq. 1: over the agents
        weighted = weights * rewards
        return Decomposition(weighted, weighted.sum(dim=-1), weights, rewards)  # Eq. 2
