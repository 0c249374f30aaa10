"""``offmarl collect``: roll out a behaviour policy (or a named recipe) and write a dataset file.

Two forms:

* ``offmarl collect ENV --policy P [--tier T | --composition C | --per-agent] [--state-only]
  --episodes N --seed S --out PATH [--env-set key=value ...] [--num-envs B] [--normalization-episodes M]``;
  with ``--pool POOL`` the levels of ``--composition`` / ``--per-agent`` are the pool's checkpoints
  (``offmarl pool``)
* ``offmarl collect --recipe NAME [--seed S] [--scale F] [--out PATH]`` (default path
  ``data/<recipe>.h5`` in the working directory). The recipe fixes the env, the policy and the mode,
  so ENV, --policy, --tier, --composition, --per-agent, --state-only and --env-set are rejected with it;
  ``--num-envs``, ``--episodes`` and ``--normalization-episodes`` are ignored (the recipe's own values keep
  its files reproducible).

The card's ``random_return`` / ``reference_return`` (inputs of normalized scores,
:mod:`offmarl.collect.normalization`) are measured on ``--normalization-episodes`` episodes (default 256;
0: not measured -- an env that steps slowly, e.g. highway, spends minutes on them).

``offmarl collect --list`` prints the recipes. After writing, one paragraph summarizes the data
(episodes, steps, per-agent average return mean ± std, the tier's normalized score, the normalization
returns) and the path.
Before collecting, the temporary files that killed writers (a killed collect's half-written dataset) left
in the output's directory are removed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from offmarl.collect.normalization import NORMALIZATION_EPISODES
from offmarl.collect.recipes import (
    build_recipe,
    collect_dataset,
    get_recipe,
    list_recipes,
    recipe_aliases,
    save_collected,
)
from offmarl.core.files import sweep_stale_temporaries
from offmarl.data.dataset import MultiAgentDataset
from offmarl.data.sources import Dataset, PerAgentDatasets


def print_recipes() -> None:
    table = Table(title="offmarl dataset recipes (offmarl collect --recipe NAME [--scale F])")
    for column in ("recipe", "env", "behaviour", "mode", "episodes", "description", "cost"):
        table.add_column(column, no_wrap=column in ("recipe", "env"))
    for name, description in list_recipes():
        recipe = get_recipe(name)
        episodes = f"{recipe.episodes} per agent" if recipe.per_agent else str(recipe.episodes)
        behaviour = (f"trained ({', '.join(sorted({f'{p.algo} seed {p.seed}' for p in recipe.pools}))})"
                     if recipe.pools else f"scripted ({recipe.policy})")
        table.add_row(*(escape(cell) for cell in (name, recipe.env, behaviour, recipe.mode, episodes, description,
                                                  _pools_ready(recipe.pools) + (recipe.cost or "minutes"))))
    Console(width=220).print(table)
    aliases = recipe_aliases()
    if aliases:
        typer.echo("Old names (still accepted): "
                   + "; ".join(f"{old} -> {new}" for old, new in sorted(aliases.items())))


def _pools_ready(specs) -> str:
    """``"pools shipped; "`` / ``"pools cached; "`` where every pool of a trained recipe is found without training
    (:func:`~offmarl.collect.pools.find_pool`: the cache first, then the shipped ``pools/``), else nothing."""
    from offmarl.collect.pools import find_pool

    found = [find_pool(spec) for spec in specs]
    if not specs or any(pool is None for pool in found):
        return ""
    shipped = [spec.shipped_dir for spec in specs]
    return "pools shipped; " if all(pool.root == where for pool, where in zip(found, shipped)) else "pools cached; "


def _summary_of(ds: MultiAgentDataset) -> str:
    card = ds.card
    text = (f"{card.episodes} episodes, {card.steps} steps, return {card.return_mean:.3f} ± {card.return_std:.3f} "
            f"(per-agent average)")
    tier = card.extra.get("tier")
    if tier:
        text += (f", tier {tier['tier']} at normalized score {tier['achieved_score']:.3f} "
                 f"(target {tier['target']:.2f}, mixing rate {tier['rate']:.3f})")
    if card.random_return is not None:
        text += (f", normalized by random {card.random_return:.3f} and reference {card.reference_return:.3f} "
                 f"({card.extra['normalization']['reference']})")
    return text


def summary(result: Dataset, path: Path) -> str:
    """One paragraph describing what was written to ``path``."""
    if isinstance(result, PerAgentDatasets):
        first = result[0].card
        parts = "; ".join(f"agent {i}: {_summary_of(ds)}" for i, ds in enumerate(result))
        head = f"Collected per-agent datasets of {first.env_name} ({len(result)} groups): {parts}."
    else:
        card = result.card
        behavior = card.behavior
        what = card.recipe or behavior.get("composition") or behavior.get("expert") or behavior.get("policy", "?")
        if card.quality_tier and not card.recipe:
            what += f" (tier {card.quality_tier})"
        head = (f"Collected {card.env_name} with {what}{' (state only)' if card.state_only else ''}: "
                f"{_summary_of(result)}.")
    return f"{head} Wrote {path}"


def _sweep_beside(path: Path) -> None:
    """Free the room a killed collect's half-written file took beside ``path`` before collecting again."""
    removed = sweep_stale_temporaries(path.parent)
    if removed:
        typer.echo(f"removed {len(removed)} temporary file(s) that killed writers left in {path.parent}: "
                   f"{', '.join(p.name for p in removed)}")


