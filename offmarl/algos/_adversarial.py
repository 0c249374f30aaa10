"""The discriminator machinery of adversarial imitation, written once: the discriminator's loss and gradient
penalty, the rewards it gives, the demonstrations and how each agent draws them, and the learner skeleton --
PPO (:mod:`offmarl.algos._ppo`) on the discriminator's rewards -- that ``dm2``, ``sil``, ``ma_gail`` and
``ma_airl`` configure. The networks are :mod:`offmarl.nets.discriminator`'s.

References: Ho & Ermon, *Generative Adversarial Imitation Learning* (NeurIPS 2016), §5 (the discriminator and
its reward); Gulrajani et al., *Improved Training of Wasserstein GANs* (NeurIPS 2017), §4 (the gradient
penalty); Wang, Durugkar, Liebman & Stone, *DM²: Decentralized Multi-Agent Reinforcement Learning via
Distribution Matching* (AAAI 2023), Algorithm 1, §5–6, App. C, and their public code (the GAIL discriminator,
its buffers and reward); Song et al., *Multi-Agent Generative Adversarial Imitation Learning* (NeurIPS 2018);
Yu et al., *Multi-Agent Adversarial Inverse Reinforcement Learning* (ICML 2019).

One update, on a rollout of ``rollout_length`` steps in every sub-env (DM² Algorithm 1, lines 6–12):

1. the rollout's finished episodes join the policy buffer (the latest ``policy_buffer_episodes``);
2. once the policy buffer and the targets (demonstrations, or for ``sil`` each agent's best past episodes)
   hold ``disc_batch_episodes`` episodes: ``disc_steps`` discriminator steps, each on that many target
   episodes (label 1) and as many policy-buffer episodes (label 0), over every real step of both;
3. the imitation reward ``r_D`` of every step of the rollout, from the updated discriminator;
4. one PPO update on ``r = r_env + c · r_D`` (``reward="mixed"``, DM²) or ``r = r_D`` (``"imitation"``).

Until the discriminator first trains, an update only fills the buffer (DM²'s code waits likewise).

The discriminator ``D = σ(logit)``, the probability that a step came from the targets (Ho & Ermon's Eq. 17
with the labels swapped, as every code base here), minimizes

    L_D = −E_target[log D] − E_π[log(1 − D)] + λ E_x̂[(‖∇_x̂ logit(x̂)‖₂ − 1)²],   x̂ = α x_target + (1 − α) x_π,
    α ~ U(0, 1) per step and unit                                                  (:func:`discriminator_loss`,
                                                                                    :func:`gradient_penalty`)

each expectation the mean over real (unpadded) steps, per unit and summed over units when every agent has
its own discriminator. Rewards of a GAIL discriminator (:func:`gail_reward`): ``logit`` = log D − log(1 − D)
(DM²'s code), ``neg_log_d`` = −log(1 − D) (DM² Algorithm 1's "−log D", written in Ho & Ermon's convention
where D is the probability of the *policy*), ``centered_d`` = 2D − 1 (MA-GAIL's code).

Units: every agent its own discriminator on its own steps (decentralized; ``G = n`` member-stacked networks,
one elementwise Adam over them -- n independent optimizers -- and agent-wise means), or one discriminator on
the joint steps with an output per agent (centralized). The inputs are agent i's observation (DM²: no
agent id, no action) or observation and action (one-hot for discrete actions); a centralized unit reads all
agents' concatenated.

Demonstrations (learners with ``"dataset+env"``, :class:`Demonstrations`): unit i draws agent i's part of
episodes of its pool of the dataset -- with ``sampling="concurrent"`` every agent's pool is the same first
``demo_episodes`` episodes and every agent draws the same episodes at every step (the demonstrations of all
agents come from the same joint episodes); with ``"independent"`` agent i's pool is its own block
``[i m, (i + 1) m)`` of the episodes (``m = min(demo_episodes, E // n)``; DM²'s code: blocks of 1000) and it
draws from it with its own random stream. A per-agent dataset (:class:`~offmarl.data.sources.PerAgentDatasets`)
gives agent i's demonstrations from group i. Before online learning, ``bc_steps`` steps of behaviour
cloning on the demonstrations' state-action pairs (stage ``bc``, each step ``bc_batch_episodes`` episodes,
the recurrent actor run over whole episodes): DM² App. B (Fig. 5); MA-GAIL's and MA-AIRL's codes pretrain
their policies so for 500 steps.

Departures from DM²'s code, for the better or forced by the rollout engine: the policy buffer is a ring of the
latest finished episodes across updates (the official buffer is emptied after every PPO update, which there
holds 255 whole episodes; offmarl's updates are 3200 frames of fixed-length rollouts); the discriminator
trains on real steps only (the official one also on the zero padding after each episode's end); value
targets are normalized (the official code configures a value normalizer and never applies it) and an episode
cut by the time limit bootstraps from the value of the observation it reached (the official code does not);
episodes are drawn with replacement.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from offmarl.algos._ppo import PPOConfig, PPOLearner, masked_mean, rollout_stats, to_device
from offmarl.algos.base import StageSchedule
from offmarl.core.optim import OptimizerWrapper
from offmarl.data.replay import EpisodeReplay
from offmarl.data.samplers import EpisodeSampler, agent_slice
from offmarl.data.sources import Dataset, PerAgentDatasets, datasets_of, source_dataset
from offmarl.data.trajectory import Trajectory
from offmarl.envs.base import EnvSpec
from offmarl.nets.discriminator import GAILDiscriminator
from offmarl.nets.mlp import ACTIVATIONS

REWARDS = ("mixed", "imitation")
DISCRIMINATORS = ("decentralized", "centralized")
GAIL_REWARDS = ("logit", "neg_log_d", "centered_d")
SAMPLINGS = ("concurrent", "independent")


# ---- pure functions -----------------------------------------------------------------------------------
def discriminator_loss(target_logits: torch.Tensor, policy_logits: torch.Tensor, target_mask: torch.Tensor,
                       policy_mask: torch.Tensor, per_unit: bool) -> torch.Tensor:
    """Binary cross-entropy ``−E_target[log σ(l)] − E_π[log(1 − σ(l))]`` of logits ``[..., n]``, each side the
    mean over its real steps (per agent and summed over agents when ``per_unit``)."""
    return (masked_mean(F.softplus(-target_logits), target_mask, per_unit)
            + masked_mean(F.softplus(policy_logits), policy_mask, per_unit))


def gradient_penalty(logits_of: Any, target_x: torch.Tensor, policy_x: torch.Tensor, alpha: torch.Tensor
                     ) -> torch.Tensor:
    """``(‖∇_x̂ Σ logits_of(x̂)‖₂ − 1)²`` ``[..., G]`` at ``x̂ = α x_target + (1 − α) x_π`` (inputs ``[..., G, in]``,
    ``alpha [..., G, 1]``); the gradient is kept in the graph, so the penalty trains the discriminator."""
    mixed = (alpha * target_x + (1.0 - alpha) * policy_x).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(logits_of(mixed).sum(), mixed, create_graph=True)
    return (grad.norm(dim=-1) - 1.0).pow(2)


def gail_reward(logits: torch.Tensor, form: str) -> torch.Tensor:
    """The reward of a GAIL discriminator's logits (module docstring): ``logit`` = log D − log(1 − D),
    ``neg_log_d`` = −log(1 − D) = softplus(logit), ``centered_d`` = 2D − 1."""
    if form == "logit":
        return logits
    if form == "neg_log_d":
        return F.softplus(logits)
    if form == "centered_d":
        return 2.0 * torch.sigmoid(logits) - 1.0
    raise ValueError(f"unknown GAIL reward {form!r}; known: {', '.join(GAIL_REWARDS)}")


def airl_logit(f: torch.Tensor, log_pi: torch.Tensor) -> torch.Tensor:
    """The logit of AIRL's discriminator ``D = exp f / (exp f + π(a|s))`` (Fu et al. §5): ``log D − log(1 − D) =
    f − log π``."""
    return f - log_pi


def next_observations(r: Trajectory) -> torch.Tensor:
    """The observation each step of rollout ``r`` reached ``[T, B, n, d]``: the episode's final one where it
    ended, else the next step's (after the last step, the one the rollout stopped at)."""
    following = torch.cat([r.obs[1:], r.last_obs[None].to(r.obs.device)])
    ended = (r.terminated | r.truncated)[..., None, None]
    return torch.where(ended, r.final_obs, following)


