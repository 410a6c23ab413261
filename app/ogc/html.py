"""The OGC API's HTML pages offline: our copies of pygeoapi's templates, its static files, vendored assets.

pygeoapi 0.21's templates load Bootstrap, Leaflet, Leaflet.markercluster and Swagger UI from CDNs
(blank pages on a network without internet) and its static files from `{server.url}/static/`, which
pygeoapi's own Flask app serves but our /ogc blueprint did not. Here:

- `templates_config()` is pygeoapi's `server.templates`: our templates under app/templates/ogc/
  first (they point at the assets below), pygeoapi's own for every page we do not override;
- `static_file()` answers /ogc/static/…: pygeoapi's static files, and under vendor/ the npm
  packages of package.json (installed by ./qiwang) — nothing is fetched from elsewhere;
- `html_vocabulary()` gives the item tables their Chinese column names (the first word of the column
  comments, which are the queryables' titles) and the dictionary labels of coded columns, as
  config["qiwang_html"], read by templates/ogc/collections/items/.
"""
from __future__ import annotations

import re
from pathlib import Path

import pygeoapi
import sqlalchemy as sa

from db.engine import get_engine
from spatial.collections import Collection

APP_DIR = Path(__file__).resolve().parent.parent
ROOT = APP_DIR.parent
TEMPLATES_DIR = APP_DIR / "templates" / "ogc"
PYGEOAPI_STATIC = Path(pygeoapi.__file__).resolve().parent / "static"
NODE_MODULES = ROOT / "node_modules"
# /ogc/static/vendor/<name>/<file>: the folder of each vendored package that the templates load from.
VENDOR = {
    "bootstrap": NODE_MODULES / "bootstrap" / "dist" / "css",
    "leaflet": NODE_MODULES / "leaflet" / "dist",
    "leaflet.markercluster": NODE_MODULES / "leaflet.markercluster" / "dist",
    "swagger-ui-dist": NODE_MODULES / "swagger-ui-dist",
}
# Only what a browser loads: no package.json, READMEs or source maps of other files.
VENDOR_SUFFIXES = (".css", ".js", ".png", ".svg", ".map")

# "管道类型 trunk 输气干线/main 干管/…": a text column's allowed values with their labels.
_VALUE_LABELS = re.compile(r"^\S+\s+((?:[a-z_]+ [^\s/]+)(?:/[a-z_]+ [^\s/]+)+)\s*$")


def templates_config() -> dict[str, str]:
    """pygeoapi's `server.templates`: our template overrides, pygeoapi's static folder."""
    return {"path": str(TEMPLATES_DIR), "static": str(PYGEOAPI_STATIC)}


def static_file(path: str) -> tuple[Path, str] | None:
    """(folder, file name) to send for /ogc/static/<path>, or None when there is no such file."""
    parts = path.split("/")
    if ".." in parts or "" in parts:
        return None
    if parts[0] == "vendor" and len(parts) >= 3:
        folder = VENDOR.get(parts[1])
        name = "/".join(parts[2:])
        if folder is None or not name.endswith(VENDOR_SUFFIXES):
            return None
    else:
        folder, name = PYGEOAPI_STATIC, path
    return (folder, name) if (folder / name).is_file() else None


def column_title(description: str, name: str) -> str:
    """A column's Chinese name: the first word of its comment ("管径 DN (mm)" → "管径"), else its name."""
    return description.split()[0] if description.strip() else name


def value_labels(description: str) -> dict[str, str]:
    """Labels of a text column's values written in its comment: "类型 gate 闸阀/ball 球阀" → {gate: 闸阀, …}."""
    match = _VALUE_LABELS.match(description)
    if not match:
        return {}
    return dict(pair.split(" ", 1) for pair in match.group(1).split("/"))


def html_vocabulary(conn: sa.Connection, collections: dict[str, Collection]) -> list[list]:
    """Per collection: [id, [[column, 中文名], …], [[column, [[code, label], …]], …]] for the HTML pages.

    Pairs, not dicts: pygeoapi runs its config through l10n.translate_struct, which reads dict keys
    as language tags (a column named `id` would be Indonesian). The templates turn them into dicts.
    Codes are strings, as the templates print values. Dictionary labels come from the foreign keys
    into dict.* (appendix E), value labels of text columns from their comments.
    """
    coded = conn.execute(sa.text("""
        SELECT cl.relname, a.attname, ft.relname FROM pg_constraint k
        JOIN pg_class cl ON cl.oid = k.conrelid
        JOIN pg_class ft ON ft.oid = k.confrelid
        JOIN pg_namespace n ON n.oid = ft.relnamespace AND n.nspname = 'dict'
        JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
        WHERE k.contype = 'f' AND cardinality(k.conkey) = 1""")).all()
    dictionary_of = {(table, column): dictionary for table, column, dictionary in coded}
    labels_of: dict[str, dict[str, str]] = {}
    for dictionary, code, label in conn.execute(sa.text("SELECT dictionary, code, label_zh FROM dict.code")):
        labels_of.setdefault(dictionary, {})[str(code)] = label
    out = []
    for c in collections.values():
        labels = []
        for col in c.columns:
            dictionary = dictionary_of.get((c.layer.table, col.name))
            found = labels_of.get(dictionary, {}) if dictionary else value_labels(col.description)
            if found:
                labels.append([col.name, [list(pair) for pair in found.items()]])
        out.append([c.id, [[col.name, column_title(col.description, col.name)] for col in c.columns], labels])
    return out


def html_vocabulary_of(collections: dict[str, Collection], database_url: str) -> list[list]:
    """html_vocabulary() read once from the database at `database_url`."""
    with get_engine(database_url).connect() as conn:
        return html_vocabulary(conn, collections)
