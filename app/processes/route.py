"""OGC API process `route`: the fastest road route to an incident (抢修路径).

Wraps network_analysis.routing.route (from a given point) and route_from_nearest_crew_base.
"""
from __future__ import annotations

from typing import ClassVar

from app.processes.base import CRS_INPUT, JOB_CONTROL, QiwangProcessor, point_input, report_output, xy
from network_analysis import routing

PROCESS_METADATA = {
    "version": "1.0.0",
    "id": "route",
    "title": {"en": "Route", "zh": "抢修路径"},
    "description": {
        "en": "Fastest route by road to a point (an incident), from a given point or, without `from`, from "
              "the crew base (抢修站) that reaches it first. Points must lie within 500 m of a road.",
        "zh": "从指定点或最近的抢修站到事故点的最快道路路线。",
    },
    "jobControlOptions": JOB_CONTROL,
    "keywords": ["route", "crew", "路径", "抢修"],
    "inputs": {
        "to": point_input("Destination", "The incident.", required=True),
        "from": point_input("Start", "Where the crew starts; default: the nearest crew base by travel time.",
                            required=False),
        "crs": CRS_INPUT,
    },
    "outputs": report_output(
        "With `from`: {length_m, minutes, roads, geometry (GeoJSON LineString), start, end, access_m "
        "{start, end}}. Without: {crew_base {code, name, phone, crew_count, point}, route (as above), "
        "others (other bases by minutes), unreachable}. Coordinates are EPSG:4550 easting, northing (m)."),
    "example": {"inputs": {"to": {"type": "Point", "coordinates": [122.995, 41.108]}}},
}


class RouteProcessor(QiwangProcessor):
    """route: network_analysis.routing over OGC API Processes."""

    INPUT_OF: ClassVar[dict[str, str]] = {"start": "from", "end": "to"}   # routing's parameters → the inputs

    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, PROCESS_METADATA)

    def run(self, inputs: dict) -> dict:
        crs, end = inputs["crs"], xy(inputs["to"])
        graph = routing.road_graphs.get(self.engine)
        if inputs["from"] is None:
            return routing.route_from_nearest_crew_base(self.engine, end, crs=crs, graph=graph)
        return routing.route(self.engine, xy(inputs["from"]), end, crs=crs, graph=graph)
