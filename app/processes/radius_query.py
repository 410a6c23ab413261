"""OGC API process `radius-query`: what lies within a radius of a point (周边查询).

Wraps network_analysis.radius.near.
"""
from __future__ import annotations

from app.processes.base import CRS_INPUT, QiwangProcessor, point_input, process_metadata, value_input, xy
from network_analysis.radius import MAX_RADIUS_M, near

PROCESS_METADATA = process_metadata(
    "radius-query",
    inputs={
        "point": point_input("Centre", "Centre of the search.", required=True),
        "radius_m": value_input("Radius (m)", f"Radius in metres, more than 0 and at most {MAX_RADIUS_M:g}.",
                                {"type": "number", "minimum": 0, "maximum": MAX_RADIUS_M}, required=True),
        "crs": CRS_INPUT,
        "limit_per_layer": value_input(
            "Features per layer",
            "At most this many features of each layer, the nearest; `counts` has the full numbers.",
            {"type": "integer", "minimum": 1, "maximum": 10000, "default": 200}),
    },
    example={"point": {"type": "Point", "coordinates": [122.995, 41.108]}, "radius_m": 200},
)


class RadiusQueryProcessor(QiwangProcessor):
    """radius-query: network_analysis.radius.near over OGC API Processes."""

    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, PROCESS_METADATA)

    def run(self, inputs: dict) -> dict:
        x, y = xy(inputs["point"])
        with self.engine.connect() as conn:
            return near(conn, x, y, inputs["radius_m"], crs=inputs["crs"], limit_per_layer=inputs["limit_per_layer"])
