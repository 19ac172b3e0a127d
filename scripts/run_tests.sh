#!/usr/bin/env bash
# The full test suite, from a fresh machine: installs uv, the PostgreSQL server the
# scale-out tests start, and the locked Python dependencies; then runs pytest with
# coverage of src/ (at least 90%). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
bash scripts/install_services.sh
uv sync --frozen --quiet
rm -f .coverage .coverage.*
uv run --frozen pytest -p no:cacheprovider \
  --cov=forgesyte --cov-report=term-missing:skip-covered --cov-fail-under=90 "$@"
