"""ingest/datum.py: which transformation an import uses, its accuracy, and the refusal (issue 19).

Pure pyproj, no database. The Helmert pipelines are checked against an independent oracle: PROJ's
own ``+towgs84`` (position vector) on a BoundCRS of the same projection, to WGS 84, then WGS 84 to
CGCS2000 by PROJ's null (ballpark) offset: the two differ only by the WGS 84 / GRS80 ellipsoids in
the last geocentric-to-geographic step (≈ 0.1 mm here).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from pyproj import CRS, Transformer
from pyproj.transformer import TransformerGroup

from core.errors import InvalidInput, QiwangError
from ingest.datum import (
    WGS84_NOTE,
    Datum,
    DatumRefused,
    Helmert,
    _best,
    _grids_local,
    choose,
    for_local_grid,
    parse_datum_shift,
)
from ingest.local_grid import LocalGrid

pytestmark = pytest.mark.nodb

STORAGE = 4550
BEIJING_GK_123 = 2438  # Beijing 1954 / 3-degree Gauss-Kruger CM 123E (no zone prefix)
# a few points around Anshan, Beijing 1954 geographic (lon, lat)
LON = np.array([122.99, 123.05, 122.90, 123.20])
LAT = np.array([41.11, 41.15, 41.05, 41.20])
# the same CRSs written out as PROJ strings for the oracle (EPSG's definitions: Krassowsky 1940, IAG 1975)
BEIJING_GK_123_PROJ4 = "+proj=tmerc +lat_0=0 +lon_0=123 +k=1 +x_0=500000 +y_0=0 +ellps=krass +units=m +no_defs"
BEIJING_PROJ4 = "+proj=longlat +ellps=krass +no_defs"
XIAN_GK_123_PROJ4 = "+proj=tmerc +lat_0=0 +lon_0=123 +k=1 +x_0=500000 +y_0=0 +a=6378140 +rf=298.257 +units=m +no_defs"
SHIFT = "15.8,-154.4,-82.3,0.1,-0.2,0.3,1.5"  # rotations large enough that a sign error is metres

TAIL = ("refused: give the 7 parameters from {geodetic} to CGCS2000 with --datum-shift dx,dy,dz,rx,ry,rz,ds "
        "(or a local grid with --crs LOCAL:name), or accept the error with --accept-approximate-datum")
TARGET = "EPSG:4550 CGCS2000 / 3-degree Gauss-Kruger CM 123E"


def refusal(declared: str, datum: str, to: str, error: str) -> str:
    return (f"{declared}: pyproj's best transformation to {TARGET} is Ballpark geographic offset from {datum} "
            f"to China Geodetic Coordinate System 2000 (accuracy unknown); {error}; "
            + TAIL.format(geodetic=to))


def beijing_gk() -> tuple[np.ndarray, np.ndarray]:
    """The Anshan points in EPSG:2438 (a conversion on Krassowsky: exact)."""
    return Transformer.from_crs(CRS.from_epsg(4214), CRS.from_epsg(BEIJING_GK_123), always_xy=True).transform(LON, LAT)


def oracle(source_proj4: str, towgs84: tuple[float, ...], x: np.ndarray, y: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """PROJ's +towgs84 (position vector) to WGS 84, then WGS 84 → EPSG:4550 by the null offset."""
    bound = CRS(source_proj4 + " +towgs84=" + ",".join(repr(v) for v in towgs84))
    to_wgs84 = Transformer.from_crs(bound, CRS.from_epsg(4326), always_xy=True)
    assert "helmert" in to_wgs84.definition  # the oracle really applies the parameters
    lon, lat = to_wgs84.transform(x, y)
    return Transformer.from_crs(CRS.from_epsg(4326), CRS.from_epsg(STORAGE), always_xy=True).transform(lon, lat)


