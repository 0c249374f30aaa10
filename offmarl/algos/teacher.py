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

Beyond the paper, ``teacher_layout: agent_tokens`` gives the teacher one token per agent per step with a
learned agent-id embedding (:mod:`offmarl.nets.decision_transformer`): agent i's head then reads agent i's
own token, so its feature f̂^i depends on agent i's inputs through that token, where the paper's joint layout
derives every agent's feature from the one shared o_t token.

Evaluated as a joint (centralized) policy: it needs every agent's observation at every step. ``distill``
trains this same class as its first stage and saves it as the artifact ``<run>/teacher/``
(``offmarl.algos.load_algo("<run>/teacher")`` returns it).

The teacher check (:meth:`Teacher.diagnose`; distill runs it when its teacher stage ends, a standalone
teacher at its last step with ``target_check``), not in the paper: on ``check_batches`` batches of the
dataset drawn with a seed of their own, the cross-entropy ``ce``, the same with every other agent's
return-to-go set to 0 (``ce_hindsight``, :class:`~offmarl.nets.decision_transformer.OthersReturnZeroed`), the
mean entropy of the action distribution ``entropy`` (ln A = uniform) and ``greedy_changed_at_target``, the
share of real positions whose greedy action changes when the returns-to-go are relabelled to the default
target (:func:`~offmarl.algos._sequence.relabel_rtg`; near 0: the teacher ignores its conditioning); in the
evaluation env, the return at each named target (``return_at_max``, ``return_at_best_joint``,
``return_at_mean``: :func:`~offmarl.algos._sequence.named_targets`) and with the others' returns-to-go
zeroed at the default target (``return_hindsight``). The last four need an evaluator; entropy and the
greedy change are for discrete actions only.

Hyperparameters: those of "Ours" (Table 10: lr 1e-4, weight decay 1e-4, batch 128); backbone as kzl.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import torch

from offmarl.algos._sequence import DTAlgorithm, DTConfig, action_loss, agent_major, named_targets, relabel_rtg
from offmarl.algos.base import register_algo
from offmarl.nets.action_head import mask_logits
from offmarl.nets.decision_transformer import CENTRALIZED_LAYOUTS, DTOutput, OthersReturnZeroed

CHECK_BATCHES = 8  # batches of the teacher check's cross-entropies


@dataclasses.dataclass(frozen=True)
class Config(DTConfig):
    """Teacher: the common DT fields (:class:`offmarl.algos._sequence.DTConfig`) over joint inputs.

    teacher_layout: ``joint`` (the paper: one token per step over all agents' concatenated inputs) or
        ``agent_tokens`` (beyond the paper: one token per agent per step with agent-id embeddings,
        block-causal attention; module docstring).
    target_check: at the last step, run the teacher check (module docstring) and log it in metrics.csv.
    """

    teacher_layout: str = "joint"


@register_algo
class Teacher(DTAlgorithm):
    """Centralized DT over all agents' concatenated (R̂, o, a) with agent-specific action heads."""

    name = "teacher"
    Config = Config
    layout = "joint"
    model_seed_key = "teacher"

    def model_layout(self, config: Config) -> str:
        if config.teacher_layout not in CENTRALIZED_LAYOUTS:
            raise ValueError(f"config teacher_layout must be one of {', '.join(CENTRALIZED_LAYOUTS)}; got "
                             f"{config.teacher_layout!r}")
        return config.teacher_layout

    @torch.no_grad()
    def outputs(self, batch: dict[str, torch.Tensor]) -> DTOutput:
        """Frozen-teacher predictions on a batch: logits/actions ``[n, B, K, *]``, features f̂ ``[n, B, K, f]``
        (evaluation mode: no dropout, no gradient)."""
        self.model.eval()
        return self.forward(self.model, batch)

    def hindsight_policies(self, target_return: float | np.ndarray | None = None):
        """The greedy joint policy with every other agent's return-to-go read as 0 for agent i's action."""
        from offmarl.policies.dt import dt_policies

        model = OthersReturnZeroed(copy.deepcopy(self.model)).eval()
        return dt_policies(model, self.head, self.target_returns(target_return), self.stats.reward_scale,
                           self.config.context_len)

    @torch.no_grad()
    def diagnose(self, evaluate: Any, batches: int = CHECK_BATCHES) -> dict[str, float]:
        """The teacher check (module docstring) -> ``{"ce", "ce_hindsight", ["entropy", "greedy_changed_at_target"],
        ["return_at_max", "return_at_best_joint", "return_at_mean", "return_hindsight"]}``."""
        was_training = self.model.training
        self.model.eval()
        hindsight = OthersReturnZeroed(self.model)
        target = torch.as_tensor(self.target_returns() * self.stats.reward_scale, dtype=torch.float32,
                                 device=self.device)  # [n] scaled default target
        sums = {"ce": 0.0, "ce_hindsight": 0.0}
        if self.head.discrete:
            sums.update(entropy=0.0, greedy_changed_at_target=0.0)
        data = self.check_batches(batches, "teacher-check")
        for batch in data:
            logits = self.forward(self.model, batch).action  # [n, B, K, A | act_dim]
            sums["ce"] += float(action_loss(self.head, logits, batch).mean())
            sums["ce_hindsight"] += float(action_loss(self.head, self.forward(hindsight, batch).action, batch).mean())
            if self.head.discrete:
                avail = agent_major(batch["avail"]) if "avail" in batch else None
                mask = batch["mask"]  # [B, K]
                log_p = torch.log_softmax(mask_logits(logits.float(), avail), dim=-1)
                entropy = -(log_p.exp() * torch.where(log_p.isfinite(), log_p, 0.0)).sum(-1)  # [n, B, K]
                sums["entropy"] += float(entropy[:, mask].mean())
                relabelled = self.forward(self.model, {**batch, "rtg": relabel_rtg(batch, target)}).action
                changed = self.head.greedy(logits, avail) != self.head.greedy(relabelled, avail)  # [n, B, K]
                sums["greedy_changed_at_target"] += float(changed[:, mask].float().mean())
        metrics = {key: value / len(data) for key, value in sums.items()}
        if evaluate is not None:
            for key, value in named_targets(self.dataset).items():
                metrics[f"return_at_{key}"] = float(evaluate(self.policies(value))["return_mean"])
            metrics["return_hindsight"] = float(evaluate(self.hindsight_policies())["return_mean"])
        self.model.train(was_training)
        return metrics

    def stage_check(self, name: str, evaluate: Any) -> dict[str, float]:
        """``target_check``: the teacher check at the last step."""
        if not self.config.target_check or name != self.schedule.names[-1]:
            return {}
        return self.diagnose(evaluate)
