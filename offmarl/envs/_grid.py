"""Shared machinery of the grid environments (Fill-In, Grid-World): layouts, headings, movement,
egocentric views, random placement, breadth-first distances and RGB rendering.

Conventions (both envs):
    * A layout is a list of equal-length strings: ``'#'`` wall/obstacle, ``'.'`` free floor, and
      env-specific marks (e.g. ``'T'`` for Grid-World's target) on free cells. Cell ``(r, c)`` is row
      ``r`` (0 = top) and column ``c`` (0 = left). Everything outside the layout counts as wall.
    * Headings are clockwise: 0 north (row - 1), 1 east (col + 1), 2 south (row + 1), 3 west (col - 1).
    * Actions (Tseng et al., App. C): 0 move forward, 1 turn left (heading
      - 1), 2 turn right (heading + 1), 3 no move. Turning does not move the agent.
    * Movement is simultaneous and resolved without any order between agents (so it vectorises and
      treats agents symmetrically): a forward move fails when the cell ahead is a wall, when another agent
      occupies it at the start of the step (even if that agent leaves during the step), or when another
      agent moves into the same cell in the same step (then *none* of them moves). Hence two agents never
      share a cell and never swap.
    * Internally each sub-env's grid is stored flat and padded by a wall margin wide enough for the
      largest view, so a position is one integer ``(r + pad) * Wp + (c + pad)`` and every view cell can be
      gathered with fancy indexing and no bounds checks.

Only :mod:`offmarl.envs.rendering` (agent colours) is imported from the rest of offmarl.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

FORWARD, TURN_LEFT, TURN_RIGHT, NO_MOVE = 0, 1, 2, 3
N_ACTIONS = 4
DIRECTIONS = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], dtype=np.int64)  # (d_row, d_col) per heading
_TURN = np.array([0, -1, 1, 0], dtype=np.int64)  # heading change per action
UNREACHABLE = np.int32(1 << 20)  # distance of cells no source can reach (see bfs_distance)

WALL, FLOOR = "#", "."
WALL_RGB = np.array([110, 110, 110], dtype=np.uint8)
FLOOR_RGB = np.array([25, 25, 25], dtype=np.uint8)


def open_room(height: int, width: int) -> list[str]:
    """A ``height x width`` layout: free cells surrounded by a one-cell wall."""
    if height < 3 or width < 3:
        raise ValueError(f"an open room needs height and width >= 3 (walls + one free cell), got {height}x{width}")
    return [WALL * width] + [WALL + FLOOR * (width - 2) + WALL for _ in range(height - 2)] + [WALL * width]


def parse_layout(layout: Sequence[str], marks: str = "", *,
                 env: str) -> tuple[np.ndarray, dict[str, list[tuple[int, int]]]]:
    """Walls ``[H, W] bool`` and the cells carrying each mark character (marks sit on free cells)."""
    if isinstance(layout, str) or not layout or not all(isinstance(row, str) for row in layout):
        raise ValueError(f"{env}: layout must be a non-empty list of strings, got {layout!r}")
    width = len(layout[0])
    if width == 0 or any(len(row) != width for row in layout):
        raise ValueError(f"{env}: layout rows must all have the same non-zero length, "
                         f"got lengths {[len(r) for r in layout]}")
    allowed = set(WALL + FLOOR + marks)
    bad = sorted({ch for row in layout for ch in row} - allowed)
    if bad:
        raise ValueError(f"{env}: layout contains unknown characters {bad}; allowed: {''.join(sorted(allowed))!r}")
    walls = np.array([[ch == WALL for ch in row] for row in layout], dtype=bool)
    found = {m: [(r, c) for r, row in enumerate(layout) for c, ch in enumerate(row) if ch == m] for m in marks}
    return walls, found


class GridGeometry:
    """Flat, wall-padded indexing of one layout, shared by all sub-envs of an env.

    Attributes:
        height, width: layout size ``H, W``; pad: wall margin; cells: ``Hp * Wp`` padded cells.
        walls_flat [cells] bool: walls of the padded grid (the margin is wall).
        interior [H*W] int64: padded flat index of each layout cell, row-major (for the global state).
        free [F] int64: padded flat index of each free layout cell, row-major.
        step [4] int64: flat displacement of one forward move per heading.
    """

    def __init__(self, walls: np.ndarray, pad: int):
        self.height, self.width = walls.shape
        self.pad = pad
        self.padded_width = self.width + 2 * pad
        self.cells = (self.height + 2 * pad) * self.padded_width
        padded = np.ones((self.height + 2 * pad, self.padded_width), dtype=bool)
        padded[pad:pad + self.height, pad:pad + self.width] = walls
        self.walls_flat = padded.reshape(-1)
        rows, cols = np.meshgrid(np.arange(self.height), np.arange(self.width), indexing="ij")
        self.interior = self.flat(rows.reshape(-1), cols.reshape(-1))
        self.free = self.interior[~walls.reshape(-1)]
        self.step = DIRECTIONS[:, 0] * self.padded_width + DIRECTIONS[:, 1]

    def flat(self, row: np.ndarray | int, col: np.ndarray | int) -> np.ndarray:
        """Padded flat index of layout cell(s) ``(row, col)``."""
        return ((np.asarray(row, dtype=np.int64) + self.pad) * self.padded_width
                + np.asarray(col, dtype=np.int64) + self.pad)

    def rowcol(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Layout ``(row, col)`` of padded flat index(es)."""
        r, c = np.divmod(flat, self.padded_width)
        return r - self.pad, c - self.pad

    def view_offsets(self, depth: int, half_width: int) -> np.ndarray:
        """Flat offsets ``[4, depth * (2 * half_width + 1)]`` of an egocentric view, per heading.

        The view is ``depth`` rows by ``2 * half_width + 1`` columns seen from the agent facing "up":
        row 0 is the farthest row (``depth - 1`` cells ahead), the last row is the agent's own row, column
        0 is the agent's far left; the agent sits in the middle of the last row (MiniGrid's convention).
        Cell ``(i, j)`` of the view is ``(depth - 1 - i) * forward + (j - half_width) * right``.
        """
        if self.pad < max(depth - 1, half_width):
            raise ValueError(f"view {depth}x{2 * half_width + 1} needs pad >= {max(depth - 1, half_width)}, "
                             f"got {self.pad}")
        ahead = (depth - 1 - np.arange(depth))[:, None]  # [depth, 1]
        lateral = (np.arange(2 * half_width + 1) - half_width)[None, :]  # [1, w]
        offsets = []
        for heading in range(4):  # 4 fixed headings, built once
            forward, right = DIRECTIONS[heading], DIRECTIONS[(heading + 1) % 4]
            d_row = ahead * forward[0] + lateral * right[0]
            d_col = ahead * forward[1] + lateral * right[1]
            offsets.append((d_row * self.padded_width + d_col).reshape(-1))
        return np.stack(offsets)


