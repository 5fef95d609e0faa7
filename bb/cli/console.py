"""The two consoles: data goes to ``out`` (stdout), everything for people to ``err`` (stderr).

Text that came from a learner's app, its build or a pack (check messages, logs, error
messages) is passed through :func:`printable` before it reaches a terminal, and is printed as
``rich.text.Text`` (never as markup), so that it can neither drive the terminal nor style
itself.
"""

from __future__ import annotations

import re

from rich.console import Console

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

# Whole escape sequences go, not just their ESC: "\x1b[2J" must not leave "[2J" behind.
#   CSI (ESC [ or the 8-bit 0x9b) parameters, intermediates, final byte;
#   OSC, DCS, SOS, PM, APC (ESC ] P X ^ _ or 0x9d 0x90 0x98 0x9e 0x9f) up to BEL or ST (or
#   the line's end, so that an unterminated one cannot swallow the rest of a log);
#   any other two-byte ESC sequence (ESC c resets the terminal, ESC 7 saves the cursor).
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
)
# Every other C0 control but tab and newline, DEL, the C1 controls, and the Unicode
# direction overrides (they make a terminal show text in another order than it is).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` without terminal escape sequences and control characters (tab and newline
    stay), safe to show on a terminal whatever produced it."""
    if text.isprintable():  # the common case: nothing to strip, no regex work
        return text
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", text))


def print_data(text: str) -> None:
    """Write machine-readable output to stdout exactly as given (no wrapping, no colour)."""
    import sys

    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
