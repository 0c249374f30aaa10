"""Independent PPO (``ippo``): every agent its own recurrent actor and critic, learning from its own experience.

References: de Witt et al., *Is Independent Learning All You Need in the StarCraft Multi-Agent Challenge?*
(2020); Wang et al., *DM²: Decentralized Multi-Agent Reinforcement Learning via Distribution Matching* (AAAI
2023), App. C: "fully separate policy/critic networks and optimizers per agent ... two fully connected
layers, followed by an RNN (GRU) layer; each layer has 64 neurons with ReLU", and Table 1 (per-map epochs,
clip, output gain). The PPO machinery and its defaults are :mod:`offmarl.algos._ppo`'s (MAPPO's published
configuration).

For agent i, on its own trajectory (o^i, a^i, r^i):

    L_actor^i  = E[ −min(ρ^i Â^i, clip(ρ^i, 1 − ε, 1 + ε) Â^i) ] − c_H E[ H(π^i(·|τ^i)) ],  ρ^i = π^i / π^i_old
    L_critic^i = E[ max(Huber_δ(V^i − R̂^i), Huber_δ(clip(V^i, V^i_old ± ε) − R̂^i)) ]

with GAE(λ) advantages from V^i(τ^i) (the agent's own observation history) and returns normalized per
agent. The n agents' networks are stacked along the agent axis and run in one call; an elementwise Adam
over the stacked weights with per-agent gradient clipping equals n separate optimizers, so training is
fully decentralized (``agent_parameters(i)`` does not change when another agent's experience does).

``share_parameters=True`` gives the common shared-IPPO variant: one actor and one critic for all agents,
each fed the agent's own observation and its one-hot id (training is then not decentralized).
"""

from __future__ import annotations

import dataclasses

from offmarl.algos._ppo import PPOConfig, PPOLearner
from offmarl.algos.base import register_algo


@dataclasses.dataclass(frozen=True)
class Config(PPOConfig):
    """IPPO: the PPO fields (:class:`~offmarl.algos._ppo.PPOConfig`) plus

    share_parameters: one actor and one critic for all agents (with the agent id) instead of one per agent.
    """

    share_parameters: bool = False


@register_algo
class IPPO(PPOLearner):
    """Independent PPO (module docstring)."""

    name = "ippo"
    Config = Config
    critic_input = "obs"
    decentralized_training = True  # by default; an instance with share_parameters is not

    def __init__(self, spec, config, device="cpu"):
        self.decentralized_training = not config.share_parameters
        super().__init__(spec, config, device)

    @property
    def share_actor(self) -> bool:
        return self.config.share_parameters

    @property
    def share_critic(self) -> bool:
        return self.config.share_parameters