def move_agents(geometry: GridGeometry, pos: np.ndarray, heading: np.ndarray, actions: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply actions ``[B, n]`` to positions/headings ``[B, n]`` (module docstring: collision rules).

    Returns ``(new_pos [B, n], new_heading [B, n], moved [B, n] bool)``."""
    n = pos.shape[1]
    forward = actions == FORWARD
    target = pos + geometry.step[heading] * forward  # [B, n]; = pos for agents not moving forward
    others = ~np.eye(n, dtype=bool)  # [n, n]
    occupied = ((target[:, :, None] == pos[:, None, :]) & others).any(-1)
    clash = ((target[:, :, None] == target[:, None, :]) & others).any(-1)
    moved = forward & ~geometry.walls_flat[target] & ~occupied & ~clash
    new_pos = np.where(moved, target, pos)
    new_heading = (heading + _TURN[actions]) & 3
    return new_pos, new_heading, moved


def gather(maps: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """``maps[b, cells[b, ...]]`` for per-sub-env flat maps ``[B, C]`` and indices ``[B, ...]``."""
    rows = np.arange(maps.shape[0]).reshape((-1,) + (1,) * (cells.ndim - 1)) * maps.shape[1]
    return maps.reshape(-1)[cells + rows]


def scatter(maps: np.ndarray, cells: np.ndarray, values: np.ndarray, where: np.ndarray) -> None:
    """In place, ``maps[b, cells[b, i]] = values[b, i]`` wherever ``where[b, i]`` (maps ``[B, C]`` contiguous)."""
    rows = np.arange(maps.shape[0])[:, None] * maps.shape[1]
    maps.reshape(-1)[(cells + rows)[where]] = np.broadcast_to(values, cells.shape)[where]


def view_index(pos: np.ndarray, heading: np.ndarray, offsets: np.ndarray, n_cells: int) -> np.ndarray:
    """Indices ``[B, n, V]`` of each agent's view cells into per-sub-env maps ``[B, n_cells]`` read flat
    (``maps.reshape(-1)[index]``); ``offsets`` from :meth:`GridGeometry.view_offsets`."""
    base = np.arange(pos.shape[0])[:, None] * n_cells
    return (pos + base)[:, :, None] + offsets[heading]


def occupancy(pos: np.ndarray, n_cells: int) -> np.ndarray:
    """``[B, n_cells] int8``: index of the agent on each cell, -1 where none."""
    b, n = pos.shape
    occupant = np.full((b, n_cells), -1, dtype=np.int8)
    scatter(occupant, pos, np.arange(n, dtype=np.int8)[None, :], np.ones((b, n), dtype=bool))
    return occupant


def relation(agent_seen: np.ndarray) -> np.ndarray:
    """``[B, n, V] int8`` from agent indices ``[B, n, V]`` seen by each agent i (-1 = none):
    0 none, 1 agent i itself, 2 another agent."""
    n = agent_seen.shape[1]
    return (agent_seen >= 0) * np.int8(2) - (agent_seen == np.arange(n, dtype=np.int8)[None, :, None])


def code_table(radices: Sequence[int], decode) -> np.ndarray:
    """Lookup table ``[prod(radices), k] float32`` from a mixed-radix cell code to ``k`` view channels.

    A view cell is summarised by digits ``d_j < radices[j]`` packed as ``sum_j d_j * prod(radices[:j])``;
    ``decode(digits) -> k floats`` gives the channel values. ``np.take(table, code, axis=0)`` then yields
    every channel of every view cell in one pass (``[..., V, k]``: the cell-major obs layout)."""
    rows = []
    for code in range(int(np.prod(radices))):
        digits, rest = [], code
        for radix in radices:
            digits.append(rest % radix)
            rest //= radix
        rows.append(decode(digits))
    return np.array(rows, dtype=np.float32)


def pose_features(geometry: GridGeometry, pos: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """``[B, n, 6]``: heading one-hot (N, E, S, W) then row / (H-1) and col / (W-1) in [0, 1]."""
    rows, cols = geometry.rowcol(pos)
    out = np.empty(pos.shape + (6,), dtype=np.float32)
    out[..., :4] = np.eye(4, dtype=np.float32)[heading]
    out[..., 4] = rows / max(geometry.height - 1, 1)
    out[..., 5] = cols / max(geometry.width - 1, 1)
    return out


def pose_state(geometry: GridGeometry, pos: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """``[B, n * 6]``: every agent's :func:`pose_features`, agent-major (the state's pose block)."""
    return pose_features(geometry, pos, heading).reshape(pos.shape[0], -1)


def decode_pose(block: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`pose_state` on unpadded coordinates: ``(rows, cols, headings)``, each ``[B, n]``."""
    pose = block.reshape(block.shape[0], -1, 6)
    heading = pose[..., :4].argmax(-1)
    rows = np.rint(pose[..., 4] * max(height - 1, 1)).astype(np.int64)
    cols = np.rint(pose[..., 5] * max(width - 1, 1)).astype(np.int64)
    return rows, cols, heading


