"""Multi-agent batch-constrained Q-learning with a mixer (``ma_bcq``): SIT's centralized "MABCQ" baseline.

SIT (Tian et al.) App. B, Eq. 12 (ζ = 0.3 in Table 11) and Tseng et al. App. B.6 /
Table 9 ("MA-BCQ"). Fujimoto et al. 2019 (BCQ, continuous) and Fujimoto et al. 2019b
("Benchmarking batch deep RL algorithms", discrete BCQ's threshold). Not to be confused with Jiang &
Lu's fully decentralized MABCQ, which is :mod:`offmarl.algos.dec_mabcq`.
"""

from __future__ import annotations

import dataclasses

import torch

from offmarl.algos._centralized import MixedValueConfig, MixedValueLearner, Sequences, decentralized
from offmarl.algos._value import (
    bcq_allowed_actions,
    masked_argmax,
    masked_log_softmax,
    masked_max,
    masked_mean,
)
from offmarl.algos.base import register_algo
from offmarl.nets.vae import ConditionalVAE, Perturbation
from offmarl.policies.base import DecentralizedPolicy


@dataclasses.dataclass(frozen=True)
class Config(MixedValueConfig):
    """MA-BCQ, SIT Eq. 12:

        L_BCQ = E_B[( r + γ max_j Q'(τ', ã^[j]) − Q(τ, a) )²],   ã^[j] = a^[j] + ξ(τ, a^[j]),
        Q(τ, a) = f_mix(Q_1(τ_1, a_1), …; s)

    Two stages (SIT: "We first train behavior policies μ_i by behavior cloning, then the agent
    networks"): the first ``behavior_fraction · steps`` updates fit the behaviour models only, the
    rest train Q (the behaviour models frozen).

    Discrete: μ_i(a_i | τ_i) is a softmax agent network fitted by BC (cross-entropy over available
    actions). Action a_i is "unfamiliar" when μ_i(a_i|τ_i) / max_a μ_i(a|τ_i) ≤ ζ and is masked from the
    max (as are unavailable actions); there is no perturbation. The target is
        y = r + γ (1 − d) Q̂_tot(τ', (argmax_{a_i allowed} Q̂_i(τ'_i, a_i))_i, s')
    -- the per-agent maxima give the joint max because the mixer is monotonic. Execution: agent i plays
    argmax over its allowed actions of Q_i.

    Continuous: per agent a conditional VAE G_i(a_i | o_i) (BCQ's generative model, fitted in the
    first stage) and a perturbation model ξ_i(o_i, a_i) ∈ [−Φ, Φ]·(high − low)/2, Q_i(τ_i, a_i) mixed.
    Target: m candidates per agent from G_i at τ', perturbed by the target ξ̂_i, and the max over the
    product of the agents' candidate sets (= per-agent maxima through the monotonic mixer; Eq. 12's max
    over the m aligned joint candidates is a subset of it). ξ is trained to maximise
    ``Q_tot(τ, (a_i^G + ξ_i(o_i, a_i^G))_i, s)``. Execution: agent i samples m actions from G_i,
    perturbs them and plays the one with the largest Q_i (a seeded generator, so evaluation is
    repeatable). Departure: G_i and ξ_i condition on agent i's current observation, not on a recurrent
    history, also with GRU agents. BCQ's clipped double-Q (two critics, λ = 0.75) is not used: SIT's
    Eq. 12 has one mixed Q.

    Fields (beyond :class:`~offmarl.algos._centralized.MixedValueConfig`):
        zeta: ζ, the relative-probability threshold (0.3, SIT Table 11; discrete BCQ's τ = 0.3).
        behavior_fraction: share of ``steps`` spent fitting the behaviour models first (0.2; the papers
            do not give one).
        n_candidates: m, actions sampled from G_i per agent (continuous; 10, BCQ).
        phi: Φ, the perturbation range (continuous; 0.05, BCQ).
        latent_dim: the VAE's latent width (None: 2 · act_dim, BCQ's reference code).
    """

    zeta: float = 0.3
    behavior_fraction: float = 0.2
    n_candidates: int = 10
    phi: float = 0.05
    latent_dim: int | None = None


