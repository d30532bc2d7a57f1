"""Where retain prints: a rich console that does not wrap piped output.

Without a terminal rich lays text out at 80 columns (or the width of whatever terminal stdin is attached to),
so a log written through a pipe or into a file breaks long lines where a reader greps for them. A console on a
stream that is not a terminal lays out at :data:`PIPED_WIDTH` and soft-wraps (a long line stays one line); on a
terminal it is rich's own. Every console retain prints through comes from :func:`console`.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

PIPED_WIDTH = 200


def console(*, stderr: bool = False, **options: Any) -> Console:
    """A rich ``Console`` on stdout (or stderr); wide and soft-wrapping when that stream is not a terminal and
    the caller sets no width."""
    out = Console(stderr=stderr, **options)
    if out.is_terminal or "width" in options:
        return out
    return Console(stderr=stderr, **{"width": PIPED_WIDTH, "soft_wrap": True, **options})
