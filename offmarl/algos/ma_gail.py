"""MA-GAIL (``ma_gail``): multi-agent generative adversarial imitation of a dataset's joint behaviour, with
interaction.

Reference: Song, Ren, Sadigh & Ermon, *Multi-Agent Generative Adversarial Imitation Learning* (NeurIPS 2018),
§4 (centralized and decentralized discriminators), and their public code (``multiagent-gail``: the
discriminator, its reward, the behaviour-cloning warm start); the imitation baseline of Tseng et al., *Offline
Multi-Agent Reinforcement Learning with Knowledge Distillation* (NeurIPS 2022), Table 1, which gives no
settings for it. Unlike the offline methods of that table, ``ma_gail`` **interacts with the environment**:
it learns from a dataset (the demonstrations) and env frames. The discriminator machinery is
:mod:`offmarl.algos._adversarial`'s.
"""

from __future__ import annotations

import dataclasses

from offmarl.algos._adversarial import (
    GAILPPO,
    DemonstrationFields,
    GAILConfig,
    ImitationBaseline,
    ImitationBaselineFields,
)
from offmarl.algos.base import register_algo


@dataclasses.dataclass(frozen=True)
class Config(ImitationBaselineFields, GAILConfig, DemonstrationFields):
    """MA-GAIL (Song et al.): a discriminator over observation-action pairs tells the dataset's steps (label 1)
    from the learners' (label 0), and its reward is the agents' only reward:

        centralized:   D(o^1..o^n, a^1..a^n) with an output D_i per agent (one network on the joint step)
        decentralized: D_i(o^i, a^i), one network per agent
        L_D = −E_data[log D_i] − E_π[log(1 − D_i)],     r^i = 2 D_i − 1   (the code's reward; ``gail_reward``)

    and each agent's policy learns from r^i with offmarl's PPO (:mod:`offmarl.algos._ppo`): per-agent recurrent
    actors, per-agent critics on the global state (the concatenated observations where the env has none), as
    the centralized critics of MACK. Departure: the original trains the policies with MACK (multi-agent ACKTR,
    K-FAC natural gradients) and the discriminator with K-FAC at a learning rate of 0.1 decayed linearly;
    offmarl uses PPO and Adam at 1e-3. Actions enter the discriminator one-hot (discrete) or as they are.

    Defaults (Song et al.'s code): ``discriminator=centralized``, a hidden width of 128 with ReLU (2 hidden
    layers), one discriminator step per update, no gradient penalty, ``reward=imitation``,
    ``gail_reward=centered_d``, and ``bc_steps`` = 500 steps of behaviour cloning before interacting. The
    code's discriminator step takes the rollout's transitions against as many of the data's; here it takes
    ``disc_batch_episodes`` whole episodes of each side.

    Fields (beyond :class:`~offmarl.algos._adversarial.GAILConfig`,
    :class:`~offmarl.algos._adversarial.DemonstrationFields` and the shared defaults of
    :class:`~offmarl.algos._adversarial.ImitationBaselineFields`):
        discriminator: ``centralized`` (default) or ``decentralized``.
    """

    discriminator: str = "centralized"
    grad_penalty: float = 0.0
    gail_reward: str = "centered_d"


@register_algo
class MAGAIL(ImitationBaseline, GAILPPO):
    """MA-GAIL with PPO learners (module docstring)."""

    name = "ma_gail"
    Config = Config
