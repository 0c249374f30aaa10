"""Small numpy RGB drawing helpers shared by the 2-D environments' renderers.

A :class:`Canvas` maps a rectangle of world coordinates (``x`` to the right, ``y`` *up*) onto an RGB image
(row 0 at the top) and draws filled circles, line segments and rectangles into it. Everything is plain
numpy on the pixels of each shape's bounding box, so a frame of a few dozen shapes costs well under a
millisecond and no graphics package is needed.

Example::

    canvas = Canvas(256, (-1.0, -1.0, 1.0, 1.0))
    canvas.circle((0.0, 0.5), 0.05, agent_color(0))
    canvas.line((0.0, 0.5), (0.3, -0.2), GREY)
    frame = canvas.to_array()  # [256, 256, 3] uint8

Environments that can draw a frame from a global state vector may also offer
``render_state(state [state_dim]) -> frame``; episode recorders use it to draw the state reached by an
episode's last action (``TimeStep.final_state``), which ``render(index)`` can no longer show after the
auto-reset (see :mod:`offmarl.envs.base`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

Color = tuple[int, int, int]

WHITE: Color = (255, 255, 255)
BLACK: Color = (0, 0, 0)
GREY: Color = (170, 170, 170)
LIGHT_GREY: Color = (230, 230, 230)

# Distinct, colour-blind-friendly hues (Okabe-Ito), cycled for more agents.
_AGENT_COLORS: tuple[Color, ...] = (
    (230, 159, 0), (86, 180, 233), (0, 158, 115), (204, 121, 167),
    (0, 114, 178), (213, 94, 0), (240, 228, 66), (100, 100, 100),
)


def agent_color(index: int) -> Color:
    """The colour of agent ``index`` (cycled after 8 agents)."""
    return _AGENT_COLORS[index % len(_AGENT_COLORS)]


class Canvas:
    """An RGB image over the world rectangle ``world_bounds = (xmin, ymin, xmax, ymax)``.

    ``width_px`` sets the image width; the height follows the rectangle's aspect ratio. Lengths given in
    world units (radii, rectangle corners) scale with the image; line widths are given in pixels.
    """

    def __init__(self, width_px: int, world_bounds: Sequence[float], background: Color = WHITE):
        xmin, ymin, xmax, ymax = (float(v) for v in world_bounds)
        if not (xmax > xmin and ymax > ymin):
            raise ValueError(f"Canvas: world_bounds must be (xmin, ymin, xmax, ymax) with max > min, "
                             f"got {tuple(world_bounds)}")
        if width_px < 1:
            raise ValueError(f"Canvas: width_px must be >= 1, got {width_px}")
        self.xmin, self.ymax = xmin, ymax
        self.scale = width_px / (xmax - xmin)  # pixels per world unit
        self.width = int(width_px)
        self.height = max(1, int(round((ymax - ymin) * self.scale)))
        self.image = np.empty((self.height, self.width, 3), dtype=np.uint8)
        self.image[:] = background

    def to_pixels(self, xy: Sequence[float]) -> tuple[float, float]:
        """World point ``(x, y)`` -> continuous pixel coordinates ``(col, row)`` (pixel centres at +0.5)."""
        return (float(xy[0]) - self.xmin) * self.scale, (self.ymax - float(xy[1])) * self.scale

    def _box(self, col_lo: float, col_hi: float, row_lo: float, row_hi: float):
        """Integer pixel ranges covering a continuous box, clipped to the image (None if empty)."""
        c0, c1 = max(0, int(np.floor(col_lo))), min(self.width, int(np.ceil(col_hi)) + 1)
        r0, r1 = max(0, int(np.floor(row_lo))), min(self.height, int(np.ceil(row_hi)) + 1)
        if c0 >= c1 or r0 >= r1:
            return None
        cols = np.arange(c0, c1, dtype=np.float32) + 0.5
        rows = np.arange(r0, r1, dtype=np.float32) + 0.5
        return (r0, r1, c0, c1), cols[None, :], rows[:, None]

    def circle(self, xy: Sequence[float], radius: float, color: Color) -> None:
        """A filled disc of ``radius`` world units centred at world point ``xy``."""
        col, row = self.to_pixels(xy)
        r_px = max(float(radius) * self.scale, 0.5)
        box = self._box(col - r_px, col + r_px, row - r_px, row + r_px)
        if box is None:
            return
        (r0, r1, c0, c1), cols, rows = box
        inside = (cols - col) ** 2 + (rows - row) ** 2 <= r_px**2
        self.image[r0:r1, c0:c1][inside] = color

    def line(self, p0: Sequence[float], p1: Sequence[float], color: Color, width_px: float = 2.0) -> None:
        """A segment between world points ``p0`` and ``p1``, ``width_px`` pixels wide (round caps)."""
        a = np.array(self.to_pixels(p0), dtype=np.float32)
        b = np.array(self.to_pixels(p1), dtype=np.float32)
        half = max(float(width_px) / 2.0, 0.5)
        box = self._box(min(a[0], b[0]) - half, max(a[0], b[0]) + half, min(a[1], b[1]) - half, max(a[1], b[1]) + half)
        if box is None:
            return
        (r0, r1, c0, c1), cols, rows = box
        ab = b - a
        length2 = float(ab @ ab)
        # distance from each pixel centre to the segment: project, clamp to [0, 1], measure
        t = ((cols - a[0]) * ab[0] + (rows - a[1]) * ab[1]) / length2 if length2 > 0 else np.zeros((1, 1), np.float32)
        t = np.clip(t, 0.0, 1.0)
        inside = (cols - a[0] - t * ab[0]) ** 2 + (rows - a[1] - t * ab[1]) ** 2 <= half**2
        self.image[r0:r1, c0:c1][inside] = color

    def rect(self, lo: Sequence[float], hi: Sequence[float], color: Color) -> None:
        """A filled axis-aligned rectangle between world corners ``lo = (x0, y0)`` and ``hi = (x1, y1)``."""
        c0, r1 = self.to_pixels(lo)
        c1, r0 = self.to_pixels(hi)
        r0, r1, c0, c1 = (int(round(v)) for v in (min(r0, r1), max(r0, r1), min(c0, c1), max(c0, c1)))
        self.image[max(r0, 0):min(r1, self.height), max(c0, 0):min(c1, self.width)] = color

    def frame(self, lo: Sequence[float], hi: Sequence[float], color: Color, width_px: float = 2.0) -> None:
        """The outline of the rectangle between world corners ``lo`` and ``hi``."""
        (x0, y0), (x1, y1) = lo, hi
        for p, q in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))):
            self.line(p, q, color, width_px)

    def to_array(self) -> np.ndarray:
        """The image ``[H, W, 3] uint8`` (a copy)."""
        return self.image.copy()