@register_algo
class MABCQ(MixedValueLearner):
    """SIT's MABCQ baseline (see :class:`Config`)."""

    name = "ma_bcq"
    Config = Config

    def __init__(self, spec, config, device="cpu"):
        super().__init__(spec, config, device)
        if not 0.0 <= self.config.zeta < 1.0:
            raise ValueError(f"ma_bcq: zeta must lie in [0, 1), got {self.config.zeta}")
        if not 0.0 <= self.config.behavior_fraction < 1.0:
            raise ValueError(f"ma_bcq: behavior_fraction must lie in [0, 1), got {self.config.behavior_fraction}")

    # ---- stages ------------------------------------------------------------------------------------
    def stage_fractions(self) -> tuple[tuple[str, float], ...]:
        fraction = self.config.behavior_fraction
        return (("behavior", fraction), ("main", 1.0 - fraction)) if fraction > 0 else (("main", 1.0),)

    def build(self) -> None:
        c, spec = self.config, self.spec
        if spec.discrete:
            self.nets["critic"] = self.agent_network(spec.n_actions)
            self.nets["behavior"] = self.agent_network(spec.n_actions)
            self.nets["mixer"] = self.mixer_network()
            self.add_target("critic"), self.add_target("mixer")
        else:
            low, high = spec.action_space.low, spec.action_space.high
            self.nets["critic"] = self.agent_network(1, action_in=spec.act_dim)
            self.nets["mixer"] = self.mixer_network()
            self.nets["behavior"] = ConditionalVAE(spec.obs_dim, c.latent_dim or 2 * spec.act_dim, c.hidden, 3,
                                                   groups=self.n, low=low, high=high)
            self.nets["perturb"] = Perturbation(spec.obs_dim, c.hidden, low, high, c.phi, groups=self.n)
            for name in ("critic", "mixer", "perturb"):
                self.add_target(name)
            self.optims["perturb"] = self.optimizer([self.nets["perturb"]])
        self.optims["critic"] = self.optimizer([self.nets["critic"], self.nets["mixer"]])
        self.optims["behavior"] = self.optimizer([self.nets["behavior"]])

    # ---- updates -----------------------------------------------------------------------------------
    def train_step(self, seq: Sequences) -> dict[str, float]:
        return self._behavior_step(seq) if self.stage == "behavior" else super().train_step(seq)

    def _behavior_step(self, seq: Sequences) -> dict[str, float]:
        """Fit μ_i by cross-entropy over available actions (discrete) or the VAE G_i (continuous)."""
        obs = seq.obs[:, :-1]
        if self.spec.discrete:
            logits = self.nets["behavior"](obs)  # [B, L, n, A]
            log_p = masked_log_softmax(logits, seq.avail_now)
            loss = masked_mean(-log_p.gather(-1, seq.actions.unsqueeze(-1)).squeeze(-1), seq.mask.unsqueeze(-1))
        else:
            per_sample, _ = self.nets["behavior"].loss(obs, seq.actions)  # [B, L, n]
            loss = masked_mean(per_sample, seq.mask.unsqueeze(-1))
        self.optims["behavior"].minimize(loss)
        return {"behavior_loss": loss.item()}

    def next_agent_values(self, seq: Sequences, f_next: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Discrete: the target critic's max over each agent's allowed actions (ζ filter of μ_i);
        continuous: the max over m perturbed candidates of G_i at τ' (module docstring)."""
        nets = self.nets
        target = nets["target_critic"]
        f_next_target = target.features(seq.obs)[:, 1:]  # [B, L, n, H]
        if self.spec.discrete:
            allowed = bcq_allowed_actions(nets["behavior"](seq.obs)[:, 1:], seq.avail_next, self.config.zeta)
            return masked_max(target.head(f_next_target), allowed)[0], None  # [B, L, n]
        obs_next = seq.obs[:, 1:].unsqueeze(2).expand(-1, -1, self.config.n_candidates, -1, -1)  # [B, L, m, n, d]
        cands = nets["target_perturb"](obs_next, nets["behavior"].decode(obs_next))  # [B, L, m, n, act]
        q_cands = target.head(f_next_target.unsqueeze(2), cands).squeeze(-1)  # [B, L, m, n]
        return q_cands.max(dim=2).values, None

    def policy_step(self, seq: Sequences, f_now: torch.Tensor) -> dict[str, float]:
        """Continuous: ξ ascends Q_tot at perturbed G_i samples (BCQ's perturbation model)."""
        if self.spec.discrete:
            return {}
        nets = self.nets
        obs = seq.obs[:, :-1]
        with torch.no_grad():
            sampled = nets["behavior"].decode(obs)  # [B, L, n, act]
        q_pert = nets["critic"].head(f_now, nets["perturb"](obs, sampled)).squeeze(-1)  # [B, L, n]
        perturb_loss = -masked_mean(nets["mixer"](q_pert, seq.state_now).squeeze(-1), seq.mask)
        self.optims["perturb"].minimize(perturb_loss)
        return {"perturb_loss": perturb_loss.item()}

    # ---- execution ---------------------------------------------------------------------------------
    def policy_nets(self) -> tuple[str, ...]:
        return ("critic", "behavior") if self.spec.discrete else ("critic", "behavior", "perturb")

    def policies(self) -> DecentralizedPolicy:
        nets, c = self.nets, self.config
        if self.spec.discrete:
            q, behavior = nets["critic"], nets["behavior"]

            def make_choose(i: int):
                def choose(f, obs, avail):
                    allowed = bcq_allowed_actions(behavior.head(f[1], group=i), avail, c.zeta)
                    return masked_argmax(q.head(f[0], group=i), allowed)
                return choose
            return decentralized(self.n, [q, behavior], make_choose, self.device)

        critic, vae, perturb = nets["critic"], nets["behavior"], nets["perturb"]
        generator = torch.Generator(device=self.device).manual_seed(0)

        def make_choose_continuous(i: int):
            def choose(f, obs, avail):
                cond = obs.unsqueeze(1).expand(-1, c.n_candidates, -1)  # [B, m, d]
                cands = perturb(cond, vae.decode(cond, generator=generator, group=i), group=i)  # [B, m, act]
                q_c = critic.head(f[0].unsqueeze(1), cands, group=i).squeeze(-1)  # [B, m]
                return cands.gather(1, q_c.argmax(dim=1)[:, None, None].expand(-1, 1, cands.shape[-1])).squeeze(1)
            return choose
        return decentralized(self.n, [critic], make_choose_continuous, self.device)
