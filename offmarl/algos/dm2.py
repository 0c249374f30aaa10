"""DM² (``dm2``): independent PPO agents, each matching its own expert's observation distribution.

Reference: Wang, Durugkar, Liebman & Stone, *DM²: Decentralized Multi-Agent Reinforcement Learning via
Distribution Matching* (AAAI 2023): Algorithm 1, §5 ("Practical Multi-Agent Distribution Matching"), §6
(set-up, demonstration styles), App. B (BC pre-training, GAIL reward alone), App. C (architectures, Tables 1–2),
and their public code (a pymarl fork: the GAIL discriminator, its buffers and reward). The discriminator
machinery is :mod:`offmarl.algos._adversarial`'s, the PPO machinery :mod:`offmarl.algos._ppo`'s.
"""

from __future__ import annotations

import dataclasses

from offmarl.algos._adversarial import DEMONSTRATION_CONTRACT_OVERRIDES, GAILPPO, DemonstrationFields, GAILConfig
from offmarl.algos.base import register_algo
from offmarl.data.sources import PerAgentDatasets, dataset_cards, describe, source_dataset

DEMO_STYLES = ("cotrained_concurrent", "cotrained_independent", "separate_concurrent", "separate_independent")
VARIANTS = ("bc_pretrain", "gail_only")
BC_PRETRAIN_STEPS = 1000


@dataclasses.dataclass(frozen=True)
class Config(GAILConfig, DemonstrationFields):
    """DM² (Wang et al., Algorithm 1). K agents, each an independent PPO learner (IPPO: its own recurrent actor
    and critic on its own observation history, its own optimizers, no parameter sharing, no communication) and
    its own discriminator D_k on its own raw observation (no agent id, no action), trained on state-only
    demonstrations D_k -- agent k's observations in the experts' episodes -- against the agent's own:

        L_D^k   = −E_{o ~ D_k}[log D_k(o)] − E_{o ~ π_k}[log(1 − D_k(o))] + λ E_ô[(‖∇_ô logit D_k(ô)‖₂ − 1)²]
        r^k_t   = r^env_t + c · r_GAIL(o^k_t),     r_GAIL = logit D_k = log D_k − log(1 − D_k)   (Alg. 1, l. 10–11)
        PPO on r^k for agent k (IPPO's clipped surrogate, clipped Huber value loss, GAE(λ))

    (``offmarl.algos._adversarial`` has the loop of one update.) The reward: Algorithm 1 (line 10) writes
    r_GAIL = −log D, which in Ho & Ermon's convention (D the probability of the policy) is −log(1 − D) here
    (``gail_reward=neg_log_d``). The default is the logit, for two reasons: it is what the authors' code
    trains with, and −log(1 − D) is positive at every step, so it pays an agent for merely prolonging its
    episodes whatever it observes (the survival bias of Kostrikov et al., *Discriminator-Actor-Critic*, ICLR
    2019, §4.1) -- on SMAC, where a won episode ends early, that works against the task -- whereas the logit is
    positive where the demonstrations are the more likely and negative elsewhere. Not normalized (as the code).

    Better than the authors' code, on purpose: the value targets are normalized (their IPPO configures a value
    normalizer and never applies it), an episode cut by the time limit bootstraps from the value of the
    observation it reached (theirs bootstraps from nothing there), and the discriminator trains on real steps
    only (theirs also on the zero padding after each episode's end).

    Defaults: DM² App. C and Table 2 (discriminator obs → 64 → 64 → 1 with tanh, Adam 1e-3, 120 steps per PPO
    update on batches of 64 episodes, a buffer of 1024 episodes, 1000 demonstration episodes, gradient
    penalty λ = 10, c = 0.3; per map in ``env_defaults/dm2.yaml``: c = 0.05 on 3s_vs_4z and Table 1's PPO
    epochs and clip); the PPO fields are IPPO's (:mod:`offmarl.algos.ippo`: per-agent Adam 5e-4, GRU 64,
    chunks of 10, Huber δ = 10, clipped value loss, GAE λ 0.95).

    Fields (beyond :class:`~offmarl.algos._adversarial.GAILConfig` and
    :class:`~offmarl.algos._adversarial.DemonstrationFields`):
        demo_style: the demonstrations' style (§6, Fig. 3; App. B): ``cotrained_concurrent`` (DM²: experts
            trained together, each agent's demonstrations from the same joint episodes, drawn together),
            ``cotrained_independent`` (experts trained together, agent i's demonstrations from its own disjoint
            block of episodes), ``separate_concurrent`` / ``separate_independent`` (experts trained in separate
            runs and executed together -- recipe ``dm2/<map>/separate/trained``: agent i from the run of seed i --
            drawn from the same episodes or from disjoint blocks; or a per-agent dataset, group i from agent i's
            expert). The co-trained styles take a joint dataset; a recipe's name (``…/cotrained/…``,
            ``…/separate/…``) must agree with the style.

    Variants: ``bc_pretrain`` (App. B, Fig. 5: behaviour cloning on the demonstrations' state-action pairs for
    ``bc_steps`` steps -- 1000 unless set -- then DM²; needs a dataset with actions. The text says "then
    IPPO", the figure "IPPO trained with r_mixed": offmarl trains DM²'s mixed reward after the BC stage);
    ``gail_only`` (App. B, Fig. 6: r = r_GAIL, no environment reward).
    """

    demo_style: str = "cotrained_concurrent"


