"""Recurrent actor and critic networks of the PPO family (IPPO, MAPPO), all agents in one module.

Architecture (Yu et al., *The Surprising Effectiveness of PPO in Cooperative Multi-Agent Games*, and their
public code; Wang et al., *DM²*, App. C: "two fully connected layers, followed by an RNN (GRU) layer; each
layer has 64 neurons with ReLU"): a :class:`Trunk` -- LayerNorm of the input, ``fc_layers`` fully
connected layers with ReLU, then a GRU cell followed by LayerNorm (or no GRU: a feed-forward trunk) --
and a linear output. Weights are orthogonal (gain √2 in the trunk, 0.01 for the policy's output, 1 for
the value's), biases zero.

Every layer holds ``G`` weight sets (:class:`~offmarl.nets.agents.GroupLinear`): ``G = n`` gives each agent
its own network (no parameter sharing: IPPO, DM²), ``G = 1`` one network for all agents, whose input then
carries the one-hot agent id (MAPPO). Either way agent i's output depends only on agent i's input, and all
agents run in one batched call.

Shapes: ``x [..., n, in]``, hidden ``h [..., n, H]``. :meth:`Trunk.sequence` runs ``T`` steps
``[T, B, n, in]`` from ``h0 [B, n, H]``, zeroing the hidden state where ``starts [T, B]`` marks an episode's
first step.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from offmarl.nets.action_head import mask_logits
from offmarl.nets.agents import GroupGRUCell, GroupLinear


def orthogonal_(layer: GroupLinear, gain: float) -> GroupLinear:
    """Orthogonal weights of each group (scaled by ``gain``) and zero biases, in place."""
    with torch.no_grad():
        for g in range(layer.groups):
            nn.init.orthogonal_(layer.weight[g], gain=gain)
        layer.bias.zero_()
    return layer


class GroupLayerNorm(nn.Module):
    """LayerNorm over the last axis with ``G`` sets of gain and bias along the agent axis."""

    def __init__(self, groups: int, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(groups, dim))
        self.bias = nn.Parameter(torch.zeros(groups, dim))
        self.eps = eps

    def forward(self, x: torch.Tensor, group: int | None = None) -> torch.Tensor:
        x = F.layer_norm(x, x.shape[-1:], eps=self.eps)
        if group is not None:
            g = 0 if self.weight.shape[0] == 1 else group
            return x * self.weight[g] + self.bias[g]
        return x * self.weight + self.bias  # [G, d] broadcasts over [..., n, d] (G = 1 or n)


class Trunk(nn.Module):
    """Input LayerNorm → ``fc_layers`` × (Linear → ReLU) → [GRU → LayerNorm] (module docstring)."""

    def __init__(self, groups: int, in_dim: int, hidden: int, fc_layers: int, recurrent: bool):
        super().__init__()
        if fc_layers < 1:
            raise ValueError(f"a trunk needs fc_layers >= 1, got {fc_layers}")
        self.hidden, self.recurrent = hidden, recurrent
        self.input_norm = GroupLayerNorm(groups, in_dim)
        widths = [in_dim] + [hidden] * fc_layers
        self.fcs = nn.ModuleList(orthogonal_(GroupLinear(groups, a, b), math.sqrt(2.0))
                                 for a, b in zip(widths[:-1], widths[1:]))
        self.rnn = GroupGRUCell(groups, hidden, hidden) if recurrent else None
        self.rnn_norm = GroupLayerNorm(groups, hidden) if recurrent else None
        if self.rnn is not None:
            orthogonal_(self.rnn.input, 1.0)
            orthogonal_(self.rnn.recurrent, 1.0)

    def encode(self, x: torch.Tensor, group: int | None = None) -> torch.Tensor:
        x = self.input_norm(x, group)
        for fc in self.fcs:
            x = F.relu(fc(x, group))
        return x

    def step(self, x: torch.Tensor, h: torch.Tensor | None, group: int | None = None
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One step: ``x [..., n, in]``, ``h [..., n, H]`` (None: zeros) → features, next hidden."""
        f = self.encode(x, group)
        if self.rnn is None:
            return f, None
        h = self.rnn(f, torch.zeros_like(f) if h is None else h, group)
        return self.rnn_norm(h, group), h

    def sequence(self, x: torch.Tensor, h0: torch.Tensor | None, starts: torch.Tensor) -> torch.Tensor:
        """``x [T, B, n, in]`` from ``h0 [B, n, H]``; the hidden state is zeroed where ``starts [T, B]``."""
        f = self.encode(x)  # [T, B, n, H]: the feed-forward part of every step at once
        if self.rnn is None:
            return f
        h = torch.zeros_like(f[0]) if h0 is None else h0
        keep = (~starts).to(f.dtype)[..., None, None].unbind(0)  # T x [B, 1, 1]
        # every step's input projection in one call; unbind, not [t]: indexing step t would make the backward
        # zero-fill a whole [T, ...] gradient for every step
        projected = self.rnn.input(f).unbind(0)  # T x [B, n, 3H]
        out = []
        for x_t, keep_t in zip(projected, keep):  # the recurrence is sequential in time
            h = self.rnn(x_t, h * keep_t, projected=True)
            out.append(h)
        return self.rnn_norm(torch.stack(out))


