"""MA-AIRL (``ma_airl``): multi-agent adversarial inverse reinforcement learning from a dataset, with interaction.

Reference: Yu, Song & Ermon, *Multi-Agent Adversarial Inverse Reinforcement Learning* (ICML 2019), §4–5 and
Algorithm 1, and their public code (``MA-AIRL``: the discriminator, its reward, the behaviour-cloning warm
start); Fu, Luo & Levine, *Learning Robust Rewards with Adversarial Inverse Reinforcement Learning* (ICLR 2018),
§5; the imitation baseline of Tseng et al., *Offline Multi-Agent Reinforcement Learning with Knowledge
Distillation* (NeurIPS 2022), Table 1, which gives no settings for it. Unlike the offline methods of that
table, ``ma_airl`` **interacts with the environment**: it learns from a dataset (the demonstrations) and env
frames. The discriminator machinery is :mod:`offmarl.algos._adversarial`'s and
:mod:`offmarl.nets.discriminator`'s.
"""

from __future__ import annotations

import dataclasses

import torch

from offmarl.algos._adversarial import (
    AdversarialConfig,
    AdversarialPPO,
    DemonstrationFields,
    Episodes,
    ImitationBaseline,
    ImitationBaselineFields,
    airl_logit,
    next_observations,
)
from offmarl.algos.base import register_algo
from offmarl.data.trajectory import Trajectory
from offmarl.nets.discriminator import AIRLDiscriminator

AIRL_REWARDS = ("g", "logit")


@dataclasses.dataclass(frozen=True)
class Config(ImitationBaselineFields, AdversarialConfig, DemonstrationFields):
    """MA-AIRL (Yu et al.): agent i's discriminator has the form of Fu et al.'s

        f_i(o, a, o') = g_i(o, a) + γ (1 − d) h_i(o') − h_i(o)       (reward approximator g, shaping potential h;
                                                                       d = 1 where o' is terminal)
        D_i = exp(f_i) / (exp(f_i) + π_i(a_i | τ_i)),   i.e.  logit D_i = f_i − log π_i(a_i | τ_i)
        L_D = −E_data[log D_i] − E_π[log(1 − D_i)]

    with π_i the current policy (its log-probability of the data's and the learners' actions, the recurrent
    actor run over whole episodes), and agent i learns from ``airl_reward``: ``g`` = g_i(o, a) (the default,
    as their code does for cooperative tasks: the recovered reward without its shaping) or ``logit`` =
    f_i − log π_i (Fu et al. §5; Yu et al. Algorithm 1's log D − log(1 − D), with the log-probability the
    policy had when it acted). ``discriminator``: ``decentralized`` (the default: g_i, h_i on agent i's own
    observation and action) or ``centralized`` (one network for g and one for h on the joint step, an
    output per agent). The policy learner is offmarl's PPO: per-agent recurrent actors, per-agent critics on
    the global state, as MACK's centralized critics. Departures: the original trains the policies with
    MACK (multi-agent ACKTR) and its discriminators with Adam at 0.1 decayed linearly, offmarl PPO and Adam
    at 1e-3; their run script builds a state-only g(o) while the paper's reward is g(s, a), which offmarl
    follows; at an episode's end their code evaluates h on a zeroed observation, offmarl drops h(o') at a
    termination and evaluates it at the reached observation after a time limit.

    Defaults (Yu et al.'s code): g and h with 2 hidden layers of 128 and ReLU, L2 weight decay 0.01 on the
    discriminator (``disc_weight_decay``: their discriminator's default ``l2_loss_ratio``; their run script
    passes 0.1, which under offmarl's Adam flattens g to a constant on the test env ``toy_pick``), one
    discriminator step per update, no gradient penalty, ``reward=imitation``, ``bc_steps`` = 500 steps of
    behaviour cloning before interacting.

    Fields (beyond :class:`~offmarl.algos._adversarial.AdversarialConfig`,
    :class:`~offmarl.algos._adversarial.DemonstrationFields` and the shared defaults of
    :class:`~offmarl.algos._adversarial.ImitationBaselineFields`):
        discriminator: ``decentralized`` (default) or ``centralized``.
        airl_reward: ``g`` (default) or ``logit``.
    """

    discriminator: str = "decentralized"
    airl_reward: str = "g"
    disc_weight_decay: float = 0.01


@register_algo
class MAAIRL(ImitationBaseline, AdversarialPPO):
    """MA-AIRL with PPO learners (module docstring)."""

    name = "ma_airl"
    Config = Config

    def __init__(self, spec, config, device="cpu"):
        if config.airl_reward not in AIRL_REWARDS:
            raise ValueError(f"ma_airl: airl_reward must be one of {', '.join(AIRL_REWARDS)}, "
                             f"got {config.airl_reward!r}")
        super().__init__(spec, config, device)

    def build_discriminator(self) -> torch.nn.Module:
        c, n = self.config, self.spec.n_agents
        obs_in = self.spec.obs_dim * (n if self.units == 1 else 1)
        return AIRLDiscriminator(self.units, self.step_in, obs_in, n if self.units == 1 else 1, c.disc_hidden,
                                 c.disc_layers, c.disc_activation)

    def f(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor, terminal: torch.Tensor
          ) -> torch.Tensor:
        """``f [..., n]`` of steps ``obs``/``next_obs [..., n, d]``, ``actions``; ``terminal`` broadcastable to the
        units' outputs ``[..., G, out]``."""
        return self.discriminator(self.disc_inputs(obs, actions), self.disc_inputs(obs), self.disc_inputs(next_obs),
                                  terminal, self.config.gamma).flatten(-2)

    def step_logits(self, ep: Episodes, target: bool) -> torch.Tensor:
        """``logit D = f − log π`` ``[B, L, n]``, with π the current policy (a constant for the discriminator)."""
        terminal = ep.terminal[..., None, :] if self.units == 1 else ep.terminal[..., None]  # as [..., G, out]
        with torch.no_grad():
            log_pi = self.sequence_log_probs(ep)
        return airl_logit(self.f(ep.obs, ep.actions, ep.next_obs, terminal), log_pi)

    def imitation_reward(self, r: Trajectory) -> torch.Tensor:
        if self.config.airl_reward == "g":
            return self.discriminator.g(self.disc_inputs(r.obs, r.actions)).flatten(-2)
        terminal = r.terminated[..., None, None]  # [T, B, 1, 1]: one flag for every unit and output
        return airl_logit(self.f(r.obs, r.actions, next_observations(r), terminal), r.log_probs)
