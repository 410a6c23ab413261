"""HTTP answers for errors: the OGC API exception body ({"code", "description"})."""

import json

from flask import Response


def error_response(status: int, code: str, description: str):
    """An HTTP error as JSON in the OGC API exception shape ({"code", "description"}, as pygeoapi's).

    `description` starts with the name of the parameter or field at fault where there is one.
    """
    return Response(json.dumps({"code": code, "description": description}, ensure_ascii=False), status,
                    mimetype="application/json")
