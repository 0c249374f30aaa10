"""Shared Individual Trajectories (``sit``): reward decomposition, decomposed prioritized replay, and a
conservative actor-critic with a GAT critic.

Reference: Tian, Kuang, Liu, Wang, *Learning from Good Trajectories in Offline Multi-Agent Reinforcement
Learning* (AAAI 2023): "Methodology" (Eq. 1-10), Algorithm 1 (App. A), App. E.1 (Eq. 15), App. E.2 and the
hyperparameters of Tables 10-11. The paper's sections are unnumbered; they are cited by their titles.
There is no public SIT code: the paper is the specification, and every choice it leaves open is written
down in :class:`Config`.

Three stages over one step budget (``offmarl train sit --dataset … --out RUN`` runs them all; the fit loop
saves what each hands over to ``RUN/<stage>/`` and checkpoints every hand-over, so a resume never repeats
one):

1. ``ardnem`` -- the reward decomposition ensemble (:class:`~offmarl.nets.reward_decomposition.RewardDecomposition`)
   fitted to the team reward on uniformly sampled joint episodes. Hands over ``RUN/ardnem/`` (its weights
   and settings: ``ardnem.json``, ``ardnem.pt``).
2. ``dper`` -- one step: the frozen ensemble decomposes every step of the dataset (Eq. 4-5), the
   individual trajectories get their priorities (Eq. 6-7) and go into one sum tree per agent type
   (:class:`~offmarl.data.samplers.DecomposedReplay`). Hands over ``RUN/dper/`` (``dper.json``: the
   settings and per-agent summaries; ``dper.pt``: r̂ and û of every step and agent, the episode starts, p̂
   and Eq. 7's sampling probability of every individual trajectory, and the dataset's ``behavior_levels``
   when it records them) -- what ``offmarl sit-report RUN`` plots (:mod:`offmarl.commands.sit_report`).
3. ``policy`` -- per-agent GAT critics and CRR-filtered actors on batches of individual trajectories
   drawn from the replay of each agent's type (Eq. 8-10). Evaluated decentralized: agent i's recurrent
   actor sees only its own observations.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from offmarl.algos._centralized import decentralized
from offmarl.algos._value import (
    batch_softmax_weights,
    frozen_copy,
    hard_update,
    masked_argmax,
    masked_log_softmax,
    masked_max,
)
from offmarl.algos.base import AlgoConfig, Algorithm, StageFiles, StageSchedule, register_algo
from offmarl.core.optim import OptimizerWrapper
from offmarl.data.dataset import MultiAgentDataset
from offmarl.data.samplers import DecomposedReplay, EpisodeSampler, softmax_priorities, trajectory_priorities
from offmarl.envs.base import EnvSpec
from offmarl.nets.action_head import ActionHead, LogStd
from offmarl.nets.agents import AgentNetwork, GroupMLP
from offmarl.nets.gat import GraphAttention
from offmarl.nets.reward_decomposition import WEIGHTINGS, RewardDecomposition
from offmarl.policies.base import DecentralizedPolicy

STAGES = ("ardnem", "dper", "policy")
# Fig. 4a's ablations and App. E.1's variant: config values applied on top of the config
ABLATIONS: dict[str, dict[str, Any]] = {
    "no_decomp": {"decomposed_critic": False},
    "no_attention": {"weighting": "uniform"},
    "no_ensemble": {"members": 1},
    "no_gat": {"gat": False},
    "uniform_replay": {"prioritized": False},
}
VARIANTS: dict[str, dict[str, Any]] = {"mnc": {"weighting": "monotonic"}}
INFERENCE_CHUNK = 32_768  # dataset steps per forward pass of Stage II


@dataclass(frozen=True)
class Config(AlgoConfig):
    """SIT. Notation: agent i, agent type J and its agents 𝕁, episode k, step t, ensemble member m of M.

    **Stage I, ARDNEM** (Eq. 1-3). Member m predicts agent i's reward ``r_{i,m} = f_m(o_i, a_i)`` (shared by
    the agents) and its weight

        λ_{i,m} ∝ exp( (e_s)ᵀ W_qᵀ W_k e_i )          (Eq. 1; softmax over the agents, e_s from s, e_i from (o_i, a_i))
        r̂_tot,m = Σ_i λ_{i,m} r_{i,m}                  (Eq. 2)
        L_MSE(ψ) = (1/M) Σ_m ( r̂_tot,m − r_tot )²      (Eq. 3; mean over the batch's steps)

    r_tot is the team reward, the mean over agents of the dataset's per-agent rewards (a broadcast team reward
    unchanged). The state s is the dataset's, or all observations concatenated where it has none. Networks:
    :mod:`offmarl.nets.reward_decomposition`. All members see the same batches (Algorithm 1, line 6) and
    differ by their initialisation. RMSprop (``reward_lr`` 1e-4), gradient norm clipped at 10 over the whole
    ensemble, batches of 32 joint episodes drawn uniformly (Table 10).

    **Stage II, DPER** (Eq. 4-7), one step, on every step of the dataset with the frozen ensemble:

        r̂_i = (1/M) Σ_m λ_{i,m} r_{i,m},    û_i = sqrt( (1/M) Σ_m (λ_{i,m} r_{i,m} − r̂_i)² )      (Eq. 4, 5)
        ĝ_i^t = Σ_{t' ≥ t} γ^{t' − t} r̂_i^{t'},   p̂_i^k = mean_t ĝ_i^{t,k}                      (Eq. 6)
        p̂ rescaled linearly to [0, ``priority_high``] over all individual trajectories       (Table 11: [0, 20])
        p_i^k = exp(p̂_i^k / α) / Σ_{j ∈ 𝕁, k'} exp(p̂_j^{k'} / α)                               (Eq. 7)

    Eq. 6 prints γ^{t − t'}: a typo for the Monte-Carlo return it names (γ^{t − t'} > 1 grows with t').
    With M = 1 the standard deviation is 0, and û = 1. Eq. 7's normaliser runs over the individual
    trajectories of the agent's type: the trajectories of each type go into one sum tree
    (:class:`~offmarl.data.samplers.DecomposedReplay`), sampled in proportion to exp(p̂/α) (the softmax is
    computed with the type's maximum subtracted). With α = 0.2 over [0, 20] the weights span e^100: the
    replay draws nearly only from the best trajectories of each type (``dper.json`` records each type's
    effective number of items, (Σ p)² / Σ p²).

    **Stage III** (Eq. 8-10). For every agent i, ``batch_size`` individual trajectories (j, k) are drawn from
    the replay of i's type: agent j's trajectory in episode k trains agent i ("i(j)"), its observation o_j the
    local input and all of episode k's observations the graph. Per agent i (separate weights θ_i, φ_i,
    stacked on a leading agent axis: gradient norms are clipped per agent, so the n learners are separate):

        e_local = f_local(o_j^t, a_j^{t−1}[, a])      τ = (o^t, a^{t−1}) as printed (Peng et al. 2021); a
                                                       continuous action a enters here
        e_global = GAT(o_1^t, …, o_N^t) at node j      (Eq. 8, :class:`~offmarl.nets.gat.GraphAttention`)
        Q_i = f_agg([e_local; e_global])               discrete: one output per action, Q_i(·, a) read at a
        L_critic(φ_i) = E[ (η/û) ( r̂ + γ (1 − d) Q'_i(τ^{t+1}, a^{t+1}, o^{t+1}) − Q_i(τ^t, a^t, o^t) )² ]     (Eq. 9)
        L_actor(θ_i)  = E[ −(η/û) (exp(A_i/β) / Z) log π_i(a^t | τ^t) ],   A_i = Q_i(a^t) − E_{a ~ π_i} Q_i(a)  (Eq. 10)

    with r̂ = r̂_j^{t,k}, û = û_j^{t,k} and a^t, a^{t+1} agent j's dataset actions; Q' the target critic, a hard
    copy every ``target_update_interval`` = 100 updates; Z normalises within the batch (agent i's valid steps:
    the filter weights average 1, no gradient). Where a truncated episode's last step has no next action,
    the target bootstraps from E_{a ~ π_i} Q'_i(τ^{t+1}, a) (continuous: Q'_i at π_i's mean); a terminal step
    from 0. Actors: f(o) → GRU(64) → logits / Gaussian mean (per agent; "RNN hidden dimension 64", Table
    11), over each trajectory from its first sampled step; execution: argmax over available actions / the
    mean, from agent i's own observations only. Critic widths 32 ("Mixer/Critic hidden dimension 32"):
    f_local and f_agg are two layers each, the GAT embeds into 32. RMSprop, actor ``lr`` 5e-4, ``critic_lr``
    1e-4, clip 10, batch 32, γ 0.99 (Table 11).

    Departures and readings (the paper is silent or garbled):
        * Eq. 10 prints ``(e^{Q_i/β}/Z) Q_i|_{a = a_i(j)}``, which has no gradient with respect to θ_i: read as
          CRR's filtered regression (Wang et al. 2020, *Critic Regularized Regression*, the method the
          paper plugs in), ``−f · log π_i(a_i(j) | τ_i(j))``. CRR's exponential filter uses the advantage;
          the printed Q_i/β with a batch-wide Z compares values across states, where a state baseline no
          longer cancels and one sample takes nearly all the weight (``ma_icq``'s docstring: observed
          there), so A_i = Q_i − V_i with V_i = Σ_a π_i(a|τ) Q_i(τ, a) (continuous: Q_i at π_i's mean).
          β → ∞ gives behaviour cloning weighted by η/û; β → 0 the best action of the batch.
        * η/û explodes as û → 0 and the paper is silent: û is clamped from below at ``uncertainty_floor`` ×
          its mean over agent i's valid steps in the batch (at most a 1000-fold weight at the default 1e-3).
        * Tables 10-11's "training epochs" (20 000 for ARDNEM, 15 000 for the actor-critic) are read as gradient
          steps on batches of 32 episodes: ``steps`` = 20 000 + 1 (Stage II) + 15 000 by default; a budget
          keeps the split (``ardnem_fraction`` of the updates other than Stage II's).
        * Discrete critics output a value per action (the current action selects it) instead of taking it as
          an input of f_local: the same function of (τ, a, o), and one pass gives the Q_i(τ, ·) the advantage
          needs. The GAT's W_1 and f_local see observations zero-padded to the widest agent.
        * MNC (App. E.1, Fig. 7a missing from our copy): QMIX's mixer over the f(o_i, a_i)
          (:mod:`offmarl.nets.reward_decomposition`); its per-agent credit λ_i = ∂r̂_tot/∂r_i.

    Fields:
        steps: updates of all three stages (35 001: 20 000 + 1 + 15 000).
        batch_size: episodes per Stage I batch; individual trajectories per agent per Stage III batch (32).
        lr: the actors' learning rate (5e-4, Table 11 "Agent network learning rate").
        critic_lr: the critics' (1e-4, Table 11). reward_lr: the ensemble's (1e-4, Table 10).
        ardnem_fraction: share of the updates other than Stage II's that Stage I takes (20 000 / 35 000).
        members: M (5, Table 10). reward_hidden: width of f (64). attention_hidden: width of e_s, e_i, W_q, W_k
            and of MNC's mixer (64, Table 10).
        weighting: ``attention`` (Eq. 1), ``uniform`` (λ = 1, ablation no_attention) or ``monotonic`` (MNC).
        credit: what Stage II decomposes into r̂ and û: ``weighted``, Eq. 4's λ_{i,m} r_{i,m} (the paper), or
            ``individual``, the members' r_{i,m} = f_m(o_i, a_i) before weighting (not in the paper). With a
            negative team reward (MPE) an agent the attention ignores (λ_i → 0) gets λ_i r_i → 0, the
            *highest* weighted reward, whatever its behaviour; f itself keeps the agents' order (measured on
            sit/mpe_cn_3ls3l/medium: docs/algorithms.md#sit).
        decomposed_critic: the critic learns from r̂ weighted by η/û (True) or, ablation no_decomp ("the
            critic of each agent is directly trained based on the total reward"), from the team reward with
            η/û = η; the replay keeps ARDNEM's priorities.
        gat: the critic's global embedding (False: Q_i = f_agg(e_local), ablation no_gat).
        critic_previous_action: f_local reads a_j^{t-1} as printed (True) or o_j^t alone (False, not in the
            paper; an investigation switch: dropping it did not change SIT's collapse on CN_3ls3l,
            results/FINDINGS.md "SIT on cooperative navigation").
        critic_target: what Eq. 9's target reads at t + 1: ``data``, Q'_i at the replayed trajectory's own next
            action a^{t+1} (the paper: the critic evaluates the behaviour that made the trajectory), or
            ``greedy``, max over the available actions of Q'_i (Q-learning's backup, as qmix, ma_bcq and ma_cql
            back up; discrete actions only; not in the paper). An investigation switch: on PP_3p1p and CN_4ls4l
            the critic stays nearly flat over actions with either backup (results/FINDINGS.md, "PP_3p1p and
            CN_4ls4l low").
        prioritized: Eq. 7 sampling (False: uniform over the type's trajectories, ablation uniform_replay).
        share_trajectories: agents of a type share one replay, so agent j's trajectory trains agent i (True, the
            paper); False gives each agent a replay of its own trajectories, Eq. 7 within it. MaMuJoCo's agents
            all have offmarl's type ``agent`` though they drive different limbs: there False is the reading of
            Eq. 7's "agents isomorphic to agent i" that works (results/FINDINGS.md, "HalfCheetah: one replay
            for two different legs").
        alpha: α, Eq. 7's temperature (0.2). beta: β, CRR's (0.1). eta: η (1). Table 11, App. E.2.
        priority_high: the top of the rescaled priority range (20; the bottom is 0).
        uncertainty_floor: û is clamped below at this × its batch mean (1e-3; the paper has no clamp).
        gamma: discount of Eq. 6 and Eq. 9 (0.99). target_update_interval: Stage III updates between target
            copies (100). grad_clip: gradient-norm clip of every optimizer (10).
        hidden: the actors' GRU width (64). critic_hidden: f_local, f_agg and GAT width (32).
        seq_len: Stage I and III batches crop episodes longer than this to a window at a uniform offset
            (None: whole episodes, the paper's episodic training); a window's actor starts from a zero state.
    """

    steps: int = 35_001
    batch_size: int = 32
    lr: float = 5e-4
    critic_lr: float = 1e-4
    reward_lr: float = 1e-4
    ardnem_fraction: float = 20_000 / 35_000
    members: int = 5
    reward_hidden: int = 64
    attention_hidden: int = 64
    weighting: str = "attention"
    credit: str = "weighted"
    decomposed_critic: bool = True
    gat: bool = True
    critic_previous_action: bool = True
    critic_target: str = "data"
    prioritized: bool = True
    share_trajectories: bool = True
    alpha: float = 0.2
    beta: float = 0.1
    eta: float = 1.0
    priority_high: float = 20.0
    uncertainty_floor: float = 1e-3
    gamma: float = 0.99
    target_update_interval: int = 100
    grad_clip: float = 10.0
    hidden: int = 64
    critic_hidden: int = 32
    seq_len: int | None = None


# ---- losses (pure functions; tensors [B, L, n]: batch, steps, trained agents) ----------------------------------
def per_agent_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the batch's valid steps, per agent: ``[B, L, n] -> [n]``."""
    m = mask.to(values.dtype)
    return (values * m).sum(dim=(0, 1)) / m.sum(dim=(0, 1)).clamp_min(1.0)


def uncertainty_weights(uncertainty: torch.Tensor, mask: torch.Tensor, eta: float, floor: float) -> torch.Tensor:
    """η / û (Eq. 9-10) with û clamped below at ``floor`` × its mean over each agent's valid steps; 0 off the mask."""
    lowest = (floor * per_agent_mean(uncertainty, mask)).clamp_min(torch.finfo(uncertainty.dtype).tiny)  # [n]
    return torch.where(mask, eta / torch.maximum(uncertainty, lowest), 0.0)


def weighted_td_loss(q: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor
                     ) -> torch.Tensor:
    """Eq. 9 per agent ``[n]``: ``mean over valid steps of w (Q − y)²``."""
    return per_agent_mean(weights * (q - targets).pow(2), mask)


def crr_actor_loss(log_prob: torch.Tensor, advantage: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor,
                   beta: float) -> torch.Tensor:
    """Eq. 10 per agent ``[n]`` (the CRR reading, :class:`Config`): ``mean over valid steps of −w f log π`` with
    the filter ``f = exp(A/β) / Z``, Z normalising over agent i's valid steps so the filter averages 1 (no
    gradient through A)."""
    filters = batch_softmax_weights(advantage.detach() / beta, mask, dims=(0, 1))
    return per_agent_mean(-weights * filters * log_prob, mask)


def ensemble_statistics(weighted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4-5: the members' mean r̂ and (population) standard deviation û of ``weighted [M, ...]``; û = 1
    for a single member, whose spread is unknown."""
    mean = weighted.mean(dim=0)
    if weighted.shape[0] == 1:
        return mean, torch.ones_like(mean)
    return mean, weighted.std(dim=0, unbiased=False)


# ---- networks ----------------------------------------------------------------------------------------------
class GATCritic(nn.Module):
    """n per-agent critics Q_i = f_agg([f_local(x_i); GAT(nodes_i)[j_i]]) stacked on the agent axis (Eq. 8)."""

    def __init__(self, n_agents: int, obs_dim: int, local_dim: int, out_dim: int, hidden: int, gat: bool):
        super().__init__()
        self.local = GroupMLP(n_agents, local_dim, hidden, hidden, 2)
        self.gat = GraphAttention(obs_dim, hidden, groups=n_agents) if gat else None
        self.agg = GroupMLP(n_agents, hidden * (2 if gat else 1), hidden, out_dim, 2)

    def global_embedding(self, nodes: torch.Tensor, source: torch.Tensor) -> torch.Tensor | None:
        """e_global of each agent's own node: ``nodes [B, L, n, N, d]`` (agent i's graph), ``source [B, 1, n]``
        (the node that is agent i's trajectory) -> ``[B, L, n, hidden]`` (None without a GAT)."""
        return None if self.gat is None else self.gat(nodes, node=source)

    def forward(self, local: torch.Tensor, e_global: torch.Tensor | None) -> torch.Tensor:
        """``local [..., n, local_dim]`` -> Q ``[..., n, out_dim]``."""
        e_local = self.local(local)
        return self.agg(e_local if e_global is None else torch.cat([e_local, e_global.expand_as(e_local)], dim=-1))


class SITSampler:
    """Stage I's uniform joint episodes, then (once :meth:`use_replay` is called) the decomposed replay."""

    def __init__(self, dataset: MultiAgentDataset, batch_size: int, seed: int | None, max_len: int | None,
                 share: bool = True):
        self.dataset = dataset
        self.episodes = EpisodeSampler(dataset, batch_size, seed, max_len=max_len, pad="batch")
        self.replay = DecomposedReplay(dataset, batch_size, seed, max_len=max_len, pad="batch", share=share)
        self.replaying = False

    def use_replay(self, priorities: np.ndarray, **step_values: np.ndarray) -> None:
        self.replay.set_priorities(priorities)
        self.replay.set_step_values(**step_values)
        self.replaying = True

    def sample(self) -> dict[str, torch.Tensor]:
        return self.replay.sample() if self.replaying else self.episodes.sample()

    def state_dict(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, "episodes": self.episodes.state_dict(),
                "replay": self.replay.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != type(self).__name__:
            raise ValueError(f"SITSampler.load_state_dict got the state of a {state.get('kind')!r}")
        self.episodes.load_state_dict(state["episodes"])
        self.replay.load_state_dict(state["replay"])


# ---- the algorithm -----------------------------------------------------------------------------------------
@register_algo
class SIT(Algorithm):
    """Shared Individual Trajectories (see :class:`Config` and the module docstring)."""

    name = "sit"
    Config = Config
    ablations = tuple(ABLATIONS)
    variants = tuple(VARIANTS)
    contract_overrides = {"members": 3, "reward_hidden": 8, "attention_hidden": 8, "hidden": 8, "critic_hidden": 8,
                          "batch_size": 4, "critic_lr": 1e-3, "reward_lr": 1e-3}
    progress_metric = "critic_loss"

    def __init__(self, spec: EnvSpec, config: Config, device: str | torch.device = "cpu"):
        super().__init__(spec, config, device)
        s = self.settings = dataclasses.replace(config, **ABLATIONS.get(config.ablation, {}),
                                                **VARIANTS.get(config.variant, {}))
        _check_config(s)
        if s.critic_target == "greedy" and not spec.discrete:
            raise ValueError("sit: critic_target greedy takes a max over actions: it needs discrete actions")
        n, d = spec.n_agents, spec.obs_dim
        self.n = n
        self.action_dim = spec.n_actions if spec.discrete else spec.act_dim  # one-hot width or action vector
        self.state_dim = spec.state_dim if spec.state_dim > 0 else n * d
        self.action_head = ActionHead.for_spec(spec).to(self.device)
        self.reward_model = RewardDecomposition(s.members, d, self.action_dim, self.state_dim, n, s.reward_hidden,
                                                s.attention_hidden, s.weighting).to(self.device)
        actor_out = spec.n_actions if spec.discrete else spec.act_dim
        self.actor = AgentNetwork("gru", n, d, actor_out, s.hidden, shared=False).to(self.device)
        previous_dim = self.action_dim if s.critic_previous_action else 0
        local_dim = d + previous_dim + (0 if spec.discrete else spec.act_dim)  # o, a^{t-1} (and a)
        self.critic = GATCritic(n, d, local_dim, spec.n_actions if spec.discrete else 1, s.critic_hidden,
                                s.gat).to(self.device)
        self.target_critic = frozen_copy(self.critic)
        self.log_std = None if spec.discrete else LogStd(n, spec.act_dim).to(self.device)
        actor_modules = [self.actor] + ([] if self.log_std is None else [self.log_std])
        self.reward_optim = OptimizerWrapper(self.reward_model.parameters(), "rmsprop", s.reward_lr, clip=s.grad_clip)
        self.actor_optim = OptimizerWrapper([p for m in actor_modules for p in m.parameters()], "rmsprop", s.lr,
                                            clip=s.grad_clip, per_member=True)
        self.critic_optim = OptimizerWrapper(self.critic.parameters(), "rmsprop", s.critic_lr, clip=s.grad_clip,
                                             per_member=True)
        self.policy_updates = 0
        self.dper: dict[str, torch.Tensor] | None = None  # Stage II's product (module docstring)
        self._sampler: SITSampler | None = None

    # ---- stages ---------------------------------------------------------------------------------------------
    def _lengths(self, total: int) -> tuple[int, int, int]:
        if total < len(STAGES):
            raise ValueError(f"a budget of {total} steps cannot train sit's 3 stages {list(STAGES)}: give at least 3")
        reward = min(max(1, round((total - 1) * self.config.ardnem_fraction)), total - 2)
        return reward, 1, total - 1 - reward

    def stage_fractions(self) -> tuple[tuple[str, float], ...]:
        total = int(self.config.steps)
        return tuple((name, length / total) for name, length in zip(STAGES, self._lengths(total)))

    def plan(self, total_steps: int) -> StageSchedule:
        """Stage II is one step whatever the budget; the others share the rest (``ardnem_fraction``)."""
        self._schedule = StageSchedule(tuple(zip(STAGES, self._lengths(int(total_steps)))))
        self.config = dataclasses.replace(self.config, steps=int(total_steps))
        return self._schedule

    def enter_stage(self, name: str) -> None:
        super().enter_stage(name)
        self.reward_model.requires_grad_(name == "ardnem")  # frozen once it has decomposed the dataset
        if name == "policy" and self._sampler is not None:
            if self.dper is None:
                raise RuntimeError("sit: the policy stage needs Stage II's decomposition, which this state lacks")
            self._sampler.use_replay(self.dper["sampling_priority"].double().numpy(),
                                     decomposed_reward=self.dper["weighted_reward"].numpy(),
                                     uncertainty=self.dper["uncertainty"].numpy())

    def stage_artifact(self, name: str) -> StageFiles | None:
        s = self.settings
        if name == "ardnem":
            keys = ("members", "reward_hidden", "attention_hidden", "weighting")
            record = {"stage": name, "settings": {k: getattr(s, k) for k in keys}, "env_spec": self.spec.to_dict(),
                      "action_dim": self.action_dim, "state_dim": self.state_dim}
            return StageFiles(name, record, self.reward_model.state_dict())
        if name == "dper" and self.dper is not None:
            return StageFiles(name, self._dper_record(), dict(self.dper))
        return None

    # ---- data ---------------------------------------------------------------------------------------------
    def make_sampler(self, dataset: MultiAgentDataset, seed: int) -> SITSampler:
        self._sampler = SITSampler(dataset, self.config.batch_size, seed, self.config.seq_len,
                                   self.settings.share_trajectories)
        return self._sampler

    def _action_input(self, actions: torch.Tensor) -> torch.Tensor:
        """One-hot (discrete) or the action vectors (continuous): ``[..., n(, act)] -> [..., n, a]``."""
        return F.one_hot(actions, self.action_dim).float() if self.spec.discrete else actions

    # ---- updates ------------------------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        if self.stage == "ardnem":
            return self._reward_step(batch)
        if self.stage == "dper":
            return self._build_replay()
        return self._policy_step(batch)

    def _reward_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Eq. 3 on a batch of joint episodes."""
        # the model reads each step alone: the batch's valid steps are packed, so padding costs nothing
        mask = batch["mask"].to(self.device).bool()  # [B, L]
        obs = batch["obs"].to(self.device)[mask]  # [S, n, d]
        team_reward = batch["rewards"].to(self.device)[mask].mean(dim=-1)  # [S]
        state = batch["state"].to(self.device)[mask] if "state" in batch else obs.flatten(-2)
        out = self.reward_model(obs, self._action_input(batch["actions"].to(self.device)[mask]), state)
        loss = (out.total - team_reward).pow(2).mean()  # [M, S] -> Eq. 3
        self.reward_optim.minimize(loss)
        weighted = out.weighted.detach().mean(dim=(0, 1))  # [n] r̂ of Eq. 4, batch mean
        individual = out.rewards.detach().mean(dim=(0, 1))  # [n] the members' mean f(o_i, a_i)
        return {"reward_loss": loss.item(), **{f"weighted_reward_{i}": float(v) for i, v in enumerate(weighted)},
                **{f"individual_reward_{i}": float(v) for i, v in enumerate(individual)}}

    @torch.no_grad()
    def decompose(self, dataset: MultiAgentDataset) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 4-5 on every step of ``dataset``: r̂, û ``[T, n]`` (fp32, whatever the training precision), of
        the weighted rewards λ r or, with ``credit="individual"``, of r itself."""
        means, spreads = [], []
        with torch.autocast(self.device.type, enabled=False):
            for start in range(0, dataset.n_steps, INFERENCE_CHUNK):
                part = slice(start, start + INFERENCE_CHUNK)
                obs = torch.as_tensor(dataset.obs[part], dtype=torch.float32, device=self.device)  # [c, n, d]
                actions = torch.as_tensor(dataset.actions[part], device=self.device)
                state = (obs.flatten(-2) if dataset.state is None
                         else torch.as_tensor(dataset.state[part], dtype=torch.float32, device=self.device))
                out = self.reward_model(obs, self._action_input(actions), state)
                mean, spread = ensemble_statistics(out.weighted if self.settings.credit == "weighted" else out.rewards)
                means.append(mean.cpu())
                spreads.append(spread.cpu())
        return torch.cat(means), torch.cat(spreads)

    def _build_replay(self) -> dict[str, float]:
        """Stage II: decompose the dataset, score and prioritize its individual trajectories, fill the replay."""
        dataset = self._sampler.dataset
        s = self.settings
        weighted, uncertainty = self.decompose(dataset)
        scores = trajectory_priorities(weighted.numpy(), dataset.episode_starts, s.gamma, s.priority_high)  # [E, n]
        priority = np.ones_like(scores)
        if s.prioritized:
            for agents in self._replay_groups():  # Eq. 7 within each replay (an agent type, or one agent)
                priority[:, agents] = softmax_priorities(scores[:, agents], s.alpha)
        probability = np.zeros_like(priority)
        for agents in self._replay_groups():
            probability[:, agents] = priority[:, agents] / priority[:, agents].sum()
        self.dper = {"weighted_reward": weighted, "uncertainty": uncertainty,
                     "episode_starts": torch.as_tensor(dataset.episode_starts, dtype=torch.int64),
                     "priority_score": torch.as_tensor(scores, dtype=torch.float32),
                     "sampling_priority": torch.as_tensor(priority, dtype=torch.float64),
                     "sampling_probability": torch.as_tensor(probability, dtype=torch.float64)}
        if dataset.behavior_levels is not None:  # [E, n] for sit-report's per-level rows (names: the card's)
            self.dper["behavior_levels"] = torch.as_tensor(dataset.behavior_levels)
        logs = {f"priority_{i}": float(v) for i, v in enumerate(scores.mean(axis=0))}
        logs.update({f"effective_items_{k}": value for k, value in enumerate(self._effective_items())})
        return logs

    def _effective_items(self) -> list[float]:
        """Per replay (agent type, or agent without ``share_trajectories``), its effective number of items
        (Σ p)² / Σ p²."""
        priority = self.dper["sampling_priority"].numpy()
        return [float(priority[:, a].sum() ** 2 / (priority[:, a] ** 2).sum()) for a in self._replay_groups()]

    def _replay_groups(self) -> list[list[int]]:
        """The agents of each replay: of each type, or each agent alone without ``share_trajectories``."""
        return self._sampler.replay.type_agents

    def _dper_record(self) -> dict[str, Any]:
        s = self.settings
        return {"stage": "dper", "credit": s.credit, "gamma": s.gamma, "alpha": s.alpha, "prioritized": s.prioritized,
                "priority_range": [0.0, s.priority_high], "agent_types": list(self.spec.agent_types),
                "share_trajectories": s.share_trajectories,
                "types": dict(zip(self._sampler.replay.type_names, self._replay_groups())),
                "effective_items": self._effective_items(),
                "mean_weighted_reward": self.dper["weighted_reward"].mean(dim=0).tolist(),
                "mean_uncertainty": self.dper["uncertainty"].mean(dim=0).tolist(),
                "mean_priority_score": self.dper["priority_score"].mean(dim=0).tolist()}

    def _policy_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Eq. 9-10 on one batch of individual trajectories per agent (tensors ``[B, L(+1), n, ...]``)."""
        s, discrete = self.settings, self.spec.discrete
        dev = {k: v.to(self.device) for k, v in batch.items()}
        agent_axis = lambda x: x.movedim(0, 2)  # noqa: E731  [n, B, L, ...] -> [B, L, n, ...]
        source = dev["source_agent"].t().unsqueeze(1)  # [B, 1, n] node j of each trained agent's sample
        nodes = agent_axis(torch.cat([dev["obs"][:, :, :1], dev["next_obs"]], dim=2))  # [B, L+1, n, N, d]
        obs = _at_node(nodes, source)  # [B, L+1, n, d]  o_j
        actions = _at_node(agent_axis(dev["actions"]), source)  # [B, L, n(, act)]  a_j
        mask = agent_axis(dev["mask"]).bool()  # [B, L, n]
        done = agent_axis(dev["done"])
        has_next = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)
        avail = None
        if discrete and "avail" in dev:
            avail = _at_node(agent_axis(torch.cat([dev["avail"][:, :, :1], dev["next_avail"]], dim=2)), source)
        if s.decomposed_critic:
            rewards = agent_axis(dev["decomposed_reward"])  # [B, L, n] r̂_j
            weights = uncertainty_weights(agent_axis(dev["uncertainty"]), mask, s.eta, s.uncertainty_floor)
        else:  # ablation no_decomp: the team reward, η/û = η
            rewards = agent_axis(dev["rewards"]).mean(dim=-1)
            weights = torch.where(mask, s.eta, 0.0)

        action_in = self._action_input(actions)  # [B, L, n, a]
        previous = torch.cat([torch.zeros_like(action_in[:, :1]), action_in], dim=1)  # [B, L+1, n, a]  a^{t-1}
        if not s.critic_previous_action:
            previous = previous[..., :0]
        raw = self.actor(obs)  # [B, L+1, n, out]
        e_global = self.critic.global_embedding(nodes, source)
        with torch.no_grad():
            target_global = self.target_critic.global_embedding(nodes, source)
            pi_next = raw[:, 1:].detach()
            if discrete:
                q_next = self.target_critic(torch.cat([obs, previous], dim=-1), target_global)[:, 1:]  # [B, L, n, A]
                avail_next = None if avail is None else avail[:, 1:]
                if s.critic_target == "greedy":  # Q-learning's backup at every step, a time limit's included
                    next_data = next_pi = masked_max(q_next, avail_next)[0]
                else:
                    next_data = _pick(q_next, torch.cat([actions[:, 1:], torch.zeros_like(actions[:, :1])], dim=1))
                    next_pi = (masked_log_softmax(pi_next, avail_next).exp() * q_next).sum(-1)
            else:
                following = torch.cat([action_in[:, 1:], torch.zeros_like(action_in[:, :1])], dim=1)
                next_in = torch.cat([obs[:, 1:], previous[:, 1:]], dim=-1)
                next_global = None if target_global is None else target_global[:, 1:]
                next_data = self.target_critic(torch.cat([next_in, following], dim=-1), next_global).squeeze(-1)
                next_pi = self.target_critic(torch.cat([next_in, self.action_head.squash(pi_next)], dim=-1),
                                             next_global).squeeze(-1)
            bootstrap = torch.where(has_next, next_data, next_pi)
            targets = rewards + s.gamma * (1.0 - done) * bootstrap  # [B, L, n]
        now_in = torch.cat([obs[:, :-1], previous[:, :-1]], dim=-1)
        now_global = None if e_global is None else e_global[:, :-1]
        if discrete:
            q_all = self.critic(now_in, now_global)  # [B, L, n, A]
            q = _pick(q_all, actions)
        else:
            q = self.critic(torch.cat([now_in, action_in], dim=-1), now_global).squeeze(-1)
        critic_loss = weighted_td_loss(q, targets, weights, mask)  # [n]
        self.critic_optim.minimize(critic_loss.sum())  # agent i's critic appears in its own term only

        with torch.no_grad():
            if discrete:
                probs = masked_log_softmax(raw[:, :-1], None if avail is None else avail[:, :-1]).exp()
                advantage = q.detach() - (probs * q_all.detach()).sum(dim=-1)
            else:
                v = self.critic(torch.cat([now_in, self.action_head.squash(raw[:, :-1])], dim=-1), now_global)
                advantage = q.detach() - v.squeeze(-1)
        log_prob = self._log_prob(raw[:, :-1], actions, None if avail is None else avail[:, :-1])
        actor_loss = crr_actor_loss(log_prob, advantage, weights, mask, s.beta)
        self.actor_optim.minimize(actor_loss.sum())
        self.policy_updates += 1
        if self.policy_updates % s.target_update_interval == 0:
            hard_update(self.target_critic, self.critic)
        valid = mask.sum().clamp_min(1)
        return {"critic_loss": float(critic_loss.detach().mean()), "actor_loss": float(actor_loss.detach().mean()),
                "q": float((q.detach() * mask).sum() / valid), "uncertainty_weight": float(weights.sum() / valid)}

    def _log_prob(self, raw: torch.Tensor, actions: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
        """log π_i(a | τ) ``[B, L, n]`` of the dataset actions."""
        if self.spec.discrete:
            return _pick(masked_log_softmax(raw, avail), actions)
        std = self.log_std().exp()  # [n, act]
        return torch.distributions.Normal(self.action_head.squash(raw), std).log_prob(actions).sum(dim=-1)

    # ---- execution ------------------------------------------------------------------------------------------
    def policies(self) -> DecentralizedPolicy:
        actor, head = self.actor, self.action_head
        if self.spec.discrete:
            return decentralized(self.n, [actor], lambda i: lambda f, o, avail: masked_argmax(actor.head(f[0], group=i),
                                                                                             avail), self.device)
        return decentralized(self.n, [actor], lambda i: lambda f, o, avail: head.squash(actor.head(f[0], group=i)),
                             self.device)

    # ---- persistence ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {"reward_model": self.reward_model.state_dict(), "actor": self.actor.state_dict(),
                 "critic": self.critic.state_dict(), "target_critic": self.target_critic.state_dict(),
                 "reward_optim": self.reward_optim.state_dict(), "actor_optim": self.actor_optim.state_dict(),
                 "critic_optim": self.critic_optim.state_dict(), "policy_updates": self.policy_updates}
        if self.log_std is not None:
            state["log_std"] = self.log_std.state_dict()
        if self.dper is not None:
            state["dper"] = dict(self.dper)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("reward_model", "actor", "critic", "target_critic", "reward_optim", "actor_optim",
                     "critic_optim"):
            getattr(self, name).load_state_dict(state[name])
        if self.log_std is not None:
            self.log_std.load_state_dict(state["log_std"])
        self.policy_updates = int(state["policy_updates"])
        self.dper = dict(state["dper"]) if "dper" in state else None


def _at_node(x: torch.Tensor, node: torch.Tensor) -> torch.Tensor:
    """The entries of node ``node [B, 1, n]`` along the node axis of ``x [B, L, n, N, ...]`` -> ``[B, L, n, ...]``."""
    index = node.reshape(*node.shape, *([1] * (x.dim() - 3))).expand(x.shape[0], x.shape[1], x.shape[2], 1,
                                                                      *x.shape[4:])
    return x.gather(3, index).squeeze(3)


def _pick(values: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``values [..., A]`` at ``actions [...]`` -> ``[...]``."""
    return values.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def _check_config(c: Config) -> None:
    if c.weighting not in WEIGHTINGS:
        raise ValueError(f"sit: weighting must be one of {', '.join(WEIGHTINGS)}, got {c.weighting!r}")
    if c.credit not in ("weighted", "individual"):
        raise ValueError(f"sit: credit must be weighted or individual, got {c.credit!r}")
    if c.critic_target not in ("data", "greedy"):
        raise ValueError(f"sit: critic_target must be data or greedy, got {c.critic_target!r}")
    if c.members < 1 or c.target_update_interval < 1:
        raise ValueError(f"sit: members and target_update_interval must be >= 1, got {c.members}, "
                         f"{c.target_update_interval}")
    if min(c.alpha, c.beta, c.priority_high, c.uncertainty_floor) <= 0 or c.eta < 0:
        raise ValueError(f"sit: alpha, beta, priority_high and uncertainty_floor must be > 0 and eta >= 0, got "
                         f"{c.alpha}, {c.beta}, {c.priority_high}, {c.uncertainty_floor}, {c.eta}")
    if not 0.0 < c.ardnem_fraction < 1.0 or not 0.0 < c.gamma <= 1.0:
        raise ValueError(f"sit: ardnem_fraction must lie in (0, 1) and gamma in (0, 1], got {c.ardnem_fraction}, "
                         f"{c.gamma}")
