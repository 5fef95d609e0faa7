"""bb: a command-line bootcamp that turns Python coders into backend engineers."""

from __future__ import annotations

__version__ = "0.1.0"
