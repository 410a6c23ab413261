"""OGC API process `network-statistics`: pipe length by class, material, diameter, age, area (管网统计).

Wraps network_analysis.statistics.network_statistics.
"""
from __future__ import annotations

from app.processes.base import QiwangProcessor, process_metadata, value_input
from core.codes import ADMIN_CODE, ENTERPRISE_CODE
from network_analysis.statistics import network_statistics

PROCESS_METADATA = process_metadata(
    "network-statistics",
    inputs={
        "enterprise_code": value_input(
            "Enterprise", "Only this enterprise's pipes (企业唯一编码, 10 digits).",
            ENTERPRISE_CODE.json_schema()),
        "admin_code": value_input(
            "Administrative division",
            "Only the pipes of this division and the divisions below it (行政区划代码, 6 digits).",
            ADMIN_CODE.json_schema()),
        "as_of_year": value_input(
            "As of year", "Count pipes built in or before this year, ages as of it (default: this year).",
            {"type": "integer", "minimum": 1900, "maximum": 2100}),
    },
    example={"admin_code": "210302"},
)


class NetworkStatisticsProcessor(QiwangProcessor):
    """network-statistics: network_analysis.statistics.network_statistics over OGC API Processes."""

    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, PROCESS_METADATA)

    def run(self, inputs: dict) -> dict:
        with self.engine.connect() as conn:
            return network_statistics(conn, enterprise_code=inputs["enterprise_code"],
                                      admin_code=inputs["admin_code"], as_of_year=inputs["as_of_year"])
