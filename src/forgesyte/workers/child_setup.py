"""What every child process of the server does first, whatever it is for."""

from __future__ import annotations

import ctypes
import os
import signal

from forgesyte.logs import configure_child_logging

_PR_SET_PDEATHSIG = 1
CHILD_NICENESS = 10  # added to a child's nice value: its work yields to the API's


def die_with_parent() -> None:
    """Ask Linux to kill this child when its parent dies (kill -9 of the server included)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def settle_child() -> None:
    """Ignore SIGINT (the parent decides when a child stops), die with the parent, yield
    the CPU to the API (batch work: status polls stay fast under load) and log JSON lines
    to stderr like the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    os.nice(CHILD_NICENESS)
    configure_child_logging()
