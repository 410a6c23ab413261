"""HTTP answers for errors: the OGC API exception body ({"code", "description"}, as pygeoapi's).

The one mapping from core.errors to HTTP: the class gives the status and the code, the message
gives the description (starting with the field at fault where there is one).
"""

from __future__ import annotations

import json

from flask import Response

from core.errors import QiwangError


def error_response(status: int, code: str, description: str) -> Response:
    """An HTTP error as JSON in the OGC API exception shape ({"code", "description"}).

    `description` starts with the name of the parameter or field at fault where there is one.
    """
    return Response(json.dumps({"code": code, "description": description}, ensure_ascii=False), status,
                    mimetype="application/json")


def response_for(exc: QiwangError) -> Response:
    """The HTTP answer for a Qiwang error: status and OGC code from its class (core.errors)."""
    return error_response(exc.http_status, exc.ogc_code, str(exc))
