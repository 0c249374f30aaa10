"""Multi-agent Implicit Constraint Q-learning (``ma_icq``): a mixed critic evaluated only at dataset
actions and per-agent actors fitted by exponentially weighted behaviour cloning.

SIT (Tian et al.) App. B, Eq. 14 and the actor loss above it (β_ICQ = 0.1,
λ_ICQ = 0.8, critic lr 1e-4 in Table 11) and Tseng et al. App. B.5 / Table 8. Yang et
al. 2021 (ICQ).
"""

from __future__ import annotations

import dataclasses

import torch

from offmarl.algos._centralized import MixedValueConfig, MixedValueLearner, Sequences, decentralized
from offmarl.algos._value import (
    batch_softmax_weights,
    lambda_return_targets,
    masked_argmax,
    masked_log_softmax,
    masked_mean,
)
from offmarl.algos.base import register_algo
from offmarl.nets.action_head import LogStd
from offmarl.policies.base import DecentralizedPolicy


@dataclasses.dataclass(frozen=True)
class Config(MixedValueConfig):
    """MA-ICQ (SIT App. B):

        L_actor(θ_i) = E_{τ_i, a_i ~ B}[ −(1/Z_i) exp(w_i Q_i(τ_i, a_i) / β_ICQ) log π_i(a_i | τ_i) ]
        L_critic     = E_B[ Σ_t (γλ)^t ( r + γ (exp(Q̂(τ', a')/β_ICQ) / Z) Q̂(τ', a') − Q(τ, a) )² ]   (Eq. 14)

    with ``Q(τ, a) = f_mix(Q_1(τ_1, a_1), …; s)`` and ``a'`` the dataset's NEXT joint action, so the
    critic never queries an action outside the data (the "implicit constraint").

    Z, Z_i: normalised within the batch -- ``w = N · softmax(x)`` over the N valid (episode, step)
    entries (``_value.batch_softmax_weights``), so the weights average 1; the actor's Z_i per agent.
    The weights are constants (no gradient). ``w_i = ∂Q_tot/∂Q_i`` (the linear mixer's weight; the local
    slope of the QMIX mixer of the ``tseng`` preset).

    Departure (state baselines inside the exponent). In ICQ (Yang et al. 2021) the normaliser belongs
    to the state, ``Z(τ') = E_{a' ~ μ}[exp(Q(τ', a')/β)]``, so any function of τ' cancels between the
    numerator and Z(τ'). A batch estimate of Z, however, compares exponents across different states:
    with β = 0.1 and values that differ by a few units between states, ``N · softmax(Q/β)`` puts
    weight ≈ N on one sample and ≈ 0 on the rest, and the critic diverges (observed: critic loss > 200
    on equal_space). offmarl therefore takes a state baseline out before normalising over the batch:
        critic:  x = (Q̂_tot(τ', a') − Q̂_tot(τ', argmax π(τ'))) / β
        actor:   x_i = w_i (Q_i(τ_i, a_i) − V_i(τ_i)) / β,   V_i = Σ_a π_i(a|τ_i) Q_i(τ_i, a)
                 (continuous: Q_i(τ_i, mean of π_i)) -- the advantage form of ICQ's multi-agent actor.
    In the exact per-state form these are ICQ's weights unchanged.

    Critic target: Eq. 14's ``Σ_t (γλ)^t`` is the TD(λ) return over each sampled episode
    (``_value.lambda_return_targets``, pymarl's ``build_td_lambda_targets``):
        G_t = r_t + γ (1 − d_t) [ (1 − λ) V_{t+1} + λ G_{t+1} ],
        V_{t+1} = (exp(Q̂_tot(τ_{t+1}, a_{t+1})/β)/Z) Q̂_tot(τ_{t+1}, a_{t+1})
    and L_critic = E[(Q_tot(τ_t, a_t) − G_t)²]. Where the dataset has no next action (the last step of
    a time-limit-truncated episode, or of a cropped window) V_{t+1} = Q̂_tot(τ_{t+1}, argmax π(τ_{t+1}))
    with weight 1. ma_icq therefore always samples sequences: ``batch_size`` counts them. ``sit``: 32
    whole episodes (pymarl's episode batches). ``tseng``: 128 windows of ``seq_len = 8`` steps.
    Departure: Tseng's Table 8 gives batch 128 without a unit; 128 whole episodes (up to 100 steps on
    Grid-World) cost ~100× the other baselines' 128 transitions per update on a CPU, and with
    λ = 0.8 the λ-return puts 83 % of its weight (1 − λ⁸) on returns of at most 8 steps.

    Discrete: Q_i(τ_i, ·) over actions, π_i a softmax over available actions; execution: argmax π_i.
    Continuous: critics Q_i(τ_i, a_i) (action at the head), π_i a Gaussian with mean squashed into the
    Box and a state-independent log-std (clamped to [-5, 2]); log π_i of the dataset action is the
    Gaussian density (no tanh correction, so every Box action has a finite log-likelihood); execution:
    the mean.

    Fields (beyond :class:`~offmarl.algos._centralized.MixedValueConfig`; ``lr`` is the actors' rate):
        beta_icq: β_ICQ (0.1, SIT Table 11).
        lambda_icq: λ of the TD(λ) return (0.8, SIT Table 11).
        critic_lr: critic and mixer learning rate (None: preset, 1e-4 in both; SIT Table 11 "Critic
            network learning rate 1e-4", Tseng Table 8 "lr 1e-4").
    """

    beta_icq: float = 0.1
    lambda_icq: float = 0.8
    critic_lr: float | None = None


