"""OGC API process `radius-query`: what lies within a radius of a point (周边查询).

Wraps network_analysis.radius.near.
"""
from __future__ import annotations

from app.processes.base import CRS_INPUT, JOB_CONTROL, QiwangProcessor, point_input, report_output, xy
from network_analysis.radius import MAX_RADIUS_M, near

PROCESS_METADATA = {
    "version": "1.0.0",
    "id": "radius-query",
    "title": {"en": "Radius query", "zh": "周边查询"},
    "description": {
        "en": "Pipes, valves, regulators, stations, sentries, devices, customers and sensitive sites within "
              "a radius (planar metres in EPSG:4550) of a point, nearest first. No personal data.",
        "zh": "查询某点周边一定半径内的管线、设备、用户与敏感场所。",
    },
    "jobControlOptions": JOB_CONTROL,
    "keywords": ["radius", "nearby", "周边"],
    "inputs": {
        "point": point_input("Centre", "Centre of the search.", required=True),
        "radius_m": {
            "title": "Radius (m)",
            "description": f"Radius in metres, more than 0 and at most {MAX_RADIUS_M:g}.",
            "schema": {"type": "number", "minimum": 0, "maximum": MAX_RADIUS_M},
            "minOccurs": 1,
            "maxOccurs": 1,
        },
        "crs": CRS_INPUT,
        "limit_per_layer": {
            "title": "Features per layer",
            "description": "At most this many features of each layer, the nearest; `counts` has the full numbers.",
            "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 200},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
    },
    "outputs": report_output(
        "center [x, y] (EPSG:4550 easting, northing, m), radius_m, features [{layer, id, code, name, "
        "distance_m}] nearest first, counts {layer: all features within the radius}."),
    "example": {"inputs": {"point": {"type": "Point", "coordinates": [122.995, 41.108]}, "radius_m": 200}},
}


class RadiusQueryProcessor(QiwangProcessor):
    """radius-query: network_analysis.radius.near over OGC API Processes."""

    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, PROCESS_METADATA)

    def run(self, inputs: dict) -> dict:
        x, y = xy(inputs["point"])
        with self.engine.connect() as conn:
            return near(conn, x, y, inputs["radius_m"], crs=inputs["crs"], limit_per_layer=inputs["limit_per_layer"])