# -- refused -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("epsg", "declared", "datum", "error"), [
    (2435, "EPSG:2435 Beijing 1954 / 3-degree Gauss-Kruger CM 114E", "Beijing 1954",
     "expect errors of tens of metres, up to about 100 m"),
    (BEIJING_GK_123, "EPSG:2438 Beijing 1954 / 3-degree Gauss-Kruger CM 123E", "Beijing 1954",
     "expect errors of tens of metres, up to about 100 m"),
    (4214, "EPSG:4214 Beijing 1954", "Beijing 1954", "expect errors of tens of metres, up to about 100 m"),
    (2383, "EPSG:2383 Xian 1980 / 3-degree Gauss-Kruger CM 114E", "Xian 1980", "expect errors of a few metres"),
    (4610, "EPSG:4610 Xian 1980", "Xian 1980", "expect errors of a few metres"),
])
def test_beijing_and_xian_are_refused_with_the_way_out(epsg: int, declared: str, datum: str, error: str) -> None:
    with pytest.raises(DatumRefused) as caught:
        choose(CRS.from_epsg(epsg), STORAGE)
    assert str(caught.value) == refusal(declared, datum, datum, error)
    assert isinstance(caught.value, QiwangError)
    assert caught.value.accuracy_m is None
    assert caught.value.method == f"Ballpark geographic offset from {datum} to China Geodetic Coordinate System 2000"


def test_an_unknown_datum_is_refused_with_the_error_unknown() -> None:
    with pytest.raises(DatumRefused) as caught:
        choose(CRS.from_epsg(4937), STORAGE)  # ETRS89: no shift known to CGCS2000, no figure to give
    assert str(caught.value) == refusal("EPSG:4937 ETRS89", "ETRS89", "ETRS89",
                                        "the error is unknown (no shift between the datums is applied)")


def test_a_compound_crs_is_judged_by_its_horizontal_part() -> None:
    compound = CRS.from_user_input("EPSG:2438+5737")  # + Yellow Sea 1985 height
    with pytest.raises(DatumRefused) as caught:
        choose(compound, STORAGE)
    assert str(caught.value).startswith("Beijing 1954 / 3-degree Gauss-Kruger CM 123E + Yellow Sea 1985 height: "
                                        "pyproj's best transformation to ")
    assert caught.value.method == ("Ballpark geographic offset from Beijing 1954 to "
                                   "China Geodetic Coordinate System 2000")


# -- accepted as an approximation ----------------------------------------------------------------

@pytest.mark.parametrize("epsg", [2435, 2383, 4214, 4610])
def test_accept_approximate_gives_the_ballpark_marked_approximate(epsg: int) -> None:
    datum = choose(CRS.from_epsg(epsg), STORAGE, accept_approximate=True)
    assert (datum.approximate, datum.accuracy_m, datum.user_given) == (True, None, False)
    assert datum.method.startswith("Ballpark geographic offset from ")
    assert datum.describe().endswith("; accuracy unknown, accepted by --accept-approximate-datum")


def test_the_approximate_ballpark_keeps_latitude_and_longitude() -> None:
    """What --accept-approximate-datum does: Beijing 1954 lat/lon taken as CGCS2000 lat/lon."""
    datum = choose(CRS.from_epsg(4214), STORAGE, accept_approximate=True)
    x, y = datum.transformer.transform(LON, LAT)
    ex, ey = Transformer.from_crs(CRS.from_epsg(4490), CRS.from_epsg(STORAGE), always_xy=True).transform(LON, LAT)
    np.testing.assert_allclose(x, ex, atol=1e-6)
    np.testing.assert_allclose(y, ey, atol=1e-6)


def test_describe_and_record_of_an_approximate_datum() -> None:
    datum = choose(CRS.from_epsg(2435), STORAGE, accept_approximate=True)
    method = "Ballpark geographic offset from Beijing 1954 to China Geodetic Coordinate System 2000"
    assert datum.describe() == (f"EPSG:2435 (Beijing 1954 / 3-degree Gauss-Kruger CM 114E) → EPSG:4550 by {method}; "
                                "accuracy unknown, accepted by --accept-approximate-datum")
    record = json.loads(json.dumps(datum.record()))
    assert record == {
        "declared": "EPSG:2435 Beijing 1954 / 3-degree Gauss-Kruger CM 114E", "target": TARGET,
        "method": method, "accuracy_m": None, "approximate": True, "user_given": False, "note": "",
        "pipeline": "proj=pipeline step inv proj=tmerc lat_0=0 lon_0=114 k=1 x_0=500000 y_0=0 ellps=krass "
                    "step proj=tmerc lat_0=0 lon_0=123 k=1 x_0=500000 y_0=0 ellps=GRS80",
    }


# -- accepted: CGCS2000, WGS 84 ------------------------------------------------------------------

