"""Dataset collection by arguments (:func:`collect_dataset`) and the papers' named recipes.

A recipe fixes everything :func:`collect_dataset` needs -- env and its kwargs, behaviour policy, tier /
composition / per-agent / state-only, episode count, seed and the number of sub-envs (which changes the
random streams, so it is part of the recipe, not a user option) -- so a recipe name, a seed and a scale
identify one file. ``build_recipe`` builds it in memory; ``get_recipe_dataset`` builds it once into the
cache ``$OFFMARL_HOME/datasets/<version>/<name with / as __>__seed<k>__scale<f>.h5`` (``OFFMARL_HOME``
defaults to ``~/.cache/offmarl``; ``<version>`` = library version + ``-r<RECIPES_VERSION>``, bumped when
a recipe changes) and returns its path; the save is atomic and guarded by a lock file, so parallel bench
workers asking for the same recipe build it once. The cache also keeps the normalization returns of
environments that have no dataset (online tasks; :func:`env_normalization`).

Recipes (episode counts from the papers; ``--scale`` multiplies them, at least one episode per part). Each
says which behaviour made it (``Recipe.behaviour``, the card's ``extra["behaviour"]``): ``scripted`` --
offmarl's own policies, named ``…/scripted`` where the paper used trained ones (the names they had before
stay accepted as aliases, so older suites and results footers resolve) -- or ``trained``, named
``…/trained``: built from policy pools (:mod:`offmarl.collect.pools`) that are trained once and cached (a
pool missing from the cache is trained first when the recipe is built through ``offmarl collect``,
``train`` or ``bench``; ``Recipe.cost`` estimates it).

Scripted:

* ``tseng/fill_in``: random walk, 1000 episodes (Tseng et al., App. D, Table 12; the paper's behaviour too).
* ``tseng/equal_space/scripted``: expert, 1000 episodes (Table 12). Departure: scripted expert, not PPO.
* ``tseng/grid_world/{good,normal,poor}/scripted``: 4000 episodes each (Table 11) at normalized scores 1 /
  0.80 / 0.65 (:mod:`offmarl.collect.tiers`).
* ``tseng/highway/{good,normal,poor}/scripted``: 1000 episodes each (Table 11) of ``highway`` with
  ``fast=True`` (highway-fast settings, 30-step episodes; ``offmarl.envs.highway``) at normalized scores 1 /
  0.80 / 0.65 of the IDM/MOBIL expert (``offmarl.policies.scripted.highway``). highway-env simulates in
  Python (≈ 17 sub-env steps per CPU second here), so expect ≈ 40 CPU-minutes for good and ≈ 1–1.5
  CPU-hours each for normal / poor, mostly the tier calibration's pilot rollouts (estimated from the step
  rate). A 16-episode check (16 pilot episodes, ``benchmarks/env_adapters_throughput.py --tiers 16``)
  reached normal at score 0.792 (ε = 0.109, return 24.45 ± 9.60; R_random 4.07, R_expert 29.82).
* ``sit/mpe_cn_3ls3l/{low,medium}/scripted``, ``sit/mpe_cn_4ls4l/…``, ``sit/mpe_pp_3p1p/…``: the agent-wise
  compositions of SIT (Tian et al.) App. C.3 Table 8 ("Random Quality" is ``low``), 10000 episodes each;
  scripted levels (:mod:`offmarl.collect.mixing`).
* ``sit/<smax map>/{low,medium}/scripted`` (Table 7 on 2s3z, 3s_vs_5z, 8m, 10m_vs_11m),
  ``sit/smac_2s3z/extreme/scripted`` (Fig. 4b) and ``sit/smac_2s3z/balanced_{random,medium,expert}/scripted``
  (Fig. 4c): the same compositions with the scripted SMAX heuristic's levels, 10000 episodes each.
* ``mabcq/equal_space/per_agent``: MABCQ (Jiang & Lu) §4.1 per-agent mixtures, 4000 episodes per agent.
  Departure: MABCQ used 1 M transitions per agent on MuJoCo; 4000 × 25 steps = 100 k (``--scale 10``
  gives 1 M).
* ``mabcq/matrix_game``: MABCQ Table 1 matrix game with its behaviour policies ([0.8, 0.2], [0.4, 0.6]),
  1000 episodes.
* ``dm2/<env>/state_only/scripted``: state-only expert demonstrations (DM², Wang et al., §5) for the native
  envs, 1000 episodes. Departure: DM² used SMAC demonstrations from trained IPPO/QMIX teams.
* ``dm2/smac_3s_vs_3z/heuristic_{good,normal,poor}/scripted``: 1000 episodes of SMAX's heuristic (wins
  33.6 %, :mod:`offmarl.policies.scripted.smax`) at three tiers, one joint policy sampled concurrently,
  with actions: DM² Fig. 7's demonstration qualities without training (the trained
  ``dm2/<smax map>/…/trained`` below are DM²'s own set-up).
* ``tseng/{smac_2s3z,smac_3s5z,smac_8m_vs_9m,smac_3s5z_vs_3s6z}/good/scripted``: 1000 episodes of SMAX's
  heuristic, Tseng's SMAC columns without training (the trained ``tseng/<map>/good/trained`` below are the
  paper's set-up). The heuristic wins about half of 2s3z / 3s5z and almost none of 8m_vs_9m /
  3s5z_vs_3s6z: weaker data than MADT's.
* ``distill/{equal_space,fill_in,grid_world}/{imbalanced,rotating}/scripted``: agent-wise imbalanced data on
  Tseng's three envs, SIT's compositions (App. C.3) over the scripted levels -- ``imbalanced`` = ``100%[r,m,e]``
  (SIT's medium-quality form: agent 1 random, 2 medium, 3 expert in every episode), ``rotating`` =
  ``34%[e,m,r]+33%[r,e,m]+33%[m,r,e]`` (every agent expert in a third of the episodes, medium and random in
  the others). Not in any paper: data where a centralized teacher that sees every agent could pick out the
  good agents' behaviour (the distillation investigation); episode counts as Tseng's recipes of each env.

Trained (``_register_trained``, in the order the trained datasets are built):

1. ``sit/<mpe env>/{low,medium}/trained`` (Table 8) and ``sit/<smax map>/{low,medium}/trained`` (Table 7 on
   the maps SMAX has), ``sit/smac_2s3z/extreme/trained`` (Fig. 4b) and ``…/balanced_{random,medium,
   expert}/trained`` (Fig. 4c): compositions over QMIX pools (SIT App. C.2), levels split 30 / 40 / 30 %.
2. ``sit/mamujoco_{halfcheetah,walker2d}_2x3/{low,medium}/trained`` (Table 9): an IPPO pool with Gaussian
   policies stands in for FacMAC; 200-step episodes; levels in thirds (Table 6).
3. ``tseng/equal_space/trained``, ``tseng/grid_world/{good,normal,poor}/trained``: the tiers of a MAPPO
   expert (the pool's best checkpoint, sampled) -- MAPPO's actors are decentralized, Tseng's PPO expert
   centralized; on Equal Space every observation already holds all positions. ``tseng/<smax map>/good/
   trained``: MAPPO checkpoints for the SMAC columns (MADT's data came from MAPPO).
4. ``dm2/<smax map>/{cotrained,separate}/trained``: DM²'s demonstrations from IPPO experts, sampled, with
   actions: one run's team, or agent i from the run of seed i executed with the others.
5. ``mabcq/mamujoco_{halfcheetah_2x3,hopper_3x1}/per_agent/trained``: MABCQ's per-agent mixtures over an
   IPPO pool (standing in for SAC) at a reduced scale.

Measured at seed 0, scale 1 (per-agent average return, mean ± std over episodes): grid_world good
3.04 ± 0.23, normal 2.47 ± 0.24 (score 0.805, ε = 0.19), poor 2.08 ± 0.25 (score 0.666, ε = 0.31)
-- Tseng Table 11: 3.02 ± 0.29, 2.50 ± 0.12, 2.13 ± 0.09; equal_space expert −2.17 ± 1.00 (Table 12:
−2.25 ± 0.12); SIT CN_3ls3l random −46.7, medium −28.3 (SIT Table 8: −157.7, −107.5 on its own
reward scale; the ordering is what carries over).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from offmarl.collect.compositions import collect_composition, collect_per_agent, parse_composition
from offmarl.collect.mixing import DEFAULT_EXPERT_NOISE, DEFAULT_MEDIUM_RATE, LEVEL_NAMES
from offmarl.collect.normalization import NORMALIZATION_EPISODES, measure_returns, record_normalization
from offmarl.collect.pools import Pool, PoolSpec, find_pool, pool_expert_factory
from offmarl.collect.rollout import derive_seed, rollout
from offmarl.collect.tiers import TIER_TARGETS, collect_tier
from offmarl.core.files import atomic_write_json, file_lock, offmarl_home, sweep_stale_temporaries
from offmarl.data.sources import Dataset, PerAgentDatasets, datasets_of

RECIPES_VERSION = 4  # 2: cards of format version 2 (random_return, reference_return); 3: behaviour in the card,
#                       scripted recipes renamed .../scripted, SIT's qualities low / medium; 4: SMAX states hold
#                       cooldown fractions in [0, 1] (offmarl.envs.smax)
DEFAULT_NUM_ENVS = 256
#: the distillation investigation's agent-wise imbalanced data on Tseng's envs (3 agents each; module docstring)
IMBALANCED_COMPOSITIONS = {"imbalanced": "100%[r,m,e]", "rotating": "34%[e,m,r]+33%[r,e,m]+33%[m,r,e]"}
IMBALANCED_EPISODES = {"equal_space": 1000, "fill_in": 1000, "grid_world": 4000}  # Tseng Tables 11-12
#: Tseng et al.'s SMAC maps (Tables 1 and 3), as SMAX envs
TSENG_SMAX_MAPS = ("smac_2s3z", "smac_3s5z", "smac_8m_vs_9m", "smac_3s5z_vs_3s6z")



def collect_dataset(env: str, *, env_kwargs: dict[str, Any] | None = None, policy: str = "expert",
                    tier: str | None = None, composition: str | None = None, per_agent: bool = False,
                    state_only: bool = False, episodes: int = 100, seed: int = 0,
                    num_envs: int = DEFAULT_NUM_ENVS, medium_rate: float = DEFAULT_MEDIUM_RATE,
                    noise: float = DEFAULT_EXPERT_NOISE, progress: bool = True,
                    recipe: str | None = None, pool: str | Path | Sequence[str | Path] | None = None,
                    normalization_episodes: int = NORMALIZATION_EPISODES) -> Dataset:
    """Collect a dataset of env ``env`` (per-agent: a list of ``n`` datasets).

    Exactly one of: a plain ``policy`` rollout; ``tier`` (good/normal/poor, ``policy`` must be
    ``"expert"``); ``composition`` (SIT levels, ``policy`` is the expert the m/e levels derive from);
    ``per_agent`` (MABCQ mixture, likewise). With ``pool`` (a policy pool's directory,
    :mod:`offmarl.collect.pools`) the behaviour is trained instead of scripted: a composition or a per-agent
    mixture takes every level from the pool's checkpoints; a tier or a plain ``expert`` rollout takes the
    pool's best checkpoint as the expert -- or, given one pool per agent, agent i from pool i's best
    (experts trained separately, executed together). The env must be the pools' (their kwargs by default).
    Every card says ``extra["behaviour"]``: ``trained`` (with the pools' records) or ``scripted``.
    ``state_only`` drops the actions in every mode. ``noise``
    is the per-agent mixture's expert noise. The env runs ``min(num_envs, episodes)`` sub-envs (a tier's
    pilot rollouts and the normalization rollouts run ``num_envs``).
    The cards' ``random_return`` / ``reference_return`` are measured on ``normalization_episodes`` episodes
    after the data is collected (:mod:`offmarl.collect.normalization`; a tier reuses its calibration's;
    0: not measured, None in the card).
    ``card.extra["collect"]`` holds these arguments, so ``collect_dataset(**card.extra["collect"])``
    regenerates the file.
    """
    from offmarl.envs import make_env
    from offmarl.policies.registry import make_behavior_policy

    env_kwargs = dict(env_kwargs or {})
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if normalization_episodes < 0:
        raise ValueError(f"normalization episodes must be >= 0, got {normalization_episodes}")
    modes = [name for name, on in (("--tier", tier is not None), ("--composition", composition is not None),
                                    ("--per-agent", per_agent)) if on]
    if len(modes) > 1:
        raise ValueError(f"{' and '.join(modes)} cannot be combined; choose one")
    if tier is not None:
        if tier not in TIER_TARGETS:
            raise ValueError(f"unknown quality tier {tier!r}; known: {', '.join(TIER_TARGETS)}")
        if policy != "expert":
            raise ValueError(f"--tier mixes the expert with random actions; it needs --policy expert, not {policy!r}")
    if (composition is not None or per_agent) and policy == "random":
        raise ValueError(f"{modes[0]} derives the medium/expert levels from an expert policy; --policy random has none")
    pools = [Pool.load(p) for p in ([] if pool is None else [pool] if isinstance(pool, (str, Path)) else pool)]
    if pools:
        if (composition is not None or per_agent) and len(pools) != 1:
            raise ValueError(f"{modes[0]} takes its levels from one pool, got {len(pools)}")
        if composition is None and not per_agent and policy != "expert":
            raise ValueError(f"--pool makes the pool's best checkpoint the expert; it needs --policy expert, "
                             f"not {policy!r}")
        pool_kwargs = pools[0].env_kwargs
        env_kwargs = {**pool_kwargs, **env_kwargs}
        for p in pools:
            if p.env_name != env:
                raise ValueError(f"pool {p.root} was trained on env {p.env_name!r}, not {env!r}")
            if p.env_kwargs != env_kwargs:
                raise ValueError(f"pool {p.root} was trained with env kwargs {p.env_kwargs}, not {env_kwargs}")
    behaviour_pool = pools[0] if pools and (composition is not None or per_agent) else None

    args = {"env": env, "env_kwargs": env_kwargs, "policy": policy, "tier": tier, "composition": composition,
            "per_agent": per_agent, "state_only": state_only, "episodes": episodes, "seed": seed,
            "num_envs": num_envs, "medium_rate": medium_rate, "noise": noise,
            "normalization_episodes": normalization_episodes,
            **({"pool": [str(p.root) for p in pools] if len(pools) > 1 else str(pools[0].root)} if pools else {})}
    with contextlib.ExitStack() as open_envs:
        batched = make_env(env, num_envs=min(num_envs, episodes), seed=seed, **env_kwargs)
        open_envs.callback(batched.close)
        spec = batched.spec
        if composition is not None:
            parse_composition(composition, spec.n_agents)  # fail before building anything else
        extra = {"collect": args}
        # rollouts over more episodes than a small dataset has (tier pilots, normalization) get num_envs sub-envs
        pilot_env = batched
        if (tier is not None or normalization_episodes) and batched.num_envs != num_envs:
            pilot_env = make_env(env, num_envs=num_envs, seed=seed, **env_kwargs)
            open_envs.callback(pilot_env.close)

        make_expert = (pool_expert_factory(pools, spec) if pools
                       else functools.partial(_scripted_expert, policy, spec))

        if tier is not None:
            result: Dataset = collect_tier(batched, make_expert, tier, episodes, seed, state_only=state_only,
                                             progress=progress, expert_name=policy, recipe=recipe, extra=extra,
                                             pilot_env=pilot_env)
        elif composition is not None:
            result = collect_composition(batched, make_expert, composition, episodes, seed, medium_rate=medium_rate,
                                         expert_name=policy, state_only=state_only, progress=progress,
                                         recipe=recipe, extra=extra, pool=behaviour_pool)
        elif per_agent:
            result = collect_per_agent(batched, make_expert, episodes, seed, medium_rate=medium_rate, noise=noise,
                                       expert_name=policy, state_only=state_only, progress=progress,
                                       recipe=recipe, extra=extra, pool=behaviour_pool)
        else:
            behaviour = (make_expert(derive_seed(seed, "policy")) if pools
                         else make_behavior_policy(policy, spec, seed=derive_seed(seed, "policy")))
            result = rollout(batched, behaviour, episodes, seed, state_only=state_only, progress=progress,
                             behavior={"policy": policy}, recipe=recipe, extra=extra)
        if tier is not None:
            calibration = datasets_of(result)[0].card.extra["tier"]
            record_normalization(datasets_of(result), calibration["r_random"], calibration["r_expert"],
                                 {"episodes": calibration["reference_episodes"],
                                  "seed": calibration["reference_seed"], "measured_by": "tier calibration"})
        elif normalization_episodes:
            # a mixture's levels derive from `policy`, its expert (or a pool's, whose best checkpoint is the
            # reference); a plain rollout's policy is an expert if named so
            has_expert = composition is not None or per_agent or policy == "expert"
            random_return, expert_return, env_seed = measure_returns(
                pilot_env, make_expert if has_expert else None, normalization_episodes, seed)
            record_normalization(datasets_of(result), random_return, expert_return,
                                 {"episodes": normalization_episodes, "seed": env_seed})
    for ds in datasets_of(result):
        ds.card.env_kwargs = {**env_kwargs, **ds.card.env_kwargs}  # the spec's kwargs win when it has them
        ds.card.extra["behaviour"] = "trained" if pools else "scripted"
        if pools:
            ds.card.extra["pools"] = [p.record() for p in pools]
    return result


def _scripted_expert(policy: str, spec: Any, seed: int) -> Any:
    from offmarl.policies.registry import make_behavior_policy

    return make_behavior_policy(policy, spec, seed=seed)


# ---- the recipes -------------------------------------------------------------------------------------
PoolProvider = Callable[[PoolSpec], Pool]


def cached_pool(spec: PoolSpec) -> Pool:
    """The pool ``spec`` names from the cache or the shipped pools (:func:`~offmarl.collect.pools.find_pool`); a
    pool in neither is an error saying how to build it (a recipe built through ``offmarl collect``, ``train`` or
    ``bench`` builds it: those pass :func:`offmarl.train.experiment.build_pool` as the provider)."""
    found = find_pool(spec)
    if found is None:
        raise FileNotFoundError(f"policy pool {spec.algo} on {spec.env} (seed {spec.seed}, {spec.steps} frames) is not "
                                f"built ({spec.pool_dir}) nor shipped; `offmarl collect RECIPE` builds it, or "
                                "`offmarl pool build`")
    return found


def recipe_pool_specs() -> list[PoolSpec]:
    """Every pool spec a registered recipe names, once each, in registration order."""
    specs: list[PoolSpec] = []
    for spec in (spec for recipe in _RECIPES.values() for spec in recipe.pools):
        if spec not in specs:
            specs.append(spec)
    return specs


@dataclass(frozen=True)
class Recipe:
    """A named dataset of a paper; the fields are :func:`collect_dataset`'s arguments, ``pools`` the policy
    pools its trained behaviour comes from (:class:`~offmarl.collect.pools.PoolSpec`: built once, cached)
    and ``cost`` what building it costs where that is more than a few CPU minutes."""

    name: str
    description: str
    env: str
    episodes: int
    policy: str = "expert"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    tier: str | None = None
    composition: str | None = None
    per_agent: bool = False
    state_only: bool = False
    seed: int = 0
    num_envs: int = DEFAULT_NUM_ENVS
    pools: tuple[PoolSpec, ...] = ()
    cost: str = ""

    @property
    def behaviour(self) -> str:
        """``trained`` (from policy pools) or ``scripted`` (offmarl's own behaviour policies)."""
        return "trained" if self.pools else "scripted"

    @property
    def mode(self) -> str:
        if self.tier is not None:
            return f"tier {self.tier}"
        if self.composition is not None:
            return f"composition {self.composition}"
        if self.per_agent:
            return "per-agent mixture (MABCQ)"
        return "state-only" if self.state_only else "rollout"

    def scaled_episodes(self, scale: float) -> int:
        if not scale > 0:
            raise ValueError(f"--scale must be > 0, got {scale}")
        return max(1, int(round(self.episodes * scale)))


_RECIPES: dict[str, Recipe] = {}
#: names recipes had before the trained recipes came: results footers and suites that name them still resolve
_ALIASES: dict[str, str] = {}


def register_recipe(recipe: Recipe, aliases: Sequence[str] = ()) -> None:
    for name in (recipe.name, *aliases):
        if name in _RECIPES or name in _ALIASES:
            raise ValueError(f"recipe {name!r} is registered twice")
    if recipe.composition is not None:
        parse_composition(recipe.composition)  # syntax; the agent count is checked when the env is built
    _RECIPES[recipe.name] = recipe
    _ALIASES.update({alias: recipe.name for alias in aliases})


# Training throughput (frames per CPU-second, one torch thread) the trained recipes' costs are estimated from.
# Measured by the online-core suites on a shared 2-core AMD EPYC (2026-12-06: ippo / mappo 2M frames on
# mpe_cn_3ls3l in 1786 / 2730 s, 1M frames on smac_3s_vs_3z in 426 / 1770 s); the others are assumptions
# until their suites or pools have run (qmix: one 32-episode update per rollout; MaMuJoCo: online-mamujoco's
# cpu_scale), replaced by BENCHMARKS.md's measured build times.
_FRAMES_PER_CPU_SECOND = {("mpe", "ippo"): 1100, ("mpe", "mappo"): 730, ("smac", "ippo"): 2300,
                          ("smac", "mappo"): 560,
                          ("mpe", "qmix"): 500, ("smac", "qmix"): 500, ("mamujoco", "ippo"): 1100,
                          ("native", "mappo"): 1000}


def _pool(env: str, algo: str, steps: int, seed: int = 0, **kwargs: Any) -> PoolSpec:
    return PoolSpec(env=env, algo=algo, steps=steps, seed=seed, **kwargs)


def _cost(pools: Sequence[PoolSpec], episodes: int) -> str:
    hours = 0.0
    for spec in pools:
        family = spec.env.split("_")[0] if spec.env.split("_")[0] in ("mpe", "smac", "mamujoco") else "native"
        hours += spec.steps / _FRAMES_PER_CPU_SECOND.get((family, spec.algo), 800) / 3600
    frames = sum(spec.steps for spec in pools) / 1e6
    return (f"≈ {hours:.1f} CPU-h est. to train {len(pools)} pool(s), {frames:g}M frames (once, shared by the "
            f"pool's recipes), then {episodes} episodes")


def _register_scripted() -> None:
    """offmarl's scripted behaviours: the papers' data where they used random or fixed policies, stand-ins
    (named ``…/scripted``) where they used trained ones."""
    register_recipe(Recipe("tseng/fill_in", "Tseng et al. App. D / Table 12: Fill-In random-walk data",
                           env="fill_in", policy="random", episodes=1000))
    register_recipe(Recipe("tseng/equal_space/scripted", "Tseng et al. App. D / Table 12: Equal Space expert data "
                           "(scripted expert)", env="equal_space", episodes=1000), aliases=["tseng/equal_space"])
    for tier in ("good", "normal", "poor"):
        register_recipe(Recipe(f"tseng/grid_world/{tier}/scripted", "Tseng et al. App. D / Table 11: Grid-World "
                               f"{tier} data (normalized score {TIER_TARGETS[tier]:.2f}; scripted expert)",
                               env="grid_world", tier=tier, episodes=4000), aliases=[f"tseng/grid_world/{tier}"])
    for tier in ("good", "normal", "poor"):
        register_recipe(Recipe(f"tseng/highway/{tier}/scripted", f"Tseng et al. App. D / Table 11: Highway {tier} data "
                               f"(normalized score {TIER_TARGETS[tier]:.2f}; highway-fast settings; IDM/MOBIL expert)",
                               env="highway", env_kwargs={"fast": True}, tier=tier, episodes=1000,
                               cost="≈ 0.7 CPU-h (good) to 1.5 CPU-h (normal, poor): highway-env steps ≈ 17 sub-env "
                                    "steps per CPU-second"),
                        aliases=[f"tseng/highway/{tier}"])
    for env, (low_mix, medium_mix) in SIT_MPE_COMPOSITIONS.items():
        for quality, mix, old in (("low", low_mix, "random"), ("medium", medium_mix, "medium")):
            register_recipe(Recipe(f"sit/{env}/{quality}/scripted", f"SIT App. C Table 8: {quality}-quality agent-wise "
                                   f"imbalanced data {mix} (scripted levels)", env=env, composition=mix,
                                   episodes=10000), aliases=[f"sit/{env}/{old}"])
    # SIT Table 7 on SMAX with the scripted SMAX heuristic as the expert, Fig. 4b's extreme and Fig. 4c's
    # balanced 2s3z data. Table 7's 2s3z low row (50% all random + 50% all medium) is what is registered; the
    # main text ("A Closer Look at SIT") and App. E.1 describe it as 50%[r,e,r,e,e] + 50%[r,m,r,m,m] instead,
    # but Table 7's average return (3.24, below the medium row's 7.04) only fits the table's row.
    for env, (low_mix, medium_mix) in SIT_SMAX_COMPOSITIONS.items():
        for quality, mix in (("low", low_mix), ("medium", medium_mix)):
            register_recipe(Recipe(f"sit/{env}/{quality}/scripted", f"SIT App. C Table 7: {quality}-quality agent-wise "
                                   f"imbalanced data {mix} (scripted SMAX heuristic levels)", env=env,
                                   composition=mix, episodes=10000))
    register_recipe(Recipe("sit/smac_2s3z/extreme/scripted", f"SIT Fig. 4b: the extreme dataset {SIT_EXTREME} "
                           "(scripted levels)", env="smac_2s3z", composition=SIT_EXTREME, episodes=10000))
    for level, name in LEVEL_NAMES.items():
        mix = f"100%[{','.join(level * 5)}]"
        register_recipe(Recipe(f"sit/smac_2s3z/balanced_{name}/scripted", f"SIT Fig. 4c: the balanced {name} "
                               f"dataset {mix} (scripted levels)", env="smac_2s3z", composition=mix, episodes=10000))
    register_recipe(Recipe("mabcq/equal_space/per_agent", "MABCQ §4.1: per-agent datasets (20% random, 35% i medium/"
                           "others expert, 35% i expert/others medium, 10% expert, noisy expert; scripted levels)",
                           env="equal_space", per_agent=True, episodes=4000))
    register_recipe(Recipe("mabcq/matrix_game", "MABCQ Table 1: matrix game data of the behaviour policies "
                           "[0.8, 0.2] and [0.4, 0.6]", env="matrix_game", policy="behavior", episodes=1000))
    for env in ("equal_space", "fill_in", "grid_world", "mpe_cn_3ls3l", "mpe_cn_4ls4l", "mpe_pp_3p1p"):
        register_recipe(Recipe(f"dm2/{env}/state_only/scripted", f"DM2: state-only scripted-expert demonstrations on "
                               f"{env}", env=env, state_only=True, episodes=1000), aliases=[f"dm2/{env}/state_only"])
    # DM² App. B, Fig. 7 (demonstration qualities) without training: SMAX's heuristic (offmarl.policies.scripted.
    # smax) on 3s_vs_3z as one joint policy sampled concurrently, at three tiers (normalized scores 1 / 0.80 /
    # 0.65 between random play and the heuristic), actions kept (dm2 reads the observations, bc_pretrain the
    # actions). DM²'s own demonstrations are the trained dm2/<map>/{cotrained,separate}/trained.
    for tier in ("good", "normal", "poor"):
        register_recipe(Recipe(f"dm2/smac_3s_vs_3z/heuristic_{tier}/scripted", f"DM2 App. B Fig. 7: {tier} SMAX "
                               f"heuristic demonstrations on smac_3s_vs_3z (normalized score {TIER_TARGETS[tier]:.2f})",
                               env="smac_3s_vs_3z", tier=tier, episodes=1000))
    # Tseng et al.'s SMAC columns (Table 12; MADT's MAPPO data) without training: SMAX's heuristic as the
    # "good" behaviour, 1000 episodes as the trained tseng/<map>/good/trained. The heuristic wins 41-50 % of
    # 2s3z / 3s5z but 0-1 % of 8m_vs_9m / 3s5z_vs_3s6z (offmarl.policies.scripted.smax): weaker than MADT's data
    for env in TSENG_SMAX_MAPS:
        register_recipe(Recipe(f"tseng/{env}/good/scripted", f"Tseng et al. Table 12 (MADT's SMAC data): {env} "
                               "'good' data of SMAX's scripted heuristic (no training; weaker than MAPPO's)",
                               env=env, episodes=1000))
    for env, episodes in IMBALANCED_EPISODES.items():
        for kind, mix in IMBALANCED_COMPOSITIONS.items():
            register_recipe(Recipe(f"distill/{env}/{kind}/scripted", f"agent-wise imbalanced {env} data {mix} over "
                                   "the scripted levels (SIT App. C's compositions; not a paper's dataset)",
                                   env=env, composition=mix, episodes=episodes))


# SIT App. C.3 Table 8 (MPE): the low ("Random Quality") and medium compositions
SIT_MPE_COMPOSITIONS = {"mpe_cn_3ls3l": ("50%[r,r,r]+50%[r,r,m]", "100%[r,m,e]"),
                        "mpe_cn_4ls4l": ("50%[r,r,r,r]+50%[r,r,r,m]", "100%[r,r,e,e]"),
                        "mpe_pp_3p1p": ("50%[r,r,r]+50%[r,r,m]", "100%[r,m,e]")}
# SIT Table 7 (SMAC maps SMAX has) low and medium compositions, by unit list
SIT_SMAX_COMPOSITIONS = {"smac_2s3z": ("50%[r,r,r,r,r]+50%[m,m,m,m,m]", "100%[r,e,r,e,e]"),
                         "smac_3s_vs_5z": ("50%[r,r,r]+50%[r,r,m]", "100%[r,r,e]"),
                         "smac_8m": ("50%[" + ",".join("r" * 8) + "]+50%[" + ",".join("m" * 8) + "]",
                                     "100%[r," + ",".join("e" * 7) + "]"),
                         "smac_10m_vs_11m": ("50%[" + ",".join("r" * 10) + "]+50%[" + ",".join("m" * 10) + "]",
                                             "100%[" + ",".join("e" * 10) + "]")}
# SIT Fig. 4b: the extreme low-quality 2s3z dataset
SIT_EXTREME = "99.5%[r,r,r,r,r]+0.5%[m,m,m,m,m]"
# SIT Table 9 (MaMuJoCo). HalfCheetah_2l's low row reads [l1^m, l2^l]; "l" is no level: read as r
SIT_MAMUJOCO_COMPOSITIONS = {"mamujoco_halfcheetah_2x3": ("100%[m,r]", "100%[r,e]"),
                             "mamujoco_walker2d_2x3": ("100%[r,m]", "100%[r,e]")}


def _register_trained() -> None:
    """Data from trained policies (policy pools, :mod:`offmarl.collect.pools`), in the trained-datasets order of
    priority; names end in ``/trained``. Each pool is trained once and cached; ``cost`` estimates it."""
    # 1. SIT's MPE (Table 8) and SMAX (Table 7, Fig. 4b-c) datasets from QMIX pools (SIT App. C.2). SIT keeps
    # checkpoints "at fixed intervals" without saying which; on MPE offmarl's QMIX climbs from the untrained
    # return to its best within 100k frames and then drifts slightly down up to 1M frames (a 1M-frame run on
    # CN_3ls3l kept every 50k frames: -56.4, -57.3, then -36.5 to -41.4), so every checkpoint after the climb
    # bins as expert and the medium level is empty. MPE pools therefore train 200k frames and keep a checkpoint
    # every 5k frames (41 checkpoints, most of them on the climb); SMAX pools, whose climb is not measured yet,
    # keep one every 20k of their 1M frames (51).
    for table, compositions in (("Table 8", SIT_MPE_COMPOSITIONS), ("Table 7", SIT_SMAX_COMPOSITIONS)):
        for env, (low_mix, medium_mix) in compositions.items():
            pool = (_pool(env, "qmix", 200_000, series_every=5_000) if env.startswith("mpe_")
                    else _pool(env, "qmix", 1_000_000, series_every=20_000))
            for quality, mix in (("low", low_mix), ("medium", medium_mix)):
                register_recipe(Recipe(f"sit/{env}/{quality}/trained", f"SIT App. C {table}: {quality}-quality "
                                       f"agent-wise imbalanced data {mix} from a QMIX policy pool", env=env,
                                       composition=mix, episodes=10000, pools=(pool,), cost=_cost([pool], 10000)))
    pool_2s3z = _pool("smac_2s3z", "qmix", 1_000_000, series_every=20_000)
    register_recipe(Recipe("sit/smac_2s3z/extreme/trained", f"SIT Fig. 4b: the extreme dataset {SIT_EXTREME} from a "
                           "QMIX policy pool", env="smac_2s3z", composition=SIT_EXTREME, episodes=10000,
                           pools=(pool_2s3z,), cost=_cost([pool_2s3z], 10000)))
    for level, name in LEVEL_NAMES.items():
        mix = f"100%[{','.join(level * 5)}]"
        register_recipe(Recipe(f"sit/smac_2s3z/balanced_{name}/trained", f"SIT Fig. 4c: the balanced {name} dataset "
                               f"{mix} from a QMIX policy pool", env="smac_2s3z", composition=mix, episodes=10000,
                               pools=(pool_2s3z,), cost=_cost([pool_2s3z], 10000)))
    # 2. SIT's MaMuJoCo (Table 9): a continuous IPPO pool stands in for FacMAC; SIT's 200-step episodes, thirds
    for env, (low_mix, medium_mix) in SIT_MAMUJOCO_COMPOSITIONS.items():
        pool = _pool(env, "ippo", 1_000_000, env_kwargs={"episode_limit": 200}, split="thirds")
        for quality, mix in (("low", low_mix), ("medium", medium_mix)):
            register_recipe(Recipe(f"sit/{env}/{quality}/trained", f"SIT App. C Table 9: {quality}-quality agent-wise "
                                   f"imbalanced data {mix} from an IPPO policy pool (standing in for FacMAC)", env=env,
                                   env_kwargs={"episode_limit": 200}, composition=mix, episodes=10000, pools=(pool,),
                                   cost=_cost([pool], 10000)))
    # 3. Tseng's data from a trained expert: MAPPO (decentralized actors, a centralized critic) stands in for
    # Tseng's centralized PPO expert -- Equal Space's observations already hold every agent's position, so
    # nothing is lost there; on Grid-World each actor sees only its own observation (a departure)
    equal_space = _pool("equal_space", "mappo", 1_000_000)
    register_recipe(Recipe("tseng/equal_space/trained", "Tseng et al. App. D / Table 12: Equal Space expert data from "
                           "a MAPPO expert", env="equal_space", episodes=1000, pools=(equal_space,),
                           cost=_cost([equal_space], 1000)))
    grid_world = _pool("grid_world", "mappo", 2_000_000)
    for tier in ("good", "normal", "poor"):
        register_recipe(Recipe(f"tseng/grid_world/{tier}/trained", f"Tseng et al. App. D / Table 11: Grid-World {tier} "
                               f"data (normalized score {TIER_TARGETS[tier]:.2f}) from a MAPPO expert",
                               env="grid_world", tier=tier, episodes=4000, pools=(grid_world,),
                               cost=_cost([grid_world], 4000)))
    for env in TSENG_SMAX_MAPS:
        pool = _pool(env, "mappo", 2_000_000)
        register_recipe(Recipe(f"tseng/{env}/good/trained", f"Tseng et al. Table 12 (MADT's SMAC data): {env} good "
                               "data from MAPPO checkpoints (the best one, sampled)", env=env, episodes=1000,
                               pools=(pool,), cost=_cost([pool], 1000)))
    # 4. DM²'s demonstrations (§6, App. B): IPPO experts, executed stochastically, actions kept (BC
    # pre-training needs them; dm2 reads the observations); co-trained = one run's team, separate = agent i
    # from the run of seed i, executed together
    for env, n_agents in (("smac_3s_vs_3z", 3), ("smac_5m_vs_6m", 5), ("smac_3s_vs_4z", 3)):
        team = _pool(env, "ippo", 2_000_000)
        register_recipe(Recipe(f"dm2/{env}/cotrained/trained", f"DM2 §6: demonstrations of a co-trained IPPO team on "
                               f"{env} (one run's best checkpoint, sampled)", env=env, episodes=1000, pools=(team,),
                               cost=_cost([team], 1000)))
        separate = tuple(_pool(env, "ippo", 2_000_000, seed=k) for k in range(n_agents))
        register_recipe(Recipe(f"dm2/{env}/separate/trained", f"DM2 §6: demonstrations of {n_agents} separately "
                               f"trained IPPO experts (agent i from the run of seed i) executed together on {env}",
                               env=env, episodes=1000, pools=separate, cost=_cost(separate, 1000)))
    # 5. MABCQ's per-agent mixtures (§4.1) on MaMuJoCo: an IPPO pool's medium and expert levels stand in for
    # MABCQ's intermediate and expert SAC policies; reduced scale (4000 episodes of 200 steps per agent)
    for env in ("mamujoco_halfcheetah_2x3", "mamujoco_hopper_3x1"):
        pool = _pool(env, "ippo", 1_000_000, env_kwargs={"episode_limit": 200}, split="thirds")
        register_recipe(Recipe(f"mabcq/{env}/per_agent/trained", "MABCQ §4.1: per-agent mixtures from an IPPO pool "
                               "(standing in for SAC) at a reduced scale", env=env, env_kwargs={"episode_limit": 200},
                               per_agent=True, episodes=4000, pools=(pool,), cost=_cost([pool], 4000)))


_register_scripted()
_register_trained()


def list_recipes() -> list[tuple[str, str]]:
    """``(name, description)`` of every recipe, sorted by name."""
    return [(name, _RECIPES[name].description) for name in sorted(_RECIPES)]


def recipe_aliases() -> dict[str, str]:
    """Old recipe names and the recipes they name now."""
    return dict(_ALIASES)


def is_recipe(name: str) -> bool:
    return name in _RECIPES or name in _ALIASES


def get_recipe(name: str) -> Recipe:
    """Recipe ``name`` (or the one an old name is an alias of)."""
    name = _ALIASES.get(name, name)
    if name not in _RECIPES:
        raise KeyError(f"unknown recipe {name!r}; see `offmarl collect --list` (known: {', '.join(sorted(_RECIPES))})")
    return _RECIPES[name]


def build_recipe(name: str, seed: int | None = None, scale: float = 1.0, progress: bool = False,
                 pool_provider: PoolProvider = cached_pool) -> Dataset:
    """Collect recipe ``name`` in memory (``seed`` None: the recipe's default seed); a trained recipe's pools come
    from ``pool_provider`` (the cache only, by default; :func:`offmarl.train.experiment.build_pool` trains what is
    missing)."""
    recipe = get_recipe(name)
    name = recipe.name  # an alias builds the recipe it names
    seed = recipe.seed if seed is None else seed
    pools = [pool_provider(spec).root for spec in recipe.pools]
    result = collect_dataset(recipe.env, env_kwargs=recipe.env_kwargs, policy=recipe.policy, tier=recipe.tier,
                             composition=recipe.composition, per_agent=recipe.per_agent,
                             state_only=recipe.state_only, episodes=recipe.scaled_episodes(scale), seed=seed,
                             num_envs=recipe.num_envs, progress=progress, recipe=name, pool=pools or None)
    for ds in datasets_of(result):
        ds.card.extra["recipe_scale"] = float(scale)
        ds.card.extra["recipes_version"] = RECIPES_VERSION
    return result


# ---- files and the cache -----------------------------------------------------------------------------
def recipe_dataset_path(name: str, seed: int = 0, scale: float = 1.0) -> Path:
    """Where the cache keeps recipe ``name`` built with ``seed`` and ``scale``."""
    from offmarl import __version__

    name = get_recipe(name).name
    return (offmarl_home() / "datasets" / f"{__version__}-r{RECIPES_VERSION}"
            / f"{name.replace('/', '__')}__seed{seed}__scale{scale:g}.h5")


def save_collected(result: Dataset, path: Path) -> Path:
    """Write a dataset (per-agent datasets: one group per agent) to ``path`` (atomic, see ``offmarl.data.io``)."""
    from offmarl.data.io import save_dataset, save_per_agent_datasets

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(result, PerAgentDatasets):
        return Path(save_per_agent_datasets(result, path))
    return Path(save_dataset(result, path))


def cache_recipe_dataset(name: str, seed: int = 0, scale: float = 1.0, progress: bool = False,
                         pool_provider: PoolProvider = cached_pool) -> bool:
    """Build recipe ``name`` into the cache unless it is there; True when this call built it.

    The build holds the cache file's lock, so concurrent callers -- a bench's workers, benches with different
    ``--out`` roots, ``offmarl train --dataset RECIPE`` -- build it once: the others wait, then find it. The
    temporary files a killed build left in the cache directory are removed before building."""
    path = recipe_dataset_path(name, seed, scale)
    if path.exists():
        return False
    with file_lock(path.with_name(path.name + ".lock")):
        if path.exists():  # another process built it while this one waited
            return False
        sweep_stale_temporaries(path.parent)
        save_collected(build_recipe(name, seed=seed, scale=scale, progress=progress, pool_provider=pool_provider),
                       path)
        return True


def get_recipe_dataset(name: str, seed: int = 0, scale: float = 1.0, progress: bool = False,
                       pool_provider: PoolProvider = cached_pool) -> Path:
    """The cached file of recipe ``name`` (built and saved first when missing: :func:`cache_recipe_dataset`)."""
    cache_recipe_dataset(name, seed, scale, progress, pool_provider)
    return recipe_dataset_path(name, seed, scale)


def env_normalization_path(env: str, env_kwargs: dict[str, Any]) -> Path:
    """Where the cache keeps the normalization returns of ``env`` with ``env_kwargs``."""
    from offmarl import __version__

    key = json.dumps({"env": env, "kwargs": env_kwargs}, sort_keys=True, default=str)
    return (offmarl_home() / "random_returns" / f"{__version__}-r{RECIPES_VERSION}"
            / f"{env}__{hashlib.sha256(key.encode()).hexdigest()[:16]}.json")


def env_normalization(env: str, env_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """``random_return`` and ``reference_return`` of an environment without a dataset (an online task),
    measured once (:mod:`offmarl.collect.normalization`; the reference is the env's scripted ``expert``, None
    when it has none) and kept in ``$OFFMARL_HOME/random_returns/<version>/<env>__<hash of kwargs>.json``;
    concurrent callers measure it once (a lock, as :func:`cache_recipe_dataset`)."""
    from offmarl.envs import make_env
    from offmarl.policies.registry import behavior_policy_names, make_behavior_policy

    env_kwargs = dict(env_kwargs or {})
    path = env_normalization_path(env, env_kwargs)
    if not path.exists():
        with file_lock(path.with_name(path.name + ".lock")):
            if not path.exists():
                batched = make_env(env, num_envs=DEFAULT_NUM_ENVS, seed=0, **env_kwargs)
                try:
                    expert = (functools.partial(make_behavior_policy, "expert", batched.spec)
                              if "expert" in behavior_policy_names(env) else None)
                    random_return, expert_return, env_seed = measure_returns(batched, expert, NORMALIZATION_EPISODES, 0)
                finally:
                    batched.close()
                atomic_write_json(path, {"env": env, "env_kwargs": env_kwargs, "random_return": random_return,
                                         "reference_return": expert_return,
                                         "reference": None if expert is None else "scripted expert",
                                         "episodes": NORMALIZATION_EPISODES, "seed": env_seed})
    return json.loads(path.read_text())