class PolicyHead(nn.Module):
    """The action distribution of each agent from its trunk features ``[..., n, H]``.

    Discrete: a categorical over ``A`` logits with unavailable actions masked. Continuous: a diagonal
    Gaussian with a learned mean and a state-independent log standard deviation per agent group (0 at
    the start: σ = 1), as MAPPO's code; the sampled action is clipped to the action Box by the caller
    before the env sees it, its log-probability is the unclipped sample's.
    """

    def __init__(self, groups: int, hidden: int, n_actions: int | None = None, act_dim: int | None = None):
        super().__init__()
        self.discrete = n_actions is not None
        self.out = orthogonal_(GroupLinear(groups, hidden, n_actions if self.discrete else act_dim), 0.01)
        self.log_std = None if self.discrete else nn.Parameter(torch.zeros(groups, act_dim))

    def _dist(self, features: torch.Tensor, avail: torch.Tensor | None, group: int | None):
        out = self.out(features, group)
        if self.discrete:
            return action_distribution(out, avail)
        log_std = self.log_std if group is None else self.log_std[0 if self.log_std.shape[0] == 1 else group]
        return action_distribution(out, None, log_std)

    def sample(self, features: torch.Tensor, avail: torch.Tensor | None, generator: torch.Generator,
               group: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A sampled action ``[..., n]`` (int64) or ``[..., n, act_dim]`` and its log-probability ``[..., n]``
        (``group``: one agent group's features ``[..., H]``, its action ``[...]`` or ``[..., act_dim]``)."""
        return sample_action(self._dist(features, avail, group), generator)

    def evaluate(self, features: torch.Tensor, actions: torch.Tensor, avail: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability and entropy ``[..., n]`` of the given actions."""
        return log_prob_and_entropy(self._dist(features, avail, None), actions)

    def greedy(self, features: torch.Tensor, avail: torch.Tensor | None, group: int | None = None) -> torch.Tensor:
        """The most likely action (argmax over available actions, or the Gaussian's mean)."""
        out = self.out(features, group)
        return mask_logits(out, avail).argmax(dim=-1) if self.discrete else out


def action_distribution(out: torch.Tensor, avail: torch.Tensor | None, log_std: torch.Tensor | None = None
                        ) -> torch.distributions.Distribution:
    """The policy's distribution from its output ``out [..., A]``: a categorical over logits with unavailable actions
    masked (``log_std`` None), or a diagonal Gaussian with mean ``out [..., act_dim]`` and standard deviation
    ``exp(log_std)`` (broadcast to the mean)."""
    if log_std is None:
        return torch.distributions.Categorical(logits=mask_logits(out, avail))
    return torch.distributions.Normal(out, log_std.exp().expand_as(out))


def sample_action(dist: torch.distributions.Distribution, generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """An action drawn from ``dist`` (:func:`action_distribution`) with ``generator`` -- ``[...]`` int64 or
    ``[..., act_dim]`` -- and its log-probability ``[...]`` (summed over action dimensions)."""
    if isinstance(dist, torch.distributions.Categorical):
        probs = dist.probs.reshape(-1, dist.probs.shape[-1])
        action = torch.multinomial(probs, 1, generator=generator).reshape(dist.probs.shape[:-1])
        return action, dist.log_prob(action)
    noise = torch.randn(dist.mean.shape, generator=generator, dtype=dist.mean.dtype, device=dist.mean.device)
    action = dist.mean + dist.stddev * noise
    return action, dist.log_prob(action).sum(dim=-1)


def log_prob_and_entropy(dist: torch.distributions.Distribution, actions: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability and entropy ``[...]`` of ``actions`` under ``dist`` (summed over action dimensions)."""
    if isinstance(dist, torch.distributions.Categorical):
        return dist.log_prob(actions), dist.entropy()
    return dist.log_prob(actions).sum(dim=-1), dist.entropy().sum(dim=-1)


class ValueHead(nn.Module):
    """One value per agent ``[..., n]`` from trunk features ``[..., n, H]``."""

    def __init__(self, groups: int, hidden: int):
        super().__init__()
        self.out = orthogonal_(GroupLinear(groups, hidden, 1), 1.0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(features).squeeze(-1)


def with_agent_ids(x: torch.Tensor, n_agents: int) -> torch.Tensor:
    """``x [..., n, d]`` with each agent's one-hot id appended → ``[..., n, d + n]``."""
    ids = torch.eye(n_agents, dtype=x.dtype, device=x.device)
    return torch.cat([x, ids.expand(*x.shape[:-1], n_agents)], dim=-1)
