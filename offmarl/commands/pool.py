"""``offmarl pool``: policy pools from online runs' checkpoint series (:mod:`offmarl.collect.pools`).

* ``offmarl pool bin RUN --out POOL [--split sit|thirds|0.3,0.4,0.3] [--floor random|lowest] [--episodes N]
  [--seed S] [--epsilon E]``
* ``offmarl pool build ENV --algo ippo|mappo|qmix --steps N [--seed S] [--series-every K] [--set k=v ...]``
  = ``offmarl train ALGO --env ENV`` into the pool cache, then ``pool bin`` (cached: built once)
* ``offmarl pool show POOL [--plot FILE.png]``: levels, checkpoints and returns (a table, and the return
  of every checkpoint against its training step with the level edges)
* ``offmarl pool ship POOL [--to DIR]``: copy a built pool into the checkout's ``pools/`` (the shipped pools a
  fresh clone has), each checkpoint policy-only
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import typer
from rich.console import Console
from rich.table import Table

from offmarl.collect.mixing import LEVEL_NAMES
from offmarl.collect.pools import Pool, PoolSpec, bin_pool, ship_pool


def run_pool_bin(*, run: Path, out: Path, split: str = "sit", episodes: int = 100, seed: int = 0,
                 epsilon: float | None = None, floor: str = "random") -> Pool:
    pool = bin_pool(run, out, split=split, episodes=episodes, seed=seed, epsilon=epsilon, floor=floor)
    show(pool)
    return pool


def run_pool_build(*, env: str, algo: str, steps: int, seed: int = 0, env_set: Sequence[str] = (),
                   sets: Sequence[str] = (), preset: str | None = None, num_envs: int = 8,
                   series_every: int = 50_000, eval_episodes: int = 32, split: str = "sit", episodes: int = 100,
                   epsilon: float | None = None) -> Pool:
    from offmarl.commands.envs import parse_env_set
    from offmarl.train.experiment import build_pool

    spec = PoolSpec(env=env, algo=algo, steps=steps, seed=seed, env_kwargs=parse_env_set(env_set), sets=tuple(sets),
                    preset=preset, num_envs=num_envs, series_every=series_every, eval_episodes=eval_episodes,
                    split=split, episodes=episodes, epsilon=epsilon)
    pool = build_pool(spec)
    show(pool)
    return pool


def show(pool: Pool, plot: Path | None = None) -> None:
    """Print the pool's levels and checkpoints; with ``plot``, also draw them."""
    card = pool.card
    key = card["key"]
    execution = card["execution"]
    how = "sampled" if execution["mode"] == "sampled" else f"ε-greedy, ε = {execution['epsilon']:g}"
    edges = card["edges"]
    floor = card.get("floor") or {"rule": "lowest"}  # cards from before the floor: the lowest checkpoint
    start = ("the uniform random policy's return" if floor["rule"] == "random" else "the lowest checkpoint's return")
    table = Table(title=f"pool {pool.root} -- {key['algo']} on {key['env_name']} (seed {key['seed']}), "
                        f"checkpoints act {how}; levels cut the range from {start} ({edges[0]:.4g}) to the best "
                        f"({edges[3]:.4g}), r also below it; content {pool.content_hash[:12]}")
    for column in ("level", "return range", "step", "return (as it acts)", "greedy return", "win rate"):
        table.add_column(column, justify="left" if column in ("level", "return range") else "right")
    for k, level in enumerate(("r", "m", "e")):
        for j, c in enumerate(pool.checkpoints(level)):
            table.add_row(f"{level} ({LEVEL_NAMES[level]})" if j == 0 else "",
                          (f"< {edges[1]:.4g}" if level == "r" else
                           f"[{edges[k]:.4g}, {edges[k + 1]:.4g}{']' if level == 'e' else ')'}") if j == 0 else "",
                          str(c.step), f"{c.return_mean:.4g} ± {c.return_std:.3g}", f"{c.greedy_return:.4g}",
                          "" if c.win_rate is None else f"{c.win_rate:.0%}")
    Console(width=160).print(table)
    if plot is not None:
        plot_pool(pool, plot)
        typer.echo(f"wrote {plot}")


def plot_pool(pool: Pool, path: Path) -> None:
    """Each checkpoint's return (as it acts, ± std over episodes) against its step, coloured by level, with
    the level edges as horizontal lines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for level, colour in (("r", "tab:red"), ("m", "tab:orange"), ("e", "tab:green")):
        cs = pool.checkpoints(level)
        ax.errorbar([c.step for c in cs], [c.return_mean for c in cs], yerr=[c.return_std for c in cs], fmt="o",
                    color=colour, capsize=2, label=LEVEL_NAMES[level])
    for edge in pool.card["edges"][1:3]:
        ax.axhline(edge, color="grey", linestyle="--", linewidth=0.8)
    key = pool.card["key"]
    ax.set(xlabel="training frames", ylabel="return (per-agent average)", title=f"{key['algo']} on {key['env_name']}")
    ax.legend(loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")


def run_pool_show(*, pool: Path, plot: Path | None = None) -> None:
    show(Pool.load(pool), plot)


def run_pool_ship(*, pool: Path, to: Path | None = None) -> Pool:
    """Ship ``pool`` (:func:`~offmarl.collect.pools.ship_pool`); a pool whose card records no spec is recognised
    by the recipe pool spec whose cache directory holds it."""
    from offmarl.collect.recipes import recipe_pool_specs

    shipped = ship_pool(pool, recipe_pool_specs(), to)
    size = sum(f.stat().st_size for f in shipped.root.rglob("*") if f.is_file())
    typer.echo(f"shipped {shipped.root} ({size / 2**20:.1f} MiB; content {shipped.content_hash[:12]}, converted from "
               f"{shipped.card['converted_from'][:12]})")
    return shipped