def sample_cells(rng: np.random.Generator, valid: np.ndarray, count: int) -> np.ndarray:
    """``count`` distinct columns per row of ``valid [M, F] bool``, uniformly at random: ``[M, count]``.

    Random keys are drawn for every cell and invalid cells get key -1, so the ``count`` largest keys
    are a uniformly random ordered sample of the valid cells. Every row must have ``count`` valid cells."""
    if count == 0:
        return np.zeros((valid.shape[0], 0), dtype=np.int64)
    keys = rng.random(valid.shape)
    keys[~valid] = -1.0
    if count == 1:
        return keys.argmax(1)[:, None]
    return np.argsort(-keys, axis=1, kind="stable")[:, :count]


def check_placements(name: str, field: str, cells, count: int, free: set[tuple[int, int]], *, env: str,
                     free_means: str = "a free cell of the layout") -> list[tuple[int, int]]:
    """Validate a user-given list of ``count`` distinct cells ``[[row, col], ...]`` of ``free`` (kwarg ``field``)."""
    try:
        cells = [(int(r), int(c)) for r, c in cells]
    except (TypeError, ValueError):
        raise ValueError(f"{env}: {field} must be a list of [row, col] pairs, got {cells!r}") from None
    if len(cells) != count:
        raise ValueError(f"{env}: {field} needs {count} {name} cells, got {len(cells)}")
    for cell in cells:
        if cell not in free:
            raise ValueError(f"{env}: {field} cell {list(cell)} is not {free_means}")
    if len(set(cells)) != len(cells):
        raise ValueError(f"{env}: {field} cells must be distinct, got {[list(c) for c in cells]}")
    return cells


