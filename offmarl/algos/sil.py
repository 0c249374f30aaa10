"""Self-imitation as distribution matching (``sil``): DM² whose targets are each agent's own best past episodes.

References: Wang, Durugkar, Liebman & Stone, *DM²* (AAAI 2023), §6 ("SIL (Hao et al. 2019) can be seen as a
variation of DM², with the target demonstrations being the agent's most successful prior trajectories"), and
their code (``gail_sil``: the discriminator's "expert" storage is a heap of the agent's episodes of highest
discounted return); Oh, Guo, Singh & Lee, *Self-Imitation Learning* (ICML 2018); Hao, Wang, Fu, Hu, Lu & Wang,
*Independent Generative Adversarial Self-Imitation Learning in Cooperative Multiagent Systems* (AAMAS 2019).
The machinery is :mod:`offmarl.algos._adversarial`'s; everything but the targets is ``dm2``'s.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from offmarl.algos._adversarial import GAILPPO, Episodes, GAILConfig, agent_view
from offmarl.algos.base import register_algo
from offmarl.data.replay import EpisodeReplay
from offmarl.data.trajectory import Trajectory


@dataclasses.dataclass(frozen=True)
class Config(GAILConfig):
    """SIL as a variation of DM² (Wang et al. §6): agent k's discriminator D_k tells agent k's own observations in
    its best past episodes B_k (label 1) from those of its recent ones (label 0), and agent k learns from

        r^k_t = r^env_t + c · logit D_k(o^k_t),      B_k = the ``best_episodes`` episodes of highest
                                                      Σ_t γ^t r^k_t agent k has played

    everything else as ``dm2`` (independent PPO agents, one discriminator each on its own observations; the
    target distribution is the agents' own and moves as they improve, so §4's convergence argument does not
    apply). It learns from the environment alone (``--env``): no demonstrations.

    Fields (beyond :class:`~offmarl.algos._adversarial.GAILConfig`, whose defaults are DM²'s):
        best_episodes: the episodes each agent keeps as its targets (1024, the code's ``gail_buffer_size``).
            Departure: the code pushes every new episode into its heap and pops the lowest one, so a new
            episode always enters, even one worse than every kept episode; offmarl keeps the top
            ``best_episodes`` (a new episode replaces the lowest-scored one only when it scores higher).
    """

    best_episodes: int = 1024


@register_algo
class SIL(GAILPPO):
    """Self-imitation as DM² (module docstring)."""

    name = "sil"
    Config = Config
    learns_from = ("env",)
    critic_input = "obs"
    decentralized_training = True
    contract_overrides = {**GAILPPO.contract_overrides, "best_episodes": 16}

    def __init__(self, spec, config, device="cpu"):
        if config.best_episodes < 1:
            raise ValueError(f"sil: best_episodes must be >= 1, got {config.best_episodes}")
        super().__init__(spec, config, device)
        actions = spec.n_actions if spec.discrete else 1
        act_dim = None if spec.discrete else spec.act_dim
        self.best = [EpisodeReplay(config.best_episodes, spec.episode_limit, 1, spec.obs_dim, 0, actions, act_dim,
                                   keep="best", gamma=config.gamma) for _ in range(self.n)]
        self.best_rngs = [np.random.default_rng(i) for i in range(self.n)]  # agent i's draws; reseeded at fit start

    def on_fit_start(self, source: Any) -> None:
        super().on_fit_start(source)
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())  # from the seeded global RNG
        self.best_rngs = [np.random.default_rng(seed + i) for i in range(self.n)]

    def remember(self, rollout: Trajectory) -> None:
        super().remember(rollout)
        for agent, best in enumerate(self.best):  # agent i keeps its own best episodes, by its own return
            best.add(agent_view(rollout, agent))

    def targets_ready(self) -> bool:
        return all(len(best) >= self.config.disc_batch_episodes for best in self.best)

    def target_batch(self) -> Episodes:
        return Episodes.cat([Episodes.from_batch(best.sample(self.config.disc_batch_episodes, rng),
                                                 self.spec.episode_limit, self.spec.obs_dim)
                             for best, rng in zip(self.best, self.best_rngs)])

    def saved_state(self) -> dict[str, Any]:
        return {**super().saved_state(), "best_rngs": [rng.bit_generator.state for rng in self.best_rngs]}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "best": [best.state_dict() for best in self.best]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for rng, saved in zip(self.best_rngs, state["best_rngs"], strict=True):
            rng.bit_generator.state = saved
        for best, saved in zip(self.best, state.get("best", [None] * self.n), strict=True):
            if saved is not None:
                best.load_state_dict(saved)
