"""OGC API process `criticality`: which valve segments and valves matter most (管段关键性).

Wraps network_analysis.criticality.criticality_report on the cached topology.
"""
from __future__ import annotations

from app.processes.base import JOB_CONTROL, QiwangProcessor, report_output
from network_analysis.criticality import criticality_report
from network_analysis.topology import topologies

PROCESS_METADATA = {
    "version": "1.0.0",
    "id": "criticality",
    "title": {"en": "Criticality", "zh": "管段关键性分析"},
    "description": {
        "en": "Criticality of every valve segment (customers cut off by a burst in it) and of every valve "
              "(customers additionally cut off when it fails to close): the distribution and the `top` most "
              "critical segments and valves.",
        "zh": "各阀门段爆管停气用户数与阀门失效代价排名。",
    },
    "jobControlOptions": JOB_CONTROL,
    "keywords": ["criticality", "valve segment", "关键性"],
    "inputs": {
        "top": {
            "title": "How many",
            "description": "How many segments and valves to list, most critical first.",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
    },
    "outputs": report_output(
        "network_version, segments, valves, segments_by_full_analysis, customers_cut_distribution {median, "
        "p95, max}, top_segments [{example_pipe, pipes, length_m, valves_to_close, customers_cut}], "
        "top_valves [{valve, pipe, extra_customers_if_it_fails, bound}]."),
    "example": {"inputs": {"top": 10}},
}


class CriticalityProcessor(QiwangProcessor):
    """criticality: network_analysis.criticality.criticality_report over OGC API Processes."""

    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, PROCESS_METADATA)

    def run(self, inputs: dict) -> dict:
        return criticality_report(topologies.get(self.engine), inputs["top"])
