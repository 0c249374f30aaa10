"""The centralized Decision-Transformer teacher of Tseng et al. (``teacher``), trainable on its own.

Reference: Tseng et al., *Offline Multi-Agent RL with Knowledge Distillation*, §3.2 and Algorithm 1, first loop:
"a centralized teacher policy π_teacher that takes in all agents' observations, actions, and rewards
(o^{1:n}, a^{1:n}, r^{1:n}) combined via concatenation to predict all agents' actions". Tokens per step t:

    R̂_t = [R̂_t^1, ..., R̂_t^n],   o_t = [o_t^1, ..., o_t^n],   a_t = [onehot(a_t^1), ..., onehot(a_t^n)]

(per-agent returns-to-go, not one team value, so agents with their own rewards keep their own credit).
Agent i's action is predicted from the o_t token through its own MLP head ``Linear(d, f) → ReLU →
Linear(f, A)``; the head's hidden layer is agent i's teacher feature f̂_t^i, the input of the relational
distillation (``offmarl.algos.distill``). Loss: the mean over agents of each agent's action loss,

    L_centralized = (1/n) sum_i E_t [ CE(head_i(h_t), a_t^i) ]          (MSE for continuous actions).

Evaluated as a joint (centralized) policy: it needs every agent's observation at every step. ``distill``
trains this same class as its first stage and saves it as the artifact ``<run>/teacher/``
(``offmarl.algos.load_algo("<run>/teacher")`` returns it).

Hyperparameters: those of "Ours" (Table 10: lr 1e-4, weight decay 1e-4, batch 128); backbone as kzl.
"""

from __future__ import annotations

import dataclasses

import torch

from offmarl.algos._sequence import DTAlgorithm, DTConfig
from offmarl.algos.base import register_algo
from offmarl.nets.decision_transformer import DTOutput


@dataclasses.dataclass(frozen=True)
class Config(DTConfig):
    """Teacher: the common DT fields (:class:`offmarl.algos._sequence.DTConfig`) over joint inputs."""


@register_algo
class Teacher(DTAlgorithm):
    """Centralized DT over all agents' concatenated (R̂, o, a) with agent-specific action heads."""

    name = "teacher"
    Config = Config
    layout = "joint"

    @torch.no_grad()
    def outputs(self, batch: dict[str, torch.Tensor]) -> DTOutput:
        """Frozen-teacher predictions on a batch: logits/actions ``[n, B, K, *]``, features f̂ ``[n, B, K, f]``
        (evaluation mode: no dropout, no gradient)."""
        self.model.eval()
        return self.forward(self.model, batch)
