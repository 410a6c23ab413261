"""KML and DXF export of the demo city, read back with pyogrio (GDAL) and ezdxf.

The demo city is exported once per format (module fixtures); coordinates are checked against the
database's own geometry transformed independently with pyproj, not against the exporter's SQL.
"""
from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import ezdxf
import numpy as np
import pyogrio
import pytest
import shapely
import sqlalchemy as sa
from ezdxf.entities import DXFGraphic
from pyproj import Transformer

from accounts.personal_data import PERSONAL_COLUMNS, decrypt, load_keyring, sealed_column
from core.errors import QiwangError
from ingest.exporter import DEFAULT_LAYERS, DXF_APPID, DXF_LAYERS, DXF_PRESSURE_STYLE, ExportResult, export

ROOT = Path(__file__).resolve().parent.parent
KML_NS = {"kml": "http://www.opengis.net/kml/2.2"}
PIPE_LAYERS = {"管道_低压", "管道_中压", "管道_次高压", "管道_高压", "管道_超高压"}  # dt_pipe_pressure_type labels


def rows(engine: sa.Engine, query: str, **params: object) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.text(query), params).all()


def counts(engine: sa.Engine) -> dict[str, int]:
    return {layer: rows(engine, f"SELECT count(*) FROM {layer}")[0][0] for layer in DEFAULT_LAYERS}


@pytest.fixture(scope="module")
def known_pipe(engine: sa.Engine) -> tuple[str, str, np.ndarray]:
    """(code, pressure class label, vertices x/y/z in EPSG:4550) of a medium-pressure pipe."""
    code, label, wkb = rows(engine, """
        SELECT p.code, d.label_zh, ST_AsBinary(p.geom) FROM pipe p
        JOIN dict.dt_pipe_pressure_type d ON d.code = p.pressure_class
        WHERE p.pressure_class = 1 ORDER BY p.id LIMIT 1""")[0]
    return code, label, shapely.get_coordinates(shapely.from_wkb(bytes(wkb)), include_z=True)


@pytest.fixture(scope="module")
def personal(engine: sa.Engine) -> list[str]:
    """ID numbers and phone numbers of customer_personal, which no export may contain: in clear, as
    their sealed values open (the table holds them masked)."""
    columns = list(PERSONAL_COLUMNS["customer_personal"])
    found = rows(engine, f"SELECT {', '.join(sealed_column(c) for c in columns)} FROM customer_personal")
    keyring = load_keyring(create=False)
    values = {decrypt(keyring, blob, associated=f"customer_personal.{column}")
              for row in found for column, blob in zip(columns, row, strict=True) if blob is not None}
    assert all(re.fullmatch(r"1[3-9]\d{9}|\d{17}[\dX]", v) for v in values)
    return sorted(values)


def assert_no_personal_data(path: Path, personal: list[str]) -> None:
    """None of the values appears as a whole number anywhere in the file."""
    numbers = set(re.findall(r"\d+X?", path.read_text(encoding="utf-8")))
    assert len(personal) > 1000 and not numbers & set(personal)


# -- KML -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kml(engine: sa.Engine, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ExportResult]:
    out = tmp_path_factory.mktemp("kml") / "city.kml"
    return out, export(engine, out, "kml")


def test_kml_is_one_file_with_a_folder_per_layer(kml: tuple[Path, ExportResult], engine: sa.Engine) -> None:
    out, result = kml
    assert result.crs == "EPSG:4326" and result.paths == [out]
    assert [name for name, _ in pyogrio.list_layers(out)] == list(DEFAULT_LAYERS)
    assert result.counts == counts(engine)
    for layer in DEFAULT_LAYERS:
        assert pyogrio.read_info(out, layer=layer)["features"] == result.counts[layer]
    document = ET.parse(out).getroot().find("kml:Document", KML_NS)
    folders = document.findall("kml:Folder", KML_NS)
    assert [folder.findtext("kml:name", namespaces=KML_NS) for folder in folders] == list(DEFAULT_LAYERS)
    # valves have a `model` attribute: it stays data, it does not turn valves into 3D <Model>s
    assert not document.findall(".//kml:Model", KML_NS) and not document.findall(".//kml:altitudeMode", KML_NS)
    assert list(out.parent.iterdir()) == [out]  # no staging file left behind


def test_kml_pipe_is_lon_lat_with_z_and_labels(kml: tuple[Path, ExportResult], engine: sa.Engine,
                                               known_pipe: tuple[str, str, np.ndarray]) -> None:
    out, _ = kml
    code, label, vertices = known_pipe
    frame = pyogrio.read_dataframe(out, layer="pipe")
    pipe = frame[frame["code"] == code].iloc[0]
    got = shapely.get_coordinates(pipe.geometry, include_z=True)
    # CGCS2000 and WGS84 are one datum at this accuracy: PROJ's transformation is a null shift
    lon, lat, _ = Transformer.from_crs("EPSG:4550", "EPSG:4326", always_xy=True).transform(*vertices.T)
    np.testing.assert_allclose(got[:, 0], lon, rtol=0, atol=1e-7)
    np.testing.assert_allclose(got[:, 1], lat, rtol=0, atol=1e-7)
    np.testing.assert_allclose(got[:, 2], vertices[:, 2], rtol=0, atol=1e-6)  # 1985 heights, untouched
    assert pipe["Name"] == code  # the placemark's <name>, shown on the map
    assert pipe["pressure_class"] == 1 and pipe["pressure_class_label"] == label
    materials = dict(rows(engine, "SELECT code, label_zh FROM dict.dt_pipe_material"))
    assert (frame["material_label"] == frame["material"].map(materials)).all()
    valves = pyogrio.read_dataframe(out, layer="valve")
    assert valves["model"].notna().all() and (valves.geometry.geom_type == "Point").all()


