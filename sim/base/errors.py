"""Errors a user can fix: each names the file, the field and what is allowed."""

ECHO_LIMIT = 200
"""At most this many characters of a bad value (or of a field name) appear in an error line."""

MESSAGE_LIMIT = 2 * ECHO_LIMIT + 200
"""A message holds at most one echoed value and the words around it (the rule, the allowed values)."""


def shorten(text: object, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut to at most ``limit`` characters, ending in '…' when cut: a value of a megabyte
    echoed in an error line would bury the line."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def did_you_mean(word: str, allowed) -> str:
    """'did you mean X? ' for the allowed name closest to a misspelt ``word`` (if any is close), else ''."""
    import difflib

    close = difflib.get_close_matches(word, list(allowed), n=1, cutoff=0.8)
    return f"did you mean {close[0]}? " if close else ""


class BordersimError(Exception):
    """A problem with the user's input, reported as one line and exit code 2."""

    def __init__(self, file: str | None, field: str | None, message: str):
        self.file = file
        self.field = field
        self.message = message
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """'file: field: message' on one line; the field and the message are cut to a readable
        length (values echoed in messages are cut where they are written, see ``shorten``)."""
        field = shorten(self.field) if self.field else None
        parts = [p for p in (self.file, field) if p]
        where = ": ".join(parts)
        message = shorten(self.message, MESSAGE_LIMIT)
        text = f"{where}: {message}" if where else message
        return " ".join(text.split())


class ScenarioError(BordersimError):
    """A scenario file that cannot be loaded or validated."""


class OverloadError(BordersimError):
    """Demand that exceeds capacity over the whole horizon."""


class OutputError(BordersimError):
    """An output path bordersim may not write: it holds something bordersim did not write."""


class RunError(BordersimError):
    """A run that cannot be done as asked: more replications than the limit or this machine's memory."""
