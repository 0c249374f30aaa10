"""QMIX (``qmix``): value factorisation, offline on a fixed dataset (no offline constraint) or online.

SIT's unconstrained baseline (Tian et al. 2023, §5 "QMIX (discrete), FacMAC (continuous)";
hyper-parameters Table 11 → ``--preset sit``); ``--preset tseng`` gives Tseng's architecture
(App. B.4–B.6) for comparison with the other Tseng baselines. Rashid et al. 2018 (QMIX), Peng et al.
2021 (FACMAC). :mod:`offmarl.algos.ma_cql` is this learner plus CQL's conservative term.

Online (``--env``; DM²'s QMIX baseline, App. C: "the default parameters specified in Rashid et al. (2018)",
one fully connected layer before the GRU): the ``pymarl`` preset, ε-greedy rollouts (ε from 1 to 0.05
over the first 50k frames), whole episodes into a replay of 5000 (:class:`~offmarl.data.replay.EpisodeReplay`),
``updates_per_rollout`` updates (default 1) on 32 sampled episodes each per rollout of ``episode_limit`` steps in
every sub-env, hard target copies every 200 episodes, double Q -- the same update and mixer as offline. Discrete
actions only. With the default 8 sub-envs, one update per rollout is pymarl's parallel runner (one update per
batch of episodes collected together); pymarl's and epymarl's episode runner update once per episode, i.e.
``updates_per_rollout`` = the number of sub-envs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from offmarl.algos._centralized import MixedValueConfig, MixedValueLearner, Sequences, decentralized
from offmarl.algos._value import masked_argmax, masked_mean, tree_backup_targets
from offmarl.algos.base import register_algo, source_mode
from offmarl.data.replay import EpisodeReplay
from offmarl.data.trajectory import ActStep, Trajectory
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
        epsilon_start, epsilon_finish, epsilon_anneal_frames: online, the ε of ε-greedy rollouts falls
            linearly from 1.0 to 0.05 over 50,000 frames (pymarl).
        buffer_episodes: online, episodes the replay keeps (5000, pymarl).
        target_update_episodes: online, episodes between hard target copies (200, pymarl).
        updates_per_rollout: online, gradient updates (each on its own sampled batch) after every rollout (1).
    """

    double_q: bool = True
    actor_lr: float | None = None
    epsilon_start: float = 1.0
    epsilon_finish: float = 0.05
    epsilon_anneal_frames: int = 50_000
    buffer_episodes: int = 5_000
    target_update_episodes: int = 200
    updates_per_rollout: int = 1


