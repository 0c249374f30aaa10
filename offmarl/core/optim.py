"""The optimizers of every algorithm: one factory and one wrapper around the update step.

``make_optimizer(name, params, lr, weight_decay)``: ``adamw`` | ``adam`` | ``rmsprop`` (pymarl's α = 0.99,
ε = 1e-5), the update rules of ``torch.optim``'s defaults in their fastest form: Adam and AdamW run
``fused`` (one kernel over every parameter tensor instead of about ten small ops per tensor), RMSprop
``foreach``. A checkpoint written by an unfused optimizer resumes unfused (``load_state_dict`` restores
the saved ``fused`` flag), so a resumed run stays bit-exact.

:class:`OptimizerWrapper` is the one update step (d3rlpy's ``OptimizerWrapper`` is the model): zero the
gradients, backpropagate, clip the gradient norm -- globally, or per member for networks stacked along a
leading axis, one per agent, whose gradients must not scale each other -- warm the learning rate up
linearly, step. Its ``state_dict`` and ``load_state_dict`` copy the optimizer's state, so two live
learners never share Adam's moment tensors.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

import torch
from torch import nn

OPTIMIZERS = ("adamw", "adam", "rmsprop")


def _fusable(params: list[nn.Parameter]) -> bool:
    """torch's fused Adam kernels take floating-point tensors on a CPU or CUDA device."""
    return all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def make_optimizer(name: str, params: Iterable[nn.Parameter], lr: float, weight_decay: float = 0.0,
                   eps: float | None = None) -> torch.optim.Optimizer:
    """A ``torch.optim`` optimizer over ``params`` (module docstring); ``eps`` replaces Adam's 1e-8."""
    params = list(params)
    if not params:
        raise ValueError(f"make_optimizer({name!r}): no parameters to optimize")
    if name in ("adamw", "adam"):
        cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
        return cls(params, lr=lr, weight_decay=weight_decay, eps=1e-8 if eps is None else eps,
                   fused=_fusable(params) or None)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.99, eps=1e-5, weight_decay=weight_decay, foreach=True)
    raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")


def clip_grad_norm_per_member(parameters: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Clip the gradient of each member (leading axis ``E`` of every parameter) to norm ``max_norm``.

    One network per agent stacked on axis 0 (``offmarl.nets.ensemble``) is clipped per agent: a global
    norm would let agent j's gradient shrink agent i's step. Returns the norms before clipping ``[E]``."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(0)
    norms = torch.stack([g.flatten(1).pow(2).sum(dim=1) for g in grads]).sum(dim=0).sqrt()  # [E]
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view((-1,) + (1,) * (g.dim() - 1)))
    return norms


def warmup_factor(grad_step: int, warmup_steps: int) -> float:
    """Linear warm-up of the learning rate (kzl's Decision Transformer): ``min((grad_step + 1) / warmup_steps,
    1)``; 1 without warm-up."""
    return min((grad_step + 1) / warmup_steps, 1.0) if warmup_steps > 0 else 1.0


class OptimizerWrapper:
    """One optimizer over ``params`` and the update step around it (module docstring).

    name, lr, weight_decay, eps: as :func:`make_optimizer`.
    clip: gradient-norm clip applied before every step; 0 = none.
    per_member: clip each member of stacked per-agent parameters separately
        (:func:`clip_grad_norm_per_member`) instead of the global norm.

    :meth:`step` and :meth:`minimize` take the index of the gradient step and the length of the learning
    rate's linear warm-up (0: a constant rate), both known only to the caller's step budget.
    """

    def __init__(self, params: Iterable[nn.Parameter], name: str, lr: float, weight_decay: float = 0.0,
                 clip: float = 0.0, per_member: bool = False, eps: float | None = None):
        self.params = list(params)
        self.optimizer = make_optimizer(name, self.params, lr, weight_decay, eps)
        self.lr, self.clip_norm, self.per_member = lr, clip, per_member

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def clip_grads(self) -> float | None:
        """Clip the gradients (when ``clip > 0``); returns the global norm before clipping, None when unclipped."""
        if self.clip_norm <= 0:
            return None
        params = [p for p in self.params if p.grad is not None]
        if self.per_member:
            return float(clip_grad_norm_per_member(params, self.clip_norm).pow(2).sum().sqrt())
        return float(nn.utils.clip_grad_norm_(params, self.clip_norm))

    def step(self, grad_step: int = 0, warmup_steps: int = 0) -> None:
        """Step with the learning rate of gradient step ``grad_step`` (0-based) of a ``warmup_steps`` warm-up."""
        if warmup_steps > 0:
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr * warmup_factor(grad_step, warmup_steps)
        self.optimizer.step()

    def minimize(self, loss: torch.Tensor, grad_step: int = 0, warmup_steps: int = 0) -> float | None:
        """Zero, backpropagate ``loss``, clip, step; returns the gradient norm before clipping (None unclipped)."""
        self.zero_grad()
        loss.backward()
        norm = self.clip_grads()
        self.step(grad_step, warmup_steps)
        return norm

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.optimizer.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # torch adopts the given tensors as the moments; copy, so two live learners never share them
        self.optimizer.load_state_dict(copy.deepcopy(state))
