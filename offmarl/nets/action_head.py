"""From a network's raw output to actions: the loss against dataset actions and the greedy action.

Discrete (``A`` actions): the output is ``A`` logits; unavailable actions get the lowest finite logit
(so they have probability ~0 yet a row never becomes all ``-inf``); the loss is the cross-entropy with
the dataset action, the greedy action the argmax.

Continuous (Box ``[low, high]``): the output ``z`` is squashed, ``a = low + (tanh(z) + 1) (high - low) / 2``,
so a prediction always lies in the Box; the loss is the squared error, averaged over action dims; the
greedy action is ``a`` itself.

Losses are returned per position (no reduction) so each caller applies its own padding mask.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def mask_logits(logits: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
    """``logits [..., A]`` with unavailable actions (``avail [..., A]`` False) set to the dtype's minimum."""
    if avail is None:
        return logits
    return logits.masked_fill(~avail.bool(), torch.finfo(logits.dtype).min)


class ActionHead(nn.Module):
    """Maps raw outputs ``[..., out_dim]`` to losses and greedy actions for one action space."""

    def __init__(self, n_actions: int | None = None, low: Any = None, high: Any = None):
        super().__init__()
        if (n_actions is None) == (low is None or high is None):
            raise ValueError("ActionHead needs either n_actions (discrete) or low and high (continuous)")
        self.discrete = n_actions is not None
        if self.discrete:
            self.out_dim = int(n_actions)
        else:
            low_t = torch.as_tensor(np.asarray(low, dtype=np.float32).reshape(-1))
            high_t = torch.as_tensor(np.asarray(high, dtype=np.float32).reshape(-1))
            if not (torch.isfinite(low_t).all() and torch.isfinite(high_t).all()):
                raise ValueError("ActionHead squashes into the action Box, which must be bounded")
            self.out_dim = int(low_t.numel())
            self.register_buffer("low", low_t, persistent=False)
            self.register_buffer("high", high_t, persistent=False)

    @classmethod
    def for_spec(cls, spec: Any) -> "ActionHead":
        """The head of an ``EnvSpec``'s action space."""
        if spec.discrete:
            return cls(n_actions=spec.n_actions)
        return cls(low=spec.action_space.low, high=spec.action_space.high)

    def squash(self, raw: torch.Tensor) -> torch.Tensor:
        return self.low + (torch.tanh(raw) + 1.0) * (0.5 * (self.high - self.low))

    def loss(self, raw: torch.Tensor, actions: torch.Tensor, avail: torch.Tensor | None = None) -> torch.Tensor:
        """Per-position loss ``[...]``: cross-entropy (``actions [...]`` int64) or squared error
        (``actions [..., act_dim]``) averaged over action dims."""
        if self.discrete:
            logits = mask_logits(raw, avail).float()
            return F.cross_entropy(logits.reshape(-1, self.out_dim), actions.reshape(-1),
                                   reduction="none").reshape(actions.shape)
        return (self.squash(raw.float()) - actions).pow(2).mean(dim=-1)

    def greedy(self, raw: torch.Tensor, avail: torch.Tensor | None = None) -> torch.Tensor:
        """The most likely action: ``[...]`` int64 (discrete) or ``[..., act_dim]`` float32 (continuous)."""
        if self.discrete:
            return mask_logits(raw.float(), avail).argmax(dim=-1)
        return self.squash(raw.float())


LOG_STD_RANGE = (-5.0, 2.0)


class LogStd(nn.Module):
    """A state-independent Gaussian log-std ``[*shape]`` (e.g. ``(act_dim,)``, or ``(n_agents, act_dim)`` for
    per-agent policies stacked on a leading axis), initialised at -1 and clamped to ``LOG_STD_RANGE``."""

    def __init__(self, *shape: int):
        super().__init__()
        self.value = nn.Parameter(torch.full(shape, -1.0))

    def forward(self) -> torch.Tensor:
        return self.value.clamp(*LOG_STD_RANGE)
