"""The PPO machinery of the online learners, written once: GAE, value normalization, the clipped losses,
minibatches of recurrent sequence chunks, and the learner skeleton that ``ippo`` and ``mappo`` configure.

References: Schulman et al., *Proximal Policy Optimization Algorithms* (2017), Eq. 7 (the clipped
surrogate); Schulman et al., *High-Dimensional Continuous Control Using Generalized Advantage Estimation*
(2016), Eq. 16 (GAE); Yu et al., *The Surprising Effectiveness of PPO in Cooperative Multi-Agent Games*
(NeurIPS 2022, "MAPPO"), §4 and App. C, and their public code for the details that matter: value
normalization (``ValueNorm``), advantage normalization over active steps, a clipped value loss with a
Huber loss (δ = 10), global gradient-norm clipping (10), recurrent training on chunks of 10 steps
(``data_chunk_length``), Adam with ε = 1e-5, orthogonal initialisation. de Witt et al., *Is Independent
Learning All You Need in the StarCraft Multi-Agent Challenge?* (2020) for IPPO; Wang et al., *DM²* (AAAI
2023), App. C, Table 1 for IPPO's architecture and per-map settings.

Decentralized training (``ippo``): with one network per agent stacked on the agent axis, every statistic
that could couple the agents is taken per agent -- losses are averaged over each agent's own active steps
and then summed, advantages are normalized per agent, the value normalizer keeps per-agent statistics,
and gradient norms are clipped per agent -- so agent j's experience never reaches agent i's update
(a test checks it bit for bit).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from offmarl.algos.base import AlgoConfig, Algorithm
from offmarl.core.optim import OptimizerWrapper
from offmarl.data.trajectory import ActStep, Trajectory
from offmarl.envs.base import EnvSpec
from offmarl.nets.actor_critic import PolicyHead, Trunk, ValueHead, with_agent_ids
from offmarl.policies.base import AgentPolicy, DecentralizedPolicy


# ---- pure functions -----------------------------------------------------------------------------------
def gae(rewards: torch.Tensor, values: torch.Tensor, bootstrap: torch.Tensor, last_values: torch.Tensor,
        terminated: torch.Tensor, truncated: torch.Tensor, gamma: float, lam: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimates and returns ``[T, B, n]`` of one rollout (time-major).

    The value of the state after step t is: 0 if the episode terminated at t; ``bootstrap[t]`` =
    V(final observation) if it was truncated at t (a time limit is not an end of the MDP); ``values[t+1]``
    otherwise, and ``last_values`` after the rollout's last step. With ``δ_t = r_t + γ V'_t − V_t``,
    ``A_t = δ_t + γ λ (1 − done_t) A_{t+1}`` (the recursion stops at every episode's end) and the return
    target is ``A_t + V_t``. ``values`` etc. are in reward units (de-normalized).
    """
    T = rewards.shape[0]
    done = (terminated | truncated).to(rewards.dtype)[..., None]  # [T, B, 1]
    cut = (truncated & ~terminated).to(rewards.dtype)[..., None]
    next_values = torch.cat([values[1:], last_values[None]])  # [T, B, n]
    next_values = next_values * (1.0 - done) + bootstrap * cut
    delta = rewards + gamma * next_values - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(T - 1, -1, -1):  # the recursion is sequential in time
        running = delta[t] + gamma * lam * (1.0 - done[t]) * running
        advantages[t] = running
    return advantages, advantages + values


def masked_mean(x: torch.Tensor, mask: torch.Tensor, per_agent: bool) -> torch.Tensor:
    """Mean of ``x [..., n]`` over ``mask``: over everything (a scalar), or, ``per_agent``, each agent's own
    mean summed over agents (so one agent's count of active steps never scales another's gradient)."""
    m = mask.to(x.dtype)
    if not per_agent:
        return (x * m).sum() / m.sum().clamp_min(1.0)
    dims = tuple(range(x.dim() - 1))
    return ((x * m).sum(dim=dims) / m.sum(dim=dims).clamp_min(1.0)).sum()


def normalize_advantages(adv: torch.Tensor, mask: torch.Tensor, per_agent: bool, eps: float = 1e-5) -> torch.Tensor:
    """``(A − mean) / (std + eps)`` over the active entries (per agent when ``per_agent``); inactive entries 0."""
    m = mask.to(adv.dtype)
    dims = tuple(range(adv.dim() - 1)) if per_agent else tuple(range(adv.dim()))
    count = m.sum(dim=dims, keepdim=True).clamp_min(1.0)
    mean = (adv * m).sum(dim=dims, keepdim=True) / count
    var = ((adv - mean).pow(2) * m).sum(dim=dims, keepdim=True) / count
    return (adv - mean) / (var.sqrt() + eps) * m


