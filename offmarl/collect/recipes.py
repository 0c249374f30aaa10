"""Dataset collection by arguments (:func:`collect_dataset`) and the papers' named recipes.

A recipe fixes everything :func:`collect_dataset` needs -- env and its kwargs, behaviour policy, tier /
composition / per-agent / state-only, episode count, seed and the number of sub-envs (which changes the
random streams, so it is part of the recipe, not a user option) -- so a recipe name, a seed and a scale
identify one file. ``build_recipe`` builds it in memory; ``get_recipe_dataset`` builds it once into the
cache ``$OFFMARL_HOME/datasets/<version>/<name with / as __>__seed<k>__scale<f>.h5`` (``OFFMARL_HOME``
defaults to ``~/.cache/offmarl``; ``<version>`` = library version + ``-r<RECIPES_VERSION>``, bumped when
a recipe changes) and returns its path; the save is atomic and guarded by a lock file, so parallel bench
workers asking for the same recipe build it once.

Recipes (episode counts from the papers; ``--scale`` multiplies them, at least one episode per part):

* ``tseng/fill_in``: random walk, 1000 episodes (Tseng et al., App. D, Table 12).
* ``tseng/equal_space``: expert, 1000 episodes (Table 12). Departure: scripted expert, not PPO.
* ``tseng/grid_world/{good,normal,poor}``: 4000 episodes each (Table 11) at normalized scores 1 / 0.80 /
  0.65 (:mod:`offmarl.collect.tiers`).
* ``tseng/highway/{good,normal,poor}``: 1000 episodes each (Table 11) of ``highway`` with ``fast=True``
  (highway-fast settings, 30-step episodes; ``offmarl.envs.highway``) at normalized scores 1 / 0.80 / 0.65
  of the IDM/MOBIL expert (``offmarl.policies.scripted.highway``). highway-env simulates in Python
  (≈ 17 sub-env steps per CPU second here), so expect ≈ 40 CPU-minutes for good and ≈ 1–1.5 CPU-hours
  each for normal / poor, mostly the tier calibration's pilot rollouts (estimated from the step rate).
  A 16-episode check (16 pilot episodes, ``benchmarks/env_adapters_throughput.py --tiers 16``) reached
  normal at score 0.792 (ε = 0.109, return 24.45 ± 9.60; R_random 4.07, R_expert 29.82).
* ``sit/mpe_cn_3ls3l/{random,medium}``, ``sit/mpe_cn_4ls4l/…``, ``sit/mpe_pp_3p1p/…``: the agent-wise
  compositions of SIT (Tian et al.) App. C.3 Table 8, 10000 episodes each; the level pools are our
  stand-ins (:mod:`offmarl.collect.mixing`).
* ``mabcq/equal_space/per_agent``: MABCQ (Jiang & Lu) §4.1 per-agent mixtures, 4000 episodes per agent.
  Departure: MABCQ used 1 M transitions per agent on MuJoCo; 4000 × 25 steps = 100 k (``--scale 10``
  gives 1 M).
* ``mabcq/matrix_game``: MABCQ Table 1 matrix game with its behaviour policies ([0.8, 0.2], [0.4, 0.6]),
  1000 episodes.
* ``dm2/<env>/state_only``: state-only expert demonstrations (DM², Wang et al., §5) for the native envs,
  1000 episodes. Departure: DM² used SMAC demonstrations from trained IPPO/QMIX teams.
* ``dm2/<smac map>/heuristic`` (3s_vs_3z, 3s_vs_4z, 5m_vs_6m) and ``…/heuristic_{normal,poor}``: 1000
  episodes of SMAX's heuristic (wins 33.6 / 0 / 0 %, :mod:`offmarl.policies.scripted.smax`), one joint
  policy sampled concurrently (DM²'s co-trained × concurrent style), with actions; the tiers stand in for
  DM² Fig. 7's demonstration qualities. Departure: DM² used trained IPPO/QMIX checkpoints.

Measured at seed 0, scale 1 (per-agent average return, mean ± std over episodes): grid_world good
3.04 ± 0.23, normal 2.47 ± 0.24 (score 0.805, ε = 0.19), poor 2.08 ± 0.25 (score 0.666, ε = 0.31)
-- Tseng Table 11: 3.02 ± 0.29, 2.50 ± 0.12, 2.13 ± 0.09; equal_space expert −2.17 ± 1.00 (Table 12:
−2.25 ± 0.12); SIT CN_3ls3l random −46.7, medium −28.3 (SIT Table 8: −157.7, −107.5 on its own
reward scale; the ordering is what carries over).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offmarl.collect.compositions import collect_composition, collect_per_agent, parse_composition
from offmarl.collect.mixing import DEFAULT_EXPERT_NOISE, DEFAULT_MEDIUM_RATE
from offmarl.collect.pools import Pool
from offmarl.collect.rollout import derive_seed, rollout
from offmarl.collect.tiers import TIER_TARGETS, collect_tier
from offmarl.core.files import file_lock, offmarl_home, sweep_stale_temporaries
from offmarl.data.sources import Dataset, PerAgentDatasets, datasets_of

RECIPES_VERSION = 1
DEFAULT_NUM_ENVS = 256



def collect_dataset(env: str, *, env_kwargs: dict[str, Any] | None = None, policy: str = "expert",
                    tier: str | None = None, composition: str | None = None, per_agent: bool = False,
                    state_only: bool = False, episodes: int = 100, seed: int = 0,
                    num_envs: int = DEFAULT_NUM_ENVS, medium_rate: float = DEFAULT_MEDIUM_RATE,
                    noise: float = DEFAULT_EXPERT_NOISE, progress: bool = True,
                    recipe: str | None = None, pool: str | Path | None = None) -> Dataset:
    """Collect a dataset of env ``env`` (per-agent: a list of ``n`` datasets).

    Exactly one of: a plain ``policy`` rollout; ``tier`` (good/normal/poor, ``policy`` must be
    ``"expert"``); ``composition`` (SIT levels, ``policy`` is the expert the m/e levels derive from);
    ``per_agent`` (MABCQ mixture, likewise). With ``pool`` (a policy pool's directory,
    :mod:`offmarl.collect.pools`) a composition or a per-agent mixture takes every level from the pool's
    checkpoints instead of the scripted ``policy``; the env must be the pool's (its kwargs by default).
    ``state_only`` drops the actions in every mode. ``noise``
    is the per-agent mixture's expert noise. The env runs ``min(num_envs, episodes)`` sub-envs (a tier's
    pilot rollouts run ``num_envs``).
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
    behaviour_pool = None
    if pool is not None:
        if composition is None and not per_agent:
            raise ValueError("--pool gives the levels of --composition or --per-agent; give one of them")
        behaviour_pool = Pool.load(pool)
        if behaviour_pool.env_name != env:
            raise ValueError(f"pool {pool} was trained on env {behaviour_pool.env_name!r}, not {env!r}")
        env_kwargs = {**behaviour_pool.env_kwargs, **env_kwargs}
        if env_kwargs != behaviour_pool.env_kwargs:
            raise ValueError(f"pool {pool} was trained with env kwargs {behaviour_pool.env_kwargs}, not {env_kwargs}")

    args = {"env": env, "env_kwargs": env_kwargs, "policy": policy, "tier": tier, "composition": composition,
            "per_agent": per_agent, "state_only": state_only, "episodes": episodes, "seed": seed,
            "num_envs": num_envs, "medium_rate": medium_rate, "noise": noise,
            **({"pool": str(pool)} if pool is not None else {})}
    batched = make_env(env, num_envs=min(num_envs, episodes), seed=seed, **env_kwargs)
    try:
        spec = batched.spec
        if composition is not None:
            parse_composition(composition, spec.n_agents)  # fail before building anything else
        extra = {"collect": args}

        def make_expert(s: int):
            return make_behavior_policy(policy, spec, seed=s)

        if tier is not None:
            pilot_env = batched if batched.num_envs == num_envs else make_env(env, num_envs=num_envs, seed=seed,
                                                                              **env_kwargs)
            try:
                result: Dataset = collect_tier(batched, make_expert, tier, episodes, seed, state_only=state_only,
                                                 progress=progress, expert_name=policy, recipe=recipe, extra=extra,
                                                 pilot_env=pilot_env)
            finally:
                if pilot_env is not batched:
                    pilot_env.close()
        elif composition is not None:
            result = collect_composition(batched, make_expert, composition, episodes, seed, medium_rate=medium_rate,
                                         expert_name=policy, state_only=state_only, progress=progress,
                                         recipe=recipe, extra=extra, pool=behaviour_pool)
        elif per_agent:
            result = collect_per_agent(batched, make_expert, episodes, seed, medium_rate=medium_rate, noise=noise,
                                       expert_name=policy, state_only=state_only, progress=progress,
                                       recipe=recipe, extra=extra, pool=behaviour_pool)
        else:
            behaviour = make_behavior_policy(policy, spec, seed=derive_seed(seed, "policy"))
            result = rollout(batched, behaviour, episodes, seed, state_only=state_only, progress=progress,
                             behavior={"policy": policy}, recipe=recipe, extra=extra)
    finally:
        batched.close()
    for ds in datasets_of(result):
        ds.card.env_kwargs = {**env_kwargs, **ds.card.env_kwargs}  # the spec's kwargs win when it has them
    return result


