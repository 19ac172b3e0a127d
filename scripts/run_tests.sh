#!/usr/bin/env bash
# The full test suite, from a fresh machine: installs uv, the PostgreSQL server the
# scale-out tests start, and the locked Python dependencies; then runs pytest with
# coverage of src/ (at least 90%). Extra arguments go to pytest.
#
# Speed: the tests start many Python processes (servers, workers, analysis children,
# the CLI), so every module is compiled to bytecode once here, even where the
# environment sets PYTHONDONTWRITEBYTECODE, and pytest keeps its rewritten test modules
# (each test process rewrote them all, 5 s of CPU, at every run); and pytest-xdist runs test files side by
# side in FORGESYTE_TEST_PROCESSES processes (default 3 for two cores: many tests wait
# on servers, leases and sleeps). Each file stays in one process, and files sharing a
# package-scoped server stay together (tests/conftest.py). `-n 0` after the script
# runs everything in this one process.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
bash scripts/install_services.sh
uv sync --frozen --quiet --compile-bytecode
PYTHONDONTWRITEBYTECODE= uv run --frozen python -m compileall -q src tests/plugin_dist >/dev/null
rm -f .coverage .coverage.*
PYTHONDONTWRITEBYTECODE= uv run --frozen pytest -p no:cacheprovider -n "${FORGESYTE_TEST_PROCESSES:-3}" --dist loadfile \
  --no-loadscope-reorder \
  --cov=forgesyte --cov-report=term-missing:skip-covered --cov-fail-under=90 "$@"