@pytest.mark.parametrize(("epsg", "method"), [
    (4490, "conversion only (Gauss-Kruger CM 123E)"),
    (4547, "conversion only (Inverse of 3-degree Gauss-Kruger CM 114E + Gauss-Kruger CM 123E)"),
    (4550, "no change (the same CRS)"),
])
def test_cgcs2000_is_a_conversion_of_accuracy_zero(epsg: int, method: str) -> None:
    datum = choose(CRS.from_epsg(epsg), STORAGE)
    assert (datum.accuracy_m, datum.approximate, datum.user_given, datum.method, datum.note) == (
        0.0, False, False, method, "")
    assert datum.describe().endswith(f"→ EPSG:4550 by {method}; accuracy 0 m")


@pytest.mark.parametrize(("source", "declared", "name"), [
    ("EPSG:4326", "EPSG:4326 WGS 84", "WGS 84"),
    ("OGC:CRS84", "WGS 84 (CRS84)", "WGS 84 (CRS84)"),
    ("EPSG:32651", "EPSG:32651 WGS 84 / UTM zone 51N", "WGS 84"),
    ("EPSG:9057", "EPSG:9057 WGS 84 (G1762)", "WGS 84 (G1762)"),
    ("EPSG:9989", "EPSG:9989 ITRF2020", "ITRF2020"),
])
def test_wgs84_is_accepted_as_a_null_shift_of_one_metre(source: str, declared: str, name: str) -> None:
    datum = choose(CRS.from_user_input(source), STORAGE)
    assert (datum.accuracy_m, datum.approximate, datum.user_given, datum.note) == (1.0, False, False, WGS84_NOTE)
    assert datum.declared == declared
    method = f"null shift: {name} latitude and longitude taken as CGCS2000's"
    assert datum.method == method
    assert datum.describe().endswith(f"→ EPSG:4550 by {method}; accuracy 1 m: {WGS84_NOTE}")
    assert "realisation accuracy" in WGS84_NOTE and "plate motion" in WGS84_NOTE


def test_the_wgs84_null_shift_is_what_proj_places_for_cgcs2000_lat_lon() -> None:
    datum = choose(CRS.from_epsg(32651), STORAGE)
    ux, uy = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_epsg(32651), always_xy=True).transform(LON, LAT)
    x, y = datum.transformer.transform(ux, uy)
    ex, ey = Transformer.from_crs(CRS.from_epsg(4490), CRS.from_epsg(STORAGE), always_xy=True).transform(LON, LAT)
    np.testing.assert_allclose(x, ex, atol=1e-6)
    np.testing.assert_allclose(y, ey, atol=1e-6)


def test_the_wgs84_rule_is_for_a_cgcs2000_target_only() -> None:
    with pytest.raises(DatumRefused, match=r"^EPSG:4326 WGS 84: pyproj's best transformation to EPSG:2435 "):
        choose(CRS.from_epsg(4326), 2435)


# -- a Helmert given by the user -----------------------------------------------------------------

def test_a_coordinate_frame_helmert_agrees_with_the_towgs84_oracle() -> None:
    x, y = beijing_gk()
    datum = choose(CRS.from_epsg(BEIJING_GK_123), STORAGE, parse_datum_shift(SHIFT))
    got = datum.transformer.transform(x, y)
    # +towgs84 is position vector: a coordinate-frame set is given with its rotations' signs flipped
    want = oracle(BEIJING_GK_123_PROJ4, (15.8, -154.4, -82.3, -0.1, 0.2, -0.3, 1.5), x, y)
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)
    # the convention matters: read as position vector, the same numbers land metres away
    unflipped = oracle(BEIJING_GK_123_PROJ4, (15.8, -154.4, -82.3, 0.1, -0.2, 0.3, 1.5), x, y)
    assert np.hypot(got[0] - unflipped[0], got[1] - unflipped[1]).min() > 5.0


def test_a_position_vector_helmert_agrees_with_the_towgs84_oracle() -> None:
    x, y = beijing_gk()
    datum = choose(CRS.from_epsg(BEIJING_GK_123), STORAGE, parse_datum_shift(SHIFT + ",position_vector"))
    want = oracle(BEIJING_GK_123_PROJ4, (15.8, -154.4, -82.3, 0.1, -0.2, 0.3, 1.5), x, y)
    np.testing.assert_allclose(datum.transformer.transform(x, y), want, atol=1e-3, rtol=0)


