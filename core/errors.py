"""The one error type the user is meant to read."""


class QiwangError(Exception):
    """A failure the user can act on; the CLI shows str() as one line, without a traceback.

    Raise it with a message that says what failed and where to look (a log file, a command).
    """

    def __str__(self) -> str:
        return " ".join(super().__str__().split())
