"""Offline QMIX (``qmix``): value factorisation trained on a fixed dataset with no offline constraint.

SIT's unconstrained baseline (Tian et al. 2023, §5 "QMIX (discrete), FacMAC (continuous)";
hyper-parameters Table 11 → ``--preset sit``); ``--preset tseng`` gives Tseng's architecture
(App. B.4–B.6) for comparison with the other Tseng baselines. Rashid et al. 2018 (QMIX), Peng et al.
2021 (FACMAC). :mod:`offmarl.algos.ma_cql` is this learner plus CQL's conservative term.
"""

from __future__ import annotations

import dataclasses

import torch

from offmarl.algos._centralized import MixedValueConfig, MixedValueLearner, Sequences, decentralized
from offmarl.algos._value import masked_argmax, masked_mean, tree_backup_targets
from offmarl.algos.base import register_algo
from offmarl.policies.base import DecentralizedPolicy


@dataclasses.dataclass(frozen=True)
class Config(MixedValueConfig):
    """Offline QMIX / FACMAC.

    Discrete (Rashid et al. 2018, Eq. 4 with a fixed dataset):
        Q_tot(τ, a, s) = f_mix(Q_1(τ_1, a_1), …, Q_n(τ_n, a_n); s),   ∂Q_tot/∂Q_i ≥ 0 (qmix, linear, vdn)
        y = r + γ (1 − d) Q̂_tot(τ', argmax_{a'} Q(τ', a'), s')      (double Q: the online agents choose,
                                                                     the target networks evaluate)
        L = E_B[(Q_tot(τ, a, s) − y)²]
    The per-agent argmax is the joint argmax because every mixer is monotonic; unavailable actions are
    masked from it. Execution: agent i plays argmax_{a_i available} Q_i(τ_i, a_i).

    Continuous (FACMAC, Peng et al. 2021, without its centralised policy-gradient extras): critics
    Q_i(τ_i, a_i) mixed as above, deterministic actors a_i = π_i(τ_i) squashed into the action Box,
        y = r + γ (1 − d) Q̂_tot(τ', π̂(τ'), s'),     L_critic = E[(Q_tot(τ, a, s) − y)²],
        L_actor = −E[Q_tot(τ, π(τ), s)]               (every agent's action from its own actor).
    Execution: a_i = π_i(τ_i).

    Fields (beyond :class:`~offmarl.algos._centralized.MixedValueConfig`):
        double_q: online networks choose the next action, targets evaluate it (pymarl's default, True).
        actor_lr: learning rate of the continuous actors (None: ``lr``).
    """

    double_q: bool = True
    actor_lr: float | None = None


@register_algo
class QMIX(MixedValueLearner):
    """Offline QMIX (discrete) / FACMAC-style mixed critic with deterministic actors (continuous)."""

    name = "qmix"
    Config = Config

    @property
    def n_step(self) -> int:
        return 1

    # ---- networks ----------------------------------------------------------------------------------
    def build(self) -> None:
        if self.spec.discrete:
            self.nets["critic"] = self.agent_network(self.spec.n_actions)
            self.nets["mixer"] = self.mixer_network()
            self.add_target("critic"), self.add_target("mixer")
        else:
            act_dim = self.spec.act_dim
            self.nets["critic"] = self.agent_network(1, action_in=act_dim)
            self.nets["mixer"] = self.mixer_network()
            self.nets["actor"] = self.agent_network(act_dim)
            for name in ("critic", "mixer", "actor"):
                self.add_target(name)
            self.optims["actor"] = self.optimizer([self.nets["actor"]], lr=self.config.actor_lr or self.config.lr)
        self.optims["critic"] = self.optimizer([self.nets["critic"], self.nets["mixer"]])

    # ---- the hooks of the mixed TD step --------------------------------------------------------------
    def next_agent_values(self, seq: Sequences, f_next: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Discrete: the greedy next actions (chosen by the online critic with double Q), valued by the
        target critic; continuous: the target actors' actions, valued by the target critic."""
        return self._next_values(seq, f_next, self.nets["target_critic"].features(seq.obs)[:, 1:])

    def _next_values(self, seq: Sequences, f_next: torch.Tensor, f_next_target: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        target = self.nets["target_critic"]
        if self.spec.discrete:
            q_next = target.head(f_next_target)  # [B, L, n, A]
            chooser = self.nets["critic"].head(f_next) if self.config.double_q else q_next
            a_next = masked_argmax(chooser, seq.avail_next)  # [B, L, n]
        else:
            a_next = self.squash(self.nets["target_actor"](seq.obs)[:, 1:])  # [B, L, n, act]
        return self.agent_values(target, f_next_target, a_next), a_next

    def td_targets(self, seq: Sequences, f_next: torch.Tensor) -> torch.Tensor:
        """One-step targets, or n-step Tree-Backup targets under the greedy policy (``n_step > 1``, discrete)."""
        if self.n_step == 1:
            return super().td_targets(seq, f_next)
        mix, target = self.nets["target_mixer"], self.nets["target_critic"]
        f_next_target = target.features(seq.obs)[:, 1:]  # [B, L, n, H]
        v_agents, greedy = self._next_values(seq, f_next, f_next_target)
        v_next = mix(v_agents, seq.state_next).squeeze(-1)  # [B, L]
        q_next_data = mix(self.agent_values(target, f_next_target, seq.next_actions), seq.state_next).squeeze(-1)
        pi_next = ((greedy == seq.next_actions).all(dim=-1) & seq.has_next).float()  # greedy π(a_{t+1}|τ_{t+1})
        return tree_backup_targets(seq.rewards, seq.done, v_next, q_next_data, pi_next, self.config.gamma, self.n_step)

    def policy_step(self, seq: Sequences, f_now: torch.Tensor) -> dict[str, float]:
        """Continuous: the deterministic actors ascend Q_tot through the (just updated) mixer."""
        if self.spec.discrete:
            return {}
        nets = self.nets
        a_pi = self.squash(nets["actor"](seq.obs[:, :-1]))  # [B, L, n, act]
        q_pi = nets["critic"].head(f_now, a_pi).squeeze(-1)  # [B, L, n]
        actor_loss = -masked_mean(nets["mixer"](q_pi, seq.state_now).squeeze(-1), seq.mask)
        self.optims["actor"].minimize(actor_loss)
        return {"actor_loss": actor_loss.item()}

    # ---- execution ---------------------------------------------------------------------------------
    def policies(self) -> DecentralizedPolicy:
        if self.spec.discrete:
            q = self.nets["critic"]
            return decentralized(self.n, [q], lambda i: lambda f, o, avail: masked_argmax(q.head(f[0], group=i), avail),
                                 self.device)
        actor = self.nets["actor"]
        return decentralized(self.n, [actor], lambda i: lambda f, o, avail: self.squash(actor.head(f[0], group=i)),
                             self.device)
