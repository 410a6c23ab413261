"""pygeoapi feature provider for Qiwang's PostGIS tables (pygeoapi's plugin pattern).

pygeoapi instantiates a provider per request from the `providers` entry of a collection:

    {"type": "feature", "name": "spatial.ogc_provider.QiwangProvider",
     "data": {"database_url": "...", "collection": "pipes"}, "id_field": "code", ...}

The provider answers with the same SQL as the JSON fast path of app/ogc/features.py (spatial/features.py):
pygeoapi uses it for the HTML pages, the collection schema and anything else it asks of a provider.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import flask
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
    ProviderQueryError,
)

from core.crs import served_crs
from db.engine import get_engine
from spatial import features
from spatial.collections import Collection, describe


@functools.cache
def collections_of(database_url: str) -> dict[str, Collection]:
    """The published collections of a database, described once per process (the schema changes only
    by migration, and a migration restarts the server)."""
    with get_engine(database_url).connect() as conn:
        return describe(conn)


class QiwangProvider(BaseProvider):
    """One Qiwang collection (a PostGIS table) as a pygeoapi feature provider."""

    def __init__(self, provider_def: dict):
        super().__init__(provider_def)
        self.database_url: str = self.data["database_url"]
        self.collection: Collection = collections_of(self.database_url)[self.data["collection"]]
        self.id_field = self.collection.layer.id_column
        self.time_field = self.collection.time_column
        self.get_fields()

    def get_fields(self) -> dict[str, dict[str, Any]]:
        if not self._fields:
            for c in self.collection.columns:
                self._fields[c.name] = {"type": c.json_type, "title": c.description or c.name,
                                        **({"format": c.json_format} if c.json_format else {})}
        return self._fields

    def query(self, offset: int = 0, limit: int = 10, resulttype: str = "results", bbox: list | None = None,
              datetime_: str | None = None, properties: list | None = None, sortby: list | None = None,
              select_properties: list | None = None, skip_geometry: bool = False, q: str | None = None,
              filterq: Any = None, crs_transform_spec: Any = None, **kwargs: Any) -> dict:
        """pygeoapi's query interface (OFFSET paging: pygeoapi builds its own links)."""
        if filterq is not None:
            raise ProviderQueryError("use the filter parameter through /ogc (CQL2 text or JSON)")
        query = features.FeatureQuery(self.collection, limit=limit, offset=offset,
                                      properties=select_properties or None, skip_geometry=skip_geometry)
        if bbox:
            client = features.client_bbox(self.collection, flask.request.args) if flask.has_request_context() else None
            if client is not None:
                # The client's own bbox, not the one pygeoapi transformed with pyproj: that one is
                # not clipped to the storage CRS's area of use (a world box comes back infinite).
                query.bbox, query.bbox_crs = client
            else:  # pygeoapi has already transformed the bbox to the storage CRS.
                query.bbox, query.bbox_crs = tuple(bbox), served_crs(self.collection.srid)
        query.sortby = [(s["property"], s["order"] == "-") for s in sortby or []]
        query.equals = {k: str(v) for k, v in properties or []}
        with get_engine(self.database_url).connect() as conn:
            page = features.query_page(conn, query)
        collection = json.loads(f'{{"type": "FeatureCollection", "features": [{page.features_json}]}}')
        collection["numberReturned"] = page.number_returned
        if page.number_matched is not None:
            collection["numberMatched"] = page.number_matched
        if resulttype == "hits":
            collection["features"] = []
        return collection

    def get(self, identifier: Any, **kwargs: Any) -> dict:
        try:
            with get_engine(self.database_url).connect() as conn:
                text = features.query_one(conn, self.collection, str(identifier), served_crs("CRS84"))
        except features.QueryError as exc:
            raise ProviderInvalidQueryError(str(exc), user_msg=str(exc)) from None
        if text is None:
            raise ProviderItemNotFoundError(f"no {self.collection.id} feature {identifier}")
        return json.loads(text)

    def __repr__(self) -> str:
        return f"<QiwangProvider {self.collection.id}>"

