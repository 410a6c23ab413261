"""CLI commands of the network analyses: burst, incident, criticality.

Added to the `qiwang` group (app.cli.root) when imported by app.cli.main; they print for people by
default and the fixed-key JSON of network_analysis.api with --json.
"""
from __future__ import annotations

import json

import click

from app.cli.common import options_named, ready_database
from app.cli.format import number, pad
from app.cli.root import cli
from emergency.states import INCIDENT_STATES, STARTING_STATES


def _xy(value: str, option: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not X,Y (two numbers separated by a comma)",
                                 param_hint=option) from None
    return x, y


def _engine():
    from db.engine import get_engine

    return get_engine(ready_database())


def _json(data: dict | list) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@cli.command()
@click.option("--pipe", "pipe", metavar="CODE", help="Burst in the middle of this pipe.")
@click.option("--at", "at", metavar="X,Y", help="Burst at this point (snapped to the nearest pipe, ≤ 50 m).")
@click.option("--crs", help="CRS of --at and --barrier, e.g. EPSG:4490 (x = longitude); default EPSG:4550.")
@click.option("--failed-valve", "failed", multiple=True, metavar="CODE", help="A valve that cannot be closed.")
@click.option("--barrier", "barriers", multiple=True, metavar="X,Y", help="A temporary squeeze-off point.")
@click.option("--geometry", is_flag=True, help="Add the outage area and GeoJSON features (CRS84).")
@click.option("--save", type=click.Choice(STARTING_STATES), help="Store the result as an incident.")
@click.option("--title", help="Title of the stored incident.")
@click.option("--json", "as_json", is_flag=True, help="Print the fixed-key JSON report.")
def burst(pipe: str | None, at: str | None, crs: str | None, failed: tuple[str, ...], barriers: tuple[str, ...],
          geometry: bool, save: str | None, title: str | None, as_json: bool) -> None:
    """Burst / valve isolation: valves to close, pipes and customers cut off."""
    from emergency.incidents import analyse_and_save

    if (pipe is None) == (at is None):
        raise click.UsageError("give --pipe CODE or --at X,Y")
    point = _xy(at, "--at") if at else None
    points = [_xy(b, "--barrier") for b in barriers]
    options = {"pipe": "--pipe", "point": "--at", "crs": "--crs", "failed_valves": "--failed-valve",
               "barriers": "--barrier", "save_as": "--save"}
    with options_named(options, {"--failed-valve": failed, "--barrier": barriers}):
        result = analyse_and_save(_engine(), save, title, pipe=pipe, point=point, crs=crs, failed_valves=failed,
                                  barriers=points, geometry=geometry)
    if as_json:
        _json(result)
        return
    b = result["burst"]
    click.echo(f"爆管 burst: pipe {b['pipe']} at {b['fraction']:.0%} ({b['point'][0]:.1f}, {b['point'][1]:.1f}) "
               f"— network version {result['network_version']}")
    to_close = [v for v in result["valves_to_close"] if not v["already_closed"]]
    click.echo(f"关阀 valves to close: {number(len(to_close))}")
    for v in result["valves_to_close"]:
        state = "already closed" if v["already_closed"] else "close"
        click.echo(f"  {v['code']:<12} {state:<15} on {v['pipe']:<12} ({v['x']:.1f}, {v['y']:.1f})")
    for barrier in result["barriers"]:
        click.echo(f"  barrier on {barrier['pipe']} at {barrier['fraction']:.0%}")
    click.echo(f"停气 isolated: {number(len(result['isolated_pipes']))} pipes, "
               f"{number(result['isolated_length_m'], 1)} m, "
               f"{number(result['isolated_volume_m3'], 1)} m³ of gas (standard conditions); "
               f"dry: {number(len(result['dry_pipes']))} pipes")
    customers = result["affected_customers"]
    by_type = ", ".join(f"{k} {number(n)}" for k, n in customers["by_type"].items())
    click.echo(f"用户 customers cut off: {number(customers['count'])}" + (f" ({by_type})" if by_type else ""))
    for site in result["sensitive_sites"]:
        why = " and ".join(w for w, on in (("in the outage area", site["in_outage_area"]),
                                            (f"within the {site['impact_radius_m']} m impact radius",
                                             site["in_impact_radius"])) if on)
        click.echo(f"敏感场所 {site['type']} {site['name']} ({site['code']}): {why}, {site['distance_m']} m")
    if result["second_ring"]:
        ring = result["second_ring"]
        click.echo(f"第二道关阀 second ring: {', '.join(ring['failed_valves'])} cannot be closed; "
                   f"close {', '.join(ring['added_valves']) or 'no other valve'} instead "
                   f"(+{number(len(ring['added_isolated_pipes']))} pipes)")
    if result["check_valves_holding"]:
        click.echo(f"止回阀 check valves holding: {', '.join(result['check_valves_holding'])}")
    if result["sources_to_shut"]:
        click.echo(f"气源 stations to shut: {', '.join(result['sources_to_shut'])}")
    if result["incident"]:
        click.echo(f"saved as incident {result['incident']}")