# ---- the recipes -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """A named dataset of a paper; the fields are :func:`collect_dataset`'s arguments."""

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


def register_recipe(recipe: Recipe) -> None:
    if recipe.name in _RECIPES:
        raise ValueError(f"recipe {recipe.name!r} is registered twice")
    if recipe.composition is not None:
        parse_composition(recipe.composition)  # syntax; the agent count is checked when the env is built
    _RECIPES[recipe.name] = recipe


def _register_all() -> None:
    register_recipe(Recipe("tseng/fill_in", "Tseng et al. App. D / Table 12: Fill-In random-walk data",
                           env="fill_in", policy="random", episodes=1000))
    register_recipe(Recipe("tseng/equal_space", "Tseng et al. App. D / Table 12: Equal Space expert data "
                           "(scripted expert)", env="equal_space", episodes=1000))
    for tier in ("good", "normal", "poor"):
        register_recipe(Recipe(f"tseng/grid_world/{tier}", f"Tseng et al. App. D / Table 11: Grid-World {tier} data "
                               f"(normalized score {TIER_TARGETS[tier]:.2f})", env="grid_world", tier=tier,
                               episodes=4000))
    for tier in ("good", "normal", "poor"):
        register_recipe(Recipe(f"tseng/highway/{tier}", f"Tseng et al. App. D / Table 11: Highway {tier} data "
                               f"(normalized score {TIER_TARGETS[tier]:.2f}; highway-fast settings)", env="highway",
                               env_kwargs={"fast": True}, tier=tier, episodes=1000))
    # SIT App. C.3 Table 8 ("Random Quality" / "Medium Quality" rows)
    sit = {"mpe_cn_3ls3l": ("50%[r,r,r]+50%[r,r,m]", "100%[r,m,e]"),
           "mpe_cn_4ls4l": ("50%[r,r,r,r]+50%[r,r,r,m]", "100%[r,r,e,e]"),
           "mpe_pp_3p1p": ("50%[r,r,r]+50%[r,r,m]", "100%[r,m,e]")}
    for env, (random_mix, medium_mix) in sit.items():
        for quality, mix in (("random", random_mix), ("medium", medium_mix)):
            register_recipe(Recipe(f"sit/{env}/{quality}", f"SIT App. C Table 8: {quality}-quality agent-wise "
                                   f"imbalanced data {mix}", env=env, composition=mix, episodes=10000))
    register_recipe(Recipe("mabcq/equal_space/per_agent", "MABCQ §4.1: per-agent datasets (20% random, 35% i medium/"
                           "others expert, 35% i expert/others medium, 10% expert, noisy expert)",
                           env="equal_space", per_agent=True, episodes=4000))
    register_recipe(Recipe("mabcq/matrix_game", "MABCQ Table 1: matrix game data of the behaviour policies "
                           "[0.8, 0.2] and [0.4, 0.6]", env="matrix_game", policy="behavior", episodes=1000))
    for env in ("equal_space", "fill_in", "grid_world", "mpe_cn_3ls3l", "mpe_cn_4ls4l", "mpe_pp_3p1p"):
        register_recipe(Recipe(f"dm2/{env}/state_only", f"DM2: state-only expert demonstrations on {env}",
                               env=env, state_only=True, episodes=1000))
    # DM² §6 on SMAX: 1000 demonstration episodes per map (App. C, Table 2 "n exp eps"). Stand-ins until trained
    # IPPO demonstrations exist: SMAX's heuristic (offmarl.policies.scripted.smax) as one co-trained joint
    # policy, sampled concurrently; actions kept (dm2 reads the observations only, bc_pretrain the actions);
    # the normal / poor tiers (ε-mixed, normalized scores 0.80 / 0.65) stand in for Fig. 7's qualities.
    for env in ("smac_3s_vs_3z", "smac_3s_vs_4z", "smac_5m_vs_6m"):
        register_recipe(Recipe(f"dm2/{env}/heuristic", f"DM2 §6 stand-in: SMAX heuristic demonstrations on {env} "
                               "(state-action; trained IPPO demonstrations are not built yet)", env=env,
                               episodes=1000))
        for tier in ("normal", "poor"):
            register_recipe(Recipe(f"dm2/{env}/heuristic_{tier}", f"DM2 App. B Fig. 7 stand-in: {tier} SMAX "
                                   f"heuristic demonstrations on {env} (normalized score {TIER_TARGETS[tier]:.2f})",
                                   env=env, tier=tier, episodes=1000))


