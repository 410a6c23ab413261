"""OGC API process `topology-check`: the network's topology checks (拓扑检查).

Wraps network_analysis.qa.run_qa, which also replaces the stored findings (table topology_issue).
"""
from __future__ import annotations

from app.processes.base import JOB_CONTROL, QiwangProcessor, report_output
from network_analysis.qa import run_qa

PROCESS_METADATA = {
    "version": "1.0.0",
    "id": "topology-check",
    "title": {"en": "Topology check", "zh": "拓扑检查"},
    "description": {
        "en": "Checks the pipe network (unfed features, devices off the network, dangling ends, near misses, "
              "duplicate and zero-length pipes, pressure changes without a regulator, self loops) and "
              "replaces the stored findings, which the topology issues collection serves.",
        "zh": "管网拓扑检查, 结果写入拓扑问题图层。",
    },
    "jobControlOptions": JOB_CONTROL,
    "keywords": ["topology", "QA", "拓扑"],
    "inputs": {
        "tolerance_m": {
            "title": "Valve tolerance (m)",
            "description": "Metres a valve may stand off its pipe.",
            "schema": {"type": "number", "minimum": 0, "maximum": 100, "default": 0.5},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "near_miss_m": {
            "title": "Near miss (m)",
            "description": "Metres within which an unconnected pipe end counts as a near miss.",
            "schema": {"type": "number", "minimum": 0, "maximum": 100, "default": 1.0},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
    },
    "outputs": report_output(
        "network_version, counts {kind: findings, zeros included}, issues (the first 1000: kind, "
        "feature_type, feature_code, detail)."),
    "example": {"inputs": {"tolerance_m": 0.5, "near_miss_m": 1.0}},
}


class TopologyCheckProcessor(QiwangProcessor):
    """topology-check: network_analysis.qa.run_qa over OGC API Processes."""

    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, PROCESS_METADATA)

    def run(self, inputs: dict) -> dict:
        return run_qa(self.engine, tolerance_m=inputs["tolerance_m"], near_miss_m=inputs["near_miss_m"])