# ---- batches of whole episodes ----------------------------------------------------------------------
@dataclass
class Episodes:
    """Whole episodes padded to ``L`` steps on the right (agent i's part from its own draws, so the episode
    structure is per agent): ``obs``/``next_obs [B, L, n, d]``, ``actions [B, L, n]`` or ``[B, L, n, a]``
    (None when state-only), ``avail [B, L, n, A]`` (None without masks; True on padding), ``terminal`` (the
    step ended the MDP) and ``mask`` (a real step) ``[B, L, n]``."""

    obs: torch.Tensor
    next_obs: torch.Tensor
    actions: torch.Tensor | None
    avail: torch.Tensor | None
    terminal: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def from_batch(cls, batch: dict[str, torch.Tensor], length: int, obs_dim: int) -> "Episodes":
        """An :class:`~offmarl.data.samplers.EpisodeSampler`-layout batch (or an
        :class:`~offmarl.data.replay.EpisodeReplay` sample): padded to ``length`` steps and ``obs_dim`` features,
        its per-episode ``done``/``mask [B, L]`` given to every agent."""
        n = batch["obs"].shape[2]

        def pad(x: torch.Tensor | None, value: float = 0.0) -> torch.Tensor | None:
            if x is None:
                return None
            extra = [0, 0] * (x.dim() - 2) + [0, length - x.shape[1]]
            if x.dtype == torch.bool:
                return F.pad(x.to(torch.uint8), extra, value=int(value)).bool()
            return F.pad(x, extra, value=value)

        def widen(x: torch.Tensor) -> torch.Tensor:
            return F.pad(pad(x), [0, obs_dim - x.shape[-1]])

        per_agent = lambda x: pad(x)[..., None].expand(*x.shape[:1], length, n)  # noqa: E731
        avail = batch.get("avail")
        return cls(obs=widen(batch["obs"]), next_obs=widen(batch["next_obs"]), actions=pad(batch.get("actions")),
                   avail=None if avail is None else pad(avail, value=1.0), terminal=per_agent(batch["done"] > 0),
                   mask=per_agent(batch["mask"]))

    @classmethod
    def cat(cls, parts: list["Episodes"]) -> "Episodes":
        """Agents side by side: parts ``[B, L, n_k, ...]`` → ``[B, L, Σ n_k, ...]``."""
        def join(name: str) -> torch.Tensor | None:
            values = [getattr(p, name) for p in parts]
            return None if values[0] is None else torch.cat(values, dim=2)
        return cls(**{f.name: join(f.name) for f in dataclasses.fields(cls)})

    def to(self, device: torch.device) -> "Episodes":
        return Episodes(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                           for f in dataclasses.fields(self)})

    @property
    def real_length(self) -> int:
        """Steps up to the last real step of any episode and agent (the rest is padding)."""
        steps = self.mask.flatten(2).any(-1).any(0).nonzero()  # [L] real somewhere
        return int(steps[-1]) + 1 if len(steps) else 1

    def trim(self, length: int) -> "Episodes":
        """The first ``length`` steps: padding after every episode's end costs compute and changes nothing (every
        loss is a mean over real steps, and the recurrent actor runs forward from each episode's start)."""
        return Episodes(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[:, :length]
                           for f in dataclasses.fields(self)})

    def time_major(self, name: str) -> torch.Tensor | None:
        """Field ``name`` as ``[L, B, ...]`` (the recurrent networks' layout)."""
        x = getattr(self, name)
        return None if x is None else x.transpose(0, 1)