def test_kml_has_no_personal_data(kml: tuple[Path, ExportResult], personal: list[str]) -> None:
    out, _ = kml
    assert_no_personal_data(out, personal)
    fields = set(pyogrio.read_info(out, layer="customer")["fields"])
    assert "address" in fields and not {"id_number", "contact_person", "contact_phone", "meter_reader_phone"} & fields


def test_kml_bbox_is_lon_lat(engine: sa.Engine, tmp_path: Path) -> None:
    bbox = (122.99, 41.10, 123.00, 41.11)
    result = export(engine, tmp_path / "part.kml", "kml", layers=["pipe", "valve"], bbox=",".join(map(str, bbox)))
    for layer in ("pipe", "valve"):
        expected = rows(engine, f"SELECT count(*) FROM {layer} WHERE geom && "
                                "ST_Transform(ST_MakeEnvelope(:a, :b, :c, :d, 4326), 4550)",
                        **dict(zip("abcd", bbox, strict=True)))
        assert result.counts[layer] == expected[0][0] > 0
    assert result.counts["pipe"] < rows(engine, "SELECT count(*) FROM pipe")[0][0]


# -- DXF -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dxf(engine: sa.Engine, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ExportResult]:
    out = tmp_path_factory.mktemp("dxf") / "city.dxf"
    return out, export(engine, out, "dxf")


def xdata_code(entity: DXFGraphic) -> str:
    """The feature code of the exporter's XDATA (table, enterprise_code, code)."""
    return entity.get_xdata(DXF_APPID)[2].value


def test_dxf_layers_colours_and_counts(dxf: tuple[Path, ExportResult], engine: sa.Engine) -> None:
    out, result = dxf
    doc = ezdxf.readfile(out)
    assert doc.dxfversion == "AC1024" and doc.units == ezdxf.units.M and not doc.audit().has_errors
    assert dict(doc.header.custom_vars) == {"CRS": "EPSG:4550", "Z": "管顶高程 m, 1985国家高程基准"}
    assert result.counts == counts(engine)
    names = {layer.dxf.name for layer in doc.layers}
    assert PIPE_LAYERS | {"阀门", "调压装置", "厂站", "管网哨兵"} <= names
    assert {name + "_注记" for name in PIPE_LAYERS} <= names
    colours = {label: DXF_PRESSURE_STYLE[code][0] for code, label in
               rows(engine, "SELECT code, label_zh FROM dict.dt_pipe_pressure_type")}
    assert {doc.layers.get(f"管道_{label}").color for label in colours} == {14, 1, 30, 5, 3}
    assert all(doc.layers.get(f"管道_{label}").color == colour for label, colour in colours.items())
    found = Counter((entity.dxftype(), entity.dxf.layer) for entity in doc.modelspace())
    for label, number in rows(engine, """SELECT d.label_zh, count(*) FROM pipe p
                                         JOIN dict.dt_pipe_pressure_type d ON d.code = p.pressure_class GROUP BY 1"""):
        assert found["POLYLINE", f"管道_{label}"] == found["TEXT", f"管道_{label}_注记"] == number
    for table in ("node", "valve", "station", "regulator", "sentry", "customer", "hazard"):
        layer = DXF_LAYERS[table][0]
        assert found["POINT", layer] == found["TEXT", f"{layer}_注记"] == result.counts[table] > 0
    assert found["LWPOLYLINE", "敏感场所"] == result.counts["sensitive_site"]
    assert {entity.dxf.layer for entity in doc.modelspace() if not entity.has_xdata(DXF_APPID)} == set()


def test_dxf_pipe_is_a_3d_polyline_in_the_storage_crs(dxf: tuple[Path, ExportResult],
                                                      known_pipe: tuple[str, str, np.ndarray]) -> None:
    out, _ = dxf
    code, label, vertices = known_pipe
    msp = ezdxf.readfile(out).modelspace()
    (line,) = [e for e in msp.query(f'POLYLINE[layer=="管道_{label}"]') if xdata_code(e) == code]
    assert line.is_3d_polyline
    np.testing.assert_allclose(np.array([tuple(v) for v in line.points()]), vertices, rtol=0, atol=1e-3)
    (text,) = [e for e in msp.query(f'TEXT[layer=="管道_{label}_注记"]') if xdata_code(e) == code]
    assert text.dxf.text == code and text.dxf.style == "QIWANG"
    middle = shapely.LineString(vertices).interpolate(0.5, normalized=True)
    # labelled at its middle
    assert shapely.Point(text.dxf.align_point.x, text.dxf.align_point.y).distance(middle) < 1e-6
    assert -90 < text.dxf.rotation <= 90  # upright, along the pipe


