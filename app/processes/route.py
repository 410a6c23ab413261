"""OGC API process `route`: the fastest road route to an incident (抢修路径).

Wraps network_analysis.routing.route (from a given point) and route_from_nearest_crew_base.
"""
from __future__ import annotations

from typing import ClassVar

from app.processes.base import CRS_INPUT, QiwangProcessor, point_input, process_metadata, xy
from network_analysis import routing

PROCESS_METADATA = process_metadata(
    "route",
    inputs={
        "to": point_input("Destination", "The incident.", required=True),
        "from": point_input("Start", "Where the crew starts; default: the nearest crew base by travel time.",
                            required=False),
        "crs": CRS_INPUT,
    },
    example={"to": {"type": "Point", "coordinates": [122.995, 41.108]}},
)


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
