"""The two consoles: data goes to ``out`` (stdout), everything for people to ``err`` (stderr)."""

from __future__ import annotations

from rich.console import Console

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def print_data(text: str) -> None:
    """Write machine-readable output to stdout exactly as given (no wrapping, no colour)."""
    import sys

    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
