"""Fill-In (Tseng et al. 2022, *Offline Multi-Agent RL with Knowledge Distillation*, App. C, §4).

``n`` agents with a heading walk on a grid map; a floor cell becomes *filled* by the first agent that
enters it. The team should fill every cell, each agent avoiding the others' paths.

Map and horizon (defaults): a 10 x 10 grid whose border is wall, i.e. 8 x 8 = 64 free cells, 3 agents,
40 steps. Chosen so the two behaviour extremes are far apart: uniformly random actions leave about 45
cells unfilled (per-agent return -39.5 +- 5.2), while the scripted expert
(:class:`offmarl.policies.scripted.fill_in.FillInExpert`) fills all but about 0.05 cells, mostly within
~34 steps (per-agent return +20.2 +- 0.6); 1024 episodes each, ``benchmarks/env_grid_throughput.py
--returns``. Tseng Table 12 reports 1.52 for its random-walk data (inconsistent with its own Table 1,
see ``papers/README.md``); our scale differs and is not tuned to it. Agents start on distinct random
cells with random headings each episode (or fixed: ``starts``, ``headings``); the default map is an open
room (the paper's figure is missing from our copy), any other can be given (``layout``).

Dynamics (shared with Grid-World, see :mod:`offmarl.envs._grid`): actions 0 forward, 1 turn left,
2 turn right, 3 no move; a forward move fails into a wall, into a cell another agent occupies at the
start of the step, or when two agents move into the same cell in one step (then neither moves).

Filling and reward, per agent i and step t (paper: "r = -# of not filled space + # of slots occupied by
specific agent"; "once a block is passed by an agent, another agent passing the block won't be rewarded"):

    r_t^i = 1[agent i moved into a cell no agent had filled]  -  1[t = T] * U_T

where ``U_T`` is the number of unfilled free cells after the last step ``T``. So an episode's return is
``(cells agent i filled by moving) - U_T``: "own filled - unfilled". Entering a cell filled by anyone
(itself or another agent) gives nothing. Two agents can never enter the same cell in one step (the
collision rule), so every fill has exactly one owner. Start cells: at reset each agent's start cell is
filled by (and owned by) that agent, without reward.

Termination: the episode *terminates* when every free cell is filled (then ``U = 0``); otherwise it is
*truncated* after ``horizon`` steps, and the penalty ``-U_T`` is part of that last step's reward.
``info["unfilled"] [B]`` reports ``U`` after each step (before any auto-reset).

Observation of agent i (``obs_dim = 15 * 4 + 6 = 66``): its egocentric 3 x 5 view -- 3 rows ahead
including its own row, 5 columns centred on it, rotated with its heading (view row 0 = two cells ahead,
column 0 = two cells to its left; ``_grid.GridGeometry.view_offsets``) -- with 4 channels per cell,
cell-major like a MiniGrid image (``obs[:60].reshape(3, 5, 4)``, ``obs[(5 * row + col) * 4 + c]``):
wall (cells outside the map count as walls), filled by me, filled by another agent, another agent
there; then 6 pose features: heading one-hot (N, E, S, W) and its (row, col) divided by (H - 1, W - 1).
Departure: the paper's observation is the 3 x 5 view alone. The view is rotated with the heading, so
the agent could not otherwise tell which way it faces nor where it is on a featureless open floor; the
6 pose features make a memoryless policy able to plan. Slice them off (``obs[..., :60]``) for the
paper's bare view.

Global state (``state_dim = H*W + n*H*W + 6n + 1``, float32 in [0, 1]): walls ``[H*W]``, then for each
agent the map of cells it filled ``[n, H*W]``, then each agent's pose (heading one-hot, row/(H-1),
col/(W-1)) ``[n, 6]``, then elapsed time ``t / horizon``. :func:`split_state` decodes it.

All actions are always available (``avail_actions`` all True; kept so that masks flow through).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from gymnasium import spaces

from offmarl.envs import _grid
from offmarl.envs.base import BatchedEnv, EnvSpec, TimeStep

NAME = "fill_in"
VIEW_DEPTH, VIEW_HALF_WIDTH = 3, 2
VIEW_CELLS = VIEW_DEPTH * (2 * VIEW_HALF_WIDTH + 1)
CHANNELS = ("wall", "filled_by_me", "filled_by_others", "other_agent")
OBS_DIM = len(CHANNELS) * VIEW_CELLS + 6


def state_dim(height: int, width: int, n_agents: int) -> int:
    return height * width * (1 + n_agents) + 6 * n_agents + 1


def split_state(state: np.ndarray, spec: EnvSpec) -> dict[str, np.ndarray]:
    """Decode a Fill-In state ``[B, state_dim]`` into named arrays (layout coordinates).

    Returns ``walls [B, H, W] bool``, ``filled_by [B, n, H, W] bool``, ``rows``, ``cols``, ``heading``
    ``[B, n] int64`` and ``time [B]`` (fraction of the horizon elapsed)."""
    layout = spec.kwargs["layout"]
    height, width, n = len(layout), len(layout[0]), spec.n_agents
    if state.ndim != 2 or state.shape[1] != state_dim(height, width, n):
        raise ValueError(f"{NAME}: state must be [B, {state_dim(height, width, n)}], got {list(state.shape)}")
    cells = height * width
    b = state.shape[0]
    walls = state[:, :cells].reshape(b, height, width) > 0.5
    filled_by = state[:, cells:cells * (1 + n)].reshape(b, n, height, width) > 0.5
    rows, cols, heading = _grid.decode_pose(state[:, cells * (1 + n):-1], height, width)
    return {"walls": walls, "filled_by": filled_by, "rows": rows, "cols": cols, "heading": heading,
            "time": state[:, -1]}


def fill_in_spec(*, n_agents: int = 3, horizon: int = 40, height: int | None = None, width: int | None = None,
                 layout: Sequence[str] | None = None, starts: Sequence[Sequence[int]] | None = None,
                 headings: Sequence[int] | None = None) -> EnvSpec:
    """The spec of ``FillInEnv(**kwargs)``, every argument checked, without building the env (the registry's
    ``env_spec``; the env builds itself from the checked ``spec.kwargs``)."""
    if int(horizon) < 1:
        raise ValueError(f"{NAME}: horizon must be >= 1, got {horizon}")
    n = _grid.check_n_agents(n_agents, env=NAME)
    if layout is None:
        layout = _grid.open_room(10 if height is None else int(height), 10 if width is None else int(width))
    layout = [str(row) for row in layout] if not isinstance(layout, str) else layout
    walls, _ = _grid.parse_layout(layout, env=NAME)
    if ((height is not None and int(height) != walls.shape[0])
            or (width is not None and int(width) != walls.shape[1])):
        raise ValueError(f"{NAME}: height/width {height}x{width} do not match the layout's "
                         f"{walls.shape[0]}x{walls.shape[1]}")
    free = {(int(r), int(c)) for r, c in zip(*np.nonzero(~walls))}
    if len(free) < n:
        raise ValueError(f"{NAME}: the layout has {len(free)} free cells, fewer than n_agents={n}")
    if starts is not None:
        starts = [list(cell) for cell in _grid.check_placements("start", "starts", starts, n, free, env=NAME)]
    if headings is not None:
        headings = _grid.check_headings(headings, n, env=NAME)
    return EnvSpec(
        name=NAME, n_agents=n, obs_dim=OBS_DIM, obs_dims=(OBS_DIM,) * n,
        state_dim=state_dim(*walls.shape, n), action_space=spaces.Discrete(_grid.N_ACTIONS),
        episode_limit=int(horizon), agent_types=("agent",) * n, has_avail_actions=True,
        kwargs={"n_agents": n, "horizon": int(horizon), "height": walls.shape[0], "width": walls.shape[1],
                "layout": list(layout), "starts": starts, "headings": headings},
    )


class FillInEnv(_grid.GridRendering, BatchedEnv):
    """Fill-In, ``num_envs`` sub-envs stepped together (module docstring: rules, obs, state, reward).

    Keyword arguments (stored in ``spec.kwargs``, so ``make_env("fill_in", **spec.kwargs)`` rebuilds it):
        n_agents: number of agents (default 3).
        horizon: steps per episode (default 40).
        height, width: size of the default open room, border walls included (default 10 x 10, i.e. 8 x 8
            free cells); when ``layout`` is given they are taken from it (and must match if also given).
        layout: list of strings, ``'#'`` wall and ``'.'`` floor (default: the open room).
        starts: fixed start cells ``[[row, col]] * n`` (default: distinct uniformly random free cells).
        headings: fixed start headings ``[n]`` in 0..3 = N, E, S, W (default: uniformly random).
    """

    restorable = True
    state_attributes = ("_rng", "_owner", "_pos", "_heading", "_unfilled", "_t")

    def __init__(self, num_envs: int = 1, seed: int | None = None, *, n_agents: int = 3, horizon: int = 40,
                 height: int | None = None, width: int | None = None, layout: Sequence[str] | None = None,
                 starts: Sequence[Sequence[int]] | None = None, headings: Sequence[int] | None = None):
        if int(num_envs) < 1:
            raise ValueError(f"{NAME}: num_envs must be >= 1, got {num_envs}")
        self.spec = fill_in_spec(n_agents=n_agents, horizon=horizon, height=height, width=width, layout=layout,
                                 starts=starts, headings=headings)
        n, self.horizon, self.num_envs = self.spec.n_agents, self.spec.episode_limit, int(num_envs)
        walls, _ = _grid.parse_layout(self.spec.kwargs["layout"], env=NAME)
        self.geometry = _grid.GridGeometry(walls, pad=max(VIEW_DEPTH - 1, VIEW_HALF_WIDTH))
        starts, headings = self.spec.kwargs["starts"], self.spec.kwargs["headings"]
        self._starts = None if starts is None else self.geometry.flat(*np.array(starts).T)
        self._start_headings = None if headings is None else np.array(headings)
        self._view = self.geometry.view_offsets(VIEW_DEPTH, VIEW_HALF_WIDTH)  # [4, 15]
        self._agent_ids = np.arange(n, dtype=np.int8)
        # view cell code = wall + 2 * filled (0 no, 1 by me, 2 by another) + 6 * another agent there
        self._code_table = _grid.code_table((2, 3, 2), lambda d: [d[0], d[1] == 1, d[1] == 2, d[2]])  # [12, 4]
        # the same walls for every sub-env, tiled so that view indices into [B * cells] read them
        self._wall_code = np.tile(self.geometry.walls_flat.astype(np.int8), self.num_envs)  # [B * cells]
        self._walls_state = walls.reshape(-1).astype(np.float32)
        self._avail = np.ones((self.num_envs, n, _grid.N_ACTIONS), dtype=bool)
        self._rng = np.random.default_rng(seed)
        self._owner: np.ndarray | None = None  # [B, cells] int8: agent that filled the cell, -1 unfilled
        self._pos = np.zeros((self.num_envs, n), dtype=np.int64)  # [B, n] padded flat cell
        self._heading = np.zeros((self.num_envs, n), dtype=np.int64)  # [B, n] 0..3
        self._unfilled = np.zeros(self.num_envs, dtype=np.int64)  # [B]
        self._t = np.zeros(self.num_envs, dtype=np.int64)  # [B] steps taken in the episode

    # ---- episode bookkeeping ----------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> TimeStep:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._owner = np.full((self.num_envs, self.geometry.cells), -1, dtype=np.int8)
        self._reset_rows(np.arange(self.num_envs))
        return TimeStep(obs=self._observe(), state=self._state(),
                        reward=np.zeros((self.num_envs, self.spec.n_agents), np.float32),
                        terminated=np.zeros(self.num_envs, bool), truncated=np.zeros(self.num_envs, bool),
                        avail_actions=self._avail.copy())

    def _reset_rows(self, rows: np.ndarray) -> None:
        n, m = self.spec.n_agents, len(rows)
        if self._starts is None:
            picked = _grid.sample_cells(self._rng, np.ones((m, len(self.geometry.free)), bool), n)
            pos = self.geometry.free[picked]
        else:
            pos = np.broadcast_to(self._starts, (m, n))
        heading = (self._rng.integers(0, 4, size=(m, n)) if self._start_headings is None
                   else np.broadcast_to(self._start_headings, (m, n)))
        owner = np.full((m, self.geometry.cells), -1, dtype=np.int8)
        _grid.scatter(owner, pos, self._agent_ids[None, :], np.ones((m, n), bool))
        self._owner[rows] = owner
        self._pos[rows] = pos
        self._heading[rows] = heading
        self._unfilled[rows] = len(self.geometry.free) - n
        self._t[rows] = 0

    # ---- dynamics ---------------------------------------------------------------------------------
    def step(self, actions: np.ndarray) -> TimeStep:
        if self._owner is None:
            raise RuntimeError(f"{NAME}: call reset() before step()")
        actions = self.check_actions(actions)
        self._pos, self._heading, moved = _grid.move_agents(self.geometry, self._pos, self._heading, actions)
        fills = moved & (_grid.gather(self._owner, self._pos) < 0)  # [B, n]; distinct cells (collision rule)
        _grid.scatter(self._owner, self._pos, self._agent_ids[None, :], fills)
        self._unfilled -= fills.sum(1)
        self._t += 1
        terminated = self._unfilled == 0
        truncated = (self._t >= self.horizon) & ~terminated
        reward = fills.astype(np.float32)
        reward -= np.where(truncated, self._unfilled, 0).astype(np.float32)[:, None]
        info = {"unfilled": self._unfilled.copy()}
        obs, state, final_obs, final_state = _grid.observe_with_autoreset(self, np.flatnonzero(terminated | truncated))
        return TimeStep(obs=obs, state=state, reward=reward, terminated=terminated, truncated=truncated,
                        avail_actions=self._avail.copy(), final_obs=final_obs, final_state=final_state, info=info)

    # ---- observations -----------------------------------------------------------------------------
    def _observe(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        pos, heading = self._pos[rows], self._heading[rows]
        m, n = pos.shape
        cells = self.geometry.cells
        index = _grid.view_index(pos, heading, self._view, cells)  # [m, n, 15] into [m * cells]
        filled = _grid.relation(self._owner[rows].reshape(-1)[index])  # 0 unfilled, 1 by me, 2 by another
        other = _grid.relation(_grid.occupancy(pos, cells).reshape(-1)[index]) == 2
        code = self._wall_code[index] + 2 * filled + np.int8(6) * other  # int8 throughout
        obs = np.empty((m, n, OBS_DIM), dtype=np.float32)
        # np.take on axis 0 copies table rows far faster than table[code]; cell-major ([3, 5, 4] HWC) writes
        # contiguously
        obs[..., :VIEW_CELLS * len(CHANNELS)].reshape(m, n, VIEW_CELLS, len(CHANNELS))[:] = np.take(
            self._code_table, code, axis=0)
        obs[..., VIEW_CELLS * len(CHANNELS):] = _grid.pose_features(self.geometry, pos, heading)
        return obs

    def _state(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        pos, heading = self._pos[rows], self._heading[rows]
        filler = self._owner[rows][:, self.geometry.interior]  # [m, H*W] int8
        m, n = pos.shape
        cells = filler.shape[1]
        state = np.empty((m, self.spec.state_dim), dtype=np.float32)
        state[:, :cells] = self._walls_state
        np.equal(filler[:, None, :], self._agent_ids[None, :, None],
                 out=state[:, cells:cells * (1 + n)].reshape(m, n, cells),
                 casting="unsafe")  # written in place: 5x faster than building the bool array and copying it
        state[:, cells * (1 + n):-1] = _grid.pose_state(self.geometry, pos, heading)
        state[:, -1] = self._t[rows] / self.horizon
        return state

    # ---- rendering --------------------------------------------------------------------------------
    def _ready(self) -> bool:
        return self._owner is not None

    def render_state(self, state: np.ndarray, px: int = 16) -> np.ndarray:
        """RGB frame ``[H*px, W*px, 3] uint8`` of a global state ``[state_dim]``: walls grey, each cell
        tinted with the colour of the agent that filled it, agents as triangles along their heading."""
        s = split_state(np.asarray(state, dtype=np.float32)[None], self.spec)
        filled_by = s["filled_by"][0]  # [n, H, W]
        tints = np.stack([_grid.blend(_grid.agent_rgb(i), 0.45) for i in range(self.spec.n_agents)])
        cell_rgb = np.where(filled_by.any(0)[..., None], tints[filled_by.argmax(0)], _grid.FLOOR_RGB)
        cell_rgb[s["walls"][0]] = _grid.WALL_RGB
        canvas = _grid.GridCanvas(cell_rgb.astype(np.uint8), px)
        canvas.agents(s["rows"][0], s["cols"][0], s["heading"][0])
        return canvas.image

    def __repr__(self) -> str:
        k = self.spec.kwargs
        return (f"FillInEnv(num_envs={self.num_envs}, n_agents={k['n_agents']}, {k['height']}x{k['width']}, "
                f"horizon={k['horizon']})")

