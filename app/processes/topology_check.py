"""OGC API process `topology-check`: the network's topology checks (拓扑检查).

Wraps network_analysis.qa.run_qa, which also replaces the stored findings (table topology_issue).
"""
from __future__ import annotations

from app.processes.base import QiwangProcessor, process_metadata, value_input
from network_analysis.qa import run_qa

PROCESS_METADATA = process_metadata(
    "topology-check",
    inputs={
        "tolerance_m": value_input("Valve tolerance (m)", "Metres a valve may stand off its pipe.",
                                   {"type": "number", "minimum": 0, "maximum": 100, "default": 0.5}),
        "near_miss_m": value_input(
            "Near miss (m)", "Metres within which an unconnected pipe end counts as a near miss.",
            {"type": "number", "minimum": 0, "maximum": 100, "default": 1.0}),
    },
    example={"tolerance_m": 0.5, "near_miss_m": 1.0},
)


class TopologyCheckProcessor(QiwangProcessor):
    """topology-check: network_analysis.qa.run_qa over OGC API Processes."""

    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, PROCESS_METADATA)

    def run(self, inputs: dict) -> dict:
        return run_qa(self.engine, tolerance_m=inputs["tolerance_m"], near_miss_m=inputs["near_miss_m"])
