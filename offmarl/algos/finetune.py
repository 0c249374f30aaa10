"""Online finetuning of an offline policy with MAPPO (``finetune``): ``distill``, ``idt``, ``madt`` or ``bc`` trained
on a dataset, then continued in the environment with the offline policy as MAPPO's actor.

Reference: Tseng, Wang, Yen-Chen & Isola, *Offline Multi-Agent Reinforcement Learning with Knowledge
Distillation* (NeurIPS 2022), §4.3 and Fig. 6 (finetuning vs MAPPO from scratch), App. B.7 and Table 10 (online
lr 1e-4; "online epochs" 10 on Fill-In, Equal Space and Grid-World, 50 on Highway; no online settings for SMAC:
the paper did not finetune there). App. B.7: "the finetuning procedure is as the same as that of MADT" (Meng et
al., *Offline Pre-trained Multi-Agent Decision Transformer*, and their public code, read for the facts below);
"the optimization algorithm used in finetuning phase is MAPPO" (Yu et al., *The Surprising Effectiveness of PPO
in Cooperative Multi-Agent Games*). The PPO machinery is :mod:`offmarl.algos._ppo`'s (GAE, ValueNorm, the
clipped surrogate and value losses, minibatches); rollouts come from the one rollout engine, training from the
one fit loop.

Environments: Fig. 6 is missing from our copy of the paper, and so are the environments its panels show; the
bench suite ``tseng-fig6`` finetunes on Equal Space and Grid-World, Tseng's native environments with Table 10
online settings, against MAPPO from scratch on the same frames.

One learner, two kinds of stage (why one learner: a bench suite runs "offline, then finetune" as one run, and
``offmarl finetune RUN`` is the same learner started at its online stage from RUN's weights; the fit loop's
stages give both exact resume, stage hand-overs and one learning curve):

1. the offline algorithm's own stages (distill: ``teacher``, ``student``; the others: ``offline``), on the
   dataset, for ``offline_steps`` gradient steps -- the offline algorithm's update, unchanged;
2. ``online``: MAPPO in the dataset's environment, for the rest of the budget in env frames:

       L_actor  = E_{i,t}[ −min(ρ Â, clip(ρ, 1 − ε, 1 + ε) Â) ] − c_H E[ H(π(·|window^i_t)) ],   ρ = π / π_old
       L_critic = E_{i,t}[ max(Huber_δ(V(s_t, i) − R̂), Huber_δ(clip(V(s_t, i), V_old ± ε) − R̂)) ]

   The actor is the offline policy network itself (the students for distill; the shared DT for madt; the
   per-agent DTs for idt; the per-agent MLPs for bc), read as a distribution: a categorical over its logits
   (unavailable actions masked), or for continuous actions a Gaussian whose mean is its squashed action and
   whose state-independent log standard deviation (one per agent, −1 at the start) is learned. Its greedy
   action is the offline policy's action, and evaluation runs the offline algorithm's own decentralized
   policies on the current weights, so execution stays decentralized: agent i acts on its own observations
   (and rewards, for a return-conditioned policy) only. The critic is MAPPO's, added fresh: one feed-forward
   network (LayerNorm, 2 × 64 ReLU) on the global state (the concatenated observations where the env has
   none) with the agent's one-hot id, predicting each agent's value; training is centralized (CTDE).

Context and return-to-go online. A policy with context acts on windows of its last K steps, as in
evaluation: agent i's window holds K steps of (return-to-go, observation, action, timestep) of its current
episode, left-padded after a reset (a Decision Transformer; K = ``context_len``), or its last H observations
(bc; H = ``history``). The windows live in the rollout engine's hidden state (``[B, n, W]`` float64, see
:class:`Windows`), so the engine carries them across steps and rollouts, zeroes them at episode ends and
stores every step's -- and the PPO update recomputes each log-probability on exactly the window the action was
taken with (the stored window, with the step's observation pushed in as at acting time). The return-to-go
starts each episode at the offline policy's evaluation target (its ``target_return``: by default each agent's
best episode return in the dataset) and is decremented by the agent's own rewards (``carry_hidden``), as in
evaluation (:class:`~offmarl.data.returns.ReturnToGoTracker`, computed alike in float64), so at step 0 the
online policy conditions exactly as the offline one (the rollout engine records rewards as float32, what the
native environments return). The target stays fixed while finetuning (MADT's code
fixes its target return; the line that raises it to the best online return is commented out there).

"Online epochs" (Table 10), settled from MADT's public online code: its ``--online_epochs`` counts
rollout-and-update iterations -- each plays ``online_buffer_size`` = 64 episodes and then trains PPO for
``online_ppo_epochs`` = 10 passes of one full batch -- mirroring ``--offline_epochs`` (passes over the dataset),
whose name Tseng's table also uses. So Table 10's 10 (50 on Highway) online epochs are 10 (50) iterations of 64
episodes, not PPO epochs; offmarl's default budget for the online stage is 10 × 64 episodes × the episode
limit in frames (``online_frames``), one update per 64 episodes' frames (``rollout_length`` = 8 episode limits
with offmarl's default 8 sub-envs) with ``ppo_epochs`` = 10 (MADT's online PPO epochs).

What resets going online, and what offmarl does about it (the known failure of offline-to-online code is a
policy that gets worse in its first online updates):

* the optimizer: the offline AdamW (weight decay, warm-up schedule) is not continued; a fresh Adam (MAPPO's,
  ε = 1e-5) at the constant online rate ``lr`` = 1e-4 (Table 10) steps the actor, gradients clipped to
  ``max_grad_norm`` = 0.5 (MADT's code), and the critic at ``critic_lr`` = 1e-3 (MADT's code: 10 × the actor's);
* dropout: off while finetuning (the actor in evaluation mode), so π_old and π agree on an unchanged network
  and the first PPO ratio is exactly 1. Departure: MADT's code trains the actor in train mode (dropout on)
  against old log-probabilities from an evaluation-mode copy, which makes ρ ≠ 1 before any update;
* exploration: actions are sampled from the policy (the offline policy is evaluated greedily); the entropy
  bonus is MAPPO's / MADT's c_H = 0.01;
* value normalization: the critic and its :class:`~offmarl.algos._ppo.ValueNorm` start fresh, so the first
  advantages would come from an untrained baseline. ``critic_warmup`` = 1: the first online update trains
  the critic (and the value normalizer) alone, on a rollout of the unchanged offline policy; the actor moves
  from the second update on. (MADT also pre-trains its critic offline; the offline algorithms here have none.)

Fields (beyond :class:`~offmarl.algos._ppo.PPOConfig`, whose defaults this overrides as stated above):

    steps: the whole budget (offline gradient steps, then env frames); 0 = :meth:`Finetune.default_steps`:
        the offline algorithm's configured steps plus ``online_frames``.
    offline: ``key=value`` settings of the offline algorithm's config over its per-env defaults (as ``--set``;
        e.g. ``["hidden=64", "context_len=10"]``). Once built, the learner's config lists every field of it.
    offline_steps: gradient steps of the offline stages; None = the offline algorithm's configured steps, scaled
        with the budget (the offline share of the default budget, so that a budget scaled by s holds s × the
        offline steps and s × ``online_frames``); 0 = no offline stage (the actor starts from its initial
        weights, or from an offline run: ``offmarl finetune``).
    online_frames: the online stage's frames in the default budget; 0 = Table 10's 10 online epochs of MADT's
        64 episodes, ``10 × 64 ×`` the episode limit (Highway's 50 online epochs: set it).
    rollout_length: steps per sub-env per update; 0 = 8 × the episode limit (64 episodes' frames with 8 sub-envs).
    num_minibatches: minibatches per PPO epoch, 8. Departure: MADT takes one full-batch step per PPO epoch; a
        batch of 64 episodes' K-step windows does not fit a CPU's memory (Grid-World: 19,200 windows of 60
        tokens), so it is cut into 8 minibatches (8 steps per PPO epoch).
    recurrent: False (the critic is feed-forward; the actor's memory is its window).
    critic_warmup: online updates in which only the critic learns (1; 0: none).

Variants: the offline algorithm, ``distill`` (the paper's method, also the default when none is named),
``idt``, ``madt`` or ``bc``.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from offmarl.algos._ppo import PPOConfig, PPOLearner, _Batch
from offmarl.algos._sequence import DTAlgorithm
from offmarl.algos.base import (
    Algorithm,
    StageSchedule,
    build_config,
    env_defaults,
    get_algo_class,
    parse_sets,
    register_algo,
    set_text,
)
from offmarl.data.sources import source_dataset
from offmarl.data.trajectory import ActStep
from offmarl.envs.base import EnvSpec
from offmarl.nets.action_head import LogStd
from offmarl.nets.actor_critic import action_distribution, log_prob_and_entropy, sample_action

OFFLINE_ALGOS = ("distill", "idt", "madt", "bc")
DEFAULT_OFFLINE = "distill"
ONLINE = "online"
EPISODES_PER_UPDATE = 64  # MADT's online_buffer_size: episodes per rollout-and-update iteration
ONLINE_EPOCHS = 10  # Tseng et al. Table 10 (Fill-In, Equal Space, Grid-World; 50 on Highway)
DEFAULT_SUB_ENVS = 8  # offmarl's default sub-envs; rollout_length 0 = this many episodes per sub-env

# the offline algorithms' tiny settings for the contract test (the DTs' and bc's own contract_overrides)
_TINY_DT = ("hidden=16", "n_layers=1", "n_heads=2", "feature_dim=8", "context_len=4", "batch_size=8", "lr=1e-3")
_TINY_BC = ("hidden=16", "history=2", "batch_size=16", "lr=3e-3")


@dataclasses.dataclass(frozen=True)
class Config(PPOConfig):
    """Finetuning (module docstring: the math, the reference and every field)."""

    steps: int = 0
    lr: float = 1e-4
    critic_lr: float = 1e-3
    ppo_epochs: int = 10
    num_minibatches: int = 8
    max_grad_norm: float = 0.5
    rollout_length: int = 0
    recurrent: bool = False
    offline: tuple[str, ...] = ()
    offline_steps: int | None = None
    online_frames: int = 0
    critic_warmup: int = 1


# ---- the windows in the hidden state ---------------------------------------------------------------------
class Windows:
    """Each agent's last ``K`` steps packed in one float64 row of width ``W = 1 + 3K + K d + K a``::

        [remaining return (unscaled) | rtg K | timestep K | mask K | obs K·d | action K·a]

    (``a``: 1 for a discrete action, its index; ``act_dim`` for a continuous one). Newest step last; a fresh row
    (all zeros: the engine zeroes the hidden state of ended episodes) has no real step, and the next push starts
    its return-to-go at the target. float64 keeps the remaining return exact (as the evaluation tracker's); every
    other entry holds a float32 value (the network reads them as float32)."""

    def __init__(self, K: int, obs_dim: int, action_width: int):
        self.K, self.d, self.a = int(K), int(obs_dim), int(action_width)
        self.sizes = (1, self.K, self.K, self.K, self.K * self.d, self.K * self.a)
        self.width = sum(self.sizes)

    def unpack(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """``h [..., n, W]`` → views ``remaining [..., n]``, ``rtg``/``timesteps``/``mask [..., n, K]``,
        ``obs [..., n, K, d]``, ``actions [..., n, K, a]``."""
        remaining, rtg, timesteps, mask, obs, actions = h.split(self.sizes, dim=-1)
        return {"remaining": remaining[..., 0], "rtg": rtg, "timesteps": timesteps, "mask": mask,
                "obs": obs.unflatten(-1, (self.K, self.d)), "actions": actions.unflatten(-1, (self.K, self.a))}

    @torch.no_grad()
    def push(self, h: torch.Tensor, obs: torch.Tensor, target: torch.Tensor, scale: torch.Tensor, max_t: int
             ) -> torch.Tensor:
        """The windows after appending step t: ``obs [..., n, d]``, return-to-go ``float32(remaining · scale)``
        (``remaining`` := ``target [n]`` on an episode's first step), timestep ``t`` (clamped to ``max_t``), mask
        True, action 0 (a placeholder: the DT reads the action from the observation token)."""
        w = self.unpack(h)
        fresh = w["mask"][..., -1] == 0  # [..., n]: no real step yet in this episode
        remaining = torch.where(fresh, target.to(h.dtype), w["remaining"])  # [..., n]
        rtg = (remaining * scale.to(h.dtype)).float().to(h.dtype)  # as ReturnToGoTracker.current
        t = torch.where(fresh, torch.zeros_like(remaining), (w["timesteps"][..., -1] + 1).clamp(max=max_t))

        def shifted(x: torch.Tensor, new: torch.Tensor) -> torch.Tensor:  # drop the oldest step, append the new
            return torch.cat([x[..., 1:], new.unsqueeze(-1)], dim=-1)

        new_obs = obs.to(h.dtype).unsqueeze(-2)  # [..., n, 1, d]
        return torch.cat([remaining.unsqueeze(-1), shifted(w["rtg"], rtg), shifted(w["timesteps"], t),
                          shifted(w["mask"], torch.ones_like(t)),
                          torch.cat([w["obs"][..., 1:, :], new_obs], dim=-2).flatten(-2),
                          torch.cat([w["actions"][..., 1:, :], torch.zeros_like(w["actions"][..., :1, :])],
                                    dim=-2).flatten(-2)], dim=-1)

    def with_action(self, h: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The windows with the newest step's action set: ``action [..., n]`` (index) or ``[..., n, act_dim]``."""
        out = h.clone()
        a = action.to(h.dtype).reshape(*h.shape[:-1], self.a)
        out[..., self.width - self.a:] = a
        return out

    def carry(self, h: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """``remaining −= reward`` of each agent (its own reward ``[..., n]``, unscaled, in float64)."""
        out = h.clone()
        out[..., 0] -= rewards.to(h.dtype)
        return out


# ---- the offline policy as an actor ------------------------------------------------------------------------
class _DTActor:
    """A Decision Transformer's raw outputs at the newest step of each window (distill's students, idt, madt)."""

    def __init__(self, algo: DTAlgorithm):
        self.algo, self.model = algo, algo.model
        self.K = int(algo.config.context_len)

    def conditioning(self) -> tuple[np.ndarray, np.ndarray]:
        """The evaluation target ``[n]`` and return-to-go scale ``[n]`` (the offline policy's, unscaled target)."""
        return self.algo.target_returns(), self.algo.stats.reward_scale

    def raw(self, w: dict[str, torch.Tensor], discrete: bool) -> torch.Tensor:
        """``[B, n, A | act_dim]`` from unpacked windows of all n agents (``[B, n, ...]``); agent i's output reads
        agent i's window only (its own member network, or its own batch row of the shared one)."""
        rtg = w["rtg"].transpose(1, 2).float()  # [B, K, n]
        obs = w["obs"].transpose(1, 2).float()  # [B, K, n, d]
        actions = w["actions"].transpose(1, 2)  # [B, K, n, a]
        actions = actions[..., 0].long() if discrete else actions.float()
        timesteps, mask = w["timesteps"][:, 0].long(), w["mask"][:, 0] > 0  # [B, K]: one episode clock per sub-env
        out = self.model(rtg, obs, actions, timesteps, mask, last_only=True).action  # [n, B, 1, A]
        return out[:, :, -1].transpose(0, 1)


class _BCActor:
    """Behaviour cloning's per-agent MLPs on each agent's last H observations (cut to its true width)."""

    def __init__(self, algo: Algorithm):
        self.algo, self.model = algo, algo.nets
        self.K = int(algo.config.history)

    def conditioning(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.algo.spec.n_agents
        return np.zeros(n), np.ones(n)  # not return-conditioned: the window's return-to-go is unused

    def raw(self, w: dict[str, torch.Tensor], discrete: bool) -> torch.Tensor:
        obs = w["obs"].float()  # [B, n, H, d], zeros before the episode's first step (as BCAgentPolicy's buffer)
        return torch.stack([net(obs[:, i, :, :d].flatten(1)) for i, (net, d)
                            in enumerate(zip(self.model, self.algo.spec.obs_dims))], dim=1)  # [B, n, A]


# ---- the learner ----------------------------------------------------------------------------------------------
@register_algo
class Finetune(PPOLearner):
    """An offline algorithm's stages, then MAPPO with its policy as the actor (module docstring)."""

    name = "finetune"
    Config = Config
    variants = OFFLINE_ALGOS
    learns_from = ("dataset+env",)
    critic_input = "state"
    share_actor = True  # one actor optimizer over the offline network (MAPPO clips one global gradient norm)
    share_critic = True
    curve_starts = (ONLINE,)
    contract_overrides = {**PPOLearner.contract_overrides, "offline": _TINY_DT, "offline_steps": 2,
                          "num_minibatches": 2}
    # the default (distill: per-agent students, two offline stages) and bc (an MLP actor); madt's shared DT actor
    # is checked in tests/test_finetune.py
    contract_variants: ClassVar[dict[str, dict[str, Any]]] = {"bc": {"offline": _TINY_BC}}

    def __init__(self, spec: EnvSpec, config: Config, device: str | torch.device = "cpu"):
        if config.variant is not None and config.variant not in OFFLINE_ALGOS:
            raise ValueError(f"finetune: no offline algorithm {config.variant!r} to finetune (--variant); known: "
                             f"{', '.join(OFFLINE_ALGOS)}")
        offline_cls, offline_config = self.offline_config(config, spec)
        for field in ("rollout_length", "critic_warmup", "offline_steps", "online_frames"):
            if (getattr(config, field) or 0) < 0:
                raise ValueError(f"finetune: {field} must be >= 0, got {getattr(config, field)}")
        steps = config.steps if config.steps > 0 else self.default_steps(config, spec)
        config = dataclasses.replace(
            config, steps=steps, offline=tuple(set_text(k, v) for k, v in dataclasses.asdict(offline_config).items()),
            offline_steps=self._offline_share(config, spec, steps, offline_config),
            rollout_length=config.rollout_length or DEFAULT_SUB_ENVS * spec.episode_limit)
        # the offline algorithm first: the stage schedule (built by the base class) holds its stages
        budget = dataclasses.replace(offline_config, steps=config.offline_steps or offline_config.steps)
        self.offline = offline_cls(spec, budget, device=device)
        super().__init__(spec, config, device)

    # ---- the config ----------------------------------------------------------------------------------------
    @staticmethod
    def offline_config(config: Config, spec: EnvSpec) -> tuple[type[Algorithm], Any]:
        """The offline algorithm (the variant) and its config: its per-env defaults, then ``offline``."""
        name = config.variant or DEFAULT_OFFLINE
        cls = get_algo_class(name)
        return cls, build_config(cls, {**env_defaults(name, spec.name), **parse_sets(cls, config.offline)})

    @classmethod
    def default_steps(cls, config: Config, spec: EnvSpec) -> int:
        """The paper budget: the offline algorithm's steps (or ``offline_steps``), then ``online_frames`` (0:
        Table 10's 10 online epochs of 64 episodes of the env's episode limit)."""
        _, offline = cls.offline_config(config, spec)
        first = offline.steps if config.offline_steps is None else config.offline_steps
        online = config.online_frames or ONLINE_EPOCHS * EPISODES_PER_UPDATE * spec.episode_limit
        return int(first) + int(online)

    def _offline_share(self, config: Config, spec: EnvSpec, steps: int, offline_config: Any) -> int:
        """``offline_steps``, or (None) the offline algorithm's share of the default budget applied to ``steps``."""
        if config.offline_steps is not None:
            return int(config.offline_steps)
        default = self.default_steps(config, spec)
        return max(1, round(steps * offline_config.steps / default))

    # ---- stages -----------------------------------------------------------------------------------------------
    def _inner(self, name: str) -> str:
        """The offline algorithm's name of stage ``name`` (its single stage ``main`` is called ``offline`` here)."""
        return "main" if name == "offline" else name

    def stage_schedule(self, total_steps: int) -> StageSchedule:
        first = int(self.config.offline_steps)
        if first == 0:
            return StageSchedule(((ONLINE, int(total_steps)),))
        if total_steps <= first:
            raise ValueError(f"finetune: a budget of {total_steps} steps cannot hold offline_steps={first} offline "
                             "steps and online learning after them")
        inner = self.offline.stage_schedule(first)
        stages = tuple(("offline" if n == "main" else n, length) for n, length in inner.stages)
        return StageSchedule((*stages, (ONLINE, int(total_steps) - first)))

    def plan(self, total_steps: int) -> StageSchedule:
        schedule = super().plan(total_steps)
        if self.config.offline_steps:
            self.offline.plan(int(self.config.offline_steps))
        return schedule

    def stage_source(self, name: str) -> str:
        return "env" if name == ONLINE else "dataset"

    def enter_stage(self, name: str) -> None:
        super().enter_stage(name)
        if name != ONLINE:
            self.offline.enter_stage(self._inner(name))
        else:
            self.network.eval()  # no dropout online (module docstring)

    def stage_artifact(self, name: str) -> Any:
        return None if name == ONLINE else self.offline.stage_artifact(self._inner(name))

    def stage_check(self, name: str, evaluate: Any) -> dict[str, float]:
        return {} if name == ONLINE else self.offline.stage_check(self._inner(name), evaluate)

    # ---- data ---------------------------------------------------------------------------------------------------
    def make_sampler(self, dataset: Any, seed: int) -> Any:
        return self.offline.make_sampler(dataset, seed)

    def on_fit_start(self, source: Any) -> None:
        super().on_fit_start(source)
        if self.config.offline_steps:  # statistics from a run's weights are kept as they are
            self.offline.on_fit_start(source_dataset(source))

    def initialize_from(self, trained: Algorithm) -> None:
        """Start from a trained offline algorithm's weights (``offmarl finetune RUN``): same algorithm, same config
        (but for the step budget), else an error naming the difference."""
        if trained.name != self.offline.name:
            raise ValueError(f"finetune[{self.offline.name}] cannot start from a {trained.name} run")
        mine, theirs = dataclasses.asdict(self.offline.config), dataclasses.asdict(trained.config)
        for key in mine:
            if key != "steps" and mine[key] != theirs.get(key):
                raise ValueError(f"finetune[{self.offline.name}]: config {key!r} is {mine[key]!r}, the trained "
                                 f"run's is {theirs.get(key)!r}")
        self.offline.load_state_dict(copy.deepcopy(trained.state_dict()))

    # ---- the actor ----------------------------------------------------------------------------------------------
    def build_actor(self) -> list[nn.Parameter]:
        spec = self.spec
        self.policy = _BCActor(self.offline) if self.offline.name == "bc" else _DTActor(self.offline)
        self.network: nn.Module = self.policy.model
        self.windows = Windows(self.policy.K, spec.obs_dim, 1 if spec.discrete else spec.act_dim)
        self.log_std = None if spec.discrete else LogStd(self.n, spec.act_dim).to(self.device)
        extra = [] if self.log_std is None else list(self.log_std.parameters())
        return [*self.network.parameters(), *extra]

    @property
    def actor_learns(self) -> bool:
        return self.updates >= self.config.critic_warmup

    def _split(self, hidden: torch.Tensor | None) -> tuple[torch.Tensor | None, None]:
        return hidden, None  # the hidden state is the actor's windows; the critic is feed-forward

    def actor_inputs(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def initial_hidden(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(batch_size, self.n, self.windows.width, dtype=torch.float64, device=self.device)

    def push(self, hidden: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Step t's windows ``[B, n, W]``: ``hidden`` (the windows step t started from) with ``obs [B, n, d]``."""
        target, scale = self.policy.conditioning()
        as_tensor = lambda x: torch.as_tensor(np.asarray(x, np.float64), device=self.device)  # noqa: E731
        max_t = getattr(getattr(self.network, "spec", None), "max_timestep", 1) - 1
        return self.windows.push(hidden, obs, as_tensor(target), as_tensor(scale), max_t)

    def distribution(self, windows: torch.Tensor, avail: torch.Tensor | None) -> torch.distributions.Distribution:
        """The policy at the newest step of ``windows [B, n, W]``: categorical, or Gaussian around the squashed
        action."""
        raw = self.policy.raw(self.windows.unpack(windows), self.spec.discrete).float()  # [B, n, A | act_dim]
        if self.log_std is None:
            return action_distribution(raw, avail)
        return action_distribution(self.offline.head.squash(raw), None, self.log_std())

    @torch.no_grad()
    def act_train(self, obs, state, avail, hidden, generator) -> ActStep:
        windows = self.push(hidden, obs)  # [B, n, W]
        action, log_prob = sample_action(self.distribution(windows, avail), generator)
        played = action if self.spec.discrete else torch.maximum(torch.minimum(action, self.offline.head.high),
                                                                  self.offline.head.low)  # what the env executes
        value = self.value_head(self.critic.step(self.critic_inputs(obs, state), None)[0])  # [B, n]
        return ActStep(action=action, log_prob=log_prob, value=value, hidden=self.windows.with_action(windows, played))

    def carry_hidden(self, hidden: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        return self.windows.carry(hidden, rewards)

    def evaluate_actions(self, b: _Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities and entropies ``[1, M, n]`` on the windows the actions were taken with."""
        windows = self.push(b.actor_h0, b.actor_in[0])  # [M, n, W]: stored windows + the step's observation
        dist = self.distribution(windows, None if b.avail is None else b.avail[0])
        log_prob, entropy = log_prob_and_entropy(dist, b.actions[0])
        return log_prob.unsqueeze(0), entropy.unsqueeze(0)

    # ---- evaluation and persistence --------------------------------------------------------------------------
    def policies(self, target_return: float | np.ndarray | None = None) -> Any:
        """The offline algorithm's own decentralized greedy policies on the current weights (its target return
        unless ``target_return`` is given; bc is not return-conditioned)."""
        if target_return is None:
            return self.offline.policies()
        if not isinstance(self.offline, DTAlgorithm):
            raise ValueError(f"finetune[{self.offline.name}] is not return-conditioned; --target-return does not apply")
        return self.offline.policies(target_return=target_return)

    def policy_state(self) -> dict[str, Any]:
        """The actor: the offline algorithm's policy state and the Gaussian's log-std (continuous)."""
        return {"offline": self.offline.policy_state(), "log_std": None if self.log_std is None
                else self.log_std.state_dict()}

    def load_policy_state(self, state: dict[str, Any]) -> None:
        self.offline.load_policy_state(state["offline"])
        if self.log_std is not None:
            self.log_std.load_state_dict(state["log_std"])

    def state_dict(self) -> dict[str, Any]:
        # the offline algorithm whole (its optimizer steps in the offline stage), not only its policy state
        return {**super().state_dict(), "offline": self.offline.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.offline.load_state_dict(state["offline"])

    def update(self, batch: Any) -> dict[str, float]:
        if self.stage != ONLINE:
            return self.offline.update(batch)
        return super().update(batch)
