"""Zones as areas of the floor plan: which zone a point is in, and how far outside a zone's edge it is.

A zone with an `area` (`[[zones]] area`, a polygon or a circle, in metres) is entered where the phone is placed
inside it and left only once it is placed `ble.area_exit_m` beyond its edge: the margin is the hysteresis in
distance that keeps a phone standing at an edge from flipping in and out. Areas are looked up in the order the
zones are configured, so a small zone drawn inside a larger one is listed first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..config import CircleArea, PolygonArea, Zone

Point = tuple[float, float]


class Areas:
    def __init__(self, zones: Sequence[Zone]):
        self._shapes: dict[str, CircleArea | PolygonArea] = {z.id: z.area for z in zones if z.area is not None}

    def __bool__(self) -> bool:
        return bool(self._shapes)

    def zone_at(self, x: float, y: float) -> str | None:
        """The first zone whose area holds the point, or None (an aisle)."""
        return next((zone for zone, shape in self._shapes.items() if _outside_m(shape, x, y) == 0.0), None)

    def outside_m(self, zone: str, x: float, y: float) -> float:
        """How far the point is beyond the zone's edge (0 inside it)."""
        return _outside_m(self._shapes[zone], x, y)


def _outside_m(shape: CircleArea | PolygonArea, x: float, y: float) -> float:
    if isinstance(shape, CircleArea):
        return max(0.0, math.hypot(x - shape.x_m, y - shape.y_m) - shape.r_m)
    corners = [(cx, cy) for cx, cy in shape.polygon]
    if _inside(corners, x, y):
        return 0.0
    return min(_to_segment(a, b, x, y) for a, b in zip(corners, corners[1:] + corners[:1], strict=True))


def _inside(corners: list[Point], x: float, y: float) -> bool:
    """Even-odd rule: a ray to the right of the point crosses the edges an odd number of times; a point on an
    edge counts as inside."""
    crossings = False
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1], strict=True):
        if _to_segment((x0, y0), (x1, y1), x, y) < 1e-9:
            return True
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            crossings = not crossings
    return crossings


def _to_segment(a: Point, b: Point, x: float, y: float) -> float:
    (ax, ay), (bx, by) = a, b
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    f = 0.0 if length2 == 0 else max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / length2))
    return math.hypot(x - (ax + f * dx), y - (ay + f * dy))
