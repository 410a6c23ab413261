"""OGC API process `criticality`: which valve segments and valves matter most (管段关键性).

Wraps network_analysis.criticality.criticality_report on the cached topology.
"""
from __future__ import annotations

from app.processes.base import QiwangProcessor, process_metadata, value_input
from db import acting
from network_analysis.criticality import criticality_report
from network_analysis.scope import visible_ids
from network_analysis.topology import topologies

PROCESS_METADATA = process_metadata(
    "criticality",
    inputs={
        "top": value_input("How many", "How many segments and valves to list, most critical first.",
                           {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}),
    },
    example={"top": 10},
)


class CriticalityProcessor(QiwangProcessor):
    """criticality: network_analysis.criticality.criticality_report over OGC API Processes."""

    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, PROCESS_METADATA)

    def run(self, inputs: dict) -> dict:
        topo = topologies.get(self.engine)
        if acting.current() is None:
            return criticality_report(topo, inputs["top"])
        with self.engine.connect() as conn:   # a signed-in account: list what its scope holds
            return criticality_report(topo, inputs["top"], lambda table, ids: visible_ids(conn, table, ids))
