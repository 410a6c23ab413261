"""OGC API process `burst-analysis`: valves to close and what a burst cuts off (爆管关阀分析).

Wraps network_analysis.api.burst_analysis.
"""
from __future__ import annotations

from app.processes.base import (
    CRS_INPUT,
    JOB_CONTROL,
    POINT_SCHEMA,
    InputError,
    QiwangProcessor,
    point_input,
    report_output,
    xy,
)
from emergency.incidents import STARTING_STATES, analyse_and_save

PROCESS_METADATA = {
    "version": "1.0.0",
    "id": "burst-analysis",
    "title": {"en": "Burst analysis", "zh": "爆管关阀分析"},
    "description": {
        "en": "Burst / valve isolation at a pipe (its middle) or at a point (snapped to the nearest pipe in "
              "service, at most 50 m away): valves to close (proposed and already closed), isolated and dry "
              "pipes, customers cut off by type, sensitive sites, isolated length (m) and gas volume (m³), "
              "a second ring when valves fail to close. Give either `pipe` or `point`.",
        "zh": "爆管关阀分析: 需关闭的阀门、停气管段与用户、敏感场所、第二道关阀。",
    },
    "jobControlOptions": JOB_CONTROL,
    "keywords": ["burst", "valve isolation", "爆管", "关阀"],
    "inputs": {
        "pipe": {
            "title": "Pipe code",
            "description": "Code (编号) of the burst pipe; the burst is at its middle. Not with `point`.",
            "schema": {"type": "string", "minLength": 1},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "point": point_input("Burst point", "Where the pipe burst; snapped to the nearest pipe in service "
                                            "(at most 50 m away). Not with `pipe`.", required=False),
        "crs": CRS_INPUT,
        "failed_valves": {
            "title": "Failed valves",
            "description": "Codes of valves that cannot be closed (broken, inaccessible): the analysis closes "
                           "the next ring of valves instead and reports the difference as `second_ring`.",
            "schema": {"type": "string", "minLength": 1},
            "minOccurs": 0,
            "maxOccurs": "unbounded",
        },
        "barriers": {
            "title": "Temporary barriers",
            "description": "Squeeze-off points (捏管点) that also stop the gas; each a GeoJSON Point or [x, y] "
                           "in `crs`, snapped to the nearest pipe in service (at most 50 m away).",
            "schema": POINT_SCHEMA,
            "minOccurs": 0,
            "maxOccurs": "unbounded",
        },
        "geometry": {
            "title": "Add geometry",
            "description": "Add `outage_area` (GeoJSON polygon, 15 m around every cut-off pipe) and `features` "
                           "(isolated pipes, dry pipes, valves to close as GeoJSON FeatureCollections), in CRS84.",
            "schema": {"type": "boolean", "default": False},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "save_as": {
            "title": "Store as incident",
            "description": "Store the result as an incident (事故方案) in this state; its code is returned as "
                           "`incident`.",
            "schema": {"type": "string", "enum": list(STARTING_STATES)},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "title": {
            "title": "Incident title",
            "description": "Title of the stored incident (with `save_as`).",
            "schema": {"type": "string"},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
    },
    "outputs": report_output(
        "The fixed-key burst report of network_analysis.api.burst_analysis: network_version, burst {pipe, "
        "fraction, point}, valves_to_close [{code, pipe, x, y, already_closed}], isolated_pipes, dry_pipes, "
        "affected_customers {count, by_type, list}, isolated_length_m, isolated_volume_m3 (standard "
        "conditions), second_ring, barriers, check_valves_holding, sources_to_shut, sensitive_sites, "
        "outage_area, incident (and features with `geometry`). Point coordinates are EPSG:4550 easting, "
        "northing (m); outage_area and features are CRS84."),
    "example": {"inputs": {"point": {"type": "Point", "coordinates": [122.995, 41.108]}, "geometry": True}},
}


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
