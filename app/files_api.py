"""Files over HTTP: layer exports and the QGIS project, made for the signed-in account.

    GET /api/exports/{format}?layers=pipe,valve&crs=EPSG:4490&bbox=minx,miny,maxx,maxy
        format: gpkg | kml | dxf (one file) or shp | geojson | csv (a zip of one file per layer);
        the layers of ingest.exporter (default: its DEFAULT_LAYERS); what the account's scope
        holds, personal data masked as everywhere.
    GET /qgis/project.qgs?collections=pipes,valves&authcfg=ID
        a QGIS project reading every layer from this server's OGC API (app.qgis_project); with
        `authcfg`, each layer names that QGIS authentication configuration (Basic, the account's
        name and password or API token), so QGIS signs in as the account.

The export runs as the account's database role (db/acting.py): row-level security cuts it to the
account's scope, as for the OGC API.
"""
from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import sqlalchemy as sa
from flask import Blueprint, Response, after_this_request, request, send_file

from core.errors import InvalidInput
from ingest import exporter

AUTHCFG = re.compile(r"^[A-Za-z0-9]{7}$")   # QGIS's authentication configuration ids


def files_blueprint(engine: sa.Engine, public_url: str) -> Blueprint:
    """The /api/exports and /qgis routes on `engine`'s database, for a server reached at `public_url`."""
    bp = Blueprint("files_api", __name__)

    @bp.get("/api/exports/<fmt>")
    def export(fmt: str) -> Response:
        if fmt not in exporter.FORMATS:
            raise InvalidInput("format", f"{fmt!r}: choose one of {', '.join(exporter.FORMATS)}")
        layers = [name.strip() for name in request.args.get("layers", "").split(",") if name.strip()] or None
        work = Path(tempfile.mkdtemp(prefix="qiwang-export-"))

        @after_this_request
        def clean(response: Response) -> Response:
            response.call_on_close(lambda: shutil.rmtree(work, ignore_errors=True))
            return response

        ext = exporter.FORMATS[fmt][1]
        single = fmt in exporter.SINGLE_FILE
        out = work / (f"qiwang{ext}" if single else "qiwang")
        # a bad layer, CRS or bbox: the exporter's QiwangError, answered 400 by the app
        exporter.export(engine, out, fmt, layers, request.args.get("crs"), request.args.get("bbox"))
        if single:
            return send_file(out, as_attachment=True, download_name=f"qiwang{ext}")
        archive = work / "qiwang.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(out.rglob("*")):
                if path.is_file():
                    z.write(path, path.relative_to(out))
        return send_file(archive, as_attachment=True, download_name=f"qiwang-{fmt}.zip")

    @bp.get("/qgis/project.qgs")
    def qgis_project() -> Response:
        from app.qgis_project import project_document, project_xml

        authcfg = request.args.get("authcfg")
        if authcfg is not None and not AUTHCFG.match(authcfg):
            raise InvalidInput("authcfg", f"{authcfg[:40]!r} is not a QGIS authentication configuration id "
                                          "(7 letters or digits)")
        wanted = [c.strip() for c in request.args.get("collections", "").split(",") if c.strip()] or None
        text = project_document(project_xml(public_url, wanted, authcfg=authcfg))
        return Response(text, mimetype="application/x-qgis-project",
                        headers={"Content-Disposition": 'attachment; filename="qiwang.qgs"'})

    return bp
