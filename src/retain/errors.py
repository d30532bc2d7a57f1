"""The one exception type for user errors: bad files, missing fields, bad options, unknown paths.

The CLI prints it on one line (``file:line: field: message``) and exits with code 2; code that raises it must
do so before anything is written.
"""

from __future__ import annotations


class RetainError(Exception):
    """A user error, located as precisely as we can: the file, the 1-based line and the field."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = str(self.file) + (f":{self.line}" if self.line is not None else "") + ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


def check(condition: bool, message: str, *, field: str | None = None, file: str | None = None,
          line: int | None = None) -> None:
    """Raise :class:`RetainError` unless ``condition`` holds."""
    if not condition:
        raise RetainError(message, field=field, file=file, line=line)