@register_algo
class QMIX(MixedValueLearner):
    """Offline QMIX (discrete) / FACMAC-style mixed critic with deterministic actors (continuous)."""

    name = "qmix"
    Config = Config
    learns_from = ("dataset", "env")
    online_preset = "pymarl"
    contract_overrides = {"hidden": 16, "mixer_hidden": 8, "batch_size": 8, "epsilon_anneal_frames": 500}

    def __init__(self, spec, config, device="cpu"):
        super().__init__(spec, config, device)
        if config.updates_per_rollout < 1:
            raise ValueError(f"qmix: updates_per_rollout must be >= 1, got {config.updates_per_rollout}")
        self.replay: EpisodeReplay | None = None  # online only (on_fit_start)
        self.frames_seen, self.target_syncs = 0, 0
        self.rng = np.random.default_rng(0)

    @property
    def n_step(self) -> int:
        return 1

    # ---- online: the rollout engine's contract --------------------------------------------------------
    @property
    def rollout_length(self) -> int:
        return self.spec.episode_limit

    def on_fit_start(self, source: Any) -> None:
        if source_mode(source) != "env":
            return
        if not self.spec.discrete:
            raise ValueError("qmix learns online with discrete actions only (FACMAC's online form is not built)")
        spec = self.spec
        self.replay = EpisodeReplay(self.config.buffer_episodes, spec.episode_limit, spec.n_agents, spec.obs_dim,
                                    self.state_dim, spec.n_actions)
        self.rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)).item()))  # from the seeded global RNG

    def epsilon(self) -> float:
        c = self.config
        done = min(self.frames_seen / max(1, c.epsilon_anneal_frames), 1.0)
        return c.epsilon_start + done * (c.epsilon_finish - c.epsilon_start)

    def initial_hidden(self, batch_size: int) -> torch.Tensor | None:
        critic = self.nets["critic"]
        return torch.zeros(batch_size, self.n, critic.hidden, device=self.device) if critic.recurrent else None

    @torch.no_grad()
    def act_train(self, obs, state, avail, hidden, generator) -> ActStep:
        """ε-greedy: the greedy available action, or with probability ε a uniformly random available one."""
        q, hidden = self.nets["critic"].step(obs, hidden)  # [B, n, A]
        greedy = masked_argmax(q, avail)
        allowed = torch.ones_like(q) if avail is None else avail.to(q.dtype)
        random = torch.multinomial(allowed.reshape(-1, q.shape[-1]), 1, generator=generator).reshape(greedy.shape)
        explore = torch.rand(greedy.shape, generator=generator, device=q.device) < self.epsilon()
        zeros = torch.zeros(greedy.shape, device=q.device)
        return ActStep(action=torch.where(explore, random, greedy), log_prob=zeros, value=zeros, hidden=hidden)

    def bootstrap_value(self, obs, state, avail, hidden) -> torch.Tensor:
        return torch.zeros(obs.shape[:-1], device=obs.device)  # Q-learning bootstraps from its own targets

    def update(self, batch: Any) -> dict[str, float]:
        if not isinstance(batch, Trajectory):
            return super().update(batch)
        ended = self.replay.add(batch)
        self.frames_seen += batch.frames
        logs = {"epsilon": self.epsilon(), "episodes": float(ended)}
        if batch.episode_returns.size:
            logs["episode_return"] = float(batch.episode_returns.mean())
        if batch.episode_wins is not None and batch.episode_wins.size:
            logs["win_rate"] = float(batch.episode_wins.mean())
        if len(self.replay) >= self.config.batch_size:
            for _ in range(self.config.updates_per_rollout):  # the last update's losses are logged
                logs.update(super().update(self.replay.sample(self.config.batch_size, self.rng)))
        return logs

    def targets_due(self) -> bool:
        """Online: a hard copy once every ``target_update_episodes`` episodes (pymarl); offline: every
        ``target_update_interval`` updates."""
        if self.replay is None:
            return super().targets_due()
        syncs = self.replay.added // max(1, self.config.target_update_episodes)
        due, self.target_syncs = syncs > self.target_syncs, max(syncs, self.target_syncs)
        return due

    def saved_state(self) -> dict[str, Any]:
        """Without the replay: a saved QMIX (best weights, the checkpoint series, a policy pool's checkpoints)
        acts and evaluates; only the fit loop's checkpoint needs up to 5000 episodes (on SMAX 2s3z, ~1.3 GB)."""
        state = super().state_dict()
        if self.replay is not None:
            state["online"] = {"frames_seen": self.frames_seen, "target_syncs": self.target_syncs,
                               "rng": self.rng.bit_generator.state}
        return state

    def state_dict(self) -> dict[str, Any]:
        state = self.saved_state()
        if self.replay is not None:
            state["online"]["replay"] = self.replay.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "online" in state and self.replay is not None:
            online = state["online"]
            if "replay" in online:  # a fit loop checkpoint; saved_state leaves the replay out
                self.replay.load_state_dict(online["replay"])
            self.frames_seen, self.target_syncs = int(online["frames_seen"]), int(online["target_syncs"])
            self.rng.bit_generator.state = online["rng"]

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
    def policy_nets(self) -> tuple[str, ...]:
        return ("critic",) if self.spec.discrete else ("actor",)

    def policies(self) -> DecentralizedPolicy:
        if self.spec.discrete:
            q = self.nets["critic"]
            return decentralized(self.n, [q], lambda i: lambda f, o, avail: masked_argmax(q.head(f[0], group=i), avail),
                                 self.device)
        actor = self.nets["actor"]
        return decentralized(self.n, [actor], lambda i: lambda f, o, avail: self.squash(actor.head(f[0], group=i)),
                             self.device)
