"""The errors a user is meant to read: one small family, raised where the problem is known.

Every layer raises these; the surfaces translate them once each: the CLI prints ``str(exc)`` as one
line (app/cli/main.py), HTTP answers with the status and OGC exception code of the class and a JSON
body (app/http_errors.py), and the OGC processes name ``exc.field`` as the input at fault
(app/processes/base.py). Nothing parses the message text to find out what went wrong.

=====================  ==========  =======================  ==========================================
class                  HTTP        OGC exception code       when
=====================  ==========  =======================  ==========================================
QiwangError            400         InvalidParameterValue    a failure the user can act on (the base)
InvalidInput           400         InvalidParameterValue    a value given by the caller is wrong
Unauthenticated        401         Unauthorized             no credentials, or wrong ones
Forbidden              403         Forbidden                known, but the account may not do this
NotFound               404         NotFound                 the thing asked for does not exist
Conflict               409         Conflict                 valid, but not in the current state
Unavailable            503         ServiceUnavailable       the server's side is away or too busy
=====================  ==========  =======================  ==========================================
"""

from __future__ import annotations


class QiwangError(Exception):
    """A failure the user can act on; the CLI shows str() as one line, without a traceback.

    Raise it with a message that says what failed and where to look (a log file, a command).
    Prefer a subclass when the kind of failure is known.
    """

    http_status = 400
    ogc_code = "InvalidParameterValue"

    def __str__(self) -> str:
        return " ".join(super().__str__().split())


class InvalidInput(QiwangError):
    """A value given by the caller is wrong: `field` names it (an option, an input, a column).

    Parameters
    ----------
    field
        The caller's name for the value at fault: the analysis's parameter name (``pipe``,
        ``failed_valves``, ``crs``), a query parameter, a JSON field. None when no single value is.
    reason
        What is wrong with it, for people (``no pipe with code P9``).

    ``str(exc)`` is ``"{field}: {reason}"``; surfaces that call the field something else (an OGC
    process input, a CLI option) read `field` and `reason` and word the line themselves.
    """

    def __init__(self, field: str | None, reason: str) -> None:
        self.field = field
        self.reason = " ".join(reason.split())
        super().__init__(f"{field}: {self.reason}" if field else self.reason)


class Unauthenticated(QiwangError):
    """No credentials, or wrong ones (a bad password, an expired or revoked token, an ended session).

    The message says which, for the person signing in; HTTP adds the ``WWW-Authenticate`` challenge.
    """

    http_status = 401
    ogc_code = "Unauthorized"


class Forbidden(QiwangError):
    """The account is known but may not do this (its roles, its scope, a password to change first)."""

    http_status = 403
    ogc_code = "Forbidden"


class NotFound(QiwangError):
    """The thing asked for (an incident, an alarm, a collection, a job) does not exist."""

    http_status = 404
    ogc_code = "NotFound"


class Conflict(QiwangError):
    """The request is valid but the current state forbids it (an alarm already closed)."""

    http_status = 409
    ogc_code = "Conflict"


class Unavailable(QiwangError):
    """The server's side cannot answer now: the database away, a statement timeout, a broker down."""

    http_status = 503
    ogc_code = "ServiceUnavailable"
