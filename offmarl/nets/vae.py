"""BCQ's conditional VAE (Fujimoto, Meger & Precup 2019, "Off-policy deep RL without exploration", §4).

``E(μ, σ | c, a)`` encodes an action ``a`` given a condition ``c`` (a state, or a state and a next
state for MABCQ's ``G²``), ``D(a | c, z)`` decodes it back. Training minimises, per sample,

    L = recon(D(c, z), a) + ½ KL(N(μ, σ²) || N(0, 1)),   z = μ + σ ε,  ε ~ N(0, 1)

with ``recon`` the squared error averaged over action dims (continuous; the decoder's output is squashed
into the action Box ``[low, high]`` with tanh) or the cross-entropy of the action (discrete; the
action enters the encoder one-hot and the decoder outputs logits), and the KL averaged over latent
dims (BCQ's reference code: ``recon + 0.5 * KL``, ``log σ`` clamped to [-4, 15]). Sampling decodes
``z ~ N(0, 1)`` clipped to [-0.5, 0.5] (BCQ's decoder default), which keeps samples near the data.

Weights are :class:`~offmarl.nets.agents.GroupLinear` groups, so one module can hold n agents' VAEs
(``groups = n``, inputs ``[..., n, ·]``) or a single one (``groups = 1``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from offmarl.nets.agents import GroupMLP


class ConditionalVAE(nn.Module):
    """Conditional VAE over actions (module docstring).

    Args:
        cond_dim: width of the condition ``c``.
        latent_dim: width of ``z`` (MABCQ Table 6: "VAE hidden space 10").
        hidden, n_layers: width and depth of the encoder and decoder MLPs.
        groups: number of independent VAEs along the agent axis.
        n_actions: discrete actions (one-hot in, logits out), or
        low, high: the bounds of a continuous action Box.
    """

    def __init__(self, cond_dim: int, latent_dim: int, hidden: int, n_layers: int = 3, groups: int = 1,
                 n_actions: int | None = None, low: Any = None, high: Any = None):
        super().__init__()
        self.discrete = n_actions is not None
        if self.discrete:
            action_dim = int(n_actions)
        else:
            low_t = torch.as_tensor(np.asarray(low, dtype=np.float32).reshape(-1))
            high_t = torch.as_tensor(np.asarray(high, dtype=np.float32).reshape(-1))
            self.register_buffer("low", low_t, persistent=False)
            self.register_buffer("high", high_t, persistent=False)
            action_dim = int(low_t.numel())
        self.action_dim, self.latent_dim = action_dim, latent_dim
        self.encoder = GroupMLP(groups, cond_dim + action_dim, hidden, 2 * latent_dim, n_layers)
        self.decoder = GroupMLP(groups, cond_dim + latent_dim, hidden, action_dim, n_layers)

    def _action_input(self, action: torch.Tensor) -> torch.Tensor:
        return F.one_hot(action, self.action_dim).to(torch.float32) if self.discrete else action

    def encode(self, cond: torch.Tensor, action: torch.Tensor, group: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ, log σ)`` of ``z`` for actions ``action`` (int64 ``[...]`` or float ``[..., act_dim]``)."""
        mu, log_std = self.encoder(torch.cat([cond, self._action_input(action)], dim=-1), group).chunk(2, dim=-1)
        return mu, log_std.clamp(-4.0, 15.0)

    def decode(self, cond: torch.Tensor, z: torch.Tensor | None = None, generator: torch.Generator | None = None,
               group: int | None = None) -> torch.Tensor:
        """An action ``[..., act_dim]`` in the Box (continuous) or logits ``[..., A]`` (discrete)."""
        if z is None:
            z = torch.randn(*cond.shape[:-1], self.latent_dim, generator=generator, device=cond.device).clamp(-0.5, 0.5)
        out = self.decoder(torch.cat([cond, z], dim=-1), group)
        if self.discrete:
            return out
        return self.low + (torch.tanh(out) + 1.0) * (0.5 * (self.high - self.low))

    def loss(self, cond: torch.Tensor, action: torch.Tensor, generator: torch.Generator | None = None,
             group: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample loss ``[...]`` and the encoder mean ``μ [..., latent]``."""
        mu, log_std = self.encode(cond, action, group)
        std = log_std.exp()
        z = mu + std * torch.randn(mu.shape, generator=generator, device=mu.device)
        out = self.decode(cond, z, group=group)
        if self.discrete:
            recon = F.cross_entropy(out.reshape(-1, self.action_dim), action.reshape(-1),
                                    reduction="none").reshape(action.shape)
        else:
            recon = (out - action).pow(2).mean(dim=-1)
        kl = -0.5 * (1.0 + 2.0 * log_std - mu.pow(2) - std.pow(2)).mean(dim=-1)
        return recon + 0.5 * kl, mu


class Perturbation(nn.Module):
    """BCQ's perturbation model ξ(c, a): ``a + Φ · (high − low)/2 · tanh(f(c, a))``, clipped to the Box.

    Fujimoto et al. 2019, §4: it adjusts an action sampled from the VAE within ``[−Φ, Φ]`` (relative to
    the half-range of the Box; BCQ's Φ = 0.05 with actions in [−1, 1]). ``groups`` as in
    :class:`ConditionalVAE`.
    """

    def __init__(self, cond_dim: int, hidden: int, low: Any, high: Any, phi: float = 0.05, n_layers: int = 3,
                 groups: int = 1):
        super().__init__()
        low_t = torch.as_tensor(np.asarray(low, dtype=np.float32).reshape(-1))
        high_t = torch.as_tensor(np.asarray(high, dtype=np.float32).reshape(-1))
        self.register_buffer("low", low_t, persistent=False)
        self.register_buffer("high", high_t, persistent=False)
        self.phi = float(phi)
        self.net = GroupMLP(groups, cond_dim + low_t.numel(), hidden, low_t.numel(), n_layers)

    def forward(self, cond: torch.Tensor, action: torch.Tensor, group: int | None = None) -> torch.Tensor:
        shift = self.phi * 0.5 * (self.high - self.low) * torch.tanh(self.net(torch.cat([cond, action], dim=-1), group))
        return torch.maximum(torch.minimum(action + shift, self.high), self.low)