def clipped_surrogate(log_prob: torch.Tensor, old_log_prob: torch.Tensor, adv: torch.Tensor, clip: float
                      ) -> torch.Tensor:
    """PPO's per-entry loss ``−min(ρ A, clip(ρ, 1 − ε, 1 + ε) A)``, ``ρ = π/π_old`` (Schulman et al. Eq. 7)."""
    ratio = torch.exp(log_prob - old_log_prob)
    return -torch.min(ratio * adv, ratio.clamp(1.0 - clip, 1.0 + clip) * adv)


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, targets: torch.Tensor, clip: float,
                       delta: float) -> torch.Tensor:
    """MAPPO's per-entry value loss: the larger Huber loss (``delta``) of the new prediction and of the
    prediction clipped to ``old ± clip`` against the (normalized) return targets."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return torch.max(F.huber_loss(values, targets, reduction="none", delta=delta),
                     F.huber_loss(clipped, targets, reduction="none", delta=delta))


class ValueNorm:
    """MAPPO's running normalizer of value targets: debiased exponential averages of the mean and the second
    moment (β = 0.99999), one set per agent (``shape = [n]``) or one for all (``[1]``). The critic predicts
    normalized values; GAE de-normalizes them; the loss normalizes the return targets."""

    def __init__(self, shape: int, beta: float = 0.99999, eps: float = 1e-5):
        self.beta, self.eps = beta, eps
        self.mean, self.mean_sq, self.debias = torch.zeros(shape), torch.zeros(shape), torch.zeros(shape)

    def update(self, x: torch.Tensor, mask: torch.Tensor) -> None:
        """Fold in the masked entries of ``x [..., n]`` (per agent) or all of them (``shape`` 1)."""
        m = mask.to(x.dtype)
        per_agent = self.mean.numel() > 1
        dims = tuple(range(x.dim() - 1)) if per_agent else tuple(range(x.dim()))
        count = m.sum(dim=dims).clamp_min(1.0)
        batch_mean = (x * m).sum(dim=dims) / count
        batch_sq = (x.pow(2) * m).sum(dim=dims) / count
        b = self.beta
        self.mean = b * self.mean + (1 - b) * batch_mean
        self.mean_sq = b * self.mean_sq + (1 - b) * batch_sq
        self.debias = b * self.debias + (1 - b)

    def _stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.mean / self.debias.clamp_min(self.eps)
        var = (self.mean_sq / self.debias.clamp_min(self.eps) - mean.pow(2)).clamp_min(1e-2)
        return mean, var.sqrt()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats()
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats()
        return x * std + mean

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.clone(), "mean_sq": self.mean_sq.clone(), "debias": self.debias.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.mean, self.mean_sq, self.debias = (state[k].clone() for k in ("mean", "mean_sq", "debias"))


def rollout_stats(rollout: Trajectory) -> dict[str, float]:
    """What a rollout says of the episodes that ended in it: their mean return (``episode_return``) and, where
    the env reports wins, their win rate (``win_rate``)."""
    stats = {}
    if rollout.episode_returns.size:
        stats["episode_return"] = float(rollout.episode_returns.mean())
    if rollout.episode_wins is not None and rollout.episode_wins.size:
        stats["win_rate"] = float(rollout.episode_wins.mean())
    return stats


def chunk_starts(T: int, length: int) -> list[int]:
    """The first steps of the chunks of ``length`` steps a rollout of ``T`` steps is cut into."""
    if T % length:
        raise ValueError(f"rollout_length {T} must be a multiple of chunk_length {length}")
    return list(range(0, T, length))


# ---- the learner --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PPOConfig(AlgoConfig):
    """Fields every PPO-family learner has. Defaults: MAPPO's published configuration (Yu et al., App. C
    and their code), which DM² also starts from.

    steps: environment frames (one frame = one step of one sub-env, all agents).
    rollout_length: steps per sub-env between updates (MAPPO SMAC ``episode_length`` 400; MPE 25 with 128
        sub-envs: use ``--num-envs``).
    lr, critic_lr: Adam learning rates of the actor and the critic (5e-4 each); adam_eps: 1e-5.
    ppo_epochs: passes over each rollout (15); num_minibatches: minibatches per pass (1).
    clip: ε of the clipped surrogate and of the clipped value loss (0.2).
    huber_delta: δ of the value loss (10). value_coef: its weight (1). entropy_coef: 0.01.
    max_grad_norm: gradient-norm clip of each optimizer (10; per agent when training is decentralized).
    gamma, gae_lambda: 0.99, 0.95.
    hidden: width of every layer (64); fc_layers: fully connected layers before the GRU (2);
    recurrent: a GRU after them (True; False = the feed-forward variant); chunk_length: steps per recurrent
        training sequence (10).
    value_norm: normalize the value targets with :class:`ValueNorm` (True).
    batch_size: unused by the PPO family (a rollout is the batch); kept for the common config.
    """

    steps: int = 2_000_000
    lr: float = 5e-4
    batch_size: int = 0
    critic_lr: float = 5e-4
    adam_eps: float = 1e-5
    rollout_length: int = 400
    ppo_epochs: int = 15
    num_minibatches: int = 1
    clip: float = 0.2
    huber_delta: float = 10.0
    value_coef: float = 1.0
    entropy_coef: float = 0.01
    max_grad_norm: float = 10.0
    gamma: float = 0.99
    gae_lambda: float = 0.95
    hidden: int = 64
    fc_layers: int = 2
    recurrent: bool = True
    chunk_length: int = 10
    value_norm: bool = True


def check_ppo_config(name: str, c: PPOConfig) -> None:
    positive = ("rollout_length", "ppo_epochs", "num_minibatches", "hidden", "fc_layers", "chunk_length")
    for field in positive:
        if getattr(c, field) < 1:
            raise ValueError(f"{name}: {field} must be >= 1, got {getattr(c, field)}")
    if c.recurrent:
        chunk_starts(c.rollout_length, c.chunk_length)
    if not 0.0 < c.gamma <= 1.0 or not 0.0 <= c.gae_lambda <= 1.0 or c.clip <= 0:
        raise ValueError(f"{name}: need 0 < gamma <= 1, 0 <= gae_lambda <= 1 and clip > 0, got {c.gamma}, "
                         f"{c.gae_lambda}, {c.clip}")


@dataclass
class _Batch:
    """The training view of a rollout: sequences ``[L, M, n, ...]`` of ``M`` chunks of ``L`` steps."""

    actor_in: torch.Tensor
    critic_in: torch.Tensor
    avail: torch.Tensor | None
    actions: torch.Tensor
    old_log_probs: torch.Tensor
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    active: torch.Tensor
    starts: torch.Tensor
    actor_h0: torch.Tensor | None
    critic_h0: torch.Tensor | None


class PPOLearner(Algorithm):
    """Actor-critic PPO on the rollout engine's trajectories; subclasses say who shares what.

    ``share_actor`` / ``share_critic``: one network for all agents (with the agent id appended to its
    input) or one per agent; ``critic_input``: ``"obs"`` (the agent's own observation: independent
    learning) or ``"state"`` (the global state: a centralized critic). Training is decentralized exactly
    when nothing is shared and the critic reads the agent's own observation.
    """

    Config = PPOConfig
    learns_from = ("env",)
    progress_metric = "episode_return"
    contract_overrides = {"hidden": 16, "rollout_length": 10, "chunk_length": 5, "ppo_epochs": 2, "lr": 3e-3,
                          "critic_lr": 3e-3}
    critic_input: ClassVar[str] = "obs"

    def __init__(self, spec: EnvSpec, config: PPOConfig, device: str | torch.device = "cpu"):
        super().__init__(spec, config, device)
        check_ppo_config(self.name, config)
        c, n = config, spec.n_agents
        self.n = n
        critic_groups = 1 if self.share_critic else n
        state_width = spec.state_dim if spec.state_dim > 0 else n * spec.obs_dim
        critic_in = (spec.obs_dim if self.critic_input == "obs" else state_width) + (n if self.share_critic else 0)
        actor_parameters = self.build_actor()
        self.critic = Trunk(critic_groups, critic_in, c.hidden, c.fc_layers, c.recurrent).to(self.device)
        self.value_head = ValueHead(critic_groups, c.hidden).to(self.device)
        per_agent = self.decentralized_training
        self.actor_opt = OptimizerWrapper(actor_parameters, "adam", c.lr, clip=c.max_grad_norm,
                                          per_member=not self.share_actor, eps=c.adam_eps)
        self.critic_opt = OptimizerWrapper([*self.critic.parameters(), *self.value_head.parameters()], "adam",
                                           c.critic_lr, clip=c.max_grad_norm, per_member=not self.share_critic,
                                           eps=c.adam_eps)
        self.value_norm = ValueNorm(n if per_agent else 1) if c.value_norm else None
        self.shuffle = torch.Generator().manual_seed(0)  # reseeded from the run's seed at fit start
        self.updates = 0

    def build_actor(self) -> list[torch.nn.Parameter]:
        """Build the actor and return the parameters its optimizer steps: by default a :class:`Trunk` and a
        :class:`PolicyHead` (one per agent, or one shared with the agent id in its input). A learner whose actor
        is another network (``finetune``: an offline policy) overrides it with :meth:`evaluate_actions`,
        :meth:`act_train`, :meth:`policy_state` and :meth:`policies`."""
        c, n, spec = self.config, self.n, self.spec
        groups = 1 if self.share_actor else n
        self.actor = Trunk(groups, spec.obs_dim + (n if self.share_actor else 0), c.hidden, c.fc_layers,
                           c.recurrent).to(self.device)
        self.policy_head = PolicyHead(groups, c.hidden, spec.n_actions if spec.discrete else None,
                                      None if spec.discrete else spec.act_dim).to(self.device)
        return [*self.actor.parameters(), *self.policy_head.parameters()]

    @property
    def actor_learns(self) -> bool:
        """Whether this update steps the actor (False: the critic alone learns, e.g. while a fresh critic warms up
        under a pre-trained actor)."""
        return True

    # ---- what is shared -----------------------------------------------------------------------------
    @property
    def share_actor(self) -> bool:
        raise NotImplementedError

    @property
    def share_critic(self) -> bool:
        raise NotImplementedError

    @property
    def rollout_length(self) -> int:
        return int(self.config.rollout_length)

    def on_fit_start(self, source: Any) -> None:
        self.shuffle.manual_seed(int(torch.randint(0, 2**31 - 1, (1,)).item()))  # from the seeded global RNG

    # ---- inputs ---------------------------------------------------------------------------------------
    def actor_inputs(self, obs: torch.Tensor) -> torch.Tensor:
        return with_agent_ids(obs, self.n) if self.share_actor else obs

    def critic_inputs(self, obs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``obs [..., n, d]``, ``state [..., S]`` → the critic's input ``[..., n, in]``."""
        if self.critic_input == "obs":
            x = obs
        else:
            s = state if self.spec.state_dim > 0 else obs.flatten(-2)
            x = s.unsqueeze(-2).expand(*s.shape[:-1], self.n, s.shape[-1])
        return with_agent_ids(x, self.n) if self.share_critic else x

    def _split(self, hidden: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return (None, None) if hidden is None else hidden.chunk(2, dim=-1)

    # ---- the rollout engine's contract --------------------------------------------------------------
    def initial_hidden(self, batch_size: int) -> torch.Tensor | None:
        if not self.config.recurrent:
            return None
        return torch.zeros(batch_size, self.n, 2 * self.config.hidden, device=self.device)

    @torch.no_grad()
    def act_train(self, obs, state, avail, hidden, generator) -> ActStep:
        h_actor, h_critic = self._split(hidden)
        f, h_actor = self.actor.step(self.actor_inputs(obs), h_actor)
        action, log_prob = self.policy_head.sample(f, avail, generator)
        g, h_critic = self.critic.step(self.critic_inputs(obs, state), h_critic)
        new_hidden = None if h_actor is None else torch.cat([h_actor, h_critic], dim=-1)
        return ActStep(action=action, log_prob=log_prob, value=self.value_head(g), hidden=new_hidden)

    @torch.no_grad()
    def bootstrap_value(self, obs, state, avail, hidden) -> torch.Tensor:
        _, h_critic = self._split(hidden)
        g, _ = self.critic.step(self.critic_inputs(obs, state), h_critic)
        return self.value_head(g)

    # ---- the update -----------------------------------------------------------------------------------
    def _denormalize(self, values: torch.Tensor) -> torch.Tensor:
        return values if self.value_norm is None else self.value_norm.denormalize(values)

    def update(self, rollout: Trajectory) -> dict[str, float]:
        c, per_agent = self.config, self.decentralized_training
        r = to_device(rollout, self.device)
        advantages, returns = gae(r.rewards, self._denormalize(r.values), self._denormalize(r.bootstrap),
                                  self._denormalize(r.last_values), r.terminated, r.truncated, c.gamma, c.gae_lambda)
        advantages = normalize_advantages(advantages, r.active, per_agent)
        T, B = r.rewards.shape[:2]
        length = c.chunk_length if c.recurrent else 1
        starts = chunk_starts(T, length)
        logs: dict[str, list[float]] = {}
        for _ in range(c.ppo_epochs):
            order = torch.randperm(len(starts) * B, generator=self.shuffle)
            for chunks in order.chunk(c.num_minibatches):
                batch = self._minibatch(r, advantages, returns, chunks, starts, length)
                for key, value in self._ppo_step(batch, per_agent).items():
                    logs.setdefault(key, []).append(value)
        self.updates += 1
        return {**{k: float(np.mean(v)) for k, v in logs.items()}, **rollout_stats(rollout)}

    def _minibatch(self, r: Trajectory, advantages: torch.Tensor, returns: torch.Tensor, chunks: torch.Tensor,
                   starts: list[int], length: int) -> _Batch:
        """Chunks ``chunks`` (indices into (chunk start, sub-env) pairs) as sequences ``[L, M, ...]``."""
        B = r.rewards.shape[1]
        t0 = torch.as_tensor(starts)[chunks // B]  # [M] first step of each chunk
        env = chunks % B  # [M]
        steps = t0[None] + torch.arange(length)[:, None]  # [L, M]

        def take(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x[steps, env[None]]

        h0 = None if r.hidden is None else r.hidden[t0, env]  # [M, n, 2H]
        h_actor, h_critic = self._split(h0)
        return _Batch(actor_in=self.actor_inputs(take(r.obs)), critic_in=self.critic_inputs(take(r.obs), take(r.state)),
                      avail=take(r.avail), actions=take(r.actions), old_log_probs=take(r.log_probs),
                      old_values=take(r.values), advantages=take(advantages), returns=take(returns),
                      active=take(r.active), starts=take(r.starts), actor_h0=h_actor, critic_h0=h_critic)

    def _ppo_step(self, b: _Batch, per_agent: bool) -> dict[str, float]:
        c = self.config
        with torch.set_grad_enabled(self.actor_learns and torch.is_grad_enabled()):
            log_prob, entropy = self.evaluate_actions(b)  # [L, M, n]
            policy_loss = masked_mean(clipped_surrogate(log_prob, b.old_log_probs, b.advantages, c.clip), b.active,
                                      per_agent)
            entropy_mean = masked_mean(entropy, b.active, per_agent)
        actor_norm = self.actor_opt.minimize(policy_loss - c.entropy_coef * entropy_mean) if self.actor_learns else None

        values = self.value_head(self.critic.sequence(b.critic_in, b.critic_h0, b.starts))  # [L, M, n]
        targets = b.returns
        if self.value_norm is not None:
            self.value_norm.update(b.returns, b.active)  # as MAPPO: every minibatch folds its returns in
            targets = self.value_norm.normalize(b.returns)
        value_loss = masked_mean(clipped_value_loss(values, b.old_values, targets, c.clip, c.huber_delta), b.active,
                                 per_agent)
        critic_norm = self.critic_opt.minimize(c.value_coef * value_loss)
        ratio = torch.exp(log_prob.detach() - b.old_log_probs)
        logs = {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": entropy_mean.item(),
                "clip_fraction": masked_mean(((ratio - 1).abs() > c.clip).float(), b.active, False).item()}
        for key, norm in (("actor_grad_norm", actor_norm), ("critic_grad_norm", critic_norm)):
            if norm is not None:
                logs[key] = norm
        return logs

    def evaluate_actions(self, b: _Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities and entropies ``[L, M, n]`` of the batch's actions under the current actor (the
        recurrent actor replayed over each chunk from its stored hidden state)."""
        f = self.actor.sequence(b.actor_in, b.actor_h0, b.starts)  # [L, M, n, H]
        return self.policy_head.evaluate(f, b.actions, b.avail)

    # ---- evaluation -----------------------------------------------------------------------------------
    def policies(self, sample_seed: int | None = None) -> DecentralizedPolicy:
        """Decentralized policies: agent i's actor on its own observations, its GRU state kept per sub-env.
        Greedy (the most likely available action, or the Gaussian's mean clipped to the action Box), or, with
        ``sample_seed``, sampled from the action distribution as in training (a policy pool's behaviour)."""
        actor, head = copy.deepcopy(self.actor).eval(), copy.deepcopy(self.policy_head).eval()

        def generator(agent: int) -> torch.Generator | None:  # one stream per agent: decentralized sampling
            if sample_seed is None:
                return None
            return torch.Generator(self.device).manual_seed(sample_seed * self.n + agent)

        return DecentralizedPolicy([PPOAgentPolicy(self, actor, head, i, generator(i)) for i in range(self.n)])

    def agent_parameters(self, agent: int) -> list[torch.Tensor]:
        if not self.decentralized_training:
            return super().agent_parameters(agent)
        modules = (self.actor, self.policy_head, self.critic, self.value_head)
        return [p[agent] for m in modules for p in m.parameters()]

    # ---- persistence ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**self.policy_state(), "critic": self.critic.state_dict(), "value_head": self.value_head.state_dict(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "value_norm": None if self.value_norm is None else self.value_norm.state_dict(),
                "shuffle": self.shuffle.get_state(), "updates": self.updates}

    def policy_state(self) -> dict[str, Any]:
        """The actor: the part of :meth:`state_dict` that :meth:`policies` reads (its optimizer's is ``actor_opt``;
        the critic, value head and value normalizer only train)."""
        return {"actor": self.actor.state_dict(), "policy_head": self.policy_head.state_dict()}

    def load_policy_state(self, state: dict[str, Any]) -> None:
        for key in ("actor", "policy_head"):
            getattr(self, key).load_state_dict(state[key])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_policy_state(state)
        for key in ("critic", "value_head"):
            getattr(self, key).load_state_dict(state[key])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        if self.value_norm is not None:
            self.value_norm.load_state_dict(state["value_norm"])
        self.shuffle.set_state(state["shuffle"])
        self.updates = int(state["updates"])


def to_device(r: Trajectory, device: torch.device) -> Trajectory:
    """The rollout's tensors on ``device``."""
    moved = {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}
    for key, value in moved.items():
        if isinstance(value, torch.Tensor):
            moved[key] = value.to(device)
    return Trajectory(**moved)


class PPOAgentPolicy(AgentPolicy):
    """Agent i's policy from a frozen copy of the actor (decentralized: its own observations only): greedy, or
    sampled with ``generator``."""

    def __init__(self, learner: PPOLearner, actor: Trunk, head: PolicyHead, agent: int,
                 generator: torch.Generator | None = None):
        self.actor, self.head, self.agent, self.device = actor, head, agent, learner.device
        self.generator = generator
        self.n, self.shared = learner.n, learner.share_actor
        self.group = None if self.shared else agent
        self.discrete = learner.spec.discrete
        if not self.discrete:
            self.low = torch.as_tensor(learner.spec.action_space.low, dtype=torch.float32)
            self.high = torch.as_tensor(learner.spec.action_space.high, dtype=torch.float32)
        self.hidden: torch.Tensor | None = None

    def reset(self, batch_size: int, mask: np.ndarray | None = None) -> None:
        if not self.actor.recurrent:
            return
        if mask is None or self.hidden is None or self.hidden.shape[0] != batch_size:
            self.hidden = torch.zeros(batch_size, self.actor.hidden, device=self.device)
        else:
            self.hidden[torch.as_tensor(mask, device=self.device)] = 0.0

    @torch.no_grad()
    def act(self, obs: np.ndarray, avail: np.ndarray | None, last_reward: np.ndarray | None) -> np.ndarray:
        x = torch.as_tensor(obs, dtype=torch.float32, device=self.device)  # [B, d]
        if self.shared:
            ids = torch.zeros(x.shape[0], self.n, device=self.device)
            ids[:, self.agent] = 1.0
            x = torch.cat([x, ids], dim=-1)
        group = 0 if self.shared else self.agent
        f, self.hidden = self.actor.step(x, self.hidden, group)
        mask = None if avail is None else torch.as_tensor(avail, dtype=torch.bool, device=self.device)
        if self.generator is None:
            action = self.head.greedy(f, mask, group)
        else:
            action = self.head.sample(f, mask, self.generator, group)[0]
        if self.discrete:
            return action.cpu().numpy().astype(np.int64)
        return torch.maximum(torch.minimum(action, self.high), self.low).cpu().numpy().astype(np.float32)
