"""Errors a user can fix: each names the file, the field and what is allowed."""


class BordersimError(Exception):
    """A problem with the user's input, reported as one line and exit code 2."""

    def __init__(self, file: str | None, field: str | None, message: str):
        self.file = file
        self.field = field
        self.message = message
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [p for p in (self.file, self.field) if p]
        where = ": ".join(parts)
        text = f"{where}: {self.message}" if where else self.message
        return " ".join(text.split())


class ScenarioError(BordersimError):
    """A scenario file that cannot be loaded or validated."""


class OverloadError(BordersimError):
    """Demand that exceeds capacity over the whole horizon."""


class OutputError(BordersimError):
    """An output path bordersim may not write: it holds something bordersim did not write."""
