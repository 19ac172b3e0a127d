"""The written docs stay present and true to the code: every route has a curl example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from forgesyte.api.app import create_app
from forgesyte.api.context import AppContext
from forgesyte.jobs.memory_store import InMemoryJobStore
from forgesyte.pipelines.catalog import load_catalog
from forgesyte.plugins.registry import discover_plugins
from forgesyte.settings import Settings
from forgesyte.storage.local import LocalStorage

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def test_readme_has_exactly_the_two_quick_start_commands() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)\n```", quick_start, flags=re.S)
    assert commands == [
        "python3 -m pip install uv && uv run --no-dev forgesyte serve",
        "bash scripts/run_tests.sh",
    ]
    assert "bash scripts/run_tests.sh" in (REPO / ".ci" / "run").read_text()


def test_every_route_has_a_curl_example(memory_store: InMemoryJobStore, tmp_path: Path) -> None:
    registry = discover_plugins()
    app = create_app(
        AppContext(
            Settings(data_dir=tmp_path),
            memory_store,
            LocalStorage(tmp_path),
            registry,
            load_catalog(registry),
        )
    )
    paths = set(app.openapi()["paths"])
    assert {"/v1/video/submit", "/v1/pipelines", "/healthz"} <= paths
    curls = [line for line in README.splitlines() if line.startswith("curl ")]
    for path in paths:
        prefix = path.split("{", 1)[0]
        assert any(prefix in line for line in curls), f"no curl example for {path}"


@pytest.mark.parametrize(
    ("document", "headings"),
    [
        (
            "docs/architecture.md",
            ["## Components", "## Data flow", "## Job state machine", "## Process model"],
        ),
        ("docs/operations.md", ["## Deploy", "## Upgrade", "## Rollback", "## Backups"]),
        ("CHANGELOG.md", ["## [Unreleased]"]),
        ("README.md", ["## Using the API", "### Job states", "### Errors", "## Scaling out"]),
    ],
)
def test_documents_have_their_sections(document: str, headings: list[str]) -> None:
    text = (REPO / document).read_text()
    for heading in headings:
        assert heading in text, f"{document} lacks {heading!r}"


def test_settings_are_all_documented() -> None:
    operations = (REPO / "docs" / "operations.md").read_text()
    for name in Settings.model_fields:
        variable = f"FORGESYTE_{name.upper()}"
        assert variable in README, f"{variable} missing from the README"
        assert variable in operations, f"{variable} missing from docs/operations.md"
