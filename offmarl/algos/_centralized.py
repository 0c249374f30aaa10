"""The scaffolding shared by the centralized value baselines (qmix, ma_cql, ma_icq, ma_bcq).

Centralized training, decentralized execution: per-agent networks (``offmarl.nets.agents``) feed a
mixer (``offmarl.nets.mixers``) that sees the global state during training; at execution agent i acts
from its own observation history only (:class:`NetworkAgentPolicy`).

Batches. Every update works on sequences ``[B, L]`` (:class:`Sequences`): a transition batch
(``TransitionSampler``; MLP agents with one-step targets) is a sequence of length 1, an episode batch
(``EpisodeSampler``; GRU agents, n-step / λ targets) is the episode padded to L with ``mask``.
Observations, states and action masks are extended by the step after the last, ``obs [B, L+1, n, d]``,
so one forward pass of a (recurrent) agent network gives the values of ``s_t`` (``[:, :L]``) and of
``s_{t+1}`` (``[:, 1:]``).

Reward. The mixer fits the team reward ``r_t = (1/n) Σ_i r_t^i`` (the papers' per-agent average; a
team reward broadcast to every agent is unchanged).

Config. Fields left None take the value of the preset (``offmarl.algos._value.PRESETS``) when the
algorithm is built; the saved config holds the resolved values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from offmarl.algos._value import frozen_copy, masked_mean, one_step_targets, resolve_preset, update_target
from offmarl.algos.base import AlgoConfig, Algorithm
from offmarl.core.optim import OptimizerWrapper
from offmarl.data.dataset import MultiAgentDataset
from offmarl.data.samplers import EpisodeSampler, TransitionSampler
from offmarl.envs.base import EnvSpec
from offmarl.nets.action_head import ActionHead
from offmarl.nets.agents import AGENT_KINDS, AgentNetwork
from offmarl.nets.mixers import make_mixer
from offmarl.policies.base import AgentPolicy, DecentralizedPolicy


@dataclass(frozen=True)
class MixedValueConfig(AlgoConfig):
    """Fields every centralized value baseline has (None: the preset's value, ``_value.PRESETS``).

    steps: gradient steps (10,000). Departure: Tseng's Tables 7–9 count "offline epochs" (500–1500)
        and SIT's Table 11 "training epoch 15000" of unstated size; offmarl counts updates.
    batch_size: transitions (MLP agents, one-step targets) or episodes (GRU agents, sequence targets)
        per update (tseng 128, sit 32).
    lr: learning rate of the agent networks and the mixer (tseng 1e-4, sit 5e-4).
    preset: ``tseng`` (Tseng App. B.4–B.6) | ``sit`` (SIT Table 11) | ``pymarl`` (online QMIX; an algorithm
        that also learns online starts from it there: ``online_preset``).
    agent: ``mlp`` | ``gru`` agent networks (tseng mlp, sit gru).
    hidden: agent width (tseng 256, sit 64).
    agent_layers: linear layers of an mlp agent (3; ignored by gru agents).
    share_agents: one network for all agents with a one-hot agent id input (True) or one per agent.
    mixer: ``qmix`` | ``linear`` | ``vdn`` (tseng qmix, sit linear).
    mixer_hidden: QMIX embedding / hypernetwork width or the linear mixer's width (tseng 64, sit 32).
    hypernet_layers: QMIX hypernetwork depth (tseng 2).
    optimizer: ``adamw`` | ``adam`` | ``rmsprop`` (tseng adamw, sit rmsprop).
    weight_decay: (tseng 1e-4, sit 0).
    grad_clip: gradient-norm clip, 0 = none (10 in both presets).
    tau: soft target update rate; 0 = hard copies (tseng 0.005, sit 0).
    target_update_interval: updates between target updates (tseng 1, sit 100).
    gamma: discount (0.99; SIT Table 11).
    seq_len: learners that sample episodes (GRU agents, sequence targets) crop each to a window of at
        most ``seq_len`` consecutive steps at a uniform offset, whose last step bootstraps (None: the
        preset's value -- 8 for ma_icq with tseng -- else whole episodes). A GRU then starts from a
        zero state at the window's first step.
    """

    steps: int = 10_000
    batch_size: int | None = None
    lr: float | None = None
    preset: str = "tseng"
    agent: str | None = None
    hidden: int | None = None
    agent_layers: int | None = None
    share_agents: bool = True
    mixer: str | None = None
    mixer_hidden: int | None = None
    hypernet_layers: int | None = None
    optimizer: str | None = None
    weight_decay: float | None = None
    grad_clip: float | None = None
    tau: float | None = None
    target_update_interval: int | None = None
    gamma: float = 0.99
    seq_len: int | None = None


@dataclass
class Sequences:
    """One batch as sequences (module docstring). ``L = 1`` for transitions."""

    obs: torch.Tensor  # [B, L+1, n, d]
    state: torch.Tensor  # [B, L+1, S]
    avail: torch.Tensor | None  # [B, L+1, n, A] bool (discrete envs with masks)
    actions: torch.Tensor  # [B, L, n] int64 | [B, L, n, act_dim]
    next_actions: torch.Tensor  # dataset action of step t+1 (zeros where has_next is False)
    rewards: torch.Tensor  # [B, L] team reward
    done: torch.Tensor  # [B, L] 1.0 on true terminals
    mask: torch.Tensor  # [B, L] bool, real steps
    has_next: torch.Tensor  # [B, L] bool, step t+1 is a real step of the same sequence

    @property
    def avail_now(self) -> torch.Tensor | None:
        return None if self.avail is None else self.avail[:, :-1]

    @property
    def avail_next(self) -> torch.Tensor | None:
        return None if self.avail is None else self.avail[:, 1:]

    @property
    def state_now(self) -> torch.Tensor:
        return self.state[:, :-1]

    @property
    def state_next(self) -> torch.Tensor:
        return self.state[:, 1:]


def to_sequences(batch: dict[str, torch.Tensor], device: torch.device) -> Sequences:
    """A sampler batch (transitions or padded episodes) as :class:`Sequences`. Without a global state
    in the dataset the state is the concatenation of all agents' observations."""
    episodic = "mask" in batch
    get = (lambda k: batch[k].to(device)) if episodic else (lambda k: batch[k].to(device).unsqueeze(1))
    obs, next_obs = get("obs"), get("next_obs")  # [B, L, n, d]
    if "state" in batch:
        state, next_state = get("state"), get("next_state")
    else:
        state, next_state = obs.flatten(-2), next_obs.flatten(-2)
    avail = None
    if "avail" in batch:
        avail = torch.cat([get("avail")[:, :1], get("next_avail")], dim=1)
    actions = get("actions")
    mask = get("mask").bool() if episodic else torch.ones(actions.shape[:2], dtype=torch.bool, device=device)
    has_next = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)
    next_actions = torch.cat([actions[:, 1:], torch.zeros_like(actions[:, :1])], dim=1)
    return Sequences(
        obs=torch.cat([obs[:, :1], next_obs], dim=1), state=torch.cat([state[:, :1], next_state], dim=1),
        avail=avail, actions=actions, next_actions=next_actions, rewards=get("rewards").mean(dim=-1),
        done=get("done").float(), mask=mask, has_next=has_next,
    )


class MixedValueLearner(Algorithm):
    """Base of the centralized value baselines (module docstring). Subclasses implement :meth:`build` and
    :meth:`policies`, and register their modules in ``self.nets`` (the agents' values as ``critic``, the
    mixer as ``mixer``) and their optimizers in ``self.optims`` so that :meth:`state_dict` is complete.

    :meth:`train_step` is the mixed TD update of qmix, ma_cql and ma_bcq, one skeleton with small hooks:

        Q_tot = f_mix(Q_i(τ_i, a_i); s),   y = r + γ (1 − d) f̂_mix(V̂_i(τ'_i); s')     (:meth:`next_agent_values`)
        L = E[(Q_tot − y)²] + conservative term (:meth:`conservative_loss`), one critic + mixer step,
        then the policy's own step where the method has one (:meth:`policy_step`), then the targets.

    ma_icq's update (λ-returns and an advantage-weighted actor) replaces it whole.
    """

    Config = MixedValueConfig
    contract_overrides = {"hidden": 16, "mixer_hidden": 8, "batch_size": 8}
    progress_metric = "td_loss"
    #: the preset a run in an environment starts from (``None``: the algorithm learns offline only)
    online_preset: ClassVar[str | None] = None
    #: per-preset values of the subclass's own None fields, e.g. {"sit": {"critic_lr": 1e-4}}
    preset_extras: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, spec: EnvSpec, config: MixedValueConfig, device: str | torch.device = "cpu"):
        config = resolve_preset(config, self.preset_extras)
        super().__init__(spec, config, device)
        if config.agent not in AGENT_KINDS:
            raise ValueError(f"{self.name}: agent must be one of {AGENT_KINDS}, got {config.agent!r}")
        if not 0.0 < config.gamma <= 1.0:
            raise ValueError(f"{self.name}: gamma must lie in (0, 1], got {config.gamma}")
        self.n = spec.n_agents
        self.state_dim = spec.state_dim if spec.state_dim > 0 else spec.n_agents * spec.obs_dim
        self.action_head = None if spec.discrete else ActionHead.for_spec(spec).to(self.device)
        self.nets = nn.ModuleDict()
        self.optims: dict[str, torch.optim.Optimizer] = {}
        self.updates = 0
        self.build()
        self.nets.to(self.device)

    # ---- building blocks -----------------------------------------------------------------------------
    def agent_network(self, out_dim: int, action_in: int = 0) -> AgentNetwork:
        c = self.config
        return AgentNetwork(c.agent, self.n, self.spec.obs_dim, out_dim, c.hidden, c.agent_layers,
                            shared=c.share_agents, action_in=action_in)

    def mixer_network(self) -> nn.Module:
        c = self.config
        return make_mixer(c.mixer, self.n, self.state_dim, c.mixer_hidden, c.hypernet_layers)

    def add_target(self, name: str) -> nn.Module:
        """Register ``target_<name>``, a frozen copy of ``self.nets[name]``."""
        self.nets[f"target_{name}"] = frozen_copy(self.nets[name])
        return self.nets[f"target_{name}"]

    def optimizer(self, modules: Sequence[nn.Module], lr: float | None = None) -> OptimizerWrapper:
        c = self.config
        params = [p for m in modules for p in m.parameters()]
        return OptimizerWrapper(params, c.optimizer, c.lr if lr is None else lr, c.weight_decay, c.grad_clip)

    def step_optimizer(self, name: str, loss: torch.Tensor) -> dict[str, float]:
        """One step of optimizer ``name`` on ``loss``; returns ``{"grad_norm": …}`` when it clips."""
        norm = self.optims[name].minimize(loss)
        return {} if norm is None else {"grad_norm": norm}

    def targets_due(self) -> bool:
        """Whether the targets update after this update: every ``target_update_interval`` updates."""
        return self.updates % max(1, self.config.target_update_interval) == 0

    def update_targets(self) -> None:
        """Soft or hard updates (config ``tau``) of every ``target_<name>`` when :meth:`targets_due`."""
        if not self.targets_due():
            return
        for name in [key for key in self.nets if key.startswith("target_")]:
            update_target(self.nets[name], self.nets[name[len("target_"):]], self.config.tau)

    def squash(self, raw: torch.Tensor) -> torch.Tensor:
        return self.action_head.squash(raw)

    def uniform_actions(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Actions drawn uniformly from the action Box, ``[*shape, act_dim]`` (global torch RNG)."""
        low, high = self.action_head.low, self.action_head.high
        return low + (high - low) * torch.rand(*shape, low.numel(), device=self.device)

    def agent_values(self, critic: AgentNetwork, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q_i(τ_i, a_i) ``[..., n]`` at ``actions`` from the critic's ``features [..., n, H]``."""
        if self.spec.discrete:
            return critic.head(features).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        return critic.head(features, actions).squeeze(-1)

    # ---- the mixed TD step -----------------------------------------------------------------------------
    def train_step(self, seq: Sequences) -> dict[str, float]:
        nets = self.nets
        features = nets["critic"].features(seq.obs)  # [B, L+1, n, H]
        f_now = features[:, :-1]
        q_taken = self.agent_values(nets["critic"], f_now, seq.actions)  # [B, L, n]
        q_tot = nets["mixer"](q_taken, seq.state_now).squeeze(-1)  # [B, L]
        with torch.no_grad():
            y = self.td_targets(seq, features[:, 1:])
        td = masked_mean((q_tot - y).pow(2), seq.mask)
        extra, logs = self.conservative_loss(seq, f_now, q_taken, q_tot)
        logs.update(self.step_optimizer("critic", td if extra is None else td + extra))
        logs.update(self.policy_step(seq, f_now.detach()))
        self.update_targets()
        return {"td_loss": td.item(), **logs, "q_tot": masked_mean(q_tot.detach(), seq.mask).item()}

    def td_targets(self, seq: Sequences, f_next: torch.Tensor) -> torch.Tensor:
        """One-step targets ``[B, L]`` from :meth:`next_agent_values` mixed by the target mixer (``f_next``:
        the online critic's features of the next steps); subclasses with n-step targets extend it."""
        v_agents, _ = self.next_agent_values(seq, f_next)
        v_next = self.nets["target_mixer"](v_agents, seq.state_next).squeeze(-1)
        return one_step_targets(seq.rewards, seq.done, v_next, self.config.gamma)

    # ---- what subclasses implement ---------------------------------------------------------------------
    def build(self) -> None:
        raise NotImplementedError

    def next_agent_values(self, seq: Sequences, f_next: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The target networks' per-agent values ``[B, L, n]`` of the next steps under the learned policy,
        and the next actions the policy picks (None where it picks none explicitly)."""
        raise NotImplementedError

    def conservative_loss(self, seq: Sequences, f_now: torch.Tensor, q_taken: torch.Tensor, q_tot: torch.Tensor
                          ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """A regulariser added to the TD loss and its logs (None: none; CQL's term in ma_cql)."""
        return None, {}

    def policy_step(self, seq: Sequences, f_now: torch.Tensor) -> dict[str, float]:
        """The policy's own update after the critic's (continuous actors, BCQ's perturbation); logs."""
        return {}

    @property
    def uses_episodes(self) -> bool:
        """Whether updates need whole episodes (recurrent agents; subclasses add sequence targets)."""
        return self.config.agent == "gru"

    # ---- the Algorithm contract -----------------------------------------------------------------------
    def make_sampler(self, dataset: MultiAgentDataset, seed: int) -> TransitionSampler | EpisodeSampler:
        if self.uses_episodes:
            return EpisodeSampler(dataset, self.config.batch_size, seed, max_len=self.config.seq_len, pad="batch")
        return TransitionSampler(dataset, self.config.batch_size, seed)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        self.updates += 1
        return self.train_step(to_sequences(batch, self.device))

    def state_dict(self) -> dict[str, Any]:
        return {"nets": self.nets.state_dict(), "optims": {k: o.state_dict() for k, o in self.optims.items()},
                "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.nets.load_state_dict(state["nets"])
        for name, opt in self.optims.items():
            opt.load_state_dict(state["optims"][name])
        self.updates = int(state["updates"])

    def policy_nets(self) -> tuple[str, ...]:
        """The names in ``self.nets`` that :meth:`policies` reads (a subclass names its own; by default every
        net but the targets)."""
        return tuple(name for name in self.nets if not name.startswith("target_"))

    def policy_state(self) -> dict[str, Any]:
        """The :meth:`policy_nets` entries of ``state_dict()["nets"]`` (QMIX on MPE: the agent network, about a
        quarter of the saved state; the mixer, the targets and the optimizers only train)."""
        names = self.policy_nets()
        return {"nets": {key: value for key, value in self.nets.state_dict().items() if key.split(".", 1)[0] in names}}

    def load_policy_state(self, state: dict[str, Any]) -> None:
        for name in self.policy_nets():
            prefix = f"{name}."
            self.nets[name].load_state_dict({key[len(prefix):]: value for key, value in state["nets"].items()
                                             if key.startswith(prefix)})


# ---- decentralized execution ----------------------------------------------------------------------------
Chooser = Callable[[list[torch.Tensor], torch.Tensor, "torch.Tensor | None"], torch.Tensor]


class NetworkAgentPolicy(AgentPolicy):
    """Agent i's greedy policy from some of the learner's :class:`AgentNetwork` s (decentralized).

    At each step every network encodes agent i's own observation (a GRU network advances its hidden
    state, kept per sub-env and zeroed by ``reset(B, mask)``); ``choose(features, obs, avail)`` maps
    the features (one per network, ``[B, H]``) to actions ``[B]`` / ``[B, act_dim]``.
    """

    def __init__(self, agent: int, nets: Sequence[AgentNetwork], choose: Chooser, device: torch.device):
        self.agent, self.nets, self.choose, self.device = agent, list(nets), choose, device
        self.hidden: list[torch.Tensor | None] = [None] * len(self.nets)

    def reset(self, batch_size: int, mask: np.ndarray | None = None) -> None:
        for k, net in enumerate(self.nets):
            if not net.recurrent:
                continue
            h = self.hidden[k]
            if mask is None or h is None or h.shape[0] != batch_size:
                self.hidden[k] = torch.zeros(batch_size, net.hidden, device=self.device)
            else:
                h[torch.as_tensor(mask, device=self.device)] = 0.0

    @torch.no_grad()
    def act(self, obs: np.ndarray, avail: np.ndarray | None, last_reward: np.ndarray | None) -> np.ndarray:
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)  # [B, d]
        a = None if avail is None else torch.as_tensor(avail, dtype=torch.bool, device=self.device)
        features = []
        for k, net in enumerate(self.nets):
            f, self.hidden[k] = net.features_agent(o, self.agent, self.hidden[k])
            features.append(f)
        out = self.choose(features, o, a)
        return out.cpu().numpy().astype(np.int64 if out.dtype == torch.int64 else np.float32)


def decentralized(n_agents: int, nets: Sequence[AgentNetwork], make_choose: Callable[[int], Chooser],
                  device: torch.device) -> DecentralizedPolicy:
    """A :class:`DecentralizedPolicy` of :class:`NetworkAgentPolicy` s, agent i choosing with ``make_choose(i)``."""
    return DecentralizedPolicy([NetworkAgentPolicy(i, nets, make_choose(i), device) for i in range(n_agents)])
