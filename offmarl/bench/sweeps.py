"""Dataset-size sweeps: return vs the number of trajectories (Tseng et al., §4.4 and Fig. 7, "Data Efficiency").

A suite sweeps the dataset size by listing one recipe at several ``scale`` values, each a column with its own
label (the suite format needs nothing else: a recipe's cache file is keyed by name, seed and scale)::

    datasets:
      - {recipe: tseng/grid_world/good, scale: 0.1, label: grid_world_400}
      - {recipe: tseng/grid_world/good, scale: 0.25, label: grid_world_1000}
      - ...

The bench recognises a sweep from the suite record (``suite.json``, kept in ``records/report.json``): the
dataset entries with the same ``recipe`` and collection ``seed`` and at least two distinct scales form one
sweep (:func:`size_sweeps`); a suite may hold several (Fig. 7 has Grid-World and Highway). A point's size is
the number of trajectories the recipe collects at that scale (:meth:`offmarl.collect.recipes.Recipe.
scaled_episodes`: ``max(1, round(episodes × scale))``); a recipe no longer registered is placed at its scale.

Each size is its own collection (recipe, seed, scale), not a subset of the largest one: the smaller datasets
are not nested in the larger ones. Tseng et al. do not say how they drew theirs (Fig. 7 is missing from our
copy).

Per sweep and algorithm, the line is the table's ``stat`` over seeds (:func:`offmarl.bench.records.band`;
mean ± std, ddof = 0, by default -- the papers' metric) of each seed's return at every size the algorithm has
runs at: the numbers of the table's cells, re-ordered by size. The report draws them in ``data_efficiency.png``
(one panel per sweep, :func:`offmarl.bench.plots.plot_size_sweeps`) and tables them in a ``### Return vs
dataset size`` section (:func:`offmarl.bench.tables.sweep_markdown`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from offmarl.bench.records import Table, band


@dataclass(frozen=True)
class SizePoint:
    """One column of a sweep: its label, the recipe's scale and the trajectories collected at it."""

    label: str
    scale: float
    episodes: float  # a float: the scale itself when the recipe is no longer registered


@dataclass(frozen=True)
class SizeSweep:
    """The columns of one recipe (and collection seed) at several scales, smallest first."""

    recipe: str
    seed: int
    points: tuple[SizePoint, ...]
    unit: str = "trajectories"  # "scale" when the recipe is not registered (no episode count to multiply)

    @property
    def title(self) -> str:
        return f"{self.recipe} (seed {self.seed})"


def _episodes(recipe: str, scale: float) -> tuple[float, str]:
    from offmarl.collect.recipes import get_recipe

    try:
        return float(get_recipe(recipe).scaled_episodes(scale)), "trajectories"
    except KeyError:
        return float(scale), "scale"


def size_sweeps(datasets: Sequence[dict[str, Any]]) -> list[SizeSweep]:
    """The sweeps among a suite record's ``datasets`` (module docstring), in the order their first column
    appears; an empty list when there is none."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for entry in datasets:
        if entry.get("recipe") is None or entry.get("env") is not None:
            continue
        groups.setdefault((str(entry["recipe"]), int(entry.get("seed") or 0)), []).append(entry)
    sweeps = []
    for (recipe, seed), entries in groups.items():
        if len({float(e.get("scale", 1.0)) for e in entries}) < 2:
            continue
        points, units = [], set()
        for entry in sorted(entries, key=lambda e: float(e.get("scale", 1.0))):
            episodes, unit = _episodes(recipe, float(entry.get("scale", 1.0)))
            points.append(SizePoint(str(entry["label"]), float(entry.get("scale", 1.0)), episodes))
            units.add(unit)
        sweeps.append(SizeSweep(recipe, seed, tuple(points), unit=units.pop() if len(units) == 1 else "scale"))
    return sweeps


def sweep_lines(table: Table, sweep: SizeSweep) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per algorithm of ``table`` with runs at two or more of the sweep's sizes, ``(sizes, centre, low, high)``:
    the table's stat over seeds at each size it has runs at (module docstring)."""
    lines = {}
    for algo in table.algos:
        points = [p for p in sweep.points if (algo, p.label) in table.cells]
        if len(points) < 2:
            continue
        stats = [band(table.cells[(algo, p.label)].values, table.stat) for p in points]
        center, low, high = (np.array([float(s[i]) for s in stats]) for i in range(3))
        lines[algo] = (np.array([p.episodes if sweep.unit == "trajectories" else p.scale for p in points]),
                       center, low, high)
    return lines
