"""How the command line talks to a person: one-line warnings and the progress-bar choice."""

from __future__ import annotations

import sys

__all__ = ["show_warning", "show_progress"]


def show_warning(message, category, filename, lineno, file=None, line=None):
    """Print a warning as one line ``warning (Category): message`` (no source line)."""
    print(f"warning ({category.__name__}): {message}", file=sys.stderr)


def show_progress(args) -> bool:
    """Progress bar: on with ``--progress``, off with ``--quiet``, else on a terminal only."""
    if getattr(args, "quiet", False):
        return False
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()
