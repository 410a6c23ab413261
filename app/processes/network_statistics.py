"""OGC API process `network-statistics`: pipe length by class, material, diameter, age, area (管网统计).

Wraps network_analysis.statistics.network_statistics.
"""
from __future__ import annotations

from app.processes.base import JOB_CONTROL, QiwangProcessor, report_output
from core.codes import ADMIN_CODE, ENTERPRISE_CODE
from network_analysis.statistics import network_statistics

PROCESS_METADATA = {
    "version": "1.0.0",
    "id": "network-statistics",
    "title": {"en": "Network statistics", "zh": "管网统计"},
    "description": {
        "en": "Pipe length (km) and counts by pressure class, material, diameter band, age band, district "
              "and enterprise, and the pipes older than 20 years; abandoned pipes left out. Optionally for "
              "one enterprise or one administrative division (with the divisions below it).",
        "zh": "按压力级制、管材、管径、管龄、行政区、企业统计管道长度。",
    },
    "jobControlOptions": JOB_CONTROL,
    "keywords": ["statistics", "pipe length", "统计"],
    "inputs": {
        "enterprise_code": {
            "title": "Enterprise",
            "description": "Only this enterprise's pipes (企业唯一编码, 10 digits).",
            "schema": ENTERPRISE_CODE.json_schema(),
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "admin_code": {
            "title": "Administrative division",
            "description": "Only the pipes of this division and the divisions below it (行政区划代码, 6 digits).",
            "schema": ADMIN_CODE.json_schema(),
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "as_of_year": {
            "title": "As of year",
            "description": "Count pipes built in or before this year, ages as of it (default: this year).",
            "schema": {"type": "integer", "minimum": 1900, "maximum": 2100},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
    },
    "outputs": report_output(
        "as_of_year, enterprise_code, admin_code, total {length_km, count}, by_pressure_class, by_material, "
        "by_diameter_band, by_age_band, by_district, by_enterprise, old_pipes {older_than_years, length_km, "
        "count, share, by_material}. Lengths are planar EPSG:4550 metres, given in km."),
    "example": {"inputs": {"admin_code": "210302"}},
}


class NetworkStatisticsProcessor(QiwangProcessor):
    """network-statistics: network_analysis.statistics.network_statistics over OGC API Processes."""

    def __init__(self, processor_def: dict) -> None:
        super().__init__(processor_def, PROCESS_METADATA)

    def run(self, inputs: dict) -> dict:
        with self.engine.connect() as conn:
            return network_statistics(conn, enterprise_code=inputs["enterprise_code"],
                                      admin_code=inputs["admin_code"], as_of_year=inputs["as_of_year"])
