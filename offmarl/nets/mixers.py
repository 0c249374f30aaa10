"""Mixing networks: a joint value ``Q_tot`` from per-agent values ``Q_i`` and the global state.

Every mixer is ``forward(agent_qs [..., n], state [..., S]) -> [..., 1]`` where the leading dimensions
of the two inputs broadcast against each other (so ``agent_qs [B, L, n, A, n]`` with ``state
[B, L, 1, 1, S]`` mixes every counterfactual joint action of a batch at once; the hypernetworks run
once per state). ``agent_weights(agent_qs, state) -> [..., n]`` is ``∂Q_tot/∂Q_i`` at ``agent_qs``
(the ``w_i`` of SIT App. B for the linear mixer; the local slope of the others), used by ICQ's actor
weights ``exp(w_i Q_i / β)``.

Mixers (registry :data:`MIXERS`, built with :func:`make_mixer`):

* ``qmix`` -- Rashid et al. 2018, Eq. (QMIX): a two-layer monotonic network whose weights come from
  hypernetworks of the state,
      h = elu(Q^T |W_1(s)| + b_1(s)),   Q_tot = h^T |W_2(s)| + V(s),
  ``W_1(s) [n, E]``, ``W_2(s) [E, 1]`` (absolute values ⇒ ``∂Q_tot/∂Q_i ≥ 0``), ``V(s)`` a two-layer
  state value. ``hypernet_layers`` = 1 (linear hypernetworks) or 2 (Linear-ReLU-Linear with
  ``hypernet_hidden`` units, pymarl's ``hypernet_layers: 2``). Tseng et al., *Offline Multi-Agent RL
  with Knowledge Distillation*, App. B.4–B.6: "mixing network ... 2-layer MLP with hidden dimension 64"
  → ``embed_dim = 64`` with two-layer hypernetworks of width 64.
* ``linear`` -- SIT (Tian et al., *Learning from Good Trajectories in Offline MARL*), App. B:
  ``Q_tot = Σ_i w_i(s) Q_i + b(s)`` with ``w_i(s) = |f_w(s)|_i ≥ 0``
  and ``b(s) = f_b(s)``; ``f_w``, ``f_b`` are two-layer MLPs of width ``hidden`` (SIT Table 11:
  "Mixer/Critic hidden dimension 32").
* ``vdn`` -- Sunehag et al. 2018: ``Q_tot = Σ_i Q_i`` (no parameters, no state).

This module imports nothing of offmarl but ``offmarl.nets.mlp``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from offmarl.nets.mlp import MLP


class QMixer(nn.Module):
    """QMIX's monotonic hypernetwork mixer (module docstring)."""

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int = 32, hypernet_layers: int = 2,
                 hypernet_hidden: int = 64):
        super().__init__()
        if hypernet_layers not in (1, 2):
            raise ValueError(f"QMixer: hypernet_layers must be 1 or 2, got {hypernet_layers}")
        if state_dim < 1:
            raise ValueError("QMixer needs a state (state_dim >= 1)")
        self.n_agents, self.embed_dim = n_agents, embed_dim
        self.hyper_w1 = MLP(state_dim, hypernet_hidden, n_agents * embed_dim, hypernet_layers)
        self.hyper_w2 = MLP(state_dim, hypernet_hidden, embed_dim, hypernet_layers)
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.value = MLP(state_dim, embed_dim, 1, 2)

    def _hyper(self, state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        lead = state.shape[:-1]
        w1 = self.hyper_w1(state).abs().view(*lead, self.n_agents, self.embed_dim)  # [..., n, E]
        b1 = self.hyper_b1(state).unsqueeze(-2)  # [..., 1, E]
        w2 = self.hyper_w2(state).abs().unsqueeze(-1)  # [..., E, 1]
        return w1, b1, w2, self.value(state)  # value [..., 1]

    def forward(self, agent_qs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, v = self._hyper(state)
        hidden = F.elu(torch.matmul(agent_qs.unsqueeze(-2), w1) + b1)  # [..., 1, E]
        return torch.matmul(hidden, w2).squeeze(-1) + v  # [..., 1]

    def agent_weights(self, agent_qs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, _ = self._hyper(state)
        pre = torch.matmul(agent_qs.unsqueeze(-2), w1) + b1  # [..., 1, E]
        slope = torch.where(pre > 0, torch.ones_like(pre), torch.exp(pre.clamp_max(0.0)))  # elu'
        return torch.matmul(w1, (slope.transpose(-1, -2) * w2)).squeeze(-1)  # [..., n]


class LinearMixer(nn.Module):
    """``Q_tot = Σ_i w_i(s) Q_i + b(s)``, ``w_i ≥ 0`` (SIT App. B's mixer of MABCQ / MACQL / ICQ)."""

    def __init__(self, n_agents: int, state_dim: int, hidden: int = 32):
        super().__init__()
        if state_dim < 1:
            raise ValueError("LinearMixer needs a state (state_dim >= 1)")
        self.n_agents = n_agents
        self.weights = MLP(state_dim, hidden, n_agents, 2)
        self.bias = MLP(state_dim, hidden, 1, 2)

    def forward(self, agent_qs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        w = self.weights(state).abs()  # [..., n]
        return (agent_qs * w).sum(dim=-1, keepdim=True) + self.bias(state)  # [..., 1]

    def agent_weights(self, agent_qs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        w = self.weights(state).abs()
        return w.expand(torch.broadcast_shapes(w.shape, agent_qs.shape))


class VDNMixer(nn.Module):
    """``Q_tot = Σ_i Q_i`` (the state is ignored)."""

    def __init__(self, n_agents: int, state_dim: int = 0):
        super().__init__()
        self.n_agents = n_agents

    def forward(self, agent_qs: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        return agent_qs.sum(dim=-1, keepdim=True)

    def agent_weights(self, agent_qs: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        return torch.ones_like(agent_qs)


MIXERS: dict[str, Callable[..., nn.Module]] = {
    "qmix": lambda n, s, hidden, hypernet_layers: QMixer(n, s, embed_dim=hidden, hypernet_layers=hypernet_layers,
                                                         hypernet_hidden=hidden),
    "linear": lambda n, s, hidden, hypernet_layers: LinearMixer(n, s, hidden),
    "vdn": lambda n, s, hidden, hypernet_layers: VDNMixer(n, s),
}


def make_mixer(name: str, n_agents: int, state_dim: int, hidden: int = 32, hypernet_layers: int = 2) -> nn.Module:
    """Mixer ``name`` (``qmix`` | ``linear`` | ``vdn``); ``hidden`` is QMIX's embedding and hypernetwork width
    or the linear mixer's MLP width."""
    if name not in MIXERS:
        raise ValueError(f"unknown mixer {name!r}; known: {', '.join(MIXERS)}")
    return MIXERS[name](n_agents, state_dim, hidden, hypernet_layers)