def check_n_agents(n_agents: int, *, env: str) -> int:
    """Validate ``n_agents``: at least 1 and at most 127 (cell maps store agent indices as int8)."""
    if not 1 <= int(n_agents) <= 127:
        raise ValueError(f"{env}: n_agents must be in 1..127, got {n_agents}")
    return int(n_agents)


def check_headings(headings, n_agents: int, *, env: str) -> list[int]:
    """Validate a user-given list of ``n_agents`` headings in 0..3 (kwarg ``headings``)."""
    try:
        headings = [int(h) for h in headings]
    except (TypeError, ValueError):
        raise ValueError(f"{env}: headings must be a list of ints in 0..3 (N, E, S, W), got {headings!r}") from None
    if len(headings) != n_agents or any(h not in range(4) for h in headings):
        raise ValueError(f"{env}: headings must be {n_agents} ints in 0..3 (N, E, S, W), got {headings}")
    return headings


# ---- breadth-first distances and greedy steering (used by the scripted experts) --------------------

def bfs_distance(passable: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Shortest 4-connected path length ``[..., H, W] int32`` from every cell to the nearest source.

    ``passable`` and ``sources`` are ``[..., H, W] bool`` (any leading batch shape); paths run over
    passable cells, sources on impassable cells are ignored, cells outside the grid are blocked, and
    cells no source reaches get :data:`UNREACHABLE`. One dilation of the whole batch per distance step."""
    sources = sources & passable
    reached = sources.copy()
    dist = np.where(sources, 0, UNREACHABLE).astype(np.int32)
    frontier = sources
    step = 0
    while True:
        step += 1
        grown = np.zeros_like(frontier)
        grown[..., 1:, :] |= frontier[..., :-1, :]
        grown[..., :-1, :] |= frontier[..., 1:, :]
        grown[..., :, 1:] |= frontier[..., :, :-1]
        grown[..., :, :-1] |= frontier[..., :, 1:]
        frontier = grown & passable & ~reached
        if not frontier.any():
            return dist
        dist[frontier] = step
        reached |= frontier


_TURN_COST = np.array([0, 1, 2, 1], dtype=np.int32)  # turns needed to face heading + k (k = 0..3)


def steer(dist: np.ndarray, rows: np.ndarray, cols: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Greedy action ``[M]`` that descends distance field ``dist [M, H, W]`` from ``(rows, cols, heading)``.

    Each neighbour is scored ``dist(neighbour) + turns needed to face it`` (0 ahead, 1 left/right, 2
    behind); ties prefer ahead, then right, then behind, then left. The agent moves forward when the best
    neighbour is ahead, otherwise turns toward it (right when it is behind), and stays (no move) when it
    stands on a source or no neighbour reaches one."""
    m, height, width = dist.shape
    index = np.arange(m)
    relative = (heading[:, None] + np.arange(4)[None, :]) & 3  # [M, 4] absolute heading of ahead/right/behind/left
    n_rows = rows[:, None] + DIRECTIONS[relative, 0]
    n_cols = cols[:, None] + DIRECTIONS[relative, 1]
    inside = (n_rows >= 0) & (n_rows < height) & (n_cols >= 0) & (n_cols < width)
    d = dist[index[:, None], np.clip(n_rows, 0, height - 1), np.clip(n_cols, 0, width - 1)]
    d = np.where(inside, d, UNREACHABLE)
    best = (d + _TURN_COST[None, :]).argmin(1)  # relative direction 0..3
    reachable = d[index, best] < UNREACHABLE
    action = np.array([FORWARD, TURN_RIGHT, TURN_RIGHT, TURN_LEFT], dtype=np.int64)[best]
    at_source = dist[index, rows, cols] == 0
    return np.where(reachable & ~at_source, action, NO_MOVE)


def yield_conflicts(actions: np.ndarray, rows: np.ndarray, cols: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Replace forward moves ``[B, n]`` that would clash with a lower-index agent's forward move into the
    same cell by no-move (the env would block both; a deterministic policy would then repeat forever)."""
    n = actions.shape[1]
    forward = actions == FORWARD
    t_rows = np.where(forward, rows + DIRECTIONS[heading, 0], -1 - np.arange(n))  # distinct dummies if not moving
    t_cols = np.where(forward, cols + DIRECTIONS[heading, 1], -1)
    same = (t_rows[:, :, None] == t_rows[:, None, :]) & (t_cols[:, :, None] == t_cols[:, None, :])
    lower = np.tril(np.ones((n, n), dtype=bool), k=-1)  # [i, j]: j < i
    clash = (same & lower & forward[:, None, :]).any(-1)
    return np.where(forward & clash, NO_MOVE, actions)


# ---- rendering ------------------------------------------------------------------------------------

def _triangle(px: int, heading: int) -> np.ndarray:
    """``[px, px] bool`` isoceles triangle pointing toward ``heading``."""
    y, x = np.mgrid[0:px, 0:px] + 0.5
    margin = px * 0.15
    depth = (y - margin) / (px - 2 * margin)  # 0 at the tip (top), 1 at the base
    up = (depth >= 0) & (depth <= 1) & (np.abs(x - px / 2) <= depth * (px / 2 - margin))
    return np.rot90(up, k=-heading)  # rot90 turns counter-clockwise; headings run clockwise


def _disc(px: int, radius: float) -> np.ndarray:
    y, x = np.mgrid[0:px, 0:px] + 0.5
    return (y - px / 2) ** 2 + (x - px / 2) ** 2 <= (radius * px) ** 2


def _ring(px: int, thickness: int) -> np.ndarray:
    mask = np.ones((px, px), dtype=bool)
    mask[thickness:px - thickness, thickness:px - thickness] = False
    return mask


def agent_rgb(index: int) -> np.ndarray:
    """Agent ``index``'s colour, the same as in the other envs' renderers
    (:func:`offmarl.envs.rendering.agent_color`)."""
    from offmarl.envs.rendering import agent_color

    return np.array(agent_color(index), dtype=np.uint8)


def blend(color: np.ndarray, alpha: float, base: np.ndarray = FLOOR_RGB) -> np.ndarray:
    """``alpha * color + (1 - alpha) * base`` as uint8 (a translucent fill)."""
    return (alpha * color.astype(np.float32) + (1 - alpha) * base.astype(np.float32)).astype(np.uint8)


def observe_with_autoreset(env, ended: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """After a step of a grid env: ``(obs, state, final_obs, final_state)``, where the sub-envs ``ended``
    (flat indices) are reset and ``obs``/``state`` hold their first observation while ``final_*`` keep the
    last one. ``env`` provides ``_observe(rows)``, ``_state(rows)`` and ``_reset_rows(rows)``."""
    obs, state = env._observe(), env._state()
    final_obs, final_state = obs, state
    if len(ended):
        env._reset_rows(ended)
        obs, state = obs.copy(), state.copy()
        obs[ended] = env._observe(ended)
        state[ended] = env._state(ended)
    return obs, state, final_obs, final_state


class GridRendering:
    """``render(index)`` of the grid envs: the frame of one sub-env's current state, drawn by the env's
    ``render_state``. An env using it provides ``_state(rows)``, ``render_state(state, px)`` and ``_ready()``."""

    def render(self, index: int = 0, px: int = 16) -> np.ndarray:
        """RGB frame ``[H*px, W*px, 3] uint8`` of sub-env ``index`` (see ``render_state``)."""
        if not self._ready():
            raise RuntimeError(f"{self.spec.name}: call reset() before render()")
        if not 0 <= index < self.num_envs:
            raise ValueError(f"{self.spec.name}: render index {index} outside [0, {self.num_envs})")
        return self.render_state(self._state(np.array([index]))[0], px)


class GridCanvas:
    """An RGB image of a ``H x W`` grid with ``px``-pixel cells, drawn cell by cell (rendering only)."""

    def __init__(self, cell_rgb: np.ndarray, px: int = 16):
        if px < 4:
            raise ValueError(f"grid rendering needs px >= 4 pixels per cell, got {px}")
        self.px = px
        self.image = np.repeat(np.repeat(cell_rgb, px, axis=0), px, axis=1)
        self.image[::px, :] = (self.image[::px, :] * 0.7).astype(np.uint8)  # faint grid lines
        self.image[:, ::px] = (self.image[:, ::px] * 0.7).astype(np.uint8)

    def _paint(self, row: int, col: int, mask: np.ndarray, color: np.ndarray) -> None:
        px = self.px
        self.image[row * px:(row + 1) * px, col * px:(col + 1) * px][mask] = color

    def agents(self, rows: np.ndarray, cols: np.ndarray, heading: np.ndarray) -> None:
        """Agent i as a triangle in :func:`agent_rgb` ``(i)`` pointing along its heading."""
        for i, (row, col, h) in enumerate(zip(rows, cols, heading)):
            self._paint(int(row), int(col), _triangle(self.px, int(h)), agent_rgb(i))

    def disc(self, row: int, col: int, color: np.ndarray, radius: float = 0.28) -> None:
        self._paint(row, col, _disc(self.px, radius), color)

    def ring(self, row: int, col: int, color: np.ndarray) -> None:
        self._paint(row, col, _ring(self.px, max(1, self.px // 8)), color)