_register_all()


def list_recipes() -> list[tuple[str, str]]:
    """``(name, description)`` of every recipe, sorted by name."""
    return [(name, _RECIPES[name].description) for name in sorted(_RECIPES)]


def is_recipe(name: str) -> bool:
    return name in _RECIPES


def get_recipe(name: str) -> Recipe:
    if name not in _RECIPES:
        raise KeyError(f"unknown recipe {name!r}; see `offmarl collect --list` (known: {', '.join(sorted(_RECIPES))})")
    return _RECIPES[name]


def build_recipe(name: str, seed: int | None = None, scale: float = 1.0, progress: bool = False) -> Dataset:
    """Collect recipe ``name`` in memory (``seed`` None: the recipe's default seed)."""
    recipe = get_recipe(name)
    seed = recipe.seed if seed is None else seed
    result = collect_dataset(recipe.env, env_kwargs=recipe.env_kwargs, policy=recipe.policy, tier=recipe.tier,
                             composition=recipe.composition, per_agent=recipe.per_agent,
                             state_only=recipe.state_only, episodes=recipe.scaled_episodes(scale), seed=seed,
                             num_envs=recipe.num_envs, progress=progress, recipe=name)
    for ds in datasets_of(result):
        ds.card.extra["recipe_scale"] = float(scale)
        ds.card.extra["recipes_version"] = RECIPES_VERSION
    return result


# ---- files and the cache -----------------------------------------------------------------------------
def recipe_dataset_path(name: str, seed: int = 0, scale: float = 1.0) -> Path:
    """Where the cache keeps recipe ``name`` built with ``seed`` and ``scale``."""
    from offmarl import __version__

    get_recipe(name)
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


def cache_recipe_dataset(name: str, seed: int = 0, scale: float = 1.0, progress: bool = False) -> bool:
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
        save_collected(build_recipe(name, seed=seed, scale=scale, progress=progress), path)
        return True


def get_recipe_dataset(name: str, seed: int = 0, scale: float = 1.0, progress: bool = False) -> Path:
    """The cached file of recipe ``name`` (built and saved first when missing: :func:`cache_recipe_dataset`)."""
    cache_recipe_dataset(name, seed, scale, progress)
    return recipe_dataset_path(name, seed, scale)
