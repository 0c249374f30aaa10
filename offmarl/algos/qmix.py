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
from offmarl.algos._value import masked_argmax, masked_mean, one_step_targets, tree_backup_targets
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
            self.nets["q"] = self.agent_network(self.spec.n_actions)
            self.nets["mixer"] = self.mixer_network()
            self.add_target("q"), self.add_target("mixer")
            self.optims["q"] = self.optimizer([self.nets["q"], self.nets["mixer"]])
        else:
            act_dim = self.spec.act_dim
            self.nets["critic"] = self.agent_network(1, action_in=act_dim)
            self.nets["mixer"] = self.mixer_network()
            self.nets["actor"] = self.agent_network(act_dim)
            for name in ("critic", "mixer", "actor"):
                self.add_target(name)
            self.optims["critic"] = self.optimizer([self.nets["critic"], self.nets["mixer"]])
            self.optims["actor"] = self.optimizer([self.nets["actor"]], lr=self.config.actor_lr or self.config.lr)

    # ---- updates -----------------------------------------------------------------------------------
    def train_step(self, seq: Sequences) -> dict[str, float]:
        return self._discrete_step(seq) if self.spec.discrete else self._continuous_step(seq)

    def conservative_loss(self, seq: Sequences, q_now: torch.Tensor, q_taken: torch.Tensor, q_tot: torch.Tensor,
                          features: torch.Tensor | None = None) -> tuple[torch.Tensor | None, dict[str, float]]:
        """A regulariser added to the critic loss (None here; CQL's term in ma_cql)."""
        return None, {}

    def _discrete_step(self, seq: Sequences) -> dict[str, float]:
        nets = self.nets
        q_ext = nets["q"](seq.obs)  # [B, L+1, n, A]
        q_now = q_ext[:, :-1]
        q_taken = q_now.gather(-1, seq.actions.unsqueeze(-1)).squeeze(-1)  # [B, L, n]
        q_tot = nets["mixer"](q_taken, seq.state_now).squeeze(-1)  # [B, L]
        with torch.no_grad():
            y = self.discrete_targets(seq, q_ext[:, 1:])
        td = masked_mean((q_tot - y).pow(2), seq.mask)
        extra, logs = self.conservative_loss(seq, q_now, q_taken, q_tot)
        loss = td if extra is None else td + extra
        grad_norm = self.step_optimizer("q", loss)
        self.update_targets("q", "mixer")
        return {"td_loss": td.item(), **logs, "q_tot": masked_mean(q_tot.detach(), seq.mask).item(),
                "grad_norm": grad_norm}

    def discrete_targets(self, seq: Sequences, q_online_next: torch.Tensor) -> torch.Tensor:
        """One-step (``n_step = 1``) or n-step Tree-Backup targets ``[B, L]`` under the greedy policy."""
        q_next = self.nets["target_q"](seq.obs)[:, 1:]  # [B, L, n, A]
        chooser = q_online_next if self.config.double_q else q_next
        greedy = masked_argmax(chooser, seq.avail_next)  # [B, L, n]
        mix = self.nets["target_mixer"]
        v_next = mix(q_next.gather(-1, greedy.unsqueeze(-1)).squeeze(-1), seq.state_next).squeeze(-1)
        if self.n_step == 1:
            return one_step_targets(seq.rewards, seq.done, v_next, self.config.gamma)
        q_next_data = mix(q_next.gather(-1, seq.next_actions.unsqueeze(-1)).squeeze(-1), seq.state_next).squeeze(-1)
        pi_next = ((greedy == seq.next_actions).all(dim=-1) & seq.has_next).float()  # greedy π(a_{t+1}|τ_{t+1})
        return tree_backup_targets(seq.rewards, seq.done, v_next, q_next_data, pi_next, self.config.gamma, self.n_step)

    def _continuous_step(self, seq: Sequences) -> dict[str, float]:
        nets = self.nets
        features = nets["critic"].features(seq.obs)  # [B, L+1, n, H]
        f_now = features[:, :-1]
        q_taken = nets["critic"].head(f_now, seq.actions).squeeze(-1)  # [B, L, n]
        q_tot = nets["mixer"](q_taken, seq.state_now).squeeze(-1)  # [B, L]
        with torch.no_grad():
            a_next = self.squash(nets["target_actor"](seq.obs)[:, 1:])  # [B, L, n, act]
            target_critic = nets["target_critic"]
            q_next = target_critic.head(target_critic.features(seq.obs)[:, 1:], a_next)  # [B, L, n, 1]
            v_next = nets["target_mixer"](q_next.squeeze(-1), seq.state_next).squeeze(-1)
            y = one_step_targets(seq.rewards, seq.done, v_next, self.config.gamma)
        td = masked_mean((q_tot - y).pow(2), seq.mask)
        extra, logs = self.conservative_loss(seq, None, q_taken, q_tot, f_now)
        critic_loss = td if extra is None else td + extra
        grad_norm = self.step_optimizer("critic", critic_loss)

        a_pi = self.squash(nets["actor"](seq.obs[:, :-1]))  # [B, L, n, act]
        q_pi = nets["critic"].head(f_now.detach(), a_pi).squeeze(-1)
        actor_loss = -masked_mean(nets["mixer"](q_pi, seq.state_now).squeeze(-1), seq.mask)
        self.step_optimizer("actor", actor_loss)
        self.update_targets("critic", "mixer", "actor")
        return {"td_loss": td.item(), **logs, "actor_loss": actor_loss.item(),
                "q_tot": masked_mean(q_tot.detach(), seq.mask).item(), "grad_norm": grad_norm}

    # ---- execution ---------------------------------------------------------------------------------
    def policies(self) -> DecentralizedPolicy:
        if self.spec.discrete:
            q = self.nets["q"]
            return decentralized(self.n, [q], lambda i: lambda f, o, avail: masked_argmax(q.head(f[0], group=i), avail),
                                 self.device)
        actor = self.nets["actor"]
        return decentralized(self.n, [actor], lambda i: lambda f, o, avail: self.squash(actor.head(f[0], group=i)),
                             self.device)