class PoolSampler(EpisodeSampler):
    """:class:`~offmarl.data.samplers.EpisodeSampler` drawing uniformly from the episodes
    ``[first, first + size)`` of its dataset only."""

    def __init__(self, dataset: Any, batch_size: int, seed: int, first: int, size: int, max_len: int,
                 require_actions: bool):
        super().__init__(dataset, batch_size, seed, max_len=max_len, require_actions=require_actions)
        self.first, self.size = int(first), int(size)

    def _draw_episodes(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return self.first + self.rng.integers(0, self.size, size=self.batch_size), {}


class Demonstrations:
    """Every agent's demonstration episodes and its draws of them (module docstring): ``sample()`` →
    :class:`Episodes` of ``batch`` episodes padded to ``spec.episode_limit`` steps. One joint draw serves all
    agents when they draw concurrently from one joint dataset; otherwise agent i has its own sampler over its
    own part of the data (a view, nothing is copied)."""

    def __init__(self, dataset: Dataset, spec: EnvSpec, episodes: int, sampling: str, batch: int, seed: int,
                 require_actions: bool):
        if sampling not in SAMPLINGS:
            raise ValueError(f"unknown demonstration sampling {sampling!r}; known: {', '.join(SAMPLINGS)}")
        self.spec = spec
        n, groups = spec.n_agents, datasets_of(dataset)
        per_agent = isinstance(dataset, PerAgentDatasets)

        def sampler(data: Any, agent: int, concurrent: bool) -> PoolSampler:
            E = data.n_episodes
            size = min(episodes, E if concurrent else E // n)
            if size < 1:
                raise ValueError(f"agent {agent}'s demonstrations: {E} episodes cannot give {n} agents a block each "
                                 "(independent sampling needs at least one episode per agent)")
            first = 0 if concurrent else agent * size
            return PoolSampler(data, batch, seed if concurrent else seed + 1 + agent, first, size, spec.episode_limit,
                               require_actions)

        concurrent = sampling == "concurrent"
        if concurrent and not per_agent:
            self.parts = [sampler(groups[0], 0, True)]  # one draw, all agents' parts of the same episodes
            return
        self.parts = []
        for i in range(n):
            data = groups[i] if per_agent else groups[0]
            view = data if data.n_agents == 1 else agent_slice(data, i, trim_obs=False)
            self.parts.append(sampler(view, i, concurrent))

    def sample(self) -> Episodes:
        return Episodes.cat([Episodes.from_batch(part.sample(), self.spec.episode_limit, self.spec.obs_dim)
                             for part in self.parts])

    def state_dict(self) -> dict[str, Any]:
        return {"parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for part, saved in zip(self.parts, state["parts"], strict=True):
            part.load_state_dict(saved)


def agent_view(r: Trajectory, agent: int) -> Trajectory:
    """Agent ``agent``'s part of rollout ``r`` (its observations, actions, rewards, masks; no global state), the
    agent axis kept with size 1: what one agent may remember of its own episodes."""
    one = slice(agent, agent + 1)
    take = lambda x: None if x is None else x[:, :, one]  # noqa: E731
    return dataclasses.replace(r, obs=take(r.obs), avail=take(r.avail), actions=take(r.actions),
                               rewards=take(r.rewards), final_obs=take(r.final_obs), state=r.state[..., :0],
                               final_state=r.final_state[..., :0], final_avail=take(r.final_avail))


# ---- the learner ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AdversarialConfig(PPOConfig):
    """Fields of every adversarial learner (defaults: DM², Wang et al. App. C Table 2 and their code), beyond
    :class:`~offmarl.algos._ppo.PPOConfig`'s:

    reward: ``mixed`` (r = r_env + c · r_D) or ``imitation`` (r = r_D).
    reward_coef: c (0.3; DM² Table 2 tunes it per map: 0.3 on 5m_vs_6m and 3s_vs_3z, 0.05 on 3s_vs_4z).
    disc_hidden, disc_layers, disc_activation: the discriminator's hidden width, hidden layers and activation
        (64, 2, tanh: DM²'s obs → 64 → 64 → 1).
    disc_lr, disc_weight_decay: its Adam (1e-3, torch's default rate as in DM²'s code; L2 weight decay 0).
    disc_steps: discriminator steps per PPO update (120, "discr epochs"). DM²'s code updates PPO on 255 whole
        episodes (its IPPO ``batch_size``; 12-15k frames on SMAC maps), offmarl on one rollout (3200 frames by
        default), so 120 steps per update here is about 4x DM²'s discriminator steps per env frame; 30 matches
        that rate (the dm2 bench suites use it).
    disc_batch_episodes: episodes of each side per discriminator step (64, "batch size").
    policy_buffer_episodes: the latest finished episodes the policy side is drawn from (1024, "buffer size").
    """

    reward: str = "mixed"
    reward_coef: float = 0.3
    disc_hidden: int = 64
    disc_layers: int = 2
    disc_activation: str = "tanh"
    disc_lr: float = 1e-3
    disc_weight_decay: float = 0.0
    disc_steps: int = 120
    disc_batch_episodes: int = 64
    policy_buffer_episodes: int = 1024


@dataclasses.dataclass(frozen=True)
class DemonstrationFields:
    """Fields of the learners that imitate demonstrations (mixed into their ``Config``):

    demo_episodes: demonstration episodes each agent's pool holds (1000, DM²'s "n exp eps").
    bc_steps: behaviour-cloning steps on the demonstrations before online learning (stage ``bc``; 0: none).
        They count one step of the budget each; the rest of the budget is env frames.
    bc_batch_episodes: demonstration episodes per behaviour-cloning step (64).
    """

    demo_episodes: int = 1000
    bc_steps: int = 0
    bc_batch_episodes: int = 64


@dataclasses.dataclass(frozen=True)
class GAILConfig(AdversarialConfig):
    """A GAIL discriminator's fields, beyond :class:`AdversarialConfig`'s:

    grad_penalty: λ of the gradient penalty (10, DM²'s code; 0: none).
    gail_reward: ``logit`` | ``neg_log_d`` | ``centered_d`` (:func:`gail_reward`).
    """

    grad_penalty: float = 10.0
    gail_reward: str = "logit"


@dataclasses.dataclass(frozen=True)
class ImitationBaselineFields:
    """The defaults MA-GAIL's and MA-AIRL's codes share (Song et al.; Yu et al.), mixed in first so they
    override :class:`AdversarialConfig`'s DM² defaults: the discriminator's reward is the agents' only reward
    (``reward=imitation``), hidden layers of 128 with ReLU, one discriminator step per policy update, and 500
    behaviour-cloning steps on the demonstrations before interacting (their warm start)."""

    reward: str = "imitation"
    disc_hidden: int = 128
    disc_activation: str = "relu"
    disc_steps: int = 1
    bc_steps: int = 500


#: the contract test's tiny demonstration settings (``toy_pick``'s 24 expert episodes) for the learners that imitate
DEMONSTRATION_CONTRACT_OVERRIDES = {"demo_episodes": 24, "bc_batch_episodes": 4}


def check_adversarial_config(name: str, c: AdversarialConfig) -> None:
    if c.reward not in REWARDS:
        raise ValueError(f"{name}: reward must be one of {', '.join(REWARDS)}, got {c.reward!r}")
    if c.disc_activation not in ACTIVATIONS:
        raise ValueError(f"{name}: unknown disc_activation {c.disc_activation!r}; known: {', '.join(ACTIVATIONS)}")
    positive = ["disc_hidden", "disc_layers", "disc_steps", "disc_batch_episodes", "policy_buffer_episodes"]
    positive += [f for f in ("demo_episodes", "bc_batch_episodes") if hasattr(c, f)]
    for field in positive:
        if getattr(c, field) < 1:
            raise ValueError(f"{name}: {field} must be >= 1, got {getattr(c, field)}")
    if getattr(c, "bc_steps", 0) < 0:
        raise ValueError(f"{name}: bc_steps must be >= 0, got {c.bc_steps}")
    if getattr(c, "discriminator", DISCRIMINATORS[0]) not in DISCRIMINATORS:
        raise ValueError(f"{name}: discriminator must be one of {', '.join(DISCRIMINATORS)}, got {c.discriminator!r}")
    if isinstance(c, GAILConfig) and c.gail_reward not in GAIL_REWARDS:
        raise ValueError(f"{name}: gail_reward must be one of {', '.join(GAIL_REWARDS)}, got {c.gail_reward!r}")


class AdversarialPPO(PPOLearner):
    """PPO on a discriminator's rewards (module docstring). Subclasses build the discriminator
    (:meth:`build_discriminator`) and say how it scores steps (:meth:`target_logits` etc.); a learner that
    imitates demonstrations learns from ``"dataset+env"`` (its dataset: the demonstrations)."""

    Config = AdversarialConfig
    learns_from = ("dataset+env",)
    share_actor = False
    share_critic = False
    #: the discriminator reads the agents' actions too (MA-GAIL, MA-AIRL), not their observations alone (DM²)
    disc_reads_actions: ClassVar[bool] = False
    contract_overrides = {**PPOLearner.contract_overrides, "disc_hidden": 8, "disc_steps": 2,
                          "disc_batch_episodes": 4, "policy_buffer_episodes": 32, "disc_lr": 1e-2}

    def __init__(self, spec: EnvSpec, config: AdversarialConfig, device: str | torch.device = "cpu"):
        check_adversarial_config(self.name, config)
        self.needs_actions = self.disc_reads_actions or getattr(config, "bc_steps", 0) > 0
        super().__init__(spec, config, device)
        n, c = spec.n_agents, config
        self.units = 1 if self.centralized_discriminator else n
        step_width = spec.obs_dim + (self.action_width if self.disc_reads_actions else 0)
        self.step_in = step_width * (n if self.units == 1 else 1)
        self.discriminator = self.build_discriminator().to(self.device)
        self.disc_opt = OptimizerWrapper(self.discriminator.parameters(), "adam", c.disc_lr,
                                         weight_decay=c.disc_weight_decay)
        self.policy_buffer = EpisodeReplay(c.policy_buffer_episodes, spec.episode_limit, n, spec.obs_dim, 0,
                                           spec.n_actions if spec.discrete else 1,
                                           None if spec.discrete else spec.act_dim)
        self.buffer_rng = np.random.default_rng(0)  # the policy side's draws; reseeded at fit start
        self.interpolation = torch.Generator(device=self.device).manual_seed(0)  # the gradient penalty's α
        self.demonstrations: Demonstrations | None = None  # built at fit start from the source's dataset
        self._demonstrations_state: dict[str, Any] | None = None  # their draws' state, loaded before they exist
        self.disc_updates = 0

    # ---- what subclasses say ------------------------------------------------------------------------------
    @property
    def centralized_discriminator(self) -> bool:
        """One discriminator on the joint steps instead of one per agent (a config's ``discriminator`` field
        chooses; without one, every agent has its own)."""
        return getattr(self.config, "discriminator", "decentralized") == "centralized"

    def build_discriminator(self) -> torch.nn.Module:
        raise NotImplementedError

    def step_logits(self, ep: Episodes, target: bool) -> torch.Tensor:
        """The discriminator's logits ``[B, L, n]`` of batch ``ep`` (``target``: the target side)."""
        raise NotImplementedError

    def penalty(self, target: Episodes, policy: Episodes) -> torch.Tensor | None:
        """The regularizer added to the discriminator's loss (None: none)."""
        return None

    def imitation_reward(self, r: Trajectory) -> torch.Tensor:
        """``r_D [T, B, n]`` of every step of rollout ``r`` (on the learner's device)."""
        raise NotImplementedError

    def target_batch(self) -> Episodes:
        """A batch of target episodes (label 1): the demonstrations by default."""
        return self.demonstrations.sample()

    def targets_ready(self) -> bool:
        return True

    # ---- inputs -------------------------------------------------------------------------------------------
    @property
    def action_width(self) -> int:
        return self.spec.n_actions if self.spec.discrete else self.spec.act_dim

    def disc_inputs(self, obs: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
        """``obs [..., n, d]`` (and ``actions``: one-hot if discrete) → the units' inputs ``[..., G, in]``."""
        x = obs
        if actions is not None:
            a = F.one_hot(actions.long(), self.spec.n_actions).to(obs.dtype) if self.spec.discrete else actions
            x = torch.cat([obs, a], dim=-1)
        return x.flatten(-2).unsqueeze(-2) if self.units == 1 else x

    def unit_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """``[..., n]`` → ``[..., G]``: a centralized unit's step is real where the joint step is."""
        return mask[..., :1] if self.units == 1 else mask

    # ---- stages: behaviour cloning, then online ------------------------------------------------------------
    @property
    def learns_demonstrations(self) -> bool:
        return "dataset+env" in self.learns_from

    def stage_schedule(self, total_steps: int) -> StageSchedule:
        bc = getattr(self.config, "bc_steps", 0)
        if not bc:
            return super().stage_schedule(total_steps)
        if total_steps <= bc:
            raise ValueError(f"{self.name}: a budget of {total_steps} steps cannot hold bc_steps={bc} behaviour-"
                             "cloning steps and online learning after them")
        return StageSchedule((("bc", bc), ("main", total_steps - bc)))

    def stage_source(self, name: str) -> str:
        return "dataset" if name == "bc" else "env"

    def make_sampler(self, source: Any, seed: int) -> Demonstrations:
        """Behaviour cloning's batches (stage ``bc``): demonstrations with their actions."""
        return self.make_demonstrations(source, self.config.bc_batch_episodes, seed, require_actions=True)

    def make_demonstrations(self, dataset: Dataset, batch: int, seed: int, require_actions: bool) -> Demonstrations:
        return Demonstrations(dataset, self.spec, self.config.demo_episodes, self.demo_sampling, batch, seed,
                              require_actions)

    @property
    def demo_sampling(self) -> str:
        return "concurrent"

    def on_fit_start(self, source: Any) -> None:
        super().on_fit_start(source)
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())  # from the seeded global RNG
        self.buffer_rng = np.random.default_rng(seed)
        self.interpolation.manual_seed(seed)
        dataset = source_dataset(source)
        if self.learns_demonstrations and dataset is not None:
            self.demonstrations = self.make_demonstrations(dataset, self.config.disc_batch_episodes, seed + 1,
                                                           self.disc_reads_actions)
            if self._demonstrations_state is not None:
                self.demonstrations.load_state_dict(self._demonstrations_state)

    # ---- the update -----------------------------------------------------------------------------------------
    def update(self, batch: Any) -> dict[str, float]:
        if self.stage == "bc":
            return self.behaviour_cloning_step(batch.to(self.device))
        rollout: Trajectory = batch
        self.remember(rollout)
        if len(self.policy_buffer) < self.config.disc_batch_episodes or not self.targets_ready():
            return rollout_stats(rollout)  # filling the buffers: no update yet
        logs = self.train_discriminator()
        with torch.no_grad():
            imitation = self.imitation_reward(to_device(rollout, self.device)).float().cpu()  # [T, B, n]
        c = self.config
        rewards = rollout.rewards + c.reward_coef * imitation if c.reward == "mixed" else imitation
        logs.update(super().update(dataclasses.replace(rollout, rewards=rewards)))
        logs["imitation_reward"] = float(imitation.mean())
        return logs

    def remember(self, rollout: Trajectory) -> None:
        """Keep the rollout's finished episodes (the policy side; no global state)."""
        self.policy_buffer.add(dataclasses.replace(rollout, state=rollout.state[..., :0],
                                                   final_state=rollout.final_state[..., :0]))

    def policy_batch(self) -> Episodes:
        raw = self.policy_buffer.sample(self.config.disc_batch_episodes, self.buffer_rng)
        return Episodes.from_batch(raw, self.spec.episode_limit, self.spec.obs_dim)

    def train_discriminator(self) -> dict[str, float]:
        per_unit = self.units > 1
        totals: dict[str, float] = {}
        for _ in range(self.config.disc_steps):
            target, policy = self.target_batch(), self.policy_batch()
            length = max(target.real_length, policy.real_length)  # both sides as long: the penalty pairs their steps
            target, policy = target.trim(length).to(self.device), policy.trim(length).to(self.device)
            target_logits, policy_logits = self.step_logits(target, True), self.step_logits(policy, False)
            loss = discriminator_loss(target_logits, policy_logits, target.mask, policy.mask, per_unit)
            logs = {"disc_loss": loss.item()}
            regularizer = self.penalty(target, policy)
            if regularizer is not None:
                logs["disc_penalty"] = regularizer.item()
                loss = loss + regularizer
            self.disc_opt.minimize(loss)
            with torch.no_grad():
                logs["target_d"] = masked_mean(torch.sigmoid(target_logits), target.mask, False).item()
                logs["policy_d"] = masked_mean(torch.sigmoid(policy_logits), policy.mask, False).item()
            for key, value in logs.items():
                totals[key] = totals.get(key, 0.0) + value / self.config.disc_steps
        self.disc_updates += 1
        return totals

    # ---- behaviour cloning -------------------------------------------------------------------------------
    def sequence_log_probs(self, ep: Episodes) -> torch.Tensor:
        """``log π_i(a_t | o_≤t)`` ``[B, L, n]`` of the batch's actions, the actor run over whole episodes."""
        L, B = ep.obs.shape[1], ep.obs.shape[0]
        starts = torch.zeros(L, B, dtype=torch.bool, device=ep.obs.device)
        starts[0] = True
        features = self.actor.sequence(self.actor_inputs(ep.time_major("obs")), None, starts)  # [L, B, n, H]
        log_prob, _ = self.policy_head.evaluate(features, ep.time_major("actions"), ep.time_major("avail"))
        return log_prob.transpose(0, 1)

    def behaviour_cloning_step(self, demo: Episodes) -> dict[str, float]:
        """Maximum likelihood of the demonstrations' actions (DM² App. B): ``−E[log π_i(a_i | o_i)]``."""
        loss = -masked_mean(self.sequence_log_probs(demo), demo.mask, self.decentralized_training)
        self.actor_opt.minimize(loss)
        return {"bc_loss": loss.item()}

    # ---- decentralization and persistence ------------------------------------------------------------------
    def agent_parameters(self, agent: int) -> list[torch.Tensor]:
        own = super().agent_parameters(agent)
        return own + [p[agent] for p in self.discriminator.parameters()]

    def state_dict(self) -> dict[str, Any]:
        return {**self.saved_state(), "policy_buffer": self.policy_buffer.state_dict()}

    def saved_state(self) -> dict[str, Any]:
        """Everything but the episode buffers (hundreds of MB on SMAX maps; only the fit loop's checkpoint keeps
        them)."""
        demos = self.demonstrations.state_dict() if self.demonstrations is not None else self._demonstrations_state
        return {**super().state_dict(), "discriminator": self.discriminator.state_dict(),
                "disc_opt": self.disc_opt.state_dict(), "buffer_rng": self.buffer_rng.bit_generator.state,
                "interpolation": self.interpolation.get_state(), "demonstrations": demos,
                "disc_updates": self.disc_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.discriminator.load_state_dict(state["discriminator"])
        self.disc_opt.load_state_dict(state["disc_opt"])
        self.buffer_rng.bit_generator.state = state["buffer_rng"]
        self.interpolation.set_state(state["interpolation"])
        self.disc_updates = int(state["disc_updates"])
        if "policy_buffer" in state:
            self.policy_buffer.load_state_dict(state["policy_buffer"])
        self._demonstrations_state = state["demonstrations"]
        if self.demonstrations is not None and state["demonstrations"] is not None:
            self.demonstrations.load_state_dict(state["demonstrations"])


class GAILPPO(AdversarialPPO):
    """A GAIL discriminator (:class:`~offmarl.nets.discriminator.GAILDiscriminator`): logits of each step's
    input, the gradient penalty on interpolates, :func:`gail_reward` of the logits of the rollout's steps."""

    Config = GAILConfig

    def build_discriminator(self) -> torch.nn.Module:
        c = self.config
        return GAILDiscriminator(self.units, self.step_in, self.spec.n_agents if self.units == 1 else 1, c.disc_hidden,
                                 c.disc_layers, c.disc_activation)

    def step_input(self, obs: torch.Tensor, actions: torch.Tensor | None) -> torch.Tensor:
        return self.disc_inputs(obs, actions if self.disc_reads_actions else None)

    def step_logits(self, ep: Episodes, target: bool) -> torch.Tensor:
        return self.discriminator(self.step_input(ep.obs, ep.actions)).flatten(-2)

    def penalty(self, target: Episodes, policy: Episodes) -> torch.Tensor | None:
        if self.config.grad_penalty <= 0:
            return None
        x_target, x_policy = self.step_input(target.obs, target.actions), self.step_input(policy.obs, policy.actions)
        alpha = torch.rand(*x_target.shape[:-1], 1, generator=self.interpolation, device=x_target.device)
        both = self.unit_mask(target.mask & policy.mask)  # [B, L, G]: a real step on either side
        per_step = gradient_penalty(self.discriminator, x_target, x_policy, alpha)
        return self.config.grad_penalty * masked_mean(per_step, both, self.units > 1)

    def imitation_reward(self, r: Trajectory) -> torch.Tensor:
        logits = self.discriminator(self.step_input(r.obs, r.actions)).flatten(-2)  # [T, B, n]
        return gail_reward(logits, self.config.gail_reward)



class ImitationBaseline:
    """What MA-GAIL and MA-AIRL (Tseng et al.'s imitation baselines) share as learners, mixed in before their
    discriminator's learner: the discriminator reads observations *and* actions, each agent's critic reads
    the global state (the concatenated observations where the env has none), as MACK's centralized critics
    in the originals, and the contract test's tiny run has 2 behaviour-cloning steps."""

    critic_input = "state"
    disc_reads_actions: ClassVar[bool] = True
    contract_overrides = {**AdversarialPPO.contract_overrides, **DEMONSTRATION_CONTRACT_OVERRIDES, "bc_steps": 2}