def test_dxf_is_readable_by_gdal_with_z(dxf: tuple[Path, ExportResult],
                                        known_pipe: tuple[str, str, np.ndarray]) -> None:
    """Other GIS tools read it through GDAL: 3D lines on the pressure-class layers."""
    out, result = dxf
    _, label, vertices = known_pipe
    pyogrio.set_gdal_config_options({"DXF_ENCODING": "UTF-8"})  # GDAL assumes ANSI_1252, R2010 is UTF-8
    try:
        frame = pyogrio.read_dataframe(out)
    finally:
        pyogrio.set_gdal_config_options({"DXF_ENCODING": None})
    pipes = frame[frame["Layer"].isin(PIPE_LAYERS)]
    assert len(pipes) == result.counts["pipe"] and shapely.has_z(pipes.geometry.to_numpy()).all()
    ours = [g for g in pipes[pipes["Layer"] == f"管道_{label}"].geometry
            if np.allclose(shapely.get_coordinates(g, include_z=True), vertices, rtol=0, atol=1e-3)]
    assert len(ours) == 1


def test_dxf_has_no_personal_data(dxf: tuple[Path, ExportResult], personal: list[str]) -> None:
    out, _ = dxf
    assert_no_personal_data(out, personal)


def test_dxf_other_crs_and_bbox(engine: sa.Engine, tmp_path: Path, known_pipe: tuple[str, str, np.ndarray]) -> None:
    """EPSG:4549 (CGCS2000 zone CM 120°E): coordinates as pyproj gives them, Z unchanged."""
    code, _, vertices = known_pipe
    x, y, _ = Transformer.from_crs("EPSG:4550", "EPSG:4549", always_xy=True).transform(*vertices.T)
    box = f"{x.min() - 1},{y.min() - 1},{x.max() + 1},{y.max() + 1}"
    result = export(engine, tmp_path / "part.dxf", "dxf", layers=["pipe"], crs="EPSG:4549", bbox=box)
    assert result.crs == "EPSG:4549" and 1 <= result.counts["pipe"] < 50
    msp = ezdxf.readfile(tmp_path / "part.dxf").modelspace()
    (line,) = [e for e in msp.query("POLYLINE") if xdata_code(e) == code]
    np.testing.assert_allclose(np.array([tuple(v) for v in line.points()]), np.column_stack([x, y, vertices[:, 2]]),
                               rtol=0, atol=1e-3)


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "crs", "message"), [
    ("kml", "EPSG:4550", "--crs EPSG:4550: KML is always EPSG:4326 (WGS84 lon/lat); leave --crs out"),
    ("dxf", "EPSG:4490", "--crs EPSG:4490: DXF needs a projected CRS in metres, e.g. EPSG:4550"),
])
def test_format_refuses_crs(fmt: str, crs: str, message: str, engine: sa.Engine, tmp_path: Path) -> None:
    with pytest.raises(QiwangError) as error:
        export(engine, tmp_path / f"x.{fmt}", fmt, crs=crs)
    assert str(error.value) == message and not list(tmp_path.iterdir())


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def cli(db_url: str) -> Run:
    """./qiwang against the demo city, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"DATABASE_URL": db_url}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(ROOT / "qiwang"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=300)
    return run


@pytest.mark.parametrize(("args", "error"), [
    (["--format", "kmz"], "invalid value for '--format': 'kmz' is not one of 'gpkg', 'shp', 'geojson', 'csv', "
                          "'kml', 'dxf' (see ./qiwang export --help)"),
    (["--format", "dxf", "--bbox", "1,2,3"], "--bbox 1,2,3: expected minx,miny,maxx,maxy (four numbers)"),
    (["--format", "kml", "--bbox", "1,2,3,x"], "--bbox 1,2,3,x: expected minx,miny,maxx,maxy (four numbers)"),
    (["--format", "kml", "--bbox", "nan,2,3,4"], "--bbox nan,2,3,4: expected minx,miny,maxx,maxy (four numbers)"),
])
def test_cli_bad_input_is_one_line(args: list[str], error: str, cli: Run, tmp_path: Path) -> None:
    done = cli("export", *args, str(tmp_path / "out"))
    assert done.returncode in (1, 2) and done.stderr.strip().splitlines() == [f"qiwang: error: {error}"]
    assert not list(tmp_path.iterdir())


def test_cli_exports_kml_and_dxf(cli: Run, tmp_path: Path) -> None:
    for fmt in ("kml", "dxf"):
        out = tmp_path / f"city.{fmt}"
        done = cli("export", "--format", fmt, "--layers", "pipe,valve", str(out))
        crs = "EPSG:4326" if fmt == "kml" else "EPSG:4550"
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1].endswith(f"features in 2 layers, {crs}: {out}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["city.dxf", "city.kml"]
