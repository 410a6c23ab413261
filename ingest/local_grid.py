"""City local grids (城市独立坐标系) given as a 4-parameter plane similarity to a CGCS2000 CRS.

Many Chinese cities survey in a local grid whose relation to CGCS2000 is published as four
parameters (四参数): two shifts, a rotation and a scale. Declared in the mapping file under
`local_grids.<name>` and chosen with `--crs LOCAL:<name>`:

    X = dx + s·(x·cos θ − y·sin θ)
    Y = dy + s·(x·sin θ + y·cos θ),   s = 1 + scale_ppm·10⁻⁶,  θ = rotation_arcsec (counter-clockwise)

x, y are local easting/northing in metres; X, Y are easting/northing in metres of `target` (a
projected CGCS2000 CRS such as EPSG:4550). Heights are not changed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pyproj import CRS
from pyproj.exceptions import CRSError

from core.errors import QiwangError

PREFIX = "LOCAL:"
_ARCSEC = math.pi / (180 * 3600)


@dataclass(frozen=True)
class LocalGrid:
    """One local grid: its name, the CGCS2000 CRS it maps onto and the four parameters."""

    name: str
    target: CRS
    dx: float  # metres
    dy: float  # metres
    rotation_arcsec: float  # counter-clockwise, arc seconds
    scale_ppm: float  # parts per million (s = 1 + scale_ppm·1e-6)

    def apply(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local (x, y) in metres → (X, Y) in metres of `target`."""
        theta = self.rotation_arcsec * _ARCSEC
        s = 1.0 + self.scale_ppm * 1e-6
        cos, sin = math.cos(theta), math.sin(theta)
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        return self.dx + s * (x * cos - y * sin), self.dy + s * (x * sin + y * cos)

    def describe(self) -> str:
        return (f"local grid {self.name} (dx {self.dx:.10g} m, dy {self.dy:.10g} m, rotation "
                f"{self.rotation_arcsec:.10g}″, scale {self.scale_ppm:.10g} ppm → EPSG:{self.target.to_epsg()})")


def local_grid(option: str, grids: dict[str, dict]) -> LocalGrid:
    """The grid a `--crs LOCAL:<name>` value names, from the mapping file's `local_grids`."""
    name = option[len(PREFIX):].strip()
    spec = grids.get(name)
    if not isinstance(spec, dict):
        known = ", ".join(sorted(grids)) or "none"
        raise QiwangError(f"--crs {option}: no local grid {name!r} in the mapping file (known: {known})")
    try:
        target = CRS.from_user_input(str(spec["target"]))
        values = {key: float(spec.get(key, 0.0)) for key in ("dx", "dy", "rotation_arcsec", "scale_ppm")}
    except KeyError:
        raise QiwangError(f"local grid {name}: 'target' (a CGCS2000 CRS, e.g. EPSG:4550) is missing") from None
    except (CRSError, TypeError, ValueError) as exc:
        raise QiwangError(f"local grid {name}: {exc}") from None
    if not target.is_projected:
        raise QiwangError(f"local grid {name}: target {spec['target']} must be a projected CRS (metres)")
    return LocalGrid(name, target, **values)
