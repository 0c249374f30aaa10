"""Grid-World (Tseng et al. 2022, *Offline Multi-Agent RL with Knowledge Distillation*, App. C, §4).

``n`` agents with a heading move on a 10 x 10 map with obstacles and one target cell; each agent has
its own objects (the paper's "apples") lying on the map. The paper gives the view (5 x 5), the four
channels (other agents, objects, obstacles, target), the actions and the reward (0.5 when the agent
gets an object, else 0) but not what the target does, nor n, the horizon or how objects reappear;
those are our choices (Departures, below).

Task. An agent *collects* one of its own objects by stepping onto it (reward +0.5) and then carries
it; it can carry one object at a time, and *delivers* it by stepping onto the target (reward 0). On
delivery a new object of that agent appears on a uniformly random free cell that holds no agent, no
object and is not the target. So each agent always owns ``objects_per_agent`` objects (on the map or
carried), and a good team shuttles between its objects and the target. Other agents' objects are
walked over without effect. Agents block each other (shared rules in :mod:`offmarl.envs._grid`), so
at most one agent -- hence at most one delivery -- per sub-env and step at the target.

Defaults: 3 agents, 3 objects each, 100 steps, the map :data:`DEFAULT_LAYOUT` (border wall, 12 inner
obstacles, target ``T``; agents and objects start on distinct random free cells other than the target).
Calibration to Tseng Table 11, whose good (expert) data has a per-agent return of 3.02 +- 0.29, i.e.
about six pickups per agent: with these defaults the scripted expert
(:class:`offmarl.policies.scripted.grid_world.GridWorldExpert`) returns 3.05 +- 0.25 per agent and
uniformly random actions 0.21 +- 0.16 (1024 episodes each, ``benchmarks/env_grid_throughput.py
--returns``). Episodes never terminate; they are truncated after ``horizon`` steps.

Departures: the carry-and-deliver role of the target, one-object capacity, respawn on delivery, n,
horizon, objects per agent and the map are our choices (the paper does not state them, and its figure
of the map is missing from our copy): one fixed obstacle map by default, with random agent/object
placement each episode (any other map via ``layout``). App. C also speaks of "4 10x10 maps" for the
channels; we follow its "5x5 visible region" (four full 10x10 maps would show every agent the whole map): the
four channels cover the egocentric view only. The paper's PPO expert is replaced by a scripted one.

Observation of agent i (``obs_dim = 25 * 4 + 7 = 107``): its egocentric 5 x 5 view -- 5 rows ahead
including its own row, 5 columns centred on it, rotated with its heading (view row 0 = four cells
ahead, column 0 = two cells to its left; MiniGrid's convention, as in gym-multigrid which the paper
adapts) -- with 4 channels per cell, cell-major like a MiniGrid image (``obs[:100].reshape(5, 5, 4)``,
``obs[(5 * row + col) * 4 + c]``): another agent there; object, +1 for one of agent i's own objects and
-1 for another agent's (one signed channel keeps the paper's four channels while telling own from
foreign); obstacle (cells outside the map count as obstacles); target. Then 7 features: heading
one-hot (N, E, S, W), (row, col) / (H - 1, W - 1), and 1 while carrying.
Departure: the paper's observation is the view alone; the pose makes a fixed map navigable from one
observation and the carry flag is part of the agent's own status (slice ``obs[..., :100]`` for the bare
view).

Global state (``state_dim = 2*H*W + n*H*W + 7n + 1``, float32): obstacles ``[H*W]``, target ``[H*W]``,
each agent's objects on the map ``[n, H*W]``, each agent's pose (heading one-hot, row/(H-1),
col/(W-1)) ``[n, 6]``, each agent's carry flag ``[n]``, elapsed time ``t / horizon``.
:func:`split_state` decodes it.

All actions are always available (``avail_actions`` all True; kept so that masks flow through).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from gymnasium import spaces

from offmarl.envs import _grid
from offmarl.envs.base import BatchedEnv, EnvSpec, TimeStep

NAME = "grid_world"
TARGET = "T"
VIEW_DEPTH, VIEW_HALF_WIDTH = 5, 2
VIEW_CELLS = VIEW_DEPTH * (2 * VIEW_HALF_WIDTH + 1)
CHANNELS = ("other_agent", "object", "obstacle", "target")
OBS_DIM = len(CHANNELS) * VIEW_CELLS + 7
PICKUP_REWARD = 0.5
FREE_MEANS = "a free cell other than the target"

DEFAULT_LAYOUT = (
    "##########",
    "#........#",
    "#.##..##.#",
    "#........#",
    "#..#..#..#",
    "#...T....#",
    "#.##..##.#",
    "#........#",
    "#...##...#",
    "##########",
)


def state_dim(height: int, width: int, n_agents: int) -> int:
    return height * width * (2 + n_agents) + 7 * n_agents + 1


def split_state(state: np.ndarray, spec: EnvSpec) -> dict[str, np.ndarray]:
    """Decode a Grid-World state ``[B, state_dim]`` into named arrays (layout coordinates).

    Returns ``obstacles``, ``target`` ``[B, H, W] bool``, ``objects [B, n, H, W] bool`` (agent i's objects
    on the map), ``rows``, ``cols``, ``heading`` ``[B, n] int64``, ``carrying [B, n] bool`` and ``time [B]``."""
    layout = spec.kwargs["layout"]
    height, width, n = len(layout), len(layout[0]), spec.n_agents
    if state.ndim != 2 or state.shape[1] != state_dim(height, width, n):
        raise ValueError(f"{NAME}: state must be [B, {state_dim(height, width, n)}], got {list(state.shape)}")
    cells, b = height * width, state.shape[0]
    maps = state[:, :cells * (2 + n)].reshape(b, 2 + n, height, width) > 0.5
    pose_end = cells * (2 + n) + 6 * n
    rows, cols, heading = _grid.decode_pose(state[:, cells * (2 + n):pose_end], height, width)
    return {"obstacles": maps[:, 0], "target": maps[:, 1], "objects": maps[:, 2:], "rows": rows, "cols": cols,
            "heading": heading, "carrying": state[:, pose_end:pose_end + n] > 0.5, "time": state[:, -1]}


def grid_world_spec(*, n_agents: int = 3, horizon: int = 100, objects_per_agent: int = 3,
                    layout: Sequence[str] | None = None, starts: Sequence[Sequence[int]] | None = None,
                    headings: Sequence[int] | None = None,
                    objects: Sequence[Sequence[Sequence[int]]] | None = None) -> EnvSpec:
    """The spec of ``GridWorldEnv(**kwargs)``, every argument checked, without building the env (the registry's
    ``env_spec``; the env builds itself from the checked ``spec.kwargs``)."""
    n, k = _grid.check_n_agents(n_agents, env=NAME), int(objects_per_agent)
    for field, value, low in (("horizon", int(horizon), 1), ("objects_per_agent", k, 1)):
        if value < low:
            raise ValueError(f"{NAME}: {field} must be >= {low}, got {value}")
    layout = list(DEFAULT_LAYOUT) if layout is None else [str(row) for row in layout]
    walls, marks = _grid.parse_layout(layout, TARGET, env=NAME)
    if len(marks[TARGET]) != 1:
        raise ValueError(f"{NAME}: layout must hold exactly one target 'T', found {len(marks[TARGET])}")
    free = {(int(r), int(c)) for r, c in zip(*np.nonzero(~walls))} - {marks[TARGET][0]}
    if len(free) < n * (k + 1):
        raise ValueError(f"{NAME}: the layout has {len(free)} free non-target cells; {n} agents with "
                         f"{k} objects each need {n * (k + 1)}")
    if starts is not None:
        starts = [list(cell) for cell in _grid.check_placements("start", "starts", starts, n, free, env=NAME,
                                                                free_means=FREE_MEANS)]
    if headings is not None:
        headings = _grid.check_headings(headings, n, env=NAME)
    if objects is not None:
        if len(objects) != n:
            raise ValueError(f"{NAME}: objects needs one list of {k} cells per agent ({n}), got {len(objects)}")
        if any(len(per_agent) != k for per_agent in objects):
            raise ValueError(f"{NAME}: objects needs {k} cells per agent, got {[len(o) for o in objects]}")
        cells = _grid.check_placements("object", "objects", [cell for per_agent in objects for cell in per_agent],
                                       n * k, free, env=NAME, free_means=FREE_MEANS)
        shared = set(cells) & {tuple(cell) for cell in starts or []}
        if shared:
            raise ValueError(f"{NAME}: objects and starts share cells {sorted(shared)}")
        objects = [[list(cell) for cell in cells[i * k:(i + 1) * k]] for i in range(n)]
    return EnvSpec(
        name=NAME, n_agents=n, obs_dim=OBS_DIM, obs_dims=(OBS_DIM,) * n,
        state_dim=state_dim(*walls.shape, n), action_space=spaces.Discrete(_grid.N_ACTIONS),
        episode_limit=int(horizon), agent_types=("agent",) * n, has_avail_actions=True,
        kwargs={"n_agents": n, "horizon": int(horizon), "objects_per_agent": k, "layout": layout,
                "starts": starts, "headings": headings, "objects": objects},
    )


class GridWorldEnv(_grid.GridRendering, BatchedEnv):
    """Grid-World, ``num_envs`` sub-envs stepped together (module docstring: task, obs, state, reward).

    Keyword arguments (stored in ``spec.kwargs``, so ``make_env("grid_world", **spec.kwargs)`` rebuilds it):
        n_agents: number of agents (default 3).
        horizon: steps per episode (default 100).
        objects_per_agent: objects each agent owns (default 3).
        layout: list of strings, ``'#'`` obstacle, ``'.'`` floor, exactly one ``'T'`` target
            (default :data:`DEFAULT_LAYOUT`).
        starts: fixed agent start cells ``[[row, col]] * n`` (default: random).
        headings: fixed start headings ``[n]`` in 0..3 = N, E, S, W (default: random).
        objects: fixed initial object cells, ``[[[row, col]] * objects_per_agent] * n`` (default: random);
            objects appearing later (on delivery) are always random.
    """

    restorable = True
    state_attributes = ("_rng", "_objmap", "_pos", "_heading", "_carrying", "_t")

    def __init__(self, num_envs: int = 1, seed: int | None = None, *, n_agents: int = 3, horizon: int = 100,
                 objects_per_agent: int = 3, layout: Sequence[str] | None = None,
                 starts: Sequence[Sequence[int]] | None = None, headings: Sequence[int] | None = None,
                 objects: Sequence[Sequence[Sequence[int]]] | None = None):
        if int(num_envs) < 1:
            raise ValueError(f"{NAME}: num_envs must be >= 1, got {num_envs}")
        self.spec = grid_world_spec(n_agents=n_agents, horizon=horizon, objects_per_agent=objects_per_agent,
                                    layout=layout, starts=starts, headings=headings, objects=objects)
        kwargs = self.spec.kwargs
        n, k = self.spec.n_agents, kwargs["objects_per_agent"]
        self.horizon, self.num_envs, self.objects_per_agent = self.spec.episode_limit, int(num_envs), k
        walls, marks = _grid.parse_layout(kwargs["layout"], TARGET, env=NAME)
        self.geometry = g = _grid.GridGeometry(walls, pad=max(VIEW_DEPTH - 1, VIEW_HALF_WIDTH))
        self._target = int(g.flat(*marks[TARGET][0]))
        self._spawn_cells = g.free[g.free != self._target]  # [F'] cells agents/objects may appear on
        self._starts = None if kwargs["starts"] is None else g.flat(*np.array(kwargs["starts"]).T)
        self._start_headings = None if kwargs["headings"] is None else np.array(kwargs["headings"])
        self._objects = (None if kwargs["objects"] is None  # [n*k], agent-major
                         else g.flat(*np.array([cell for cells in kwargs["objects"] for cell in cells]).T))
        self._view = g.view_offsets(VIEW_DEPTH, VIEW_HALF_WIDTH)  # [4, 25]
        self._agent_ids = np.arange(n, dtype=np.int8)
        # view cell code = obstacle + 2 * target + 4 * object (0 none, 1 mine, 2 another's) + 12 * another agent;
        # channels: other agent, object (+1 mine, -1 another's), obstacle, target
        self._code_table = _grid.code_table((2, 2, 3, 2),
                                            lambda d: [d[3], (d[2] == 1) - (d[2] == 2), d[0], d[1]])  # [24, 4]
        static_code = g.walls_flat.astype(np.int8)
        static_code[self._target] = 2
        self._static_code = np.tile(static_code, self.num_envs)  # [B * cells]: same for every sub-env
        self._object_owner = np.repeat(self._agent_ids, k)  # [n*k] owner of each initial object
        target_map = np.zeros(g.height * g.width, dtype=np.float32)
        target_map[np.flatnonzero(g.interior == self._target)] = 1.0
        self._static_state = np.concatenate([walls.reshape(-1).astype(np.float32), target_map])
        self._avail = np.ones((self.num_envs, n, _grid.N_ACTIONS), dtype=bool)
        self._rng = np.random.default_rng(seed)
        self._objmap: np.ndarray | None = None  # [B, cells] int8: owner of the object on a cell, -1 none
        self._pos = np.zeros((self.num_envs, n), dtype=np.int64)  # [B, n] padded flat cell
        self._heading = np.zeros((self.num_envs, n), dtype=np.int64)  # [B, n] 0..3
        self._carrying = np.zeros((self.num_envs, n), dtype=bool)  # [B, n]
        self._t = np.zeros(self.num_envs, dtype=np.int64)  # [B]

    # ---- episode bookkeeping ----------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> TimeStep:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._objmap = np.full((self.num_envs, self.geometry.cells), -1, dtype=np.int8)
        self._reset_rows(np.arange(self.num_envs))
        n = self.spec.n_agents
        return TimeStep(obs=self._observe(), state=self._state(), reward=np.zeros((self.num_envs, n), np.float32),
                        terminated=np.zeros(self.num_envs, bool), truncated=np.zeros(self.num_envs, bool),
                        avail_actions=self._avail.copy())

    def _reset_rows(self, rows: np.ndarray) -> None:
        n, k, m = self.spec.n_agents, self.objects_per_agent, len(rows)
        spawn = self._spawn_cells
        valid = np.ones((m, len(spawn)), dtype=bool)
        if self._starts is not None:
            valid &= ~np.isin(spawn, self._starts)[None, :]
        if self._objects is not None:
            valid &= ~np.isin(spawn, self._objects)[None, :]
        # one draw of distinct cells for whatever is not fixed: agents first, then objects
        picked = spawn[_grid.sample_cells(self._rng, valid,
                                          n * (self._starts is None) + n * k * (self._objects is None))]
        pos = picked[:, :n] if self._starts is None else np.broadcast_to(self._starts, (m, n))
        objects = picked[:, -n * k:] if self._objects is None else np.broadcast_to(self._objects, (m, n * k))
        objmap = np.full((m, self.geometry.cells), -1, dtype=np.int8)
        _grid.scatter(objmap, objects, self._object_owner[None, :], np.ones((m, n * k), bool))
        self._objmap[rows] = objmap
        self._pos[rows] = pos
        self._heading[rows] = (self._rng.integers(0, 4, size=(m, n)) if self._start_headings is None
                               else np.broadcast_to(self._start_headings, (m, n)))
        self._carrying[rows] = False
        self._t[rows] = 0

    def _respawn(self, env_rows: np.ndarray, owners: np.ndarray) -> None:
        """Put a new object of agent ``owners[j]`` in sub-env ``env_rows[j]`` (rows distinct) on a random
        spawn cell holding no object and no agent."""
        spawn = self._spawn_cells
        valid = self._objmap[env_rows][:, spawn] < 0  # [m, F']
        valid &= ~(spawn[None, :, None] == self._pos[env_rows][:, None, :]).any(-1)
        cells = spawn[_grid.sample_cells(self._rng, valid, 1)[:, 0]]
        self._objmap[env_rows, cells] = owners

    # ---- dynamics ---------------------------------------------------------------------------------
    def step(self, actions: np.ndarray) -> TimeStep:
        if self._objmap is None:
            raise RuntimeError(f"{NAME}: call reset() before step()")
        actions = self.check_actions(actions)
        self._pos, self._heading, _ = _grid.move_agents(self.geometry, self._pos, self._heading, actions)
        delivered = self._carrying & (self._pos == self._target)  # [B, n]; <= 1 per row (one target cell)
        self._carrying &= ~delivered
        pickup = ~self._carrying & (_grid.gather(self._objmap, self._pos) == self._agent_ids[None, :])
        _grid.scatter(self._objmap, self._pos, np.int8(-1), pickup)
        self._carrying |= pickup
        env_rows, owners = np.nonzero(delivered)
        if len(env_rows):
            self._respawn(env_rows, owners.astype(np.int8))
        reward = np.where(pickup, np.float32(PICKUP_REWARD), np.float32(0.0))
        self._t += 1
        truncated = self._t >= self.horizon
        terminated = np.zeros(self.num_envs, dtype=bool)
        obs, state, final_obs, final_state = _grid.observe_with_autoreset(self, np.flatnonzero(truncated))
        return TimeStep(obs=obs, state=state, reward=reward, terminated=terminated, truncated=truncated,
                        avail_actions=self._avail.copy(), final_obs=final_obs, final_state=final_state,
                        info={"delivered": delivered})

    # ---- observations -----------------------------------------------------------------------------
    def _observe(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        pos, heading = self._pos[rows], self._heading[rows]
        m, n = pos.shape
        cells = self.geometry.cells
        index = _grid.view_index(pos, heading, self._view, cells)  # [m, n, 25] into [m * cells]
        objects = _grid.relation(self._objmap[rows].reshape(-1)[index])  # 0 none, 1 mine, 2 another's
        other = _grid.relation(_grid.occupancy(pos, cells).reshape(-1)[index]) == 2
        code = self._static_code[index] + 4 * objects + np.int8(12) * other  # int8 throughout
        obs = np.empty((m, n, OBS_DIM), dtype=np.float32)
        # np.take on axis 0 copies table rows far faster than table[code]; cell-major ([5, 5, 4] HWC) writes
        # contiguously
        obs[..., :VIEW_CELLS * len(CHANNELS)].reshape(m, n, VIEW_CELLS, len(CHANNELS))[:] = np.take(
            self._code_table, code, axis=0)
        obs[..., VIEW_CELLS * len(CHANNELS):-1] = _grid.pose_features(self.geometry, pos, heading)
        obs[..., -1] = self._carrying[rows]
        return obs

    def _state(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        pos, heading = self._pos[rows], self._heading[rows]
        owner = self._objmap[rows][:, self.geometry.interior]  # [m, H*W]
        m, n = pos.shape
        static, cells = self._static_state.size, owner.shape[1]
        objects_end = static + n * cells
        state = np.empty((m, self.spec.state_dim), dtype=np.float32)
        state[:, :static] = self._static_state
        np.equal(owner[:, None, :], self._agent_ids[None, :, None],
                 out=state[:, static:objects_end].reshape(m, n, cells),
                 casting="unsafe")  # written in place: 5x faster than building the bool array and copying it
        state[:, objects_end:objects_end + 6 * n] = _grid.pose_state(self.geometry, pos, heading)
        state[:, objects_end + 6 * n:-1] = self._carrying[rows]
        state[:, -1] = self._t[rows] / self.horizon
        return state

    # ---- rendering --------------------------------------------------------------------------------
    def _ready(self) -> bool:
        return self._objmap is not None

    def render_state(self, state: np.ndarray, px: int = 16) -> np.ndarray:
        """RGB frame ``[H*px, W*px, 3] uint8`` of a global state ``[state_dim]``: obstacles grey, the
        target as a green ring, objects as discs in their owner's colour, agents as triangles along their
        heading, with a white dot while carrying."""
        s = split_state(np.asarray(state, dtype=np.float32)[None], self.spec)
        cell_rgb = np.where(s["obstacles"][0][..., None], _grid.WALL_RGB, _grid.FLOOR_RGB).astype(np.uint8)
        canvas = _grid.GridCanvas(cell_rgb, px)
        for r, c in zip(*np.nonzero(s["target"][0])):
            canvas.ring(int(r), int(c), np.array([60, 200, 90], np.uint8))
        for i, r, c in zip(*np.nonzero(s["objects"][0])):
            canvas.disc(int(r), int(c), _grid.agent_rgb(int(i)))
        rows, cols = s["rows"][0], s["cols"][0]
        canvas.agents(rows, cols, s["heading"][0])
        for r, c in zip(rows[s["carrying"][0]], cols[s["carrying"][0]]):
            canvas.disc(int(r), int(c), np.array([250, 250, 250], np.uint8), radius=0.12)
        return canvas.image

    def __repr__(self) -> str:
        k = self.spec.kwargs
        return (f"GridWorldEnv(num_envs={self.num_envs}, n_agents={k['n_agents']}, "
                f"objects_per_agent={k['objects_per_agent']}, horizon={k['horizon']})")
