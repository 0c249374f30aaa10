"""Multi-agent PPO (``mappo``): one actor shared by the agents, a centralized critic on the global state.

Reference: Yu et al., *The Surprising Effectiveness of PPO in Cooperative Multi-Agent Games* (NeurIPS
2022), §3-4 and App. C, and their public code: the recurrent variant (RMAPPO, the baseline DM² compares
with) by default, ``--variant mlp`` for the feed-forward one. The PPO machinery and its defaults are
:mod:`offmarl.algos._ppo`'s.

    L_actor  = E_{i,t}[ −min(ρ Â, clip(ρ, 1 − ε, 1 + ε) Â) ] − c_H E[ H(π(·|τ^i, i)) ]
    L_critic = E_{i,t}[ max(Huber_δ(V(s, i) − R̂), Huber_δ(clip(V(s, i), V_old ± ε) − R̂)) ]

The actor reads agent i's own observation history and its one-hot id (execution is decentralized); the
critic reads the global state ``s`` (the concatenated observations where the env has none) and the agent
id, and predicts each agent's value. Advantages are normalized over every agent's active steps together,
as in MAPPO's code.
"""

from __future__ import annotations

import dataclasses

from offmarl.algos._ppo import PPOConfig, PPOLearner
from offmarl.algos.base import register_algo

VARIANTS = ("mlp",)


@dataclasses.dataclass(frozen=True)
class Config(PPOConfig):
    """MAPPO: the PPO fields (:class:`~offmarl.algos._ppo.PPOConfig`); ``--variant mlp`` sets
    ``recurrent=False`` (MAPPO's feed-forward actor and critic)."""


@register_algo
class MAPPO(PPOLearner):
    """Shared-parameter PPO with a centralized critic (module docstring)."""

    name = "mappo"
    Config = Config
    variants = VARIANTS
    critic_input = "state"
    share_actor = True
    share_critic = True

    def __init__(self, spec, config, device="cpu"):
        if config.variant == "mlp":
            config = dataclasses.replace(config, recurrent=False)
        super().__init__(spec, config, device)
