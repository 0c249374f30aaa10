"""Scripted Grid-World expert: each agent walks the shortest path to its nearest own object, or, while
carrying, to the target.

Each step, from the global state only (:func:`offmarl.envs.grid_world.split_state`): for agent i a
multi-source breadth-first distance field from its goals (the target if it carries an object, else its
own objects on the map) over the floor minus the cells the other agents stand on (so it routes around
them, and waits when they block every route); :func:`offmarl.envs._grid.steer` turns the field into an
action (turns count as steps) and :func:`offmarl.envs._grid.yield_conflicts` lets the lower index go
first when two agents would step into the same cell. Deterministic, stateless (safe under auto-reset),
vectorised over the B sub-envs and agents (one batched BFS per step).
Measured on the default env (3 agents, 3 objects each, 100 steps), first episode of 1024 sub-envs
(``benchmarks/env_grid_throughput.py --returns``): per-agent return 3.05 +- 0.25 (about six pickups;
Tseng Table 11's good data: 3.02 +- 0.29), against 0.21 +- 0.16 for uniformly random actions.
"""

from __future__ import annotations

import numpy as np

from offmarl.envs import _grid
from offmarl.envs.base import EnvSpec, TimeStep
from offmarl.envs.grid_world import NAME, split_state
from offmarl.policies.base import JointPolicy


class GridWorldExpert(JointPolicy):
    """Shortest-path collector for ``grid_world`` (module docstring). ``seed`` is unused (deterministic)."""

    def __init__(self, spec: EnvSpec, seed: int = 0):
        if spec.name != NAME:
            raise ValueError(f"GridWorldExpert drives env {NAME!r}, got spec of {spec.name!r}")
        self.spec = spec

    def act(self, ts: TimeStep, first: bool = False) -> np.ndarray:
        s = split_state(ts.state, self.spec)
        rows, cols, heading = s["rows"], s["cols"], s["heading"]
        b, n = rows.shape
        height, width = s["obstacles"].shape[1:]
        at = np.zeros((b, n, height, width), dtype=bool)  # [B, n, H, W] agent i's cell
        at[np.arange(b)[:, None], np.arange(n)[None, :], rows, cols] = True
        passable = ~s["obstacles"][:, None] & ~(at.any(1, keepdims=True) & ~at)  # floor minus other agents
        goals = np.where(s["carrying"][:, :, None, None], s["target"][:, None], s["objects"])  # [B, n, H, W]
        to_goal = _grid.bfs_distance(passable, goals)
        actions = _grid.steer(to_goal.reshape(b * n, height, width), rows.reshape(-1), cols.reshape(-1),
                              heading.reshape(-1)).reshape(b, n)
        return _grid.yield_conflicts(actions, rows, cols, heading)
