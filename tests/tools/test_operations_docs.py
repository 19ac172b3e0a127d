"""docs/operations.md stays true to the metrics, the log settings and the CI workflow."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from forgesyte.api.routes.metrics import render_metrics
from forgesyte.jobs.store import JobStore
from forgesyte.logs import LOG_FILE_BACKUPS, LOG_FILE_MAX_BYTES

REPO = Path(__file__).resolve().parents[2]
OPERATIONS = (REPO / "docs" / "operations.md").read_text()


def _section(heading: str) -> str:
    assert f"\n## {heading}\n" in OPERATIONS, f"docs/operations.md lacks ## {heading}"
    return OPERATIONS.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("store", ["duckdb"], indirect=True)
def test_every_job_metric_is_documented(store: JobStore) -> None:
    monitoring = _section("Monitoring")
    exposed = text_string_to_metric_families(render_metrics(store).decode())
    names = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in exposed
        if family.name.startswith("forgesyte_")
    }
    assert len(names) >= 5
    for name in names:
        assert f"`{name}`" in monitoring, f"{name} is not documented under ## Monitoring"


def test_log_rotation_sizes_are_the_documented_ones() -> None:
    logs = _section("Logs")
    assert LOG_FILE_MAX_BYTES == 10 * 1024 * 1024 and "10 MiB" in logs
    assert f"`.{LOG_FILE_BACKUPS}`" in logs and "5 old files kept" in OPERATIONS
    assert "FORGESYTE_LOG_FILE" in logs and "<data dir>/forgesyte.log" in logs


def test_the_ci_workflow_is_documented() -> None:
    ci = _section("Continuous integration")
    assert "`.github/workflows/ci.yml`" in ci and "`bash .ci/run`" in ci
    assert (REPO / ".github" / "workflows" / "ci.yml").is_file()