@register_algo
class MAICQ(MixedValueLearner):
    """MA-ICQ (see :class:`Config`)."""

    name = "ma_icq"
    Config = Config
    progress_metric = "critic_loss"
    preset_extras = {"tseng": {"critic_lr": 1e-4, "seq_len": 8}, "sit": {"critic_lr": 1e-4}}

    def __init__(self, spec, config, device="cpu"):
        super().__init__(spec, config, device)
        if self.config.beta_icq <= 0 or not 0.0 <= self.config.lambda_icq <= 1.0:
            raise ValueError(f"ma_icq: need beta_icq > 0 and lambda_icq in [0, 1], got {self.config.beta_icq}, "
                             f"{self.config.lambda_icq}")

    @property
    def uses_episodes(self) -> bool:
        return True

    def build(self) -> None:
        discrete = self.spec.discrete
        if discrete:
            self.nets["critic"] = self.agent_network(self.spec.n_actions)
            self.nets["actor"] = self.agent_network(self.spec.n_actions)
        else:
            self.nets["critic"] = self.agent_network(1, action_in=self.spec.act_dim)
            self.nets["actor"] = self.agent_network(self.spec.act_dim)
            self.nets["log_std"] = LogStd(self.spec.act_dim)
        self.nets["mixer"] = self.mixer_network()
        self.add_target("critic"), self.add_target("mixer")
        self.optims["critic"] = self.optimizer([self.nets["critic"], self.nets["mixer"]], lr=self.config.critic_lr)
        actor_modules = [self.nets["actor"]] + ([] if discrete else [self.nets["log_std"]])
        self.optims["actor"] = self.optimizer(actor_modules)

    # ---- pieces ------------------------------------------------------------------------------------
    def _log_prob(self, raw: torch.Tensor, actions: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
        """log π_i(a_i | τ_i) ``[..., n]`` of the dataset actions."""
        if self.spec.discrete:
            return masked_log_softmax(raw, avail).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        std = self.nets["log_std"]().exp()
        return torch.distributions.Normal(self.squash(raw), std).log_prob(actions).sum(dim=-1)

    def _greedy(self, raw: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
        return masked_argmax(raw, avail) if self.spec.discrete else self.squash(raw)

    @torch.no_grad()
    def _baseline(self, features: torch.Tensor, raw: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
        """V_i(τ_i) ``[..., n]``: E_{a ~ π_i} Q_i(τ_i, a) (discrete) or Q_i(τ_i, mean of π_i) (continuous)."""
        critic = self.nets["critic"]
        if self.spec.discrete:
            return (masked_log_softmax(raw, avail).exp() * critic.head(features)).sum(dim=-1)
        return critic.head(features, self.squash(raw)).squeeze(-1)

    # ---- update ------------------------------------------------------------------------------------
    def train_step(self, seq: Sequences) -> dict[str, float]:
        c, nets = self.config, self.nets
        features = nets["critic"].features(seq.obs)  # [B, L+1, n, H]
        q_taken = self.agent_values(nets["critic"], features[:, :-1], seq.actions)  # [B, L, n]
        q_tot = nets["mixer"](q_taken, seq.state_now).squeeze(-1)  # [B, L]
        actor_raw = nets["actor"](seq.obs)  # [B, L+1, n, out]

        with torch.no_grad():
            target_features = nets["target_critic"].features(seq.obs)[:, 1:]
            mix = nets["target_mixer"]
            q_next_data = mix(self.agent_values(nets["target_critic"], target_features, seq.next_actions),
                              seq.state_next).squeeze(-1)  # [B, L] Q̂_tot(τ', a') of the dataset's next action
            a_pi = self._greedy(actor_raw[:, 1:], seq.avail_next)
            q_next_pi = mix(self.agent_values(nets["target_critic"], target_features, a_pi), seq.state_next).squeeze(-1)
            # exp(Q̂(τ', a')/β)/Z(τ'), with the τ'-only baseline Q̂(τ', π(τ')) taken out before Z is estimated
            # over the batch
            weights = batch_softmax_weights((q_next_data - q_next_pi) / c.beta_icq, seq.has_next & seq.mask)
            v_next = torch.where(seq.has_next, weights * q_next_data, q_next_pi)
            targets = lambda_return_targets(seq.rewards, seq.done, v_next, seq.has_next, c.gamma, c.lambda_icq)
        critic_loss = masked_mean((q_tot - targets).pow(2), seq.mask)
        logs = self.step_optimizer("critic", critic_loss)

        with torch.no_grad():
            w = nets["mixer"].agent_weights(q_taken.detach(), seq.state_now)  # [B, L, n]
            advantage = q_taken.detach() - self._baseline(features[:, :-1].detach(), actor_raw[:, :-1], seq.avail_now)
            actor_weights = batch_softmax_weights(w * advantage / c.beta_icq, seq.mask.unsqueeze(-1), dims=(0, 1))
        log_pi = self._log_prob(actor_raw[:, :-1], seq.actions, seq.avail_now)  # [B, L, n]
        actor_loss = masked_mean(-(actor_weights * log_pi), seq.mask.unsqueeze(-1))
        self.step_optimizer("actor", actor_loss)
        self.update_targets()
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item(), **logs,
                "q_tot": masked_mean(q_tot.detach(), seq.mask).item()}

    # ---- execution ---------------------------------------------------------------------------------
    def policy_nets(self) -> tuple[str, ...]:
        return ("actor",)  # greedy: the log-std (continuous) only shapes the training distribution

    def policies(self) -> DecentralizedPolicy:
        actor = self.nets["actor"]
        return decentralized(self.n, [actor],
                             lambda i: lambda f, o, avail: self._greedy(actor.head(f[0], group=i), avail),
                             self.device)
