"""The `forgesyte` command's entry point (also `python -m forgesyte`), kept import-free.

The analysis children start with multiprocessing's spawn, which runs the parent's main
script again in every child (as `__mp_main__`). The installed script imports its `main`
from here, so a child loads none of the command's modules (argparse, the client, its
HTTP and terminal libraries, Settings): they load when `main` runs, in the parent only.
"""

from __future__ import annotations

import sys


def main() -> int:
    """Run the `forgesyte` command; see `forgesyte.cli`."""
    from forgesyte.cli import main as run_command

    return run_command()


if __name__ == "__main__":  # pragma: no cover  (python -m forgesyte)
    sys.exit(main())
