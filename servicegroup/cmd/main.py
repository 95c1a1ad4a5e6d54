"""Entry point of the ``servicegroup`` command (subcommands come later)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    print("servicegroup: no subcommands yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
