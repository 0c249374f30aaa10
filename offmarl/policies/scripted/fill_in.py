"""Scripted Fill-In expert: Voronoi split of the unfilled cells + greedy breadth-first steering.

Each step, from the global state only (:func:`offmarl.envs.fill_in.split_state`):

1. Breadth-first distances from every agent over the floor give a Voronoi split of the unfilled cells:
   a cell belongs to the agent that can reach it soonest (ties to the lower index).
2. Agent i heads for the nearest unfilled cell of its own region (of any region once its own is empty):
   a multi-source breadth-first distance field from those cells, over the floor minus the cells the other
   agents stand on (so it routes around them).
3. :func:`offmarl.envs._grid.steer` turns that field into an action (forward along the field, turning
   toward the best neighbour, counting turns as steps); two agents about to move into the same cell are
   resolved by letting the lower index go first (:func:`offmarl.envs._grid.yield_conflicts`).

It is deterministic, stateless (safe under auto-reset) and vectorised over the B sub-envs and agents
(two batched BFS per step; about 0.2 s per step for B = 4096 on one core).
Measured on the default env (10 x 10 map, 3 agents, 40 steps), first episode of 1024 sub-envs
(``benchmarks/env_grid_throughput.py --returns``): per-agent return 20.24 +- 0.58 with about 0.05 of 64
cells left unfilled, against -39.51 +- 5.22 for uniformly random actions.
"""

from __future__ import annotations

import numpy as np

from offmarl.envs import _grid
from offmarl.envs.base import EnvSpec, TimeStep
from offmarl.envs.fill_in import NAME, split_state
from offmarl.policies.base import JointPolicy


class FillInExpert(JointPolicy):
    """Voronoi + greedy BFS expert for ``fill_in`` (module docstring). ``seed`` is unused (deterministic)."""

    def __init__(self, spec: EnvSpec, seed: int = 0):
        if spec.name != NAME:
            raise ValueError(f"FillInExpert drives env {NAME!r}, got spec of {spec.name!r}")
        self.spec = spec

    def act(self, ts: TimeStep, first: bool = False) -> np.ndarray:
        s = split_state(ts.state, self.spec)
        walls, rows, cols, heading = s["walls"], s["rows"], s["cols"], s["heading"]
        b, n = rows.shape
        height, width = walls.shape[1:]
        unfilled = ~walls & ~s["filled_by"].any(1)  # [B, H, W]
        at = np.zeros((b, n, height, width), dtype=bool)  # [B, n, H, W] agent i's cell
        at[np.arange(b)[:, None], np.arange(n)[None, :], rows, cols] = True
        floor = np.broadcast_to(~walls[:, None], at.shape)
        reach = _grid.bfs_distance(floor, at)  # [B, n, H, W] steps from agent i
        owner = reach.argmin(1)  # [B, H, W] Voronoi owner, ties to the lower index
        region = unfilled[:, None] & (owner[:, None] == np.arange(n)[None, :, None, None])
        region = np.where(region.any((2, 3), keepdims=True), region, unfilled[:, None])
        passable = floor & ~(at.any(1, keepdims=True) & ~at)  # floor minus the other agents' cells
        to_goal = _grid.bfs_distance(passable, region)  # [B, n, H, W]
        actions = _grid.steer(to_goal.reshape(b * n, height, width), rows.reshape(-1), cols.reshape(-1),
                              heading.reshape(-1)).reshape(b, n)
        return _grid.yield_conflicts(actions, rows, cols, heading)