@cli.group()
def incident() -> None:
    """Stored burst analyses (incidents): list, show, change state."""


@incident.command("list")
@click.option("--state", type=click.Choice(INCIDENT_STATES))
@click.option("--json", "as_json", is_flag=True)
def incident_list(state: str | None, as_json: bool) -> None:
    from emergency.incidents import incidents

    rows = incidents(_engine(), state)
    if as_json:
        _json(rows)
        return
    for row in rows:
        click.echo(f"{row['code']}  {row['state']:<8} {row['created_at'][:16]}  {row['created_by']:<16} "
                   f"pipe {row['pipe']:<12} "
                   f"valves {number(row['valves_to_close']):>3}  customers {number(row['customers_out']):>6}  "
                   f"{row['title'] or ''}".rstrip())


@incident.command("show")
@click.argument("code")
def incident_show(code: str) -> None:
    from emergency.incidents import incident as get

    _json(get(_engine(), code))


@incident.command("state")
@click.argument("code")
@click.argument("state", type=click.Choice(INCIDENT_STATES))
def incident_state(code: str, state: str) -> None:
    """Move an incident forward: planned → active → closed."""
    from emergency.incidents import set_incident_state

    click.echo(f"{code}: {set_incident_state(_engine(), code, state)['state']}")


@cli.command()
@click.option("--top", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def criticality(top: int, as_json: bool) -> None:
    """Criticality of every valve segment and valve (customers cut off by a burst / a failed valve)."""
    from network_analysis.criticality import criticality_report
    from network_analysis.topology import topologies

    result = criticality_report(topologies.get(_engine()), top)
    if as_json:
        _json(result)
        return
    dist = result["customers_cut_distribution"]
    click.echo(f"{number(result['segments'])} valve segments, {number(result['valves'])} valves; customers cut off "
               f"by a burst: median {number(dist['median'], 0 if float(dist['median']).is_integer() else 1)}, "
               f"p95 {number(dist['p95'], 0 if float(dist['p95']).is_integer() else 1)}, max {number(dist['max'])}")
    click.echo("most critical segments (a pipe in it · pipes · length · valves to close · customers):")
    for s in result["top_segments"]:
        click.echo(f"  {s['example_pipe']:<12} {number(s['pipes']):>6} {number(s['length_m'], 1):>10} m "
                   f"{number(s['valves_to_close']):>4} {number(s['customers_cut']):>8}")
    click.echo("valves whose failure costs most (at least this many more customers):")
    for v in result["top_valves"]:
        click.echo(f"  {v['valve']:<12} on {v['pipe']:<12} +{number(v['extra_customers_if_it_fails'])}")



@cli.command()
@click.option("--tolerance", type=click.FloatRange(0, 100), default=0.5, show_default=True,
              help="Metres a valve may stand off its pipe.")
@click.option("--near-miss", type=click.FloatRange(0, 100), default=1.0, show_default=True,
              help="Metres within which an unconnected pipe end counts as a near miss.")
@click.option("--json", "as_json", is_flag=True)
def qa(tolerance: float, near_miss: float, as_json: bool) -> None:
    """Topology checks; findings are stored as features in topology_issue."""
    from network_analysis.qa import run_qa

    with options_named({"tolerance_m": "--tolerance", "near_miss_m": "--near-miss"}):
        result = run_qa(_engine(), tolerance_m=tolerance, near_miss_m=near_miss)
    if as_json:
        _json(result)
        return
    total = sum(result["counts"].values())
    click.echo(f"network version {result['network_version']}: {number(total)} findings (stored in topology_issue)")
    for kind, n in result["counts"].items():
        click.echo(f"  {pad(kind, 36)} {pad(number(n), 8, '>')}")
    for issue in result["issues"][:20]:
        click.echo(f"  {issue['kind']}: {issue['detail']}")


NEAR_SHOWN = 50  # features `near` lists by default
NEAR_ALL = 10_000  # features per layer of `near --json`: all within the largest radius allowed


@cli.command()
@click.option("--at", "at", required=True, metavar="X,Y", help="Centre of the search.")
@click.option("--radius", type=click.FloatRange(0, 5000, min_open=True), required=True, help="Radius in metres.")
@click.option("--crs", help="CRS of --at, e.g. EPSG:4490 (x = longitude); default EPSG:4550.")
@click.option("--limit", type=click.IntRange(1, 10000), default=None,
              help="Features to list, nearest first (default 50); with --json, features per layer (default all).")
@click.option("--json", "as_json", is_flag=True)
def near(at: str, radius: float, crs: str | None, limit: int | None, as_json: bool) -> None:
    """Pipes, devices, customers and sensitive sites within a radius, nearest first."""
    from network_analysis.radius import near as radius_query

    # Text lists the nearest `limit` overall, so no layer needs more than that many; JSON gives
    # every feature within the radius unless told otherwise.
    per_layer = limit or (NEAR_ALL if as_json else NEAR_SHOWN)
    with _engine().connect() as conn:
        x, y = _xy(at, "--at")
        with options_named({"point": "--at", "radius_m": "--radius", "crs": "--crs", "limit_per_layer": "--limit"}):
            result = radius_query(conn, x, y, radius, crs=crs, limit_per_layer=per_layer)
    if as_json:
        _json(result)
        return
    counts = ", ".join(f"{layer} {number(n)}" for layer, n in result["counts"].items() if n)
    click.echo(f"within {result['radius_m']:g} m of ({result['center'][0]:.1f}, {result['center'][1]:.1f}): "
               f"{counts or 'nothing'}")
    listed = result["features"][:limit or NEAR_SHOWN]
    for f in listed:
        click.echo(f"  {pad(number(f['distance_m'], 2), 8, '>')} m  {pad(f['layer'], 15)} {pad(f['code'], 14)} "
                   f"{f['name'] or ''}".rstrip())
    total = sum(result["counts"].values())
    if total > len(listed):
        click.echo(f"{number(len(listed))} of {number(total)} shown; --limit N / --json for all")


@cli.command()
@click.option("--enterprise", metavar="CODE", help="Only this enterprise (企业唯一编码).")
@click.option("--division", metavar="CODE", help="Only this administrative division and those below it.")
@click.option("--year", type=click.IntRange(1900, 2100), help="Ages as of this year (default: this year).")
@click.option("--json", "as_json", is_flag=True)
def stats(enterprise: str | None, division: str | None, year: int | None, as_json: bool) -> None:
    """Pipe length by pressure class, material, diameter, age, district, enterprise; old pipes."""
    from network_analysis.statistics import network_statistics

    options = {"enterprise_code": "--enterprise", "admin_code": "--division", "as_of_year": "--year"}
    with _engine().connect() as conn, options_named(options):
        result = network_statistics(conn, enterprise_code=enterprise, admin_code=division, as_of_year=year)
    if as_json:
        _json(result)
        return
    total = result["total"]
    click.echo(f"管道总长 total: {number(total['length_km'], 3)} km in {number(total['count'])} pipes "
               f"(ages as of {result['as_of_year']})")
    for key, title in (("by_pressure_class", "压力级制 pressure class"), ("by_material", "管材 material"),
                       ("by_diameter_band", "管径 diameter"), ("by_age_band", "管龄 age (years)"),
                       ("by_district", "行政区 district"), ("by_enterprise", "企业 enterprise")):
        click.echo(title)
        for row in result[key]:
            label = row.get("label") or row.get("band") or row.get("name")
            click.echo(f"  {pad(label, 28)} {pad(number(row['length_km'], 3), 12, '>')} km "
                       f"{pad(number(row['count']), 10, '>')}")
    old = result["old_pipes"]
    click.echo(f"超过 {old['older_than_years']} 年 older than {old['older_than_years']} years: "
               f"{number(old['length_km'], 3)} km ({old['share']:.1%})")
    for row in old["by_material"]:
        click.echo(f"  {pad(row['label'], 28)} {pad(number(row['length_km'], 3), 12, '>')} km "
                   f"{row['share']:>8.1%} of that material")


@cli.command()
@click.option("--from", "start", metavar="X,Y", help="Start point (default: the nearest crew base).")
@click.option("--to", "end", required=True, metavar="X,Y", help="The incident.")
@click.option("--crs", help="CRS of the points, e.g. EPSG:4490 (x = longitude); default EPSG:4550.")
@click.option("--json", "as_json", is_flag=True)
def route(start: str | None, end: str, crs: str | None, as_json: bool) -> None:
    """Fastest route by road to an incident, from a point or from the nearest crew base."""
    from network_analysis import routing

    engine = _engine()
    target = _xy(end, "--to")
    with options_named({"start": "--from", "end": "--to", "crs": "--crs"}):
        if start:
            result = routing.route(engine, _xy(start, "--from"), target, crs=crs)
            path = result
        else:
            result = routing.route_from_nearest_crew_base(engine, target, crs=crs)
            path = result["route"]
    if as_json:
        _json(result)
        return
    if not start:
        base = result["crew_base"]
        click.echo(f"抢修站 crew base: {base['name']} ({base['code']}, {base['phone']}, {base['crew_count']} crews)")
    click.echo(f"路线 route: {number(path['length_m'])} m, {path['minutes']} min by road "
               f"(+{path['access_m']['start']:.0f} m and {path['access_m']['end']:.0f} m off the road)")
    click.echo("  " + " → ".join(path["roads"]))
    for other in result.get("others", [])[:5]:
        click.echo(f"  next: {other.get('name', other.get('code'))} {other.get('minutes')} min")
