"""The one error type the user is meant to read."""


class QiwangError(Exception):
    """A failure the user can act on; the CLI shows str() as one line, without a traceback.

    Raise it with a message that says what failed and where to look (a log file, a command).
    """

    def __str__(self) -> str:
        return " ".join(super().__str__().split())


def error_response(status: int, code: str, description: str):
    """An HTTP error as JSON in the OGC API exception shape ({"code", "description"}, as pygeoapi's).

    `description` starts with the name of the parameter or field at fault where there is one.
    """
    import json

    from flask import Response

    return Response(json.dumps({"code": code, "description": description}, ensure_ascii=False), status,
                    mimetype="application/json")
