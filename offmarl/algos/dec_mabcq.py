"""Jiang & Lu's MABCQ, fully decentralized offline MARL (``dec_mabcq``).

Paper: Jiang & Lu, *Offline Decentralized Multi-Agent Reinforcement Learning* (arXiv:2108.01832):
§3.2 (value deviation, transition normalization), §3.3 (Eq. 1, Eq. 2, the estimators of λ_vd and
λ_tn), Algorithm 1, the baselines of §4.1 and Table 6. Named apart from SIT's centralized baseline
"MABCQ" (a BCQ with a mixer), which is :mod:`offmarl.algos.ma_bcq`.

Decentralization. Agent i's learner is built from, and only ever reads, its own dataset B_i of
``(s, a_i, r, s')``: for a per-agent file (``offmarl collect --per-agent``, the
``mabcq/equal_space/per_agent`` recipe) group i's agent-i slice (``offmarl.data.samplers.agent_slice``),
for a joint dataset every agent's slice of it. Each learner has its own networks, optimizers,
sampler and random generators (seeded from the run seed and i); nothing of agent j reaches it, and
the test suite checks that changing B_j leaves agent i's weights bit-for-bit unchanged. The learners
are updated one after the other in each step (the paper notes they could run in parallel).

What "s" is. MABCQ assumes every agent observes the state s. offmarl uses agent i's own observation
o_i (its true width ``obs_dims[i]``) as s, because execution is decentralized on observations
(``DecentralizedPolicy`` gives agent i only ``obs[:, i]``); in the matrix game the observation is the
state itself, so there this is exact. Departure elsewhere (e.g. ``equal_space``, where o_i holds the
other agents' relative positions): the "transitions" o_i → o_i' are partially observed.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from offmarl.algos._value import (
    bcq_allowed_actions,
    expected_next_value,
    masked_argmax,
    masked_log_softmax,
    masked_max,
    soft_update,
    transition_normalization_from_counts,
    transition_normalization_from_latents,
    value_deviation,
    weighted_mse,
)
from offmarl.algos.base import AlgoConfig, Algorithm, register_algo
from offmarl.core.optim import OptimizerWrapper
from offmarl.data.dataset import MultiAgentDataset
from offmarl.data.samplers import TransitionSampler, agent_slice
from offmarl.data.sources import Dataset, PerAgentDatasets
from offmarl.envs.base import EnvSpec
from offmarl.nets.action_head import ActionHead
from offmarl.nets.mlp import MLP
from offmarl.nets.vae import ConditionalVAE, Perturbation
from offmarl.policies.base import AgentPolicy, DecentralizedPolicy

TN_ESTIMATORS = ("auto", "counts", "vae")


@dataclasses.dataclass(frozen=True)
class Variant:
    """What one variant of §4.1 uses: the two importance weights, and how agent i picks its action.

    policy: ``bcq`` -- the best of G¹_i's candidates perturbed by ξ_i (discrete: the max over the actions
        the behaviour classifier allows); ``free`` -- an unconstrained actor (discrete: the max over every
        available action), i.e. DDPG / independent Q-learning; ``behavior`` -- G¹_i's own action.
    """

    value_deviation: bool
    transition_normalization: bool
    policy: str


VARIANTS: dict[str, Variant] = {
    "vd_tn": Variant(value_deviation=True, transition_normalization=True, policy="bcq"),
    "vd": Variant(value_deviation=True, transition_normalization=False, policy="bcq"),
    "tn": Variant(value_deviation=False, transition_normalization=True, policy="bcq"),
    "bcq": Variant(value_deviation=False, transition_normalization=False, policy="bcq"),
    "ddpg": Variant(value_deviation=False, transition_normalization=False, policy="free"),
    "behavior": Variant(value_deviation=False, transition_normalization=False, policy="behavior"),
}


@dataclasses.dataclass(frozen=True)
class Config(AlgoConfig):
    """MABCQ (Jiang & Lu), per agent i, on its own dataset B_i:

        Q_i:  min E_{B_i}[ λ_tn λ_vd |Q_i(s, a_i) − y_i|² ],   y_i = r + γ Q̂_i(s', π̂_i(s'))          (Eq. 1)
        ξ_i:  max E_{B_i}[ λ_tn λ_vd Q_i(s, a_i + ξ_i(s, a_i)) ]                                     (Eq. 2)
        π_i(s) = argmax_{a^j + ξ_i(s, a^j)} Q_i(s, a^j + ξ_i(s, a^j)),  {a^j ~ G¹_i(s)}_{j=1..n}       (§3.3)
        λ_vd = clip(1 + (V(s') − E V) / |E V|, 1 − ε, 1 + ε),  V(s') = Q̂_i(s', π̂_i(s')),
               E V = (Q̂_i(s, a_i) − r) / γ                     (target networks; §3.3)
        λ_tn = ρ_N(0,I)(μ¹) / ρ_N(0,I)(μ²),   μ¹ from G¹_i(s, a), μ² from G²_i(s, a, s')     (§3.3)

    (Algorithm 1: the VAEs G¹_i, G²_i are fitted on B_i first -- the first ``vae_fraction · steps``
    updates -- and stay frozen while Q_i and ξ_i train; target networks by Polyak averaging.)

    Weights. The paper's derivation turns the modified transition probabilities into importance
    weights whose normalisation c_i "will not change the expected target value". offmarl divides each
    weighted loss by the batch's sum of weights (``self_normalize``), which keeps that normalisation
    explicit and the loss scale independent of λ_tn's arbitrary constant ‖δ_S‖ (§3.3); without
    clipping (ε = inf) it also keeps early updates stable while E V ≈ 0. ``self_normalize=False`` gives
    the plain mean of Eq. 1. A terminal transition has λ_vd = 1 (``_value.value_deviation``).

    Discrete actions (the same weights on a discrete Q-learner; discrete BCQ of Fujimoto et al.
    2019b): Q_i(s, ·) over actions; G¹_i's role in the policy is played by a behaviour classifier
    μ_i(a|s) (cross-entropy), and actions with μ_i(a|s) / max_a μ_i(a|s) ≤ ζ (or unavailable) are masked
    from the max; π_i(s) = argmax over the allowed actions. λ_tn: from counts, ``1 / P̂_B(s'|s, a_i) =
    num(s, a_i) / num(s, a_i, s')`` (§3.2.2 exactly) when the next states are discrete, else from the
    VAEs G¹_i(s, a) and G²_i(s, a, s') over one-hot actions (``tn_estimator``; ``auto`` uses counts when
    every observation in B_i is integer-valued, e.g. the one-hot states of the matrix game).

    Variants (``--variant``; §4.1):
        vd_tn     the full method (default);
        vd        "MABCQ w/o λ_tn";  tn  "MABCQ w/o λ_vd";  bcq  neither (independent BCQ);
        ddpg      independent DDPG on B_i, no action constraint and no weights (discrete: independent
                  Q-learning with the max over all available actions);
        behavior  each agent acts from its G¹_i: a decoded sample (continuous; z ~ N(0, 1) clipped to
                  [−0.5, 0.5], seeded) or the classifier's most likely action (discrete).

    Logged: ``value_diff`` = mean over a fixed subset of ``value_diff_states`` dataset states of
    max_i V_i − min_i V_i, V_i = Q_i(o_i, π_i(o_i)) (Fig. 3), every ``value_diff_every`` updates (each
    agent evaluated on its own observation of the same state; for logging only, never fed back).

    Fields (defaults: Table 6 unless noted):
        steps: updates per agent (20,000; the paper's count is not stated).
        batch_size: transitions per agent per update (1024).
        lr: learning rate of Q_i (1e-3).
        perturb_lr: learning rate of ξ_i and of the DDPG actor (1e-4).
        vae_lr: learning rate of G¹_i, G²_i and the behaviour classifier (1e-4).
        hidden, n_layers: MLP units (64, 64) → 3 linear layers of width 64, ReLU.
        latent_dim: VAE latent ("VAE hidden space") 10.
        gamma: discount 0.99.
        epsilon: optimism level ε (Table 6: 0.80 / 0.48 / 0.80 / 0.64 for HalfCheetah / Walker / Hopper
            / Ant). For our environments, which the paper does not cover, the default is 0.8, Table 6's
            most common value; ``inf`` disables the clipping (the matrix game of App. B).
        phi: Φ, the perturbation range 0.05 (relative to the Box's half-range).
        n_candidates: n, actions sampled from G¹_i 10.
        tau: target Polyak rate 0.005 (BCQ's reference code; the paper does not give one).
        zeta: the discrete relative-probability threshold 0.3 (discrete BCQ's τ).
        vae_fraction: share of ``steps`` spent fitting G¹_i, G²_i first (0.2; unstated in the paper).
        tn_estimator: ``auto`` | ``counts`` | ``vae`` (see above; counts need discrete actions).
        vd_warmup: share of the main stage during which λ_vd is held at 1 (0.2). Departure: the paper
            starts with λ_vd "close to 1 since Q_i is not updated" (§3.2.3); with freshly initialised
            networks E V = (Q̂ − r)/γ ≈ 0 instead, and unclipped λ_vd = V/E V then explodes and
            starves the terminal transitions of weight, so offmarl trains Q_i with λ_vd = 1 first.
        self_normalize: divide the weighted losses by the sum of weights (True; see above).
        value_diff_states, value_diff_every: the Fig. 3 statistic (256 states, every 50 updates).
        variant: one of ``vd_tn`` (default), ``vd``, ``tn``, ``bcq``, ``ddpg``, ``behavior``.
    """

    steps: int = 20_000
    batch_size: int = 1024
    lr: float = 1e-3
    perturb_lr: float = 1e-4
    vae_lr: float = 1e-4
    hidden: int = 64
    n_layers: int = 3
    latent_dim: int = 10
    gamma: float = 0.99
    epsilon: float = 0.8
    phi: float = 0.05
    n_candidates: int = 10
    tau: float = 0.005
    zeta: float = 0.3
    vae_fraction: float = 0.2
    tn_estimator: str = "auto"
    vd_warmup: float = 0.2
    self_normalize: bool = True
    value_diff_states: int = 256
    value_diff_every: int = 50
    variant: str | None = "vd_tn"


def _seed_of(seed: int, agent: int) -> int:
    return int(np.random.SeedSequence([int(seed) % 2**32, 7919, agent]).generate_state(1)[0])


class AgentLearner(nn.Module):
    """Agent i's MABCQ learner: its networks, optimizers and random generator (no other agent's data)."""

    def __init__(self, spec: EnvSpec, obs_dim: int, config: Config):
        super().__init__()
        c = config
        self.config, self.obs_dim, self.discrete = c, obs_dim, spec.discrete
        self.variant = VARIANTS[c.variant or "vd_tn"]
        self.nets = nn.ModuleDict()
        if self.discrete:
            A = spec.n_actions
            self.n_actions = A
            self.nets["q"] = MLP(obs_dim, c.hidden, A, c.n_layers)
            if self.variant.policy != "free":
                self.nets["behavior"] = MLP(obs_dim, c.hidden, A, c.n_layers)
            if self.variant.transition_normalization:  # used only when λ_tn comes from the VAEs (tn_estimator)
                self.nets["g1"] = ConditionalVAE(obs_dim, c.latent_dim, c.hidden, c.n_layers, n_actions=A)
                self.nets["g2"] = ConditionalVAE(2 * obs_dim, c.latent_dim, c.hidden, c.n_layers, n_actions=A)
        else:
            low, high = spec.action_space.low, spec.action_space.high
            self.head = ActionHead.for_spec(spec)
            act_dim = spec.act_dim
            self.nets["q"] = MLP(obs_dim + act_dim, c.hidden, 1, c.n_layers)
            if self.variant.policy == "free":
                self.nets["actor"] = MLP(obs_dim, c.hidden, act_dim, c.n_layers)
            else:
                self.nets["g1"] = ConditionalVAE(obs_dim, c.latent_dim, c.hidden, c.n_layers, low=low, high=high)
                self.nets["perturb"] = Perturbation(obs_dim, c.hidden, low, high, c.phi, c.n_layers)
                if self.variant.transition_normalization:
                    self.nets["g2"] = ConditionalVAE(2 * obs_dim, c.latent_dim, c.hidden, c.n_layers,
                                                     low=low, high=high)
        self.targets = nn.ModuleDict({k: copy.deepcopy(self.nets[k])
                                      for k in ("q", "perturb", "actor") if k in self.nets})
        for p in self.targets.parameters():
            p.requires_grad_(False)
        self.optims = {"q": OptimizerWrapper(self.nets["q"].parameters(), "adam", c.lr)}
        policy_net = "actor" if self.variant.policy == "free" else "perturb"
        if policy_net in self.nets:
            self.optims["policy"] = OptimizerWrapper(self.nets[policy_net].parameters(), "adam", c.perturb_lr)
        generative = [self.nets[k] for k in ("behavior", "g1", "g2") if k in self.nets]
        if generative:
            self.optims["generative"] = OptimizerWrapper([p for m in generative for p in m.parameters()], "adam",
                                                         c.vae_lr)
        self.generator = torch.Generator()
        self.tn_from_counts = False  # set by the learner once it has seen B_i (make_sampler)

    # ---- the policy π_i (online or target networks) -------------------------------------------------------
    def q_value(self, s: torch.Tensor, a: torch.Tensor | None = None, target: bool = False) -> torch.Tensor:
        """Q_i(s, ·) ``[B, A]`` (discrete) or Q_i(s, a) ``[B]`` (continuous), online or target network."""
        q = (self.targets if target else self.nets)["q"]
        return q(s) if self.discrete else q(torch.cat([s, a], dim=-1)).squeeze(-1)

    def allowed(self, s: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor | None:
        """Discrete: the actions π_i may choose (BCQ's ζ filter ∧ available; all available for ddpg)."""
        if self.variant.policy == "free":
            return avail
        return bcq_allowed_actions(self.nets["behavior"](s), avail, self.config.zeta)

    def candidates(self, s: torch.Tensor, generator: torch.Generator, target: bool = False) -> torch.Tensor:
        """Continuous: n perturbed G¹ samples ``[B, n, act]`` at ``s [B, d]``."""
        cond = s.unsqueeze(1).expand(-1, self.config.n_candidates, -1)
        perturb = (self.targets if target else self.nets)["perturb"]
        return perturb(cond, self.nets["g1"].decode(cond, generator=generator))

    def act_and_value(self, s: torch.Tensor, avail: torch.Tensor | None, generator: torch.Generator,
                      target: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(π_i(s), Q_i(s, π_i(s)))`` with the online or the target networks."""
        if self.discrete:
            if self.variant.policy == "behavior":
                action = masked_argmax(self.nets["behavior"](s), avail)
                return action, s.new_zeros(s.shape[0])
            value, action = masked_max(self.q_value(s, target=target), self.allowed(s, avail))
            return action, value
        if self.variant.policy == "behavior":
            return self.nets["g1"].decode(s, generator=generator), s.new_zeros(s.shape[0])
        if self.variant.policy == "free":
            actor = (self.targets if target else self.nets)["actor"]
            action = self.head.squash(actor(s))
            return action, self.q_value(s, action, target)
        cands = self.candidates(s, generator, target)  # [B, n, act]
        q = self.q_value(s.unsqueeze(1).expand(-1, cands.shape[1], -1), cands, target)  # [B, n]
        best = q.argmax(dim=1)
        return cands[torch.arange(s.shape[0]), best], q.max(dim=1).values

    # ---- updates ------------------------------------------------------------------------------------
    @staticmethod
    def unpack(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The agent-slice batch without its agent axis (n = 1)."""
        out = {k: batch[k][:, 0] for k in ("obs", "next_obs", "actions", "rewards") if k in batch}
        for k in ("avail", "next_avail"):
            if k in batch:
                out[k] = batch[k][:, 0]
        out["done"] = batch["done"].float()
        if "tn" in batch:
            out["tn"] = batch["tn"]
        return out

    def generative_step(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        """Fit the behaviour classifier / G¹_i (and G²_i when λ_tn comes from the VAEs)."""
        s, a, s2 = b["obs"], b["actions"], b["next_obs"]
        losses: dict[str, torch.Tensor] = {}
        if "behavior" in self.nets:
            losses["behavior_loss"] = -masked_log_softmax(self.nets["behavior"](s), b.get("avail")).gather(
                -1, a.unsqueeze(-1)).mean()
        vae_tn = self.variant.transition_normalization and not self.tn_from_counts
        if "g1" in self.nets and (not self.discrete or vae_tn):
            losses["g1_loss"] = self.nets["g1"].loss(s, a, self.generator)[0].mean()
        if "g2" in self.nets and vae_tn:
            losses["g2_loss"] = self.nets["g2"].loss(torch.cat([s, s2], dim=-1), a, self.generator)[0].mean()
        if not losses:
            return {}
        self.optims["generative"].minimize(torch.stack(list(losses.values())).sum())
        return {k: v.item() for k, v in losses.items()}

    @torch.no_grad()
    def weights(self, b: dict[str, torch.Tensor], v_next: torch.Tensor, warm: bool = True) -> dict[str, torch.Tensor]:
        """λ_vd, λ_tn ``[B]`` of the batch (ones where the variant drops them; λ_vd = 1 until ``warm``)."""
        c = self.config
        s, a, r, s2 = b["obs"], b["actions"], b["rewards"], b["next_obs"]
        ones = torch.ones_like(r)
        lam_vd, lam_tn = ones, ones
        if self.variant.value_deviation and warm:
            q_sa = self.q_value(s, target=True).gather(-1, a.unsqueeze(-1)).squeeze(-1) if self.discrete else \
                self.q_value(s, a, target=True)
            # a probability multiplier cannot be negative (binds only when ε > 1: V(s') and E V of opposite signs)
            lam_vd = value_deviation(v_next, expected_next_value(q_sa, r, c.gamma), c.epsilon, b["done"]).clamp_min(0.0)
        if self.variant.transition_normalization:
            if self.tn_from_counts:
                lam_tn = b["tn"]
            else:
                mu1, _ = self.nets["g1"].encode(s, a)
                mu2, _ = self.nets["g2"].encode(torch.cat([s, s2], dim=-1), a)
                lam_tn = transition_normalization_from_latents(mu1, mu2)
        return {"vd": lam_vd, "tn": lam_tn}

    def main_step(self, b: dict[str, torch.Tensor], warm: bool = True) -> dict[str, float]:
        """One update of Q_i (Eq. 1) and ξ_i (Eq. 2); ``warm`` False holds λ_vd at 1 (the warm-up)."""
        c = self.config
        s, a, r, s2, done = b["obs"], b["actions"], b["rewards"], b["next_obs"], b["done"]
        with torch.no_grad():
            _, v_next = self.act_and_value(s2, b.get("next_avail"), self.generator, target=True)
            y = r + c.gamma * (1.0 - done) * v_next
            lam = self.weights(b, v_next, warm)
            w = lam["vd"] * lam["tn"]
        q = self.q_value(s).gather(-1, a.unsqueeze(-1)).squeeze(-1) if self.discrete else self.q_value(s, a)
        q_loss = weighted_mse(q, y, w, c.self_normalize)
        self.optims["q"].minimize(q_loss)
        logs = {"q_loss": q_loss.item(), "lambda_vd": lam["vd"].mean().item(), "lambda_tn": lam["tn"].mean().item()}
        if not self.discrete:
            if self.variant.policy == "free":
                a_pi = self.head.squash(self.nets["actor"](s))
            else:
                with torch.no_grad():
                    sampled = self.nets["g1"].decode(s, generator=self.generator)
                a_pi = self.nets["perturb"](s, sampled)
            q_pi = self.q_value(s, a_pi)
            policy_loss = -((w * q_pi).sum() / w.sum().clamp_min(1e-8) if c.self_normalize else (w * q_pi).mean())
            self.optims["policy"].minimize(policy_loss)
            logs["policy_loss"] = policy_loss.item()
        for name, target in self.targets.items():
            soft_update(target, self.nets[name], c.tau)
        return logs

    # ---- persistence ----------------------------------------------------------------------------------
    def learner_state(self) -> dict[str, Any]:
        return {"nets": self.nets.state_dict(), "targets": self.targets.state_dict(),
                "optims": {k: o.state_dict() for k, o in self.optims.items()},
                "generator": self.generator.get_state(), "tn_from_counts": self.tn_from_counts}

    def load_learner_state(self, state: dict[str, Any]) -> None:
        self.nets.load_state_dict(state["nets"])
        self.targets.load_state_dict(state["targets"])
        for k, opt in self.optims.items():
            opt.load_state_dict(state["optims"][k])
        self.generator.set_state(state["generator"])
        self.tn_from_counts = bool(state["tn_from_counts"])


class PerAgentSampler:
    """One :class:`TransitionSampler` per agent over its own dataset B_i (plus λ_tn counts when used);
    ``sample()`` returns the list of the n batches."""

    def __init__(self, samplers: Sequence[TransitionSampler], tn: Sequence[np.ndarray | None]):
        self.samplers, self.tn = list(samplers), list(tn)

    def sample(self) -> list[dict[str, torch.Tensor]]:
        out = []
        for sampler, tn in zip(self.samplers, self.tn):
            steps = sampler.rng.integers(0, sampler.dataset.n_steps, size=sampler.batch_size)
            batch = sampler.batch_at(steps)
            if tn is not None:
                batch["tn"] = torch.as_tensor(tn[steps])
            out.append(batch)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"agents": [s.state_dict() for s in self.samplers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for sampler, s in zip(self.samplers, state["agents"]):
            sampler.load_state_dict(s)


@register_algo
class DecMABCQ(Algorithm):
    """Fully decentralized MABCQ (see :class:`Config` and the module docstring)."""

    name = "dec_mabcq"
    Config = Config
    decentralized_training = True
    dataset_layouts = ("joint", "per_agent")
    variants = tuple(VARIANTS)
    contract_overrides = {"hidden": 16, "batch_size": 32, "value_diff_states": 16}
    progress_metric = "q_loss"

    def __init__(self, spec: EnvSpec, config: Config, device: str | torch.device = "cpu"):
        super().__init__(spec, config, device)
        c = config
        if c.tn_estimator not in TN_ESTIMATORS:
            raise ValueError(f"dec_mabcq: tn_estimator must be one of {TN_ESTIMATORS}, got {c.tn_estimator!r}")
        if c.tn_estimator == "counts" and not spec.discrete:
            raise ValueError("dec_mabcq: tn_estimator 'counts' needs discrete actions; use 'vae' or 'auto'")
        if not c.epsilon > 0:
            raise ValueError(f"dec_mabcq: epsilon (optimism level) must be > 0 (inf: no clipping), got {c.epsilon}")
        if not 0.0 <= c.vae_fraction < 1.0:
            raise ValueError(f"dec_mabcq: vae_fraction must lie in [0, 1), got {c.vae_fraction}")
        if not 0.0 <= c.vd_warmup < 1.0:
            raise ValueError(f"dec_mabcq: vd_warmup must lie in [0, 1), got {c.vd_warmup}")
        self.learners = nn.ModuleList(AgentLearner(spec, d, c) for d in spec.obs_dims).to(self.device)
        self.updates = 0
        self.value_diff = float("nan")
        self._diff_states: torch.Tensor | None = None  # [K, n, d] fixed states for the Fig. 3 statistic

    # ---- stages ------------------------------------------------------------------------------------------
    def stage_fractions(self) -> tuple[tuple[str, float], ...]:
        """``vae`` (G¹_i, G²_i, the behaviour classifier; ``vae_fraction``), then ``main`` (Q_i, ξ_i). The
        ``behavior`` variant only fits G¹_i; ``ddpg`` has nothing generative to fit."""
        policy, fraction = VARIANTS[self.config.variant or "vd_tn"].policy, self.config.vae_fraction
        if policy == "behavior":
            return (("vae", 1.0),)
        if policy == "free" or fraction <= 0:
            return (("main", 1.0),)
        return (("vae", fraction), ("main", 1.0 - fraction))

    def value_deviation_on(self) -> bool:
        """Whether λ_vd is past its warm-up (``vd_warmup`` of the main stage, during which it is held at 1)."""
        main = self.schedule.length("main")
        return self.updates - self.schedule.start("main") >= int(round(main * self.config.vd_warmup))

    # ---- data ------------------------------------------------------------------------------------------
    def agent_datasets(self, dataset: Dataset) -> list[MultiAgentDataset]:
        """B_1 … B_n as one-agent datasets: agent i's slice of a joint dataset or of per-agent group i (a
        group holding agent i alone is B_i as it is)."""
        groups = list(dataset) if isinstance(dataset, PerAgentDatasets) else [dataset] * self.spec.n_agents
        return [agent_slice(ds, i) if ds.n_agents == self.spec.n_agents else ds for i, ds in enumerate(groups)]

    def make_sampler(self, dataset: Dataset, seed: int) -> PerAgentSampler:
        samplers, tn = [], []
        for i, (ds, learner) in enumerate(zip(self.agent_datasets(dataset), self.learners)):
            sampler = TransitionSampler(ds, self.config.batch_size, _seed_of(seed, i))
            learner.generator.manual_seed(_seed_of(seed, 1000 + i))
            learner.tn_from_counts = learner.variant.transition_normalization and self.spec.discrete and (
                self.config.tn_estimator == "counts" or (self.config.tn_estimator == "auto" and _integer_valued(ds)))
            tn.append(_count_weights(sampler) if learner.tn_from_counts else None)
            samplers.append(sampler)
        return PerAgentSampler(samplers, tn)

    def on_fit_start(self, dataset: Dataset) -> None:
        self._diff_states = _fixed_states(dataset, self.spec, self.config.value_diff_states)

    # ---- updates ------------------------------------------------------------------------------------------
    def update(self, batch: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        generative = self.stage == "vae"
        warm = not generative and self.value_deviation_on()
        logs: dict[str, list[float]] = {}
        for learner, agent_batch in zip(self.learners, batch):
            b = {k: v.to(self.device) for k, v in AgentLearner.unpack(agent_batch).items()}
            for key, value in (learner.generative_step(b) if generative else learner.main_step(b, warm)).items():
                logs.setdefault(key, []).append(value)
        self.updates += 1
        out = {k: float(np.mean(v)) for k, v in logs.items()}
        if not generative and self._diff_states is not None:
            if np.isnan(self.value_diff) or self.updates % self.config.value_diff_every == 0:
                self.value_diff = self.value_difference(self._diff_states)
            out["value_diff"] = self.value_diff
        return out

    @torch.no_grad()
    def value_difference(self, states: torch.Tensor) -> float:
        """Mean over ``states [K, n, d]`` of max_i V_i(o_i) − min_i V_i(o_i), V_i = Q_i(o_i, π_i(o_i)) (Fig. 3)."""
        values = []
        for i, learner in enumerate(self.learners):
            generator = torch.Generator().manual_seed(0)  # logging must not consume a learner's generator
            _, v = learner.act_and_value(states[:, i, :learner.obs_dim].to(self.device), None, generator)
            values.append(v)
        v = torch.stack(values, dim=1)  # [K, n]
        return float((v.max(dim=1).values - v.min(dim=1).values).mean())

    def agent_parameters(self, agent: int) -> list[torch.Tensor]:
        return list(self.learners[agent].parameters())

    # ---- execution ------------------------------------------------------------------------------------------
    def policies(self) -> DecentralizedPolicy:
        return DecentralizedPolicy([MABCQAgentPolicy(learner, self.device) for learner in self.learners])

    # ---- persistence ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"learners": [learner.learner_state() for learner in self.learners], "updates": self.updates,
                "value_diff": self.value_diff}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for learner, s in zip(self.learners, state["learners"]):
            learner.load_learner_state(s)
        self.updates = int(state["updates"])
        self.value_diff = float(state["value_diff"])


class MABCQAgentPolicy(AgentPolicy):
    """Agent i's policy π_i on its own observation (cut to its true width); candidate sampling uses a
    generator seeded at construction, so an evaluation is repeatable."""

    def __init__(self, learner: AgentLearner, device: torch.device, seed: int = 0):
        self.learner, self.device = learner, device
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def act(self, obs: np.ndarray, avail: np.ndarray | None, last_reward: np.ndarray | None) -> np.ndarray:
        s = torch.as_tensor(obs[:, :self.learner.obs_dim], dtype=torch.float32, device=self.device)
        mask = None if avail is None else torch.as_tensor(avail, dtype=torch.bool, device=self.device)
        action, _ = self.learner.act_and_value(s, mask, self.generator)
        return action.cpu().numpy().astype(np.int64 if self.learner.discrete else np.float32)


# ---- helpers --------------------------------------------------------------------------------------------
def _integer_valued(ds: MultiAgentDataset) -> bool:
    """Whether every observation of ``ds`` is integer-valued (a discrete state space such as one-hot states)."""
    return bool(np.all(ds.obs == np.round(ds.obs)) and np.all(ds.final_obs == np.round(ds.final_obs)))


def _count_weights(sampler: TransitionSampler) -> np.ndarray:
    """λ_tn = num(s, a) / num(s, a, s') of every step of the sampler's one-agent dataset ``[T]``."""
    full = sampler.batch_at(np.arange(sampler.dataset.n_steps))
    return transition_normalization_from_counts(full["obs"][:, 0].numpy(), full["actions"][:, 0].numpy(),
                                                full["next_obs"][:, 0].numpy())


def _fixed_states(dataset: Dataset, spec: EnvSpec, count: int) -> torch.Tensor | None:
    """``count`` dataset steps (a fixed draw, spread evenly over the per-agent groups) with every agent's
    observation ``[K, n, d]``; None when the datasets are one-agent slices (no common states)."""
    groups = [dataset] if isinstance(dataset, MultiAgentDataset) else list(dataset)
    if any(ds.n_agents != spec.n_agents for ds in groups):
        return None
    rng = np.random.default_rng(0)
    per_group = max(1, count // len(groups))
    picks = [ds.obs[np.sort(rng.choice(ds.n_steps, size=min(per_group, ds.n_steps), replace=False))] for ds in groups]
    return torch.as_tensor(np.concatenate(picks), dtype=torch.float32)
