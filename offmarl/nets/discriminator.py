"""Discriminators of adversarial imitation (GAIL, AIRL), every discriminator of a learner in one module.

A discriminator tells demonstration data (label 1) from the learner's own (label 0); its logit becomes a
reward (the losses and rewards are in :mod:`offmarl.algos._adversarial`). Like the agent networks
(:mod:`offmarl.nets.agents`), each holds ``G`` member-stacked networks (:class:`~offmarl.nets.agents.GroupMLP`)
evaluated in one call:

* ``G = n``: agent i's own discriminator on agent i's own input ``x [..., n, in]`` (decentralized: DM²;
  MA-GAIL / MA-AIRL "decentralized"); agent i's output depends on agent i's input and weights only;
* ``G = 1``: one network on the joint input ``x [..., 1, in]`` with one output per agent (``out = n``):
  MA-GAIL's "centralized" discriminator (Song et al.'s code), MA-AIRL's centralized variant.

Architectures: :class:`GAILDiscriminator` is an MLP ``in → hidden → ... → out``: ``hidden`` 64 and tanh in
DM² (Wang et al., App. C, "two fully connected layers with tanh activation functions"; the official code:
obs → 64 → 64 → 1), 128 and ReLU in MA-GAIL / MA-AIRL's code. :class:`AIRLDiscriminator` splits the
discriminator's function into a reward approximator and a shaping potential (Fu et al., *Learning Robust
Rewards with Adversarial Inverse Reinforcement Learning*, ICLR 2018, §5; Yu et al., *Multi-Agent
Adversarial Inverse Reinforcement Learning*, ICML 2019, §4)::

    f(s, a, s') = g(s, a) + γ (1 − d) h(s') − h(s)      (:func:`airl_f`; d = 1 where s' is terminal)

Initialisation: ``torch.nn.Linear``'s (the official codes' default), independently per member.
"""

from __future__ import annotations

import torch
from torch import nn

from offmarl.nets.agents import GroupMLP


def airl_f(g: torch.Tensor, h: torch.Tensor, h_next: torch.Tensor, terminal: torch.Tensor, gamma: float
           ) -> torch.Tensor:
    """AIRL's ``f = g + γ (1 − terminal) h(s') − h(s)`` (all ``[..., n]``): a terminal step has no next state,
    so its potential term is dropped (a time limit is not terminal: ``h`` of the observation it reached)."""
    return g + gamma * (1.0 - terminal.to(g.dtype)) * h_next - h


class GAILDiscriminator(nn.Module):
    """``G`` MLPs ``in → hidden (× layers) → out``, ``activation`` between layers: ``[..., G, in] → [..., G, out]``
    logits of "this came from the demonstrations"."""

    def __init__(self, groups: int, in_dim: int, out_dim: int, hidden: int, layers: int, activation: str):
        super().__init__()
        self.net = GroupMLP(groups, in_dim, hidden, out_dim, layers + 1, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class AIRLDiscriminator(nn.Module):
    """AIRL's reward approximator ``g`` (on the step's input, e.g. observation and action) and shaping potential
    ``h`` (on observations), each ``G`` MLPs like :class:`GAILDiscriminator`'s."""

    def __init__(self, groups: int, in_dim: int, obs_in_dim: int, out_dim: int, hidden: int, layers: int,
                 activation: str):
        super().__init__()
        self.g = GroupMLP(groups, in_dim, hidden, out_dim, layers + 1, activation)
        self.h = GroupMLP(groups, obs_in_dim, hidden, out_dim, layers + 1, activation)

    def forward(self, x: torch.Tensor, obs: torch.Tensor, next_obs: torch.Tensor, terminal: torch.Tensor,
                gamma: float) -> torch.Tensor:
        """``f [..., G, out]`` from the step input ``x [..., G, in]``, the observations ``obs``/``next_obs
        [..., G, obs_in]`` and ``terminal`` broadcastable to ``[..., G, out]``."""
        return airl_f(self.g(x), self.h(obs), self.h(next_obs), terminal, gamma)
