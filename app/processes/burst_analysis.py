"""OGC API process `burst-analysis`: valves to close and what a burst cuts off (爆管关阀分析).

Wraps network_analysis.api.burst_analysis.
"""
from __future__ import annotations

from app.processes.base import (
    CRS_INPUT,
    POINT_SCHEMA,
    InputError,
    QiwangProcessor,
    point_input,
    process_metadata,
    value_input,
    xy,
)
from emergency.incidents import STARTING_STATES, analyse_and_save

PROCESS_METADATA = process_metadata(
    "burst-analysis",
    inputs={
        "pipe": value_input("Pipe code", "Code (编号) of the burst pipe; the burst is at its middle. Not with `point`.",
                            {"type": "string", "minLength": 1}),
        "point": point_input("Burst point", "Where the pipe burst; snapped to the nearest pipe in service "
                                            "(at most 50 m away). Not with `pipe`.", required=False),
        "crs": CRS_INPUT,
        "failed_valves": value_input(
            "Failed valves", "Codes of valves that cannot be closed (broken, inaccessible): the analysis closes "
                "the next ring of valves instead and reports the difference as `second_ring`.",
            {"type": "string", "minLength": 1}, many=True),
        "barriers": value_input(
            "Temporary barriers", "Squeeze-off points (捏管点) that also stop the gas; each a GeoJSON Point or [x, y] "
                "in `crs`, snapped to the nearest pipe in service (at most 50 m away).",
            POINT_SCHEMA, many=True),
        "geometry": value_input(
            "Add geometry", "Add `outage_area` (GeoJSON polygon, 15 m around every cut-off pipe) and `features` "
                "(isolated pipes, dry pipes, valves to close as GeoJSON FeatureCollections), in CRS84.",
            {"type": "boolean", "default": False}),
        "save_as": value_input(
            "Store as incident", "Store the result as an incident (事故方案) in this state; its code is returned as "
                "`incident`.",
            {"type": "string", "enum": list(STARTING_STATES)}),
        "title": value_input("Incident title", "Title of the stored incident (with `save_as`).",
                             {"type": "string"}),
    },
    example={"point": {"type": "Point", "coordinates": [122.995, 41.108]}, "geometry": True},
)


class BurstAnalysisProcessor(QiwangProcessor):
    """burst-analysis: network_analysis.api.burst_analysis (stored as an incident by
    emergency.incidents.analyse_and_save on request) over OGC API Processes; the parameters are
    the inputs' names, so its InvalidInput fields name the inputs as they are."""

    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, PROCESS_METADATA)

    def run(self, inputs: dict) -> dict:
        if (inputs["pipe"] is None) == (inputs["point"] is None):
            raise InputError("give exactly one of the inputs 'pipe' (a pipe code) and 'point'")
        return analyse_and_save(
            self.engine, inputs["save_as"], inputs["title"], pipe=inputs["pipe"],
            point=xy(inputs["point"]) if inputs["point"] else None, crs=inputs["crs"],
            failed_valves=inputs["failed_valves"], barriers=[xy(b) for b in inputs["barriers"]],
            geometry=inputs["geometry"])