@register_algo
class DM2(GAILPPO):
    """DM² (module docstring)."""

    name = "dm2"
    Config = Config
    variants = VARIANTS
    critic_input = "obs"
    decentralized_training = True
    dataset_layouts = ("joint", "per_agent")
    contract_overrides = {**GAILPPO.contract_overrides, **DEMONSTRATION_CONTRACT_OVERRIDES}
    # gail_only is not among them: toy_pick's observations do not depend on the actions, so an observation-only
    # discriminator gives no signal there and no progress could be asked of it (tests/test_dm2.py runs it)
    contract_variants = {"bc_pretrain": {"bc_steps": 2}}

    def __init__(self, spec, config, device="cpu"):
        if config.demo_style not in DEMO_STYLES:
            raise ValueError(f"dm2: demo_style must be one of {', '.join(DEMO_STYLES)}, got {config.demo_style!r}")
        if config.variant == "bc_pretrain":
            config = dataclasses.replace(config, bc_steps=config.bc_steps or BC_PRETRAIN_STEPS)
        if config.variant == "gail_only":
            config = dataclasses.replace(config, reward="imitation")
        super().__init__(spec, config, device)

    @property
    def demo_sampling(self) -> str:
        return self.config.demo_style.split("_")[1]

    def check_source(self, source) -> None:
        """The demonstrations must be of the style's experts: a per-agent file holds separately trained experts
        (group i: agent i's), a recipe says which it holds (``dm2/<map>/cotrained/…`` or ``…/separate/…``)."""
        super().check_source(source)
        style, data = self.config.demo_style, source_dataset(source)
        separate = style.startswith("separate")
        recipe = dataset_cards(data)[0].recipe or ""
        recipe_kind = "separate" if "/separate/" in recipe else "cotrained" if "/cotrained/" in recipe else None
        if isinstance(data, PerAgentDatasets) and not separate:
            raise ValueError(f"dm2 cannot train on the {describe(source)}: demo_style={style} takes a joint dataset "
                             "(the co-trained experts' episodes); a per-agent file holds separately trained experts")
        if recipe_kind is not None and (recipe_kind == "separate") != separate:
            raise ValueError(f"dm2 cannot train on the {describe(source)}: recipe {recipe} holds {recipe_kind} experts'"
                             f" demonstrations, demo_style={style} asks for "
                             f"{'separately trained' if separate else 'co-trained'} ones")
