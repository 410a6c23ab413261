"""The burst report on the demo city: sensitive sites, outage area, GeoJSON, stored incidents."""
from __future__ import annotations

import pytest
import shapely
import sqlalchemy as sa

from conftest import scalar
from network_analysis.api import burst_analysis, incident, incidents, set_incident_state
from network_analysis.burst import AnalysisError


def school_feeder(engine: sa.Engine) -> tuple[str, str]:
    """(feeder pipe code, school code): the branch that feeds a school's regulator cabinet."""
    with engine.connect() as conn:
        return conn.execute(sa.text(
            """SELECT p.code, m.code FROM sentry s JOIN sensitive_site m ON m.id = s.sensitive_site_id
               JOIN pipe p ON p.id = s.pipe_id WHERE m.site_type = 10 ORDER BY m.id LIMIT 1""")).one()


def test_a_school_feeder_burst_puts_the_school_in_the_outage(engine: sa.Engine) -> None:
    feeder, school = school_feeder(engine)
    result = burst_analysis(engine, pipe=feeder)
    assert result["isolated_pipes"] == [feeder]  # valves at both ends of a branch
    assert len(result["valves_to_close"]) == 2
    assert len(result["dry_pipes"]) >= 10  # the school's yard network behind the cabinet
    sites = {s["code"]: s for s in result["sensitive_sites"]}
    assert sites[school]["in_outage_area"] is True and sites[school]["type"] == "学校"
    assert result["affected_customers"]["count"] == scalar(engine, """
        SELECT count(*) FROM customer c JOIN node n ON n.id = c.service_node_id
        WHERE n.id IN (SELECT to_node_id FROM pipe WHERE code = ANY(:dry))""", dry=result["dry_pipes"])
    assert result["outage_area"] is None and "features" not in result


def test_geometry_output_is_geojson_in_crs84(engine: sa.Engine) -> None:
    feeder, _ = school_feeder(engine)
    result = burst_analysis(engine, pipe=feeder, geometry=True)
    area = shapely.geometry.shape(result["outage_area"])
    assert area.geom_type in ("Polygon", "MultiPolygon") and area.is_valid
    lon, lat = area.centroid.x, area.centroid.y
    assert 122.9 < lon < 123.1 and 41.0 < lat < 41.2  # lon/lat order, in Anshan
    features = result["features"]
    assert [f["id"] for f in features["isolated_pipes"]["features"]] == result["isolated_pipes"]
    assert sorted(f["id"] for f in features["dry_pipes"]["features"]) == result["dry_pipes"]
    assert len(features["valves_to_close"]["features"]) == 2
    assert all(area.buffer(1e-6).contains(shapely.geometry.shape(f["geometry"]))
               for f in features["dry_pipes"]["features"])


def test_incidents_are_stored_recalled_and_move_forward_only(engine: sa.Engine) -> None:
    feeder, _ = school_feeder(engine)
    result = burst_analysis(engine, pipe=feeder, save_as="planned", title="演练: 学校支管爆管")
    code = result["incident"]
    assert code.startswith("SG")
    listed = {i["code"]: i for i in incidents(engine)}
    assert listed[code]["state"] == "planned" and listed[code]["pipe"] == feeder
    stored = incident(engine, code)
    assert stored["result"]["valves_to_close"] == result["valves_to_close"]
    assert stored["request"]["pipe"] == feeder
    assert scalar(engine, "SELECT ST_Area(outage_area) > 0 FROM incident WHERE code = :c", c=code)
    assert set_incident_state(engine, code, "active")["state"] == "active"
    assert set_incident_state(engine, code, "closed")["state"] == "closed"
    with pytest.raises(AnalysisError, match="cannot go back to planned"):
        set_incident_state(engine, code, "planned")
    with pytest.raises(AnalysisError, match="unknown incident 'SG999999'"):
        incident(engine, "SG999999")