def test_a_helmert_from_a_geographic_source_takes_lon_lat() -> None:
    datum = choose(CRS.from_epsg(4214), STORAGE, parse_datum_shift(SHIFT))
    got = datum.transformer.transform(LON, LAT)
    want = oracle(BEIJING_PROJ4, (15.8, -154.4, -82.3, -0.1, 0.2, -0.3, 1.5), LON, LAT)
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)
    # and the same place as from the projected source
    x, y = beijing_gk()
    projected = choose(CRS.from_epsg(BEIJING_GK_123), STORAGE, parse_datum_shift(SHIFT)).transformer.transform(x, y)
    np.testing.assert_allclose(got, projected, atol=1e-3, rtol=0)


def test_a_helmert_from_another_zone_and_xian_1980() -> None:
    x, y = Transformer.from_crs(CRS.from_epsg(4610), CRS.from_epsg(2386), always_xy=True).transform(LON, LAT)
    shift = "24.0,-123.0,-94.0,0.02,-0.25,-0.13,1.1"
    got = choose(CRS.from_epsg(2386), STORAGE, parse_datum_shift(shift)).transformer.transform(x, y)
    want = oracle(XIAN_GK_123_PROJ4, (24.0, -123.0, -94.0, -0.02, 0.25, 0.13, 1.1), x, y)
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)


def test_heights_pass_through_a_helmert_unchanged() -> None:
    x, y = beijing_gk()
    z = np.array([12.5, 40.0, 0.0, 300.0])
    datum = choose(CRS.from_epsg(BEIJING_GK_123), STORAGE, parse_datum_shift(SHIFT))
    gx, gy, gz = datum.transformer.transform(x, y, z)
    np.testing.assert_array_equal(gz, z)
    # the shift is applied at the point's height: rotations and scale move it ≈ 1 mm per 100 m of height
    np.testing.assert_allclose((gx, gy), datum.transformer.transform(x, y), atol=5e-3, rtol=0)


