"""Allow ``python -m bb``."""

from __future__ import annotations

from bb.cli.app import main

if __name__ == "__main__":
    main()
