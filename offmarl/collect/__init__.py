"""Rollouts of behaviour policies in envs → datasets: tiers, compositions, per-agent mixtures, recipes.

See :mod:`offmarl.collect.rollout` (episode assembly), :mod:`offmarl.collect.mixing` (ε-mixing and
per-agent levels), :mod:`offmarl.collect.tiers` (Tseng's good/normal/poor), :mod:`offmarl.collect.compositions`
(SIT compositions, MABCQ per-agent mixtures) and :mod:`offmarl.collect.recipes` (the papers' datasets).
"""

from offmarl.collect.compositions import collect_composition, collect_per_agent, parse_composition, split_episodes
from offmarl.collect.mixing import MixedPolicy, PerAgentLevelPolicy
from offmarl.collect.recipes import (
                                          build_recipe,
                                          collect_dataset,
                                          get_recipe_dataset,
                                          is_recipe,
                                          list_recipes,
                                          recipe_dataset_path,
                                          save_collected,
)
from offmarl.collect.rollout import concatenate, derive_seed, rollout
from offmarl.collect.tiers import TIER_TARGETS, collect_tier, normalized_score

__all__ = [
    "rollout", "concatenate", "derive_seed", "MixedPolicy", "PerAgentLevelPolicy", "collect_tier", "TIER_TARGETS",
    "normalized_score", "parse_composition", "split_episodes", "collect_composition", "collect_per_agent",
    "collect_dataset", "build_recipe", "list_recipes", "is_recipe", "recipe_dataset_path", "get_recipe_dataset",
    "save_collected",
]