def test_the_zero_helmert_is_not_the_identity_the_ellipsoid_changes() -> None:
    """All seven parameters 0: the same geocentric point, read on GRS80 instead of Krassowsky (a
    108 m smaller semi-major axis, another flattening), is not the ballpark's same latitude and
    longitude: 2.68 m further north here. Checked against the ellipsoid change written out in NumPy."""
    x, y = beijing_gk()
    zero = choose(CRS.from_epsg(BEIJING_GK_123), STORAGE, Helmert(0, 0, 0, 0, 0, 0, 0))
    zx, zy = zero.transformer.transform(x, y)
    bx, by = choose(CRS.from_epsg(BEIJING_GK_123), STORAGE, accept_approximate=True).transformer.transform(x, y)
    np.testing.assert_allclose(zy - by, 2.679, atol=0.002, rtol=0)  # ≈ 2.68 m north at 41°N
    np.testing.assert_allclose(zx - bx, 0.0, atol=0.01, rtol=0)

    def cartesian(lon: np.ndarray, lat: np.ndarray, a: float, rf: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        e2 = (2 - 1 / rf) / rf
        phi, lam = np.radians(lat), np.radians(lon)
        n = a / np.sqrt(1 - e2 * np.sin(phi) ** 2)
        return n * np.cos(phi) * np.cos(lam), n * np.cos(phi) * np.sin(lam), n * (1 - e2) * np.sin(phi)

    def geographic(cx: np.ndarray, cy: np.ndarray, cz: np.ndarray, a: float, rf: float) -> tuple[np.ndarray, ...]:
        e2 = (2 - 1 / rf) / rf
        p = np.hypot(cx, cy)
        phi = np.arctan2(cz, p * (1 - e2))
        for _ in range(10):
            n = a / np.sqrt(1 - e2 * np.sin(phi) ** 2)
            phi = np.arctan2(cz, p * (1 - e2 * n / (n + p / np.cos(phi) - n)))
        return np.degrees(np.arctan2(cy, cx)), np.degrees(phi)

    lon, lat = geographic(*cartesian(LON, LAT, 6378245.0, 298.3), 6378137.0, 298.257222101)
    ex, ey = Transformer.from_crs(CRS.from_epsg(4490), CRS.from_epsg(STORAGE), always_xy=True).transform(lon, lat)
    np.testing.assert_allclose((zx, zy), (ex, ey), atol=1e-3, rtol=0)


def test_a_user_helmert_is_described_and_recorded() -> None:
    datum = choose(CRS.from_epsg(2435), STORAGE, parse_datum_shift(SHIFT), accept_approximate=True)
    method = ("7-parameter Helmert given by --datum-shift (coordinate frame): dx=15.8 m, dy=-154.4 m, dz=-82.3 m, "
              "rx=0.1″, ry=-0.2″, rz=0.3″, ds=1.5 ppm")
    assert (datum.method, datum.accuracy_m, datum.approximate, datum.user_given) == (method, None, False, True)
    assert datum.describe() == (f"EPSG:2435 (Beijing 1954 / 3-degree Gauss-Kruger CM 114E) → EPSG:4550 by {method}; "
                                "accuracy: as the parameters' source states")
    record = json.loads(json.dumps(datum.record()))
    assert record["user_given"] is True and record["accuracy_m"] is None
    assert "proj=helmert x=15.8 y=-154.4 z=-82.3 rx=0.1 ry=-0.2 rz=0.3 s=1.5 convention=coordinate_frame" in (
        record["pipeline"])
    assert "proj=cart a=6378245.0 rf=298.3" in record["pipeline"]
    assert "inv proj=cart a=6378137.0 rf=298.257222101" in record["pipeline"]


@pytest.mark.parametrize(("epsg", "declared"), [
    (4547, "EPSG:4547 CGCS2000 / 3-degree Gauss-Kruger CM 114E"),
    (4490, "EPSG:4490 China Geodetic Coordinate System 2000"),
])
def test_a_helmert_from_cgcs2000_is_refused_nothing_to_shift(epsg: int, declared: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        choose(CRS.from_epsg(epsg), STORAGE, parse_datum_shift(SHIFT))
    assert caught.value.field == "--datum-shift"
    assert str(caught.value) == f"--datum-shift: {declared} is CGCS2000 already: nothing to shift"


def test_a_helmert_from_a_geocentric_crs_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        choose(CRS.from_epsg(4978), STORAGE, parse_datum_shift(SHIFT))
    assert str(caught.value) == ("--datum-shift: EPSG:4978 WGS 84 is neither geographic nor projected: "
                                 "there is no ellipsoid to shift from")


def test_two_million_points_go_through_in_one_vectorised_call() -> None:
    datum = choose(CRS.from_epsg(BEIJING_GK_123), STORAGE, parse_datum_shift(SHIFT))
    rng = np.random.default_rng(19)
    x, y = rng.uniform(450_000, 550_000, 2_000_000), rng.uniform(4_500_000, 4_600_000, 2_000_000)
    gx, gy = datum.transformer.transform(x, y)
    assert isinstance(gx, np.ndarray) and gx.shape == x.shape and np.isfinite(gy).all()


# -- a local grid --------------------------------------------------------------------------------

def test_a_local_grid_onto_cgcs2000_is_user_given() -> None:
    grid = LocalGrid("anshan", CRS.from_epsg(STORAGE), 500_000.0, 4_550_000.0, 1.5, 2.0)
    datum = for_local_grid(grid, STORAGE)
    assert (datum.declared, datum.user_given, datum.approximate, datum.accuracy_m) == (
        "local grid anshan", True, False, None)
    assert datum.method == f"{grid.describe()}, then no change (the same CRS)"
    assert datum.describe() == (f"local grid anshan → EPSG:4550 by {grid.describe()}, then no change (the same CRS); "
                                "accuracy: as the parameters' source states")
    assert choose(grid.target, STORAGE).accuracy_m == 0.0
    onto_114 = for_local_grid(LocalGrid("far", CRS.from_epsg(4547), 0.0, 0.0, 0.0, 0.0), STORAGE)
    assert onto_114.method.endswith("then conversion only (Inverse of 3-degree Gauss-Kruger CM 114E + "
                                    "Gauss-Kruger CM 123E)")


def test_a_local_grid_onto_beijing_1954_is_refused() -> None:
    grid = LocalGrid("old", CRS.from_epsg(BEIJING_GK_123), 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(DatumRefused, match=r"^EPSG:2438 Beijing 1954 / 3-degree Gauss-Kruger CM 123E: pyproj's best"):
        for_local_grid(grid, STORAGE)
    assert for_local_grid(grid, STORAGE, accept_approximate=True).approximate is True


# -- nothing downloads ---------------------------------------------------------------------------

def test_operations_with_missing_grids_are_skipped() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Best transformation is not available…"
        group = TransformerGroup(CRS.from_epsg(4267), CRS.from_epsg(4269), always_xy=True)
    if not group.unavailable_operations:
        pytest.skip("the NAD27 → NAD83 grids are installed here: nothing to skip")
    best = _best(CRS.from_epsg(4267), CRS.from_epsg(4269))
    assert best is not None and best.description.count("Ballpark geographic offset from NAD27 to NAD83") == 1


def test_a_definition_naming_a_grid_not_on_disk_is_not_local(tmp_path: Path) -> None:
    assert _grids_local("proj=pipeline step proj=tmerc lon_0=123 ellps=GRS80")
    assert not _grids_local("proj=pipeline step proj=hgridshift grids=us_noaa_conus.tif")
    assert not _grids_local("proj=hgridshift grids=@us_noaa_conus.tif,@null")
    grid = tmp_path / "local.tif"
    grid.write_bytes(b"")
    assert _grids_local(f"proj=hgridshift grids=@{grid},@null")


# -- parsing --datum-shift -----------------------------------------------------------------------

def test_parse_datum_shift_reads_seven_numbers_and_a_convention() -> None:
    assert parse_datum_shift(" 15.8, -154.4 ,-82.3,0.1,-0.2,0.3,1.5") == Helmert(
        15.8, -154.4, -82.3, 0.1, -0.2, 0.3, 1.5, "coordinate_frame")
    assert parse_datum_shift("1,2,3,0,0,0,0,position_vector").convention == "position_vector"
    assert parse_datum_shift("1,2,3,0,0,0,0, Coordinate_Frame").convention == "coordinate_frame"
    assert parse_datum_shift("-1000,1000,0,-60,60,0,-1000").values() == (-1000, 1000, 0, -60, 60, 0, -1000)


@pytest.mark.parametrize(("text", "reason"), [
    ("1,2,3", "give 7 numbers dx,dy,dz,rx,ry,rz,ds (m, arc-seconds, ppm), optionally followed by ,coordinate_frame "
              "or ,position_vector; got 3"),
    ("1,2,3,4,5,6,7,8", "give 7 numbers dx,dy,dz,rx,ry,rz,ds (m, arc-seconds, ppm), optionally followed by "
                        ",coordinate_frame or ,position_vector; got 8"),
    ("", "give 7 numbers dx,dy,dz,rx,ry,rz,ds (m, arc-seconds, ppm), optionally followed by ,coordinate_frame "
         "or ,position_vector; got 1"),
    ("1,2,3,0,0,0,0,bursa_wolf", "unknown convention 'bursa_wolf': coordinate_frame or position_vector"),
    ("1,x2,3,0,0,0,0", "dy 'x2' is not a number"),
    ("1,2,3,0,0,0,", "ds '' is not a number"),
    ("1,2,3,nan,0,0,0", "rx 'nan' is not a finite number"),
    ("1,2,inf,0,0,0,0", "dz 'inf' is not a finite number"),
    ("1,2,-1000.5,0,0,0,0", "dz=-1000.5 m: a translation over 1,000 m is implausible for a datum shift "
                            "(metres expected)"),
    ("1,2,3,0,0,61,0", "rz=61″: a rotation over 60″ is implausible for a datum shift (arc-seconds expected)"),
    ("1,2,3,0,0,0,1000.0000012", "ds=1000.000001 ppm: a scale over 1,000 ppm is implausible for a datum shift "
                                 "(parts per million expected: 1.2 for a factor 1.0000012)"),
])
def test_parse_datum_shift_errors(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_datum_shift(text)
    assert caught.value.field == "--datum-shift"
    assert caught.value.reason == reason


def test_datum_is_frozen() -> None:
    datum = choose(CRS.from_epsg(4490), STORAGE)
    assert isinstance(datum, Datum)
    with pytest.raises(AttributeError):
        datum.accuracy_m = 5.0  # type: ignore[misc]
