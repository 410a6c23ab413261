"""The analyses as OGC API Processes (pygeoapi process plugins) and the job manager that keeps
asynchronous jobs in the Qiwang database.

The OGC API blueprint puts `process_resources(url)` into pygeoapi's `resources` and
`manager_definition(url, output_dir)` as `server.manager`.
"""
from __future__ import annotations

from pathlib import Path

# process id → processor class, as the dotted path pygeoapi's plugin loader imports
PROCESSES: dict[str, str] = {
    "burst-analysis": "app.processes.burst_analysis.BurstAnalysisProcessor",
    "criticality": "app.processes.criticality.CriticalityProcessor",
    "radius-query": "app.processes.radius_query.RadiusQueryProcessor",
    "route": "app.processes.route.RouteProcessor",
    "topology-check": "app.processes.topology_check.TopologyCheckProcessor",
    "network-statistics": "app.processes.network_statistics.NetworkStatisticsProcessor",
}

JOB_MANAGER = "app.processes.jobs.QiwangJobManager"


def process_resources(database_url: str) -> dict[str, dict]:
    """pygeoapi `resources` entries of every process, each run against `database_url` (SQLAlchemy URL)."""
    return {pid: {"type": "process", "processor": {"name": name, "database_url": database_url}}
            for pid, name in PROCESSES.items()}


def manager_definition(database_url: str, output_dir: Path) -> dict:
    """pygeoapi `server.manager`: jobs in the `jobs` table of `database_url`, results as JSON files
    in `output_dir` (created when missing)."""
    return {"name": JOB_MANAGER, "connection": database_url, "output_dir": str(output_dir)}
