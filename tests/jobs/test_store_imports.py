"""The store's protocols and the in-memory store load without SQLAlchemy.

Each import runs in a fresh interpreter, so nothing this test process loaded before counts.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def loads_sqlalchemy(module: str) -> bool:
    """Whether importing module (alone, in a new interpreter) loads sqlalchemy."""
    probe = f"import sys, {module}; print('sqlalchemy' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip() == "True"


@pytest.mark.parametrize(
    "module",
    ["forgesyte.jobs.store", "forgesyte.jobs.queue", "forgesyte.jobs.memory_store"],
)
def test_the_protocols_and_the_in_memory_store_load_no_sqlalchemy(module: str) -> None:
    assert not loads_sqlalchemy(module)


def test_the_sql_store_does_load_it() -> None:
    assert loads_sqlalchemy("forgesyte.jobs.sql_store")  # the probe sees an import