def run_collect(*, env: str | None, policy: str | None = None, tier: str | None = None, composition: str | None = None,
                per_agent: bool = False, state_only: bool = False, episodes: int = 100, seed: int = 0,
                out: Path | None = None, recipe: str | None = None, scale: float = 1.0, list_recipes: bool = False,
                num_envs: int = 256, env_set: Sequence[str] = (), pool: Sequence[Path] | None = None,
                normalization_episodes: int = NORMALIZATION_EPISODES) -> Dataset | None:
    """The ``offmarl collect`` command (module docstring). Returns what was collected (None with --list)."""
    if list_recipes:
        print_recipes()
        return None
    if recipe is not None and env is not None:
        raise ValueError(f"give either ENV ({env!r}) or --recipe ({recipe!r}), not both")
    if recipe is None and env is None:
        raise ValueError("give an environment name (see `offmarl envs`) or --recipe NAME "
                         "(see `offmarl collect --list`)")

    if recipe is not None:
        fixed = [flag for flag, given in (("--policy", policy is not None), ("--tier", tier is not None),
                                          ("--composition", composition is not None),
                                          ("--per-agent", per_agent), ("--state-only", state_only),
                                          ("--env-set", bool(env_set)), ("--pool", bool(pool))) if given]
        if fixed:
            raise ValueError(f"{fixed[0]} cannot be combined with --recipe: recipe {recipe!r} fixes it "
                             f"(collect ENV ... to choose it yourself)")
        get_recipe(recipe)  # unknown names fail before anything runs
        path = Path(out) if out is not None else Path("data") / f"{recipe}.h5"
        _sweep_beside(path)
        from offmarl.train.experiment import build_pool

        result: Dataset = build_recipe(recipe, seed=seed, scale=scale, progress=True, pool_provider=build_pool)
    else:
        if out is None:
            raise ValueError("--out PATH is required when collecting from an environment")
        from offmarl.commands.envs import parse_env_set

        env_kwargs: dict[str, Any] = parse_env_set(env_set)
        path = Path(out)
        _sweep_beside(path)
        result = collect_dataset(env, env_kwargs=env_kwargs, policy=policy or "expert", tier=tier,
                                 composition=composition, per_agent=per_agent, state_only=state_only,
                                 episodes=episodes, seed=seed, num_envs=num_envs, progress=True,
                                 pool=(pool[0] if len(pool) == 1 else list(pool)) if pool else None,
                                 normalization_episodes=normalization_episodes)
    path = save_collected(result, path)
    typer.echo(summary(result, path))
    return result
